"""The one module that loads and caches heavy objects for the app.

Pages call these functions and never load datasets, predictions, models or the
database engine themselves. Each object is built once per process
(``st.cache_resource``) or once per input (``st.cache_data``) and never
mutated. Cache keys include resolved paths and file modification times, so
a retrained run or another ``RRRA_HOME`` (the tests use one per test) is
never served stale.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

import db
from rrra_core.analysis.candidates import known_false_negatives, read_predictions
from rrra_core.data import Dataset, available_splits, dataset_folder, load_dataset
from rrra_core.runtime.paths import DEMO_DATASETS
from rrra_core.runtime.reports import upgrade_metrics
from rrra_core.runtime.run_config import parse_run_config
from rrra_core.runtime.runs import Run, list_runs, open_run

DATASETS = DEMO_DATASETS


# --- database ---------------------------------------------------------------


@st.cache_resource(show_spinner="Opening the annotation store…")
def _engine(url: str) -> Any:
    return db.init_db(url)


@st.cache_resource
def _sessions(url: str) -> Any:
    return db.session_factory(_engine(url))


def db_url() -> str:
    return db.resolve_url(None)


@contextmanager
def session() -> Iterator[Any]:
    """A short-lived session on the app's store (``$RRRA_DB_URL`` or the default SQLite file)."""
    with _sessions(db_url())() as s:
        yield s


@st.cache_resource(show_spinner="Registering the dataset in the annotation store…")
def _registered(url: str, dataset: str) -> str:
    with _sessions(url)() as s:
        return db.ensure_dataset(s, dataset).name


def store_name(dataset: str) -> str:
    """The dataset's name in the annotation store, registering it on first use."""
    return _registered(db_url(), dataset)


# --- datasets ---------------------------------------------------------------


@st.cache_resource(show_spinner="Loading the dataset…")
def _dataset(folder: str, name: str, split: str) -> Dataset:
    return load_dataset(name, split)


def dataset(name: str, split: str) -> Dataset:
    """A dataset split (corpus, queries, qrels), loaded once per process."""
    return _dataset(str(dataset_folder(name).resolve()), name, split)


@st.cache_data
def splits(name: str) -> list[str]:
    return list(available_splits(dataset_folder(name)))


@st.cache_data(show_spinner="Loading dataset statistics…", persist="disk")
def dataset_stats(name: str) -> dict[str, Any]:
    """Counts for one dataset across its splits."""
    out: dict[str, Any] = {"dataset": name}
    for split in splits(name):
        data = dataset(name, split)
        out["documents"] = len(data.corpus)
        out[f"{split} queries"] = len(data.qrels)
        out[f"{split} positives/query"] = round(sum(len(v) for v in data.qrels.values()) / max(len(data.qrels), 1), 2)
    return out


@st.cache_data
def _known_fn(name: str, split: str) -> dict[str, set[str]]:
    return known_false_negatives(name, split)


def known_fn(name: str, split: str) -> dict[str, set[str]]:
    """Ground-truth false negatives shipped with the dataset (SQuAD's answer-bearing paragraphs), else empty."""
    return _known_fn(name, split)


# --- runs -------------------------------------------------------------------


def run_dataset(cfg: dict[str, Any]) -> tuple[str | None, str | None]:
    """(dataset, training split) named in a run's config, whatever its kind (and its config's age)."""
    saved = parse_run_config(cfg or {})
    return saved.dataset, saved.train_split


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _runs_signature(home: str) -> tuple:
    """What the runs table depends on: each run folder with the mtimes of the files it reads.

    A few stat calls per run, so every rerun can afford it; the table is rebuilt
    exactly when a run appears, disappears, progresses or gets scored, never
    served stale (a time-to-live cache showed a finished demo run only seconds later).
    """
    root = Path(home) / "runs"
    if not root.is_dir():
        return ()
    return tuple(
        sorted(
            (p.name, *(_mtime(p / f) for f in ("config.json", "metrics.json", "progress.json", "predictions.parquet")))
            for p in root.iterdir()
            if p.is_dir()
        )
    )


@st.cache_data(show_spinner=False, max_entries=8)
def runs_table(home: str, signature: tuple = ()) -> pd.DataFrame:
    """One row per run folder: kind, dataset, status, whether it can be browsed, headline metrics.

    ``signature`` (:func:`_runs_signature`) is read only by the cache: it makes
    any change to the run folders a new cache key.
    """
    rows = []
    for run in list_runs():
        cfg = run.read_json("config.json", {}) or {}
        metrics = run.read_json("metrics.json", {}) or {}
        progress = run.read_json("progress.json", {}) or {}
        ds, split = run_dataset(cfg)
        headline = _headline(upgrade_metrics(metrics, cfg.get("kind")))
        rows.append(
            {
                "run": run.id,
                "kind": cfg.get("kind"),
                "dataset": ds,
                "split": split,
                "status": progress.get("status"),
                "browsable": run.file("predictions.parquet").is_file(),
                "modified": _mtime(run.file("progress.json")) or _mtime(run.file("config.json")),
                **headline,
            }
        )
    df = pd.DataFrame(
        rows,
        columns=[
            "run",
            "kind",
            "dataset",
            "split",
            "status",
            "browsable",
            "modified",
            "nDCG@10",
            "R@100",
            "adapter macro-F1",
        ],
    )
    return df.sort_values("modified", ascending=False, kind="stable").reset_index(drop=True)


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """nDCG@10 / R@100 / adapter F1 from any run kind's metrics.json (in the one shape: ``upgrade_metrics``)."""
    out: dict[str, Any] = {}
    after = metrics.get("after") or {}
    if metrics.get("phase") == 2:  # the adapter's held-out four-class metrics
        if after.get("macro_f1") is not None:
            out["adapter macro-F1"] = after["macro_f1"]
    elif after:
        out["nDCG@10"], out["R@100"] = after.get("nDCG@10"), after.get("R@100")
    return out


def all_runs() -> pd.DataFrame:
    from rrra_core.runtime.paths import home_dir

    home = str(home_dir())
    return runs_table(home, _runs_signature(home))


def get_run(run_id: str) -> Run:
    return open_run(run_id)


@st.cache_data(show_spinner="Loading the run's scored candidates…", max_entries=8)
def _predictions(path: str, mtime: float, lambda_rr: float) -> pd.DataFrame:
    return read_predictions(path, lambda_rr=lambda_rr)


def predictions(run_id: str, lambda_rr: float = 1.0) -> pd.DataFrame:
    """The run's ``predictions.parquet`` with rerank positions (cached until the file changes)."""
    path = open_run(run_id).file("predictions.parquet")
    return _predictions(str(path), _mtime(path), float(lambda_rr))


@st.cache_data(show_spinner=False, max_entries=8)
def _run_json(path: str, mtime: float) -> Any:
    import json

    return json.loads(Path(path).read_text(encoding="utf-8"))


def run_json(run_id: str, name: str, default: Any = None) -> Any:
    """A JSON file of a run (config, metrics), cached until it changes."""
    path = open_run(run_id).file(name)
    if not path.is_file():
        return default
    return _run_json(str(path), _mtime(path))
