"""Reranking at inference: fuse the retriever score with the adapter's relevance signal.

``score_i = s_base,i * s_adapter,i ** lambda_rr`` over each query's top-k, in the
equivalent log-linear form ``log s_base + lambda_rr * log s_adapter``. Both factors
are mapped into (0, 1]: ``s_base = (1 + cos) / 2`` and ``s_adapter = P(rel)`` or
``(1 + QA) / 2``. With ``lambda_rr = 0`` the order is exactly the retriever's,
because the fused score is then a strictly increasing function of the cosine
and ties keep their original order.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["to_unit_interval", "fuse_scores", "rerank_order", "rerank_run"]

_EPS = 1e-12


def to_unit_interval(cos: np.ndarray) -> np.ndarray:
    """Map a cosine in [-1, 1] to (0, 1]."""
    return np.clip((1.0 + np.asarray(cos, dtype=np.float64)) / 2.0, _EPS, 1.0)


def fuse_scores(base_cos: np.ndarray, adapter_signal: np.ndarray, lambda_rr: float) -> np.ndarray:
    """log s_base + lambda_rr * log s_adapter; ``adapter_signal`` already in (0, 1]."""
    base = np.log(to_unit_interval(base_cos))
    if lambda_rr == 0:
        return base
    return base + lambda_rr * np.log(np.clip(np.asarray(adapter_signal, dtype=np.float64), _EPS, 1.0))


def rerank_order(base_cos: np.ndarray, adapter_signal: np.ndarray, lambda_rr: float) -> np.ndarray:
    """Indices of the candidates in reranked order (stable: ties keep the retriever's order)."""
    fused = fuse_scores(base_cos, adapter_signal, lambda_rr)
    return np.argsort(-fused, kind="stable")


def rerank_run(
    run: Mapping[str, Mapping[str, float]],
    adapter_signal: Mapping[str, Mapping[str, float]],
    lambda_rr: float,
) -> dict[str, dict[str, float]]:
    """Rerank a run dict; returned scores are rank-based (n, n-1, ..., 1), higher is better.

    ``run`` holds retriever cosines; ``adapter_signal[q][d]`` the adapter's
    relevance in (0, 1] for the same pairs. Candidates are first put in the
    retriever's order (score desc, doc id asc), so ties resolve the same way
    the evaluation breaks them.
    """
    out: dict[str, dict[str, float]] = {}
    for q, docs in run.items():
        ranked = sorted(docs.items(), key=lambda x: (-x[1], x[0]))
        ids = [d for d, _ in ranked]
        cos = np.array([s for _, s in ranked], dtype=np.float64)
        sig = np.array([adapter_signal[q][d] for d in ids], dtype=np.float64)
        fused = fuse_scores(cos, sig, lambda_rr)
        order = np.argsort(-fused, kind="stable")
        # Strictly decreasing output scores encode the order, so any consumer
        # (ir-measures, TREC files) reads back exactly this ranking.
        n = len(order)
        out[q] = {ids[i]: float(n - r) for r, i in enumerate(order)}
    return out
