"""Task exports read from a run's store pick what the whole frame picks, item for item and byte for byte (issue 27).

The whole-frame path (:func:`db.exports.select_tasks`, every candidate as a
dict) and the store path (:func:`db.store_tasks.select_store_tasks`) run on
one small synthetic run whose P(FN|neg) is rounded to one decimal, so ties are
everywhere and the tie rules (query, then rank; the file lists queries out of
order) decide most of the order; people judged some of its negatives, a
positive and pairs the run never scored.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sqlalchemy.orm import Session

import db
from db.exports import TaskChoice, select_tasks, write_tasks
from db.store_tasks import file_column_names, judged_positions, select_store_tasks, store_can_select
from rrra_core.analysis.run_reader import open_store
from rrra_core.data import Doc
from rrra_core.speed.scale_run import doc_name, query_name, write_synthetic_run

N_QUERIES, PER_QUERY = 40, 25
NAME = "synth"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("synthetic") / "run"
    path = write_synthetic_run(run, N_QUERIES, PER_QUERY, seed=3)
    table = pq.read_table(path)
    rounded = np.round(table.column("p_fn_given_neg").to_numpy(), 1)  # ties on P(FN|neg) everywhere
    table = table.set_column(table.column_names.index("p_fn_given_neg"), "p_fn_given_neg", [rounded])
    pq.write_table(table, path)
    return run


@pytest.fixture()
def judged(session: Session, run_dir: Path) -> list[tuple[str, str]]:
    """Judgments on the run's likeliest negatives, low ones, a positive, and pairs it never scored."""
    frame = pd.read_parquet(run_dir / "predictions.parquet")
    negatives = frame[frame["label"] == 0].sort_values("p_fn_given_neg", ascending=False)
    positive = frame[frame["label"] == 1].iloc[0]
    pairs = [(r.query_id, r.doc_id) for r in negatives.head(9).itertuples()]
    pairs += [(r.query_id, r.doc_id) for r in negatives.tail(4).itertuples()]
    pairs += [(positive.query_id, positive.doc_id), (query_name(0), doc_name(10**6 - 1)), ("q-unscored", "d-x")]
    queries = sorted({*frame["query_id"], "q-unscored"})
    docs = sorted({*frame["doc_id"], doc_name(10**6 - 1), "d-x"})
    db.register_dataset(session, NAME, queries, docs)
    items = [
        {"query_id": q, "doc_id": d, "label": ("relevant", "not_relevant", "unsure")[i % 3], "annotator": "ana"}
        for i, (q, d) in enumerate(pairs)
    ]
    items.append({**items[0], "annotator": "bo"})  # one pair judged twice
    db.save_judgments(session, NAME, items)
    return pairs


def _same(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    return all(x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))
               for x, y in ((a[k], b[k]) for k in a))  # fmt: skip


def _corpus(frame: pd.DataFrame) -> tuple[dict[str, Doc], dict[str, str]]:
    docs = {d: Doc(title=f"T {d}" if i % 2 else "", text=f"text of {d} é") for i, d in enumerate(frame["doc_id"])}
    docs.update({doc_name(10**6 - 1): Doc("", "far"), "d-x": Doc("", "x")})
    queries = {q: f"what about {q}?" for q in [*frame["query_id"], "q-unscored"]}
    return docs, queries


CHOICES = [
    TaskChoice(select, order, threshold, limit, include)
    for select, order, threshold, limit, include in itertools.product(
        ("queue", "suspects"), ("p_fn", "uncertainty", "random"), (None, 0.0, 0.3, 0.9, 1.0), (0, 1, 7), (False, True)
    )
] + [TaskChoice("judged", limit=limit) for limit in (0, 1, 7)]  # fmt: skip


def test_the_store_picks_the_whole_frames_tasks_item_for_item_and_byte_for_byte(
    session: Session, run_dir: Path, judged: list[tuple[str, str]], tmp_path: Path
) -> None:
    predictions = run_dir / "predictions.parquet"
    frame = pd.read_parquet(predictions)
    candidates = frame.to_dict("records")  # what the CLI's whole-frame path hands select_tasks
    store = open_store(run_dir)
    names = file_column_names(predictions)
    assert names == {"p_tp": "p_TP", "p_fn": "p_FN", "p_fp": "p_FP", "p_tn": "p_TN"} and store_can_select(store)
    corpus, queries = _corpus(frame)
    sizes = set()
    for i, choice in enumerate(CHOICES):
        want, want_n = select_tasks(session, NAME, candidates, choice)
        rows, n = select_store_tasks(session, NAME, store, choice, names=names)
        got = list(rows)
        assert n == want_n, choice
        assert len(got) == len(want) and all(_same(a, b) for a, b in zip(got, want, strict=True)), choice
        sizes.add((choice.select, len(got), n))
        fmt = ("label-studio", "argilla")[i % 2]
        write_tasks(tmp_path / "whole.json", fmt, NAME, corpus, queries, want, run_id="r")
        write_tasks(tmp_path / "store.json", fmt, NAME, corpus, queries, got, run_id="r")
        assert (tmp_path / "store.json").read_bytes() == (tmp_path / "whole.json").read_bytes(), choice
    # The choices were not all empty or all capped: the caps, the thresholds and the judged pairs all bit.
    negatives = int((frame["label"] == 0).sum())
    assert ("queue", negatives - 13, negatives - 13) in sizes and ("queue", 7, negatives) in sizes
    assert ("judged", len(judged), len(judged)) in sizes and ("judged", 1, len(judged)) in sizes
    assert any(s == "suspects" and 7 < n < negatives - 13 for s, _, n in sizes)


def test_judged_pairs_are_found_among_the_negatives(session: Session, run_dir: Path, judged: list) -> None:
    store = open_store(run_dir)
    positions = judged_positions(store, judged)
    assert len(positions) == 13  # the negatives only: not the positive, not the pairs the run never scored
    rows = store.negative_rows(positions)
    assert set(zip(rows["query_id"], rows["doc_id"], strict=True)) == set(judged[:13])
    assert judged_positions(store, []).size == 0 and judged_positions(store, [("nope", "nada")]).size == 0


def test_a_capped_export_reads_only_the_rows_it_writes(
    session: Session, run_dir: Path, judged: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rows come from the store a batch at a time as they are written, never every candidate."""
    store = open_store(run_dir)
    read: list[int] = []
    original = type(store).negative_rows

    def counted(self, positions):  # noqa: ANN001, ANN202
        read.append(len(positions))
        return original(self, positions)

    monkeypatch.setattr(type(store), "negative_rows", counted)
    for order in ("p_fn", "uncertainty", "random"):
        read.clear()
        rows, selected = select_store_tasks(session, NAME, store, TaskChoice("queue", order, limit=5))
        assert read == []  # nothing read before the writer asks
        assert len(list(rows)) == 5 and read == [5] and selected > 5
    monkeypatch.setattr("db.store_tasks.READ_BATCH", 64)
    read.clear()
    rows, selected = select_store_tasks(session, NAME, store, TaskChoice("queue", limit=0))
    first = next(rows)
    assert read == [64] and first["p_fn_given_neg"] is not None
    assert 1 + sum(1 for _ in rows) == selected and read == [64] * (selected // 64) + [selected % 64]


def _beir_folder(frame: pd.DataFrame, folder: Path) -> Path:
    """The synthetic run's queries and documents as a BEIR folder (the command line loads the texts from one)."""
    docs, queries = _corpus(frame)
    (folder / "qrels").mkdir(parents=True)
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as fh:
        fh.writelines(json.dumps({"_id": d, "title": doc.title, "text": doc.text}) + "\n" for d, doc in docs.items())
    with (folder / "queries.jsonl").open("w", encoding="utf-8") as fh:
        fh.writelines(json.dumps({"_id": q, "text": text}) + "\n" for q, text in queries.items())
    positives = frame[frame["label"] == 1]
    lines = [f"{q}\t{d}\t1\n" for q, d in zip(positives["query_id"], positives["doc_id"], strict=True)]
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(lines), encoding="utf-8")
    return folder


def test_the_command_line_exports_from_the_store_with_progress(
    db_url: str, run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """``--predictions <run>/predictions.parquet`` selects from the store (never reading every candidate), says how
    far a long export is on stderr, and writes the bytes the whole frame gives for a copy outside the run folder."""
    import db.cli
    import db.exports
    from db.cli import main as cli_main

    frame = pd.read_parquet(run_dir / "predictions.parquet")
    folder = _beir_folder(frame, tmp_path / "synthetic-data")
    loose = tmp_path / "loose" / "predictions.parquet"
    loose.parent.mkdir()
    loose.write_bytes((run_dir / "predictions.parquet").read_bytes())
    monkeypatch.setattr(db.exports, "PROGRESS_EVERY", 100)
    base = ["--db", db_url, "export", "--dataset", str(folder), "--split", "test", "--format", "argilla"]
    for flags in (["--limit", "0"], ["--order", "uncertainty", "--limit", "250"], ["--select", "suspects"]):
        capsys.readouterr()
        with monkeypatch.context() as m:
            m.setattr(db.cli, "_read_candidates", lambda path: pytest.fail(f"read every candidate of {path}"))
            out = tmp_path / "store.json"
            in_run = ["--predictions", str(run_dir / "predictions.parquet")]
            assert cli_main([*base, "--out", str(out), *in_run, *flags]) == 0
        err = capsys.readouterr()
        whole = tmp_path / "whole.json"
        assert cli_main([*base, "--out", str(whole), "--predictions", str(loose), *flags]) == 0
        assert out.read_bytes() == whole.read_bytes(), flags
        written = len(json.loads(out.read_bytes())["records"])
        assert f"wrote argilla tasks to {out}: {written:,} of" in err.out
        assert err.err.count("tasks written") == written // 100, err.err
    assert written > 0 and not (loose.parent / "reader").exists()
