"""One progress.json and one metrics.json shape for every phase; metrics files from before it still read."""

from __future__ import annotations

from pathlib import Path

import pytest

from rrra_core.runtime.reports import (
    METRICS_KEYS,
    PROGRESS_KEYS,
    StageProgress,
    eta_seconds,
    metrics_record,
    progress_record,
    read_metrics,
    stage_message,
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


class _Clock:
    """A clock the test moves by hand, so throttling and ETAs are exact."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_eta_and_stage_message() -> None:
    assert eta_seconds(10.0, 0, 100) is None  # no rate yet
    assert eta_seconds(10.0, 25, 100) == pytest.approx(30.0)
    assert eta_seconds(10.0, 100, 100) == 0.0
    assert (
        stage_message("encoding the corpus", 640, 1400, "docs", 21.2)
        == "encoding the corpus · 640/1400 docs · ETA 21 s"
    )
    assert stage_message("encoding the corpus", 1400, 1400, "docs", 0.0) == "encoding the corpus · 1400/1400 docs"


def test_stage_progress_moves_within_its_span_with_an_eta_and_throttles(tmp_path: Path) -> None:
    run, clock = Run(tmp_path), _Clock()
    progress = StageProgress(run, 2, "encoding the corpus", (0.2, 0.6), unit="docs", clock=clock, epoch=1)
    first = progress.start()
    assert first is not None and first["fraction"] == pytest.approx(0.2) and first["eta_s"] is None
    written = []
    for done in range(10, 101, 10):  # ten batches, half a second apart: a write every other one
        clock.now += 0.5
        record = progress.update(done, 100)
        if record is not None:
            written.append(record)
            assert run.read_json("progress.json") == record
    fractions = [r["fraction"] for r in written]
    assert fractions == sorted(fractions) and len(set(fractions)) == len(fractions) >= 4
    assert all(0.2 < f <= 0.6 for f in fractions) and fractions[-1] == pytest.approx(0.6)  # the last always lands
    assert written[0]["fraction"] == pytest.approx(0.24)  # the first update is never throttled
    assert len(written) < 10  # ...but the rest are
    assert written[0]["eta_s"] == pytest.approx(4.5)  # 10 docs in 0.5 s: 90 left take 4.5 s
    assert written[1]["message"].startswith("encoding the corpus · ") and "docs · ETA" in written[1]["message"]
    last = written[-1]
    assert last["message"] == "encoding the corpus · 100/100 docs" and last["eta_s"] == 0.0
    assert tuple(last) == PROGRESS_KEYS and (last["stage"], last["phase"], last["epoch"]) == (
        "encoding the corpus",
        2,
        1,
    )


def test_stage_progress_never_goes_back_and_writes_nothing_without_a_run() -> None:
    clock = _Clock()
    progress = StageProgress(None, 3, "mining", (0.5, 0.7), every_s=0.0, clock=clock)
    clock.now += 1
    assert progress.update(5, 10)["fraction"] == pytest.approx(0.6)
    assert progress.update(3, 10)["fraction"] == pytest.approx(0.6)  # a smaller count holds the bar
    assert progress.update(10, 10)["fraction"] == pytest.approx(0.7)


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
