"""The one-query serving path: the same ranking as batch retrieval and the batch adapter rerank."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rrra_core.adapter import AdapterConfig, RRRAAdapter, adapter_folder, adapter_rerank_signal, save_adapter
from rrra_core.data import load_dataset
from rrra_core.retrieval.dense import retrieve
from rrra_core.retrieval.encoder import EncoderConfig
from rrra_core.retrieval.evaluation import rank_run
from rrra_core.retrieval.rerank import rerank_run
from rrra_core.retrieval.search import Searcher
from rrra_core.runtime.errors import ConfigError


def _random_adapter(dim: int, folder: Path) -> Path:
    import torch

    torch.manual_seed(0)
    # A random head: the cosine-initialised one saturates P(rel) at 1 on the tiny
    # model, whose cosines all sit near 0.95, and nothing would move.
    cfg = AdapterConfig(dim=dim, head_init="random")
    adapter = RRRAAdapter(cfg)
    with torch.no_grad():  # a non-trivial adapter, so reranking really moves documents
        for p in adapter.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    save_adapter(adapter, cfg, folder / "adapter")
    return folder


@pytest.fixture()
def searcher_and_batch(tiny_model_dir: Path, tmp_path: Path):
    data = load_dataset("adi", "test")
    cfg = EncoderConfig(model=str(tiny_model_dir), query_max_length=16, doc_max_length=32)
    run_folder = _random_adapter(32, tmp_path / "run")
    searcher = Searcher.build(data.corpus, cfg, adapter=run_folder, rerank_k=20)
    return data, cfg, searcher


def test_search_matches_batch_retrieval_and_batch_rerank(searcher_and_batch) -> None:
    data, cfg, searcher = searcher_and_batch
    res = retrieve(searcher.encoder, data.corpus, data.queries, cfg, k=20)
    signal = adapter_rerank_signal(
        searcher.adapter, res.run, res.query_ids, res.query_vectors, res.corpus.ids, res.corpus.vectors, "p_rel"
    )
    reranked = rerank_run(res.run, signal, 1.0)
    moved = 0
    for qid in list(data.queries)[:10]:
        hits = searcher.search(data.queries[qid], k=20)
        want = [d for d, _ in rank_run({qid: reranked[qid]})[qid]]
        base = [d for d, _ in rank_run({qid: res.run[qid]})[qid]]
        assert [h.doc_id for h in hits] == want
        assert [h.rank for h in hits] == list(range(1, 21))
        for h in hits:
            assert base[h.retriever_rank - 1] == h.doc_id
            assert h.p_rel == pytest.approx(signal[qid][h.doc_id], abs=1e-5)
        moved += want != base
    assert moved > 0  # the adapter reranked something: the test is not vacuous


def test_lambda_zero_and_no_adapter_keep_the_retriever_order(searcher_and_batch) -> None:
    data, _, searcher = searcher_and_batch
    q = next(iter(data.queries.values()))
    base = Searcher(
        searcher.encoder, searcher.index, searcher.doc_vectors, None, query_max_length=searcher.query_max_length
    ).search(q, k=15)
    assert all(h.rank == h.retriever_rank and h.p_rel is None for h in base)
    searcher.lambda_rr = 0.0
    assert [h.doc_id for h in searcher.search(q, k=15)] == [h.doc_id for h in base]


def test_search_deeper_than_the_rerank_keeps_the_tail(searcher_and_batch) -> None:
    data, _, searcher = searcher_and_batch
    hits = searcher.search(next(iter(data.queries.values())), k=30)
    assert len(hits) == 30
    assert [h.retriever_rank for h in hits[20:]] == list(range(21, 31))
    assert all(h.p_rel is None for h in hits[20:]) and all(h.p_rel is not None for h in hits[:20])


def test_bad_settings_are_one_line_errors(tmp_path: Path, searcher_and_batch) -> None:
    _, _, searcher = searcher_and_batch
    with pytest.raises(ConfigError, match="not an adapter folder"):
        adapter_folder(tmp_path)
    with pytest.raises(ConfigError, match="k must be a positive integer"):
        searcher.search("x", k=0)
    with pytest.raises(ConfigError, match="rerank_k"):
        Searcher(searcher.encoder, searcher.index, searcher.doc_vectors, None, rerank_k=0)
    with pytest.raises(ValueError, match="document vectors"):
        Searcher(searcher.encoder, searcher.index, np.zeros((3, 32), dtype=np.float32))


def test_tied_scores_come_back_in_doc_id_order(searcher_and_batch) -> None:
    """Duplicate documents tie exactly; the serving path breaks ties by doc id like evaluation does."""
    from rrra_core.retrieval.index import DenseIndex

    _, _, searcher = searcher_and_batch
    v = searcher.doc_vectors[:1]
    vectors = np.repeat(v, 5, axis=0)
    index = DenseIndex.build(vectors, ["e", "b", "d", "a", "c"], kind="flat")
    s = Searcher(searcher.encoder, index, vectors, None)
    rows, cos = s.retrieve(v, 5)
    assert [index.doc_ids[r] for r in rows] == ["a", "b", "c", "d", "e"]
    assert np.all(cos == cos[0])
