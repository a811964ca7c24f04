"""The one module that loads and caches heavy objects for the app: the only place that uses Streamlit's caches.

Pages call these functions and never load datasets, predictions, training
logs, embedding maps or the database engine themselves. A run's scored
candidates are read through its store (:func:`run_store`): a page reads the
rows it shows, never the whole predictions frame. Each object is built
once per process (``st.cache_resource``) or once per input (``st.cache_data``)
and never mutated. Cache keys include resolved paths and file modification
times, so a retrained run, a run that is still training, a file a background
job just wrote or another ``RRRA_HOME`` (the tests use one per test) is never
served stale. The frames come from the pure readers in ``rrra_core.analysis``;
nothing here trains or encodes. ``tests/app/test_app_hygiene.py`` fails if
another module of the app caches.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

import db
from rrra_core.analysis.candidates import known_false_negatives
from rrra_core.analysis.comparison import PER_QUERY_FILE, PerQuery, eval_settings, parse_per_query
from rrra_core.analysis.dynamics import gradient_distribution, gradient_frame, gradient_over_training, step_frame
from rrra_core.analysis.pool_overlap import PoolOverlap, pool_overlap
from rrra_core.analysis.projection import Projection, Scope, load_projection, predictions_digest, projection_paths
from rrra_core.analysis.run_reader import RunStore, open_store
from rrra_core.data import Dataset, available_splits, dataset_folder, load_dataset, load_queries, resolve_data_file
from rrra_core.review import QueueVersion
from rrra_core.review.live import VERSION_COLUMN, LiveQueue, live_queue, split_mask
from rrra_core.review.versions import (
    LATEST_FILE,
    read_score_rows,
    read_verdicts,
    review_dir,
    usable_latest,
)
from rrra_core.runtime.paths import DEMO_DATASETS
from rrra_core.runtime.reports import upgrade_metrics
from rrra_core.runtime.run_config import parse_run_config
from rrra_core.runtime.runs import Run, list_runs, open_run
from rrra_core.workflows.retrain import SUMMARY_FILE, lineage_text, offered_for_review

DATASETS = DEMO_DATASETS
_GRADIENT_COLUMNS = ["step", "epoch", "kind", "category", "grad"]


# --- database ---------------------------------------------------------------


@st.cache_resource(show_spinner="Opening the annotation store…")
def _engine(url: str) -> Any:
    # db.init_db is every command's way in: a damaged store is refused here as on the command line.
    try:
        return db.init_db(url)
    except db.AnnotationError as err:  # nothing on a page works without the store: its one line, not a traceback
        st.error(str(err))
        st.stop()


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


#: Besides config, metrics and progress: the files that decide whether a run is offered for review.
_LISTING_FILES = ("predictions.parquet", SUMMARY_FILE)


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
            (p.name, *(_mtime(p / f) for f in ("config.json", "metrics.json", "progress.json", *_LISTING_FILES)))
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
                "browsable": run.file("predictions.parquet").is_file() and offered_for_review(run, cfg),
                "lineage": lineage_text(cfg),
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
            "lineage",
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


@st.cache_resource(show_spinner="Opening the run's scored candidates…", max_entries=8)
def _store(run_path: str, mtime: float) -> RunStore:
    return open_store(run_path)


def run_store(run_id: str) -> RunStore:
    """The run's candidates laid out by query (``rrra_core.analysis.run_reader``), opened once per process.

    A page reads only what it shows through it (one query's rows, the head of an order, counts); nothing
    goes through ``st.cache_data``'s copies. Reopened (and the layout rebuilt) when the predictions change.
    """
    run = open_run(run_id)
    path = run.file("predictions.parquet")
    return _store(str(run.path), _mtime(path))


@st.cache_resource(show_spinner="Comparing the run's candidates with its base run's…", max_entries=4)
def _pool_overlap(run_path: str, mtime: float, base_path: str, base_mtime: float) -> PoolOverlap:
    return pool_overlap(_store(run_path, mtime), _store(base_path, base_mtime))


def run_pool_overlap(run_id: str, base_id: str) -> PoolOverlap:
    """The (query, doc) pairs a run shares with its base run, from their stores (once per process and pair of files).

    Raises ``UserError`` (or ``OSError``) when the base run is gone or never scored its candidates.
    """
    run, base = open_run(run_id), open_run(base_id)
    return _pool_overlap(
        str(run.path),
        _mtime(run.file("predictions.parquet")),
        str(base.path),
        _mtime(base.file("predictions.parquet")),
    )


@st.cache_resource(show_spinner=False, max_entries=16)
def _split_mask(run_path: str, mtime: float, dataset_name: str, split: str) -> Any:
    return split_mask(_store(run_path, mtime), dataset(dataset_name, split).qrels)


def run_split_mask(run_id: str, dataset_name: str, split: str) -> Any:
    """Per query of the run's store, whether the split holds it (``None``: all of them)."""
    run = open_run(run_id)
    return _split_mask(str(run.path), _mtime(run.file("predictions.parquet")), dataset_name, split)


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


# --- analysis: training logs, gradients, per-query results -------------------------


@st.cache_data(show_spinner=False, max_entries=32)
def _steps(path: str, mtime: float) -> pd.DataFrame:
    return step_frame(Run(Path(path)).read_log())


def steps(run_id: str) -> pd.DataFrame:
    """The run's per-step training log (one row per optimizer step), cached until the log grows."""
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


# --- the review queue -------------------------------------------------------------


@st.cache_resource(show_spinner="Ordering the review queue…", max_entries=16)
def _live_queue(run_path: str, mtime: float, order: str, version_path: str | None) -> LiveQueue:
    scores = None
    if version_path is not None and order in VERSION_COLUMN:  # the one column the order reads (10M rows: 80 MB each)
        scores = read_score_rows(version_path, (VERSION_COLUMN[order],))
    return live_queue(_store(run_path, mtime), order, scores, seed=0)


def live_review_queue(run_id: str, order: str, version: QueueVersion | None) -> LiveQueue:
    """The run's labelled negatives in ``order`` as positions into its store, best first (never mutated).

    ``learnt`` and ``uncertainty`` read ``version``'s scores (the latest refit); built once per
    order and version in a process, so a judgment's rerun only walks the order's head.
    """
    run = open_run(run_id)
    return _live_queue(
        str(run.path),
        _mtime(run.file("predictions.parquet")),
        order,
        str(version.path) if version is not None else None,
    )


@st.cache_data(show_spinner=False, max_entries=16)
def _queue_version(
    folder: str, mtime: float
) -> tuple[QueueVersion | None, frozenset[tuple[str, str]], tuple[str, ...]]:
    version, skipped = usable_latest(folder)
    if version is None:
        return None, frozenset(), tuple(skipped)
    used = read_verdicts(version)
    return version, frozenset(zip(used["query_id"], used["doc_id"], strict=True)), tuple(skipped)


def queue_version(run_id: str) -> tuple[QueueVersion | None, frozenset[tuple[str, str]], tuple[str, ...]]:
    """The run's newest readable review-queue version, the (query, doc) pairs it learnt from, and a one-line
    reason for each newer version skipped because a file of it is damaged; ``(None, ∅, ())`` before one.

    Cached until ``latest.json`` moves.
    """
    folder = review_dir(open_run(run_id).path)
    return _queue_version(str(folder), _mtime(folder / LATEST_FILE))


def runs_overview() -> pd.DataFrame:
    """Every run with what the analysis pages need: kind, sampler, eval split, τ, which files it has."""
    from rrra_core.runtime.paths import home_dir

    home = str(home_dir())
    signature = _runs_signature(home)
    return _runs_overview(home, signature, runs_table(home, signature))


# Keyed by the run folders' file signature, like runs_table: rebuilt exactly when a run changes, and never
# on a timer (a 3 s time-to-live re-read every run's config on most reruns; Compare runs took 22 s to open).
@st.cache_data(show_spinner=False, max_entries=8)
def _runs_overview(home: str, signature: tuple, runs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for r in runs.itertuples(index=False):
        cfg = run_json(r.run, "config.json", {}) or {}
        phase = parse_run_config(cfg).phase  # the phase's settings, whatever the config's age
        dataset, eval_split = eval_settings(cfg)
        folder = open_run(r.run).path
        if r.kind == "phase2":
            # A retrain's base: evaluated for retrieval by the retrain job (before/after).
            base_eval = run_json(r.run, "retrieval_eval.json", {}) or {}
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


@st.cache_data(show_spinner=False, max_entries=8)
def _query_file(path: str, mtime: float) -> dict[str, str]:
    return load_queries(path)[0]


def query_texts(name: str | None, split: str | None) -> dict[str, str]:
    """Query texts of a dataset (empty if it cannot be read, e.g. a moved BEIR folder).

    Only the queries file, cached until it changes: loading the split would read the whole corpus
    (seconds for SQuAD) to label a table of query ids. ``split`` is kept for the callers; ids are unique.
    """
    if not name or not split:
        return {}
    try:
        path = resolve_data_file(dataset_folder(name), "queries")
        return _query_file(str(path), _mtime(path))
    except Exception:  # noqa: BLE001 - texts are a convenience; ids still identify the queries
        return {}


# --- embedding maps ------------------------------------------------------------------


@st.cache_data(show_spinner="Loading the embedding map…", max_entries=16)
def _projection(
    run_path: str, query_id: str | None, settings_mtime: float, preds_mtime: float
) -> tuple[Projection | None, bool]:
    run, scope = Run(Path(run_path)), Scope(query_id)
    proj = load_projection(run, scope)
    if proj is None:
        return None, False
    pred = run.file("predictions.parquet")
    current = pred.is_file() and proj.meta.get("predictions_sha256") == predictions_digest(pred)
    return proj, current


def projection(run: Run, scope: Scope) -> tuple[Projection | None, bool]:
    """The saved map of ``scope`` and whether it was made from the run's current predictions.

    Cached until the files change; ``scripts/project.py`` makes the map (``projection_view`` starts it).
    """
    _, settings, _ = projection_paths(run, scope)
    return _projection(str(run.path), scope.query_id, _mtime(settings), _mtime(run.file("predictions.parquet")))
