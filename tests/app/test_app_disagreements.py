"""AppTest for the Disagreements page: two annotators disagree, the pair is listed by name, adjudication settles it."""

from __future__ import annotations

import hashlib
import re

import pytest
from streamlit.testing.v1 import AppTest

import db
from tests.app.conftest import APP, HOSTILE_DOC, TinyRun

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

PAGE = "pages/label/disagreements.py"
STORE = "adi_copy"
LINK = re.compile(r"(?<!\\)\[[^\]]*(?<!\\)\]\(")  # an unescaped [text]( Markdown link


def _app(annotator: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(PAGE).run()
    at.sidebar.text_input(key="sb_annotator").input(annotator).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _pid(query_id: str, doc_id: str) -> str:
    return hashlib.sha1(f"{query_id}\t{doc_id}".encode()).hexdigest()[:12]


def test_two_annotators_disagree_and_an_adjudication_settles_the_pair(tiny_run: TinyRun, store) -> None:
    q, d = tiny_run.first_query, tiny_run.hostile_doc
    other = "1" if d != "1" else "2"
    at = _app("carol")  # registers the dataset in the store
    assert any("No pair has been judged differently" in s.value for s in at.success)
    with store() as s:
        db.save_judgment(s, STORE, q, d, "relevant", "alice")
        db.save_judgment(s, STORE, q, d, "not_relevant", "bob")
        # A second pair, the other way round: the situation of issue 16 (kappa -1.00 after two disagreements).
        db.save_judgment(s, STORE, q, other, "not_relevant", "alice")
        db.save_judgment(s, STORE, q, other, "relevant", "bob")
    at.run()
    assert not at.exception, [e.value for e in at.exception]

    md = [m.value for m in at.markdown]
    assert any("alice: ✅ relevant" in m and "bob: ❌ not relevant" in m for m in md), md  # who said what
    assert any("majority: tie: undecided" in m for m in md)
    assert any(("P\\(FN\\|neg\\)" in m or "P\\(FP\\|pos\\)" in m) and "P(rel)" in m for m in md), md  # the run's view
    assert any(HOSTILE_DOC in t.value for t in at.text)  # document text, plain
    assert all(e.label == "Document text" for e in at.expander)
    for src in md + [c.value for c in at.caption] + [e.label for e in at.expander]:
        assert "<script" not in src and not LINK.search(src), src
    # Two pairs, both disagreed: the figure comes with its sample size and why it is undefined or negative.
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["Agreement"], metrics["Pairs judged by two or more"]) == ("-1.00", "2")
    assert any("Below 0" in c.value and "Only 2 shared pair" in c.value for c in at.caption)
    assert any("2 open of 2" in h.value for h in at.subheader)
    assert any("a tie between relevant and not\\-relevant votes" in c.value for c in at.caption)

    pid = _pid(q, d)
    at.text_input(key=f"dis_note_{pid}").input("the abstract answers it").run()
    at.button(key=f"dis_relevant_{pid}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Settled" in s.value for s in at.success)
    assert any("1 open of 2" in h.value for h in at.subheader)  # it left the open list
    assert not [b for b in at.button if b.key == f"dis_relevant_{pid}"]
    with store() as s:
        adj = db.adjudications(s, STORE)[(q, d)]
        assert (adj.verdict, adj.adjudicator, adj.note) == ("relevant", "carol", "the abstract answers it")
        for policy in ("majority", "any_relevant", "annotator:bob"):
            assert db.decide(s, STORE, policy)[(q, d)] is True, policy

    # Settled pairs can be shown and reopened.
    at.toggle(key="dis_show_settled").set_value(True).run()
    assert any("Settled:" in m.value and "carol" in m.value for m in at.markdown)
    at.button(key=f"dis_reopen_{pid}").click().run()
    with store() as s:
        assert db.adjudications(s, STORE) == {}
        assert len(db.disagreements(s, STORE, open_only=True)) == 2
    assert not at.exception


def test_an_annotator_settling_their_own_disagreement_is_told_and_it_is_noted(tiny_run: TinyRun, store) -> None:
    """Issue 25 item 17: a person could adjudicate their own disagreement and nothing said so."""
    q, d = tiny_run.first_query, tiny_run.hostile_doc
    at = _app("alice")
    with store() as s:
        db.save_judgment(s, STORE, q, d, "relevant", "alice")
        db.save_judgment(s, STORE, q, d, "not_relevant", "bob")
    at.run()
    assert any(
        "You judged this pair" in c.value and "adjudicated by one of the annotators" in c.value for c in at.caption
    )
    at.button(key=f"dis_relevant_{_pid(q, d)}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    at.toggle(key="dis_show_settled").set_value(True).run()
    assert any(t.value.startswith("adjudicated by one of the annotators") for t in at.text)
    with store() as s:
        assert db.adjudications(s, STORE)[(q, d)].note == "adjudicated by one of the annotators"
