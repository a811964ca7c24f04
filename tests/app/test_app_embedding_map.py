"""AppTest for the Embedding map on a real tiny ADI run.

Cached maps, the background job, colours, escaping, relabeling.
"""

from __future__ import annotations

import base64
import json
import sys
import time

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

import db
from pages.common import projection_view as pv
from rrra_core.analysis.projection import ProjectionConfig, Scope, compute_projection, load_projection
from rrra_core.runtime import jobs
from rrra_core.runtime.runs import open_run
from tests.app.conftest import APP, HOSTILE_DOC, HOSTILE_QUERY, RUN_ID, TinyRun

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

PAGE = "pages/analysis/embedding_map.py"
SMALL = ProjectionConfig(top_k=12, n_epochs=60)


@pytest.fixture()
def mapped(tiny_run: TinyRun) -> TinyRun:
    """The tiny run with its first query's neighbourhood already mapped by the core."""
    compute_projection(open_run(RUN_ID), Scope(tiny_run.first_query), SMALL)
    return tiny_run


def _app(annotator: str = "ana") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    at.run()
    at.switch_page(PAGE).run()
    at.sidebar.text_input(key="sb_annotator").input(annotator).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _figure(at: AppTest) -> dict:
    charts = at.get("plotly_chart")
    assert len(charts) == 1, "the map is not on the page"
    return json.loads(charts[0].proto.spec)


def _array(value) -> list:
    """A figure array from the chart's JSON (Plotly writes numeric arrays as base64 typed arrays)."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).tolist()
    return list(value or [])


def _n_points(fig: dict) -> int:
    return sum(len(_array(t.get("x"))) for t in fig["data"])


def _judgments(store, annotator: str = "ana") -> list[tuple]:
    with store() as s:
        return [
            (j.query_id, j.doc_id, j.label, j.p_fn, j.run_id)
            for j in db.list_judgments(s, "adi_copy", annotator=annotator)
        ]


def test_page_draws_the_cached_query_map_with_arrows_and_inert_hover_text(mapped: TinyRun) -> None:
    at = _app()
    proj = load_projection(open_run(RUN_ID), Scope(mapped.first_query))
    fig = _figure(at)
    assert _n_points(fig) == len(proj.points)
    # One arrow per candidate, from c to its a.
    n_corrected = int((proj.points["kind"] == "corrected").sum())
    assert n_corrected >= SMALL.top_k and len(fig["layout"]["annotations"]) == n_corrected
    # No job ran: the page read the map the core wrote.
    assert jobs.list_jobs(pv.JOB_KIND) == []
    # Hostile query and document text reaches the hover labels escaped, never as live HTML.
    hover = [h for t in fig["data"] for h in t.get("hovertext", [])]
    assert any("&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in h for h in hover)
    assert any("&lt;b&gt;bold&lt;/b&gt;" in h for h in hover)
    spec = at.get("plotly_chart")[0].proto.spec
    assert "<script>" not in spec and "<b>bold</b>" not in spec and "<img" not in spec
    # The query itself is shown as plain text above the map.
    assert any(t.value == HOSTILE_QUERY for t in at.text)


def test_colouring_by_p_fn_gives_a_scale_and_planted_is_offered_only_with_known_false_negatives(
    mapped: TinyRun,
) -> None:
    at = _app()
    colour = at.selectbox(key="map_colour")
    assert pv.COLOUR_PLANTED not in colour.options  # ADI ships no planted false negatives
    names = {t["name"] for t in _figure(at)["data"]}
    assert "query" in names and names & {"TP", "FN", "FP", "TN"}
    colour.set_value(pv.COLOUR_PFN).run()
    scaled = [t for t in _figure(at)["data"] if t["marker"].get("showscale")]
    assert len(scaled) == 1 and all(0.0 <= v <= 1.0 for v in _array(scaled[0]["marker"]["color"]))


def test_selected_points_are_listed_with_relabel_buttons_that_save_and_recolour(mapped: TinyRun, store) -> None:
    at = _app()
    key = pv.pair_key(mapped.first_query, mapped.hostile_doc)
    picker = at.multiselect(key="map_picked")
    assert any(o.startswith(f"{mapped.hostile_doc} · query {mapped.first_query} · #1 ") for o in picker.options)
    assert picker.value == []
    picker.set_value([key]).run()
    assert at.multiselect(key="map_picked").value == [key]
    assert not at.exception
    assert any(HOSTILE_DOC in t.value for t in at.text)  # the document's text, inert
    at.button(key="map_lab_relevant_0").click().run()
    assert not at.exception
    saved = _judgments(store)
    assert [(q, d, lab, rid) for q, d, lab, _, rid in saved] == [
        (mapped.first_query, mapped.hostile_doc, "relevant", RUN_ID)
    ]
    assert saved[0][3] is not None  # the adapter's P(FN) at that moment is stored
    at.selectbox(key="map_colour").set_value(pv.COLOUR_HUMAN).run()
    relevant = [t for t in _figure(at)["data"] if t["name"] == "relevant"]
    # Both the candidate c and its corrected a of that pair turn "relevant".
    assert relevant and len(_array(relevant[0]["x"])) == 2


def _wait_done(jid: str, timeout: float = 300.0) -> None:
    try:
        deadline = time.time() + timeout
        while jobs.job_state(jid).active and time.time() < deadline:
            time.sleep(1.0)
        state = jobs.job_state(jid)
        assert state.status == "done", jobs.log_tail(jid, 30)
    finally:
        if jobs.job_state(jid).active:
            jobs.cancel_job(jid)


def test_missing_map_waits_for_a_running_map_then_is_computed_in_the_background_and_drawn(tiny_run: TinyRun) -> None:
    run = open_run(RUN_ID)
    # Two CPU cores: a new map waits for the one being computed instead of competing with it.
    other = jobs.start_job(
        "projection-other",
        [sys.executable, "-c", "import time; time.sleep(120)"],
        kind=pv.JOB_KIND,
        meta={"scope": "other"},
    )
    query_job = pv.job_id(run, Scope(tiny_run.first_query))
    try:
        at = _app()
        assert any("Another map is being computed" in i.value for i in at.info)
        assert jobs.job_state(query_job) is None
    finally:
        jobs.cancel_job(other.id)

    at.run()
    state = jobs.job_state(query_job)
    assert state is not None and state.kind == pv.JOB_KIND and "--query=" + tiny_run.first_query in state.command
    assert at.get("progress"), "no progress bar while the map is computed"
    assert not at.get("plotly_chart")
    try:
        deadline = time.time() + 300
        while jobs.job_state(query_job).active and time.time() < deadline:
            time.sleep(1.0)
        assert jobs.job_state(query_job).status == "done", jobs.log_tail(query_job, 30)
    finally:
        if jobs.job_state(query_job).active:
            jobs.cancel_job(query_job)

    at.run()
    assert not at.exception
    proj = load_projection(run, Scope(tiny_run.first_query))
    assert proj is not None and proj.config == ProjectionConfig()  # the page asks for the default settings
    fig = _figure(at)
    assert (
        _n_points(fig) == len(proj.points)
        and len(fig["layout"]["annotations"]) == (proj.points["kind"] == "corrected").sum()
    )
    at.run()
    assert not any(s.active for s in jobs.list_jobs(pv.JOB_KIND))  # a finished map is never recomputed


def test_a_failed_map_job_shows_its_error_and_is_not_restarted_on_its_own(tiny_run: TinyRun) -> None:
    jid = pv.job_id(open_run(RUN_ID), Scope(tiny_run.first_query))
    jobs.start_job(
        jid, [sys.executable, "-c", "import sys; print('error: the map broke'); sys.exit(2)"], kind=pv.JOB_KIND
    )
    deadline = time.time() + 60
    while jobs.job_state(jid).active and time.time() < deadline:
        time.sleep(0.2)
    at = _app()
    assert any("failed" in e.value and "the map broke" in e.value for e in at.error)
    assert jobs.job_state(jid).status == "failed"  # not silently relaunched in a loop
    assert any(b.label == "Compute the map" for b in at.button)


def test_global_map_shows_sampled_queries_and_documents_without_arrows(tiny_run: TinyRun) -> None:
    run = open_run(RUN_ID)
    compute_projection(run, Scope(), SMALL)
    compute_projection(run, Scope(tiny_run.first_query), SMALL)
    at = _app()
    at.radio(key="map_scope").set_value("Global sample").run()
    assert not at.exception
    proj = load_projection(run, Scope())
    fig = _figure(at)
    assert not fig["layout"].get("annotations")
    assert (proj.points["kind"] == "query").sum() == 35  # every ADI query fits in the sample
    # Thinned by default: a few query stars, every document.
    query_trace = next(t for t in fig["data"] if t["name"] == "query")
    assert len(_array(query_trace["x"])) == pv.GLOBAL_STARS < 35
    assert _n_points(fig) == len(proj.points) - (35 - pv.GLOBAL_STARS)
    at.toggle(key="map_all_stars").set_value(True).run()
    fig = _figure(at)
    assert _n_points(fig) == len(proj.points)
    assert len(_array(next(t for t in fig["data"] if t["name"] == "query")["x"])) == 35
    assert jobs.list_jobs(pv.JOB_KIND) == []


# --- the figure helpers directly ------------------------------------------------------------


def _points() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "kind": ["query", "candidate", "corrected", "positive"],
            "query_id": ["q<b>", "q<b>", "q<b>", "q<b>"],
            "doc_id": [None, "d<a href='x'>", "d<a href='x'>", "d2"],
            "arrow_from": [-1, -1, 1, -1],
            "rank": [None, 0, 0, None],
            "score": [None, 0.9, 0.9, None],
            "label": [None, 0, 0, 1],
            "p_tp": [None, 0.1, 0.1, None],
            "p_fn": [None, 0.6, 0.6, None],
            "p_fp": [None, 0.1, 0.1, None],
            "p_tn": [None, 0.2, 0.2, None],
            "p_fn_given_neg": [None, 0.75, 0.75, None],
            "p_fp_given_pos": [None, 0.5, 0.5, None],
            "p_rel": [None, 0.7, 0.7, None],
            "qa": [None, 0.8, 0.8, None],
            "ca": [None, 0.95, 0.95, None],
            "x": [0.0, 1.0, 0.5, 2.0],
            "y": [0.0, 1.0, 0.5, 2.0],
        }
    )


def test_hover_text_escapes_ids_and_text_and_keeps_only_our_markup() -> None:
    from rrra_core.data.beir import Doc

    pts = _points()
    corpus = {
        "d<a href='x'>": Doc(title="<b>T</b>", text="<a href='http://evil.example'>x</a> & more"),
        "d2": Doc(title="", text="plain"),
    }
    hover = pv.hover_texts(pts, {"q<b>": "<script>alert(1)</script>"}, corpus)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in hover[0] and "<script>" not in hover[0]
    assert "q&lt;b&gt;" in hover[0]
    assert "d&lt;a href=&#x27;x&#x27;&gt;" in hover[1] and "<a " not in hover[1] and "&amp; more" in hover[1]
    assert "QA cos(q, a) 0.800" in hover[2] and "P(FN|neg) 0.750" in hover[1]
    # A labelled positive shows P(FP|pos), as the browser does, never P(FN|neg).
    positive = pts.assign(label=[None, 1, 1, 1])
    hover = pv.hover_texts(positive, {"q<b>": "q"}, corpus)
    assert "P(FP|pos) 0.500" in hover[1] and "P(FN|neg)" not in hover[1]
    assert all(h.count("<b>") == 1 for h in hover)  # the kind label is the only bold


def test_figure_colours_arrows_and_selection_mapping() -> None:
    pts = _points()
    values = pv.colour_values(pts, pv.COLOUR_CLASS)
    assert values.tolist() == ["query", "FN", "FN", "positive not retrieved"]
    fig = pv.build_figure(pts, values, ["h"] * 4)
    assert len(fig.layout.annotations) == 1
    arrow = fig.layout.annotations[0]
    assert (arrow.ax, arrow.ay, arrow.x, arrow.y) == (1.0, 1.0, 0.5, 0.5)  # from c to a
    # A visible head at a's end, stopping at the marker's edge rather than hidden under it.
    assert arrow.showarrow and arrow.arrowhead >= 1 and arrow.arrowside == "end" and arrow.standoff >= 4
    assert arrow.arrowsize >= 1.2 and arrow.arrowwidth >= 1.0
    assert sorted(i for t in fig.data for i in t.customdata) == [0, 1, 2, 3]
    fn = next(i for i, t in enumerate(fig.data) if t.name == "FN")
    assert pv.selected_rows(fig, [{"curve_number": fn, "point_index": 1}]) == [2]
    assert pv.selected_rows(fig, [{"customdata": [3]}, {"customdata": 3}]) == [3]
    keys = pv.row_pair_keys(pts)
    assert keys[0] is None and keys[1] == keys[2] and len(pv.pair_table(pts)) == 2
    planted = pv.colour_values(pts, pv.COLOUR_PLANTED, known={"q<b>": {"d<a href='x'>"}})
    assert planted.tolist() == ["query", "planted false negative", "planted false negative", "labelled positive"]
    human = pv.colour_values(pts, pv.COLOUR_HUMAN, human={("q<b>", "d2"): {"a": "relevant", "b": "not_relevant"}})
    assert human.tolist() == ["query", "unlabelled", "unlabelled", "disagreement"]
    pfn = pv.colour_values(pts, pv.COLOUR_PFN)
    assert pfn.tolist() == ["query", 0.75, 0.75, "labelled positive"]


def test_a_single_click_selects_a_point(mapped: TinyRun) -> None:
    at = _app()
    chart = at.get("plotly_chart")[0]
    spec = json.loads(chart.proto.spec)
    # Streamlit turns a click into a selection only outside the select/lasso drag modes.
    assert spec["layout"]["clickmode"] == "event+select" and spec["layout"]["dragmode"] not in ("select", "lasso")
    assert 0 in list(chart.proto.selection_mode)  # POINTS: one click selects one point
    proj = load_projection(open_run(RUN_ID), Scope(mapped.first_query))
    row = int(np.flatnonzero((proj.points["doc_id"] == mapped.hostile_doc).to_numpy())[0])
    # What the browser sends for one clicked point: its trace, index and customdata (the row in the points).
    at.session_state["map_chart"] = {
        "selection": {"points": [{"curve_number": 0, "point_index": 0, "customdata": row}], "box": [], "lasso": []}
    }
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.multiselect(key="map_picked").value == [pv.pair_key(mapped.first_query, mapped.hostile_doc)]


def test_listed_pairs_show_the_conditional_that_matches_their_label(mapped: TinyRun) -> None:
    from rrra_core.analysis.projection import projection_paths

    run = open_run(RUN_ID)
    proj = load_projection(run, Scope(mapped.first_query))
    pairs = pv.pair_table(proj.points)
    pos, neg = pairs[pairs["p_tp"].notna()].index.tolist()[:2]
    # The tiny encoder retrieves no positive of this query: call one scored pair (its c and a) a labelled positive.
    points = proj.points.copy()
    points.loc[(points["doc_id"] == pairs.loc[pos, "doc_id"]) & points["p_tp"].notna(), "label"] = 1
    points.to_parquet(projection_paths(run, Scope(mapped.first_query))[0], index=False)
    at = _app()
    at.multiselect(key="map_picked").set_value([pos, neg]).run()
    assert not at.exception
    options = {o.split(" · ")[0]: o for o in at.multiselect(key="map_picked").options}
    assert "P(FP|pos)" in options[pairs.loc[pos, "doc_id"]] and "P(FN|neg)" in options[pairs.loc[neg, "doc_id"]]
    md = [m.value for m in at.markdown]
    assert any("P\\(FP\\|pos\\)" in m for m in md) and any("P\\(FN\\|neg\\)" in m for m in md)
    # Document text only inside expanders with a fixed label, as plain text.
    assert {e.label for e in at.expander} == {"Document text"}
