from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from rrra_core.negatives.mining import MiningConfig
from rrra_core.retrieval.encoder import EncoderConfig
from rrra_core.runtime.reports import METRICS_KEYS, PROGRESS_KEYS
from rrra_core.runtime.runs import Run, create_run
from rrra_core.training.loop import epoch_batches, training_pairs
from rrra_core.training.phase1 import Phase1Config, phase1_config_dict, train_phase1


def _cfgs(model: Path, **train: object) -> tuple[EncoderConfig, Phase1Config, MiningConfig]:
    enc = EncoderConfig(model=str(model), query_max_length=16, doc_max_length=32, encode_batch_size=32)
    base = dict(
        dataset="adi",
        train_split="test",
        eval_split="test",
        batch_size=8,
        lr=5e-4,
        checkpoint_every=2,
        hard_negatives="mine",
        n_hard=1,
        eval_k=20,
    )
    base.update(train)
    return enc, Phase1Config(**base), MiningConfig(top_k=20, n_neg=4)


def _weights(run: Run) -> dict[str, np.ndarray]:
    return load_file(str(run.file("model") / "model.safetensors"))


def test_run_folder_holds_everything_to_reproduce(tiny_model_dir: Path) -> None:
    enc, cfg, mining = _cfgs(tiny_model_dir, max_steps=3)
    run = create_run("phase1", phase1_config_dict(enc, cfg, mining))
    metrics = train_phase1(run, enc, cfg, mining)
    for name in ("config.json", "metrics.json", "log.jsonl", "negatives.jsonl", "progress.json"):
        assert run.file(name).is_file(), name
    assert (run.file("model") / "model.safetensors").is_file()
    saved = json.loads(run.file("config.json").read_text())
    assert saved["phase"]["max_steps"] == 3 and saved["encoder"]["doc_max_length"] == 32
    assert saved["data"] == {"dataset": "adi", "train_split": "test", "eval_split": "test"}
    assert "cpu_count" in saved["environment"]
    log = run.read_log()
    assert [r["step"] for r in log] == [1, 2, 3]
    assert all(np.isfinite(r["loss"]) for r in log)
    assert set(metrics["before"]) >= {"nDCG@10", "RR@10", "R@100"} and metrics["after"]["step"] == 3
    # The one metrics.json and progress.json shapes.
    assert tuple(metrics) == METRICS_KEYS and metrics["variants"]["retriever"]["nDCG@10"] == metrics["after"]["nDCG@10"]
    progress = run.read_json("progress.json")
    assert tuple(progress) == PROGRESS_KEYS
    assert (progress["phase"], progress["status"], progress["step"], progress["fraction"]) == (1, "done", 3, 1.0)
    # Mined negatives never include a labelled positive.
    from rrra_core.data import load_dataset, read_tevatron

    qrels = load_dataset("adi", "test").qrels
    for ex in read_tevatron(run.file("negatives.jsonl")):
        assert ex.negatives and not any(p.docid in qrels[ex.query_id] for p in ex.negatives)


def test_killed_run_resumes_to_the_same_model(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    enc, cfg, mining = _cfgs(tiny_model_dir, max_steps=5)
    straight = create_run("phase1", phase1_config_dict(enc, cfg, mining), run_id="straight")
    train_phase1(straight, enc, cfg, mining)

    killed = create_run("phase1", phase1_config_dict(enc, cfg, mining), run_id="killed")
    real_log = Run.log

    def dying_log(self: Run, record: dict) -> None:
        if record.get("step") == 4:
            raise KeyboardInterrupt("killed")
        real_log(self, record)

    monkeypatch.setattr(Run, "log", dying_log)
    with pytest.raises(KeyboardInterrupt):
        train_phase1(killed, enc, cfg, mining)
    assert not killed.file("model").exists()
    monkeypatch.setattr(Run, "log", real_log)
    train_phase1(killed, enc, cfg, mining)  # resumes from the step-2 checkpoint

    a, b = _weights(straight), _weights(killed)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=1e-6, err_msg=k)
    assert [r["loss"] for r in straight.read_log()][-1] == pytest.approx(
        [r["loss"] for r in killed.read_log()][-1], rel=1e-5
    )


def test_batches_are_a_pure_function_of_seed_and_epoch() -> None:
    a = epoch_batches(50, 8, seed=1, epoch=0)
    assert all(np.array_equal(x, y) for x, y in zip(a, epoch_batches(50, 8, seed=1, epoch=0)))
    assert not all(np.array_equal(x, y) for x, y in zip(a, epoch_batches(50, 8, seed=1, epoch=1)))
    assert sorted(np.concatenate(a).tolist()) == list(range(50))  # last batch has 2 items: kept


def test_training_pairs_cover_every_positive() -> None:
    qrels = {"q1": {"a": 1, "b": 2}, "q2": {"c": 1}}
    assert training_pairs(qrels, None, 0) == [("q1", "a"), ("q1", "b"), ("q2", "c")]
    assert len({q for q, _ in training_pairs(qrels, 1, 0)}) == 1
