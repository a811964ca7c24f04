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


def test_several_queries_rows_are_the_whole_frames_filter_in_file_order(run: Path) -> None:
    """The embedding map's sample: a filter of the whole frame by its queries, read from their row groups only."""
    preds = read_predictions(run / "predictions.parquet")
    store = open_store(run)
    assert store.scored_queries() == list(dict.fromkeys(preds["query_id"]))
    picked = ["q0000042", "q0000003", "q0000017", "not scored"]
    want = preds[preds["query_id"].isin(picked)].reset_index(drop=True)
    pd.testing.assert_frame_equal(store.query_rows(picked)[want.columns], want, check_dtype=False)
    assert store.query_rows(["not scored"]).empty and store.query_rows([]).empty


def test_pair_rows_are_the_listed_pairs_rows_positive_or_negative(run: Path) -> None:
    """The Disagreements page's model view: each listed pair's row, whatever its label; unscored pairs left out."""
    preds = read_predictions(run / "predictions.parquet")
    store = open_store(run)
    picked = preds.iloc[[5, 300, 17, 999, 5]]
    assert set(picked["label"]) == {0, 1}
    pairs = [*zip(picked["query_id"], picked["doc_id"], strict=True), ("q0000000", "not scored"), ("nobody", "d1")]
    got = store.pair_rows(pairs)
    want = picked.drop_duplicates(["query_id", "doc_id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got[want.columns], want, check_dtype=False)
    assert store.pair_rows([]).empty


def test_pool_overlap_counts_what_joining_the_two_frames_counts(run: Path, tmp_path: Path) -> None:
    """The Overview's note on a retrained run: shared pairs and suspects by each run, from the two stores."""
    from rrra_core.analysis.pool_overlap import pool_overlap

    base = read_predictions(run / "predictions.parquet")
    rng = np.random.default_rng(0)
    # A retrained run: part of the base's pool (re-mined), rescored on another scale, some labels corrected,
    # new pairs (an unseen document, an unseen query), in another order.
    kept = base.sample(frac=0.6, random_state=1).drop(columns="rerank")
    kept["p_fn_given_neg"] = rng.random(len(kept)) ** 0.5
    flip = kept.index[kept["label"] == 0][:25]
    kept.loc[flip, "label"] = 1
    new = kept.iloc[:30].assign(doc_id=[f"new{i}" for i in range(30)])
    other = kept.iloc[30:40].assign(query_id="unseen query")
    retrained = pd.concat([kept, new, other]).sample(frac=1.0, random_state=2)
    (tmp_path / "retrained").mkdir()
    retrained.to_parquet(tmp_path / "retrained" / "predictions.parquet", index=False)
    preds = read_predictions(tmp_path / "retrained" / "predictions.parquet")

    overlap = pool_overlap(open_store(tmp_path / "retrained"), open_store(run))
    keys = ["query_id", "doc_id"]
    shared = preds[[*keys, "label", "p_fn_given_neg"]].merge(
        base[[*keys, "label", "p_fn_given_neg"]], on=keys, suffixes=("", "_base")
    )
    assert overlap.n_shared == len(shared) == len(kept)  # the new document and the unseen query are not shared
    for threshold in (0.0, 0.3, 0.5, 0.9, 1.0):
        was = int(((shared["label_base"] == 0) & (shared["p_fn_given_neg_base"] >= threshold)).sum())
        now = int(((shared["label"] == 0) & (shared["p_fn_given_neg"] >= threshold)).sum())
        assert (overlap.suspects_by_base(threshold), overlap.suspects_by_run(threshold)) == (was, now)
    assert overlap.suspects_by_base(0.0) > overlap.suspects_by_run(0.0)  # the corrected labels are no suspects
    alone = pool_overlap(open_store(run), open_store(run))
    assert alone.n_shared == len(base) and alone.suspects_by_run(0.5) == open_store(run).count_suspects(0.5)


def test_scattered_rows_are_read_a_batch_of_row_groups_at_a_time(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows over many row groups, asked in any order (repeats too), come back in that order, as one read gives."""
    import rrra_core.analysis.run_reader as run_reader

    monkeypatch.setattr(run_reader, "ROW_GROUP", 37)  # 1,200 rows in 33 groups
    build_store(run)
    store = open_store(run)
    assert len(store._group_starts) > 30
    rows = np.random.default_rng(0).integers(0, store.n_rows, 300)
    whole = store.rows(0, store.n_rows).reset_index(drop=True)
    monkeypatch.setattr(run_reader, "_TAKE_GROUPS", 4)  # 9 batches
    got = store.rows_at(rows)
    pd.testing.assert_frame_equal(got, whole.iloc[rows].reset_index(drop=True)[got.columns], check_dtype=False)
