"""Schema migrations: a database made by an older version upgrades in place, keeping every row."""

from __future__ import annotations

import json

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

import db
from db.migrate import alembic_config
from rrra_core.runtime.errors import ConfigError

OLD = "0001"

# Rows as the 0001 version of the store wrote them (no model view, no label check yet); ids come from the database.
_ROWS = [
    "INSERT INTO datasets (name, source, n_queries, n_docs, created_at) "
    "VALUES ('toy', NULL, 2, 3, '2025-01-02 03:04:05.000006')",
    "INSERT INTO dataset_queries (dataset_id, query_id) VALUES (1, 'q1'), (1, 'q2')",
    "INSERT INTO dataset_docs (dataset_id, doc_id) VALUES (1, 'd1'), (1, 'd2'), (1, 'd3')",
    "INSERT INTO judgments (dataset_id, query_id, doc_id, annotator, label, note, created_at, updated_at) VALUES "
    "(1, 'q1', 'd1', 'alice', 'relevant', 'clear match', '2025-01-02 03:04:05', '2025-01-02 03:05:00'), "
    "(1, 'q2', 'd3', 'bob', 'not_relevant', '', '2025-01-02 03:04:05', '2025-01-02 03:04:05')",
    "INSERT INTO judgment_events "
    "(created_at, dataset_id, query_id, doc_id, annotator, action, old_label, new_label, note, previous) VALUES "
    "('2025-01-02 03:04:05', 1, 'q1', 'd1', 'alice', 'save', NULL, 'not_relevant', '', NULL), "
    "('2025-01-02 03:05:00', 1, 'q1', 'd1', 'alice', 'save', 'not_relevant', 'relevant', 'clear match', :previous), "
    "('2025-01-02 03:04:05', 1, 'q2', 'd3', 'bob', 'save', NULL, 'not_relevant', '', NULL)",
]
_PREVIOUS = {
    "label": "not_relevant",
    "note": "",
    "created_at": "2025-01-02T03:04:05+00:00",
    "updated_at": "2025-01-02T03:04:05+00:00",
}


def _dump(engine, table: str) -> list[tuple]:  # noqa: ANN001
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(f"SELECT * FROM {table} ORDER BY 1, 2"))]


def test_an_old_database_upgrades_without_loss(empty_db_url: str) -> None:
    engine = db.make_engine(empty_db_url)
    try:
        db.upgrade(engine, OLD)
        assert db.current_revision(engine) == OLD
        with engine.begin() as conn:
            for sql in _ROWS:
                conn.execute(text(sql), {"previous": json.dumps(_PREVIOUS)})
        before = {
            t: _dump(engine, t) for t in ("datasets", "dataset_queries", "dataset_docs", "judgments", "judgment_events")
        }
    finally:
        engine.dispose()

    engine = db.init_db(empty_db_url)  # what any entry point does on start
    try:
        assert db.current_revision(engine) == db.head_revision() != OLD
        for table, rows in before.items():
            after = _dump(engine, table)
            width = len(rows[0])
            assert [r[:width] for r in after] == rows, table  # old columns untouched, in order
            if table in ("judgments", "judgment_events"):
                assert all(v is None for r in after for v in r[width:])  # the new model-view columns start empty

        with db.session_factory(engine)() as session:
            j = db.get_judgment(session, "toy", "q1", "d1", "alice")
            assert (j.label, j.note, j.run_id, j.created_at.isoformat()) == (
                "relevant",
                "clear match",
                None,
                "2025-01-02T03:04:05+00:00",
            )
            # The upgraded store keeps working: undo reverts the pre-upgrade save using its stored state.
            db.undo_last(session, "toy", "alice")
            assert db.get_judgment(session, "toy", "q1", "d1", "alice").label == "not_relevant"
            db.save_judgment(session, "toy", "q2", "d2", "unsure", "bob", model_view={"p_fn": 0.5})
            assert len(db.list_events(session, "toy")) == 5
        assert "training_jobs" not in inspect(engine).get_table_names()  # 0003: jobs live in run folders

        # 0002 added a CHECK on labels (SQLite had to copy the table for it): it holds.
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text("UPDATE judgments SET label = 'maybe' WHERE id = 2"))
    finally:
        engine.dispose()


def test_0003_drops_the_training_jobs_table_and_keeps_the_judgments(empty_db_url: str) -> None:
    engine = db.make_engine(empty_db_url)
    try:
        db.upgrade(engine, "0002")
        with engine.begin() as conn:
            for sql in _ROWS:
                conn.execute(text(sql), {"previous": json.dumps(_PREVIOUS)})
            conn.execute(
                text(
                    "INSERT INTO training_jobs (run_id, status, progress, message, created_at, updated_at) "
                    "VALUES ('r1', 'running', 0.4, 'step 3/10', '2025-01-02 03:04:05', '2025-01-02 03:04:05')"
                )
            )
        judgments = _dump(engine, "judgments")
        db.upgrade(engine, "0003")
        assert db.current_revision(engine) == "0003"
        assert "training_jobs" not in inspect(engine).get_table_names()
        assert _dump(engine, "judgments") == judgments
        # Downgrading gives the (empty) table back, as 0002 made it.
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0002")
        assert db.current_revision(engine) == "0002"
        assert "training_jobs" in inspect(engine).get_table_names()
        assert _dump(engine, "training_jobs") == []
    finally:
        engine.dispose()


def test_0004_adds_the_queue_version_and_downgrades_without_loss(empty_db_url: str) -> None:
    engine = db.make_engine(empty_db_url)
    try:
        db.upgrade(engine, "0003")
        with engine.begin() as conn:
            for sql in _ROWS:
                conn.execute(text(sql), {"previous": json.dumps(_PREVIOUS)})
        before = {t: _dump(engine, t) for t in ("judgments", "judgment_events")}
        db.upgrade(engine, "0004")
        for table, rows in before.items():
            columns = [c["name"] for c in inspect(engine).get_columns(table)]
            assert columns[-1] == "queue_version", table
            assert [r[:-1] for r in _dump(engine, table)] == rows  # old rows kept, the version null
            assert all(r[-1] is None for r in _dump(engine, table))

        with db.session_factory(engine)() as session:
            db.save_judgment(session, "toy", "q2", "d2", "relevant", "bob", model_view={"queue_version": "v0003"})
            db.save_judgment(session, "toy", "q2", "d2", "not_relevant", "bob", model_view={"queue_version": "v0004"})
            assert db.get_judgment(session, "toy", "q2", "d2", "bob").queue_version == "v0004"
            assert [e.queue_version for e in db.list_events(session, "toy")[-2:]] == ["v0003", "v0004"]
            db.undo_last(session, "toy", "bob")  # the undo restores the version that showed the first verdict
            assert db.get_judgment(session, "toy", "q2", "d2", "bob").queue_version == "v0003"
            with pytest.raises(db.AnnotationError, match="queue_version"):
                db.save_judgment(session, "toy", "q1", "d2", "unsure", "bob", model_view={"queue_version": "v" * 40})

        judged = _dump(engine, "judgments")
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0003")
        assert db.current_revision(engine) == "0003"
        for table in ("judgments", "judgment_events"):
            assert "queue_version" not in [c["name"] for c in inspect(engine).get_columns(table)]
        assert _dump(engine, "judgments") == [r[:-1] for r in judged]
    finally:
        engine.dispose()


def test_models_match_the_newest_migration(engine) -> None:  # noqa: ANN001
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), db.Base.metadata)
    assert diff == []


def test_init_db_twice_is_harmless(db_url: str) -> None:
    for _ in range(2):
        engine = db.init_db(db_url)
        assert db.current_revision(engine) == db.head_revision()
        engine.dispose()


def test_a_database_from_a_newer_version_is_refused(engine) -> None:  # noqa: ANN001
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(ConfigError, match="revision '9999'.*upgrade RRRA Studio"):
        db.init_db(engine.url.render_as_string(hide_password=False))


def _open(url: str) -> None:
    db.init_db(url).dispose()


def test_two_processes_creating_the_schema_at_once(empty_db_url: str) -> None:
    import multiprocessing as mp

    fork = mp.get_context("fork")
    procs = [fork.Process(target=_open, args=(empty_db_url,)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    engine = db.make_engine(empty_db_url)
    assert db.current_revision(engine) == db.head_revision()
    engine.dispose()


def test_0007_adds_the_import_staging_tables_and_downgrades_without_loss(empty_db_url: str) -> None:
    engine = db.make_engine(empty_db_url)
    try:
        db.upgrade(engine, "0006")
        with engine.begin() as conn:
            for sql in _ROWS:
                conn.execute(text(sql), {"previous": json.dumps(_PREVIOUS)})
        before = {t: _dump(engine, t) for t in ("judgments", "judgment_events")}
        db.upgrade(engine, "0007")
        assert {"staged_imports", "staged_judgments"} <= set(inspect(engine).get_table_names())
        assert {t: _dump(engine, t) for t in before} == before
        # An import under way when downgrading: its staged rows go with the tables (none of them was visible).
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO staged_imports (id, dataset_id, total, staged, created_at, updated_at) "
                    "VALUES ('abc', 1, 1, 1, '2025-01-02 03:04:05', '2025-01-02 03:04:05')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO staged_judgments (import_id, seq, query_id, doc_id, annotator, label, note, has_view) "
                    "VALUES ('abc', 0, 'q1', 'd2', 'carol', 'relevant', '', false)"
                )
            )
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0006")
        assert db.current_revision(engine) == "0006"
        assert not {"staged_imports", "staged_judgments"} & set(inspect(engine).get_table_names())
        assert {t: _dump(engine, t) for t in before} == before
        db.upgrade(engine, "0007")  # and up again, empty
        assert _dump(engine, "staged_judgments") == []
    finally:
        engine.dispose()


def _indexes(engine) -> set[str]:  # noqa: ANN001
    return {ix["name"] for ix in inspect(engine).get_indexes("judgments")}


def test_0009_adds_the_covering_indexes_and_downgrades_without_loss(empty_db_url: str) -> None:
    engine = db.make_engine(empty_db_url)
    by_pair = "ix_judgments_dataset_id_query_id_doc_id_annotator_label"
    by_annotator = "ix_judgments_dataset_id_annotator_label_query_id_doc_id"
    try:
        db.upgrade(engine, "0008")
        with engine.begin() as conn:
            for sql in _ROWS:
                conn.execute(text(sql), {"previous": json.dumps(_PREVIOUS)})
        before = {t: _dump(engine, t) for t in ("judgments", "judgment_events")}
        assert "ix_judgments_dataset_id_annotator" in _indexes(engine)
        db.upgrade(engine, "0009")
        assert {by_pair, by_annotator} <= _indexes(engine)
        assert "ix_judgments_dataset_id_annotator" not in _indexes(engine)
        assert {t: _dump(engine, t) for t in before} == before
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0008")
        assert db.current_revision(engine) == "0008"
        assert "ix_judgments_dataset_id_annotator" in _indexes(engine)
        assert not {by_pair, by_annotator} & _indexes(engine)
        assert {t: _dump(engine, t) for t in before} == before
        db.upgrade(engine, "0009")
        assert db.current_revision(engine) == db.head_revision() == "0009"
    finally:
        engine.dispose()
