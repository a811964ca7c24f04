"""AppTest for the labeling pages (overview, hard-negative browser, review queue) on a real tiny run."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

import db
from tests.app.conftest import APP, TinyRun

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    if page is not None:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _judgments(store, annotator: str = "ana") -> list:
    with store() as s:
        return [
            (j.query_id, j.doc_id, j.label, j.p_fn, j.run_id)
            for j in db.list_judgments(s, "adi_copy", annotator=annotator)
        ]


def _as(at: AppTest, annotator: str) -> AppTest:
    at.sidebar.text_input(key="sb_annotator").input(annotator).run()
    return at


def test_overview_shows_run_metrics_progress_and_suspects(tiny_run: TinyRun) -> None:
    at = _app()
    labels = [m.label for m in at.metric]
    assert "Adapter macro-F1 (held-out queries)" in labels and "False negatives confirmed" in labels
    assert at.sidebar.selectbox(key="sb_run").value == "adi-tiny"
    suspects = at.dataframe(key="top_suspects").value
    assert len(suspects) > 0 and suspects["P(FN|neg)"].is_monotonic_decreasing


def test_overview_offers_the_demo_build_when_no_run_exists() -> None:
    at = _app()
    assert any(b.label == "Build the demo run" for b in at.button)
    assert any("No scored run yet" in i.value for i in at.info)


def test_browser_relabel_writes_the_judgment_with_the_model_view_and_undo_reverts_it(tiny_run: TinyRun, store) -> None:
    at = _as(_app("pages/label/browser.py"), "ana")
    assert at.session_state["browser_query"] == tiny_run.first_query
    at.button(key="focus_relevant").click().run()
    assert not at.exception
    saved = _judgments(store)
    assert [(q, d, lab, rid) for q, d, lab, _, rid in saved] == [
        (tiny_run.first_query, tiny_run.hostile_doc, "relevant", "adi-tiny")
    ]
    assert saved[0][3] is not None  # the adapter's P(FN) at that moment is stored
    assert any("Saved" in s.value for s in at.success)
    at.button(key="browser_undo").click().run()
    assert _judgments(store) == []


def test_browser_row_buttons_focus_navigation_paging_and_query_search(tiny_run: TinyRun, store) -> None:
    at = _as(_app("pages/label/browser.py"), "ana")
    at.button(key="lab_not_relevant_3").click().run()
    assert [lab for *_, lab, _p, _r in _judgments(store)] == ["not_relevant"]
    at.button(key="focus_next").click().run()
    assert at.session_state["browser_focus"] == 1
    at.button(key="page_next").click().run()
    assert at.session_state["browser_page"] == 1 and at.session_state["browser_focus"] == 10
    first = at.session_state["browser_query"]
    at.button(key="q_next").click().run()
    assert at.session_state["browser_query"] != first and at.session_state["browser_focus"] == 0
    # Search by id narrows the picker to that query.
    at.text_input(key="browser_search").input(first).run()
    assert at.selectbox(key="_browser_query_widget").options[0].startswith(first)


def test_review_queue_saves_at_once_and_advances(tiny_run: TinyRun, store) -> None:
    at = _as(_app("pages/label/review.py"), "ana")
    at.slider(key="_review_threshold").set_value(0.0).run()
    left = int(at.metric[0].value.replace(",", ""))
    assert left > 0
    first = at.session_state["browser_query"], _current_doc(at)
    at.button(key="review_relevant").click().run()
    assert not at.exception
    saved = _judgments(store)
    assert [(q, d) for q, d, *_ in saved] == [first]
    assert int(at.metric[0].value.replace(",", "")) == left - 1
    second = _current_doc(at)
    assert second != first[1] or at.session_state["browser_query"] != first[0]
    at.button(key="review_skip").click().run()
    assert int(at.metric[2].value) == 1
    at.button(key="review_undo").click().run()
    assert _judgments(store) == []
    assert int(at.metric[0].value.replace(",", "")) == left - 1  # the skipped item stays out this session


def test_review_queue_needs_an_annotator_name(tiny_run: TinyRun, store) -> None:
    at = _as(_app("pages/label/review.py"), " ")
    at.slider(key="_review_threshold").set_value(0.0).run()
    at.button(key="review_relevant").click().run()
    assert _judgments(store, annotator="ana") == []
    assert any("Type your name" in e.value for e in at.error)


def _current_doc(at: AppTest) -> str:
    md = next(m.value for m in at.markdown if m.value.startswith("**Candidate**"))
    return md.split("`")[1]
