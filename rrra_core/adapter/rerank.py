"""The adapter's relevance signal for reranking a retrieval run (RRRA.md, "Reranking")."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from rrra_core.adapter.fit import predict_pairs
from rrra_core.adapter.model import RRRAAdapter

__all__ = ["RERANK_SIGNALS", "adapter_rerank_signal", "adapter_rerank_signals"]

#: ``p_rel`` = P(TP) + P(FN); ``qa`` = cos(q, a) mapped to (0, 1].
RERANK_SIGNALS = ("p_rel", "qa")


def adapter_rerank_signal(
    adapter: RRRAAdapter,
    run: Mapping[str, Mapping[str, float]],
    qids: list[str],
    qvecs: np.ndarray,
    doc_ids: list[str],
    dvecs: np.ndarray,
    signal: str,
) -> dict[str, dict[str, float]]:
    """The adapter's relevance in (0, 1] for every (query, doc) of ``run``.

    ``qvecs`` / ``dvecs`` are the rows of ``qids`` / ``doc_ids``; ``signal`` is
    one of :data:`RERANK_SIGNALS`. Feed the result to
    :func:`rrra_core.retrieval.rerank.rerank_run`.
    """
    return adapter_rerank_signals(adapter, run, qids, qvecs, doc_ids, dvecs, (signal,))[signal]


def adapter_rerank_signals(
    adapter: RRRAAdapter,
    run: Mapping[str, Mapping[str, float]],
    qids: list[str],
    qvecs: np.ndarray,
    doc_ids: list[str],
    dvecs: np.ndarray,
    signals: tuple[str, ...] = RERANK_SIGNALS,
) -> dict[str, dict[str, dict[str, float]]]:
    """``{signal: {q: {d: value}}}`` from one pass of the adapter (choosing a rerank tries both signals)."""
    qrow = {q: i for i, q in enumerate(qids)}
    drow = {d: i for i, d in enumerate(doc_ids)}
    pairs = [(q, d) for q, docs in run.items() for d in docs]
    if not pairs:
        return {s: {} for s in signals}
    pred = predict_pairs(
        adapter, qvecs, dvecs, np.array([qrow[q] for q, _ in pairs]), np.array([drow[d] for _, d in pairs])
    )
    out: dict[str, dict[str, dict[str, float]]] = {}
    for signal in signals:
        values = pred["p_rel"] if signal == "p_rel" else (1.0 + pred["qa"]) / 2.0
        into = out.setdefault(signal, {})
        for (q, d), v in zip(pairs, values):
            into.setdefault(q, {})[d] = float(v)
    return out
