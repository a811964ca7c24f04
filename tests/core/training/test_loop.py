"""What the three training loops share: optimizer groups, the step plan, progress lines, old checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rrra_core.runtime.reports import PROGRESS_KEYS
from rrra_core.runtime.runs import Run
from rrra_core.training.checkpoint import load_checkpoint, save_checkpoint
from rrra_core.training.loop import Reporter, StepPlan, epoch_batches, param_groups


class _Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(4, 3)
        self.norm = torch.nn.LayerNorm(3)
        self.frozen = torch.nn.Linear(3, 3)
        self.frozen.requires_grad_(False)


def test_param_groups_never_decay_biases_or_norm_weights() -> None:
    block = _Block()
    decay, no_decay = param_groups(block, 0.01, lr=1e-3)
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert decay["lr"] == no_decay["lr"] == 1e-3
    assert [p.shape for p in decay["params"]] == [torch.Size([3, 4])]  # the one matrix
    assert {id(p) for p in no_decay["params"]} == {id(block.proj.bias), id(block.norm.weight), id(block.norm.bias)}
    assert not any(p is block.frozen.weight for g in (decay, no_decay) for p in g["params"])  # frozen: left out


def test_the_step_plan_resumes_mid_epoch_and_stops_at_max_steps() -> None:
    plan = StepPlan.make(n_pairs=20, batch_size=4, seed=1, epochs=2, max_steps=7, warmup_ratio=0.5)
    assert (plan.steps_per_epoch, plan.total_steps, plan.warmup) == (5, 7, 4)
    first = [b for b, _ in plan.remaining(0, 0)]
    assert first == [0, 1, 2, 3, 4] and plan.epoch_finished(5, 0)
    resumed = list(plan.remaining(7 - 4, 0))  # killed after 3 steps of epoch 0
    assert [b for b, _ in resumed] == [3, 4]
    assert all(np.array_equal(x, epoch_batches(20, 4, 1, 0)[b]) for b, x in resumed)
    assert [b for b, _ in plan.remaining(5, 1)] == [0, 1]  # max_steps = 7 ends epoch 1 after two steps
    assert plan.epoch_finished(7, 1) and not plan.running(7, 2)


def test_the_reporter_logs_each_step_and_writes_the_one_progress_shape(tmp_path: Path) -> None:
    run = Run(tmp_path)
    report = Reporter(run, 2, total_steps=4, epochs=2, span=(0.5, 1.0), stage="training the adapter")
    report.step(1, 1, 0.9, lr=0.1)
    progress = run.read_json("progress.json")
    assert tuple(progress) == PROGRESS_KEYS
    assert (progress["phase"], progress["stage"], progress["step"], progress["total_steps"]) == (
        2,
        "training the adapter",
        1,
        4,
    )
    assert progress["fraction"] == pytest.approx(0.625) and progress["message"].startswith("step 1/4 · loss 0.9000")
    report.done(4, 2)
    assert run.read_json("progress.json")["status"] == "done"
    assert run.read_log() == [
        {"phase": 2, "step": 1, "epoch": 1, "loss": 0.9, "lr": 0.1, "time": pytest.approx(0, abs=5)}
    ]


def test_a_sub_stage_moves_the_bar_between_steps_and_the_steps_never_go_back(tmp_path: Path) -> None:
    # Phase 3 keeps a share of its bar for re-mining: 0.2 for two passes, the steps get the other 0.6.
    run = Run(tmp_path)
    report = Reporter(run, 3, total_steps=4, epochs=2, span=(0.0, 0.8), reserve=0.2, sub_stages=2)
    first = report.sub_stage("mining the candidate pool", unit="docs", epoch=1)
    assert run.read_json("progress.json")["fraction"] == pytest.approx(0.0)
    assert first.update(10, 10)["fraction"] == pytest.approx(0.1)
    report.step(2, 1, 0.5)
    assert run.read_json("progress.json")["fraction"] == pytest.approx(0.1 + 0.6 * 2 / 4)
    second = report.sub_stage("mining the candidate pool", unit="docs", epoch=2)
    assert second.update(5, 10)["fraction"] == pytest.approx(0.45)
    second.update(10, 10)
    report.step(4, 2, 0.4)
    assert run.read_json("progress.json")["fraction"] == pytest.approx(0.8)
    extra = report.sub_stage("mining the candidate pool", unit="docs", epoch=3)  # none planned: the bar waits
    assert extra.update(10, 10)["fraction"] == pytest.approx(0.8)


def test_a_checkpoint_saved_with_other_optimizer_groups_resumes_by_parameter(tmp_path: Path) -> None:
    # Phase 3 used one group per model before every phase grouped by dim(); its moments still come back.
    torch.manual_seed(0)
    block = _Block()
    old = torch.optim.AdamW(list(block.parameters()), lr=1e-2)
    block.proj(torch.randn(2, 4)).sum().backward()
    block.norm(torch.randn(2, 3)).sum().backward()
    old.step()
    save_checkpoint(tmp_path, block, old, {"step": 1, "epoch": 0})

    new = torch.optim.AdamW(param_groups(block, 0.01), lr=1e-2)
    state = load_checkpoint(tmp_path, block, new, legacy_params=list(block.parameters()))
    assert state == {"step": 1, "epoch": 0} and len(new.param_groups) == 2
    for p in (block.proj.weight, block.proj.bias, block.norm.weight):
        assert torch.equal(new.state[p]["exp_avg"], old.state[p]["exp_avg"])
    assert new.param_groups[1]["weight_decay"] == 0.0
