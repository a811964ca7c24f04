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
from typing import Any

from sqlalchemy import delete, exists, func, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from .datasets import check_ids, get_dataset, require_dataset
from .engine import by_bytes, write_transaction
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
    "count_disagreements",
]

_CHUNK = 500  # pairs looked up per query: well under SQLite's limit on bound values

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


def _disputed(dataset_id: int) -> Any:
    """The pairs two or more annotators judged with two or more labels, grouped in the database."""
    return (
        select(Judgment.query_id, Judgment.doc_id)
        .where(Judgment.dataset_id == dataset_id)
        .group_by(Judgment.query_id, Judgment.doc_id)
        # Two labels or more (hence two judgments or more): cheaper than counting distinct labels.
        .having(func.min(Judgment.label) != func.max(Judgment.label))
        .subquery()
    )


def _settled(dataset_id: int, pairs: Any) -> Any:
    return (
        (Adjudication.dataset_id == dataset_id)
        & (Adjudication.query_id == pairs.c.query_id)
        & (Adjudication.doc_id == pairs.c.doc_id)
    )


def count_disagreements(session: Session, dataset: str) -> tuple[int, int]:
    """``(all, open)``: how many pairs are disagreed on, and how many of them are not adjudicated, counted in SQL."""
    ds = get_dataset(session, dataset)
    if ds is None:
        return 0, 0
    disputed = _disputed(ds.id)
    stmt = select(func.count(), func.count(Adjudication.id)).select_from(
        disputed.outerjoin(Adjudication, _settled(ds.id, disputed))
    )
    total, settled = session.execute(stmt).one()
    return int(total), int(total) - int(settled)


def disagreements(
    session: Session, dataset: str, *, open_only: bool = False, offset: int = 0, limit: int | None = None
) -> list[Disagreement]:
    """Pairs two or more annotators judged differently, by query then doc; ``open_only``: not yet adjudicated.

    ``offset`` and ``limit`` page the list in the database: only that page's
    pairs, votes and adjudications are read (:func:`count_disagreements` gives
    the totals a page shows beside it).
    """
    ds = get_dataset(session, dataset)
    if ds is None:
        return []
    disputed = _disputed(ds.id)
    pairs = select(disputed.c.query_id, disputed.c.doc_id)
    if open_only:
        pairs = pairs.where(~exists().where(_settled(ds.id, disputed)))
    cols = (Judgment.query_id, Judgment.doc_id, Judgment.annotator, Judgment.label)
    votes: dict[tuple[str, str], dict[str, str]] = {}
    if offset or limit is not None:
        # Byte order, as Python sorts the ids below: a page holds the same pairs on either backend.
        order = (by_bytes(session, disputed.c.query_id), by_bytes(session, disputed.c.doc_id))
        page = [(q, d) for q, d in session.execute(pairs.order_by(*order).offset(max(0, offset)).limit(limit))]
        # Then only the page's votes and adjudications, looked up by pair.
        rows: list[Any] = []
        settled: dict[tuple[str, str], Adjudication] = {}
        for i in range(0, len(page), _CHUNK):
            chunk = page[i : i + _CHUNK]
            pair_in = tuple_(Judgment.query_id, Judgment.doc_id).in_(chunk)
            rows += session.execute(select(*cols).where(Judgment.dataset_id == ds.id, pair_in)).all()
            adj_in = tuple_(Adjudication.query_id, Adjudication.doc_id).in_(chunk)
            found = session.scalars(select(Adjudication).where(Adjudication.dataset_id == ds.id, adj_in))
            settled.update({(r.query_id, r.doc_id): r for r in found})
    else:
        listed = pairs.subquery()
        on_list = (Judgment.query_id == listed.c.query_id) & (Judgment.doc_id == listed.c.doc_id)
        rows = session.execute(select(*cols).join(listed, on_list).where(Judgment.dataset_id == ds.id)).all()
        settled = adjudications(session, dataset)
    for q, d, who, label in rows:
        votes.setdefault((q, d), {})[who] = label
    out = []
    for (q, d), by_name in sorted(votes.items()):
        adj = settled.get((q, d))
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
