"""People's judgments decided into one verdict per pair under a chosen policy.

The store only supplies the verdicts (:func:`decide`); turning them into
corrected labels is :func:`rrra_core.data.corrections.apply_verdicts`, the one
place that does it, and :func:`merge_labels` is that call on the store's
verdicts. A policy decides, per (query, doc), whether the pair is relevant,
not relevant, or undecided (left as the base qrels say):

* ``majority``: more "relevant" than "not relevant" votes, or the reverse. A tie (one each,
  two each, ...) decides nothing: the pair stays undecided and keeps its base label until someone
  adjudicates it (:data:`MAJORITY_TIE_RULE`). A tie is never broken by order, time or name.
* ``annotator:<name>``: that one person's verdict.
* ``any_relevant``: relevant if anyone said so, else not relevant if anyone said that.

``unsure`` is never a vote. An adjudicated pair (:mod:`db.adjudication`) takes
the adjudicator's verdict under EVERY policy, ``annotator:<name>`` included:
an adjudication is the settled answer, so no policy may overrule it. An
``unsure`` adjudication settles the pair as undecided (base label kept).

A pair decided relevant joins the qrels (its base grade kept, else 1). A pair
decided not relevant leaves the qrels and goes into ``confirmed_negatives``,
never into the qrels as relevance 0: several metric libraries drop zero judgments, and a zero would read as "unjudged"
there. Only judgments on the queries of the base qrels apply (or on
``query_ids`` if given), so a test query's judgment cannot leak into
training labels.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import case, func, null, select
from sqlalchemy.orm import Session

from rrra_core.data.corrections import LabelCorrections, apply_verdicts

from .datasets import get_dataset
from .engine import by_bytes, driver_rows
from .errors import AnnotationError
from .models import Adjudication, Judgment

__all__ = [
    "POLICIES",
    "MAJORITY_TIE_RULE",
    "ADJUDICATION_RULE",
    "parse_policy",
    "policy_verdict",
    "verdict_from_counts",
    "decide",
    "majority_sql",
    "settle",
    "merge_labels",
]

POLICIES = ("majority", "annotator:<name>", "any_relevant")
#: How ``majority`` treats a tie, in words the app and the README show.
MAJORITY_TIE_RULE = (
    "majority: a tie between relevant and not-relevant votes (unsure never counts) decides nothing; "
    "the pair keeps its base label until someone adjudicates it"
)
#: How an adjudication meets the policies, in words the app and the README show.
ADJUDICATION_RULE = (
    "an adjudicated pair takes the adjudicator's verdict under every policy (majority, any_relevant, "
    "annotator:<name>); an 'unsure' adjudication leaves the pair undecided"
)


def parse_policy(policy: str) -> tuple[str, str | None]:
    """``("majority" | "annotator" | "any_relevant", annotator name or None)``; ``AnnotationError`` if unknown."""
    if policy in ("majority", "any_relevant"):
        return policy, None
    kind, sep, name = policy.partition(":")
    if kind == "annotator" and sep and name.strip():
        return "annotator", name.strip()
    raise AnnotationError(f"unknown merge policy {policy!r}: use majority, any_relevant or annotator:<name>")


def _verdict_sql(kind: str, yes: Any, no: Any) -> Any:
    """:func:`verdict_from_counts` in SQL: 1 relevant, 0 not relevant, NULL undecided."""
    if kind == "any_relevant":
        return case((yes > 0, 1), (no > 0, 0), else_=null())
    return majority_sql(yes, no)


def _decided_votes(session: Session, dataset: str, kind: str, annotator: str | None) -> dict[tuple[str, str], bool]:
    """The pairs policy ``kind`` decides from the votes alone, decided in the database (one row a pair).

    ``unsure`` is never a vote. The database groups and decides, so a million
    judgments are one aggregate query; the pairs come in byte order (the
    grouping's own order), which is the order :func:`apply_verdicts` sorts
    them into, so that sort has nothing left to do.
    """
    ds = get_dataset(session, dataset)
    if ds is None:
        return {}
    yes = func.sum(case((Judgment.label == "relevant", 1), else_=0))
    no = func.sum(case((Judgment.label == "not_relevant", 1), else_=0))
    stmt = (
        select(Judgment.query_id, Judgment.doc_id, _verdict_sql(kind, yes, no))
        .where(Judgment.dataset_id == ds.id, Judgment.label != "unsure")
        .group_by(Judgment.query_id, Judgment.doc_id)
        .order_by(by_bytes(session, Judgment.query_id), by_bytes(session, Judgment.doc_id))
    )
    if annotator is not None:
        stmt = stmt.where(Judgment.annotator == annotator)
    return {(q, d): v == 1 for q, d, v in driver_rows(session, stmt) if v is not None}


def majority_sql(yes: Any, no: Any) -> Any:
    """``majority``'s verdict (:func:`verdict_from_counts`) on vote counts in SQL: 1 relevant, 0 not, NULL a tie."""
    return case((yes > no, 1), (yes < no, 0), else_=null())


def verdict_from_counts(kind: str, yes: int, no: int) -> bool | None:
    """What policy ``kind`` makes of a pair's relevant (``yes``) and not-relevant (``no``) votes."""
    if kind == "any_relevant":
        return True if yes else (False if no else None)
    if yes == no:  # majority tie, or (one annotator) nothing but "unsure"
        return None
    return yes > no


def policy_verdict(kind: str, labels: list[str]) -> bool | None:
    """What policy ``kind`` makes of one pair's ``labels`` (no adjudication): relevant, not, or ``None`` (undecided)."""
    return verdict_from_counts(kind, labels.count("relevant"), labels.count("not_relevant"))


def decide(session: Session, dataset: str, policy: str = "majority") -> dict[tuple[str, str], bool]:
    """Every pair the policy decides: ``{(query_id, doc_id): relevant}``, over all queries.

    Adjudicated pairs take the adjudication's verdict whatever the policy (see the module doc).
    """
    kind, name = parse_policy(policy)
    if name is not None:
        ds = get_dataset(session, dataset)
        has_any = ds is not None and session.scalar(
            select(Judgment.id).where(Judgment.dataset_id == ds.id, Judgment.annotator == name).limit(1)
        )
        if not has_any:
            raise AnnotationError(f"annotator {name!r} has no judgments on dataset {dataset!r}")
    return settle(session, dataset, _decided_votes(session, dataset, kind, name))


def settle(session: Session, dataset: str, verdicts: dict[tuple[str, str], bool]) -> dict[tuple[str, str], bool]:
    """``verdicts`` with every adjudication applied over them (in place; returned): what :func:`decide` ends with.

    For a reader that decided the votes in a query of its own (the Overview,
    with :func:`majority_sql`, in the scan that counts the pairs).
    """
    ds = get_dataset(session, dataset)
    if ds is None:
        return verdicts
    # Adjudications last: they overrule every policy's reading of the votes. Columns only, no ORM objects.
    stmt = select(Adjudication.query_id, Adjudication.doc_id, Adjudication.verdict).where(
        Adjudication.dataset_id == ds.id
    )
    for q, d, verdict in session.connection().execute(stmt).all():
        if verdict == "unsure":
            verdicts.pop((q, d), None)
        else:
            verdicts[(q, d)] = verdict == "relevant"
    return verdicts


def merge_labels(
    session: Session,
    dataset: str,
    base_qrels: Mapping[str, Mapping[str, int]],
    policy: str = "majority",
    *,
    query_ids: Collection[str] | None = None,
) -> LabelCorrections:
    """``base_qrels`` corrected by the store's verdicts under ``policy`` (see :func:`apply_verdicts`).

    ``base_qrels`` is not modified. Verdicts apply to the queries of
    ``base_qrels``, or to ``query_ids`` when given (e.g. a split's queries
    that have no positive yet).
    """
    return apply_verdicts(base_qrels, decide(session, dataset, policy), query_ids=query_ids)
