"""The adapter the latency and training benchmarks time: a trained one when there is one, else its shape.

A forward pass costs the same whatever the weights, so a benchmark that finds no
trained adapter (a fresh checkout, a test) times an untrained adapter of the
same shape instead of failing, and says so in its settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rrra_core.adapter import AdapterConfig, RRRAAdapter, load_adapter
from rrra_core.runtime.paths import REPO_ROOT

__all__ = ["DEFAULT_ADAPTER", "UNTRAINED", "timed_adapter"]

DEFAULT_ADAPTER = "runs/demo-squad/adapter"
UNTRAINED = "untrained adapter of the same shape (timing only)"


def timed_adapter(folder: str | None, dim: int, device: Any) -> tuple[RRRAAdapter, str]:
    """The trained adapter in ``folder`` (relative to the repository) if its dim fits, else an untrained one.

    The second value says which, for the result's settings: the folder, or :data:`UNTRAINED`.
    """
    if folder:
        path = Path(folder)
        path = path if path.is_absolute() else REPO_ROOT / path
        if path.is_dir():
            adapter, cfg = load_adapter(path, device=device)
            if cfg.dim == dim:
                return adapter, str(path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path)
    return RRRAAdapter(AdapterConfig(dim=dim)).to(device).eval(), UNTRAINED
