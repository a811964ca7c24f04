"""The browser's pure logic over a predictions table: rerank positions, suspects, search, verdicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rrra_core.analysis.candidates import (
    candidates_for,
    known_false_negatives,
    predicted_class,
    read_predictions,
    search_queries,
    top_suspects,
    with_rerank,
)
from rrra_core.runtime.errors import DataError


def _preds() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "query_id": ["q1"] * 4 + ["q2"] * 2,
            "doc_id": ["a", "b", "c", "d", "a", "e"],
            "rank": [0, 1, 2, 3, 0, 1],
            "score": [0.9, 0.8, 0.8, 0.1, 0.5, 0.4],
            "label": [1, 0, 0, 0, 1, 0],
            "p_TP": [0.7, 0.1, 0.0, 0.0, 0.6, 0.0],
            "p_FN": [0.0, 0.6, 0.2, 0.1, 0.0, 0.9],
            "p_FP": [0.3, 0.0, 0.0, 0.0, 0.4, 0.0],
            "p_TN": [0.0, 0.3, 0.8, 0.9, 0.0, 0.1],
            "p_fn_given_neg": [0.0, 0.667, 0.2, 0.1, 0.0, 0.9],
            "p_rel": [0.9, 0.99, 0.1, 0.5, 0.8, 0.9],
        }
    )


def test_read_predictions_normalises_columns_and_adds_rerank(tmp_path: Path) -> None:
    path = tmp_path / "predictions.parquet"
    _preds().to_parquet(path)
    df = read_predictions(path)
    assert {"p_tp", "p_fn", "p_fp", "p_tn", "rerank"} <= set(df.columns)
    q1 = candidates_for(df, "q1")
    assert q1["doc_id"].tolist() == ["a", "b", "c", "d"]
    # b (cos 0.8, P(rel) 0.99) overtakes a (0.9, 0.9); c falls below d.
    assert q1.set_index("doc_id")["rerank"].to_dict() == {"b": 0, "a": 1, "d": 2, "c": 3}


def test_lambda_zero_keeps_the_retriever_order_ties_included() -> None:
    df = with_rerank(_preds().rename(columns=str.lower), lambda_rr=0.0)
    assert (df["rerank"] == df["rank"]).all()


@pytest.mark.parametrize(
    "content,match",
    [(None, "no predictions file"), (b"not parquet", "not a readable parquet"), ("cols", "missing column")],
)
def test_bad_prediction_files_are_one_line_data_errors(tmp_path: Path, content, match: str) -> None:
    path = tmp_path / "predictions.parquet"
    if content == "cols":
        _preds().drop(columns=["p_rel"]).to_parquet(path)
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=match) as err:
        read_predictions(path)
    assert "\n" not in str(err.value)


def test_top_suspects_are_negatives_by_p_fn_skipping_judged_pairs() -> None:
    df = with_rerank(_preds().rename(columns=str.lower))
    top = top_suspects(df, 3)
    assert list(zip(top["query_id"], top["doc_id"])) == [("q2", "e"), ("q1", "b"), ("q1", "c")]
    top = top_suspects(df, 3, threshold=0.5, exclude={("q2", "e")})
    assert list(zip(top["query_id"], top["doc_id"])) == [("q1", "b")]


def test_search_queries_by_id_prefix_and_words() -> None:
    queries = {"10": "what is dense retrieval", "1": "false negatives in training", "2": "dense vectors"}
    assert search_queries(queries, "1") == ["1", "10"]
    assert search_queries(queries, "DENSE retrieval") == ["10"]
    assert search_queries(queries, "dense", within=["2"]) == ["2"]
    assert search_queries(queries, "   ", limit=2) == ["10", "1"]


def test_predicted_class_is_conditioned_on_the_label() -> None:
    df = _preds().rename(columns=str.lower)
    assert predicted_class(df).tolist() == ["TP", "FN", "TN", "TN", "TP", "FN"]


def test_squad_ships_answer_bearing_false_negatives_and_adi_none() -> None:
    fns = known_false_negatives("squad", "train")
    assert len(fns) > 100 and all(isinstance(v, set) for v in fns.values())
    assert known_false_negatives("adi", "test") == {}
    assert np.mean([len(v) for v in fns.values()]) >= 1
