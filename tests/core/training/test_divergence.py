"""A diverging run stops at its first non-finite loss or gradient, in one line, keeping its last good state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rrra_core.runtime.errors import DataError, TrainingDiverged
from rrra_core.runtime.runs import Run, create_run
from rrra_core.training import phase1 as phase1_module
from rrra_core.training.checkpoint import PREVIOUS, load_checkpoint, save_checkpoint
from rrra_core.training.phase1 import phase1_config_dict, train_phase1
from rrra_core.training.step import backward_and_step
from tests.core.training.test_phase1 import _cfgs


def _model() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    return model, torch.optim.AdamW(model.parameters(), lr=0.1)


@pytest.mark.parametrize("poison", ["loss", "gradient"])
def test_a_non_finite_step_is_refused_before_the_weights_change(poison: str) -> None:
    model, opt = _model()
    before = [p.detach().clone() for p in model.parameters()]
    out = model(torch.ones(2, 3)).mean()
    loss = out * float("nan") if poison == "loss" else out * 0 + model.weight.sum() * torch.tensor(float("inf"))
    with pytest.raises(TrainingDiverged, match="diverged"):
        backward_and_step(loss, opt, model.parameters(), max_grad_norm=1.0)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_a_run_that_diverges_is_marked_failed_keeps_its_checkpoint_and_resumes(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    enc, cfg, mining = _cfgs(tiny_model_dir, max_steps=4, checkpoint_every=1)
    run = create_run("phase1", phase1_config_dict(enc, cfg, mining), run_id="diverges")
    calls = []

    def poisoned(loss: torch.Tensor, *args: object, **kwargs: object) -> float:
        calls.append(1)
        return backward_and_step(loss * float("nan") if len(calls) == 3 else loss, *args, **kwargs)

    monkeypatch.setattr(phase1_module, "backward_and_step", poisoned)
    with pytest.raises(TrainingDiverged):
        train_phase1(run, enc, cfg, mining)
    progress = run.read_json("progress.json")
    assert progress["status"] == "failed" and progress["message"].startswith("failed: the loss is nan")
    assert not run.file("model").exists()  # no broken model is ever saved as the run's result
    assert json.loads((run.file("checkpoint") / "state.json").read_text())["step"] == 2  # the last good step
    monkeypatch.undo()
    train_phase1(run, enc, cfg, mining)  # resumes from step 2 and finishes
    assert run.read_json("progress.json")["status"] == "done"
    assert [r["step"] for r in run.read_log()][-1] == 4


def test_a_damaged_checkpoint_names_its_file_and_the_previous_one_kept(tmp_path: Path) -> None:
    model, opt = _model()
    save_checkpoint(tmp_path, model, opt, {"step": 1, "epoch": 0})
    save_checkpoint(tmp_path, model, opt, {"step": 2, "epoch": 0})
    assert json.loads((tmp_path / PREVIOUS / "state.json").read_text())["step"] == 1  # the last two are kept
    weights = tmp_path / "checkpoint" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:40])  # cut short
    with pytest.raises(DataError) as err:
        load_checkpoint(tmp_path, model, opt)
    message = str(err.value)
    assert "\n" not in message and str(weights) in message and f"mv {tmp_path / PREVIOUS}" in message
    (tmp_path / "checkpoint" / "state.json").write_text("{not json")
    with pytest.raises(DataError, match="state.json: damaged checkpoint file"):
        load_checkpoint(tmp_path, model, opt)


def test_a_damaged_run_file_is_a_one_line_error(tmp_path: Path) -> None:
    run = Run(tmp_path / "r")
    run.write_json("config.json", {"kind": "phase1"})
    run.file("config.json").write_text('{"kind": "pha')
    with pytest.raises(DataError, match="config.json: damaged: not valid JSON"):
        run.read_json("config.json")
