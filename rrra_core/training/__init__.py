"""The three training phases, one config each (``Phase1Config``, ``Phase2Config``, ``Phase3Config``),
and what their loops share (:mod:`rrra_core.training.loop`): schedules, resumable checkpoints, progress.

Names load on first use: the adapter's fit loop imports :mod:`rrra_core.training.loop`,
and the phase modules import the adapter, so importing them all here would be circular.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Phase1Config": "phase1",
    "train_phase1": "phase1",
    "Phase2Config": "phase2",
    "train_phase2": "phase2",
    "Phase3Config": "phase3",
    "train_phase3": "phase3",
    "lr_at": "schedule",
    "save_checkpoint": "checkpoint",
    "load_checkpoint": "checkpoint",
    "has_checkpoint": "checkpoint",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"rrra_core.training.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
