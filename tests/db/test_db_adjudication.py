"""Disagreements, adjudications (revision 0005) and how every merge policy meets them."""

from __future__ import annotations

import json

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import db
from db.adjudication import SELF_NOTE
from db.migrate import alembic_config
from tests.db.test_db_migrations import _PREVIOUS, _ROWS, _dump

POLICIES = ("majority", "any_relevant", "annotator:alice", "annotator:bob")


def _judge(session: Session, ds: str, votes: dict[tuple[str, str], dict[str, str]]) -> None:
    db.save_judgments(
        session,
        ds,
        [
            {"query_id": q, "doc_id": d, "label": lab, "annotator": who}
            for (q, d), by in votes.items()
            for who, lab in by.items()
        ],
    )


def test_disagreements_name_everyone_and_an_adjudication_closes_one(session: Session, toy: str) -> None:
    _judge(
        session,
        toy,
        {
            ("q1", "d1"): {"alice": "relevant", "bob": "not_relevant"},
            ("q1", "d2"): {"alice": "relevant", "bob": "relevant"},  # agreement: not listed
            ("q2", "d3"): {"alice": "unsure", "bob": "relevant", "carol": "relevant"},
            ("q3", "d4"): {"alice": "relevant"},  # one annotator: nothing to disagree on
        },
    )
    found = db.disagreements(session, toy)
    assert [(x.query_id, x.doc_id, x.votes, x.settled) for x in found] == [
        ("q1", "d1", {"alice": "relevant", "bob": "not_relevant"}, False),
        ("q2", "d3", {"alice": "unsure", "bob": "relevant", "carol": "relevant"}, False),
    ]
    row = db.adjudicate(session, toy, "q1", "d1", "relevant", "carol", note="title matches")
    assert (row.verdict, row.adjudicator, row.note) == ("relevant", "carol", "title matches")
    assert [(x.query_id, x.doc_id) for x in db.disagreements(session, toy, open_only=True)] == [("q2", "d3")]
    settled = next(x for x in db.disagreements(session, toy) if x.settled)
    assert (settled.verdict, settled.adjudicator, settled.note) == ("relevant", "carol", "title matches")
    assert settled.adjudicated_at is not None and settled.adjudicated_at.tzinfo is not None

    # Recording again replaces the verdict (one per pair, whoever recorded it last); clearing reopens it.
    db.adjudicate(session, toy, "q1", "d1", "not_relevant", "dave")
    assert {k: (a.verdict, a.adjudicator) for k, a in db.adjudications(session, toy).items()} == {
        ("q1", "d1"): ("not_relevant", "dave")
    }
    assert db.clear_adjudication(session, toy, "q1", "d1") is True
    assert db.clear_adjudication(session, toy, "q1", "d1") is False
    assert len(db.disagreements(session, toy, open_only=True)) == 2


def test_an_annotator_who_settles_their_own_disagreement_is_recorded_as_such(session: Session, toy: str) -> None:
    """Issue 25 item 17: alice could settle her own disagreement with bob and it read like an outside verdict."""
    _judge(session, toy, {("q1", "d1"): {"alice": "relevant", "bob": "not_relevant"}})
    row = db.adjudicate(session, toy, "q1", "d1", "relevant", "alice", note="I am sure")
    assert row.note == "adjudicated by one of the annotators: I am sure"
    [item] = db.disagreements(session, toy)
    assert item.self_adjudicated and item.note.startswith(SELF_NOTE)
    assert db.adjudicate(session, toy, "q1", "d1", "relevant", "alice").note == SELF_NOTE  # no note of her own
    # Someone who did not judge the pair: their note as written.
    assert db.adjudicate(session, toy, "q1", "d1", "relevant", "carol", note="ok").note == "ok"
    assert not db.disagreements(session, toy)[0].self_adjudicated


def test_bad_adjudications_are_refused_and_write_nothing(session: Session, toy: str) -> None:
    with pytest.raises(db.AnnotationError, match="invalid label"):
        db.adjudicate(session, toy, "q1", "d1", "maybe", "carol")
    with pytest.raises(db.AnnotationError, match="annotator name is empty"):
        db.adjudicate(session, toy, "q1", "d1", "relevant", " ")
    with pytest.raises(db.AnnotationError):
        db.adjudicate(session, toy, "q1", "nope", "relevant", "carol")
    with pytest.raises(db.AnnotationError, match="unknown dataset"):
        db.adjudicate(session, "nowhere", "q1", "d1", "relevant", "carol")
    assert db.adjudications(session, toy) == {}


def test_every_policy_takes_the_adjudicated_verdict(session: Session, toy: str) -> None:
    _judge(
        session,
        toy,
        {
            ("q1", "d1"): {"alice": "relevant", "bob": "not_relevant"},  # tie, then adjudicated not relevant
            ("q1", "d2"): {"alice": "relevant", "bob": "relevant"},  # agreed, then adjudicated not relevant
            ("q1", "d3"): {"alice": "not_relevant", "bob": "relevant"},  # tie, adjudicated 'unsure': undecided
            ("q2", "d4"): {"alice": "relevant", "bob": "not_relevant"},  # tie, never adjudicated
        },
    )
    before = {p: db.decide(session, toy, p) for p in POLICIES}
    assert ("q1", "d1") not in before["majority"] and ("q2", "d4") not in before["majority"]  # the tie rule
    assert before["any_relevant"][("q1", "d1")] is True and before["annotator:alice"][("q1", "d1")] is True
    db.adjudicate(session, toy, "q1", "d1", "not_relevant", "carol")
    db.adjudicate(session, toy, "q1", "d2", "not_relevant", "carol")
    db.adjudicate(session, toy, "q1", "d3", "unsure", "carol")
    db.adjudicate(session, toy, "q3", "d5", "relevant", "carol")  # nobody judged it: the adjudication alone decides
    for policy in POLICIES:
        after = db.decide(session, toy, policy)
        assert after[("q1", "d1")] is False, policy
        assert after[("q1", "d2")] is False, policy
        assert ("q1", "d3") not in after, policy
        assert after[("q3", "d5")] is True, policy
        assert after.get(("q2", "d4")) == before[policy].get(("q2", "d4")), policy  # untouched pairs unchanged
    assert ("q2", "d4") not in db.decide(session, toy, "majority")  # a tie stays undecided
    merged = db.merge_labels(session, toy, {"q1": {"d2": 1}, "q3": {}}, "annotator:alice")
    assert merged.qrels == {"q3": {"d5": 1}}


@pytest.mark.parametrize(
    ("labels", "majority"),
    [
        (["relevant", "not_relevant"], None),
        (["relevant", "relevant", "not_relevant", "not_relevant"], None),
        (["relevant", "unsure", "not_relevant"], None),  # unsure is never a vote, so this is a tie too
        (["relevant", "relevant", "not_relevant"], True),
        (["not_relevant", "unsure"], False),
    ],
)
def test_the_majority_tie_rule(labels: list[str], majority: bool | None) -> None:
    assert db.policy_verdict("majority", labels) is majority


def test_0005_adds_the_adjudications_table_and_downgrades_without_loss(empty_db_url: str) -> None:
    engine = db.make_engine(empty_db_url)
    try:
        db.upgrade(engine, "0004")
        with engine.begin() as conn:
            for sql in _ROWS:
                conn.execute(text(sql), {"previous": json.dumps(_PREVIOUS)})
        before = {t: _dump(engine, t) for t in ("judgments", "judgment_events")}
        assert "adjudications" not in inspect(engine).get_table_names()
        db.upgrade(engine, "0005")
        assert db.current_revision(engine) == "0005"
        assert {t: _dump(engine, t) for t in before} == before
        with db.session_factory(engine)() as session:
            db.adjudicate(session, "toy", "q1", "d1", "not_relevant", "carol")
            assert db.decide(session, "toy", "annotator:alice") == {("q1", "d1"): False}
        with pytest.raises(IntegrityError), engine.begin() as conn:  # the verdict check holds
            conn.execute(text("UPDATE adjudications SET verdict = 'maybe'"))
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0004")
        assert db.current_revision(engine) == "0004"
        assert "adjudications" not in inspect(engine).get_table_names()
        assert {t: _dump(engine, t) for t in before} == before
    finally:
        engine.dispose()
