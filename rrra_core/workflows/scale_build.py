"""A phase-2 run built in bounded-memory chunks, for collections of MS-MARCO size (100,000 queries x top-100).

:func:`~rrra_core.training.phase2.train_phase2` holds every candidate as Python
objects (a run dict of 30M entries at 100k queries x 300), which does not fit.
This builds the same run folder (``config.json``, ``adapter/``, ``metrics.json``,
``predictions.parquet``, the store ``reader/``, the review queue's
``review_features.parquet``) stage by stage, from the same functions:

1. encode the documents, ``doc_chunk`` at a time, each chunk saved as its own ``.npy``;
2. encode the training queries, ``query_chunk`` at a time;
3. build the FAISS index over the document vectors (IVF by default, ``results/speed_index.md``);
4. mine each query chunk's top candidates (deep enough for the synthetic wrong positives);
5. fit the adapter on frozen embeddings, on the pairs of a seeded subsample of
   ``fit_queries`` training queries (the run's ``metrics.json`` says how many);
6. score every query chunk's top-K with the adapter into a part file, then write
   them into ``predictions.parquet`` one row group per part;
7. build the run store (:func:`~rrra_core.analysis.run_reader.build_store`);
8. compute the review queue's lexical features chunk by chunk
   (:class:`~rrra_core.review.features.LexicalIndex`), keyed as the refit reads them.

Every chunk is written atomically (temp file + rename) under ``<run>/scale/`` and a
restart skips what is there, so a build killed at any point (``kill -9``) resumes
and ends with the files an uninterrupted build writes. Each stage reports counts
and an ETA in ``progress.json`` and records its seconds and peak RSS (the
process's high-water mark, reset at the stage's start where Linux allows) under
``train.scale_build`` in ``metrics.json`` (with the mark reset per stage, a
``/usr/bin/time -v`` around the build reports the last stage's peak only). The
rerank choice on dev queries is not made here (the run reads as its fixed setting).
"""

from __future__ import annotations

import json
import logging
import re
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rrra_core.runtime.config import opt
from rrra_core.runtime.errors import ConfigError
from rrra_core.runtime.reports import (
    METRICS_FILE,
    eta_seconds,
    records_failure,
    stage_message,
    write_progress,
)
from rrra_core.runtime.runs import Run, atomic_path, write_json_atomic

__all__ = ["ScaleBuildConfig", "scale_run_id", "build_scale_run", "peak_rss_gb", "STAGES", "WORK_DIR"]

log = logging.getLogger(__name__)
WORK_DIR = "scale"
#: Stage name -> the span of the run's progress bar it covers.
STAGES: dict[str, tuple[float, float]] = {
    "encoding the corpus": (0.0, 0.55),
    "encoding the queries": (0.55, 0.6),
    "building the index": (0.6, 0.63),
    "mining top-K": (0.63, 0.7),
    "training the adapter": (0.7, 0.8),
    "scoring candidates": (0.8, 0.9),
    "building the run store": (0.9, 0.93),
    "review features": (0.93, 1.0),
}


@dataclass
class ScaleBuildConfig:
    """What a streamed phase-2 build reads and how it cuts the work (chunks, the fit's subsample)."""

    dataset: str = opt("", "BEIR folder (e.g. written by scripts/make_scale_collection.py)")
    train_split: str = opt("train", "qrels split whose queries are mined, scored and reviewed")
    model: str = opt("minilm", "encoder: 'minilm' (the bundled all-MiniLM-L6-v2) or a local model folder")
    query_max_length: int = opt(48, "max word pieces per query")
    doc_max_length: int = opt(128, "max word pieces per document")
    encode_batch_size: int = opt(64, "batch size when encoding")
    precision: str = opt("fp32", "encoding precision: fp32, bf16 or auto (results/encode_options.md)")
    top_k: int = opt(100, "candidates scored per query (cut to the corpus when it is smaller)")
    index_kind: str = opt("ivf", "FAISS index: ivf (approximate, nprobe = nlist/8) or flat (exact)")
    doc_chunk: int = opt(20_000, "documents per encoding chunk (one .npy each)")
    query_chunk: int = opt(5_000, "queries per chunk when encoding, mining, scoring and computing features")
    fit_queries: int | None = opt(10_000, "training queries whose pairs fit the adapter (seeded subsample; unset: all)")
    epochs: int = opt(5, "adapter epochs")
    features: bool = opt(True, "compute the review queue's lexical features (BM25, closeness to the positive)")
    seed: int = opt(0, "random seed (fit subsample, labels, fit)")
    run_id: str = opt("", "run id (default: scale-<dataset folder name>)")

    def __post_init__(self) -> None:
        for name in ("top_k", "doc_chunk", "query_chunk", "epochs", "query_max_length", "doc_max_length"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.fit_queries is not None and self.fit_queries < 1:
            raise ConfigError(f"fit_queries must be at least 1 (or unset for all), got {self.fit_queries}")
        if self.index_kind not in ("ivf", "flat"):
            raise ConfigError(f"index_kind must be ivf or flat, got {self.index_kind!r}")

    def work_settings(self) -> dict[str, Any]:
        """The settings that decide the chunk files (a resume with other ones would mix two builds)."""
        keep = ("index_kind", "doc_chunk", "query_chunk", "fit_queries", "features")
        return {k: v for k, v in asdict(self).items() if k in keep}


def scale_run_id(cfg: ScaleBuildConfig) -> str:
    """The run's id: the one given, else ``scale-<folder name>`` in the characters run ids allow."""
    if cfg.run_id:
        return cfg.run_id
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(cfg.dataset).name).strip("-.") or "data"
    return f"scale-{stem}"


# --- memory and progress ----------------------------------------------------------


def _reset_peak() -> bool:
    """Reset this process's resident high-water mark (Linux ``clear_refs`` 5); False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _release_memory() -> None:
    """Hand freed heap back to the OS between stages (glibc keeps it otherwise), so a later stage's peak is its
    own data, not what earlier stages left: the store at 10M candidates and the corpus's lexical index are the
    build's largest."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to hand back this way
        pass


def peak_rss_gb() -> float:
    """This process's peak resident set size since the last reset (VmHWM), in GB; ``ru_maxrss`` elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) * 1024 / 1e9, 3)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9, 3)


class _Progress:
    """One stage's progress in ``progress.json``: chunks as ``step``/``total_steps``, units and an ETA in the
    message, ``fraction`` across the stage's span; chunk ends always written, updates within one at most once a
    second."""

    def __init__(self, run: Run, stage: str, total: int, unit: str, chunks: int, done: int, done_units: int) -> None:
        self.run, self.stage, self.total, self.unit, self.chunks = run, stage, total, unit, chunks
        self.start_units, self.t0, self.last = done_units, time.monotonic(), 0.0
        self.done_chunks = done
        self.update(done_units, force=True)

    def update(self, units: int, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < 1.0:
            return
        self.last = now
        lo, hi = STAGES[self.stage]
        share = min(1.0, units / self.total) if self.total else 1.0
        eta = eta_seconds(now - self.t0, units - self.start_units, self.total - self.start_units)
        write_progress(
            self.run,
            2,
            self.stage,
            step=self.done_chunks,
            total_steps=self.chunks,
            fraction=lo + (hi - lo) * share,
            eta_s=eta,
            message=stage_message(self.stage, units, self.total, self.unit, eta),
        )

    def chunk_done(self, units: int) -> None:
        self.done_chunks += 1
        self.update(units, force=True)


class _Stages:
    """Each stage's seconds and peak RSS, kept in ``<run>/scale/stages.json`` across restarts."""

    def __init__(self, work: Path) -> None:
        self.path = work / "stages.json"
        self.records: dict[str, Any] = json.loads(self.path.read_text()) if self.path.is_file() else {}

    def run(self, name: str, fn: Callable[[], dict[str, Any] | None]) -> None:
        """Run stage ``name`` unless a previous process finished it; record its seconds and peak RSS."""
        before = self.records.get(name, {})
        if before.get("done"):
            return
        # Marked as started first: a stage found started but not done was cut short by a killed process.
        self.records[name] = {"done": False, "restarts": before.get("restarts", -1) + 1}
        write_json_atomic(self.path, self.records)
        _release_memory()
        exact = _reset_peak()
        t0 = time.perf_counter()
        extra = fn() or {}
        record = {
            "done": True,
            "seconds": round(time.perf_counter() - t0, 2),  # this process's: a killed one's time is lost with it
            "peak_rss_gb": peak_rss_gb(),
            "peak_is_the_stages_own": exact,
            "restarts": self.records[name]["restarts"],
            **extra,
        }
        self.records[name] = record
        write_json_atomic(self.path, self.records)
        log.info("scale build: %s in %.1f s, peak RSS %.2f GB", name, record["seconds"], record["peak_rss_gb"])


# --- files -------------------------------------------------------------------------


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)


def _chunks(n: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(s + size, n)) for s in range(0, n, size)]


def _part(folder: Path, c: int, ext: str) -> Path:
    return folder / f"{c:05d}.{ext}"


def _concat_npy(parts: list[Path], out: Path, dim: int) -> None:
    """Concatenate the chunk files into one ``.npy`` on disk, a chunk at a time (memory: one chunk)."""
    if out.is_file():
        return
    rows = sum(np.load(p, mmap_mode="r").shape[0] for p in parts)
    with atomic_path(out) as tmp:
        mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(rows, dim))
        at = 0
        for p in parts:
            x = np.load(p)
            mm[at : at + len(x)] = x
            at += len(x)
        mm.flush()
        del mm


def _write_parts(parts: list[Path], out: Path, extra: dict[str, str] | None = None) -> None:
    """One parquet file from part files, a row group per part (``extra``: constant string columns added)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with atomic_path(out) as tmp:
        writer = None
        try:
            for p in parts:
                table = pq.read_table(p)
                for name, value in (extra or {}).items():
                    table = table.append_column(name, pa.array([value] * table.num_rows, pa.string()))
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table, row_group_size=max(1, table.num_rows))
        finally:
            if writer is not None:
                writer.close()


# --- the stages --------------------------------------------------------------------


@dataclass
class _Build:
    """What every stage reads: the run, its settings, the data and where the chunk files go."""

    run: Run
    cfg: ScaleBuildConfig
    enc: Any  # EncoderConfig
    p2: Any  # Phase2Config
    data: Any  # Dataset (the training split)
    doc_ids: list[str]
    query_ids: list[str]
    top_k: int
    deep: int
    _encoder: Any = None

    @property
    def work(self) -> Path:
        return self.run.file(WORK_DIR)

    def folder(self, name: str) -> Path:
        path = self.work / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def encoder(self) -> Any:
        if self._encoder is None:
            from rrra_core.retrieval.encoder import BiEncoder
            from rrra_core.runtime.device import resolve_device

            device = resolve_device(self.enc.device)
            self._encoder = BiEncoder.from_pretrained(self.enc.model, shared=self.enc.shared).to(device).eval()
        return self._encoder

    def query_chunks(self) -> list[tuple[int, int]]:
        return _chunks(len(self.query_ids), self.cfg.query_chunk)


def _encode_stage(b: _Build, stage: str, role: str) -> dict[str, Any]:
    """Encode documents or queries chunk by chunk; a chunk already on disk is skipped."""
    from rrra_core.data.beir import doc_text
    from rrra_core.retrieval.encoding import encode_texts

    if role == "doc":
        ids, size, folder, length = b.doc_ids, b.cfg.doc_chunk, b.folder("docs"), b.enc.doc_max_length
        text: Callable[[str], str] = lambda i: doc_text(b.data.corpus[i], b.enc.with_title)  # noqa: E731
    else:
        ids, size, folder, length = b.query_ids, b.cfg.query_chunk, b.folder("queries"), b.enc.query_max_length
        text = b.data.queries.__getitem__
    spans = _chunks(len(ids), size)
    done = [c for c in range(len(spans)) if _part(folder, c, "npy").is_file()]
    units = sum(spans[c][1] - spans[c][0] for c in done)
    prog = _Progress(b.run, stage, len(ids), "docs" if role == "doc" else "queries", len(spans), len(done), units)
    for c, (lo, hi) in enumerate(spans):
        if c in done:
            continue
        texts = [text(i) for i in ids[lo:hi]]
        start = units
        vecs = encode_texts(
            b.encoder(), texts, role, length, b.enc.encode_batch_size, False,
            lambda n, _t, s=start: prog.update(s + n), precision=b.enc.precision,
        )  # fmt: skip
        _save_npy(_part(folder, c, "npy"), vecs)
        units += hi - lo
        prog.chunk_done(units)
    parts = [_part(folder, c, "npy") for c in range(len(spans))]
    _concat_npy(parts, b.work / f"{role}_vectors.npy", b.encoder().dim)
    return {"chunks": len(spans), "chunks_resumed": len(done), "docs" if role == "doc" else "queries": len(ids)}


def _index_stage(b: _Build) -> dict[str, Any]:
    """The FAISS index over every document vector, saved beside the chunks."""
    from rrra_core.retrieval.index import DenseIndex

    folder = b.work / "index"
    _Progress(b.run, "building the index", 1, "index", 1, 0, 0)
    vectors = np.load(b.work / "doc_vectors.npy")
    index = DenseIndex.build(vectors, b.doc_ids, kind=b.cfg.index_kind)
    del vectors
    index.save(folder)
    return {"kind": index.kind, **index.params}


def _id_order(ids: list[str]) -> np.ndarray:
    """Each row's position in the ids sorted as strings: mining breaks score ties by doc id (``rank_run``)."""
    order = np.array(sorted(range(len(ids)), key=ids.__getitem__), dtype=np.int64)
    out = np.empty(len(ids), dtype=np.int64)
    out[order] = np.arange(len(ids))
    return out


def _mine_stage(b: _Build) -> dict[str, Any]:
    """Each query chunk's ``deep`` best documents (rows, scores), best first, ties by doc id."""
    from rrra_core.retrieval.index import DenseIndex

    folder, spans = b.folder("mine"), b.query_chunks()
    done = [c for c in range(len(spans)) if _part(folder, c, "npz").is_file()]
    prog = _Progress(b.run, "mining top-K", len(b.query_ids), "queries", len(spans), len(done),
                     sum(spans[c][1] - spans[c][0] for c in done))  # fmt: skip
    if len(done) == len(spans):
        return {"chunks": len(spans), "chunks_resumed": len(done)}
    index = DenseIndex.load(b.work / "index")
    queries = np.load(b.work / "query_vectors.npy", mmap_mode="r")
    by_id = _id_order(b.doc_ids)
    for c, (lo, hi) in enumerate(spans):
        if c in done:
            continue
        scores, rows = index.search_rows(np.array(queries[lo:hi]), b.deep)
        key = np.where(rows >= 0, by_id[np.maximum(rows, 0)], len(by_id))
        order = np.lexsort((key, -scores), axis=-1)
        rows, scores = np.take_along_axis(rows, order, -1), np.take_along_axis(scores, order, -1)
        with atomic_path(_part(folder, c, "npz")) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, rows=rows.astype(np.int64), scores=scores.astype(np.float32))
        prog.chunk_done(hi)
    return {"chunks": len(spans), "chunks_resumed": len(done)}


def _ranked(b: _Build, wanted: set[str]) -> dict[str, list[tuple[str, float]]]:
    """The mined lists of the ``wanted`` queries, as ``rank_run`` gives them: ``(doc_id, score)``, best first."""
    out: dict[str, list[tuple[str, float]]] = {}
    for c, (lo, hi) in enumerate(b.query_chunks()):
        if not any(q in wanted for q in b.query_ids[lo:hi]):
            continue
        mined = np.load(_part(b.work / "mine", c, "npz"))
        rows, scores = mined["rows"], mined["scores"]
        for k, q in enumerate(b.query_ids[lo:hi]):
            if q in wanted:
                ok = rows[k] >= 0
                out[q] = [(b.doc_ids[r], float(s)) for r, s in zip(rows[k][ok], scores[k][ok], strict=True)]
    return out


def _fit_stage(b: _Build) -> dict[str, Any]:
    """Fit the adapter on the pairs of a seeded subsample of the training queries (its checkpoints resume it)."""
    import torch

    from rrra_core.adapter import RRRAAdapter, build_adapter_pairs, save_adapter, train_adapter
    from rrra_core.data.subsample import subsample_queries
    from rrra_core.runtime.device import resolve_device

    stage = "training the adapter"
    write_progress(b.run, 2, stage, fraction=STAGES[stage][0], message=f"{stage} · building the labels")
    fit_ids = subsample_queries(b.query_ids, b.cfg.fit_queries, b.cfg.seed)
    ranked = _ranked(b, set(fit_ids))
    candidates = {q: r[: b.top_k] for q, r in ranked.items()}
    pairs = build_adapter_pairs({q: b.data.qrels[q] for q in fit_ids}, candidates, b.p2.labels, deep_candidates=ranked)
    del ranked, candidates
    qrow = {q: i for i, q in enumerate(b.query_ids)}
    drow = {d: i for i, d in enumerate(b.doc_ids)}
    docs = sorted(set(pairs.doc_ids), key=drow.__getitem__)
    queries = np.load(b.work / "query_vectors.npy", mmap_mode="r")
    vectors = np.load(b.work / "doc_vectors.npy", mmap_mode="r")
    q_vecs = np.asarray(queries[[qrow[q] for q in fit_ids]])
    d_vecs = np.asarray(vectors[[drow[d] for d in docs]])
    device = resolve_device(b.enc.device)
    torch.manual_seed(b.p2.fit.seed)
    adapter_cfg = b.p2.adapter_config(q_vecs.shape[1])
    adapter = RRRAAdapter(adapter_cfg).to(device)
    metrics = train_adapter(
        adapter, pairs, (fit_ids, q_vecs), (docs, d_vecs), b.p2.fit, run=b.run, stage=stage, span=STAGES[stage]
    )
    save_adapter(adapter, adapter_cfg, b.run.file("adapter"))
    write_json_atomic(b.work / "fit.json", metrics)
    return {"fit_queries": len(fit_ids), "pairs": len(pairs), "of_queries": len(b.query_ids)}


def _score_chunk(b: _Build, adapter: Any, c: int, lo: int, hi: int, queries: np.ndarray, vectors: np.ndarray) -> Any:
    """Chunk ``c``'s top-K scored by the adapter, in :func:`~rrra_core.training.phase2.pool_predictions`' columns."""
    import pyarrow as pa

    from rrra_core.adapter import CLASSES, predict_pairs

    mined = np.load(_part(b.work / "mine", c, "npz"))
    rows, scores = mined["rows"][:, : b.top_k], mined["scores"][:, : b.top_k]
    ok = rows >= 0  # an approximate index can find fewer; the missing ones sort last
    local, rank = np.nonzero(ok)
    rows, scores = rows[ok], scores[ok].astype(np.float64)
    uniq, inv = np.unique(rows, return_inverse=True)
    pred = predict_pairs(adapter, np.array(queries[lo:hi]), np.asarray(vectors[uniq]), local, inv)
    qids = [b.query_ids[lo + i] for i in local.tolist()]
    dids = [b.doc_ids[r] for r in rows.tolist()]
    qrels = b.data.qrels
    label = [int(qrels.get(q, {}).get(d, 0) > 0) for q, d in zip(qids, dids, strict=True)]
    cols: dict[str, Any] = {
        "query_id": pa.array(qids, pa.string()),
        "doc_id": pa.array(dids, pa.string()),
        "rank": pa.array(rank.astype(np.int64)),
        "score": pa.array(scores),
        "label": pa.array(np.asarray(label, dtype=np.int64)),
    }
    for i, name in enumerate(CLASSES):
        cols[f"p_{name}"] = pa.array(pred["probs"][:, i].astype(np.float64))
    for name in ("p_fn_given_neg", "p_fp_given_pos", "p_rel", "qa", "ca"):
        cols[name] = pa.array(pred[name].astype(np.float64))
    return pa.table(cols)


def _score_stage(b: _Build) -> dict[str, Any]:
    """Score every query chunk's top-K into a part file, then ``predictions.parquet`` a row group per part."""
    import pyarrow.parquet as pq

    from rrra_core.adapter import load_adapter
    from rrra_core.runtime.device import resolve_device

    folder, spans = b.folder("scores"), b.query_chunks()
    done = [c for c in range(len(spans)) if _part(folder, c, "parquet").is_file()]
    prog = _Progress(b.run, "scoring candidates", len(b.query_ids), "queries", len(spans), len(done),
                     sum(spans[c][1] - spans[c][0] for c in done))  # fmt: skip
    adapter, _ = load_adapter(b.run.file("adapter"), device=resolve_device(b.enc.device))
    queries = np.load(b.work / "query_vectors.npy", mmap_mode="r")
    vectors = np.load(b.work / "doc_vectors.npy", mmap_mode="r")
    for c, (lo, hi) in enumerate(spans):
        if c in done:
            continue
        table = _score_chunk(b, adapter, c, lo, hi, queries, vectors)
        with atomic_path(_part(folder, c, "parquet")) as tmp:
            pq.write_table(table, tmp)
        prog.chunk_done(hi)
    parts = [_part(folder, c, "parquet") for c in range(len(spans))]
    _write_parts(parts, b.run.file("predictions.parquet"))
    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
    return {"chunks": len(spans), "chunks_resumed": len(done), "candidates": rows}


def _store_stage(b: _Build) -> dict[str, Any]:
    from rrra_core.analysis.run_reader import build_store, store_is_current

    stage = "building the run store"
    write_progress(b.run, 2, stage, fraction=STAGES[stage][0])
    if not store_is_current(b.run.path):
        build_store(b.run.path)
    return {}


def _features_stage(b: _Build) -> dict[str, Any]:
    """The review queue's lexical features of each chunk's labelled negatives, then the run's feature file, keyed
    as the refit keys it (:func:`~rrra_core.review.refit.features_key`), so the first refit reads it."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from rrra_core.analysis.run_reader import open_store
    from rrra_core.review.features import LexicalConfig, LexicalIndex
    from rrra_core.review.refit import FEATURES_FILE, features_key

    folder, spans = b.folder("features"), b.query_chunks()
    done = [c for c in range(len(spans)) if _part(folder, c, "parquet").is_file()]
    prog = _Progress(b.run, "review features", len(b.query_ids), "queries", len(spans), len(done),
                     sum(spans[c][1] - spans[c][0] for c in done))  # fmt: skip
    index = None
    qrels = b.data.qrels
    for c, (_lo, hi) in enumerate(spans):
        if c in done:
            continue
        if index is None:
            index = LexicalIndex({d: (doc.title, doc.text) for d, doc in b.data.corpus.items()}, LexicalConfig())
        frame = pq.read_table(_part(b.folder("scores"), c, "parquet"), columns=["query_id", "doc_id", "label"])
        neg = frame.to_pandas()
        neg = neg[neg["label"] == 0].reset_index(drop=True)
        positives = {q: sorted(d for d, r in qrels.get(q, {}).items() if r > 0) for q in neg["query_id"].unique()}
        neg["positives"] = neg["query_id"].map(positives)
        lex: pd.DataFrame = index.features(neg, b.data.queries)
        with atomic_path(_part(folder, c, "parquet")) as tmp:
            pq.write_table(pa.Table.from_pandas(lex, preserve_index=False), tmp)
        prog.chunk_done(hi)
    key = features_key(open_store(b.run.path), b.p2.dataset, b.p2.train_split, LexicalConfig())
    _write_parts([_part(folder, c, "parquet") for c in range(len(spans))], b.run.file(FEATURES_FILE), {"key": key})
    return {"chunks": len(spans), "chunks_resumed": len(done)}


# --- the build ---------------------------------------------------------------------


@records_failure(2)
def _run_stages(run: Run, b: _Build) -> dict[str, Any]:
    """Every stage in order (each skipped when a previous process finished it); returns the run's metrics."""
    b.work.mkdir(parents=True, exist_ok=True)
    stages = _Stages(b.work)
    stages.run("encoding the corpus", lambda: _encode_stage(b, "encoding the corpus", "doc"))
    stages.run("encoding the queries", lambda: _encode_stage(b, "encoding the queries", "query"))
    stages.run("building the index", lambda: _index_stage(b))
    stages.run("mining top-K", lambda: _mine_stage(b))
    stages.run("training the adapter", lambda: _fit_stage(b))
    b._encoder = None  # the encoder's last use was the queries
    stages.run("scoring candidates", lambda: _score_stage(b))
    stages.run("building the run store", lambda: _store_stage(b))
    if b.cfg.features:
        stages.run("review features", lambda: _features_stage(b))
    metrics = json.loads((b.work / "fit.json").read_text(encoding="utf-8"))
    fit = stages.records["training the adapter"]
    metrics["train"]["scale_build"] = {
        "docs": len(b.doc_ids),
        "queries": len(b.query_ids),
        "candidates": stages.records["scoring candidates"]["candidates"],
        "fit_queries": fit["fit_queries"],
        "fit_note": f"the adapter was fit on the pairs of {fit['fit_queries']:,} of the {len(b.query_ids):,} "
        "training queries (a seeded subsample); every query's candidates were scored",
        "peak_rss_gb": max(r.get("peak_rss_gb", 0.0) for r in stages.records.values()),
        "stages": stages.records,
    }
    run.write_json(METRICS_FILE, metrics)
    write_progress(run, 2, "done", status="done", message="done")
    return metrics


def build_scale_run(cfg: ScaleBuildConfig) -> dict[str, Any]:
    """Build (or finish, after a kill) the streamed phase-2 run of ``cfg``; returns its metrics.

    A run id taken by other settings, or by a finished build, is refused in one line; an unfinished build of
    the same settings resumes from its chunk files.
    """
    from rrra_core.retrieval.encoder import EncoderConfig
    from rrra_core.retrieval.rerank_choice import RerankChoiceConfig
    from rrra_core.runtime.run_config import run_config_dict
    from rrra_core.workflows.project import phase2_setup, start_phase2_run

    if not cfg.dataset:
        raise ConfigError("name a dataset: a BEIR folder (scripts/make_scale_collection.py writes one)")
    enc = EncoderConfig(
        model=cfg.model,
        query_max_length=cfg.query_max_length,
        doc_max_length=cfg.doc_max_length,
        encode_batch_size=cfg.encode_batch_size,
        precision=cfg.precision,
    )
    extra = {"index_kind": cfg.index_kind, "rerank": RerankChoiceConfig(enabled=False)}
    data, p2 = phase2_setup(enc, cfg.dataset, cfg.train_split, cfg.top_k, cfg.seed, cfg.epochs, **extra)
    run = start_phase2_run(run_config_dict(enc, p2, scale_build=cfg.work_settings()), scale_run_id(cfg))
    top_k, fp_ranks = p2.labels.top_k, p2.labels.fp_rank_range
    deep = max(top_k, fp_ranks[1]) if p2.labels.scheme == "synthetic" else top_k
    b = _Build(run, cfg, enc, p2, data, list(data.corpus), list(data.queries), top_k, deep)
    return _run_stages(run, b)
