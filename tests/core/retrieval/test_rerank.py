from __future__ import annotations

import numpy as np

from rrra_core.retrieval.evaluation import evaluate, rank_run
from rrra_core.retrieval.rerank import fuse_scores, rerank_order, rerank_run, to_unit_interval


def _random_run(rng: np.random.Generator, n_q: int = 20, k: int = 50) -> tuple[dict, dict]:
    run, signal = {}, {}
    for q in range(n_q):
        scores = rng.uniform(-1, 1, size=k).round(2)  # rounding makes ties, the hard case
        run[f"q{q}"] = {f"d{j}": float(s) for j, s in enumerate(scores)}
        signal[f"q{q}"] = {f"d{j}": float(v) for j, v in enumerate(rng.uniform(0.01, 1, size=k))}
    return run, signal


def test_lambda_zero_reproduces_the_base_ranking_exactly() -> None:
    run, signal = _random_run(np.random.default_rng(0))
    reranked = rerank_run(run, signal, 0.0)
    for q in run:
        base_order = [d for d, _ in rank_run({q: run[q]})[q]]
        new_order = [d for d, _ in rank_run({q: reranked[q]})[q]]
        assert new_order == base_order
    qrels = {q: {"d1": 1, "d7": 2} for q in run}
    assert evaluate(qrels, reranked) == evaluate(qrels, run)


def test_positive_lambda_follows_the_adapter() -> None:
    cos = np.array([0.9, 0.8, 0.7])
    signal = np.array([0.01, 0.5, 0.99])
    assert rerank_order(cos, signal, 0.0).tolist() == [0, 1, 2]
    assert rerank_order(cos, signal, 5.0).tolist() == [2, 1, 0]
    # log-linear form equals the product form s_base * s_adapter^lambda
    fused = fuse_scores(cos, signal, 2.0)
    assert np.allclose(np.exp(fused), to_unit_interval(cos) * signal**2.0)


def test_scores_map_into_unit_interval() -> None:
    u = to_unit_interval(np.array([-1.0, 0.0, 1.0]))
    assert (u > 0).all() and (u <= 1).all() and u[1] == 0.5
