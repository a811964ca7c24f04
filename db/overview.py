"""What the Overview shows of the store, read by aggregate queries rather than by loading every judgment.

At a million judgments, loading each one as an ORM object to count distinct
pairs took most of the page's time. Here one ``GROUP BY`` pair, over a covering
index (revision 0009), gives every figure at once: the judged pairs, their
majority verdicts (decided in SQL), the current annotator's pairs (to leave
them out of the suspects list) and agreement's packed vote patterns; the
per-annotator counts are a second, small aggregate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import case, func, literal, select
from sqlalchemy.orm import Session

from .agreement import PACKED_MAX, AgreementResult, agreement, agreement_of_patterns, packed_votes, unpack
from .datasets import get_dataset
from .engine import by_bytes, driver_rows
from .judgments import annotator_counts
from .merge import majority_sql, settle
from .models import Judgment

__all__ = ["OverviewCounts", "count_judged_pairs", "overview_counts"]


@dataclass(frozen=True)
class OverviewCounts:
    """The Overview's labelling progress for one dataset."""

    judged_pairs: int
    annotators: dict[str, dict[str, int]]
    agreement: AgreementResult | None
    decided: dict[tuple[str, str], bool]
    mine: set[tuple[str, str]]


def count_judged_pairs(session: Session, dataset: str) -> int:
    """How many distinct (query, doc) pairs someone judged, counted in the database."""
    ds = get_dataset(session, dataset)
    if ds is None:
        return 0
    pairs = select(Judgment.query_id, Judgment.doc_id).where(Judgment.dataset_id == ds.id).distinct()
    return int(session.scalar(select(func.count()).select_from(pairs.subquery())) or 0)


def _pair_rows(session: Session, dataset_id: int, annotator: str | None, names: tuple[str, ...]) -> list[Any]:
    """Per judged pair: ids, the majority verdict (1, 0, NULL: a tie), whether ``annotator`` judged it, and (for
    agreement) the packed votes of ``names`` and how many judged it; one grouped scan.
    """
    yes = func.sum(case((Judgment.label == "relevant", 1), else_=0))
    no = func.sum(case((Judgment.label == "not_relevant", 1), else_=0))
    mine = func.max(case((Judgment.annotator == annotator, 1), else_=0)) if annotator else literal(0)
    packed = packed_votes(names, Judgment.annotator, Judgment.label) if names else literal(0)
    stmt = (
        select(Judgment.query_id, Judgment.doc_id, majority_sql(yes, no), mine, packed, func.count())
        .where(Judgment.dataset_id == dataset_id)
        .group_by(Judgment.query_id, Judgment.doc_id)
        .order_by(by_bytes(session, Judgment.query_id), by_bytes(session, Judgment.doc_id))  # as db.decide's
    )
    return driver_rows(session, stmt)


def overview_counts(session: Session, dataset: str, annotator: str | None = None) -> OverviewCounts:
    """Judged pairs, per-annotator counts, agreement (None when undefined), majority verdicts, ``annotator``'s pairs.

    The judged pairs, their majority votes, the reader's own pairs and the
    agreement's vote patterns come from one grouped scan (what
    :func:`count_judged_pairs`, :func:`db.decide`, :func:`db.judged_pairs` and
    :func:`db.agreement` each read on their own).
    """
    ds = get_dataset(session, dataset)
    if ds is None:
        return OverviewCounts(0, {}, None, {}, set())
    annotators = annotator_counts(session, dataset)
    names = tuple(sorted(annotators))
    packable = len(names) <= PACKED_MAX
    rows = _pair_rows(session, ds.id, annotator, names if packable else ())
    if packable:
        shared = np.array([r[4] for r in rows if r[5] >= 2], dtype=np.int64)
        packed, items = np.unique(shared, return_counts=True)
        agree = agreement_of_patterns(names, unpack(packed, len(names)), items.astype(np.int64))
    else:
        agree = agreement(session, dataset)
    return OverviewCounts(
        judged_pairs=len(rows),
        annotators=annotators,
        agreement=agree,
        decided=settle(session, dataset, {(r[0], r[1]): r[2] == 1 for r in rows if r[2] is not None}),
        mine={(r[0], r[1]) for r in rows if r[3]} if annotator else set(),
    )
