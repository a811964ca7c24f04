"""The run's store reads what the whole-frame readers read: one query, the suspects' count, the top suspects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rrra_core.analysis.candidates import candidates_for, read_predictions, top_suspects
from rrra_core.analysis.run_reader import STORE_DIR, RunStore, build_store, open_store, store_is_current
from rrra_core.runtime.errors import DataError
from rrra_core.speed.scale_run import write_synthetic_run


@pytest.fixture
def run(tmp_path: Path) -> Path:
    write_synthetic_run(tmp_path / "run", n_queries=60, per_query=20, seed=4, block=7)
    return tmp_path / "run"


def test_a_querys_candidates_are_the_whole_frames_rows(run: Path) -> None:
    preds = read_predictions(run / "predictions.parquet")
    store = open_store(run)
    assert store.n_rows == len(preds) and set(store.query_ids) == set(preds["query_id"])
    for q in ("q0000000", "q0000031", "q0000059"):
        want = candidates_for(preds, q)
        got = store.candidates(q)
        pd.testing.assert_frame_equal(got[want.columns], want, check_dtype=False)  # rerank included
    assert store.candidates("no such query").empty


def test_counts_and_top_suspects_match_the_whole_frame(run: Path) -> None:
    preds = read_predictions(run / "predictions.parquet")
    store = open_store(run)
    for threshold in (0.0, 0.2, 0.5, 0.9, 1.0):
        want = int(((preds["label"] == 0) & (preds["p_fn_given_neg"] >= threshold)).sum())
        assert store.count_suspects(threshold) == want
    head = top_suspects(preds, 6)
    exclude = set(zip(head["query_id"], head["doc_id"], strict=True)) - {tuple(head.iloc[1][["query_id", "doc_id"]])}
    cols = ["query_id", "doc_id", "rank", "p_fn_given_neg"]
    for threshold in (0.0, 0.3):
        want = top_suspects(preds, 15, threshold=threshold, exclude=exclude)[cols]
        got = store.top_suspects(15, threshold=threshold, exclude=exclude)[cols]
        pd.testing.assert_frame_equal(got, want, check_dtype=False)


def test_pairs_are_found_within_their_query(run: Path) -> None:
    preds = read_predictions(run / "predictions.parquet")
    store = open_store(run)
    negatives = preds[preds["label"] == 0]
    pairs = list(zip(negatives["query_id"], negatives["doc_id"], strict=True))[::37]
    found = store.negatives_at([*pairs, ("q0000000", "not scored"), ("nobody", "d00000001")])
    assert list(zip(found["query_id"], found["doc_id"], strict=True)) == list(dict.fromkeys(pairs))  # file order
    expected = negatives.drop_duplicates(["query_id", "doc_id"]).set_index(["query_id", "doc_id"])["p_fn_given_neg"]
    assert np.allclose(found["p_fn_given_neg"], [expected[p] for p in zip(found["query_id"], found["doc_id"])])
    positive = preds[preds["label"] == 1].iloc[0]
    assert store.negatives_at([(positive["query_id"], positive["doc_id"])]).empty  # a labelled positive is no negative


def test_a_rescored_run_gets_a_new_store_and_a_damaged_file_one_line(run: Path) -> None:
    build_store(run)
    assert store_is_current(run)
    write_synthetic_run(run, n_queries=10, per_query=20, seed=9)  # scored again: another file
    assert not store_is_current(run)
    assert open_store(run).n_rows == 200
    raw = (run / "predictions.parquet").read_bytes()
    (run / "predictions.parquet").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="predictions.parquet: damaged"):
        open_store(run)
    assert RunStore(run / STORE_DIR).n_rows == 200  # the old store stays whole: nothing half-written
