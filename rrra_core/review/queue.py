"""The live review queue's scores: any order over a run's candidates, the learnt one read from a saved version.

The app cannot refit inline, so the adaptive orders read what the latest
refit wrote (:mod:`~rrra_core.review.versions`): ``learnt`` (and ``bandit``,
which the refit writes by default) its scores,
``uncertainty`` its model's P(FN). The static orders are computed here, as
:func:`~rrra_core.review.orders.make_order` computes them for the benchmark.
Before a first version exists, both adaptive orders fall back to the adapter
(its P(FN|neg), or that closest to 0.5) and say so.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rrra_core.review.orders import ORDERS, adapter, make_order, uncertainty

__all__ = ["queue_scores"]


def _lookup(frame: pd.DataFrame, version_scores: pd.DataFrame, column: str) -> np.ndarray:
    """``column`` of ``version_scores`` for each row of ``frame`` by (query, doc); NaN where it has none."""
    keyed = version_scores.set_index(["query_id", "doc_id"])[column]
    index = pd.MultiIndex.from_arrays([frame["query_id"].astype(str), frame["doc_id"].astype(str)])
    return keyed.reindex(index).to_numpy(dtype=float)


def queue_scores(
    frame: pd.DataFrame, order: str, version_scores: pd.DataFrame | None = None, seed: int = 0
) -> tuple[np.ndarray, str | None]:
    """One score per row of ``frame`` (higher = show sooner; ``-inf`` = last) and a note when an order falls back.

    ``frame`` is a candidates frame (``query_id``, ``doc_id``, ``score``,
    ``p_fn_given_neg``, ``margin``); ``version_scores`` the latest version's
    ``scores.parquet``, if any. Rows the version did not score (it learnt from
    them) go last.
    """
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}; choose from {', '.join(ORDERS)}")
    if order in ("learnt", "bandit"):  # the refit writes the configured adaptive order (RefitConfig.order)
        if version_scores is None:
            return adapter(frame), "no learnt model yet: the adapter's P(FN|neg) orders the queue until the first refit"
        return np.nan_to_num(_lookup(frame, version_scores, "score"), nan=-np.inf), None
    if order == "uncertainty":
        if version_scores is None or "proba" not in version_scores.columns:
            note = "no fitted model yet: the adapter's P(FN|neg) closest to 0.5 first"
            return uncertainty(adapter(frame)), note
        return np.nan_to_num(uncertainty(_lookup(frame, version_scores, "proba")), nan=-np.inf), None
    return make_order(order, frame, seed=seed)({}).scores, None
