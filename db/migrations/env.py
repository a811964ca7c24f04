"""Alembic environment for the annotation store.

Called by :func:`db.migrate.upgrade` with a connection in
``config.attributes["connection"]``; from the ``alembic`` command line
(``-c db/alembic.ini``) it opens the database named by ``RRRA_DB_URL`` or
``sqlalchemy.url``, else the default SQLite file.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from db.models import Base


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite alters tables by copying them; batch mode does that for us.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    if context.is_offline_mode():
        raise SystemExit("offline (--sql) migrations are not supported; run against a database")
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from db.engine import make_engine

    engine = make_engine(context.config.get_main_option("sqlalchemy.url") or None)
    with engine.begin() as conn:
        _run(conn)


main()
