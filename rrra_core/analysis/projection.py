"""2-D maps of a run's embedding space (UMAP), computed once per run and scope and kept on disk.

Two scopes:

- a query's neighbourhood (:class:`Scope` with a ``query_id``): the query ``q``,
  its top-K candidates ``c``, the adapter's corrected position ``a`` of every
  candidate, and labelled positives the retriever missed;
- the global sample (``Scope()``): a seeded sample of the run's queries and of
  documents (their positives and top candidates first, then random ones).

All points of a scope are fitted by one UMAP, so ``c`` and ``a`` share one
plane and an arrow from ``c`` to ``a`` shows where the adapter moves a
document. The result is ``<run>/projections/<scope key>.parquet`` (one row
per point: kind, ids, x, y and the pair's adapter readings from
``predictions.parquet``) plus ``<scope key>.json`` (the settings, the inputs'
digest, how long it took). The readings come through the run's store
(:mod:`rrra_core.analysis.run_reader`): only the plotted queries' rows are
read, so a map costs the same at 10M candidates as at 10k. The JSON is written last, so its presence means the
projection is complete. Vectors come from the run's own encoder through the
embedding cache, so the corpus the run already encoded is not encoded again.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rrra_core.runtime.config import config_from_dict, config_to_dict, opt
from rrra_core.runtime.errors import ConfigError, DataError, UserError
from rrra_core.runtime.paths import home_dir
from rrra_core.runtime.run_config import RunConfig, read_run_config
from rrra_core.runtime.runs import Run, atomic_path, write_json_atomic

__all__ = [
    "KINDS",
    "ProjectionConfig",
    "Scope",
    "ScopePoints",
    "Projection",
    "projection_paths",
    "query_scope_points",
    "global_scope_points",
    "representative_pairs",
    "fit_2d",
    "compute_projection",
    "load_projection",
    "predictions_digest",
    "numba_cache_dir",
]

log = logging.getLogger(__name__)

#: Point kinds: the query, a retrieved candidate c, its corrected position a,
#: a labelled positive outside the candidates, a document of the global sample.
KINDS = ("query", "candidate", "corrected", "positive", "doc")
#: The adapter's readings copied from predictions.parquet onto pair points.
PAIR_COLUMNS = (
    "rank",
    "score",
    "label",
    "p_tp",
    "p_fn",
    "p_fp",
    "p_tn",
    "p_fn_given_neg",
    "p_fp_given_pos",
    "p_rel",
    "qa",
    "ca",
)
#: Below this many points UMAP's spectral start fails or means nothing; PCA is used instead.
MIN_UMAP_POINTS = 8

Progress = Callable[[str, float], None]


@dataclass
class ProjectionConfig:
    """What goes into a map and how UMAP lays it out (saved beside every projection)."""

    top_k: int = opt(30, "candidates of the query shown in its neighbourhood, each with its corrected position a")
    global_queries: int = opt(100, "queries in the global sample")
    global_top_k: int = opt(5, "top candidates of each sampled query that join the global sample")
    global_docs: int = opt(
        600, "documents in the global sample at most (positives and top candidates first, then random ones)"
    )
    n_neighbors: int = opt(15, "UMAP n_neighbors: larger keeps more of the global structure (capped at points - 1)")
    min_dist: float = opt(0.1, "UMAP min_dist: how tightly points may pack")
    n_epochs: int = opt(200, "UMAP optimisation epochs")
    seed: int = opt(0, "random state of UMAP and of the global sample (same seed, same map)")

    def __post_init__(self) -> None:
        for name in ("top_k", "global_queries", "global_docs", "n_neighbors", "n_epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"setting {name!r} must be at least 1, got {getattr(self, name)}")
        if self.global_top_k < 0:
            raise ConfigError(f"setting 'global_top_k' must not be negative, got {self.global_top_k}")
        if self.n_neighbors < 2:
            raise ConfigError(f"setting 'n_neighbors' must be at least 2, got {self.n_neighbors}")
        if not 0.0 <= self.min_dist <= 1.0:
            raise ConfigError(f"setting 'min_dist' must be in [0, 1], got {self.min_dist}")


@dataclass(frozen=True)
class Scope:
    """Which map: one query's neighbourhood (``query_id``) or the global sample (``None``)."""

    query_id: str | None = None

    @property
    def key(self) -> str:
        """A file- and job-safe name; the hash keeps ids that differ only in odd characters apart."""
        if self.query_id is None:
            return "global"
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.query_id)[:40].strip("._") or "q"
        return f"query-{slug}-{hashlib.sha1(self.query_id.encode('utf-8')).hexdigest()[:8]}"

    @property
    def is_global(self) -> bool:
        return self.query_id is None


@dataclass
class ScopePoints:
    """The points of a scope before layout: one row per point, and its vector."""

    points: pd.DataFrame  # kind, query_id, doc_id, arrow_from, PAIR_COLUMNS
    vectors: np.ndarray  # (N, d) float32, row i is point i


@dataclass
class Projection:
    """A computed map: the points with x, y, and the settings JSON written beside them."""

    points: pd.DataFrame
    meta: dict[str, Any]

    @property
    def config(self) -> ProjectionConfig:
        return config_from_dict(ProjectionConfig, self.meta.get("config", {}), source="projection settings")


def projection_paths(run: Run, scope: Scope) -> tuple[Path, Path, Path]:
    """``(points.parquet, settings.json, progress.json)`` of a scope in the run folder."""
    folder = run.file("projections")
    return folder / f"{scope.key}.parquet", folder / f"{scope.key}.json", folder / f"{scope.key}.progress.json"


# --- gathering points (pure: frames and arrays in, frame and array out) --------------


def _pair_values(row: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: (row.get(k, np.nan) if row is not None else np.nan) for k in PAIR_COLUMNS}


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    cols = ["kind", "query_id", "doc_id", "arrow_from", *PAIR_COLUMNS]
    df = pd.DataFrame(rows, columns=cols)
    df["arrow_from"] = df["arrow_from"].fillna(-1).astype("int64")
    return df


def query_scope_points(
    query_id: str,
    q_vec: np.ndarray,
    candidates: pd.DataFrame,
    positives: Sequence[str],
    doc_vec: Callable[[Sequence[str]], np.ndarray],
    correct: Callable[[np.ndarray, np.ndarray], np.ndarray],
    top_k: int,
) -> ScopePoints:
    """The query, its top ``top_k`` candidates ``c`` and their corrections ``a``, and missed positives.

    ``candidates`` are the query's rows of predictions.parquet; labelled
    positives ranked below ``top_k`` still join as candidates (they are what
    people look for first), and positives never retrieved join as plain
    ``positive`` points. ``doc_vec(ids)`` gives (n, d) document vectors and
    ``correct(q, C)`` the adapter's (n, d) corrected vectors for one query.
    Row ``arrow_from`` of an ``a`` point is the row of its ``c`` point.
    """
    cands = candidates.sort_values("rank", kind="stable")
    pos = set(positives)
    shown = pd.concat([cands.head(top_k), cands.iloc[top_k:][cands.iloc[top_k:]["doc_id"].isin(pos)]])
    missed = [d for d in positives if d not in set(cands["doc_id"])]
    rows: list[dict[str, Any]] = [{"kind": "query", "query_id": query_id, "doc_id": None, **_pair_values(None)}]
    records = shown.to_dict("records")
    for rec in records:
        rows.append({"kind": "candidate", "query_id": query_id, "doc_id": rec["doc_id"], **_pair_values(rec)})
    first_c = 1
    for i, rec in enumerate(records):
        rows.append(
            {
                "kind": "corrected",
                "query_id": query_id,
                "doc_id": rec["doc_id"],
                "arrow_from": first_c + i,
                **_pair_values(rec),
            }
        )
    for d in missed:
        rows.append({"kind": "positive", "query_id": query_id, "doc_id": d, **_pair_values({"label": 1})})
    q = np.asarray(q_vec, dtype=np.float32).reshape(1, -1)  # (1, d)
    dim = q.shape[1]  # explicit: numpy cannot infer -1 for an empty set of rows
    c = np.asarray(doc_vec([r["doc_id"] for r in records]), dtype=np.float32).reshape(len(records), dim)  # (K, d)
    a = np.asarray(correct(q, c), dtype=np.float32).reshape(len(records), dim) if records else c  # (K, d)
    m = np.asarray(doc_vec(missed), dtype=np.float32).reshape(len(missed), dim)  # (M, d)
    return ScopePoints(_frame(rows), np.concatenate([q, c, a, m]))


def representative_pairs(candidates: pd.DataFrame) -> pd.DataFrame:
    """One pair per document, the one worth looking at: its labelled-positive pair, else its most suspect one.

    In the global sample a document stands for many (query, doc) pairs; it is
    coloured and relabelled through this one.
    """
    if candidates.empty:
        return candidates.copy()
    ordered = candidates.assign(_pos=candidates["label"] > 0).sort_values(
        ["doc_id", "_pos", "p_fn_given_neg", "rank"], ascending=[True, False, False, True], kind="stable"
    )
    return ordered.drop_duplicates("doc_id").drop(columns="_pos").reset_index(drop=True)


def global_scope_points(
    scored: Sequence[str],
    rows_of: Callable[[Sequence[str]], pd.DataFrame],
    qrels: Mapping[str, Mapping[str, int]],
    corpus_ids: Sequence[str],
    q_vec: Callable[[Sequence[str]], np.ndarray],
    doc_vec: Callable[[Sequence[str]], np.ndarray],
    cfg: ProjectionConfig,
) -> ScopePoints:
    """A seeded sample of the scored queries and of documents, each document with its representative pair.

    ``scored`` are the run's query ids in the predictions file's order, and
    ``rows_of(queries)`` the rows of those queries in that order (a run store's
    ``query_rows``): only the sampled queries' rows are ever read, so the map's
    cost does not grow with the run. Documents are chosen in order of interest
    (the sampled queries' positives, then their top ``global_top_k``
    candidates), then random documents fill up to ``global_docs`` so the map
    also shows the corpus around them.
    """
    rng = np.random.default_rng(cfg.seed)
    scored = list(scored)
    if len(scored) > cfg.global_queries:
        keep = set(rng.choice(len(scored), size=cfg.global_queries, replace=False).tolist())
        queries = [q for i, q in enumerate(scored) if i in keep]
    else:
        queries = scored
    sampled = rows_of(queries)
    wanted: list[str] = []
    for q in queries:
        wanted += [d for d, r in qrels.get(q, {}).items() if r > 0]
    top = sampled[sampled["rank"] < cfg.global_top_k].sort_values(["rank", "query_id"], kind="stable")
    wanted += top["doc_id"].tolist()
    docs = list(dict.fromkeys(wanted))[: cfg.global_docs]
    room = cfg.global_docs - len(docs)
    if room > 0:
        taken = set(docs)
        rest = [d for d in corpus_ids if d not in taken]
        if rest:
            pick = rng.choice(len(rest), size=min(room, len(rest)), replace=False)
            docs += [rest[i] for i in sorted(pick.tolist())]
    rep = representative_pairs(sampled[sampled["doc_id"].isin(set(docs))]).set_index("doc_id")
    rows: list[dict[str, Any]] = [
        {"kind": "query", "query_id": q, "doc_id": None, **_pair_values(None)} for q in queries
    ]
    for d in docs:
        pair = rep.loc[d].to_dict() if d in rep.index else None
        rows.append({"kind": "doc", "query_id": pair["query_id"] if pair else None, "doc_id": d, **_pair_values(pair)})
    qv = np.asarray(q_vec(queries), dtype=np.float32).reshape(len(queries), -1)  # (Q, d); Q >= 1
    vecs = np.concatenate([qv, np.asarray(doc_vec(docs), dtype=np.float32).reshape(len(docs), qv.shape[1])])
    return ScopePoints(_frame(rows), vecs)


# --- layout ---------------------------------------------------------------------------


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)  # (N, 1)
    return x / np.maximum(norms, 1e-12)


def _pca_2d(x: np.ndarray) -> np.ndarray:
    """The first two principal components (zeros where there are fewer)."""
    out = np.zeros((len(x), 2), dtype=np.float32)
    if len(x) < 2:
        return out
    centred = x - x.mean(axis=0, keepdims=True)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)  # (N, r), (r,)
    k = min(2, len(s))
    out[:, :k] = u[:, :k] * s[:k]
    return out


def numba_cache_dir() -> Path:
    """Where numba keeps UMAP's compiled code (``NUMBA_CACHE_DIR``): ``<home>/.rrra/numba-cache``.

    UMAP and pynndescent compile their kernels with ``cache=True``; without a
    writable cache every projection process compiles again (over a minute on
    a loaded machine). Set it in the environment before ``umap`` is imported.
    """
    return home_dir() / ".rrra" / "numba-cache"


def fit_2d(vectors: np.ndarray, cfg: ProjectionConfig) -> tuple[np.ndarray, str]:
    """(N, 2) coordinates of ``vectors`` and the method used (``umap``, or ``pca`` for a handful of points).

    Rows are L2-normalised first: the retriever and the adapter's QA/CA scores
    are cosines, so only directions matter, and Euclidean distance between
    unit vectors orders neighbours exactly as cosine does. (UMAP's own cosine
    metric is undefined for the zero vector that the no-residual ablation can
    produce.) A fixed ``random_state`` makes the map reproducible; it also makes
    UMAP single-threaded, which costs little at these sizes.
    """
    x = _unit_rows(np.asarray(vectors, dtype=np.float32))
    if len(x) < MIN_UMAP_POINTS:
        return _pca_2d(x), "pca"
    import umap  # noqa: PLC0415 - heavy (numba); only the projection job needs it

    reducer = umap.UMAP(
        n_neighbors=min(cfg.n_neighbors, len(x) - 1),
        min_dist=cfg.min_dist,
        n_epochs=cfg.n_epochs,
        metric="euclidean",
        random_state=cfg.seed,
        n_jobs=1,
        init="spectral",
    )
    return np.asarray(reducer.fit_transform(x), dtype=np.float32), "umap"


# --- one run, one scope ----------------------------------------------------------------


def predictions_digest(path: str | Path) -> str:
    """sha256 of a predictions file: a projection made from other predictions is stale."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _run_data(saved: RunConfig) -> tuple[str, str]:
    """(dataset, split) whose queries the run scored."""
    if saved.dataset is None:
        raise ConfigError("the run's config.json names no dataset")
    return saved.dataset, saved.train_split or "train"


def _encoder_config(run: Run, saved: RunConfig) -> Any:
    from rrra_core.retrieval.encoder import EncoderConfig

    if not saved.encoder:
        raise ConfigError(f"{run.file('config.json')}: no encoder section")
    cfg = saved.encoder_config(EncoderConfig)
    # A run that fine-tuned the encoder scored its candidates with its own saved model.
    if run.file("model").is_dir():
        cfg = replace(cfg, model=str(run.file("model")))
    return cfg


@dataclass
class _RunVectors:
    """A run's embeddings as the projection needs them: rows by id, and the adapter's correction."""

    doc_vec: Callable[[Sequence[str]], np.ndarray]
    q_vec: Callable[[Sequence[str]], np.ndarray]
    correct: Callable[[np.ndarray, np.ndarray], np.ndarray]
    doc_ids: list[str]


def _run_vectors(
    run: Run, enc_cfg: Any, data: Any, dataset: str, scored: list[str], pred_path: Path, say: Progress
) -> _RunVectors:
    """Encode (cache permitting) the run's corpus and scored queries, and load its adapter."""
    import torch

    from rrra_core.adapter import load_adapter
    from rrra_core.retrieval.dense import encode_corpus, encode_queries
    from rrra_core.retrieval.encoder import BiEncoder
    from rrra_core.runtime.device import resolve_device

    say("loading the encoder", 0.05)
    device = resolve_device(enc_cfg.device)
    encoder = BiEncoder.from_pretrained(enc_cfg.model, shared=enc_cfg.shared).to(device).eval()
    adapter, _ = load_adapter(run.file("adapter"), device=device)

    def on_encode(done: int, total: int) -> None:
        say("encoding the corpus (only if the cache misses)", 0.1 + 0.5 * done / max(total, 1))

    say("encoding the corpus (only if the cache misses)", 0.1)
    emb = encode_corpus(encoder, data.corpus, enc_cfg, progress=False, callback=on_encode)
    drow = {d: i for i, d in enumerate(emb.ids)}
    say("encoding the queries", 0.6)
    # The same queries in the same order as the run encoded them, so the cache hits.
    qids, qvecs = encode_queries(encoder, {q: data.all_queries[q] for q in scored}, enc_cfg)
    qrow = {q: i for i, q in enumerate(qids)}

    def doc_vec(ids: Sequence[str]) -> np.ndarray:
        missing = [d for d in ids if d not in drow]
        if missing:
            raise DataError(pred_path, f"document {missing[0]!r} is not in the corpus of {dataset}")
        return emb.vectors[[drow[d] for d in ids]].reshape(len(ids), emb.vectors.shape[1])

    def q_vec(ids: Sequence[str]) -> np.ndarray:
        return qvecs[[qrow[q] for q in ids]].reshape(len(ids), qvecs.shape[1])

    def correct(q: np.ndarray, c: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            qt = torch.as_tensor(q, device=device).expand(len(c), -1)  # (K, d)
            return adapter.correct(qt, torch.as_tensor(c, device=device)).float().cpu().numpy()  # (K, d)

    return _RunVectors(doc_vec, q_vec, correct, list(emb.ids))


def compute_projection(
    run: Run, scope: Scope, cfg: ProjectionConfig | None = None, progress: Progress | None = None
) -> Projection:
    """Lay out ``scope`` of ``run`` with UMAP and save it in ``<run>/projections/``; returns it.

    ``progress(stage, fraction)`` follows the slow steps (encoding on a cache
    miss, UMAP's first fit in a process, which compiles numba code).
    """
    from rrra_core.analysis.run_reader import open_store
    from rrra_core.data.beir import load_dataset

    cfg = cfg or ProjectionConfig()
    say = progress or (lambda _stage, _fraction: None)
    t0 = time.perf_counter()
    say("loading the run", 0.0)
    saved = read_run_config(run)
    pred_path = run.file("predictions.parquet")
    # The run's store (built once per predictions file): the map reads the rows of the queries it plots only.
    store = open_store(run.path)
    dataset, split = _run_data(saved)
    data = load_dataset(dataset, split)
    scored = store.scored_queries()
    if not scored:
        raise DataError(pred_path, "no scored candidates: nothing to map")
    if scope.query_id is not None and scope.query_id not in set(scored):
        raise UserError(f"query {scope.query_id!r} has no scored candidates in run {run.id}")
    enc_cfg = _encoder_config(run, saved)
    vec = _run_vectors(run, enc_cfg, data, dataset, scored, pred_path, say)

    say("correcting the candidates with the adapter", 0.65)
    if scope.query_id is None:
        pts = global_scope_points(scored, store.query_rows, data.qrels, vec.doc_ids, vec.q_vec, vec.doc_vec, cfg)
    else:
        qid = scope.query_id
        known = set(vec.doc_ids)
        positives = [d for d, r in data.qrels.get(qid, {}).items() if r > 0 and d in known]
        pts = query_scope_points(
            qid, vec.q_vec([qid])[0], store.query_rows([qid]), positives, vec.doc_vec, vec.correct, cfg.top_k
        )

    say(f"fitting UMAP on {len(pts.points)} points (the first fit in a process compiles numba code)", 0.7)
    xy, method = fit_2d(pts.vectors, cfg)
    points = pts.points.assign(x=xy[:, 0].astype(np.float64), y=xy[:, 1].astype(np.float64))

    say("saving", 0.97)
    parquet, settings, _ = projection_paths(run, scope)
    parquet.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(parquet) as tmp:
        points.to_parquet(tmp, index=False)
    meta = {
        "scope": scope.key,
        "query_id": scope.query_id,
        "run": run.id,
        "dataset": dataset,
        "split": split,
        "config": config_to_dict(cfg),
        "method": method,
        "points": int(len(points)),
        "encoder": enc_cfg.model,
        "predictions_sha256": predictions_digest(pred_path),
        "seconds": round(time.perf_counter() - t0, 2),
        "created_at": time.time(),
    }
    write_json_atomic(settings, meta)  # last: its presence marks a complete projection
    say("done", 1.0)
    return Projection(points, meta)


def load_projection(run: Run, scope: Scope) -> Projection | None:
    """The saved projection of ``scope``, or ``None`` if it was never (completely) computed."""
    import json

    parquet, settings, _ = projection_paths(run, scope)
    if not settings.is_file() or not parquet.is_file():
        return None
    try:
        meta = json.loads(settings.read_text(encoding="utf-8"))
        points = pd.read_parquet(parquet)
    except Exception as err:  # noqa: BLE001 - json and pyarrow raise many kinds
        raise DataError(parquet, f"unreadable projection ({type(err).__name__}); delete it to recompute") from None
    points = points.astype({"query_id": object, "doc_id": object})
    return Projection(points, meta)
