"""Where the store lives and how to talk to it: URLs, engines, sessions, migrations.

One setting picks the database: ``--db URL`` on the command line, else the
``RRRA_DB_URL`` environment variable, else an SQLite file in the project's
data folder (``<home>/.rrra/annotations.sqlite``). PostgreSQL URLs go through
psycopg 3. SQLite runs in WAL mode (readers never block the writer) with
foreign keys on, a 30 s busy timeout, and full fsync on commit.

Writes go through :func:`write_transaction`: on SQLite it takes the write lock
up front (``BEGIN IMMEDIATE``), so a transaction that has already read can
never fail half-way with "database is locked", and the whole transaction is
retried if the lock stays busy anyway (or PostgreSQL reports a deadlock or a
serialization failure).
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from rrra_core.runtime.errors import ConfigError
from rrra_core.runtime.paths import home_dir

from .errors import AnnotationError

__all__ = [
    "DB_URL_ENV",
    "default_db_path",
    "resolve_url",
    "display_url",
    "make_engine",
    "session_factory",
    "write_transaction",
    "by_bytes",
    "driver_rows",
]

log = logging.getLogger(__name__)

#: The environment variable holding the database URL.
DB_URL_ENV = "RRRA_DB_URL"
SQLITE_BUSY_TIMEOUT_MS = 30_000
_BEGIN_OPTION = "rrra_sqlite_begin"
_MAX_ATTEMPTS = 12
# PostgreSQL: serialization_failure, deadlock_detected. Both mean "run it again".
_PG_RETRY_STATES = {"40001", "40P01"}
# What SQLite says about a file it cannot read as a database.
_DAMAGED = re.compile(r"malformed|not a database|file is encrypted")

T = TypeVar("T")


def default_db_path() -> Path:
    """The default SQLite file: ``<home>/.rrra/annotations.sqlite``."""
    return home_dir() / ".rrra" / "annotations.sqlite"


def resolve_url(url: str | Path | None = None) -> str:
    """The database URL to use: ``url``, else ``$RRRA_DB_URL``, else the default SQLite file.

    A plain path means an SQLite file; ``postgresql://`` and ``postgres://``
    are routed to psycopg 3. Anything else is a ``ConfigError``.
    """
    import os

    raw = str(url) if url is not None and str(url).strip() else os.environ.get(DB_URL_ENV, "").strip()
    if not raw:
        return URL.create("sqlite", database=str(default_db_path())).render_as_string(hide_password=False)
    if "://" not in raw:
        path = Path(raw).expanduser().resolve()
        return URL.create("sqlite", database=str(path)).render_as_string(hide_password=False)
    try:
        parsed = make_url(raw)
    except ArgumentError:
        raise ConfigError(f"not a database URL: {raw!r}") from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "postgres":
        backend = "postgresql"
    if backend == "postgresql":
        if driver not in ("", "psycopg"):
            raise ConfigError(
                f"PostgreSQL is reached through psycopg 3: use postgresql+psycopg://..., not {parsed.drivername}://"
            )
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if backend == "sqlite":
        if driver not in ("", "pysqlite"):
            raise ConfigError(f"unsupported SQLite driver {driver!r}; use sqlite:///path/to/file.sqlite")
        if not parsed.database or parsed.database == ":memory:":
            raise ConfigError(
                "an in-memory SQLite database would lose every judgment; give a file: sqlite:///path/to/file.sqlite"
            )
        return parsed.set(drivername="sqlite").render_as_string(hide_password=False)
    raise ConfigError(f"unsupported database {parsed.drivername!r}: use an SQLite file or postgresql+psycopg://...")


def display_url(url: str) -> str:
    """``url`` with any password masked, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" hook below emit BEGIN, instead of the driver's
    # implicit one, so a write can ask for BEGIN IMMEDIATE.
    dbapi_connection.isolation_level = None
    cur = dbapi_connection.cursor()
    cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA journal_mode = WAL")
    cur.execute("PRAGMA synchronous = FULL")
    cur.execute("PRAGMA foreign_keys = ON")
    cur.close()


def _sqlite_on_begin(conn: Any) -> None:
    conn.exec_driver_sql(f"BEGIN {conn.get_execution_options().get(_BEGIN_OPTION, 'DEFERRED')}")


def make_engine(url: str | Path | None = None) -> Engine:
    """An engine for the resolved URL (see :func:`resolve_url`); does not create tables.

    Use :func:`db.init_db` to get an engine whose schema is up to date.
    """
    resolved = resolve_url(url)
    parsed = make_url(resolved)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        if not path.parent.is_dir():
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise ConfigError(f"cannot create the folder for {path}: {err.strerror}") from None
        engine = create_engine(resolved, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return create_engine(resolved, pool_pre_ping=True)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit (the app reads them after saving)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def _retryable(err: DBAPIError) -> bool:
    if isinstance(err, OperationalError) and ("database is locked" in str(err) or "database is busy" in str(err)):
        return True
    return getattr(err.orig, "sqlstate", None) in _PG_RETRY_STATES


def write_transaction(session: Session, work: Callable[[], T]) -> T:
    """Run ``work()`` in one write transaction of ``session`` and commit; all or nothing.

    Any transaction already open on the session is committed first, so the
    write starts from a fresh snapshot. On SQLite the transaction begins with
    the write lock held (``BEGIN IMMEDIATE``). If the database is busy, or
    PostgreSQL reports a deadlock or serialization failure, everything is
    rolled back and ``work`` runs again; it must therefore re-read what it
    needs. Any other error rolls back and propagates.
    """
    if session.in_transaction():
        session.commit()
    for attempt in range(1, _MAX_ATTEMPTS + 1):
        try:
            session.connection(execution_options={_BEGIN_OPTION: "IMMEDIATE"})
            result = work()
            session.commit()
            return result
        except DBAPIError as err:
            session.rollback()
            if not _retryable(err) or attempt == _MAX_ATTEMPTS:
                raise
            delay = min(1.0, 0.02 * 2**attempt) * (0.5 + random.random())
            log.debug("write conflict (%s); retry %d in %.2fs", err.orig, attempt, delay)
            time.sleep(delay)
        except BaseException:
            session.rollback()
            raise
    raise AssertionError("unreachable")  # pragma: no cover


def ping(engine: Engine) -> None:
    """Raise ``ConfigError`` with a one-line reason if the database cannot be reached.

    An SQLite file whose header is damaged fails here already: it gets the damaged store's line.
    """
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except DBAPIError as err:
        reason = str(err.orig).strip().splitlines()[0] if err.orig is not None else str(err)
        if engine.url.get_backend_name() == "sqlite" and _DAMAGED.search(reason):
            raise AnnotationError(damaged_message(engine.url.render_as_string(hide_password=False), reason)) from None
        raise ConfigError(
            f"cannot open the annotation database {display_url(str(engine.url.render_as_string(False)))}: {reason}"
        ) from None


def damaged_message(url: str, reason: str) -> str:
    """The one line a damaged SQLite store gets, with the way out (the README's "Recovering a damaged store")."""
    shown = display_url(url)
    path = make_url(url).database or "annotations.sqlite"
    return (
        f"the annotation database {shown} is damaged ({reason}); nothing was read or written. Recover it with "
        f"`sqlite3 {path} .recover | sqlite3 recovered.sqlite` and point --db at the result (README: "
        "Recovering a damaged store)"
    )


def check_integrity(engine: Engine) -> None:
    """Refuse a damaged SQLite file (``PRAGMA quick_check``) in one line; other databases check themselves.

    :func:`db.init_db` runs it on every open, before anything is read or written: a damaged page can hide
    rows from a query instead of failing it, and a write into a damaged file can make it worse. It reads
    the whole file once (about 0.3-0.7 s for 110 MB, 200,000 judgments).
    """
    if engine.url.get_backend_name() != "sqlite":
        return
    url = engine.url.render_as_string(hide_password=False)
    try:
        with engine.connect() as conn:
            rows = [r[0] for r in conn.execute(text("PRAGMA quick_check"))]
    except DBAPIError as err:
        raise AnnotationError(damaged_message(url, _reason(err))) from None
    if rows != ["ok"]:
        # SQLite's first row can span lines ("*** in database main ***\nPage 30: ..."): keep the message one line.
        first = " ".join(str(rows[0]).split()) if rows else "no answer"
        raise AnnotationError(damaged_message(url, f"{len(rows)} problem(s), first: {first}"))


def _reason(err: DBAPIError) -> str:
    return " ".join((str(err.orig) if err.orig is not None else str(err)).split())


def by_bytes(session: Session, column: Any) -> Any:
    """``column`` ordered by bytes (Python's ``str`` order for UTF-8), whatever the server's locale.

    SQLite's BINARY collation already is byte order. PostgreSQL sorts by the
    database's collation: when that is ``C`` (or ``POSIX``) the column is used
    as it is, so an index on it gives the order without a sort; otherwise it is
    told ``COLLATE "C"`` (and sorts).
    """
    if session.get_bind().dialect.name != "postgresql":
        return column
    info = session.info
    if "rrra_byte_order" not in info:
        collate = session.scalar(text("SELECT datcollate FROM pg_database WHERE datname = current_database()"))
        info["rrra_byte_order"] = str(collate) in ("C", "POSIX")
    return column if info["rrra_byte_order"] else column.collate("C")


def driver_rows(session: Session, stmt: Any) -> list[Any]:
    """Every row of ``stmt`` as the driver returns it, run on the session's connection (its transaction).

    For aggregates that hand back hundreds of thousands of plain values (ids,
    counts): SQLAlchemy's result rows cost a third of reading them at a
    million judgments. Parameters are bound as they are (no type processing),
    so ``stmt`` must bind only plain values (text, numbers) and return columns
    that need no conversion.
    """
    conn = session.connection()
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params: Any = compiled.construct_params()
    if conn.dialect.positional:
        params = tuple(params[name] for name in compiled.positiontup or ())
    driver = conn.connection.driver_connection
    assert driver is not None
    cursor = driver.cursor()
    try:
        cursor.execute(str(compiled), params)
        return cursor.fetchall()
    finally:
        cursor.close()
