"""Disagreements between annotators, and the adjudications that settle them.

A pair is *disagreed on* when two or more annotators judged it and their
labels are not all the same (``unsure`` counts as a label here, as it does in
:mod:`db.agreement`). Someone then records an *adjudication*: the pair's
settled verdict, one per (dataset, query, doc), replaced when recorded again.
Every merge policy takes an adjudicated pair's verdict over the votes
(:func:`db.merge.decide`); an ``unsure`` adjudication settles the pair as
undecided, so it keeps its base label. An adjudicated pair leaves the open
list (:func:`disagreements` with ``open_only``).

One of the people who disagreed may settle the pair, but it must not pass
for an outside view: such an adjudication is recorded with the note
:data:`SELF_NOTE` in front of the adjudicator's own, and
:attr:`Disagreement.self_adjudicated` says so for older rows too. In team
mode (``other_adjudicators`` given) it is refused outright while someone
else may adjudicate, and recorded with :data:`SOLE_NOTE` when nobody else can.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, distinct, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from .datasets import check_ids, get_dataset, require_dataset
from .engine import write_transaction
from .errors import AnnotationError
from .judgments import check_item
from .models import Adjudication, Judgment, utcnow

__all__ = [
    "SELF_NOTE",
    "SOLE_NOTE",
    "Disagreement",
    "adjudicate",
    "clear_adjudication",
    "adjudications",
    "disagreements",
]

#: Recorded in front of the note of an adjudication made by someone who judged the pair.
SELF_NOTE = "adjudicated by one of the annotators"
#: In team mode, what follows :data:`SELF_NOTE` when the adjudicator may settle their own pair: nobody else can.
SOLE_NOTE = f"{SELF_NOTE}, the only adjudicator"


@dataclass(frozen=True)
class Disagreement:
    """One pair annotators disagree on: everyone's label by name, and its adjudication if any."""

    query_id: str
    doc_id: str
    votes: dict[str, str]  # {annotator: label}, by name
    verdict: str | None = None  # the adjudicated verdict, None while open
    adjudicator: str | None = None
    note: str = ""
    adjudicated_at: datetime | None = None

    @property
    def settled(self) -> bool:
        return self.verdict is not None

    @property
    def self_adjudicated(self) -> bool:
        """Whether the adjudicator is one of the people who disagreed."""
        return self.adjudicator is not None and self.adjudicator in self.votes


def with_self_note(note: str, lead: str = SELF_NOTE) -> str:
    """``note`` led by ``lead`` (:data:`SELF_NOTE`, once)."""
    if note.startswith(SELF_NOTE):
        return note
    return f"{lead}: {note}" if note.strip() else lead


def adjudicate(
    session: Session,
    dataset: str,
    query_id: str,
    doc_id: str,
    verdict: str,
    adjudicator: str,
    *,
    note: str = "",
    other_adjudicators: bool | None = None,
) -> Adjudication:
    """Record ``adjudicator``'s settled ``verdict`` on (query, doc), replacing any earlier one; commits.

    Checked like a judgment (known ids, a valid label, a non-empty name);
    ``AnnotationError`` and nothing written on bad input. When the adjudicator
    judged the pair themselves, the note is recorded led by :data:`SELF_NOTE`.
    ``other_adjudicators`` (team mode: whether anyone else may adjudicate) makes
    that a refusal when ``True``, and the note :data:`SOLE_NOTE` when ``False``.
    """
    # The same checks a judgment gets, so an adjudication can never hold what a judgment could not.
    item = check_item(
        {"query_id": query_id, "doc_id": doc_id, "label": verdict, "annotator": adjudicator, "note": note}
    )

    def work() -> Adjudication:
        ds = require_dataset(session, dataset)
        check_ids(session, ds, [item.query_id], [item.doc_id])
        own = session.scalar(
            select(Judgment.id)
            .where(
                Judgment.dataset_id == ds.id,
                Judgment.query_id == item.query_id,
                Judgment.doc_id == item.doc_id,
                Judgment.annotator == item.annotator,
            )
            .limit(1)
        )
        if own is not None and other_adjudicators:
            raise AnnotationError(
                f"{item.annotator} judged this pair: another adjudicator settles it (an outside view)"
            )
        lead = SOLE_NOTE if other_adjudicators is False else SELF_NOTE
        note = with_self_note(item.note, lead) if own is not None else item.note
        now = utcnow()
        insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        stmt = insert(Adjudication).values(
            dataset_id=ds.id,
            query_id=item.query_id,
            doc_id=item.doc_id,
            verdict=item.label,
            adjudicator=item.annotator,
            note=note,
            created_at=now,
            updated_at=now,
        )
        # One upsert: two people settling the same pair at once cannot fail on the unique key; the last one wins.
        stmt = stmt.on_conflict_do_update(
            index_elements=["dataset_id", "query_id", "doc_id"],
            set_={"verdict": item.label, "adjudicator": item.annotator, "note": note, "updated_at": now},
        ).returning(Adjudication.id)
        row_id = session.execute(stmt).scalar_one()
        row = session.get(Adjudication, row_id, populate_existing=True)
        assert row is not None
        return row

    return write_transaction(session, work)


def clear_adjudication(session: Session, dataset: str, query_id: str, doc_id: str) -> bool:
    """Remove the pair's adjudication (it reopens); whether there was one. Commits."""

    def work() -> bool:
        ds = require_dataset(session, dataset)
        done = session.execute(
            delete(Adjudication).where(
                Adjudication.dataset_id == ds.id, Adjudication.query_id == query_id, Adjudication.doc_id == doc_id
            )
        )
        return bool(done.rowcount)

    return write_transaction(session, work)


def adjudications(session: Session, dataset: str) -> dict[tuple[str, str], Adjudication]:
    """Every adjudication of ``dataset``: ``{(query_id, doc_id): row}``."""
    ds = get_dataset(session, dataset)
    if ds is None:
        return {}
    rows = session.scalars(select(Adjudication).where(Adjudication.dataset_id == ds.id))
    return {(r.query_id, r.doc_id): r for r in rows}


def disagreements(session: Session, dataset: str, *, open_only: bool = False) -> list[Disagreement]:
    """Pairs two or more annotators judged differently, by query then doc; ``open_only``: not yet adjudicated."""
    ds = get_dataset(session, dataset)
    if ds is None:
        return []
    votes: dict[tuple[str, str], dict[str, str]] = {}
    # Only the disputed pairs' votes leave the database: two or more judgments with two or more labels.
    disputed = (
        select(Judgment.query_id, Judgment.doc_id)
        .where(Judgment.dataset_id == ds.id)
        .group_by(Judgment.query_id, Judgment.doc_id)
        .having(func.count() > 1, func.count(distinct(Judgment.label)) > 1)
        .subquery()
    )
    stmt = (
        select(Judgment.query_id, Judgment.doc_id, Judgment.annotator, Judgment.label)
        .join(disputed, (Judgment.query_id == disputed.c.query_id) & (Judgment.doc_id == disputed.c.doc_id))
        .where(Judgment.dataset_id == ds.id)
    )
    for q, d, who, label in session.execute(stmt):
        votes.setdefault((q, d), {})[who] = label
    settled = adjudications(session, dataset)
    out = []
    for (q, d), by_name in sorted(votes.items()):
        if len(by_name) < 2 or len(set(by_name.values())) < 2:
            continue
        adj = settled.get((q, d))
        if adj is not None and open_only:
            continue
        out.append(
            Disagreement(
                q,
                d,
                dict(sorted(by_name.items())),
                verdict=None if adj is None else adj.verdict,
                adjudicator=None if adj is None else adj.adjudicator,
                note="" if adj is None else adj.note,
                adjudicated_at=None if adj is None else adj.updated_at,
            )
        )
    return out
