"""Search a corpus as a user would: encode the query, retrieve the top-k, rerank them with the adapter.

This is the serving path, one query at a time. Each stage is its own method so
a benchmark can time them apart (``scripts/bench_speed.py latency``); the
rerank is the adapter's factored form (:mod:`rrra_core.adapter.factored`), the
same numbers as the batch path that evaluation uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rrra_core.adapter import RRRAAdapter, adapter_folder, load_adapter
from rrra_core.adapter.factored import FactoredAdapter
from rrra_core.data.beir import Doc
from rrra_core.retrieval.dense import encode_corpus
from rrra_core.retrieval.encoder import BiEncoder, EncoderConfig
from rrra_core.retrieval.encoding import encode_texts
from rrra_core.retrieval.index import DenseIndex
from rrra_core.retrieval.rerank import rerank_order
from rrra_core.runtime.errors import ConfigError

__all__ = ["Hit", "Searcher"]


@dataclass(frozen=True)
class Hit:
    """One result: its final rank, the retriever's rank and score, and the adapter's P(rel) if it reranked."""

    doc_id: str
    rank: int  # 1-based, after reranking
    retriever_rank: int  # 1-based
    retriever_score: float  # cosine
    p_rel: float | None


class Searcher:
    """Encoder + index + (optionally) adapter, held together for one-query-at-a-time search."""

    def __init__(
        self,
        encoder: BiEncoder,
        index: DenseIndex,
        doc_vectors: np.ndarray,
        adapter: RRRAAdapter | None = None,
        *,
        query_max_length: int = 48,
        rerank_k: int = 100,
        lambda_rr: float = 1.0,
        precision: str = "fp32",
    ) -> None:
        if doc_vectors.shape[0] != len(index.doc_ids):
            raise ValueError(f"{doc_vectors.shape[0]} document vectors for an index of {len(index.doc_ids)} documents")
        if rerank_k < 1:
            raise ConfigError(f"rerank_k must be a positive integer, got {rerank_k}")
        self.encoder, self.index, self.doc_vectors, self.adapter = encoder, index, doc_vectors, adapter
        self.query_max_length, self.rerank_k, self.lambda_rr, self.precision = (
            query_max_length,
            rerank_k,
            lambda_rr,
            precision,
        )
        self._factored = FactoredAdapter(adapter) if adapter is not None else None

    @classmethod
    def build(
        cls,
        corpus: Mapping[str, Doc],
        cfg: EncoderConfig,
        adapter: str | Path | None = None,
        *,
        index_kind: str = "auto",
        rerank_k: int = 100,
        lambda_rr: float = 1.0,
        progress: bool | str = False,
    ) -> Searcher:
        """Load the encoder (and adapter), encode the corpus (disk-cached) and index it.

        ``index_kind="auto"`` picks a serving index: exact up to
        :data:`rrra_core.retrieval.index.SERVING_FLAT_MAX` documents, IVF above.
        """
        from rrra_core.runtime.device import resolve_device

        encoder = BiEncoder.from_pretrained(cfg.model, shared=cfg.shared).to(resolve_device(cfg.device))
        emb = encode_corpus(encoder, corpus, cfg, progress=progress)
        index = DenseIndex.build(emb.vectors, emb.ids, kind=index_kind, serving=True)
        ad = load_adapter(adapter_folder(adapter), device=encoder.device)[0] if adapter else None
        return cls(
            encoder,
            index,
            emb.vectors,
            ad,
            query_max_length=cfg.query_max_length,
            rerank_k=rerank_k,
            lambda_rr=lambda_rr,
            precision=cfg.precision,
        )

    # --- the stages ------------------------------------------------------------
    def encode(self, query: str) -> np.ndarray:
        """The query's unit vector, (1, d)."""
        return encode_texts(
            self.encoder, [query], "query", self.query_max_length, 1, progress=False, precision=self.precision
        )

    def retrieve(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The index's top ``k`` for one query vector: document rows and cosines, best first (ties by doc id)."""
        scores, rows = self.index.search_rows(q, k, threads=1)
        found = rows[0] >= 0
        rows, cos = rows[0][found], scores[0][found]
        if len(cos) > 1 and np.any(cos[1:] == cos[:-1]):  # ties by doc id, as evaluation and rerank_run break them
            order = sorted(range(len(rows)), key=lambda i: (-cos[i], self.index.doc_ids[rows[i]]))
            rows, cos = rows[order], cos[order]
        return rows, cos

    def rerank(self, q: np.ndarray, rows: np.ndarray, cos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(order, p_rel): the candidates' reranked order and the adapter's P(rel) for each."""
        if self._factored is None or not len(rows):
            return np.arange(len(rows)), np.full(len(rows), np.nan)
        p = self._factored.p_rel(q[0], self.doc_vectors[rows])  # candidates (k, d)
        return rerank_order(cos, p, self.lambda_rr), p

    def search(self, query: str, k: int = 10) -> list[Hit]:
        """The top ``k`` documents for ``query``: retrieve ``max(k, rerank_k)``, rerank the first ``rerank_k``."""
        if k < 1:
            raise ConfigError(f"k must be a positive integer, got {k}")
        q = self.encode(query)
        rows, cos = self.retrieve(q, max(k, self.rerank_k if self.adapter is not None else k))
        head = min(self.rerank_k, len(rows))
        order, p = self.rerank(q, rows[:head], cos[:head])
        ranked = list(order) + list(range(head, len(rows)))
        ids = self.index.doc_ids
        return [
            Hit(ids[rows[i]], r + 1, int(i) + 1, float(cos[i]), None if i >= head or np.isnan(p[i]) else float(p[i]))
            for r, i in enumerate(ranked[:k])
        ]
