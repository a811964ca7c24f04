"""The live queue over a run's store orders as the whole frame did, and its counts and next item agree with it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rrra_core.analysis.candidates import read_predictions
from rrra_core.analysis.run_reader import open_store
from rrra_core.review import candidates_frame, queue_scores
from rrra_core.review.live import live_queue, split_mask
from rrra_core.speed.scale_run import write_synthetic_run


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("live") / "run"
    write_synthetic_run(folder, n_queries=40, per_query=25, seed=2, block=9)
    return folder


def _frame_order(run: Path, order: str, scores: pd.DataFrame | None = None) -> list[tuple[str, str]]:
    """The order as the page built it before: the whole frame scored and sorted."""
    frame = candidates_frame(read_predictions(run / "predictions.parquet"), {}).drop(columns=["positives"])
    frame["queue_score"], _ = queue_scores(frame, order, scores, seed=0)
    frame = frame.sort_values(
        ["queue_score", "query_id", "rank", "doc_id"], ascending=[False, True, True, True], kind="stable"
    )
    return list(zip(frame["query_id"], frame["doc_id"], strict=True))


def _live_order(store, live) -> list[tuple[str, str]]:  # noqa: ANN001
    rows = store.negative_rows(live.order)
    return list(zip(rows["query_id"], rows["doc_id"], strict=True))


@pytest.mark.parametrize("order", ["adapter", "retriever", "margin", "random", "uncertainty", "learnt"])
def test_every_order_is_the_whole_frames_order(run: Path, order: str) -> None:
    store = open_store(run)
    assert _live_order(store, live_queue(store, order)) == _frame_order(run, order)


@pytest.mark.parametrize("with_rows", [True, False])
def test_a_versions_scores_order_the_learnt_queue(run: Path, with_rows: bool) -> None:
    store = open_store(run)
    frame = candidates_frame(read_predictions(run / "predictions.parquet"), {})
    scores = frame[["query_id", "doc_id"]].assign(score=np.random.default_rng(5).random(len(frame)))
    scores["proba"] = np.random.default_rng(6).random(len(frame))
    scores = scores.iloc[3:].reset_index(drop=True)  # the version learnt from the first three: they go last
    version = scores
    if with_rows:  # as a refit from the store writes it: each row's place, the ids only for people
        version = scores.assign(row=store.locate(zip(scores["query_id"], scores["doc_id"], strict=True)).row)
        version = version[["row", "score", "proba"]]
    for order in ("learnt", "uncertainty"):
        assert _live_order(store, live_queue(store, order, version)) == _frame_order(run, order, scores)


def test_counts_and_next_item_follow_threshold_split_and_judgments(run: Path) -> None:
    store = open_store(run)
    frame = candidates_frame(read_predictions(run / "predictions.parquet"), {})
    live = live_queue(store, "adapter")
    split = set(sorted(store.query_ids)[::2])
    mask = split_mask(store, split)
    assert split_mask(store, store.query_ids) is None
    threshold = 0.1
    pool = frame[(frame["p_fn_given_neg"] >= threshold) & frame["query_id"].isin(split)]
    assert live.pool_count(store, threshold, mask) == len(pool)
    assert live.pool_count(store, threshold, None) == int((frame["p_fn_given_neg"] >= threshold).sum())
    ordered = [p for p in _frame_order(run, "adapter") if p in set(zip(pool["query_id"], pool["doc_id"]))]
    gone = set(ordered[:3])
    gone_at = store.negative_positions(store.locate(gone).row)
    assert int(live.in_pool(store, gone_at, threshold, mask).sum()) == 3
    first = live.first_open(store, threshold, mask, gone_at)
    item = live.item(store, first)
    assert (item["query_id"], item["doc_id"]) == ordered[3]
    assert item["queue_score"] == pytest.approx(item["p_fn_given_neg"])
    want = frame.set_index(["query_id", "doc_id"]).loc[ordered[3]]
    assert item["s_pos"] == pytest.approx(want["s_pos"]) and item["margin"] == pytest.approx(want["margin"])
    everything = store.negative_positions(store.locate(ordered).row)
    assert live.first_open(store, threshold, mask, everything) is None
