"""BM25 baseline (the ``bm25s`` package, Lucene variant, English stopwords, no stemming)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from rrra_core.data.beir import Doc, doc_text

__all__ = ["bm25_run"]


def bm25_run(
    corpus: Mapping[str, Doc], queries: Mapping[str, str], k: int = 100, k1: float = 1.5, b: float = 0.75
) -> dict[str, dict[str, float]]:
    """Top-``k`` BM25 results per query as a run dict (title + text indexed)."""
    import bm25s

    doc_ids = list(corpus)
    corpus_tokens = bm25s.tokenize([doc_text(corpus[d]) for d in doc_ids], stopwords="en", show_progress=False)
    retriever = bm25s.BM25(k1=k1, b=b)
    retriever.index(corpus_tokens, show_progress=False)
    qids = list(queries)
    if not qids:
        return {}
    q_tokens = bm25s.tokenize([queries[q] for q in qids], stopwords="en", show_progress=False)
    k = min(k, len(doc_ids))
    idx, scores = retriever.retrieve(q_tokens, k=k, show_progress=False)
    run: dict[str, dict[str, float]] = {}
    for qi, q in enumerate(qids):
        run[q] = {doc_ids[int(i)]: float(s) for i, s in zip(np.asarray(idx[qi]), np.asarray(scores[qi])) if s > 0}
    return run
