"""AppTest for the Compare runs page on real tiny runs built by the core (phase 1, and phase 3 with two samplers)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from rrra_core.analysis.comparison import PER_QUERY_FILE
from rrra_core.runtime import jobs
from tests.app.conftest import APP, wait_for_job
from tests.app.test_app_training import table_with, values
from tests.core.analysis.test_comparison import HOSTILE_QUERY, HOSTILE_QUERY_ID, PHASE1, PHASE2, RRRA, UNIFORM

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
PAGE = "pages/analysis/compare.py"


def _page(a: str | None = None, b: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(PAGE).run()
    if a is not None:
        at.selectbox(key="cmp_a").set_value(a).run()
    if b is not None:
        at.selectbox(key="cmp_b").set_value(b).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _chart(at: AppTest, key: str) -> dict:
    charts = [c for c in at.get("plotly_chart") if c.proto.id.endswith(f"-{key}")]
    assert len(charts) == 1
    return json.loads(charts[0].proto.spec)


def _per_query(runs: Path, run_id: str, variant: str, metric: str = "nDCG@10") -> dict[str, float]:
    data = json.loads((runs / run_id / PER_QUERY_FILE).read_text())
    return {q: v[metric] for q, v in data["variants"][variant].items()}


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_metrics_side_by_side_for_the_chosen_rankings(runs: Path) -> None:
    at = _page(UNIFORM, RRRA)
    assert at.selectbox(key="cmp_variant_a").value == "rerank" and at.selectbox(key="cmp_variant_b").value == "rerank"
    ev_a = json.loads((runs / UNIFORM / "metrics.json").read_text())["variants"]
    ev_b = json.loads((runs / RRRA / "metrics.json").read_text())["variants"]
    at.selectbox(key="cmp_variant_a").set_value("no_rerank").run()
    table = table_with(at, "metric", "B − A").set_index("metric")
    assert table.loc["nDCG@10", "A"] == pytest.approx(ev_a["no_rerank"]["nDCG@10"])
    assert table.loc["nDCG@10", "B"] == pytest.approx(ev_b["rerank"]["nDCG@10"])
    assert table.loc["R@100", "B − A"] == pytest.approx(ev_b["rerank"]["R@100"] - ev_a["no_rerank"]["R@100"])
    diff = table_with(at, "setting", "A", "B").set_index("setting")
    assert diff.loc["phase.sampler"].tolist() == ["uniform", "rrra"]
    bars = _chart(at, "cmp_metrics_chart")["data"]
    assert np.allclose(values(bars[0]["y"]), table["A"]) and np.allclose(values(bars[1]["y"]), table["B"])
    keys = {b.proto.id.rsplit("-", 1)[-1] for b in at.get("download_button")}
    assert {"csv_cmp_metrics", "csv_cmp_config", "csv_cmp_helped", "csv_cmp_hurt", "csv_cmp_all"} <= keys


def test_per_query_helped_and_hurt_lists_match_the_runs_per_query_results(runs: Path) -> None:
    at = _page(PHASE1, RRRA)
    at.selectbox(key="cmp_variant_b").set_value("no_rerank").run()
    a, b = _per_query(runs, PHASE1, "retriever"), _per_query(runs, RRRA, "no_rerank")
    delta = {q: b[q] - a[q] for q in a}
    helped = {q for q, d in delta.items() if d > 0}
    hurt = {q for q, d in delta.items() if d < 0}
    assert helped or hurt  # two differently trained encoders rank some query differently
    assert int(_metric(at, "Queries helped")) == len(helped) and int(_metric(at, "Queries hurt")) == len(hurt)
    assert int(_metric(at, "Unchanged")) == len(a) - len(helped) - len(hurt)
    at.number_input(key="cmp_top_n").set_value(500).run()
    lists = [d.value for d in at.dataframe if {"query_id", "B − A"} <= set(d.value.columns)]
    assert len(lists) == 2  # helped, then hurt
    assert set(lists[0]["query_id"]) == helped and set(lists[1]["query_id"]) == hurt
    assert lists[0]["B − A"].is_monotonic_decreasing and lists[1]["B − A"].is_monotonic_increasing
    assert np.allclose(lists[0]["B − A"], [delta[q] for q in lists[0]["query_id"]])
    # A threshold moves the small changes to "unchanged".
    cut = float(np.median([abs(d) for d in delta.values() if d != 0]))
    at.number_input(key="cmp_threshold").set_value(cut).run()
    assert int(_metric(at, "Queries helped")) == sum(d > cut for d in delta.values())
    assert int(_metric(at, "Queries hurt")) == sum(d < -cut for d in delta.values())
    scatter = [t for t in _chart(at, "cmp_scatter")["data"] if t.get("mode") == "markers"]
    assert sum(len(values(t["x"])) for t in scatter) == len(a)


def test_query_text_is_shown_inertly(runs: Path) -> None:
    at = _page(PHASE1, RRRA)
    at.number_input(key="cmp_top_n").set_value(500).run()
    # Plain-text table cells carry the raw text; Plotly hover text is HTML-escaped.
    cells = [t for d in at.dataframe if "query" in d.value.columns for t in d.value["query"]]
    hover = [h for t in _chart(at, "cmp_scatter")["data"] for h in (t.get("text") or [])]
    assert any(h.startswith(f"{HOSTILE_QUERY_ID}: Hostile &lt;b&gt;bold&lt;/b&gt;") for h in hover)
    assert not any("<b>" in h or "<img" in h for h in hover)
    hostile_shown = HOSTILE_QUERY[:40] in " ".join(cells)
    delta_zero = (
        _per_query(runs, PHASE1, "retriever")[HOSTILE_QUERY_ID] == _per_query(runs, RRRA, "rerank")[HOSTILE_QUERY_ID]
    )
    assert hostile_shown or delta_zero  # listed unless that query did not change
    for el in (*at.markdown, *at.caption, *at.info):
        assert "<b>bold" not in el.value and "](http://evil" not in el.value


def _wait_for_job(job_id: str) -> jobs.JobState:
    """The job's end, waiting on its progress rather than a deadline (see tests/app/conftest.wait_for_job)."""
    return wait_for_job(job_id, every_s=0.5)


def test_a_run_without_per_query_results_gets_them_from_a_background_job(runs: Path) -> None:
    written = json.loads((runs / PHASE1 / PER_QUERY_FILE).read_text())
    (runs / PHASE1 / PER_QUERY_FILE).unlink()
    at = _page(PHASE1, RRRA)
    assert any("has no per-query results yet" in i.value for i in at.info)
    assert not [d for d in at.dataframe if "query_id" in d.value.columns]  # nothing per query without the file
    at.button(key="per_query_A").click().run()
    assert not at.exception
    state = jobs.job_state(f"per-query-{PHASE1}")
    assert state is not None and state.kind == "per_query" and state.command[-2:] == ["--run", PHASE1]
    done = _wait_for_job(state.id)
    assert done.status == "done", jobs.log_tail(state.id, 30)
    again = json.loads((runs / PHASE1 / PER_QUERY_FILE).read_text())
    for q, v in written["variants"]["retriever"].items():
        assert again["variants"]["retriever"][q]["nDCG@10"] == pytest.approx(v["nDCG@10"], abs=1e-6)
    at.run()
    assert not at.exception
    assert [d for d in at.dataframe if "query_id" in d.value.columns]
    assert not any("has no per-query results yet" in i.value for i in at.info)


def test_needs_two_finished_runs(runs: Path) -> None:
    import shutil

    for run_id in (PHASE1, UNIFORM):
        shutil.rmtree(runs / run_id)
    at = _page()
    assert any("needs two finished" in i.value for i in at.info)


def _retrain_shaped(runs: Path) -> tuple[str, str]:
    """A retrain round's two compared runs, as the retrain writes them: its new phase-3 run, then its "before"
    (the base evaluated, kind ``evaluation``) written last, so the newest by time. Copies of the tiny phase-3 runs."""
    after, before = "tiny-r1-phase3", "tiny-r1-before"
    record = {"round": 1, "lineage": [PHASE2], "base_run": PHASE2, "phase2_run": "tiny-r1", "phases": "2,3"}
    shutil.copytree(runs / RRRA, runs / after)
    cfg = json.loads((runs / after / "config.json").read_text())
    (runs / after / "config.json").write_text(json.dumps({**cfg, "retrain": record}))
    shutil.copytree(runs / UNIFORM, runs / before)
    evaluation = {
        "kind": "evaluation",
        "of_run": PHASE2,
        "encoder": cfg["encoder"],
        "data": {"dataset": cfg["data"]["dataset"], "eval_split": cfg["data"]["eval_split"]},
        "retrain": record,
    }
    (runs / before / "config.json").write_text(json.dumps(evaluation))
    for at, run_id in ((2_000_000_000, after), (2_000_000_100, before)):
        for f in (runs / run_id).iterdir():
            os.utime(f, (at, at))
    return before, after


def test_opened_after_a_retrain_a_is_the_before_and_b_the_retrained_run(runs: Path) -> None:
    """Issue 25 item 14: by time alone the "before" (evaluated last) was B, and a retrain that helped looked harmful."""
    before, after = _retrain_shaped(runs)
    at = _page()
    assert (at.selectbox(key="cmp_a").value, at.selectbox(key="cmp_b").value) == (before, after)
