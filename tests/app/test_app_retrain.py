"""AppTest for the Retrain page: launch a real job from the page, follow it, see the new run with before/after metrics."""

from __future__ import annotations

import time

import pytest
from streamlit.testing.v1 import AppTest

import db
from rrra_core.runtime import jobs
from tests.app.conftest import APP, TinyRun


def _judge(tiny_run: TinyRun) -> None:
    import pandas as pd

    preds = pd.read_parquet(tiny_run.run_dir / "predictions.parquet")
    negs = preds[preds["label"] == 0].head(3)
    with db.session_factory(db.init_db())() as s:
        name = db.ensure_dataset(s, str(tiny_run.dataset_dir)).name
        for i, (q, d) in enumerate(zip(negs["query_id"], negs["doc_id"])):
            db.save_judgment(s, name, str(q), str(d), "relevant" if i < 2 else "not_relevant", "ana")


@pytest.mark.slow
def test_retrain_quick_preset_from_the_page_creates_a_compared_run(tiny_run: TinyRun) -> None:
    _judge(tiny_run)
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("pages/train/retrain.py").run()
    assert not at.exception
    name = next(t for t in at.text_input if t.label == "New run name")
    name.input("adi-tiny-r1")
    next(b for b in at.button if b.label == "Start retraining").click().run()
    assert not at.exception, [e.value for e in at.exception]
    state = jobs.job_state("adi-tiny-r1")
    assert state is not None and state.kind == "retrain"
    deadline = time.time() + 300
    while (state := jobs.job_state("adi-tiny-r1")).active and time.time() < deadline:
        time.sleep(1)
    assert state.status == "done", jobs.log_tail("adi-tiny-r1", 40)
    at.run()
    assert not at.exception
    with db.session_factory(db.init_db())() as s:
        assert db.get_training_job(s, "adi-tiny-r1").status == "done"
    tables = [d.value for d in at.dataframe]
    before_after = next(t for t in tables if "metric" in t.columns)
    assert before_after["after"].notna().any() and any("nDCG@10" in m for m in before_after["metric"])
    assert any("New run" in c.value and "adi-tiny-r1-phase3" in c.value for c in at.caption)
    # Compare opens on base (before) and the new run (after), with per-query differences.
    at.button(key="compare_adi-tiny-r1").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["cmp_a"] == "adi-tiny" and at.session_state["cmp_b"] == "adi-tiny-r1-phase3"
    assert any("helped" in m.label.lower() for m in at.metric) or any(
        "helped" in str(d.value.columns.tolist()).lower() or "helped" in d.value.to_string().lower()
        for d in at.dataframe
    )
    # The new runs are listed with their metrics.
    at.switch_page("pages/label/overview.py").run()
    runs = next(d.value for d in at.dataframe if "run" in d.value.columns and "kind" in d.value.columns)
    assert {"adi-tiny-r1", "adi-tiny-r1-phase3"} <= set(runs["run"])
    assert runs.set_index("run").loc["adi-tiny-r1-phase3", "nDCG@10"] is not None


def test_retrain_page_without_a_base_run_says_what_to_do() -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("pages/train/retrain.py").run()
    assert not at.exception and any("No phase-2 run" in i.value for i in at.info)


def test_the_run_name_field_keeps_its_identity_across_reruns_seconds_apart(tiny_run: TinyRun) -> None:
    """The default name is time-stamped. Were it recomputed on every rerun, the field would become a new widget each
    second, and the browser would drop what a person had typed (the retrain test failed that way when slow)."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("pages/train/retrain.py").run()
    first = next(t for t in at.text_input if t.label == "New run name")
    assert first.value.startswith("adi-tiny-r")
    time.sleep(1.2)
    at.run()
    again = next(t for t in at.text_input if t.label == "New run name")
    assert (again.id, again.value) == (first.id, first.value)
    again.input("my-retrain")
    time.sleep(1.2)  # typing takes time: the submit comes seconds after the field was drawn
    next(b for b in at.button if b.label == "Start retraining").click().run()
    state = jobs.job_state("my-retrain")
    assert state is not None and state.kind == "retrain"
    jobs.cancel_job("my-retrain")
