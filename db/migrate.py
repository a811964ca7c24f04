"""Schema migrations with Alembic, run from code (no ``alembic.ini`` needed).

:func:`init_db` is how every entry point opens the store: it brings the
schema to the newest revision, so a database made by an older version of the
tool upgrades in place, keeping its rows. Migrations run in one transaction
holding a lock (SQLite's write lock; a PostgreSQL advisory lock), so two
processes starting at once do not both try to create the tables.

Developers can also run ``alembic -c db/alembic.ini upgrade head`` (the URL
comes from ``RRRA_DB_URL`` or the default file) or make a new revision with
``alembic -c db/alembic.ini revision -m "..."``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from rrra_core.runtime.errors import ConfigError

from .engine import _BEGIN_OPTION, check_integrity, damaged_message, display_url, make_engine, ping
from .errors import AnnotationError

__all__ = ["MIGRATIONS_DIR", "alembic_config", "head_revision", "current_revision", "upgrade", "init_db"]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Any fixed number: the key of the PostgreSQL advisory lock held while migrating.
_PG_MIGRATION_LOCK = 0x52525241

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _quiet_alembic() -> Iterator[None]:
    # Alembic's INFO lines ("Context impl SQLiteImpl.") are noise for users; upgrade() logs what happens.
    logger = logging.getLogger("alembic")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic ``Config`` for the store's migrations, optionally bound to ``connection``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest schema revision this version of the code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The database's schema revision, or ``None`` for an empty database."""
    with engine.connect() as conn, _quiet_alembic():
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database at ``engine`` up to ``revision``, in one locked transaction."""
    known = {s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
    found = current_revision(engine)
    if found is not None and found not in known:
        raise ConfigError(
            f"the annotation database {display_url(engine.url.render_as_string(False))} has schema revision "
            f"{found!r}, which this version of RRRA Studio does not know; upgrade RRRA Studio"
        )
    if found == head_revision() and revision == "head":
        return  # the common case: nothing to do, no lock to take
    log.info("migrating %s from revision %s to %s", display_url(engine.url.render_as_string(False)), found, revision)
    with engine.connect().execution_options(**{_BEGIN_OPTION: "IMMEDIATE"}) as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        try:
            with _quiet_alembic():
                command.upgrade(alembic_config(conn), revision)
        except CommandError as err:
            raise ConfigError(f"cannot migrate the annotation database: {err}") from None


def init_db(url: str | Path | None = None) -> Engine:
    """Open the store at ``url`` (see :func:`db.resolve_url`), creating or upgrading its schema.

    Every command and the app open the store here, so each refuses a damaged SQLite file the same way
    (:func:`db.check_integrity`: one line with the recovery command) before reading or writing it.
    Returns the engine; make sessions with :func:`db.session_factory`.
    """
    engine = make_engine(url)
    try:
        ping(engine)
        check_integrity(engine)
        upgrade(engine, "head")
    except BaseException as err:
        engine.dispose()  # a refused store is closed again: no connection, no SQLite -wal/-shm file left open
        if isinstance(err, DBAPIError) and ("malformed" in str(err.orig) or "not a database" in str(err.orig)):
            raise AnnotationError(
                damaged_message(engine.url.render_as_string(hide_password=False), str(err.orig).splitlines()[0])
            ) from None
        raise
    return engine
