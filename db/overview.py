"""What the Overview shows of the store, read by aggregate queries rather than by loading every judgment.

At a million judgments, loading each one as an ORM object to count distinct
pairs took most of the page's time; the counts here are ``COUNT``/``GROUP BY``
in the database, and the only pairs read are the ones the page needs (the
current annotator's, to leave them out of the suspects list, and the decided
verdicts the calibration and the confirmed-false-negative count share).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .agreement import AgreementResult, agreement
from .datasets import get_dataset
from .errors import AnnotationError
from .judgments import annotator_counts, judged_pairs
from .merge import decide
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


def overview_counts(session: Session, dataset: str, annotator: str | None = None) -> OverviewCounts:
    """Judged pairs, per-annotator counts, agreement (None when undefined), majority verdicts, ``annotator``'s pairs."""
    try:
        agree = agreement(session, dataset)
    except AnnotationError:
        agree = None
    return OverviewCounts(
        judged_pairs=count_judged_pairs(session, dataset),
        annotators=annotator_counts(session, dataset),
        agreement=agree,
        decided=decide(session, dataset, "majority"),
        mine=judged_pairs(session, dataset, annotator=annotator) if annotator else set(),
    )
