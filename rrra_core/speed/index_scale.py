"""Index scale: exact, IVF and HNSW FAISS indexes over a million vectors, and what each costs.

The data is synthetic clustered vectors (centres mixed from real document
embeddings, so they share the real geometry) with the demo corpus appended; the
queries are synthetic ones near data points plus real test queries. Each index
kind is built, its memory taken, then its search knob swept: batch queries per
second, single-query latency and recall@10 against the exact top 10. Because
``retrieve()`` builds a fresh index per call, the result also says how many
queries an approximate index must answer before its longer build pays off.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

from rrra_core.data import load_dataset
from rrra_core.retrieval.dense import encode_corpus, encode_queries
from rrra_core.retrieval.encoder import BiEncoder, EncoderConfig
from rrra_core.retrieval.index import AUTO_FLAT_MAX, DenseIndex, auto_kind
from rrra_core.speed.measure import (
    PeakMemory,
    centres_from_anchors,
    gaussian_mixture,
    load_average,
    queries_near,
    recall_at_k,
    release_free_memory,
    rss_bytes,
    summarize,
)

__all__ = ["IndexBench", "bench_index", "add_break_even"]

K = 10


@dataclass(frozen=True)
class IndexBench:
    """What the index benchmark runs (``bench_speed.py index`` flags in brackets)."""

    model: str = "minilm"  # encoder of the demo corpus and the real queries [--model]
    dataset: str = "squad"  # the demo corpus and real test queries [--dataset]
    n: int = 1_000_000  # synthetic vectors; the demo corpus is appended [--index-n]
    clusters: int = 2000  # Gaussian clusters in the synthetic data [--index-clusters]
    spread: float = 0.04  # per-coordinate noise around a cluster centre [--index-spread]
    queries: int = 400  # synthetic queries, near data points [--index-queries]
    real_queries: int = 100  # real test queries, searched over the same index [--index-real-queries]
    single: int = 50  # queries also searched one at a time [--index-single]
    ivf_nlist: int = 4096  # IVF lists [--ivf-nlist]
    ivf_train_per_list: int = 40  # k-means training points per list [--ivf-train-per-list]
    nprobe: tuple[int, ...] = (8, 16, 32, 64, 128)  # IVF nprobe sweep [--nprobe]
    hnsw_m: int = 32  # HNSW neighbours per node [--hnsw-m]
    hnsw_ef_construction: int = 40  # HNSW build beam, the project's default [--hnsw-ef-construction]
    ef_search: tuple[int, ...] = (32, 64, 128, 256, 512, 1024)  # HNSW efSearch sweep [--ef-search]
    threads: int | None = None  # FAISS threads; None: all cores [--threads]
    query_max_length: int = 48  # [--query-max-length]
    doc_max_length: int = 128  # [--doc-max-length]


@dataclass
class _Data:
    """The indexed vectors with their ids, and the queries: synthetic ones first, then real ones."""

    x: np.ndarray  # (n, dim) float32
    ids: list[str]
    queries: np.ndarray  # (n_syn_queries + n_real_queries, dim) float32
    n_syn_queries: int
    n_real_queries: int
    n_demo: int
    generate_seconds: float


def _data(cfg: IndexBench, device: Any) -> _Data:
    data = load_dataset(cfg.dataset, "test")
    enc_cfg = EncoderConfig(
        model=cfg.model, query_max_length=cfg.query_max_length, doc_max_length=cfg.doc_max_length, device=str(device)
    )
    encoder = BiEncoder.from_pretrained(cfg.model).to(device)
    demo = encode_corpus(encoder, data.corpus, enc_cfg, progress=False)
    real = {q: data.queries[q] for q in sorted(data.queries)[: cfg.real_queries]}
    _, real_q = encode_queries(encoder, real, enc_cfg)
    del encoder
    dim = demo.vectors.shape[1]
    t0 = time.perf_counter()
    x = np.empty((cfg.n + len(demo.ids), dim), dtype=np.float32)
    centres = centres_from_anchors(demo.vectors, cfg.clusters, mix=3, seed=0)
    gaussian_mixture(cfg.n, dim, cfg.clusters, cfg.spread, seed=0, out=x, centres=centres)
    x[cfg.n :] = demo.vectors
    gen_seconds = time.perf_counter() - t0
    ids = [f"syn-{i}" for i in range(cfg.n)] + [f"{cfg.dataset}-{d}" for d in demo.ids]
    q_syn = queries_near(x[: cfg.n], cfg.queries, noise=cfg.spread / 2, seed=1)
    queries = np.vstack([q_syn, real_q]).astype(np.float32)
    return _Data(x, ids, queries, len(q_syn), len(real_q), len(demo.ids), gen_seconds)


def _measure(index: DenseIndex, d: _Data, exact: np.ndarray | None, n_single: int) -> tuple[dict[str, Any], np.ndarray]:
    """Batch queries/s, single-query latency and (against ``exact`` rows) recall@10; and the rows found."""
    n_q = len(d.queries)
    t = time.perf_counter()
    index.search(d.queries, K)
    batch_s = time.perf_counter() - t
    single = []
    for i in range(min(n_single, n_q)):
        t = time.perf_counter()
        index.search(d.queries[i : i + 1], K)
        single.append(time.perf_counter() - t)
    rows = index.index.search(d.queries, K)[1]  # FAISS rows; the id lookup is timed above via DenseIndex.search
    out = {"queries_per_s_batch": round(n_q / batch_s, 1), "single_query_ms": summarize(single, scale=1e3)}
    if exact is not None:
        s = d.n_syn_queries
        out["recall@10"] = round(recall_at_k(rows, exact, K), 4)
        out["recall@10_synthetic"] = round(recall_at_k(rows[:s], exact[:s], K), 4)
        out["recall@10_real"] = round(recall_at_k(rows[s:], exact[s:], K), 4) if d.n_real_queries else None
    return out, rows


def _build_plans(cfg: IndexBench, n: int) -> list[tuple[str, dict[str, Any]]]:
    nlist = min(cfg.ivf_nlist, n)
    return [
        ("flat", {}),
        ("ivf", {"nlist": nlist, "ivf_train_size": max(nlist, cfg.ivf_train_per_list * nlist)}),
        ("hnsw", {"hnsw_m": cfg.hnsw_m, "ef_construction": cfg.hnsw_ef_construction}),
    ]


def _sweep(
    kind: str, index: DenseIndex, d: _Data, exact: np.ndarray | None, cfg: IndexBench
) -> tuple[list[dict[str, Any]], np.ndarray | None]:
    """One row per search setting (exact for flat, nprobe for IVF, efSearch for HNSW); the exact rows after flat."""
    sweep = []
    if kind == "flat":
        res, exact = _measure(index, d, None, cfg.single)
        res.update({"recall@10": 1.0, "recall@10_synthetic": 1.0, "recall@10_real": 1.0 if d.n_real_queries else None})
        sweep.append({"search": "exact", **res})
    elif kind == "ivf":
        for nprobe in sorted({*cfg.nprobe, index.params["nprobe"]}):  # the default is what a user gets untuned
            index.set_search_params(nprobe=nprobe)
            res, _ = _measure(index, d, exact, cfg.single)
            sweep.append({"search": f"nprobe={index.params['nprobe']}", **res})
    else:
        for ef in sorted({*cfg.ef_search, index.params["ef_search"]}):
            index.set_search_params(ef_search=ef)
            res, _ = _measure(index, d, exact, cfg.single)
            sweep.append({"search": f"efSearch={ef}", **res})
    return sweep, exact


def _payload_bytes(kind: str, n: int, dim: int, params: dict[str, Any], hnsw_m: int) -> int:
    """What the index must hold at least: the vectors, plus IVF list ids and centroids or HNSW level-0 links."""
    payload = n * dim * 4
    if kind == "ivf":
        payload += n * 8 + params["nlist"] * dim * 4
    elif kind == "hnsw":
        payload += n * 2 * hnsw_m * 4  # level-0 links; upper levels add ~1/M of that
    return payload


def _index_row(
    kind: str, params: dict[str, Any], d: _Data, exact: np.ndarray | None, cfg: IndexBench
) -> tuple[dict[str, Any], np.ndarray | None]:
    """Build one index kind, take its time and memory, sweep its search knob."""
    release_free_memory()
    before = rss_bytes()
    with PeakMemory() as mem:
        t = time.perf_counter()
        index = DenseIndex.build(d.x, d.ids, kind=kind, **params)
        build_s = time.perf_counter() - t
    release_free_memory()
    resident = (rss_bytes() or 0) - (before or 0)
    built_params = dict(index.params)  # the sweep changes the search knob
    sweep, exact = _sweep(kind, index, d, exact, cfg)
    row = {
        "kind": kind,
        "params": built_params | ({"ivf_train_size": params["ivf_train_size"]} if kind == "ivf" else {}),
        "build_s": round(build_s, 1),
        "resident_after_build_bytes": resident,
        "peak_extra_during_build_bytes": mem.extra,
        "payload_bytes_estimate": _payload_bytes(kind, *d.x.shape, index.params, cfg.hnsw_m),
        "sweep": sweep,
        "load_after": load_average(),
    }
    speeds = "; ".join(f"{r['search']}: {r['queries_per_s_batch']} q/s, R@10 {r['recall@10']}" for r in sweep)
    print(f"index {kind}: build {build_s:.1f} s, {speeds}", file=sys.stderr)
    return row, exact


def add_break_even(rows: list[dict[str, Any]]) -> None:
    """Give every approximate sweep row ``break_even_queries``: queries until its longer build pays off.

    ``rows[0]`` is the flat index. An approximate index costs ``build_s`` more
    to build and saves ``1/qps_flat - 1/qps`` seconds per query; None when it
    saves nothing.
    """
    flat = rows[0]
    flat_qps = flat["sweep"][0]["queries_per_s_batch"]
    for row in rows[1:]:
        for sw in row["sweep"]:
            saved = 1 / flat_qps - 1 / sw["queries_per_s_batch"]
            sw["break_even_queries"] = round((row["build_s"] - flat["build_s"]) / saved) if saved > 0 else None


def bench_index(cfg: IndexBench, device: Any) -> dict[str, Any]:
    """Exact, IVF and HNSW over synthetic clustered vectors plus the demo corpus: build, memory, speed, recall."""
    if cfg.threads:
        faiss.omp_set_num_threads(cfg.threads)
    threads = faiss.omp_get_max_threads()
    d = _data(cfg, device)
    n, dim = d.x.shape
    rows, exact = [], None
    for kind, params in _build_plans(cfg, n):
        row, exact = _index_row(kind, params, d, exact, cfg)
        rows.append(row)
    add_break_even(rows)
    n_q = len(d.queries)
    return {
        "settings": {
            "vectors": n,
            "synthetic": cfg.n,
            "demo_docs": d.n_demo,
            "dim": dim,
            "synthetic_data": f"{cfg.clusters} Gaussian clusters, per-coordinate sd {cfg.spread}, renormalised; "
            f"each centre a random convex combination of 3 real {cfg.dataset} document embeddings, "
            "so the clusters share the real embeddings' geometry (seed 0)",
            "demo_data": f"{cfg.dataset} corpus embedded by {cfg.model} at max length {cfg.doc_max_length} "
            "(embedding cache)",
            "queries": f"{d.n_syn_queries} synthetic (a random data point + sd {cfg.spread / 2} noise) "
            f"+ {d.n_real_queries} real {cfg.dataset} test queries",
            "k": K,
            "faiss_threads": threads,
            "generate_seconds": round(d.generate_seconds, 1),
            "single_query_latency": f"first {min(cfg.single, n_q)} queries one at a time",
        },
        "auto": {
            "documents": n,
            "kind": auto_kind(n),
            "flat_below": AUTO_FLAT_MAX,
            "demo_corpus_alone": auto_kind(d.n_demo),
            "above_flat_limit": "ivf, nlist = 4 sqrt(n), k-means on 64 per list, nprobe = nlist / 64",
        },
        "indexes": rows,
    }
