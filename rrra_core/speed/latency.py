"""Query latency on the serving path: encode one query, search the index, rerank the top k with the adapter.

Each query runs alone through :class:`rrra_core.retrieval.search.Searcher`, its
stages timed apart, so the rerank's share of a query's latency is measured
rather than inferred. The factored rerank the Searcher serves with is timed in
the same loop as the adapter's plain forward (the batch path), alternating
which runs first, and the two are checked to agree. A cross-encoder then
reranks the same documents for a few queries, the cost the adapter is meant to
avoid.

Every query runs once per torch thread setting, the settings alternating in
rotating order, because on a busy machine small operators can be faster on one
thread: no waiting at a parallel region's barrier for a thread that another
process has pushed off its core.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch

from rrra_core.adapter import RRRAAdapter, predict_pairs
from rrra_core.data import Dataset, doc_text, load_dataset
from rrra_core.retrieval.dense import CorpusEmbeddings, encode_corpus
from rrra_core.retrieval.encoder import BiEncoder, EncoderConfig
from rrra_core.retrieval.encoding import resolve_precision
from rrra_core.retrieval.index import DenseIndex
from rrra_core.retrieval.rerank import rerank_order
from rrra_core.retrieval.search import Searcher
from rrra_core.speed.cross_encoder import CROSS_ENCODER_BATCH, CrossEncoder
from rrra_core.speed.measure import alternating_orders, load_average, summarize, time_call
from rrra_core.speed.timed_adapter import DEFAULT_ADAPTER, timed_adapter

__all__ = ["LatencyBench", "bench_latency"]

_Kept = tuple[str, np.ndarray, np.ndarray, np.ndarray]  # query id, its vector, search scores, found rows


@dataclass(frozen=True)
class LatencyBench:
    """What the latency benchmark runs (``bench_speed.py latency`` flags in brackets)."""

    model: str = "minilm"  # encoder folder or "minilm" [--model]
    dataset: str = "squad"  # its test split: corpus and queries [--dataset]
    queries: int = 300  # timed queries [--latency-queries]
    warmup: int = 10  # untimed queries first [--latency-warmup]
    k: int = 100  # documents retrieved and reranked per query [--latency-k]
    precision: str = "fp32"  # query-encoding precision: fp32, bf16 or auto [--latency-precision]
    threads: tuple[int, ...] | None = None  # torch thread settings to alternate; None: 1 and the current count
    ce_queries: int = 4  # queries also reranked by the cross-encoder [--ce-queries]
    adapter: str | None = DEFAULT_ADAPTER  # trained adapter folder, else an untrained one is timed [--adapter]
    query_max_length: int = 48  # [--query-max-length]
    doc_max_length: int = 128  # [--doc-max-length]


@dataclass
class _Stack:
    """The serving stack under test: data, encoded corpus, index, adapter and the Searcher over them."""

    data: Dataset
    encoder: BiEncoder
    corpus: CorpusEmbeddings
    index: DenseIndex
    adapter: RRRAAdapter
    adapter_src: str
    searcher: Searcher

    def rerank(self, qv: np.ndarray, cos: np.ndarray, rows: np.ndarray) -> tuple[list[int], np.ndarray]:
        """The serving rerank (the factored adapter): reranked rows and P(rel)."""
        order, p = self.searcher.rerank(qv, rows, cos)
        return rows[order].tolist(), p

    def rerank_plain(self, qv: np.ndarray, cos: np.ndarray, rows: np.ndarray) -> tuple[list[int], np.ndarray]:
        """The batch path (phase-2 scoring, evaluation): the adapter's plain forward over every pair."""
        q_index = np.zeros(len(rows), dtype=np.int64)
        pred = predict_pairs(self.adapter, qv, self.corpus.vectors[rows], q_index=q_index)
        return rows[rerank_order(cos[: len(rows)], pred["p_rel"], 1.0)].tolist(), pred["p_rel"]


def _serving_stack(cfg: LatencyBench, device: Any) -> _Stack:
    data = load_dataset(cfg.dataset, "test")
    enc_cfg = EncoderConfig(
        model=cfg.model, query_max_length=cfg.query_max_length, doc_max_length=cfg.doc_max_length, device=str(device)
    )
    encoder = BiEncoder.from_pretrained(cfg.model).to(device)
    corpus = encode_corpus(encoder, data.corpus, enc_cfg, progress=False)
    index = DenseIndex.build(corpus.vectors, corpus.ids, kind="auto")
    adapter, adapter_src = timed_adapter(cfg.adapter, encoder.dim, device)
    searcher = Searcher(
        encoder,
        index,
        corpus.vectors,
        adapter,
        query_max_length=cfg.query_max_length,
        rerank_k=cfg.k,
        lambda_rr=1.0,
        precision=resolve_precision(cfg.precision, device),
    )
    return _Stack(data, encoder, corpus, index, adapter, adapter_src, searcher)


def _use(setting: str) -> None:
    torch.set_num_threads(int(setting.split()[0]))


def _time_each(
    calls: list[tuple[str, Callable[[], Any]]], reverse: bool, device: Any
) -> tuple[dict[str, float], dict[str, Any]]:
    """Seconds and result of each call, run once in order or reversed (the caller alternates, so none leads always)."""
    took, got = {}, {}
    for name, fn in calls[::-1] if reverse else calls:
        took[name], got[name] = time_call(fn, device)
    return took, got


def _time_queries(
    stack: _Stack, cfg: LatencyBench, qids: list[str], settings: list[str], device: Any
) -> tuple[dict[str, dict[str, list[float]]], dict[str, Any], list[_Kept]]:
    """Per setting and stage, the seconds of every query after the warm-up; the reranks' agreement; the kept queries."""
    times = {s: {"encode": [], "search": [], "rerank": [], "total": [], "rerank_plain": []} for s in settings}
    agreement = {"max_abs_p_rel_diff": 0.0, "same_order": 0, "queries": 0}
    kept: list[_Kept] = []
    for n, (q, order) in enumerate(zip(qids, alternating_orders(settings, len(qids)))):
        for setting in order:
            _use(setting)
            t_enc, qv = time_call(partial(stack.searcher.encode, stack.data.queries[q]), device)
            t_search, (found, scores) = time_call(partial(stack.searcher.retrieve, qv, cfg.k), "cpu")
            calls = [
                ("rerank", partial(stack.rerank, qv, scores, found)),
                ("rerank_plain", partial(stack.rerank_plain, qv, scores, found)),
            ]
            took, got = _time_each(calls, n % 2 == 1, device)
            if n < cfg.warmup:
                continue
            t = times[setting]
            t["encode"].append(t_enc)
            t["search"].append(t_search)
            t["rerank"].append(took["rerank"])
            t["total"].append(t_enc + t_search + took["rerank"])
            t["rerank_plain"].append(took["rerank_plain"])
            diff = float(np.abs(got["rerank"][1] - got["rerank_plain"][1]).max())
            agreement["max_abs_p_rel_diff"] = max(agreement["max_abs_p_rel_diff"], diff)
            agreement["same_order"] += int(got["rerank"][0] == got["rerank_plain"][0])
            agreement["queries"] += 1
        if n >= cfg.warmup:
            kept.append((q, qv, scores, found))
    return times, agreement, kept


def _cross_encode(ce: CrossEncoder, data: Dataset, q: str, docs: list[str]) -> np.ndarray:
    return ce.score(data.queries[q], [doc_text(data.corpus[d]) for d in docs])


def _time_cross_encoder(
    stack: _Stack, cfg: LatencyBench, kept: list[_Kept], settings: list[str], device: Any
) -> tuple[dict[str, dict[str, list[float]]], list[int]]:
    """Per setting, seconds of the adapter and the cross-encoder on the same documents; pair tokens per query."""
    ce_times = {s: {"cross-encoder": [], "adapter": []} for s in settings}
    tokens: list[int] = []
    if not kept or cfg.ce_queries <= 0:
        return ce_times, tokens
    ce = CrossEncoder(stack.encoder, cfg.query_max_length + cfg.doc_max_length, device)
    ids, data = stack.corpus.ids, stack.data
    q0, _, _, rows0 = kept[0]
    _cross_encode(ce, data, q0, [ids[r] for r in rows0[:8]])  # warm-up
    for i, (q, qv, cos, rows) in enumerate(kept[: cfg.ce_queries]):
        docs = [ids[r] for r in rows]
        for setting in alternating_orders(settings, cfg.ce_queries)[i]:
            _use(setting)
            calls = [
                ("adapter", partial(stack.rerank, qv, cos, rows)),
                ("cross-encoder", partial(_cross_encode, ce, data, q, docs)),
            ]
            took, _ = _time_each(calls, i % 2 == 1, device)
            for name, seconds in took.items():
                ce_times[setting][name].append(seconds)
        tokens.append(ce.pair_tokens(data.queries[q], [doc_text(data.corpus[d]) for d in docs]))
    return ce_times, tokens


def _setting_summary(times: dict[str, list[float]], ce: dict[str, list[float]]) -> dict[str, Any]:
    """Latency percentiles, the rerank's share and added cost, and the cross-encoder ratio, for one setting."""
    enc_t, srch_t, rr_t, rp_t = (np.array(times[x]) for x in ("encode", "search", "rerank", "rerank_plain"))
    added = rr_t / (enc_t + srch_t)
    added_p = rp_t / (enc_t + srch_t)
    ratio = float(np.median(ce["cross-encoder"]) / np.median(ce["adapter"])) if ce["adapter"] else None
    return {
        "latency_ms": {key: summarize(v, scale=1e3) for key, v in times.items()},
        "rerank_share_of_total": summarize(rr_t / (enc_t + srch_t + rr_t)),
        "rerank_added_to_encode_plus_search": summarize(added),
        "plain_rerank_added_to_encode_plus_search": summarize(added_p),
        "cross_encoder": {
            "queries": len(ce["cross-encoder"]),
            "cross_encoder_ms": summarize(ce["cross-encoder"], scale=1e3),
            "adapter_ms_same_queries": summarize(ce["adapter"], scale=1e3),
            "ratio_median": round(ratio, 1) if ratio else None,
        },
        "targets": {
            "rerank_added_p50": round(float(np.median(added)), 4),
            "rerank_adds_at_most_10pct": bool(np.median(added) <= 0.10),
            "adapter_vs_cross_encoder": round(ratio, 1) if ratio else None,
            "adapter_500x_cheaper": bool(ratio and ratio >= 500),
            "plain_rerank_added_p50": round(float(np.median(added_p)), 4),
        },
    }


def _settings(stack: _Stack, cfg: LatencyBench, n_queries: int, **measured: Any) -> dict[str, Any]:
    pair_max = cfg.query_max_length + cfg.doc_max_length
    return {
        "model": cfg.model,
        "dataset": f"{cfg.dataset} test: {len(stack.data.corpus)} documents, first {n_queries} query ids "
        f"in sorted order ({cfg.warmup} warm-up)",
        "index": f"DenseIndex kind=auto -> {stack.index.kind}",
        "k": cfg.k,
        "query_max_length": cfg.query_max_length,
        "doc_max_length": cfg.doc_max_length,
        "query_precision": stack.searcher.precision,
        "adapter": stack.adapter_src,
        "rerank": "Searcher.rerank: the factored adapter (rrra_core.adapter.factored.FactoredAdapter.p_rel, P(rel)) "
        "+ rerank_order, lambda_rr = 1; "
        "rerank_plain: predict_pairs (the plain forward) + rerank_order, timed in the same loop",
        "cross_encoder": f"MiniLM transformer + linear head on [CLS], (query, passage) pairs truncated to {pair_max} "
        f"tokens, length-sorted batches of {CROSS_ENCODER_BATCH}, fp32",
        "encode": "Searcher.encode: encode_texts on one query (tokenise, pad, forward, pool); "
        "search: Searcher.retrieve (FAISS top k on one FAISS thread, ties by doc id)",
        **measured,
    }


def bench_latency(cfg: LatencyBench, device: Any) -> dict[str, Any]:
    """Per query: encode, search, adapter rerank of the top k; then a cross-encoder on the same k documents."""
    stack = _serving_stack(cfg, device)
    qids = sorted(stack.data.queries)[: cfg.warmup + cfg.queries]
    default_threads = torch.get_num_threads()
    settings = [f"{t} thread{'s' if t > 1 else ''}" for t in dict.fromkeys(cfg.threads or [1, default_threads])]
    times, agreement, kept = _time_queries(stack, cfg, qids, settings, device)
    load_after_loop = load_average()
    ce_times, ce_tokens = _time_cross_encoder(stack, cfg, kept, settings, device)
    torch.set_num_threads(default_threads)
    load_after_ce = load_average()
    return {
        "settings": _settings(
            stack,
            cfg,
            len(qids),
            thread_settings=settings,
            cross_encoder_pair_tokens_per_query_mean=round(float(np.mean(ce_tokens)), 1) if ce_tokens else None,
            load_after_query_loop=load_after_loop,
            load_after_cross_encoder=load_after_ce,
        ),
        "rerank_agreement": agreement,
        "by_threads": {s: _setting_summary(times[s], ce_times[s]) for s in settings},
    }
