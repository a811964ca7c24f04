"""Checkpoints round-trip the model, the optimizer and the fp16 loss scaler."""

from __future__ import annotations

from pathlib import Path

import torch

from rrra_core.training.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint


def _setup() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    return model, torch.optim.AdamW(model.parameters(), lr=1e-2)


def test_model_optimizer_and_loss_scale_come_back(tmp_path: Path) -> None:
    model, opt = _setup()
    # The scaler's CPU flavour has the same state as the CUDA one fp16 training uses.
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    for _ in range(3):
        scaler.scale(model(torch.randn(8, 4)).pow(2).mean()).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()
    scaler.update(new_scale=1024.0)  # as if it had backed off after overflows
    save_checkpoint(tmp_path, model, opt, {"step": 3, "epoch": 0}, scaler)
    assert has_checkpoint(tmp_path)

    model2, opt2 = _setup()
    scaler2 = torch.amp.GradScaler("cpu")
    state = load_checkpoint(tmp_path, model2, opt2, scaler2)
    assert state == {"step": 3, "epoch": 0}
    assert scaler2.get_scale() == 1024.0 and scaler2.state_dict() == scaler.state_dict()
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), model2.state_dict().values()))
    assert torch.equal(opt.state_dict()["state"][0]["exp_avg"], opt2.state_dict()["state"][0]["exp_avg"])


def test_fp32_checkpoints_hold_no_scaler_and_load_without_one(tmp_path: Path) -> None:
    model, opt = _setup()
    save_checkpoint(tmp_path, model, opt, {"step": 1, "epoch": 0})
    assert "grad_scaler" not in (tmp_path / "checkpoint" / "state.json").read_text()
    scaler = torch.amp.GradScaler("cpu", init_scale=8.0)
    assert load_checkpoint(tmp_path, *_setup(), scaler) == {"step": 1, "epoch": 0}
    assert scaler.get_scale() == 8.0  # untouched
