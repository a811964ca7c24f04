"""A phase-2 run's progress.json moves inside its long stages (corpus encoding, adapter fit), with ETAs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rrra_core.adapter import AdapterFitConfig, LabelConfig
from rrra_core.retrieval.encoder import EncoderConfig
from rrra_core.runtime import reports
from rrra_core.runtime.runs import Run, create_run
from rrra_core.training.phase2 import Phase2Config, phase2_config_dict, train_phase2


def test_phase2_progress_moves_during_encoding_and_training(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A tiny run takes well under a second per stage: unthrottle, so every batch and step writes.
    monkeypatch.setattr(reports, "PROGRESS_EVERY_S", 0.0)
    records: list[dict[str, Any]] = []
    write_json = Run.write_json

    def recording(self: Run, name: str, obj: Any) -> None:
        if name == reports.PROGRESS_FILE:
            records.append(dict(obj))
        write_json(self, name, obj)

    monkeypatch.setattr(Run, "write_json", recording)
    enc = EncoderConfig(model=str(tiny_model_dir), query_max_length=16, doc_max_length=32, encode_batch_size=8)
    cfg = Phase2Config(
        dataset="adi",
        train_split="test",
        labels=LabelConfig(top_k=30, fp_rank_range=(30, 60)),
        fit=AdapterFitConfig(epochs=2, batch_size=64),
    )
    train_phase2(create_run("phase2", phase2_config_dict(enc, cfg)), enc, cfg)

    fractions = [r["fraction"] for r in records]
    assert fractions == sorted(fractions) and records[-1]["status"] == "done"  # the bar never goes back
    encoding = [r for r in records if r["stage"] == "encoding the corpus"]
    moves = {r["fraction"] for r in encoding}
    assert len(moves) >= 5 and min(moves) == 0.0 and max(moves) == pytest.approx(0.62)  # 82 docs, 8 a batch
    assert any(r["eta_s"] for r in encoding) and encoding[-1]["message"] == "encoding the corpus · 82/82 docs"
    training = [r for r in records if r["stage"] == "training the adapter"]
    steps = {r["fraction"] for r in training}
    assert len(steps) >= 5 and min(steps) == pytest.approx(0.75) and max(steps) == pytest.approx(0.95)
    assert any(r["eta_s"] for r in training) and all(r["message"] for r in training)
    assert {r["stage"] for r in records} >= {"encoding the queries", "scoring candidates"}
