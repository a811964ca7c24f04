"""The live review queue over a run's store: the order as positions, the next item and the counts, per rerun.

The page used to build a frame of every labelled negative, order it, then filter
it by threshold, split and judged pairs on every rerun (6 s to open at 1M
candidates, 0.9 s per judgment). Here an order is one array of positions into
the store's labelled negatives (:class:`~rrra_core.analysis.run_reader.RunStore`:
``neg_p``, ``neg_score``, ``neg_margin``, ``neg_query``, ``neg_src``,
``adapter_order``), built once per order and queue version; a rerun then walks
its head to the first item still open, and counts with a few vectorised
comparisons. The orders are :func:`~rrra_core.review.queue.queue_scores`' own
(ties by query, then rank), so the queue shows what it showed before.

The store is taken as is (duck-typed), so this module needs nothing from the
read models above it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from rrra_core.review.orders import ORDERS, uncertainty

__all__ = ["LiveQueue", "live_queue", "split_mask", "version_scores_by_position", "VERSION_COLUMN"]

#: The column of a queue version's scores each adaptive order reads (the live queue reads no other).
VERSION_COLUMN = {"learnt": "score", "bandit": "score", "uncertainty": "proba"}


@dataclass(frozen=True)
class LiveQueue:
    """An order over a store's labelled negatives: ``order`` (positions, best first) and its ``scores``."""

    order: np.ndarray  # (n_negatives,) positions into the store's negatives' arrays, best first
    scores: np.ndarray  # (n_negatives,) queue_score by position
    note: str | None

    def pool_count(self, store: Any, threshold: float, mask: np.ndarray | None) -> int:
        """Suspects at or above ``threshold`` in the split (``mask`` by query index; ``None``: every query)."""
        if mask is None:
            return int(store.count_suspects(threshold))
        return int(np.count_nonzero((np.asarray(store.neg_p) >= threshold) & mask[np.asarray(store.neg_query)]))

    def in_pool(self, store: Any, positions: np.ndarray, threshold: float, mask: np.ndarray | None) -> np.ndarray:
        """Which ``positions`` are suspects at ``threshold`` in the split."""
        positions = np.asarray(positions, dtype=np.int64)
        keep = np.asarray(store.neg_p[positions]) >= threshold
        if mask is not None:
            keep &= mask[np.asarray(store.neg_query[positions])]
        return keep

    def first_open(
        self, store: Any, threshold: float, mask: np.ndarray | None, gone: np.ndarray, step: int = 4096
    ) -> int | None:
        """The position of the best item in the pool that is not in ``gone``; ``None`` when none is left."""
        gone = np.asarray(gone, dtype=np.int64)
        for at in range(0, len(self.order), step):
            chunk = np.asarray(self.order[at : at + step])
            keep = self.in_pool(store, chunk, threshold, mask) & ~np.isin(chunk, gone)
            if keep.any():
                return int(chunk[np.argmax(keep)])
        return None

    def item(self, store: Any, position: int) -> dict[str, Any]:
        """The item at ``position`` as the page shows and saves it: the predictions row with ``s_pos``, ``margin``
        and ``queue_score``."""
        row = store.negative_rows(np.array([position])).iloc[0].to_dict()
        q = int(store.neg_query[position])
        row.update(s_pos=float(store.s_pos[q]), margin=float(store.neg_margin[position]))
        row["queue_score"] = float(self.scores[position])
        return row


def split_mask(store: Any, split_queries: Iterable[str]) -> np.ndarray | None:
    """Per query of the store: is it in the split; ``None`` when all are (the counts then need no mask)."""
    wanted = set(split_queries)
    mask = np.fromiter((q in wanted for q in store.query_ids), dtype=bool, count=len(store.query_ids))
    return None if mask.all() else mask


def _original_order(store: Any) -> np.ndarray:
    """Position -> its index among the labelled negatives in the predictions file's order (the old frame's row)."""
    src_order = np.argsort(np.asarray(store.neg_src), kind="stable")
    index = np.empty(len(src_order), dtype=np.int64)
    index[src_order] = np.arange(len(src_order))
    return index


def version_scores_by_position(store: Any, scores: pd.DataFrame, column: str) -> np.ndarray:
    """``column`` of a version's scores per negative position; NaN where the version has none (it learnt from them).

    A version written from the store carries each row's candidate ``row``; an older one is matched by (query, doc).
    """
    out = np.full(store.n_negatives, np.nan)
    rows = scores["row"].to_numpy(dtype=np.int64) if "row" in scores.columns else None
    if rows is None:
        rows = store.locate(zip(scores["query_id"], scores["doc_id"], strict=True)).row
    pos = np.searchsorted(np.asarray(store.neg_row), rows)
    np.clip(pos, 0, max(store.n_negatives - 1, 0), out=pos)  # in place: at 10M rows each copy is 80 MB
    ok = (rows >= 0) & (np.asarray(store.neg_row[pos]) == rows) if store.n_negatives else np.zeros(0, bool)
    out[pos[ok]] = scores[column].to_numpy(dtype=float)[ok]
    return out


def _scores(store: Any, order: str, version: pd.DataFrame | None, seed: int) -> tuple[np.ndarray, str | None]:
    p = np.asarray(store.neg_p, dtype=float)
    if order in ("learnt", "bandit"):
        if version is None:
            return p, "no learnt model yet: the adapter's P(FN|neg) orders the queue until the first refit"
        return np.nan_to_num(version_scores_by_position(store, version, "score"), nan=-np.inf), None
    if order == "uncertainty":
        if version is None or "proba" not in version.columns:
            return uncertainty(p), "no fitted model yet: the adapter's P(FN|neg) closest to 0.5 first"
        return np.nan_to_num(uncertainty(version_scores_by_position(store, version, "proba")), nan=-np.inf), None
    if order == "adapter":
        return p, None
    if order == "retriever":
        return np.asarray(store.neg_score, dtype=float), None
    if order == "margin":
        return np.asarray(store.neg_margin, dtype=float), None
    if order == "random":  # the seeded shuffle over the negatives in the file's order, as the whole frame drew it
        return np.random.default_rng(seed).random(store.n_negatives)[_original_order(store)], None
    raise ValueError(f"unknown order {order!r} for the live queue; choose from {', '.join(ORDERS)}")


def live_queue(store: Any, order: str, version_scores: pd.DataFrame | None = None, seed: int = 0) -> LiveQueue:
    """The queue of ``order`` over ``store``'s labelled negatives (as :func:`~rrra_core.review.queue.queue_scores`).

    The positions are in (query, rank) order, so a stable sort on the score breaks ties by query, then rank,
    as the page's sort did.
    """
    scores, note = _scores(store, order, version_scores, seed)
    if order == "adapter":
        ranked = np.asarray(store.adapter_order)
    else:
        ranked = np.argsort(-scores, kind="stable")
    return LiveQueue(ranked, scores, note)
