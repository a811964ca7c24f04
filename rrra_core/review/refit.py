"""One refit of a run's ``learnt`` review queue: verdicts in, a new queue version out.

:func:`run_frame` reads a run's labelled negatives with every feature the
learner reads (the lexical ones cached as ``review_features.parquet`` beside
``predictions.parquet``; building that cache is the slow first refit's work).
:func:`refit_run` fits the learner on the verdicts that fall on those
candidates, scores the rest and writes the next version under the run's refit
lock (:mod:`~rrra_core.review.versions`). The verdicts come from the caller:
``scripts/refit_queue.py`` reads them from the annotation store.

No verdicts, or verdicts of one class only, are not an error: the version then
holds the learner's own fallback (the prior order, with the per-query cluster
boost once there are verdicts), and its ``note`` says so.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rrra_core.review.bandit import BanditConfig, BanditLearner, adapter_skill
from rrra_core.review.features import LexicalConfig, candidates_frame, load_or_build_features
from rrra_core.review.learner import Learner, LearnerConfig
from rrra_core.review.versions import (
    QueueVersion,
    prune_versions,
    refit_lock,
    review_dir,
    verdicts_hash,
    write_version,
)
from rrra_core.runtime.errors import DataError

__all__ = [
    "FEATURES_FILE",
    "RefitConfig",
    "RefitResult",
    "read_run_predictions",
    "run_frame",
    "fit_version",
    "refit_run",
]

FEATURES_FILE = "review_features.parquet"
_PREDICTION_COLUMNS = ("query_id", "doc_id", "score", "rank", "label", "p_fn_given_neg", "p_rel")


@dataclass(frozen=True)
class RefitConfig:
    """What a refit fits (saved in every version's ``model.json``)."""

    order: str = field(default="bandit", metadata={"help": "bandit (learnt choice among the signals) or blend"})
    bandit: BanditConfig = field(default_factory=BanditConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    lexical: LexicalConfig = field(default_factory=LexicalConfig)
    seed: int = field(default=0, metadata={"help": "the learner's random state"})
    keep: int = field(default=20, metadata={"help": "versions kept in the run folder (the newest ones)"})


@dataclass(frozen=True)
class RefitResult:
    """The version written, and how long the feature read (or build) and the fit took."""

    version: QueueVersion
    seconds_features: float
    seconds_fit: float


def read_run_predictions(run_dir: str | Path) -> pd.DataFrame:
    """The run's ``predictions.parquet``; a missing, damaged or incomplete one is a one-line ``DataError``."""
    path = Path(run_dir) / "predictions.parquet"
    if not path.is_file():
        raise DataError(path, "no predictions file: the run has not scored its candidates (train its adapter first)")
    try:
        preds = pd.read_parquet(path)
    except Exception as err:  # noqa: BLE001 - pyarrow raises many kinds for a damaged file
        raise DataError(
            path,
            f"damaged: not a readable parquet file ({type(err).__name__}); restore it, or score the run's "
            "candidates again (scripts/train_phase2.py)",
        ) from None
    missing = [c for c in _PREDICTION_COLUMNS if c not in preds.columns]
    if missing:
        raise DataError(path, f"missing column(s) {', '.join(missing)}")
    return preds


def run_frame(
    run_dir: str | Path,
    dataset: str | None = None,
    split: str | None = None,
    predictions: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """A run's labelled negatives with the learner's features; builds the lexical cache if it is missing or damaged.

    ``dataset`` and ``split`` default to the run's own (its ``config.json``):
    the qrels give each query's positives, the corpus and queries the text.
    ``predictions`` is the run's, if the caller read them already (:func:`read_run_predictions`).
    A run without readable predictions or without labelled negatives is a one-line ``DataError``.
    """
    from rrra_core.data import load_dataset
    from rrra_core.runtime.run_config import read_run_config

    run_dir = Path(run_dir)
    path = run_dir / "predictions.parquet"
    preds = read_run_predictions(run_dir) if predictions is None else predictions
    cfg = read_run_config(run_dir)
    dataset = dataset or cfg.dataset
    split = split or cfg.train_split
    if not dataset or not split:
        raise DataError(run_dir / "config.json", "names no dataset and training split to read the text from")
    data = load_dataset(dataset, split)
    frame = candidates_frame(preds, data.qrels)
    if frame.empty:
        raise DataError(path, "no labelled negatives to review")
    corpus = {d: (doc.title, doc.text) for d, doc in data.corpus.items()}
    return load_or_build_features(frame, corpus, data.queries, run_dir / FEATURES_FILE)


def read_adapter_skill(run_dir: str | Path) -> float | None:
    """The run's adapter's held-out FN detection (:func:`~rrra_core.review.bandit.adapter_skill`), if recorded."""
    path = Path(run_dir) / "metrics.json"
    try:
        return adapter_skill(json.loads(path.read_text())) if path.is_file() else None
    except (OSError, ValueError, AttributeError):
        return None  # a damaged metrics file only costs the cold start this evidence


def fit_version(
    frame: pd.DataFrame,
    verdicts: Mapping[tuple[str, str], bool],
    cfg: RefitConfig,
    adapter_detection: float | None = None,
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """``(model, scores, used)``: fit on the verdicts that fall on ``frame``'s rows, score the others.

    ``model`` is the JSON-ready description (counts, hash, config, note,
    coefficients, and for the bandit order ``explain``: each signal's belief,
    the verdicts it rests on, the boost, the recent hit rates); ``scores`` has
    one row per unreviewed candidate (``score``, and ``proba`` when a model was
    fitted); ``used`` lists the verdicts learnt from.
    """
    row = {(q, d): i for i, (q, d) in enumerate(zip(frame["query_id"], frame["doc_id"], strict=True))}
    used = {row[(str(q), str(d))]: bool(v) for (q, d), v in verdicts.items() if (str(q), str(d)) in row}
    explain = None
    if cfg.order == "bandit":
        learner = BanditLearner(frame, cfg.bandit, cfg.seed, adapter_detection)
        fit = learner.refit(used)
        explain = learner.explain()
    else:
        fit = Learner(frame, cfg.learner, cfg.seed).refit(used)
    open_ = np.ones(len(frame), dtype=bool)
    open_[list(used)] = False
    scores = pd.DataFrame({"query_id": frame["query_id"], "doc_id": frame["doc_id"], "score": fit.scores.astype(float)})
    if fit.proba is not None:
        scores["proba"] = fit.proba.astype(float)
    scores = scores[open_].reset_index(drop=True)
    idx = sorted(used)
    used_frame = pd.DataFrame(
        {
            "query_id": frame["query_id"].to_numpy()[idx],
            "doc_id": frame["doc_id"].to_numpy()[idx],
            "verdict": [used[i] for i in idx],
        }
    )
    note = fit.note
    if verdicts and not used:
        note = f"{len(verdicts)} verdicts on this dataset, none on this run's labelled negatives: {note}"
    model = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "n_verdicts": len(used),
        "n_false_negatives": int(sum(used.values())),
        "n_ignored": len(verdicts) - len(used),
        "verdicts_hash": verdicts_hash(zip(used_frame["query_id"], used_frame["doc_id"], used_frame["verdict"])),
        "fitted": fit.fitted,
        "note": note,
        "coefficients": fit.coefficients,
        "order": cfg.order,
        "explain": explain,
        "n_candidates": len(frame),
        "n_scored": len(scores),
        "config": json.loads(json.dumps(asdict(cfg))),  # tuples as lists: what model.json will hold
    }
    return model, scores, used_frame


def refit_run(
    run_dir: str | Path,
    verdicts: Mapping[tuple[str, str], bool],
    cfg: RefitConfig | None = None,
    *,
    wait: float = 0.0,
    extra: Mapping[str, Any] | None = None,
) -> RefitResult:
    """Refit ``run_dir``'s learnt queue on ``verdicts`` ({(query, doc): is a false negative}) into a new version.

    Holds the run's refit lock throughout (another refit: wait up to ``wait``
    seconds, then :class:`~rrra_core.review.versions.RefitBusy`); on any error
    nothing is written and the current version stays the latest. ``extra``
    (e.g. the store's policy) goes into ``model.json``; its ``seconds`` are the
    whole refit's wall time, feature cache included.
    """
    cfg = cfg or RefitConfig()
    folder = review_dir(run_dir)
    start = time.perf_counter()
    preds = read_run_predictions(run_dir)  # before the lock: damaged predictions leave nothing behind
    reading = time.perf_counter() - start
    with refit_lock(folder, wait=wait):
        t0 = time.perf_counter() - reading  # the refit's time, not the wait for another refit
        cache = Path(run_dir) / FEATURES_FILE
        before = cache.stat().st_mtime_ns if cache.is_file() else None
        frame = run_frame(run_dir, predictions=preds)
        t1 = time.perf_counter()
        model, scores, used = fit_version(frame, verdicts, cfg, read_adapter_skill(run_dir))
        t2 = time.perf_counter()
        model.update(
            seconds=round(t2 - t0, 3),
            seconds_features=round(t1 - t0, 3),
            seconds_fit=round(t2 - t1, 3),
            feature_cache="read" if before == cache.stat().st_mtime_ns else "built",
            **dict(extra or {}),
        )
        version = write_version(folder, model, scores, used)
        prune_versions(folder, cfg.keep)
    return RefitResult(version, t1 - t0, t2 - t1)
