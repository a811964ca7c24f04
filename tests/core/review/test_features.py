"""The candidates frame and the features: margin and s_pos, lexical evidence, the cache, the feedback counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rrra_core.review.features import candidates_frame, feedback_features, load_or_build_features

CORPUS = {
    "d1": ("Paris", "The capital of France is Paris, on the Seine."),
    "d2": ("Paris", "Paris, the French capital on the Seine, hosts the Louvre."),
    "d3": ("Rome", "Rome is the capital of Italy."),
    "d4": ("Bread", "Bread is baked from flour and water."),
}
QUERIES = {"q1": "capital of France", "q2": "baking bread flour"}


def _predictions() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "query_id": ["q1", "q1", "q1", "q2", "q2"],
            "doc_id": ["d1", "d2", "d3", "d4", "d1"],
            "rank": [0, 1, 2, 0, 1],
            "score": [0.9, 0.6, 0.5, 0.8, 0.2],
            "label": [1, 0, 0, 0, 0],
            "p_fn_given_neg": [0.1, 0.2, 0.3, 0.4, 0.5],
            "p_rel": [0.9, 0.2, 0.3, 0.4, 0.5],
        }
    )


def test_candidates_are_the_negatives_with_margin_and_truth() -> None:
    frame = candidates_frame(_predictions(), {"q1": {"d1": 1}, "q2": {"d9": 1}}, {"q1": {"d2"}})
    assert list(frame["doc_id"]) == ["d2", "d3", "d4", "d1"]
    assert frame["s_pos"].tolist() == pytest.approx([0.9, 0.9, 0.2, 0.2])  # q2's positive is not retrieved
    assert frame["margin"].iloc[0] == pytest.approx(0.6 / 0.9)
    assert frame["truth"].tolist() == [True, False, False, False]


def test_lexical_features_and_their_cache(tmp_path: Path) -> None:
    frame = candidates_frame(_predictions(), {"q1": {"d1": 1}, "q2": {"d4": 1}})
    cache = tmp_path / "review_features.parquet"
    full = load_or_build_features(frame, CORPUS, QUERIES, cache)
    q1 = full[full["query_id"] == "q1"].set_index("doc_id")
    assert q1.loc["d3", "q_coverage"] == pytest.approx(0.5)  # "capital" yes, "france" no
    assert q1.loc["d2", "pos_sim"] > q1.loc["d3", "pos_sim"]  # shares "paris" with the positive d1
    assert (full["bm25"] >= 0).all() and set(full["bm25_rank"]) <= {0.0, 1.0}
    assert cache.is_file()
    again = load_or_build_features(frame, CORPUS, QUERIES, cache)
    pd.testing.assert_frame_equal(full, again)
    other = load_or_build_features(frame.iloc[:2].reset_index(drop=True), CORPUS, QUERIES, cache)
    assert len(other) == 2  # a different frame rebuilds instead of misreading the cache


def test_feedback_counts_leave_the_row_itself_out() -> None:
    frame = pd.DataFrame({"query_id": ["a", "a", "a", "b"]})
    fb = feedback_features(frame, {0: True, 1: False})
    assert fb["q_fn"].tolist() == [0, 1, 1, 0]
    assert fb["q_rej"].tolist() == [1, 0, 1, 0]
    assert np.all(feedback_features(frame, {}).to_numpy() == 0)


def test_a_damaged_feature_cache_is_rebuilt(tmp_path: Path) -> None:
    """A cache cut short (a full disk, a copy cut short) is only a cache: it is built again, not a traceback."""
    frame = candidates_frame(_predictions(), {"q1": {"d1": 1}, "q2": {"d4": 1}})
    cache = tmp_path / "review_features.parquet"
    full = load_or_build_features(frame, CORPUS, QUERIES, cache)
    raw = cache.read_bytes()
    cache.write_bytes(raw[: len(raw) // 2])
    again = load_or_build_features(frame, CORPUS, QUERIES, cache)
    pd.testing.assert_frame_equal(full, again)
    assert cache.read_bytes() == raw  # rewritten whole
