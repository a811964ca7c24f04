"""Retrain from the browser: corrected labels in, a new run out, followed live and compared with its base.

The job is ``scripts/retrain.py`` in its own process (``rrra_core.runtime.jobs``), so it
survives a browser refresh and an app restart. Everything shown about a job
comes from files: its job folder says whether the process runs (and how it
ended), its run folders' ``progress.json`` how far it has come
(:func:`rrra_core.workflows.retrain.retrain_progress`), and its final run's
``retrain.json`` the before/after summary. Retrains started from a terminal
are listed too, from the runs that record them.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import pandas as pd
import streamlit as st

import db
from pages.common import jobs_view, keys
from pages.common import resources as res
from pages.common.downloads import csv_button
from pages.common.run_headline import rerank_line
from pages.common.state import choose_run, selection
from pages.common.widgets import md_escape
from rrra_core.runtime import jobs
from rrra_core.runtime.errors import UserError
from rrra_core.workflows.retrain import (
    PRESETS,
    SUMMARY_FILE,
    RetrainConfig,
    RetrainProgress,
    final_run_id,
    lineage_text,
    recorded_config,
    retrain_progress,
)

st.title("Retrain")
st.caption("Merge the judgments into the labels and retrain. Runs in the background; you can leave this page.")
sel = selection()


def _command(cfg: RetrainConfig, run_id: str) -> list[str]:
    return [
        sys.executable,
        "scripts/retrain.py",
        "--run-id",
        run_id,
        "--base-run",
        cfg.base_run,
        "--policy",
        cfg.policy,
        "--phases",
        cfg.phases,
        "--adapter-epochs",
        str(cfg.adapter_epochs),
        "--p3-epochs",
        str(cfg.p3_epochs),
        "--p3-max-steps",
        str(cfg.p3_max_steps),
        "--p3-batch-size",
        str(cfg.p3_batch_size),
        "--p3-lr",
        str(cfg.p3_lr),
        "--eval-split",
        cfg.eval_split,
        "--seed",
        str(cfg.seed),
    ]


def _launch(cfg: RetrainConfig, run_id: str, resume: bool = False) -> None:
    state = jobs.job_state(run_id)
    if state is not None and state.active:
        st.session_state[keys.RETRAIN_FLASH] = ("info", f"Job {run_id} is already running.")
        return
    if state is None and not resume and (res.all_runs()["run"] == run_id).any():
        st.session_state[keys.RETRAIN_FLASH] = ("error", f"A run named {run_id!r} exists already; choose another name.")
        return
    # Checked and recorded there (who started it), not only by the page's gate: a forged request is refused too.
    jobs_view.start(
        run_id,
        _command(cfg, run_id),
        kind="retrain",
        meta={"config": cfg.__dict__, "base_run": cfg.base_run},
        action="retrain",
    )
    st.session_state[keys.RETRAIN_FLASH] = ("success", f"Started {run_id}.")
    st.session_state.pop(keys.RETRAIN_RUN_NAME, None)  # the next retrain gets a fresh default name


def _default_name(base: str) -> None:
    """Put a time-stamped default name in the name field once, not on every rerun.

    A default computed on each rerun would change the widget's identity every
    second and throw away what the person typed; it is refreshed only while the
    field still holds an untouched default for another base run.
    """
    current, default = st.session_state.get(keys.RETRAIN_RUN_NAME), st.session_state.get(keys.RETRAIN_RUN_NAME_DEFAULT)
    if current is None or (current == default and not current.startswith(f"{base}-r")):
        st.session_state[keys.RETRAIN_RUN_NAME] = st.session_state[keys.RETRAIN_RUN_NAME_DEFAULT] = (
            f"{base}-r{time.strftime('%m%d-%H%M%S')}"
        )


# --- the form -------------------------------------------------------------------

runs = res.all_runs()
# A base is any run a reviewer can work on: a phase-2 run, or a finished retrain's run (the next round).
bases = runs[runs["kind"].isin(["phase2", "phase3"]) & runs["browsable"]]["run"].tolist()
flash = st.session_state.pop(keys.RETRAIN_FLASH, None)
if flash:
    getattr(st, flash[0])(md_escape(flash[1]))


def _busy(base: str) -> list[str]:
    """The retrain jobs from ``base`` whose process runs now."""
    return [s.id for s in jobs.list_jobs(kind="retrain") if s.active and (s.meta or {}).get("base_run") == base]


if not bases:
    st.info("No run to start from yet (the Overview page builds the demo run).")
else:
    base = st.selectbox(
        "Base run",
        bases,
        index=bases.index(sel.run_id) if sel.run_id in bases else 0,
        help="The run whose encoder, adapter settings and training queries the new round starts from.",
    )
    base_row = runs.set_index("run").loc[base]
    if isinstance(base_row.get("lineage"), str):
        st.caption(md_escape(base_row["lineage"]))
    busy = _busy(base)
    split_options = [*res.splits(str(base_row["dataset"])), ""]
    with st.form("retrain_form", border=True):
        c = st.columns(2)
        policy_kind = c[0].selectbox(
            "Label-merge policy",
            ["majority", "any_relevant", "one annotator"],
            help="majority: most annotators' verdict; any_relevant: relevant if anyone said so; "
            "one annotator: only their judgments.",
        )
        who = c[1].text_input("Annotator (for 'one annotator')", value=sel.annotator)
        c = st.columns(4)
        preset = c[0].radio(
            "Preset",
            list(PRESETS),
            horizontal=True,
            help="quick: minutes on a laptop CPU; full: the base run's own budget.",
        )
        p = PRESETS[preset]
        phases = c[1].radio(
            "Phases",
            ["2", "2,3"],
            index=["2", "2,3"].index(p["phases"]),
            format_func={"2": "adapter only (2)", "2,3": "adapter + encoder (2, 3)"}.get,
            horizontal=True,
        )
        epochs = c[2].number_input("Adapter epochs", 1, 50, p["adapter_epochs"])
        p3_epochs = c[3].number_input("Phase-3 epochs", 1, 20, 1)
        c = st.columns(4)
        steps = c[0].number_input("Phase-3 steps (0 = all epochs)", 0, 100_000, p["p3_max_steps"])
        batch = c[1].number_input("Phase-3 batch size", 2, 1024, p["p3_batch_size"])
        lr = c[2].number_input("Phase-3 learning rate", 1e-7, 1e-2, 2e-5, format="%.1e")
        eval_split = c[3].selectbox(
            "Evaluate on split",
            split_options,
            index=split_options.index("test") if "test" in split_options else 0,
            format_func=lambda x: x or "(none)",
            help="The dataset's qrels splits: before/after retrieval metrics (phase 3).",
        )
        _default_name(base)
        run_id = st.text_input("New run name", key=keys.RETRAIN_RUN_NAME)
        submitted = st.form_submit_button("Start retraining", type="primary", disabled=bool(busy))
    if busy:
        st.caption(f"A retrain from {md_escape(base)} is running ({md_escape(', '.join(busy))}): Start waits for it.")
    if submitted:
        policy = f"annotator:{who.strip()}" if policy_kind == "one annotator" else policy_kind
        try:
            db.parse_policy(policy)  # the store's vocabulary; the job itself checks it again
            cfg = RetrainConfig(
                base_run=base,
                policy=policy,
                phases=phases,
                adapter_epochs=int(epochs),
                p3_epochs=int(p3_epochs),
                p3_max_steps=int(steps),
                p3_batch_size=int(batch),
                p3_lr=float(lr),
                eval_split=eval_split,
            )
        except UserError as err:  # ConfigError or AnnotationError: the user's one-line message
            st.error(md_escape(str(err)))
        else:
            try:
                # A name such as "-h" or "../x": the one-line reason, nothing started.
                _launch(cfg, jobs.check_name(run_id.strip(), "run name"))
            except UserError as err:
                st.error(md_escape(str(err)))
            else:
                st.rerun()


# --- jobs -------------------------------------------------------------------------

#: A job started outside the app counts as running while its runs wrote progress this recently (seconds).
FRESH_S = 120.0


def _config(meta: Any) -> RetrainConfig | None:
    try:
        return RetrainConfig(**meta) if isinstance(meta, dict) else None
    except (TypeError, UserError):  # a job folder from another version of the app
        return None


def _retrains() -> dict[str, tuple[jobs.JobState | None, RetrainConfig | None]]:
    """Every retrain job, newest first: those the app started (job folders), then those started elsewhere."""
    found: dict[str, tuple[jobs.JobState | None, RetrainConfig | None]] = {
        state.id: (state, _config(state.meta.get("config")) or recorded_config(state.id))
        for state in jobs.list_jobs(kind="retrain")
    }
    runs = res.all_runs()
    for run_id in runs.loc[runs["kind"] == "phase2", "run"]:
        if run_id not in found and (cfg := recorded_config(run_id)) is not None:
            found[run_id] = (None, cfg)
    return found


def _status(state: jobs.JobState | None, progress: RetrainProgress) -> str:
    # The process is the truth for "is it running"; the final run's summary for "is it done".
    if state is not None and state.active:
        return "running"
    if progress.done:
        return "done"
    # Without a process of ours to ask (started elsewhere, or ours lost), a run that recorded its own end says how
    # the job ended: a fresh progress.json that says "failed" is a failure, not a job running elsewhere.
    ended = set(progress.runs.values()) & {"failed", "cancelled"}
    if (state is None or state.status == "lost") and ended:
        return "failed" if "failed" in ended else "cancelled"
    if state is not None:
        return state.status  # failed, cancelled or lost
    fresh = progress.updated is not None and time.time() - progress.updated < FRESH_S
    return "running elsewhere" if fresh else "stopped"


def _metric_table(summary: dict[str, Any]) -> pd.DataFrame:
    rows = []
    a = summary.get("adapter") or {}
    for name, key in (("adapter macro-F1", "macro_f1"), ("adapter accuracy", "accuracy")):
        rows.append(
            {"metric": name, "before": (a.get("before") or {}).get(key), "after": (a.get("after") or {}).get(key)}
        )
    for cls in ("FN", "TP"):
        rows.append(
            {
                "metric": f"adapter F1 {cls}",
                "before": ((a.get("before") or {}).get("f1") or {}).get(cls),
                "after": ((a.get("after") or {}).get("f1") or {}).get(cls),
            }
        )
    r = summary.get("retrieval") or {}
    for variant in ("no_rerank", "rerank"):
        before, after = (r.get("before") or {}).get(variant) or {}, (r.get("after") or {}).get(variant) or {}
        for m in ("nDCG@10", "R@10", "R@100"):
            if m in before or m in after:
                rows.append(
                    {
                        "metric": f"{m} ({'reranked' if variant == 'rerank' else 'retriever'}, {r.get('split')})",
                        "before": before.get(m),
                        "after": after.get(m),
                    }
                )
    df = pd.DataFrame(rows)
    df["change"] = df["after"] - df["before"]
    return df


def _adapter_note(summary: dict[str, Any]) -> str | None:
    """Why the adapter rows of the before/after table did not move, when they did not (else ``None``).

    Each adapter row is that adapter's own score on its held-out queries (phase 2's ``metrics.json``
    ``after``). The split is drawn from the base run's training queries with the fit's seed, so before and
    after are scored on the same queries; with a handful of them the retrained adapter often predicts
    exactly the classes the base's did, and every figure stays the same.
    """
    a = summary.get("adapter") or {}
    before, after = a.get("before") or {}, a.get("after") or {}

    def figures(m: dict[str, Any]) -> tuple:
        return (m.get("macro_f1"), m.get("accuracy"), (m.get("f1") or {}).get("FN"), (m.get("f1") or {}).get("TP"))

    if not before or not after or figures(before) != figures(after):
        return None
    trained = (res.run_json(str(summary.get("phase2_run")), "metrics.json", {}) or {}).get("train") or {}
    queries = (trained.get("queries") or {}).get("val") if isinstance(trained.get("queries"), dict) else None
    pairs = (trained.get("pairs") or {}).get("val") if isinstance(trained.get("pairs"), dict) else None
    held = f"{queries} held-out queries ({pairs:,} pairs)" if queries is not None and pairs is not None else None
    same = before.get("confusion") is not None and before.get("confusion") == after.get("confusion")
    text = (
        f"The adapter rows did not change: each is that adapter's own score on {held or 'its held-out queries'}, "
        "the same queries before and after (drawn from the base run's training queries with the same seed), and "
        + (
            "the retrained adapter put every one of those pairs in the same class as the base's did."
            if same
            else "both adapters scored them the same."
        )
    )
    # The fit's own warnings say when so few queries decide that its figures are unreliable.
    for warning in trained.get("warnings") or []:
        text += f" The fit warned: {warning}."
    return text + " The retrieval rows, and the new run's Review queue, show what the retrain changed."


def _running(job_id: str, state: jobs.JobState | None, progress: RetrainProgress, button: Any) -> None:
    st.progress(progress.fraction, text=progress.stage)  # our own runs' stage names and numbers
    epoch = progress.epoch if progress.epoch is not None else "—"
    step = progress.step if progress.step is not None else "—"
    eta = f" · about {progress.eta_s:.0f} s left in this stage" if progress.eta_s else ""
    st.caption(f"epoch {epoch} · step {step}{eta}")
    if state is None:
        st.caption("Started outside the app: follow or stop it where it runs.")
    elif button.button("Cancel", key=keys.job_cancel(job_id)):
        jobs_view.cancel(job_id)
        st.rerun(scope="app")


def _stopped(
    job_id: str,
    state: jobs.JobState | None,
    cfg: RetrainConfig | None,
    status: str,
    button: Any,
    progress: RetrainProgress,
) -> None:
    progress_note = "Resume continues from where it stopped (finished phases are kept, phase 3 from its checkpoint)."
    if status == "failed":
        # Our job's error line, else (started elsewhere) the failed run's own "failed: ..." message.
        error = (state.error if state else None) or (progress.stage if "failed" in progress.stage else None)
        st.error(f"Failed: {md_escape(error or 'see the log')}")
    elif status == "cancelled":
        st.warning(f"Cancelled; its unfinished runs are not offered for review. {progress_note}")
    elif status == "lost":
        st.warning(f"The process stopped without finishing (killed, or the machine restarted). {progress_note}")
    elif status == "stopped":
        st.warning(f"Started outside the app and not finished; no progress for a while. {progress_note}")
    if cfg is not None and button.button("Resume", key=keys.retrain_resume(job_id)):
        _launch(cfg, job_id, resume=True)
        st.rerun(scope="app")
    if state is not None:
        with st.expander("Log"):
            st.text(jobs.log_tail(job_id, 40))


def _rerank_captions(summary: dict[str, Any], final: str) -> None:
    """Whether the base and the new run rerank, and on what dev evidence: each run chose its own (issue 29)."""
    for label, run_id in (("Before", summary.get("base_run")), ("After", final)):
        if not run_id:
            continue
        try:
            config = res.run_json(str(run_id), "config.json", {}) or {}
            metrics = res.run_json(str(run_id), "metrics.json", {}) or {}
        except UserError:  # a deleted run folder
            continue
        st.caption(f"{label} (`{md_escape(str(run_id))}`): {rerank_line(config, metrics)}")


def _done(job_id: str, cfg: RetrainConfig | None, button: Any) -> None:
    final = final_run_id(job_id, cfg) if cfg else job_id
    try:
        summary = res.run_json(final, SUMMARY_FILE, {}) or {}
    except UserError:  # a deleted run folder
        summary = {}
    ch = summary.get("changes") or {}
    policy = summary.get("policy") or (cfg.policy if cfg else "")
    st.caption(
        f"New run `{final}` · {ch.get('judgments', 0)} verdicts used ({md_escape(policy)}): "
        f"{ch.get('false_negatives_added', 0)} false negatives turned positive, "
        f"{ch.get('confirmed_negatives', 0)} negatives confirmed."
    )
    if summary:
        table = _metric_table(summary)
        st.dataframe(
            table,
            hide_index=True,
            column_config={c: st.column_config.NumberColumn(format="%.4f") for c in ("before", "after", "change")},
        )
        csv_button(table, f"{job_id}-before-after", key=keys.csv(job_id))
        if (note := _adapter_note(summary)) is not None:
            st.caption(md_escape(note))
        _rerank_captions(summary, final)
    lineage = res.run_json(final, "config.json", {}) or {}
    if (text := lineage_text(lineage)) is not None:
        st.caption(md_escape(text))
    reviewable = final in set(res.all_runs().query("browsable")["run"])
    # The sidebar's keys can only move in a callback, before its widgets are drawn; then the queue opens on it.
    # Drawn whatever the sidebar shows: the callback has already moved it to ``final`` when the click is read.
    if reviewable and st.button(
        f"Open {final} for review",
        key=keys.retrain_open(job_id),
        help="Switch the sidebar to the new run and open its Review queue: its candidates were scored anew.",
        on_click=choose_run,
        args=(str(res.run_dataset(lineage)[0]), final),
    ):
        st.switch_page("pages/label/review.py")
    if button.button("Compare", key=keys.retrain_compare(job_id)):
        # "Before" is the run that holds the base's evaluation (the base run itself is never written to).
        st.session_state[keys.RETRAIN_COMPARE_A] = (
            summary.get("before_run") or summary.get("base_run") or (cfg and cfg.base_run)
        )
        st.session_state[keys.RETRAIN_COMPARE_B] = final
        st.switch_page("pages/analysis/compare.py")


def _job_card(job_id: str, state: jobs.JobState | None, cfg: RetrainConfig | None) -> None:
    progress = retrain_progress(job_id, cfg) if cfg is not None else RetrainProgress()
    status = _status(state, progress)
    with st.container(border=True):
        head = st.columns([3, 1, 1])
        head[0].markdown(
            f"**{md_escape(job_id)}** · {status}" + (f" · base `{cfg.base_run}`" if cfg is not None else "")
        )
        if status in ("running", "running elsewhere"):
            _running(job_id, state, progress, head[2])
        elif status == "done":
            _done(job_id, cfg, head[2])
        else:
            _stopped(job_id, state, cfg, status, head[2], progress)


@st.fragment(run_every=2.0)
def _jobs() -> None:
    found = _retrains()
    if not found:
        st.caption("No retraining jobs yet.")
        return
    for job_id, (state, cfg) in found.items():
        _job_card(job_id, state, cfg)


st.subheader("Jobs")
_jobs()
