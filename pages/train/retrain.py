"""Retrain from the browser: corrected labels in, a new run out, followed live and compared with its base.

The job is ``scripts/retrain.py`` in its own process (``rrra_core.runtime.jobs``), so it
survives a browser refresh and an app restart; its row in the annotation
store's ``training_jobs`` table carries phase, step, loss and ETA.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import pandas as pd
import streamlit as st

import db
from pages.common import resources as res
from pages.common.downloads import csv_button
from pages.common.state import selection
from pages.common.widgets import md_escape
from rrra_core.runtime import jobs
from rrra_core.workflows.retrain import PRESETS, RetrainConfig, final_run_id

COMPARE_A, COMPARE_B = "compare_run_a", "compare_run_b"  # read by the Compare runs page
RUN_NAME, RUN_NAME_DEFAULT = "retrain_run_name", "retrain_run_name_default"

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
        "--p3-max-steps",
        str(cfg.p3_max_steps),
        "--p3-batch-size",
        str(cfg.p3_batch_size),
        "--p3-lr",
        str(cfg.p3_lr),
        "--eval-split",
        cfg.eval_split,
    ]


def _launch(cfg: RetrainConfig, run_id: str, resume: bool = False) -> None:
    state = jobs.job_state(run_id)
    if state is not None and state.active:
        st.session_state["_retrain_flash"] = ("info", f"Job {run_id} is already running.")
        return
    if state is None and not resume and (res.all_runs()["run"] == run_id).any():
        st.session_state["_retrain_flash"] = ("error", f"A run named {run_id!r} exists already; choose another name.")
        return
    jobs.start_job(
        run_id, _command(cfg, run_id), kind="retrain", meta={"config": cfg.__dict__, "base_run": cfg.base_run}
    )
    st.session_state["_retrain_flash"] = ("success", f"Started {run_id}.")
    st.session_state.pop(RUN_NAME, None)  # the next retrain gets a fresh default name


def _default_name(base: str) -> None:
    """Put a time-stamped default name in the name field once, not on every rerun.

    A default computed on each rerun would change the widget's identity every
    second and throw away what the person typed; it is refreshed only while the
    field still holds an untouched default for another base run.
    """
    current, default = st.session_state.get(RUN_NAME), st.session_state.get(RUN_NAME_DEFAULT)
    if current is None or (current == default and not current.startswith(f"{base}-r")):
        st.session_state[RUN_NAME] = st.session_state[RUN_NAME_DEFAULT] = f"{base}-r{time.strftime('%m%d-%H%M%S')}"


# --- the form -------------------------------------------------------------------

runs = res.all_runs()
bases = runs[(runs["kind"] == "phase2") & runs["browsable"]]["run"].tolist()
flash = st.session_state.pop("_retrain_flash", None)
if flash:
    getattr(st, flash[0])(md_escape(flash[1]))
if not bases:
    st.info("No phase-2 run to start from yet (the Overview page builds the demo run).")
else:
    with st.form("retrain_form", border=True):
        c = st.columns(3)
        base = c[0].selectbox("Base run", bases, index=bases.index(sel.run_id) if sel.run_id in bases else 0)
        policy_kind = c[1].selectbox(
            "Label-merge policy",
            ["majority", "any_relevant", "one annotator"],
            help="majority: most annotators' verdict; any_relevant: relevant if anyone said so; one annotator: only their judgments.",
        )
        who = c[2].text_input("Annotator (for 'one annotator')", value=sel.annotator)
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
        steps = c[3].number_input("Phase-3 steps (0 = one epoch)", 0, 100_000, p["p3_max_steps"])
        c = st.columns(4)
        batch = c[0].number_input("Phase-3 batch size", 1, 1024, p["p3_batch_size"])
        lr = c[1].number_input("Phase-3 learning rate", 1e-7, 1e-2, 2e-5, format="%.1e")
        eval_split = c[2].text_input(
            "Evaluate on split", "test", help="Before/after retrieval metrics (phase 3); empty for none."
        )
        _default_name(base)
        run_id = c[3].text_input("New run name", key=RUN_NAME)
        submitted = st.form_submit_button("Start retraining", type="primary")
    if submitted:
        policy = f"annotator:{who.strip()}" if policy_kind == "one annotator" else policy_kind
        try:
            cfg = RetrainConfig(
                base_run=base,
                policy=policy,
                phases=phases,
                adapter_epochs=int(epochs),
                p3_max_steps=int(steps),
                p3_batch_size=int(batch),
                p3_lr=float(lr),
                eval_split=eval_split.strip(),
            )
        except Exception as err:  # noqa: BLE001 - ConfigError carries the user's one-line message
            st.error(md_escape(str(err)))
        else:
            _launch(cfg, run_id.strip())
            st.rerun()


# --- jobs -------------------------------------------------------------------------


def _rows() -> dict[str, Any]:
    with res.session() as s:
        return {j.run_id: j for j in db.list_training_jobs(s, limit=50)}


def _status(state: jobs.JobState | None, row: Any) -> str:
    # The process is the truth for "is it running"; the row tells how it ended.
    if state is not None and state.active:
        return "running"
    if state is not None and state.status == "lost":
        return "lost"
    if row is not None and row.status in ("done", "failed", "cancelled"):
        return row.status
    return state.status if state is not None else (row.status if row is not None else "unknown")


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


def _job_card(job_id: str, row: Any) -> None:
    state = jobs.job_state(job_id)
    status = _status(state, row)
    cfg_meta = (state.meta.get("config") if state is not None else None) or {}
    with st.container(border=True):
        head = st.columns([3, 1, 1])
        head[0].markdown(
            f"**{job_id}** · {status}" + (f" · base `{cfg_meta.get('base_run')}`" if cfg_meta.get("base_run") else "")
        )
        if status == "running":
            st.progress(
                float(row.progress if row is not None else 0.0),
                text=f"{row.phase if row is not None else 'starting'} · {row.message if row is not None else ''}",
            )
            info = st.columns(3)
            info[0].caption(
                f"epoch {row.epoch if row is not None and row.epoch is not None else '—'} · step {row.step if row is not None and row.step is not None else '—'}"
            )
            if head[2].button("Cancel", key=f"cancel_{job_id}"):
                jobs.cancel_job(job_id)
                st.rerun(scope="app")
        elif status in ("failed", "lost", "cancelled"):
            if status == "failed":
                st.error(
                    f"Failed: {md_escape((row.error if row is not None and row.error else None) or (state.error if state else '') or 'see the log')}"
                )
            elif status == "lost":
                st.warning(
                    "The process stopped without finishing (killed, or the machine restarted). Resume continues from its checkpoints."
                )
            if cfg_meta and head[2].button("Resume", key=f"resume_{job_id}"):
                _launch(RetrainConfig(**cfg_meta), job_id, resume=True)
                st.rerun(scope="app")
            with st.expander("Log"):
                st.text(jobs.log_tail(job_id, 40))
        elif status == "done":
            cfg = RetrainConfig(**cfg_meta) if cfg_meta else None
            final = final_run_id(job_id, cfg) if cfg else job_id
            try:
                summary = res.run_json(final, "retrain.json", {}) or {}
            except Exception:  # noqa: BLE001 - a deleted run folder
                summary = {}
            ch = summary.get("changes") or {}
            st.caption(
                f"New run `{final}` · {ch.get('judgments', 0)} judgments used: {ch.get('false_negatives_added', 0)} false negatives "
                f"turned positive, {ch.get('confirmed_negatives', 0)} negatives confirmed."
            )
            if summary:
                table = _metric_table(summary)
                st.dataframe(
                    table,
                    hide_index=True,
                    column_config={
                        c: st.column_config.NumberColumn(format="%.4f") for c in ("before", "after", "change")
                    },
                )
                csv_button(table, f"{job_id}-before-after", key=f"csv_{job_id}")
            if head[2].button("Compare", key=f"compare_{job_id}"):
                st.session_state[COMPARE_A] = summary.get("base_run") or cfg_meta.get("base_run")
                st.session_state[COMPARE_B] = final
                st.switch_page("pages/analysis/compare.py")


@st.fragment(run_every=2.0)
def _jobs() -> None:
    rows = _rows()
    ids = list(dict.fromkeys([*(j.id for j in jobs.list_jobs(kind="retrain")), *rows]))
    if not ids:
        st.caption("No retraining jobs yet.")
        return
    for job_id in ids:
        _job_card(job_id, rows.get(job_id))


st.subheader("Jobs")
_jobs()
