"""Save and load an adapter as ``adapter_config.json`` + ``adapter.safetensors`` (never pickle)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from rrra_core.adapter.model import AdapterConfig, RRRAAdapter
from rrra_core.runtime.config import load_config, save_config
from rrra_core.runtime.errors import ConfigError, DataError

__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "save_adapter", "load_adapter", "adapter_folder"]

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter.safetensors"


def save_adapter(adapter: RRRAAdapter, cfg: AdapterConfig, folder: str | os.PathLike[str]) -> Path:
    """Write the adapter's config and weights into ``folder`` (created if needed); returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_config(cfg, folder / CONFIG_NAME)
    state = {k: v.detach().cpu().clone().contiguous() for k, v in adapter.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_NAME), metadata={"format": "pt", "kind": "rrra-adapter"})
    return folder


def adapter_folder(path: str | os.PathLike[str]) -> Path:
    """An adapter folder, or the ``adapter/`` inside a run folder; a one-line error for anything else."""
    folder = Path(path)
    if (folder / "adapter" / CONFIG_NAME).is_file():
        return folder / "adapter"
    if not (folder / CONFIG_NAME).is_file():
        raise ConfigError(f"{folder}: not an adapter folder (no {CONFIG_NAME} there or in its adapter/ folder)")
    return folder


def load_adapter(
    folder: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[RRRAAdapter, AdapterConfig]:
    """The adapter saved in ``folder`` (in eval mode, on ``device``) and its config."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: adapter folder not found")
    cfg = load_config(AdapterConfig, folder / CONFIG_NAME)
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise DataError(weights, "adapter weights not found")
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError) as err:
        raise DataError(weights, f"not a readable safetensors file ({err})") from None
    adapter = RRRAAdapter(cfg)
    expected = adapter.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise DataError(
            weights,
            f"weights do not match {CONFIG_NAME}: missing {missing or 'none'}, unexpected {unexpected or 'none'}",
        )
    bad = next((k for k in expected if tuple(state[k].shape) != tuple(expected[k].shape)), None)
    if bad is not None:
        raise DataError(
            weights,
            f"weights do not match {CONFIG_NAME}: {bad} has shape {tuple(state[bad].shape)}, "
            f"expected {tuple(expected[bad].shape)}",
        )
    adapter.load_state_dict(state)
    return adapter.to(device).eval(), cfg
