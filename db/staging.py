"""Large imports in bounded batches, so that a reviewer's save never waits behind one.

An import used to be one write transaction that wrote its rows one ORM object
at a time: on SQLite it held the single write lock for the whole file (nine
minutes for 96,000 qrels rows) and every save in the app waited, then failed
after its retries. Now, for checked rows (the caller has already refused a
bad file, naming its line, with nothing written):

1. the ids are checked and the import gets an id, a hash of the dataset and
   the rows, so running the same import again finds what it left;
2. the rows are copied into ``staged_judgments`` in batches of at most
   ``batch_rows``, each its own short write transaction, with a pause after
   each one in which any waiting save takes the write lock;
3. one short transaction publishes them with a few set-based statements
   (INSERT ... SELECT, UPDATE ... FROM, no row goes through Python) and
   deletes the staged copy.

No reader looks at staged rows, so the import is still all or nothing for
everyone else: until step 3 commits no row of it is visible, then all are.
An import stopped half-way (a crash, Ctrl-C) leaves only staged rows, which
a rerun of the same file picks up, staging only the rest. An import that fits
in one batch stages into a temporary table and publishes in the same
transaction, leaving nothing behind in the database file.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    FromClause,
    MetaData,
    String,
    Table,
    and_,
    case,
    delete,
    func,
    insert,
    literal,
    literal_column,
    null,
    or_,
    select,
    text,
    true,
    type_coerce,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from .datasets import check_ids, require_dataset
from .engine import write_transaction
from .errors import AnnotationError
from .judgments import JudgmentInput, _insert
from .models import MODEL_VIEW_FIELDS, Judgment, JudgmentEvent, StagedImport, StagedJudgment, UTCDateTime, utcnow

__all__ = ["BATCH_ROWS", "Progress", "import_items"]

#: Rows per staging transaction: a few hundredths of a second of writing, far below the second a save may wait.
BATCH_ROWS = 2000
#: SQLite's busy handler retries a waiting writer at most every 100 ms and serves no queue, so a writer that
#: took the lock back at once could starve a save; a pause this long after each batch lets any waiting save in.
#: PostgreSQL queues lock waiters, and staging holds no lock a save needs, so there it needs no pause.
SQLITE_PAUSE_S = 0.1

_PUBLISH_ATTEMPTS = 5
# The unique key a publish can collide on when a save creates an imported key meanwhile (PostgreSQL).
_JUDGMENT_KEY = "uq_judgments_dataset_id_query_id_doc_id_annotator"

#: ``progress(staged, total)``: called after each staged batch commits.
Progress = Callable[[int, int], None]

_JUDGMENTS = Judgment.__table__
_EVENTS = JudgmentEvent.__table__
_STAGED = StagedJudgment.__table__
# A one-batch import's rows: the staged columns but the import id, in a temporary table (dropped with its
# transaction), so a small import leaves no freed pages behind in the database file.
_TEMP = Table(
    "rrra_import_rows",
    MetaData(),
    *(Column(c.name, c.type, primary_key=c.primary_key) for c in _STAGED.c if c.name != "import_id"),
    prefixes=["TEMPORARY"],
)


class _Published(Exception):
    """Another process ran this very import (same id) and published it while this one was staging."""


def _ordered(items: Sequence[JudgmentInput]) -> list[JudgmentInput]:
    # Key order: publishing then touches judgments in index order, and a rerun numbers the rows the same way.
    ordered = sorted(items, key=lambda it: (it.query_id, it.doc_id, it.annotator))
    for a, b in zip(ordered, ordered[1:]):
        if (a.query_id, a.doc_id, a.annotator) == (b.query_id, b.doc_id, b.annotator):
            raise AnnotationError(
                f"the file judges query {a.query_id!r}, doc {a.doc_id!r} twice for annotator {a.annotator!r}"
            )
    return ordered


def _row(seq: int, item: JudgmentInput) -> dict[str, Any]:
    return {
        "seq": seq,
        "query_id": item.query_id,
        "doc_id": item.doc_id,
        "annotator": item.annotator,
        "label": item.label,
        "note": item.note,
        "has_view": any(value is not None for value in item.model_view.values()),
        **{name: item.model_view.get(name) for name in MODEL_VIEW_FIELDS},
        "created_at": item.created_at,
        "updated_at": item.updated_at,
    }


def _import_id(dataset: str, rows: list[dict[str, Any]]) -> str:
    """The same dataset and rows give the same id: how a rerun finds the batches an earlier attempt staged."""
    digest = hashlib.sha256(json.dumps(dataset).encode())
    for row in rows:
        digest.update(json.dumps(row, default=str, sort_keys=True).encode())
    return digest.hexdigest()


def import_items(
    session: Session,
    dataset: str,
    items: Sequence[JudgmentInput],
    *,
    batch_rows: int = BATCH_ROWS,
    progress: Progress | None = None,
) -> tuple[int, int]:
    """Write checked ``items`` as ``import`` judgments of ``dataset``, all or nothing; ``(rows, changed)``.

    A repeated key or an unknown id raises ``AnnotationError`` before
    anything is written. Up to ``batch_rows`` rows are one transaction;
    more are staged in batches of that size and published at once (module
    docstring). An unchanged row changes nothing and adds no event.
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, got {batch_rows}")
    ordered = _ordered(items)
    if not ordered:
        return 0, 0
    ds = require_dataset(session, dataset)
    dataset_id = ds.id
    check_ids(session, ds, (it.query_id for it in ordered), (it.doc_id for it in ordered))
    rows = [_row(seq, it) for seq, it in enumerate(ordered)]
    if len(rows) <= batch_rows:
        return len(rows), _publish_retrying(session, functools.partial(_publish_at_once, session, dataset_id, rows))
    import_id = _import_id(dataset, rows)
    try:
        _stage(session, import_id, dataset_id, rows, batch_rows, progress)
        changed = _publish_retrying(session, functools.partial(_publish_staged, session, import_id, dataset_id))
    except _Published:
        return len(rows), 0  # the same rows are in: this run changes nothing more
    return len(rows), changed


# --- staging ------------------------------------------------------------------


def _open(session: Session, import_id: str, dataset_id: int, total: int) -> int:
    """How many rows of this import are staged already (0 for a new one, which gets its row here)."""
    found = session.get(StagedImport, import_id, populate_existing=True)
    if found is not None:
        return found.staged
    now = utcnow()
    values = {"id": import_id, "dataset_id": dataset_id, "total": total, "staged": 0, "created_at": now}
    # Do-nothing on conflict: the same import started in another process at the same moment; both then stage.
    stmt = _insert(session)(StagedImport).values(**values, updated_at=now).on_conflict_do_nothing(index_elements=["id"])
    session.execute(stmt)
    return 0


def _stage_batch(session: Session, import_id: str, rows: list[dict[str, Any]], batch_rows: int) -> int:
    """Stage the next ``batch_rows`` rows after those already staged; the new staged count."""
    stmt = select(StagedImport).where(StagedImport.id == import_id).with_for_update()
    found = session.scalars(stmt.execution_options(populate_existing=True)).one_or_none()
    if found is None:
        raise _Published
    # Read the count inside the write transaction: it is the truth even if another process staged meanwhile.
    chunk = rows[found.staged : found.staged + batch_rows]
    if chunk:
        session.execute(insert(_STAGED), [{"import_id": import_id, **row} for row in chunk])
    found.staged += len(chunk)
    found.updated_at = utcnow()
    return found.staged


def _stage(
    session: Session,
    import_id: str,
    dataset_id: int,
    rows: list[dict[str, Any]],
    batch_rows: int,
    progress: Progress | None,
) -> None:
    staged = write_transaction(session, functools.partial(_open, session, import_id, dataset_id, len(rows)))
    pause = SQLITE_PAUSE_S if session.get_bind().dialect.name == "sqlite" else 0.0
    while staged < len(rows):
        staged = write_transaction(session, functools.partial(_stage_batch, session, import_id, rows, batch_rows))
        if progress is not None:
            progress(staged, len(rows))
        time.sleep(pause)


# --- publishing ---------------------------------------------------------------


def _one_snapshot(session: Session) -> None:
    # PostgreSQL: the publishing statements must all see one state of the judgments, as they do under SQLite's
    # write lock. Locking the table would make every save wait for the publish (seconds there: each new row
    # fires three foreign-key triggers); a repeatable-read snapshot lets saves of other keys go on, and a save
    # of an imported key meanwhile makes the publish fail and run again (serialization failure or unique key).
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))


def _publish_retrying(session: Session, work: Callable[[], int]) -> int:
    """``write_transaction(work)``, run again when a save created an imported key after its snapshot."""
    for attempt in range(1, _PUBLISH_ATTEMPTS + 1):
        try:
            return write_transaction(session, work)
        except IntegrityError as err:
            if _JUDGMENT_KEY not in str(err) or attempt == _PUBLISH_ATTEMPTS:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _publish_at_once(session: Session, dataset_id: int, rows: list[dict[str, Any]]) -> int:
    _one_snapshot(session)
    connection = session.connection()
    _TEMP.create(connection)
    session.execute(insert(_TEMP), rows)
    changed = _publish(session, _TEMP.alias("s"), true(), dataset_id)
    _TEMP.drop(connection)
    return changed


def _publish_staged(session: Session, import_id: str, dataset_id: int) -> int:
    _one_snapshot(session)
    found = session.get(StagedImport, import_id, populate_existing=True)
    if found is None:
        raise _Published
    assert found.staged == found.total, (found.staged, found.total)
    source = _STAGED.alias("s")
    changed = _publish(session, source, source.c.import_id == import_id, dataset_id)
    session.execute(delete(_STAGED).where(_STAGED.c.import_id == import_id))
    session.execute(delete(StagedImport.__table__).where(StagedImport.__table__.c.id == import_id))
    return changed


def _iso(session: Session, column: Any) -> ColumnElement[Any]:
    """A stored timestamp as the ISO text ``Judgment.state()`` gives (UTC), in SQL."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(column, literal_column('\'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"\''))
    # SQLite keeps timestamps as 'YYYY-MM-DD HH:MM:SS.ffffff' text.
    return type_coerce(func.replace(column, " ", "T"), String).concat("+00:00")


def _state(session: Session, j: FromClause) -> ColumnElement[Any]:
    """``Judgment.state()`` of the judgment ``j``, as a JSON object built in SQL (an event's ``previous``)."""
    build = func.json_build_object if session.get_bind().dialect.name == "postgresql" else func.json_object
    # The keys inline: PostgreSQL cannot type a bound parameter passed to json_build_object's VARIADIC "any".
    pairs: list[Any] = [literal_column("'label'"), j.c.label, literal_column("'note'"), j.c.note]
    for name in MODEL_VIEW_FIELDS:
        pairs += [literal_column(f"'{name}'"), j.c[name]]
    pairs += [literal_column("'created_at'"), _iso(session, j.c.created_at)]
    pairs += [literal_column("'updated_at'"), _iso(session, j.c.updated_at)]
    return build(*pairs, type_=JSON)


def _publish(session: Session, s: FromClause, where: ColumnElement[bool], dataset_id: int) -> int:
    """Apply the staged rows ``s`` (``where`` picks them) to the judgments, with their events; how many changed.

    What :func:`db.judgments.write_items` does row by row, set-based: a new
    key is inserted, an existing one whose label or note differs is updated
    (its model view only if the row brings one), an equal one is left alone;
    each insert or update gets an ``import`` event holding the state before.
    """
    now = literal(utcnow(), UTCDateTime())
    j = _JUDGMENTS.alias("j")
    key = and_(
        j.c.dataset_id == dataset_id,
        j.c.query_id == s.c.query_id,
        j.c.doc_id == s.c.doc_id,
        j.c.annotator == s.c.annotator,
    )
    joined = s.outerjoin(j, key)
    # Events first: they need each judgment's state before the update.
    event_cols = ["created_at", "dataset_id", "query_id", "doc_id", "annotator", "action"]
    event_cols += ["old_label", "new_label", "note", "previous", *MODEL_VIEW_FIELDS]
    events = (
        select(
            now,
            literal(dataset_id),
            s.c.query_id,
            s.c.doc_id,
            s.c.annotator,
            literal("import"),
            j.c.label,
            s.c.label,
            s.c.note,
            case((j.c.id.is_(None), null()), else_=_state(session, j)),
            *(case((s.c.has_view, s.c[name]), else_=j.c[name]) for name in MODEL_VIEW_FIELDS),
        )
        .select_from(joined)
        .where(where, or_(j.c.id.is_(None), j.c.label != s.c.label, j.c.note != s.c.note))
        .order_by(s.c.seq)
    )
    # preserve_rowcount: SQLAlchemy reports -1 for an INSERT on psycopg unless asked to keep the count.
    stmt = insert(_EVENTS).from_select(event_cols, events).execution_options(preserve_rowcount=True)
    changed = session.execute(stmt).rowcount
    t = _JUDGMENTS
    session.execute(
        update(t)
        .where(t.c.dataset_id == dataset_id, t.c.query_id == s.c.query_id, t.c.doc_id == s.c.doc_id)
        .where(t.c.annotator == s.c.annotator, where, or_(t.c.label != s.c.label, t.c.note != s.c.note))
        .values(
            label=s.c.label,
            note=s.c.note,
            updated_at=func.coalesce(s.c.updated_at, now),
            **{name: case((s.c.has_view, s.c[name]), else_=t.c[name]) for name in MODEL_VIEW_FIELDS},
        )
    )
    new_cols = ["dataset_id", "query_id", "doc_id", "annotator", "label", "note", *MODEL_VIEW_FIELDS]
    new = (
        select(
            literal(dataset_id),
            *(s.c[name] for name in new_cols[1:]),
            func.coalesce(s.c.created_at, now),
            func.coalesce(s.c.updated_at, s.c.created_at, now),
        )
        .select_from(joined)
        .where(where, j.c.id.is_(None))
        .order_by(s.c.seq)
    )
    session.execute(insert(_JUDGMENTS).from_select([*new_cols, "created_at", "updated_at"], new))
    return changed
