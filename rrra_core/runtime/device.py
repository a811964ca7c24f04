"""Device choice: CUDA when present, CPU otherwise, with an explicit override."""

from __future__ import annotations

import torch

from rrra_core.runtime.errors import ConfigError

__all__ = ["resolve_device", "autocast_dtype", "cuda_native_bf16"]


def resolve_device(name: str = "auto") -> torch.device:
    """Map ``auto``/``cpu``/``cuda``/``cuda:N`` to a usable ``torch.device``."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} requested but no CUDA GPU is available; use --device cpu")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise ConfigError(f"unknown device {name!r}; use auto, cpu or cuda[:N]")


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """Mixed-precision dtype for training on ``device``; ``None`` means plain fp32.

    We train in fp32 on CPU (bf16 CPU kernels are not faster for small BERTs on
    most machines and hurt reproducibility) and in bf16 on GPUs that support it,
    fp16 otherwise.
    """
    if device.type != "cuda":
        return None
    return torch.bfloat16 if cuda_native_bf16(device) else torch.float16


def cuda_native_bf16(device: torch.device) -> bool:
    """Whether this CUDA device has bf16 tensor cores (compute capability 8.0, Ampere, and up).

    ``torch.cuda.is_bf16_supported()`` says yes on a T4 or V100 too, where bf16 is
    emulated and slow (its ``including_emulation`` defaults to True), and it asks
    about the current device rather than this one.
    """
    index = device.index if device.index is not None else torch.cuda.current_device()
    return torch.cuda.get_device_capability(index)[0] >= 8
