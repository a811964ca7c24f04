"""AppTest for the Retrain page: launch a real job from the page, follow it, see the new run with before/after metrics.

Everything the page shows about a job comes from files: the job folder (is the
process alive, how did it end) and the run folders (progress, the summary).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import db
from rrra_core.runtime import jobs
from rrra_core.runtime.paths import runs_dir
from rrra_core.runtime.runs import Run
from rrra_core.workflows.retrain import RetrainConfig, retrain_progress
from tests.app.conftest import APP, TinyRun, wait_for_job

PAGE = "pages/train/retrain.py"


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


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
    base_files = _snapshot(tiny_run.run_dir)
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception
    assert at.session_state["sb_run"] == "adi-tiny"
    name = next(t for t in at.text_input if t.label == "New run name")
    name.input("adi-tiny-r1")
    next(b for b in at.button if b.label == "Start retraining").click().run()
    assert not at.exception, [e.value for e in at.exception]
    state = jobs.job_state("adi-tiny-r1")
    assert state is not None and state.kind == "retrain"
    seen_runs: set[str] = set()

    def tick() -> None:
        # While the job runs, its half-made runs are never offered and the sidebar stays where it was.
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        sidebar_run = at.selectbox(key="sb_run")
        seen_runs.update(sidebar_run.options)
        assert sidebar_run.value == "adi-tiny"
        if jobs.job_state("adi-tiny-r1").active:
            assert next(b for b in at.button if b.label == "Start retraining").disabled

    state = wait_for_job("adi-tiny-r1", on_tick=tick)
    assert state.status == "done", jobs.log_tail("adi-tiny-r1", 40)
    assert seen_runs <= {"adi-tiny", "adi-tiny-r1-phase3"}
    at.run()
    assert not at.exception
    # Done: the new run is offered, and the sidebar moves to it only when asked.
    assert at.selectbox(key="sb_run").value == "adi-tiny"
    assert "adi-tiny-r1-phase3" in at.selectbox(key="sb_run").options
    assert "adi-tiny-r1" not in at.selectbox(key="sb_run").options  # the intermediate phase-2 run
    at.button(key="open_adi-tiny-r1").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="sb_run").value == "adi-tiny-r1-phase3"
    assert any("round 1: adi-tiny → this run" in c.value for c in at.sidebar.caption)
    assert [t.value for t in at.title] == ["Review queue"]  # the new run's queue opens (issue 25 item 16)
    at.switch_page(PAGE).run()
    # The run folders are the job's record: done, all the way, and the base run untouched.
    progress = retrain_progress("adi-tiny-r1", RetrainConfig(base_run="adi-tiny", **_quick()))
    assert progress.done and progress.fraction == 1.0
    assert set(progress.runs) == {"adi-tiny-r1", "adi-tiny-r1-phase3", "adi-tiny-r1-before"}
    assert _snapshot(tiny_run.run_dir) == base_files
    tables = [d.value for d in at.dataframe]
    before_after = next(t for t in tables if "metric" in t.columns)
    assert before_after["after"].notna().any() and any("nDCG@10" in m for m in before_after["metric"])
    assert any("New run" in c.value and "adi-tiny-r1-phase3" in c.value and "majority" in c.value for c in at.caption)
    # Compare opens on the base's evaluation (before, in a run of the retrain's own) and the new run (after),
    # with per-query differences.
    at.button(key="compare_adi-tiny-r1").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["cmp_a"] == "adi-tiny-r1-before" and at.session_state["cmp_b"] == "adi-tiny-r1-phase3"
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
    at.switch_page(PAGE).run()
    assert not at.exception and any("No run to start from" in i.value for i in at.info)


def test_the_run_name_field_keeps_its_identity_across_reruns_seconds_apart(tiny_run: TinyRun) -> None:
    """The default name is time-stamped. Were it recomputed on every rerun, the field would become a new widget each
    second, and the browser would drop what a person had typed (the retrain test failed that way when slow)."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(PAGE).run()
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


def _quick() -> dict:
    from rrra_core.workflows.retrain import PRESETS

    return dict(PRESETS["quick"])


def _shown(at: AppTest) -> list[str]:
    """The page's Markdown texts with Markdown escapes removed (run names are escaped where shown)."""
    return [m.value.replace("\\", "") for m in at.markdown]


def _write_run(run_id: str, config: dict, **files: dict) -> Run:
    run = Run(runs_dir() / run_id)
    run.write_json("config.json", config)
    for name, obj in files.items():
        run.write_json(f"{name}.json", obj)
    return run


def _retrain_config(tiny_run: TinyRun, **changes: object) -> dict:
    """A phase-2 run's config.json as a retrain of the tiny run writes it."""
    cfg = json.loads((tiny_run.run_dir / "config.json").read_text())
    cfg["retrain"] = {**RetrainConfig(base_run="adi-tiny", **changes).__dict__, "base_run": "adi-tiny", "changes": {}}
    return cfg


def test_a_running_job_is_followed_from_its_run_folders_and_can_be_cancelled(tiny_run: TinyRun) -> None:
    cfg = RetrainConfig(base_run="adi-tiny", **_quick())
    # A live process standing in for the driver; what the page shows comes from the run folders it writes.
    jobs.start_job(
        "adi-tiny-r7",
        [sys.executable, "-c", "import time; time.sleep(120)"],
        kind="retrain",
        meta={"config": cfg.__dict__, "base_run": "adi-tiny"},
    )
    try:
        _write_run(
            "adi-tiny-r7",
            _retrain_config(tiny_run, **_quick()),
            progress={"phase": 2, "stage": "done", "fraction": 1.0, "status": "done"},
        )
        _write_run(
            "adi-tiny-r7-phase3",
            {"kind": "phase3"},
            progress={"phase": 3, "epoch": 1, "step": 3, "total_steps": 10, "loss": 2.5, "status": "training"},
        )
        at = AppTest.from_file(APP, default_timeout=60)
        at.run()
        at.switch_page(PAGE).run()
        assert not at.exception, [e.value for e in at.exception]
        bar = next(p for p in at.progress)
        assert bar.value == 43  # phase 2 done (0.3 of the job) + 3/10 of phase 3 (0.45 of it)
        assert "phase 3: joint fine-tuning" in bar.text and "step 3/10" in bar.text
        assert any("adi-tiny-r7" in m and "running" in m for m in _shown(at))
        at.button(key="cancel_adi-tiny-r7").click().run()
        assert jobs.job_state("adi-tiny-r7").status == "cancelled"
        at.run()
        assert not at.exception and not list(at.progress)
        assert any("adi-tiny-r7" in m and "cancelled" in m for m in _shown(at))
        assert at.button(key="resume_adi-tiny-r7") is not None
    finally:
        jobs.cancel_job("adi-tiny-r7")


def test_retrains_started_from_a_terminal_are_listed_from_their_runs(tiny_run: TinyRun) -> None:
    # One finished: its summary gives the before/after table.
    _write_run("term-done", _retrain_config(tiny_run, phases="2"), progress={"status": "done", "fraction": 1.0})
    summary = {
        "base_run": "adi-tiny",
        "phase2_run": "term-done",
        "policy": "majority",
        "changes": {"judgments": 4, "false_negatives_added": 3, "confirmed_negatives": 1},
        "adapter": {"before": {"macro_f1": 0.4, "accuracy": 0.5}, "after": {"macro_f1": 0.6, "accuracy": 0.7}},
    }
    Run(runs_dir() / "term-done").write_json("retrain.json", summary)
    # One that stopped long ago without finishing: offered for resuming.
    old = _write_run(
        "term-stopped",
        _retrain_config(tiny_run, phases="2"),
        progress={"phase": 2, "stage": "encoding the corpus", "fraction": 0.3, "status": "running"},
    )
    stale = time.time() - 3600
    os.utime(old.file("progress.json"), (stale, stale))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("term-done" in m and "done" in m for m in _shown(at))
    assert any("4 verdicts used (majority): 3 false negatives turned positive" in c.value for c in at.caption)
    table = next(d.value for d in at.dataframe if "metric" in d.value.columns)
    row = table.set_index("metric").loc["adapter macro-F1"]
    assert (row["before"], row["after"]) == (0.4, 0.6) and abs(row["change"] - 0.2) < 1e-9
    assert any("term-stopped" in m and "stopped" in m for m in _shown(at))
    assert any("Started outside the app and not finished" in w.value for w in at.warning)
    assert at.button(key="resume_term-stopped") is not None and not list(at.progress)


@pytest.mark.parametrize("name", ["-h", "a b"])
def test_a_run_name_a_command_line_would_misread_is_refused_in_one_line(tiny_run: TinyRun, name: str) -> None:
    """Issue 25 item 10: "-h" became ``--run-id -h`` on the driver's command line (its help, or a usage error)."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(PAGE).run()
    next(t for t in at.text_input if t.label == "New run name").input(name)
    next(b for b in at.button if b.label == "Start retraining").click().run()
    assert not at.exception, [e.value for e in at.exception]
    [error] = [e.value for e in at.error]
    assert "run name" in error and len(error.splitlines()) == 1
    assert jobs.list_jobs(kind="retrain") == []


def test_a_retrain_that_failed_in_another_process_shows_as_failed(tiny_run: TinyRun) -> None:
    """Issue 25 item 10: a terminal's retrain whose phase 2 failed a moment ago read "running elsewhere"."""
    _write_run(
        "term-failed",
        _retrain_config(tiny_run, phases="2"),
        progress={"phase": 2, "stage": "training", "status": "failed", "message": "failed: the disk is full"},
    )
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("term-failed" in m and "failed" in m for m in _shown(at))
    assert not any("running elsewhere" in m for m in _shown(at)) and not list(at.progress)
    assert any("the disk is full" in e.value for e in at.error)
    assert at.button(key="resume_term-failed") is not None


def _finished_retrain(tiny_run: TinyRun, run_id: str, adapter: dict, **changes: object) -> Run:
    """A finished phase-2 retrain of the tiny run as the driver leaves it: config, metrics, scores and summary."""
    import shutil

    run = _write_run(run_id, _retrain_config(tiny_run, phases="2", **changes), progress={"status": "done"})
    for name in ("predictions.parquet", "metrics.json"):
        shutil.copy(tiny_run.run_dir / name, run.file(name))
    summary = {"base_run": "adi-tiny", "phase2_run": run_id, "policy": "majority", "changes": {}, "adapter": adapter}
    run.write_json("retrain.json", summary)
    return run


def test_open_for_review_opens_the_new_runs_review_queue(tiny_run: TinyRun) -> None:
    """Issue 25 item 16: the button switched the sidebar's run but left the person on the Retrain page."""
    _finished_retrain(tiny_run, "term-r2", {"before": None, "after": None})
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.selectbox(key="sb_run").set_value("adi-tiny").run()  # the newest run is chosen by itself
    at.switch_page(PAGE).run()
    at.button(key="open_term-r2").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == ["Review queue"]
    assert at.selectbox(key="sb_run").value == "term-r2"


def test_unchanged_adapter_rows_say_why_they_cannot_change(tiny_run: TinyRun) -> None:
    """Issue 25 item 16: the before/after table showed 0.8421 → 0.8421 for the adapter without a word."""
    held_out = json.loads((tiny_run.run_dir / "metrics.json").read_text())["after"]
    _finished_retrain(tiny_run, "term-same", {"before": held_out, "after": held_out})
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    table = next(d.value for d in at.dataframe if "metric" in d.value.columns).set_index("metric")
    assert table.loc["adapter macro-F1", "change"] == 0
    [note] = [c.value.replace("\\", "") for c in at.caption if "adapter rows did not change" in c.value]
    # The real reason, with the numbers the fit recorded: the same 3 held-out queries, the same classes (of ADI's
    # 35, 7 are the rerank's dev queries and 28 train the adapter, 3 of them held out to choose its epoch).
    assert "3 held-out queries (95 pairs)" in note and "the same queries before and after" in note
    assert "same class" in note and "only 3 held-out queries choose the epoch" in note


def test_the_overview_says_why_a_retrained_runs_suspects_jumped(tiny_run: TinyRun) -> None:
    """Issue 25 item 16: suspects went from 213 to 1,406 in a retrained run, and the Overview did not say why."""
    import pandas as pd

    run = _finished_retrain(tiny_run, "term-joint", {"before": None, "after": None})
    config = run.read_json("config.json")
    config["kind"], config["phase"]["mu"] = "phase3", 0.3
    config["retrain"].update(phases="2,3", changes={"false_negatives_added": 2})
    run.write_json("config.json", config)
    preds = pd.read_parquet(run.file("predictions.parquet"))
    preds["p_fn_given_neg"] = 0.9  # the joint adapter's scale: every negative a suspect
    preds.iloc[:10].to_parquet(run.file("predictions.parquet"))  # and a smaller pool than the base's
    base = pd.read_parquet(tiny_run.run_dir / "predictions.parquet")
    base_suspects = int(((base["label"] == 0) & (base["p_fn_given_neg"] >= 0.5)).sum())
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.selectbox(key="sb_run").set_value("term-joint").run()
    assert not at.exception, [e.value for e in at.exception]
    [note] = [t for c in at.caption if "Its base run adi-tiny" in (t := c.value.replace("\\", ""))]
    n_neg = int((preds.iloc[:10]["label"] == 0).sum())
    assert f"has {base_suspects:,} at this threshold, this run {n_neg:,}" in note
    assert "10 of this run's 10 candidates are in the base's pool too" in note
    assert "re-mined by its fine-tuned encoder" in note and "probability 0.3" in note
    assert "2 pairs people found relevant are labelled positive here" in note
