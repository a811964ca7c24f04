"""Team mode in the store (issue 28): roles, who may do what, the audit record, and adjudicating one's own pair.

Every test runs on SQLite and PostgreSQL (``tests/db/conftest.py``).
"""

from __future__ import annotations

import json

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import db
from db.adjudication import SELF_NOTE, SOLE_NOTE
from db.migrate import alembic_config
from tests.db.test_db_migrations import _PREVIOUS, _ROWS, _dump


def test_each_role_may_do_what_the_one_below_may_and_more() -> None:
    assert [a for a in db.PERMISSIONS if db.allowed("annotator", a)] == ["view", "label"]
    assert {a for a in db.PERMISSIONS if db.allowed("adjudicator", a)} == {
        "view",
        "label",
        "adjudicate",
        "edit_guidelines",
    }
    assert all(db.allowed("admin", a) for a in db.PERMISSIONS)
    # No role, or a role the table does not know, may do nothing at all.
    assert not any(db.allowed(r, a) for r in (None, "", "owner") for a in db.PERMISSIONS)
    with pytest.raises(KeyError):
        db.allowed("admin", "launch_rockets")


def test_the_settings_name_admins_case_blind() -> None:
    assert db.parse_admins("Ann@Example.org, bob@example.org  carol") == {"ann@example.org", "bob@example.org", "carol"}
    assert db.parse_admins(["Ann@Example.org"]) == {"ann@example.org"}
    assert db.parse_admins(None) == db.parse_admins("") == frozenset()


def test_roles_are_granted_replaced_revoked_and_recorded(session: Session) -> None:
    assert db.get_role(session, "bob@example.org") is None
    db.set_role(session, "Bob@Example.org", "annotator", granted_by="ann@example.org")
    assert db.get_role(session, "bob@example.org") == "annotator"  # emails are keyed lower-case
    db.set_role(session, "bob@example.org", "adjudicator", granted_by="ann@example.org")
    assert [(r.person, r.role, r.granted_by) for r in db.list_roles(session)] == [
        ("bob@example.org", "adjudicator", "ann@example.org")
    ]
    # A setting's admin is admin whatever the table says, and without a row.
    assert db.get_role(session, "ann@example.org", admins=["ANN@example.org"]) == "admin"
    assert db.adjudicators(session, admins=["ann@example.org"]) == {"ann@example.org", "bob@example.org"}
    assert db.revoke_role(session, "bob@example.org", revoked_by="ann@example.org")
    assert not db.revoke_role(session, "bob@example.org", revoked_by="ann@example.org")
    assert db.get_role(session, "bob@example.org") is None
    log = [(e.person, e.action, e.subject, e.detail) for e in db.list_actions(session)]
    assert log == [
        ("ann@example.org", "role_grant", "bob@example.org", {"role": "annotator"}),
        ("ann@example.org", "role_grant", "bob@example.org", {"role": "adjudicator"}),
        ("ann@example.org", "role_revoke", "bob@example.org", {"role": "adjudicator"}),
    ]


def test_bad_roles_and_names_are_refused_and_nothing_is_written(session: Session) -> None:
    for person, role in (("bob@example.org", "owner"), ("", "admin"), ("x" * 101, "admin")):
        with pytest.raises(db.AnnotationError):
            db.set_role(session, person, role, granted_by="ann@example.org")
    assert db.list_roles(session) == [] and db.list_actions(session) == []
    # The database itself refuses a role the app does not know.
    with pytest.raises(IntegrityError):
        session.add(db.Role(person="eve", role="owner", granted_at=db.models.utcnow()))
        session.flush()
    session.rollback()


def test_jobs_started_and_cancelled_are_kept_under_their_names(session: Session) -> None:
    db.record_action(session, "ann@example.org", "job_start", "adi-r1", {"kind": "retrain"})
    db.record_action(session, "carl@example.org", "job_cancel", "adi-r1")
    db.record_action(session, "ann@example.org", "job_start", "new-project", {"kind": "project"})
    found = [(e.person, e.action) for e in db.list_actions(session, subject="adi-r1")]
    assert found == [("ann@example.org", "job_start"), ("carl@example.org", "job_cancel")]
    assert [e.subject for e in db.list_actions(session, action="job_start")] == ["adi-r1", "new-project"]
    assert all(e.created_at.tzinfo is not None for e in db.list_actions(session))
    with pytest.raises(db.AnnotationError):
        db.record_action(session, "ann@example.org", "job_delete", "adi-r1")


def _disagree(session: Session, ds: str) -> None:
    db.save_judgments(
        session,
        ds,
        [
            {"query_id": "q1", "doc_id": "d1", "label": "relevant", "annotator": "ann@example.org"},
            {"query_id": "q1", "doc_id": "d1", "label": "not_relevant", "annotator": "bob@example.org"},
        ],
    )


def test_in_team_mode_nobody_settles_their_own_pair_while_another_adjudicator_can(session: Session, toy: str) -> None:
    _disagree(session, toy)
    with pytest.raises(db.AnnotationError, match="another adjudicator"):
        db.adjudicate(session, toy, "q1", "d1", "relevant", "ann@example.org", other_adjudicators=True)
    assert db.adjudications(session, toy) == {}
    # An outside adjudicator may; so may one of the two, when nobody else can: the record says so.
    row = db.adjudicate(session, toy, "q1", "d1", "relevant", "carl@example.org", other_adjudicators=True)
    assert (row.adjudicator, row.note) == ("carl@example.org", "")
    row = db.adjudicate(session, toy, "q1", "d1", "relevant", "ann@example.org", note="clear", other_adjudicators=False)
    assert row.note == f"{SOLE_NOTE}: clear" and row.note.startswith(SELF_NOTE)
    assert db.disagreements(session, toy)[0].self_adjudicated
    # Solo mode (no team): as before, allowed with the note.
    assert db.adjudicate(session, toy, "q1", "d1", "relevant", "ann@example.org").note == SELF_NOTE


def test_0008_adds_the_team_tables_and_downgrades_without_loss(empty_db_url: str) -> None:
    engine = db.make_engine(empty_db_url)
    try:
        db.upgrade(engine, "0007")
        with engine.begin() as conn:
            for sql in _ROWS:
                conn.execute(text(sql), {"previous": json.dumps(_PREVIOUS)})
        before = {t: _dump(engine, t) for t in ("judgments", "judgment_events")}
        db.upgrade(engine, "0008")
        assert {"roles", "audit_events"} <= set(inspect(engine).get_table_names())
        assert {t: _dump(engine, t) for t in before} == before
        with db.session_factory(engine)() as s:
            db.set_role(s, "bob@example.org", "admin", granted_by="ann@example.org")
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0007")
        assert db.current_revision(engine) == "0007"
        assert not {"roles", "audit_events"} & set(inspect(engine).get_table_names())
        assert {t: _dump(engine, t) for t in before} == before
        db.upgrade(engine)  # and up again, empty
        with db.session_factory(engine)() as s:
            assert db.list_roles(s) == [] and db.list_actions(s) == []
    finally:
        engine.dispose()
