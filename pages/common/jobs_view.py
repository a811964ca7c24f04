"""Background jobs the pages start: the demo and New project builds (one progress bar), per-query results, refits.

The build itself is ``scripts/demo.py`` in its own process (``rrra_core.runtime.jobs``);
this module only starts it and reads its ``progress.json`` once a second
inside an ``st.fragment``, so the rest of the page stays responsive. The
per-query job is ``scripts/per_query.py``; Compare runs follows it.
"""

from __future__ import annotations

import sys
from typing import Any

import streamlit as st

from rrra_core.runtime import jobs
from rrra_core.runtime.errors import UserError
from rrra_core.runtime.runs import runs_dir
from rrra_core.workflows.demo import DemoConfig, demo_run_id

from . import auth, keys
from .widgets import md_escape, show_text

DEMO_JOB = "demo-build"
PER_QUERY_JOB_KIND = "per_query"
REFIT_JOB_KIND = "review_refit"


def start(job_id: str, command: list[str], *, kind: str, meta: dict[str, Any], action: str) -> jobs.JobState:
    """Start a background job if the person may do ``action`` (``UserError`` with the refusal if not).

    Checked here, where the job starts, not only where its button is drawn: a forged widget event is refused too.
    In team mode the job records who started it (its ``job.json`` and the store's audit record).
    """
    if not auth.can(action):
        raise UserError(auth.refusal(action))
    me = auth.identity()
    state = jobs.start_job(job_id, command, kind=kind, meta={**meta, **({"started_by": me} if me else {})})
    auth.record("job_start", job_id, {"kind": kind})
    return state


def cancel(job_id: str) -> bool:
    """Cancel a job if the person may (the refusal is flashed if not); whether it was asked to stop."""
    if not auth.check("cancel_job"):
        return False
    jobs.cancel_job(job_id, by=auth.identity())
    auth.record("job_cancel", job_id)
    return True


def demo_command(cfg: DemoConfig) -> list[str]:
    return [
        sys.executable,
        "scripts/demo.py",
        "--dataset",
        cfg.dataset,
        "--max-train-queries",
        str(cfg.max_train_queries),
    ]


def _progress(run_id: str) -> dict:
    import json

    path = runs_dir() / run_id / "progress.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def progress_text(info: dict) -> str:
    """A run's ``progress.json`` as one line: the stage, its counts and its ETA (``starting…`` before the first)."""
    stage = str(info.get("stage") or "starting")
    message = str(info.get("message") or "")
    # Stage progress messages start with the stage; the training loop's ("step 12/40 · ...") do not.
    text = message if message.startswith(stage) else " · ".join(t for t in (stage, message) if t)
    eta = info.get("eta_s")
    if isinstance(eta, (int, float)) and eta > 0 and "ETA" not in text:
        text += f" · ETA {eta:.0f} s"
    return md_escape(text) if text != "starting" else "starting…"


def demo_offer(cfg: DemoConfig | None = None) -> None:
    """Offer to build the demo run; while it builds, show its progress and reload when done."""
    cfg = cfg or DemoConfig()
    state = jobs.job_state(DEMO_JOB)
    if state is not None and state.active:
        _follow(cfg.dataset)
        return
    st.info(
        "No scored run yet. Build the demo: the bundled all-MiniLM-L6-v2 encodes the SQuAD demo corpus, "
        f"retrieves the top {cfg.top_k} for {cfg.max_train_queries} training questions, trains the RRRA adapter "
        "and scores every candidate. It runs in the background (a few minutes on 2 CPU cores); "
        "you can leave this page open."
    )
    if state is not None and state.status in ("failed", "lost"):
        st.error(
            f"The last demo build {state.status}: {md_escape(state.error or 'the process ended without finishing')}"
        )
        with st.expander("Build log"):
            show_text(jobs.log_tail(DEMO_JOB, 40))
    if not auth.can("new_project"):
        st.caption("An admin builds it.")
        return
    if st.button("Build the demo run", type="primary", key=keys.DEMO_BUILD):
        start(DEMO_JOB, demo_command(cfg), kind="demo", meta={"dataset": cfg.dataset}, action="new_project")
        st.rerun()


def _follow(dataset: str) -> None:
    follow_build(DEMO_JOB, demo_run_id(dataset), "the demo run", keys.DEMO_CANCEL)


def follow_build(job_id: str, run_id: str, what: str, cancel_key: str) -> None:
    """Follow job ``job_id`` building run ``run_id``: its progress once a second, Cancel; reload the app when it ends.

    The demo build and the New project page's build show the same bar (stage, counts, ETA).
    """

    @st.fragment(run_every=1.0)
    def progress() -> None:
        state = jobs.job_state(job_id)
        info = _progress(run_id)
        if state is None or not state.active:
            if state is not None and state.status == "done":
                st.success(f"{what[:1].upper()}{what[1:]} is ready.")
            st.rerun(scope="app")
            return
        fraction = min(1.0, max(0.0, float(info.get("fraction") or 0.0)))
        st.progress(fraction, text=f"Building {what}: {progress_text(info)}")
        if auth.can("cancel_job") and st.button("Cancel the build", key=cancel_key):
            cancel(job_id)
            st.rerun(scope="app")

    progress()


# --- a new project's first run -------------------------------------------------------

PROJECT_JOB = "new-project"  # one build at a time, like the demo: each takes both cores for minutes


def project_command(dataset: str, model: str, split: str, max_queries: int, run_id: str) -> list[str]:
    return [
        sys.executable,
        "scripts/new_project.py",
        "--dataset",
        dataset,
        "--model",
        model,
        "--train-split",
        split,
        "--max-train-queries",
        str(max_queries),
        "--run-id",
        run_id,
    ]


def start_project(dataset: str, model: str, split: str, max_queries: int, run_id: str) -> Any:
    """Start ``scripts/new_project.py`` as the background job :data:`PROJECT_JOB`."""
    return start(
        PROJECT_JOB,
        project_command(dataset, model, split, max_queries, run_id),
        kind="project",
        meta={"run": run_id, "dataset": dataset},
        action="new_project",
    )


# --- a run's per-query results ---------------------------------------------------


def per_query_job_id(run_id: str) -> str:
    return f"per-query-{run_id}"


def per_query_command(run_id: str) -> list[str]:
    return [sys.executable, "scripts/per_query.py", "--run", run_id]


def start_per_query(run_id: str) -> Any:
    """Start ``scripts/per_query.py`` for the run as a background job (one per run)."""
    return jobs.start_job(
        per_query_job_id(run_id), per_query_command(run_id), kind=PER_QUERY_JOB_KIND, meta={"run": run_id}
    )


def per_query_job(run_id: str) -> Any:
    return jobs.job_state(per_query_job_id(run_id))


# --- a run's review-queue refit ------------------------------------------------------


def refit_job_id(run_id: str) -> str:
    return f"review-refit-{run_id}"


def refit_command(run_id: str) -> list[str]:
    # --wait: a refit someone started from a terminal finishes first instead of failing this one.
    return [sys.executable, "scripts/refit_queue.py", "--run", run_id, "--wait", "120"]


def start_refit(run_id: str) -> Any:
    """Start ``scripts/refit_queue.py`` for the run as a background job (one per run at a time)."""
    return jobs.start_job(refit_job_id(run_id), refit_command(run_id), kind=REFIT_JOB_KIND, meta={"run": run_id})


def refit_job(run_id: str) -> Any:
    return jobs.job_state(refit_job_id(run_id))
