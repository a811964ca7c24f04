"""Fixtures for the annotation-store tests: every test runs on SQLite and on PostgreSQL.

PostgreSQL comes from ``RRRA_TEST_PG_URL`` (a server where that user may
create databases; ``.ci/run`` starts one). Each test gets a database of its
own, copied from a template migrated once per session, so tests are isolated
and fast. Without the URL the PostgreSQL cases are skipped locally, but FAIL
in CI (``CI=true``): there they must run.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.orm import Session

import db

PG_ENV = "RRRA_TEST_PG_URL"
BACKENDS = ("sqlite", "postgresql")

#: A small dataset the store tests judge: queries q1..q6, docs d1..d20.
TOY_QUERIES = [f"q{i}" for i in range(1, 7)]
TOY_DOCS = [f"d{i}" for i in range(1, 21)]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def pg_admin_url() -> str | None:
    """The PostgreSQL URL from the environment; fails in CI when absent, else skips."""
    url = os.environ.get(PG_ENV, "").strip()
    if url:
        return db.resolve_url(url)
    if in_ci():
        pytest.fail(
            f"{PG_ENV} is not set: in CI the annotation store must be tested against PostgreSQL (.ci/run sets it)"
        )
    pytest.skip(f"PostgreSQL tests need {PG_ENV}=postgresql://user@127.0.0.1:5432/db (see .ci/run)")


def _pg_execute(admin_url: str, sql: str) -> None:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


class PgDatabases:
    """Creates and drops throwaway databases on the test server."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.template: str | None = None

    def create(self, template: str | None = None) -> str:
        name = f"rrra_t_{uuid.uuid4().hex[:12]}"
        _pg_execute(self.admin_url, f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        name = make_url(url).database
        _pg_execute(self.admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PgDatabases]:
    admin = pg_admin_url()
    assert admin is not None
    try:
        _pg_execute(admin, "SELECT 1")
    except Exception as err:  # a configured but unreachable server is a failure, never a skip
        pytest.fail(f"cannot reach PostgreSQL at {db.display_url(admin)}: {err}")
    dbs = PgDatabases(admin)
    template_url = dbs.create()
    engine = db.init_db(template_url)
    engine.dispose()
    dbs.template = make_url(template_url).database
    yield dbs
    dbs.drop(template_url)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite_template") / "annotations.sqlite"
    engine = db.init_db(path)
    with engine.connect() as conn:  # fold the WAL into the main file before copying it
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture()
def empty_db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to a database with no tables at all (for migration tests)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite'}"
        return
    dbs: PgDatabases = request.getfixturevalue("pg_databases")
    url = dbs.create()
    yield url
    dbs.drop(url)


@pytest.fixture()
def new_db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Make fresh databases at the newest schema on the test's backend (dropped afterwards)."""
    made: list[str] = []

    def make() -> str:
        if backend == "sqlite":
            path = tmp_path / f"annotations-{len(made)}.sqlite"
            shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
            url = f"sqlite:///{path}"
        else:
            dbs: PgDatabases = request.getfixturevalue("pg_databases")
            url = dbs.create(template=dbs.template)
        made.append(url)
        return url

    yield make
    if backend == "postgresql":
        for url in made:
            request.getfixturevalue("pg_databases").drop(url)


@pytest.fixture()
def db_url(new_db_url: Callable[[], str]) -> str:
    """A URL to a fresh database already at the newest schema, on the test's backend."""
    return new_db_url()


@pytest.fixture()
def engine(db_url: str) -> Iterator[object]:
    eng = db.init_db(db_url)
    yield eng
    eng.dispose()


@pytest.fixture()
def session(engine) -> Iterator[Session]:  # noqa: ANN001
    with db.session_factory(engine)() as s:
        yield s


@pytest.fixture()
def toy(session: Session) -> str:
    """Register the toy dataset and return its name."""
    db.register_dataset(session, "toy", TOY_QUERIES, TOY_DOCS)
    return "toy"
