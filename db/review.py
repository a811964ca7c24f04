"""The review queue: which suspected false negatives a person should look at next.

The store does not compute model outputs. The caller passes a run's
candidates (rows of its ``predictions.parquet``: ``query_id``, ``doc_id``,
``rank``, ``score``, ``p_tp``, ``p_fn``, ``p_fp``, ``p_tn``,
``p_fn_given_neg``, usually ``label``); the store filters out what people
have already judged and orders the rest.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from .errors import AnnotationError
from .judgments import judged_pairs

__all__ = ["REVIEW_ORDERS", "review_queue", "p_fn_given_neg", "random_keys"]

#: ``p_fn``: most likely false negative first; ``uncertainty``: P(FN|neg) nearest 0.5 first; ``random``: seeded shuffle.
REVIEW_ORDERS = ("p_fn", "uncertainty", "random")


def random_keys(n: int, seed: int) -> np.ndarray:
    """The ``random`` order's sort keys for ``n`` candidates in tie order (query, rank): a seeded draw.

    A sort on drawn keys rather than ``random.shuffle``, so a run's store can
    draw the same order for millions of candidates in one vectorised call
    (:mod:`db.store_tasks`).
    """
    return np.random.default_rng(seed).random(n)


def p_fn_given_neg(row: Mapping[str, Any]) -> float | None:
    """P(FN | labelled negative) of a candidate: its ``p_fn_given_neg``, else ``p_fn / (p_fn + p_tn)``."""
    value = row.get("p_fn_given_neg")
    if value is not None and not (isinstance(value, float) and math.isnan(value)):
        return float(value)
    p_fn, p_tn = row.get("p_fn"), row.get("p_tn")
    if p_fn is None or p_tn is None:
        return None
    total = float(p_fn) + float(p_tn)
    if math.isnan(total) or total <= 0.0:
        return None
    return float(p_fn) / total


def _rows(candidates: Any) -> list[dict[str, Any]]:
    if hasattr(candidates, "to_dict") and hasattr(candidates, "columns"):  # a pandas DataFrame
        return [dict(r) for r in candidates.to_dict("records")]
    out = []
    for row in candidates:
        if not isinstance(row, Mapping):
            raise AnnotationError(f"review candidates must be mappings (rows), found {type(row).__name__}")
        out.append(dict(row))
    return out


def review_queue(
    session: Session,
    dataset: str,
    candidates: Iterable[Mapping[str, Any]] | Any,
    order: str = "p_fn",
    *,
    threshold: float | None = None,
    query_ids: Collection[str] | None = None,
    annotator: str | None = None,
    exclude_judged: bool = True,
    negatives_only: bool = True,
    limit: int | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """The candidates still to review, best first, as new dicts with ``p_fn_given_neg`` filled in.

    ``candidates`` is an iterable of row mappings or a pandas DataFrame.
    Filters: ``threshold`` keeps rows with P(FN|neg) >= it; ``query_ids``
    keeps a split's or any subset's queries; ``negatives_only`` drops rows
    whose ``label`` says positive (rows without ``label`` stay);
    ``exclude_judged`` drops pairs already judged by ``annotator`` (or by
    anyone, when ``annotator`` is ``None``). ``order`` is one of
    :data:`REVIEW_ORDERS`; ties go by query id then rank, and ``random`` is
    the same for the same ``seed``, so the queue does not reshuffle on every
    page refresh. Rows without a P(FN|neg) sort last.
    """
    if order not in REVIEW_ORDERS:
        raise AnnotationError(f"unknown review order {order!r}: use one of {', '.join(REVIEW_ORDERS)}")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise AnnotationError(f"threshold must be in [0, 1], found {threshold}")
    rows = _rows(candidates)
    for row in rows:
        if "query_id" not in row or "doc_id" not in row:
            raise AnnotationError("review candidates need 'query_id' and 'doc_id'")
        row["query_id"], row["doc_id"] = str(row["query_id"]), str(row["doc_id"])
        row["p_fn_given_neg"] = p_fn_given_neg(row)
    wanted = set(query_ids) if query_ids is not None else None
    done = judged_pairs(session, dataset, annotator=annotator) if exclude_judged else set()
    kept = [
        r
        for r in rows
        if (wanted is None or r["query_id"] in wanted)
        and (not negatives_only or not r.get("label"))
        and (threshold is None or (r["p_fn_given_neg"] is not None and r["p_fn_given_neg"] >= threshold))
        and (r["query_id"], r["doc_id"]) not in done
    ]

    def tie(r: dict[str, Any]) -> tuple[str, float, str]:
        rank = r.get("rank")
        return (r["query_id"], float(rank) if rank is not None else math.inf, r["doc_id"])

    kept.sort(key=tie)
    if order == "random":
        kept = [kept[i] for i in np.argsort(random_keys(len(kept), seed), kind="stable")]
    else:

        def key(r: dict[str, Any]) -> tuple[int, float]:
            p = r["p_fn_given_neg"]
            if p is None:
                return (1, 0.0)
            return (0, -p if order == "p_fn" else abs(p - 0.5))

        kept.sort(key=key)  # stable: ties keep the query/rank order
    return kept[:limit] if limit is not None else kept
