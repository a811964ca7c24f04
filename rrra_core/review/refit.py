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
import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rrra_core.review.bandit import BanditConfig, BanditLearner, adapter_skill, arms_signature
from rrra_core.review.features import LexicalConfig, candidates_frame, lexical_features, load_or_build_features
from rrra_core.review.learner import Learner, LearnerConfig
from rrra_core.review.ranks import RankCache
from rrra_core.review.versions import (
    QueueVersion,
    prune_versions,
    refit_lock,
    review_dir,
    usable_latest,
    verdicts_hash,
    write_version,
)
from rrra_core.runtime.errors import DataError

__all__ = [
    "FEATURES_FILE",
    "ARMS_DIR",
    "RefitConfig",
    "RefitResult",
    "read_run_predictions",
    "run_frame",
    "StoreFrame",
    "store_frame",
    "fit_version",
    "arm_cache",
    "build_arm_cache",
    "refit_run",
]

FEATURES_FILE = "review_features.parquet"
#: The queue's static orders, prior and feature moments, saved beside the features (numpy files).
ARMS_DIR = "review_arms"
#: The refit's frame of the store's negatives with their features, saved as arrays (:func:`store_frame`).
FRAME_DIR = "review_frame"
log = logging.getLogger(__name__)
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


@dataclass(frozen=True)
class StoreFrame:
    """A run's labelled negatives read from its store (``<run>/reader/``), in the predictions file's order.

    ``frame`` is what the learners read: its ``query_id`` is the query's number in the store (the learners
    only group by it, and numbers group at 10M rows in a fraction of the time strings take); ``ids`` are
    the (query, doc) ids as categoricals, ``rows`` each row's candidate row in the store.
    """

    frame: pd.DataFrame
    query_ids: pd.Categorical
    doc_ids: pd.Categorical
    store: Any
    features_key: str = ""  # what the features were built from (:func:`features_key`)
    #: each store negative's row in ``frame`` (not in ``frame.attrs``: pandas deep-copies attrs into every frame
    #: derived from it, 80 MB a copy at 10M rows)
    frame_index: np.ndarray | None = None

    def positions(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        """Each pair's row in ``frame`` (-1 where the run has no such labelled negative)."""
        at = np.asarray(self.store.negative_positions_or_missing(self.store.locate(pairs).row))
        out = np.full(len(at), -1, dtype=np.int64)
        out[at >= 0] = self.frame_index[at[at >= 0]]
        return out


def _read_keyed(path: Path, key: str, rows: int) -> pd.DataFrame | None:
    """The cached features without their ``key`` column, or None when they were made for other rows or settings.

    The key column is read as a dictionary (one string, not one per row: 10M strings cost seconds).
    """
    import pyarrow.parquet as pq

    table = pq.read_table(path, read_dictionary=["key"])
    if table.num_rows != rows or "key" not in table.column_names:
        return None
    col = table.column("key")
    if col.null_count or not all(set(c.dictionary.to_pylist()) <= {key} for c in col.chunks if len(c)):
        return None
    # one block per column: pandas' default gathers the columns into one 2-D block, a copy of every value
    return table.drop_columns(["key"]).to_pandas(split_blocks=True, self_destruct=True)


def _store_features(run_dir: Path, sf: pd.DataFrame, ids: tuple[pd.Categorical, pd.Categorical], key: str,
                    dataset: str, split: str, cfg: LexicalConfig) -> pd.DataFrame:  # fmt: skip
    """The lexical features of the store's negatives (``<run>/review_features.parquet``, rows as in ``sf``),
    built once per predictions file, dataset split and settings (``key``); a damaged cache is rebuilt."""
    from rrra_core.data import load_dataset

    path = run_dir / FEATURES_FILE
    if path.is_file():
        try:
            cached = _read_keyed(path, key, len(sf))
        except Exception as err:  # noqa: BLE001 - pyarrow raises many kinds for a damaged file
            log.warning("rebuilding the damaged feature cache %s (%s)", path, type(err).__name__)
            cached = None
        if cached is not None:
            return cached
    data = load_dataset(dataset, split)
    frame = pd.DataFrame({"query_id": np.asarray(ids[0], dtype=object), "doc_id": np.asarray(ids[1], dtype=object)})
    frame["positives"] = frame["query_id"].map(
        {q: sorted(d for d, r in data.qrels.get(q, {}).items() if r > 0) for q in ids[0].categories}
    )
    corpus = {d: (doc.title, doc.text) for d, doc in data.corpus.items()}
    lex = lexical_features(frame, corpus, data.queries, cfg)
    tmp = path.with_suffix(".tmp")
    lex.assign(key=key).to_parquet(tmp)
    tmp.replace(path)
    return lex


def features_key(store: Any, dataset: str, split: str, cfg: LexicalConfig) -> str:
    """What the store's lexical features depend on: the predictions file, the dataset split and the settings."""
    import hashlib

    text = json.dumps({"source": store.meta.get("source"), "dataset": dataset, "split": split, **asdict(cfg)})
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def store_frame(
    run_dir: str | Path, dataset: str | None = None, split: str | None = None, cfg: LexicalConfig | None = None
) -> StoreFrame:
    """:func:`run_frame` from the run's store: the same rows in the same order, without reading every column of
    every candidate (10M candidates: the numbers of the labelled negatives and their saved lexical features).
    """
    from rrra_core.analysis.run_reader import open_store
    from rrra_core.runtime.run_config import read_run_config

    run_dir = Path(run_dir)
    store = open_store(run_dir)
    saved = read_run_config(run_dir)
    dataset, split = dataset or saved.dataset, split or saved.train_split
    if not dataset or not split:
        raise DataError(run_dir / "config.json", "names no dataset and training split to read the text from")
    if store.n_negatives == 0:
        raise DataError(run_dir / "predictions.parquet", "no labelled negatives to review")
    cfg = cfg or LexicalConfig()
    key = features_key(store, dataset, split, cfg)
    # the saved frame is only taken while the features file it was made with is whole (its footer), so a
    # damaged or deleted feature cache is built again, as without it
    cached = None
    if _parquet_rows(run_dir / FEATURES_FILE) == store.n_negatives:
        cached = _read_frame_cache(run_dir / FRAME_DIR, key, store.n_negatives)
    if cached is None:
        frame, frame_index, doc_code = _frame_from_store(run_dir, store, key, dataset, split, cfg)
        _write_frame_cache(run_dir / FRAME_DIR, key, frame, {"frame_index": frame_index, "doc_code": doc_code})
    else:
        frame, extra = cached
        frame_index, doc_code = extra["frame_index"], extra["doc_code"]
    query = frame["query_id"].to_numpy()
    qids = pd.Categorical.from_codes(query, categories=pd.Index(store.query_ids, dtype=object))
    dids = pd.Categorical.from_codes(doc_code, categories=pd.Index(store.doc_ids, dtype=object))
    return StoreFrame(frame, qids, dids, store, key, frame_index)


def _frame_from_store(
    run_dir: Path, store: Any, key: str, dataset: str, split: str, cfg: LexicalConfig
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """:func:`store_frame`'s frame made from the store and the lexical features: (frame, frame_index, doc codes)."""
    import pyarrow.parquet as pq

    src_order = np.argsort(np.asarray(store.neg_src), kind="stable")  # the file's order, as candidates_frame
    neg_row = np.asarray(store.neg_row)[src_order]
    query = np.asarray(store.neg_query)[src_order]
    extra = pq.read_table(store.folder / "candidates.parquet", columns=["rank", "p_rel"])
    frame = pd.DataFrame(
        {
            "query_id": query,
            "score": np.asarray(store.neg_score)[src_order],
            "rank": extra.column("rank").to_numpy()[neg_row],
            "label": np.zeros(len(neg_row), dtype=np.int64),
            "p_fn_given_neg": np.asarray(store.neg_p)[src_order],
            "p_rel": extra.column("p_rel").to_numpy()[neg_row],
            "s_pos": store.s_pos[query],
            "margin": np.asarray(store.neg_margin)[src_order],
            "row": neg_row,
        },
        copy=False,  # the arrays were made for it: no second copy of 10M rows per column
    )
    frame_index = np.empty(len(src_order), dtype=np.int64)
    frame_index[src_order] = np.arange(len(src_order))
    doc_code = np.asarray(store.doc_code)[neg_row]
    qids = pd.Categorical.from_codes(query, categories=pd.Index(store.query_ids, dtype=object))
    dids = pd.Categorical.from_codes(doc_code, categories=pd.Index(store.doc_ids, dtype=object))
    lex = _store_features(run_dir, frame, (qids, dids), key, dataset, split, cfg)
    return pd.concat([frame, lex.reset_index(drop=True)], axis=1), frame_index, doc_code


def _parquet_rows(path: Path) -> int | None:
    """The row count in a parquet file's footer; None when it is missing or has no readable footer."""
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path).metadata.num_rows
    except Exception:  # noqa: BLE001 - pyarrow raises many kinds for a damaged file
        return None


def _write_frame_cache(folder: Path, key: str, frame: pd.DataFrame, extra: dict[str, np.ndarray]) -> None:
    """Save the store frame's columns (and ``extra`` arrays) as ``.npy`` files, replacing ``folder`` whole.

    At 10M candidates, making the frame (reading the candidates' and the features' parquet, putting them in
    the file's order) took most of a refit; a later refit maps these back. A failed write only costs that.
    """
    import os
    import shutil

    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        columns = {**{f"col.{c}": frame[c].to_numpy() for c in frame.columns}, **extra}
        files = {}
        for i, (name, values) in enumerate(columns.items()):
            np.save(tmp / f"{i}.npy", np.asarray(values), allow_pickle=False)
            files[name] = f"{i}.npy"
        index = {"format": 1, "key": key, "rows": len(frame), "files": files}
        (tmp / "index.json").write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    except (OSError, ValueError) as err:
        log.warning("could not save the refit frame %s (%s)", folder, type(err).__name__)
        shutil.rmtree(tmp, ignore_errors=True)


def _read_frame_cache(folder: Path, key: str, rows: int) -> tuple[pd.DataFrame, dict[str, np.ndarray]] | None:
    """:func:`_write_frame_cache`'s frame (columns memory-mapped, read only) for ``key``, or None."""
    try:
        index = json.loads((folder / "index.json").read_text(encoding="utf-8"))
        if (index.get("format"), index.get("key"), index.get("rows")) != (1, key, rows):
            return None
        arrays = {
            n: np.asarray(np.load(folder / f, mmap_mode="r", allow_pickle=False)) for n, f in index["files"].items()
        }
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        log.warning("rebuilding the damaged refit frame %s (%s)", folder, type(err).__name__)
        return None
    if any(a.ndim != 1 or len(a) != rows for a in arrays.values()):
        log.warning("rebuilding the refit frame %s: its rows do not match the store", folder)
        return None
    frame = pd.DataFrame({n[4:]: a for n, a in arrays.items() if n.startswith("col.")}, copy=False)
    return frame, {n: a for n, a in arrays.items() if not n.startswith("col.")}


def arm_cache(run_dir: str | Path, source: StoreFrame) -> RankCache:
    """``source.frame``'s ranks, with the arms, priors and feature moments the run saved (``<run>/review_arms``).

    Those depend on the store's rows and the lexical features alone, so they are computed at the first
    refit after the features (a minute at 10M candidates) and read at every later one; a cache made from
    other rows or features is ignored. :func:`refit_run` saves what it had to compute.
    """
    ranks = RankCache(source.frame)
    if source.features_key:
        ranks.load(Path(run_dir) / ARMS_DIR, _arms_stamp(source))
    return ranks


def _arms_stamp(source: StoreFrame) -> str:
    """What the saved arms depend on: the rows and features, and how the arms are made of them."""
    import hashlib

    return hashlib.sha256(f"{source.features_key}\n{arms_signature()}".encode()).hexdigest()[:16]


def build_arm_cache(run_dir: str | Path, cfg: RefitConfig | None = None) -> None:
    """Compute and save the run's arm cache (:func:`arm_cache`) now, as the first refit on its features would."""
    cfg = cfg or RefitConfig()
    source = store_frame(run_dir, cfg=cfg.lexical)
    ranks = arm_cache(run_dir, source)
    BanditLearner(source.frame, cfg.bandit, cfg.seed, ranks=ranks)
    ranks.save(Path(run_dir) / ARMS_DIR, _arms_stamp(source))


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
    *,
    source: StoreFrame | None = None,
    previous: Mapping[str, Any] | None = None,
    ranks: RankCache | None = None,
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """``(model, scores, used)``: fit on the verdicts that fall on ``frame``'s rows, score the others.

    ``model`` is the JSON-ready description (counts, hash, config, note,
    coefficients, and for the bandit order ``explain``: each signal's belief,
    the verdicts it rests on, the boost, the recent hit rates); ``scores`` has
    one row per unreviewed candidate (``score``, and ``proba`` when a model was
    fitted); ``used`` lists the verdicts learnt from. ``ranks``: ``frame``'s saved ranks (:func:`arm_cache`).
    """
    if source is None:
        row = {(q, d): i for i, (q, d) in enumerate(zip(frame["query_id"], frame["doc_id"], strict=True))}
        qids, dids = frame["query_id"], frame["doc_id"]

        def _positions(pairs: list) -> np.ndarray:
            return np.array([row.get((str(q), str(d)), -1) for q, d in pairs], dtype=np.int64)
    else:  # from the store: the pairs found by their query's rows, not a dict of every candidate
        qids, dids = pd.Series(source.query_ids), pd.Series(source.doc_ids)

        def _positions(pairs: list) -> np.ndarray:
            if not pairs:
                return np.zeros(0, dtype=np.int64)
            return np.asarray(source.positions([(str(q), str(d)) for q, d in pairs]), dtype=np.int64)

    def _ids(rows: Any) -> tuple[np.ndarray, np.ndarray]:
        """The (query, doc) ids at ``rows`` as strings (only those rows: at 10M rows, all of them cost seconds)."""
        rows = np.asarray(list(rows), dtype=np.int64)
        return (np.asarray(qids.iloc[rows], dtype=object).astype(str),
                np.asarray(dids.iloc[rows], dtype=object).astype(str))  # fmt: skip

    at = _positions(list(verdicts))
    used = {int(i): bool(v) for i, v in zip(at, verdicts.values(), strict=True) if i >= 0}
    explain, bandit_state = None, None
    if cfg.order == "bandit":
        learner = BanditLearner(frame, cfg.bandit, cfg.seed, adapter_detection, ranks=ranks)
        if previous:  # the former version's windows and ledger: verdicts are credited to what would have shown them
            windows = {a: [int(i) for i in _positions(pairs) if i >= 0] for a, pairs in previous["windows"].items()}
            led = previous["ledger"]
            ledger = {int(i): arms for i, (_, _, arms) in zip(_positions([(q, d) for q, d, _ in led]), led) if i >= 0}
            learner.restore(windows, ledger)
        fit = learner.refit(used)
        explain = learner.explain()
        win, led = learner.state()
        bandit_state = {"windows": {a: [list(p) for p in zip(*_ids(rows), strict=True)] for a, rows in win.items()}}
        bandit_state["ledger"] = [[q, d, arms] for q, d, arms in zip(*_ids(led), led.values(), strict=True)]
    else:
        fit = Learner(frame, cfg.learner, cfg.seed).refit(used)
    open_ = np.ones(len(frame), dtype=bool)
    open_[list(used)] = False
    if source is None:
        scores = pd.DataFrame({"query_id": qids, "doc_id": dids, "score": fit.scores.astype(float)})
    else:  # each row's place in the store, which holds the ids: the live queue reads scores by it, and at 10M
        # rows writing the ids again cost seconds a refit (read_scores takes them back from the store)
        scores = pd.DataFrame({"row": frame["row"].to_numpy(), "score": fit.scores.astype(float)}, copy=False)
    if fit.proba is not None:
        scores["proba"] = fit.proba.astype(float)
    scores = scores[open_].reset_index(drop=True)
    idx = sorted(used)
    q_used, d_used = _ids(idx)
    used_frame = pd.DataFrame({"query_id": q_used, "doc_id": d_used, "verdict": [used[i] for i in idx]})
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
        "bandit_state": bandit_state,
        "n_candidates": len(frame),
        "n_scored": len(scores),
        "config": json.loads(json.dumps(asdict(cfg))),  # tuples as lists: what model.json will hold
    }
    return model, scores, used_frame


def _previous_state(folder: Path, cfg: RefitConfig) -> dict[str, Any] | None:
    """The latest usable version's bandit state, when it was made with the same bandit settings."""
    version, _ = usable_latest(folder)
    if version is None:
        return None
    state = version.model.get("bandit_state")
    same = version.model.get("config", {}).get("bandit") == json.loads(json.dumps(asdict(cfg.bandit)))
    if not same or not isinstance(state, dict) or not {"windows", "ledger"} <= state.keys():
        return None
    return state


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
    from rrra_core.analysis.run_reader import open_store

    start = time.perf_counter()
    open_store(run_dir)  # before the lock: damaged predictions leave nothing behind (built once per predictions)
    reading = time.perf_counter() - start
    with refit_lock(folder, wait=wait):
        t0 = time.perf_counter() - reading  # the refit's time, not the wait for another refit
        cache = Path(run_dir) / FEATURES_FILE
        before = cache.stat().st_mtime_ns if cache.is_file() else None
        source = store_frame(run_dir, cfg=cfg.lexical)
        ranks = arm_cache(run_dir, source)
        had = ranks.saved
        t1 = time.perf_counter()
        previous = _previous_state(folder, cfg)
        model, scores, used = fit_version(
            source.frame, verdicts, cfg, read_adapter_skill(run_dir), source=source, previous=previous, ranks=ranks
        )
        if ranks.saved - had:  # the first refit on these features, or new settings: later refits read them
            ranks.save(Path(run_dir) / ARMS_DIR, _arms_stamp(source))
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
