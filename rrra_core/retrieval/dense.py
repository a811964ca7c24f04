"""Dense retrieval end to end: encode a corpus and queries, index, search.

This is the one place that turns (encoder, corpus, queries) into a run dict, so
evaluation, mining and training all retrieve the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from rrra_core.data.beir import Dataset, Doc, doc_text
from rrra_core.retrieval.encoder import BiEncoder, EncoderConfig
from rrra_core.retrieval.encoding import EncodeStats, cached_encode, encode_texts
from rrra_core.retrieval.evaluation import evaluate
from rrra_core.retrieval.index import DenseIndex

__all__ = ["CorpusEmbeddings", "encode_corpus", "encode_queries", "retrieve", "Retrieval", "evaluate_encoder"]


@dataclass
class CorpusEmbeddings:
    """Document vectors with their ids, in corpus order."""

    ids: list[str]
    vectors: np.ndarray  # (N, H) float32, unit rows
    stats: EncodeStats = field(default_factory=EncodeStats)


def encode_corpus(
    encoder: BiEncoder,
    corpus: Mapping[str, Doc],
    cfg: EncoderConfig,
    cache: bool = True,
    progress: bool | str = True,
    refresh: bool = False,
    callback: Callable[[int, int], None] | None = None,
) -> CorpusEmbeddings:
    """Embed every document (cached on disk when the encoder's weights are known; ``refresh`` re-encodes)."""
    ids = list(corpus)
    texts = [doc_text(corpus[i], cfg.with_title) for i in ids]
    stats = EncodeStats()
    if cache:
        vecs = cached_encode(
            encoder,
            ids,
            texts,
            "doc",
            cfg.doc_max_length,
            cfg.encode_batch_size,
            progress,
            stats=stats,
            refresh=refresh,
            callback=callback,
            precision=cfg.precision,
        )
    else:
        t0 = time.perf_counter()
        vecs = encode_texts(
            encoder,
            texts,
            "doc",
            cfg.doc_max_length,
            cfg.encode_batch_size,
            progress,
            callback,
            precision=cfg.precision,
        )
        stats.count, stats.seconds = len(texts), time.perf_counter() - t0
    return CorpusEmbeddings(ids, vecs, stats)


def encode_queries(
    encoder: BiEncoder,
    queries: Mapping[str, str],
    cfg: EncoderConfig,
    cache: bool = True,
    progress: bool | str = False,
    callback: Callable[[int, int], None] | None = None,
) -> tuple[list[str], np.ndarray]:
    """Embed queries; returns (ids, (Q, H) vectors). ``callback(done, total)`` follows the batches."""
    ids = list(queries)
    texts = [queries[i] for i in ids]
    length, batch = cfg.query_max_length, cfg.encode_batch_size
    if cache:
        vecs = cached_encode(
            encoder, ids, texts, "query", length, batch, progress, callback=callback, precision=cfg.precision
        )
    else:
        vecs = encode_texts(encoder, texts, "query", length, batch, progress, callback, precision=cfg.precision)
    return ids, vecs


@dataclass
class Retrieval:
    """A search result: the run dict plus what produced it (kept for mining and analysis)."""

    run: dict[str, dict[str, float]]
    corpus: CorpusEmbeddings
    index: DenseIndex
    query_ids: list[str]
    query_vectors: np.ndarray


def retrieve(
    encoder: BiEncoder,
    corpus: Mapping[str, Doc],
    queries: Mapping[str, str],
    cfg: EncoderConfig,
    k: int = 100,
    index_kind: str = "auto",
    cache: bool = True,
    progress: bool | str = True,
    callback: Callable[[int, int], None] | None = None,
    query_callback: Callable[[int, int], None] | None = None,
) -> Retrieval:
    """Encode, index and search; the top ``k`` per query as a run dict.

    ``callback(done, total)`` follows the corpus encoding, the slow part;
    ``query_callback`` the queries' (many queries take a while too).
    """
    emb = encode_corpus(encoder, corpus, cfg, cache=cache, progress=progress, callback=callback)
    index = DenseIndex.build(emb.vectors, emb.ids, kind=index_kind)
    qids, qvecs = encode_queries(encoder, queries, cfg, cache=cache, callback=query_callback)
    run = index.search_run(qids, qvecs, k)
    return Retrieval(run, emb, index, qids, qvecs)


def evaluate_encoder(
    encoder: BiEncoder,
    data: Dataset | None,
    cfg: EncoderConfig,
    k: int = 100,
    index_kind: str = "auto",
    cache: bool = True,
    callback: Callable[[int, int], None] | None = None,
) -> dict[str, float]:
    """Retrieve for ``data``'s queries and score against its qrels (``{}`` without data).

    Leaves the encoder in the train/eval mode it came in. ``callback(done, total)`` follows the corpus encoding.
    """
    if data is None:
        return {}
    was_training = encoder.training
    res = retrieve(
        encoder,
        data.corpus,
        data.queries,
        cfg,
        k=k,
        index_kind=index_kind,
        cache=cache,
        progress="evaluating: encoding corpus",
        callback=callback,
    )
    if was_training:
        encoder.train()
    return evaluate(data.qrels, res.run)
