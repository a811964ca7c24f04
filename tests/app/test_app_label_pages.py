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


def test_overview_follows_a_demo_build_with_its_stage_counts_and_eta() -> None:
    import time

    from rrra_core.runtime.jobs import jobs_dir
    from rrra_core.runtime.reports import StageProgress
    from rrra_core.runtime.runs import Run, runs_dir

    job = jobs_dir() / "demo-build"
    job.mkdir(parents=True)  # a build that has just started (no pid yet) reads as active
    (job / "job.json").write_text(f'{{"kind": "demo", "command": [], "started_at": {time.time()}, "pid": null}}')
    run = Run(runs_dir() / "demo-squad")
    run.path.mkdir(parents=True)
    clock = iter([0.0, 10.0, 10.0]).__next__  # the start, then the update 10 s later
    StageProgress(run, 2, "encoding the corpus", (0.0, 0.62), unit="docs", clock=clock).update(700, 1400)
    at = _app()
    bars = at.get("progress")
    assert len(bars) == 1 and bars[0].proto.value == 31  # half the corpus: half the encoding's 62 %
    assert "encoding the corpus · 700/1400 docs · ETA 10 s" in bars[0].proto.text


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
    assert any("Saved" in t.value for t in at.toast)  # a toast: a message box would push the list down
    assert at.session_state["browser_focus"] == 1  # the keyboard's label moves on to the next candidate
    at.button(key="browser_undo").click().run()
    assert _judgments(store) == []
    assert at.session_state["browser_focus"] == 0  # the undone candidate is focused again


def test_browser_row_buttons_focus_navigation_paging_and_query_search(tiny_run: TinyRun, store) -> None:
    at = _as(_app("pages/label/browser.py"), "ana")
    at.button(key="lab_not_relevant_3").click().run()
    assert [lab for *_, lab, _p, _r in _judgments(store)] == ["not_relevant"]
    assert at.session_state["browser_focus"] == 4  # labelling a row focuses the one after it
    at.button(key="focus_prev").click().run()
    at.button(key="focus_prev").click().run()
    at.button(key="focus_prev").click().run()
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


def _wait_for_refit(run_id: str = "adi-tiny", timeout: float = 180.0) -> None:
    import time

    from rrra_core.runtime import jobs

    job = f"review-refit-{run_id}"
    deadline = time.monotonic() + timeout
    state = jobs.job_state(job)
    while state is not None and state.active and time.monotonic() < deadline:
        time.sleep(0.5)
        state = jobs.job_state(job)
    assert state is not None and state.status == "done", jobs.log_tail(job, 30)


def _captions(at: AppTest) -> str:
    return "\n".join(c.value for c in at.caption)


def _found_chart(at: AppTest) -> dict:
    import json

    charts = [c for c in at.get("plotly_chart") if c.proto.id.endswith("-review_found_chart")]
    assert len(charts) == 1
    return json.loads(charts[0].proto.spec)


def test_review_learnt_order_refits_in_the_background_and_charts_the_session(tiny_run: TinyRun, store) -> None:
    from rrra_core.review.versions import read_latest, read_scores, review_dir

    at = _as(_app("pages/label/review.py"), "ana")
    at.slider(key="_review_threshold").set_value(0.0).run()
    assert at.selectbox(key="review_order").value == "learnt"
    assert "no learnt model yet" in _captions(at)  # the adapter's order serves until the first refit...
    assert at.get("plotly_chart") == []  # ...and nothing was reviewed yet
    _wait_for_refit()  # ...which the page started by itself
    at.number_input(key="review_refit_every").set_value(3).run()
    assert "Ordered by model v0001, learnt from 0 verdicts (0 of them yours)" in _captions(at)
    pinned = (at.session_state["browser_query"], _current_doc(at))
    at.run()
    assert (at.session_state["browser_query"], _current_doc(at)) == pinned  # a new version never swaps the item
    at.button(key="review_skip").click().run()
    v1 = read_scores(read_latest(review_dir(tiny_run.run_dir)))
    shown = (at.session_state["browser_query"], _current_doc(at))
    top = v1.set_index(["query_id", "doc_id"])["score"]
    assert top[shown] == top.max()  # the queue follows the version's scores

    for label in ("relevant", "not_relevant", "relevant"):
        at.button(key=f"review_{label}").click().run()
        assert not at.exception, [e.value for e in at.exception]
    with store() as s:
        versions = {j.queue_version for j in db.list_judgments(s, "adi_copy", annotator="ana")}
    assert versions == {"v0001"}  # every judgment records the model version that showed it
    assert "Refitting the queue model in the background" in _captions(at)  # 3 judgments: the next refit runs
    assert "Ordered by model v0001" in _captions(at)  # while the current order keeps serving

    spec = _found_chart(at)
    assert spec["data"][0]["x"] == [1, 2, 3] and spec["data"][0]["y"] == [1, 1, 2]
    assert any(m.label == "Found rate, last 3" and m.value == "67%" for m in at.metric)

    _wait_for_refit()
    at.run()
    assert "Ordered by model v0002, learnt from 3 verdicts (3 of them yours)" in _captions(at)
    # The item on screen when v0002 arrived was shown by v0001 and records that; the next one is v0002's.
    for expected in ("v0001", "v0002"):
        at.button(key="review_not_relevant").click().run()
        with store() as s:
            latest = max(db.list_events(s, "adi_copy", annotator="ana"), key=lambda e: e.id)
        assert latest.queue_version == expected
    assert _found_chart(at)["data"][0]["y"] == [1, 1, 2, 2, 2]
    assert any(m.label == "Found rate, last 5" and m.value == "40%" for m in at.metric)
    at.button(key="review_undo").click().run()
    assert _found_chart(at)["data"][0]["y"] == [1, 1, 2, 2]  # an undone review leaves the session's count


BROWSER = "pages/label/browser.py"


def test_browser_labels_advance_the_focus_and_show_text_without_a_click(tiny_run: TinyRun, store) -> None:
    at = _as(_app(BROWSER), "ana")
    for expected in (1, 2, 3):  # what the keys 2, 2, 2 press: each label moves on to the next candidate
        at.button(key="focus_not_relevant").click().run()
        assert not at.exception and at.session_state["browser_focus"] == expected
    assert len({d for _, d, *_ in _judgments(store)}) == 3
    at.button(key="lab_relevant_9").click().run()  # the last row of the page: the focus turns the page
    assert at.session_state["browser_focus"] == 10 and at.session_state["browser_page"] == 1
    assert any(m.value.startswith(":blue-badge[▶ Focused]") for m in at.markdown)
    assert any("st-key-browser_focused_row" in h.proto.body for h in at.get("html"))
    # Document text is on the page, not behind a per-candidate expander.
    assert [e.label for e in at.expander if e.label.startswith("`")] == []
    assert sum(1 for t in at.text if t.value.strip()) > 10


def _many_queries_run(tiny: TinyRun, home, n: int) -> list[str]:
    """Run ``many`` on a dataset of ``n`` queries, each with the first tiny query's candidates; the query ids."""
    import gzip
    import json
    import shutil

    import pandas as pd

    ds = home / "many_queries"
    (ds / "qrels").mkdir(parents=True)
    shutil.copy(tiny.dataset_dir / "corpus.jsonl.gz", ds / "corpus.jsonl.gz")
    preds = pd.read_parquet(tiny.run_dir / "predictions.parquet")
    first = preds[preds["query_id"] == tiny.first_query]
    ids = [f"m{i:04d}" for i in range(n)]
    with gzip.open(ds / "queries.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps({"_id": q, "text": f"synthetic question {q}"}) + "\n" for q in ids)
    doc = first["doc_id"].iloc[0]
    (ds / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{doc}\t1\n" for q in ids), encoding="utf-8"
    )
    run = home / "runs" / "many"
    shutil.copytree(tiny.run_dir, run)
    pd.concat([first.assign(query_id=q) for q in ids], ignore_index=True).to_parquet(run / "predictions.parquet")
    cfg = json.loads((run / "config.json").read_text(encoding="utf-8"))
    cfg["data"] = {**cfg["data"], "dataset": str(ds)}
    (run / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    return ids


def test_browser_offers_every_query_past_500(tiny_run: TinyRun, isolated_home) -> None:
    ids = _many_queries_run(tiny_run, isolated_home, 600)
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["run"] = "many"
    at.switch_page(BROWSER).run()
    assert not at.exception, [e.value for e in at.exception]
    picker = at.selectbox(key="_browser_query_widget")
    assert len(picker.options) == 600 and "600 of 600" in picker.label
    at.button(key="q_prev").click().run()  # P from the first query wraps to the 600th
    assert at.session_state["browser_query"] == ids[-1]
    at.text_input(key="browser_search").input("m0550").run()
    assert at.session_state["browser_query"] == "m0550"


def test_the_labelled_positives_header_counts_every_pair_the_rows_badge(tiny_run: TinyRun) -> None:
    """Issue 25 item 17: a run's own positive label (a retrained run's verdict) was badged but not counted."""
    import pandas as pd

    def header() -> list[str]:
        at = _app()
        at.query_params["query"] = tiny_run.first_query
        at = _as(at.switch_page("pages/label/browser.py"), "ana")
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return [e.label for e in at.expander if e.label.startswith("Labelled positives")]

    [before] = header()
    path = tiny_run.run_dir / "predictions.parquet"
    preds = pd.read_parquet(path)
    negative = preds[(preds["query_id"] == tiny_run.first_query) & (preds["label"] == 0)].index[0]
    preds.loc[negative, "label"] = 1  # what a verdict "relevant" becomes in a retrained run's labels
    preds.to_parquet(path)
    n = int(before.split("(")[1].rstrip(")"))
    assert header() == [f"Labelled positives ({n + 1})"]


def test_the_sidebar_names_a_dataset_folder_by_its_name_not_its_path(tiny_run: TinyRun) -> None:
    """Issue 25 item 17: a New project run's dataset showed as a full path in the sidebar."""
    from pages.common.state import dataset_label

    at = _app()
    box = at.sidebar.selectbox(key="sb_dataset")
    assert box.value == str(tiny_run.dataset_dir)  # the pages still get the folder
    assert "adi_copy" in box.options and str(tiny_run.dataset_dir) not in box.options
    # Two folders with one name stay told apart by their paths.
    label = dataset_label(["/a/data", "/b/data", "/c/other", "squad"])
    assert [label(d) for d in ("/a/data", "/b/data", "/c/other", "squad")] == ["/a/data", "/b/data", "other", "squad"]
