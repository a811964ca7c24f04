"""Device choice and the mixed-precision dtype, including what a GPU would be told (without one)."""

from __future__ import annotations

import pytest
import torch

from rrra_core.retrieval.encoding import native_bf16
from rrra_core.runtime.device import autocast_dtype, resolve_device
from rrra_core.runtime.errors import ConfigError


def test_cpu_trains_in_fp32() -> None:
    assert autocast_dtype(torch.device("cpu")) is None


@pytest.mark.parametrize(
    ("capability", "dtype"),
    [((9, 0), torch.bfloat16), ((8, 0), torch.bfloat16), ((7, 5), torch.float16), ((7, 0), torch.float16)],
)
def test_cuda_autocast_uses_bf16_only_with_bf16_tensor_cores(
    monkeypatch: pytest.MonkeyPatch, capability: tuple[int, int], dtype: torch.dtype
) -> None:
    asked: list[int] = []
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=None: asked.append(i) or capability)
    # torch's own check says yes on a T4 (7.5) through emulation; ours must not.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert autocast_dtype(torch.device("cuda", 1)) is dtype
    assert native_bf16(torch.device("cuda", 1)) is (dtype is torch.bfloat16)
    assert asked == [1, 1]  # the device asked about, not the current one


def test_unknown_or_missing_devices_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device("cuda")
