"""Saving, undoing and reading judgments: plain functions taking the session first.

Every write is one transaction holding both the judgment and its event, so
the history and the current state never disagree, and a crash leaves either
all of a batch or none of it. Input is checked before anything is written:
an unknown dataset, query or doc id, an invalid label or an empty annotator
raises :class:`~db.errors.AnnotationError` and the database is untouched.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from .datasets import check_ids, get_dataset, require_dataset
from .engine import write_transaction
from .errors import AnnotationError
from .models import (
    ANNOTATOR_LEN,
    ID_LEN,
    LABELS,
    MODEL_VIEW_FIELDS,
    VERSION_LEN,
    Judgment,
    JudgmentEvent,
    StoredDataset,
    utcnow,
)

__all__ = [
    "JudgmentInput",
    "check_item",
    "write_items",
    "save_judgment",
    "save_judgments",
    "undo_last",
    "get_judgment",
    "list_by_query",
    "list_judgments",
    "list_events",
    "annotator_counts",
    "judged_pairs",
]

_PROBS = ("p_tp", "p_fn", "p_fp", "p_tn")


@dataclass(frozen=True)
class JudgmentInput:
    """One verdict to write, already checked (see :func:`check_item`)."""

    query_id: str
    doc_id: str
    label: str
    annotator: str
    note: str = ""
    model_view: dict[str, Any] = field(default_factory=dict)
    # Imports keep the file's timestamps; saves use the time of saving.
    created_at: datetime | None = None
    updated_at: datetime | None = None


# --- input checks -------------------------------------------------------------


def _check_label(label: Any) -> str:
    if not isinstance(label, str) or label not in LABELS:
        raise AnnotationError(f"invalid label {label!r}: use one of {', '.join(LABELS)}")
    return label


def _check_annotator(annotator: Any) -> str:
    if not isinstance(annotator, str) or not annotator.strip():
        raise AnnotationError("the annotator name is empty; say who is judging")
    name = annotator.strip()
    if len(name) > ANNOTATOR_LEN or any(ch in name for ch in "\t\r\n"):
        raise AnnotationError(f"invalid annotator name {name[:40]!r}: at most {ANNOTATOR_LEN} characters on one line")
    return name


def _check_id(value: Any, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise AnnotationError(f"invalid {what} {value!r}: ids are non-empty strings")
    ident = str(value)
    if len(ident) > ID_LEN:
        raise AnnotationError(f"invalid {what} {ident[:40]!r}...: longer than {ID_LEN} characters")
    return ident


def _optional_float(value: Any, name: str, unit: bool) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise AnnotationError(f"{name} must be a number, found {value!r}") from None
    if math.isnan(number):
        return None
    if unit and not 0.0 <= number <= 1.0:
        raise AnnotationError(f"{name} must be a probability in [0, 1], found {number}")
    if math.isinf(number):
        raise AnnotationError(f"{name} must be finite, found {number}")
    return number


def _check_version(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > VERSION_LEN or "\n" in value:
        raise AnnotationError(f"invalid queue_version {str(value)[:40]!r}: a short version name such as 'v0003'")
    return value.strip()


def _check_model_view(view: Mapping[str, Any] | None) -> dict[str, Any]:
    """The model-view fields of ``view`` (extra keys, e.g. a whole candidate row, are ignored)."""
    out: dict[str, Any] = dict.fromkeys(MODEL_VIEW_FIELDS)
    if not view:
        return out
    run_id = view.get("run_id")
    if run_id is not None:
        out["run_id"] = _check_id(run_id, "run_id")
    for name in _PROBS:
        out[name] = _optional_float(view.get(name), name, unit=True)
    out["score"] = _optional_float(view.get("score"), "score", unit=False)
    out["queue_version"] = _check_version(view.get("queue_version"))
    rank = view.get("rank")
    if rank is not None and not (isinstance(rank, float) and math.isnan(rank)):
        try:
            out["rank"] = int(rank)
        except (TypeError, ValueError):
            raise AnnotationError(f"rank must be an integer, found {rank!r}") from None
        if out["rank"] != rank:
            raise AnnotationError(f"rank must be an integer, found {rank!r}")
    return out


def _check_note(note: Any) -> str:
    if note is None:
        return ""
    if not isinstance(note, str):
        raise AnnotationError(f"a note must be text, found {type(note).__name__}")
    return note


def check_item(item: Mapping[str, Any], run_id: str | None = None) -> JudgmentInput:
    """Check one judgment mapping (see :func:`save_judgments`); ``AnnotationError`` if bad."""
    for key in ("query_id", "doc_id", "label", "annotator"):
        if key not in item:
            raise AnnotationError(f"a judgment needs {key!r}; got keys {', '.join(sorted(map(str, item)))}")
    view = dict(item)
    if run_id is not None and view.get("run_id") is None:
        view["run_id"] = run_id
    return JudgmentInput(
        query_id=_check_id(item["query_id"], "query_id"),
        doc_id=_check_id(item["doc_id"], "doc_id"),
        label=_check_label(item["label"]),
        annotator=_check_annotator(item["annotator"]),
        note=_check_note(item.get("note")),
        model_view=_check_model_view(view),
    )


# --- writing ------------------------------------------------------------------


def _insert(session: Session) -> Any:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def _key(dataset_id: int, item: JudgmentInput) -> Any:
    return (
        (Judgment.dataset_id == dataset_id)
        & (Judgment.query_id == item.query_id)
        & (Judgment.doc_id == item.doc_id)
        & (Judgment.annotator == item.annotator)
    )


def _lock_current(session: Session, dataset_id: int, item: JudgmentInput) -> Judgment | None:
    # FOR UPDATE serialises writers of one key on PostgreSQL (SQLite holds the whole write lock already).
    stmt = (
        select(Judgment)
        .where(_key(dataset_id, item))
        .with_for_update(of=Judgment)
        .execution_options(populate_existing=True)
    )
    return session.scalars(stmt).unique().one_or_none()


def _write_one(
    session: Session, dataset: StoredDataset, item: JudgmentInput, action: str, now: datetime
) -> tuple[Judgment, bool]:
    """Upsert one judgment and append its event; ``(row, changed)``. Runs inside a write transaction."""
    row = _lock_current(session, dataset.id, item)
    if row is None:
        created = item.created_at or now
        values = {
            "dataset_id": dataset.id,
            "query_id": item.query_id,
            "doc_id": item.doc_id,
            "annotator": item.annotator,
            "label": item.label,
            "note": item.note,
            **item.model_view,
            "created_at": created,
            "updated_at": item.updated_at or created,
        }
        # Insert-or-nothing: if another transaction created the row meanwhile,
        # lock that row and update it instead of failing on the unique key.
        stmt = (
            _insert(session)(Judgment)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["dataset_id", "query_id", "doc_id", "annotator"])
            .returning(Judgment.id)
        )
        # Values bound through the ORM column types (UTC timestamps) by executing via the session.
        new_id = session.execute(stmt).scalar_one_or_none()
        if new_id is not None:
            inserted = session.get(Judgment, new_id, populate_existing=True)
            assert inserted is not None
            _add_event(session, dataset, item, action, now, None, inserted)
            return inserted, True
        row = _lock_current(session, dataset.id, item)
        assert row is not None
    if action == "import" and row.label == item.label and row.note == item.note:
        return row, False  # re-importing the same file changes nothing and adds no history
    previous = row.state()
    row.label = item.label
    row.note = item.note
    if any(value is not None for value in item.model_view.values()):
        # A save without a model view (e.g. only the note changed) keeps the one recorded before.
        for name, value in item.model_view.items():
            setattr(row, name, value)
    row.updated_at = item.updated_at or now
    _add_event(session, dataset, item, action, now, previous, row)
    return row, True


def _add_event(
    session: Session,
    dataset: StoredDataset,
    item: JudgmentInput,
    action: str,
    now: datetime,
    previous: dict[str, Any] | None,
    row: Judgment,
) -> None:
    session.add(
        JudgmentEvent(
            created_at=now,
            dataset_id=dataset.id,
            query_id=item.query_id,
            doc_id=item.doc_id,
            annotator=item.annotator,
            action=action,
            old_label=None if previous is None else previous["label"],
            new_label=item.label,
            note=item.note,
            previous=previous,
            **{name: getattr(row, name) for name in MODEL_VIEW_FIELDS},
        )
    )


def write_items(session: Session, dataset: str, items: list[JudgmentInput], action: str) -> list[tuple[Judgment, bool]]:
    """Check ids, then upsert every item with its event in one transaction (all or nothing); ``[(row, changed)]``.

    Items are written in key order, so two batches touching the same keys
    lock them in the same order and cannot deadlock on PostgreSQL.
    """
    ordered = sorted(items, key=lambda it: (it.query_id, it.doc_id, it.annotator))
    keys = [(it.query_id, it.doc_id, it.annotator) for it in ordered]
    if len(set(keys)) != len(keys):
        dup = next(k for i, k in enumerate(keys) if keys.index(k) != i)
        raise AnnotationError(f"the batch judges query {dup[0]!r}, doc {dup[1]!r} twice for annotator {dup[2]!r}")

    def work() -> list[tuple[Judgment, bool]]:
        ds = require_dataset(session, dataset)
        check_ids(session, ds, (it.query_id for it in ordered), (it.doc_id for it in ordered))
        now = utcnow()
        return [_write_one(session, ds, it, action, now) for it in ordered]

    return write_transaction(session, work)


def save_judgment(
    session: Session,
    dataset: str,
    query_id: str,
    doc_id: str,
    label: str,
    annotator: str,
    *,
    note: str = "",
    model_view: Mapping[str, Any] | None = None,
    run_id: str | None = None,
) -> Judgment:
    """Record ``annotator``'s verdict on (query, doc) and its event, in one transaction; commits.

    Saving again updates the same judgment (one per dataset, query, doc and
    annotator). ``model_view`` is what the model said about the pair when it
    was judged: pass the review-queue row as is (``run_id``, ``p_tp``,
    ``p_fn``, ``p_fp``, ``p_tn``, ``rank``, ``score``, ``queue_version`` are
    taken, other keys ignored); ``run_id`` fills in the run if the row has
    none. ``queue_version`` names the learnt queue's model version that showed
    the pair (``v0003``). Raises
    ``AnnotationError`` and writes nothing on bad input.
    """
    view = {name: value for name, value in (model_view or {}).items() if name in MODEL_VIEW_FIELDS}
    item = check_item(
        {**view, "query_id": query_id, "doc_id": doc_id, "label": label, "annotator": annotator, "note": note},
        run_id=run_id,
    )
    return write_items(session, dataset, [item], "save")[0][0]


def save_judgments(
    session: Session, dataset: str, items: Iterable[Mapping[str, Any]], *, run_id: str | None = None
) -> list[Judgment]:
    """Save a batch of verdicts in ONE transaction: after a crash, all of them or none.

    Each item is a mapping with ``query_id``, ``doc_id``, ``label`` and
    ``annotator``, optionally ``note`` and the model-view fields (see
    :func:`save_judgment`). Every item is checked before anything is written.
    """
    checked = [check_item(item, run_id=run_id) for item in items]
    if not checked:
        return []
    return [row for row, _ in write_items(session, dataset, checked, "save")]


class _UndoRace(Exception):
    """Another undo reverted the save this one was about to revert."""


def undo_last(session: Session, dataset: str, annotator: str) -> JudgmentEvent | None:
    """Revert ``annotator``'s latest save on ``dataset`` that is not yet undone; commits.

    The judgment goes back to exactly what it was before that save (or is
    deleted if the save created it), and an ``undo`` event records the change.
    Repeated calls step further back. Returns the undo event, or ``None`` when
    there is nothing left to undo. Imports are not undone one row at a time:
    if an import changed the judgment after the save, this refuses.
    """
    who = _check_annotator(annotator)

    def work() -> JudgmentEvent | None:
        ds = require_dataset(session, dataset)
        undo = aliased(JudgmentEvent)
        target = session.scalars(
            select(JudgmentEvent)
            .where(
                JudgmentEvent.dataset_id == ds.id,
                JudgmentEvent.annotator == who,
                JudgmentEvent.action == "save",
                ~exists().where(undo.reverts_event_id == JudgmentEvent.id),
            )
            .order_by(JudgmentEvent.id.desc())
            .limit(1)
        ).first()
        if target is None:
            return None
        key = JudgmentInput(target.query_id, target.doc_id, target.new_label or "", who)
        row = _lock_current(session, ds.id, key)
        if session.scalar(select(exists().where(JudgmentEvent.reverts_event_id == target.id))):
            raise _UndoRace  # a simultaneous undo took this save while we waited for the row
        if row is None or row.label != target.new_label:
            raise AnnotationError(
                f"cannot undo {who}'s last save on query {target.query_id!r}, doc {target.doc_id!r}: "
                "the judgment was changed by an import since"
            )
        current = row.state()
        before = target.previous
        if before is None:
            session.delete(row)
        else:
            row.label = before["label"]
            row.note = before["note"]
            for name in MODEL_VIEW_FIELDS:
                setattr(row, name, before.get(name))
            row.updated_at = datetime.fromisoformat(before["updated_at"])
        event = JudgmentEvent(
            created_at=utcnow(),
            dataset_id=ds.id,
            query_id=target.query_id,
            doc_id=target.doc_id,
            annotator=who,
            action="undo",
            old_label=current["label"],
            new_label=None if before is None else before["label"],
            note=None if before is None else before["note"],
            previous=current,
            reverts_event_id=target.id,
            **{name: (None if before is None else before.get(name)) for name in MODEL_VIEW_FIELDS},
        )
        session.add(event)
        session.flush()
        return event

    for _ in range(5):
        try:
            return write_transaction(session, work)
        except _UndoRace:
            continue
        except IntegrityError as err:
            # Another undo by the same annotator reverted that save first (unique
            # reverts_event_id); look again for the next one.
            if "reverts_event_id" not in str(err):
                raise
    raise AnnotationError(f"could not undo for {who}: too many simultaneous undos")


# --- reading ------------------------------------------------------------------


def get_judgment(session: Session, dataset: str, query_id: str, doc_id: str, annotator: str) -> Judgment | None:
    """``annotator``'s current judgment of (query, doc), or ``None``."""
    ds = get_dataset(session, dataset)
    if ds is None:
        return None
    stmt = select(Judgment).where(
        Judgment.dataset_id == ds.id,
        Judgment.query_id == query_id,
        Judgment.doc_id == doc_id,
        Judgment.annotator == annotator,
    )
    return session.scalars(stmt).unique().one_or_none()


def list_judgments(
    session: Session,
    dataset: str | None = None,
    *,
    annotator: str | None = None,
    query_ids: Collection[str] | None = None,
) -> list[Judgment]:
    """Current judgments, optionally of one dataset, annotator or set of queries, in a stable order."""
    stmt = select(Judgment)
    if dataset is not None:
        ds = get_dataset(session, dataset)
        if ds is None:
            return []
        stmt = stmt.where(Judgment.dataset_id == ds.id)
    if annotator is not None:
        stmt = stmt.where(Judgment.annotator == annotator)
    rows = list(
        session.scalars(
            stmt.order_by(Judgment.dataset_id, Judgment.query_id, Judgment.doc_id, Judgment.annotator)
        ).unique()
    )
    if query_ids is not None:
        wanted = set(query_ids)
        rows = [r for r in rows if r.query_id in wanted]
    return rows


def list_by_query(session: Session, dataset: str, query_id: str, *, annotator: str | None = None) -> list[Judgment]:
    """Every current judgment of one query (all annotators, or one), by doc then annotator."""
    ds = get_dataset(session, dataset)
    if ds is None:
        return []
    stmt = select(Judgment).where(Judgment.dataset_id == ds.id, Judgment.query_id == query_id)
    if annotator is not None:
        stmt = stmt.where(Judgment.annotator == annotator)
    return list(session.scalars(stmt.order_by(Judgment.doc_id, Judgment.annotator)).unique())


def list_events(
    session: Session, dataset: str | None = None, *, annotator: str | None = None, limit: int | None = None
) -> list[JudgmentEvent]:
    """The history, oldest first; with ``limit``, only the newest ``limit`` events."""
    stmt = select(JudgmentEvent)
    if dataset is not None:
        ds = get_dataset(session, dataset)
        if ds is None:
            return []
        stmt = stmt.where(JudgmentEvent.dataset_id == ds.id)
    if annotator is not None:
        stmt = stmt.where(JudgmentEvent.annotator == annotator)
    if limit is not None:
        newest = list(session.scalars(stmt.order_by(JudgmentEvent.id.desc()).limit(limit)).unique())
        return newest[::-1]
    return list(session.scalars(stmt.order_by(JudgmentEvent.id)).unique())


def count_events(session: Session, dataset: str) -> int:
    """How many events the history of ``dataset`` holds, counted in the database (``stats`` at a million rows)."""
    ds = get_dataset(session, dataset)
    if ds is None:
        return 0
    return int(session.scalar(select(func.count()).where(JudgmentEvent.dataset_id == ds.id)) or 0)


def annotator_counts(session: Session, dataset: str | None = None) -> dict[str, dict[str, int]]:
    """``{annotator: {"relevant": n, "not_relevant": n, "unsure": n, "total": n}}`` of current judgments."""
    stmt = select(Judgment.annotator, Judgment.label, func.count()).group_by(Judgment.annotator, Judgment.label)
    if dataset is not None:
        ds = get_dataset(session, dataset)
        if ds is None:
            return {}
        stmt = stmt.where(Judgment.dataset_id == ds.id)
    out: dict[str, dict[str, int]] = {}
    for who, label, n in session.execute(stmt):
        counts = out.setdefault(who, {**dict.fromkeys(LABELS, 0), "total": 0})
        counts[label] += n
        counts["total"] += n
    return dict(sorted(out.items()))


def judged_pairs(session: Session, dataset: str, *, annotator: str | None = None) -> set[tuple[str, str]]:
    """The (query, doc) pairs with a current judgment (by anyone, or by ``annotator``)."""
    ds = get_dataset(session, dataset)
    if ds is None:
        return set()
    stmt = select(Judgment.query_id, Judgment.doc_id).where(Judgment.dataset_id == ds.id)
    if annotator is not None:
        stmt = stmt.where(Judgment.annotator == annotator)
    return {(q, d) for q, d in session.execute(stmt)}
