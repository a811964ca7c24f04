"""Labelling guidelines per dataset: saved and read back, replaced on save, and revision 0006 up and down."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect, text

import db
from db.migrate import alembic_config


def test_guidelines_round_trip_per_dataset(session, toy) -> None:  # noqa: ANN001
    assert db.get_guidelines(session, toy) is None
    db.save_guidelines(session, toy, "Relevant = answers the question.\n\n* partial counts", "alice")
    row = db.get_guidelines(session, toy)
    assert (row.text, row.updated_by) == ("Relevant = answers the question.\n\n* partial counts", "alice")
    first = row.updated_at
    db.save_guidelines(session, toy, "v2", "bob")
    row = db.get_guidelines(session, toy)
    assert (row.text, row.updated_by) == ("v2", "bob") and row.updated_at >= first
    with pytest.raises(db.AnnotationError, match="longer than"):
        db.save_guidelines(session, toy, "x" * (db.GUIDELINES_MAX_CHARS + 1))
    with pytest.raises(db.AnnotationError, match="unknown dataset"):
        db.get_guidelines(session, "nope")


def test_0006_creates_the_guidelines_table_and_downgrades(empty_db_url: str) -> None:
    engine = db.make_engine(empty_db_url)
    try:
        db.upgrade(engine, "0005")
        assert "guidelines" not in inspect(engine).get_table_names()
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO datasets (name, source, n_queries, n_docs, created_at) "
                    "VALUES ('toy', NULL, 0, 0, '2025-01-02 03:04:05')"
                )
            )
        db.upgrade(engine, "0006")
        assert "guidelines" in inspect(engine).get_table_names()
        with db.session_factory(engine)() as session:
            db.save_guidelines(session, "toy", "be strict", "alice")
            assert db.get_guidelines(session, "toy").text == "be strict"
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0005")
        assert db.current_revision(engine) == "0005"
        assert "guidelines" not in inspect(engine).get_table_names()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT name FROM datasets")).scalars().all() == ["toy"]
    finally:
        engine.dispose()
