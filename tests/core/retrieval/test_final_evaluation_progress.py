"""A final evaluation counts every part that takes a while: the corpus, the queries, and the adapter's reranking."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rrra_core.adapter.model import AdapterConfig, RRRAAdapter
from rrra_core.data import load_dataset
from rrra_core.retrieval.encoder import BiEncoder, EncoderConfig
from rrra_core.retrieval.final_evaluation import final_evaluation, stage_parts
from rrra_core.runtime.reports import StageProgress
from rrra_core.runtime.runs import Run


class _RecordingRun(Run):
    """A run that keeps every progress record it is handed, in order (a follower may miss some)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.records: list[dict[str, Any]] = []

    def write_json(self, name: str, obj: Any) -> None:
        self.records.append(dict(obj))
        super().write_json(name, obj)


def test_every_part_of_an_evaluation_reports_its_count(tmp_path: Path, tiny_model_dir: Path) -> None:
    data = load_dataset("adi", "test")
    enc = EncoderConfig(model=str(tiny_model_dir), query_max_length=16, doc_max_length=32, encode_batch_size=16)
    encoder = BiEncoder.from_pretrained(enc.model)
    adapter = RRRAAdapter(AdapterConfig(dim=encoder.dim))
    run = _RecordingRun(tmp_path)
    stage = StageProgress(run, 3, "evaluating", (0.5, 0.9), every_s=0.0, epoch=2)
    stage.start()
    final_evaluation(encoder, data, enc, dataset="adi", k=10, adapter=adapter, lambda_rr=1.0, stage=stage)
    messages = [r["message"] for r in run.records]
    n_docs, n_queries = len(data.corpus), len(data.queries)
    # The documents, then the queries, then the reranking: each counted to its end.
    assert f"evaluating · {n_docs}/{n_docs} docs" in messages
    assert f"evaluating: encoding the queries · {n_queries}/{n_queries} queries" in messages
    assert f"evaluating: reranking with the adapter · {n_queries}/{n_queries} queries" in messages
    assert all(re.search(r"\d+/\d+ (docs|queries)", m) for m in messages[1:]), messages
    # One bar, never backwards, across the stage's span; every record keeps the stage's fields.
    fractions = [r["fraction"] for r in run.records]
    assert fractions == sorted(fractions) and fractions[0] == 0.5 and fractions[-1] == 0.9
    assert {(r["stage"], r["epoch"], r["phase"]) for r in run.records} == {("evaluating", 2, 3)}


def test_a_later_part_times_its_eta_from_its_own_first_count(tmp_path: Path) -> None:
    now = [0.0]
    run = _RecordingRun(tmp_path)
    stage = StageProgress(run, None, "mining", (0.0, 1.0), every_s=0.0, clock=lambda: now[0])
    docs, queries = stage_parts(stage, [("", "docs", 3), ("encoding the queries", "queries", 1)])
    now[0] = 100.0
    docs(10, 10)  # the documents took 100 s
    queries(0, 100)  # the queries' clock starts here
    now[0] = 110.0
    queries(50, 100)  # 50 queries in 10 s: 10 s left, not the 200 s the stage's whole time would say
    first, last = run.records[-2], run.records[-1]
    assert first["fraction"] == 0.75 and first["eta_s"] is None and first["stage"] == "mining"
    assert last["fraction"] == 0.875 and last["eta_s"] == 10.0
    assert last["message"] == "mining: encoding the queries · 50/100 queries · ETA 10 s"
