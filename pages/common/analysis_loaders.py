"""Cached loaders for the analysis pages (training dynamics, run comparison).

Like ``resources.py``: every file read is cached with ``st.cache_data`` under
its resolved path and modification time, so a run that is still training, or
a per-query file a background job just wrote, is never served stale. The
frames come from the pure functions in ``rrra_core.analysis.dynamics`` and
``rrra_core.analysis.comparison``; nothing here trains or encodes.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from rrra_core.analysis.comparison import PER_QUERY_FILE, PerQuery, eval_settings, parse_per_query
from rrra_core.analysis.dynamics import gradient_distribution, gradient_frame, gradient_over_training, step_frame
from rrra_core.runtime import jobs
from rrra_core.runtime.run_config import parse_run_config
from rrra_core.runtime.runs import Run, open_run

from . import resources as res

PER_QUERY_JOB_KIND = "per_query"
_GRADIENT_COLUMNS = ["step", "epoch", "kind", "category", "grad"]


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


@st.cache_data(show_spinner=False, max_entries=32)
def _steps(path: str, mtime: float) -> pd.DataFrame:
    return step_frame(Run(Path(path)).read_log())


def steps(run_id: str) -> pd.DataFrame:
    """The run's per-step training log (one row per optimizer step)."""
    run = open_run(run_id)
    return _steps(str(run.path), _mtime(run.file("log.jsonl")))


@st.cache_data(show_spinner="Reading the gradient log…", max_entries=16)
def _gradients(path: str, mtime: float) -> pd.DataFrame:
    import pyarrow.parquet as pq

    # Only the columns the analysis needs: query and doc ids would dominate the memory of a long run.
    return pq.read_table(path, columns=_GRADIENT_COLUMNS).to_pandas()


@st.cache_data(show_spinner="Summarising the gradient logs…", max_entries=16)
def _gradient_views(
    sources: tuple[tuple[str, str, float], ...],
    kinds: tuple[str, ...],
    scale: tuple[tuple[str, float], ...],
    buckets: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    frames = {label: _gradients(path, mtime) for label, path, mtime in sources}
    grads = gradient_frame(frames, kinds=kinds, scale=dict(scale) or None)
    return gradient_distribution(grads), gradient_over_training(grads, buckets)


def gradient_views(
    labels: dict[str, str], kinds: list[str], scale: dict[str, float] | None, buckets: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(distribution per series and category, values per step bucket) over the runs ``{run id: series label}``.

    Cached per input, so moving a control does not re-summarise a long run's log.
    """
    sources = []
    for run_id, label in labels.items():
        path = open_run(run_id).file("gradients.parquet")
        if path.is_file():
            sources.append((label, str(path), _mtime(path)))
    return _gradient_views(tuple(sources), tuple(kinds), tuple(sorted((scale or {}).items())), int(buckets))


@st.cache_data(show_spinner=False, max_entries=16)
def _per_query(path: str, mtime: float) -> PerQuery:
    import json

    return parse_per_query(json.loads(Path(path).read_text(encoding="utf-8")), source=path)


def per_query(run_id: str) -> PerQuery | None:
    """The run's per-query results, or None until training or a background job has written them."""
    path = open_run(run_id).file(PER_QUERY_FILE)
    if not path.is_file():
        return None
    return _per_query(str(path), _mtime(path))


def runs_overview() -> pd.DataFrame:
    """Every run with what the analysis pages need: kind, sampler, eval split, τ, which files it has."""
    from rrra_core.runtime.paths import home_dir

    return _runs_overview(str(home_dir()), res.all_runs())


@st.cache_data(ttl=3, show_spinner=False)
def _runs_overview(home: str, runs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for r in runs.itertuples(index=False):
        cfg = res.run_json(r.run, "config.json", {}) or {}
        phase = parse_run_config(cfg).phase  # the phase's settings, whatever the config's age
        dataset, eval_split = eval_settings(cfg)
        folder = open_run(r.run).path
        if r.kind == "phase2":
            # A retrain's base: evaluated for retrieval by the retrain job (before/after).
            base_eval = res.run_json(r.run, "retrieval_eval.json", {}) or {}
            dataset, eval_split = base_eval.get("dataset") or r.dataset, base_eval.get("split")
        rows.append(
            {
                "run": r.run,
                "kind": r.kind,
                "dataset": dataset or r.dataset,
                "eval split": eval_split,
                "status": r.status,
                "sampler": phase.get("sampler") if r.kind == "phase3" else None,
                "temperature": float(phase.get("temperature", 0.05) or 0.05),
                "has log": (folder / "log.jsonl").is_file(),
                "has gradients": (folder / "gradients.parquet").is_file(),
                "has model": (folder / "model").is_dir(),
                "has per-query": (folder / PER_QUERY_FILE).is_file(),
            }
        )
    cols = [
        "run",
        "kind",
        "dataset",
        "eval split",
        "status",
        "sampler",
        "temperature",
        "has log",
        "has gradients",
        "has model",
        "has per-query",
    ]
    return pd.DataFrame(rows, columns=cols)


def query_texts(dataset: str | None, split: str | None) -> dict[str, str]:
    """Query texts of a dataset split (empty if it cannot be loaded, e.g. a moved BEIR folder)."""
    if not dataset or not split:
        return {}
    try:
        return res.dataset(dataset, split).queries
    except Exception:  # noqa: BLE001 - texts are a convenience; ids still identify the queries
        return {}


# --- the per-query background job ------------------------------------------------


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
