"""One progress.json and one metrics.json shape for every phase; metrics files from before it still read."""

from __future__ import annotations

from pathlib import Path

import pytest

from rrra_core.runtime.reports import (
    METRICS_KEYS,
    PROGRESS_KEYS,
    metrics_record,
    progress_record,
    read_metrics,
    upgrade_metrics,
    write_progress,
)
from rrra_core.runtime.runs import Run


def test_progress_always_has_every_key() -> None:
    training = progress_record(1, "training", step=12, total_steps=40, epoch=1, epochs=2, loss=2.71, eta_s=55.0)
    assert tuple(training) == PROGRESS_KEYS
    assert training["fraction"] == pytest.approx(0.3) and training["status"] == "running"
    assert training["message"] == "step 12/40 · loss 2.7100 · ETA 55 s"
    stage = progress_record(2, "encoding the corpus", fraction=0.35)
    assert tuple(stage) == PROGRESS_KEYS and stage["message"] == "encoding the corpus" and stage["step"] is None
    done = progress_record(3, "done", status="done", step=40, total_steps=40)
    assert done["fraction"] == 1.0 and done["status"] == "done"


def test_write_progress_replaces_the_file(tmp_path: Path) -> None:
    run = Run(tmp_path)
    write_progress(run, 2, "loading the encoder", fraction=0.0)
    write_progress(run, 2, "scoring candidates", fraction=0.95)
    saved = run.read_json("progress.json")
    assert saved["stage"] == "scoring candidates" and saved["updated"] > 0
    assert not [p for p in tmp_path.iterdir() if p.name != "progress.json"]  # no temporary file left behind


def test_metrics_records_share_one_shape() -> None:
    for phase in (1, 2, 3):
        assert tuple(metrics_record(phase)) == METRICS_KEYS


def test_old_phase1_metrics_read_in_the_one_shape() -> None:
    old = {
        "before": {"nDCG@10": 0.2},
        "epochs": [{"epoch": 1, "step": 5, "nDCG@10": 0.3}],
        "best": {"epoch": 1, "nDCG@10": 0.3},
        "after": {"epoch": 1, "step": 5, "nDCG@10": 0.3},
        "train": {"steps": 5},
    }
    new = upgrade_metrics(old, "phase1")
    assert tuple(new) == METRICS_KEYS and new["phase"] == 1
    assert new["variants"] == {"retriever": old["after"]} and new["train"] == {"steps": 5}


def test_old_phase2_metrics_read_in_the_one_shape() -> None:
    val = {"macro_f1": 0.7, "f1": {"FN": 0.5}}
    old = {
        "val": val,
        "train": {"macro_f1": 0.9},
        "epochs": [
            {"epoch": 1, "step": 3, "val_macro_f1": 0.6, "val_accuracy": 0.8},
            {"epoch": 2, "step": 6, "val_macro_f1": 0.7, "val_accuracy": 0.8},
        ],
        "class_counts": {"TP": 3},
        "class_weights": None,
        "pairs": {"train": 10, "val": 2},
        "queries": {"train": 4, "val": 1},
        "steps": 6,
        "seconds": 1.5,
    }
    new = upgrade_metrics(old, "phase2")
    assert new["phase"] == 2 and new["after"] == val and new["before"] is None and new["variants"] == {}
    assert new["best"]["epoch"] == 2 and len(new["epochs"]) == 2
    assert new["train"]["fit"] == {"macro_f1": 0.9} and new["train"]["pairs"] == {"train": 10, "val": 2}
    assert upgrade_metrics(old) == new  # the phase is recognised without the run's kind too


def test_old_phase3_metrics_read_in_the_one_shape(tmp_path: Path) -> None:
    run = Run(tmp_path)
    run.write_json(
        "metrics.json",
        {"eval": {"no_rerank": {"nDCG@10": 0.4}, "rerank": {"nDCG@10": 0.5}}, "train": {"sampler": "rrra"}},
    )
    new = read_metrics(run, "phase3")
    assert new["phase"] == 3 and new["after"] == {"nDCG@10": 0.5}
    assert set(new["variants"]) == {"no_rerank", "rerank"} and new["train"]["sampler"] == "rrra"
    assert read_metrics(Run(tmp_path / "none"), "phase1") == metrics_record(1, epochs=[])  # still starting
