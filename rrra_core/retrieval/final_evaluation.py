"""A trained model's final evaluation: the rankings it is scored by, their metrics and per-query record.

One function serves every place that scores a finished model: the end of
phases 1 and 3, a retrain job's "before" (its base run), and
``scripts/per_query.py`` recomputing a run's ``per_query.json``. Each ranking
is a *variant*: the retriever alone (named ``retriever`` for phase 1,
``no_rerank`` for phase 3) and, given an adapter and ``lambda_rr > 0``, the
same top-k reranked by the adapter (``rerank``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rrra_core.adapter.model import RRRAAdapter
from rrra_core.adapter.rerank import adapter_rerank_signal
from rrra_core.data.beir import Dataset
from rrra_core.retrieval.dense import retrieve
from rrra_core.retrieval.encoder import BiEncoder, EncoderConfig
from rrra_core.retrieval.evaluation import PER_QUERY_FILE, evaluate, per_query_record
from rrra_core.retrieval.rerank import rerank_run
from rrra_core.runtime import distributed
from rrra_core.runtime.runs import Run

__all__ = ["FinalEvaluation", "final_evaluation"]


@dataclass(frozen=True)
class FinalEvaluation:
    """The variants' rankings on one split; metrics and the per-query record are computed from them."""

    dataset: str
    split: str
    k: int
    qrels: Mapping[str, Mapping[str, int]]
    runs: dict[str, dict[str, dict[str, float]]]  # {variant: run dict}

    def metrics(self) -> dict[str, dict[str, float]]:
        """``{variant: {metric: mean}}``, as ``metrics.json`` keeps them."""
        return {name: evaluate(self.qrels, run) for name, run in self.runs.items()}

    def per_query(self) -> dict[str, Any]:
        """The ``per_query.json`` content (see :func:`rrra_core.retrieval.evaluation.per_query_record`)."""
        return per_query_record(self.dataset, self.split, self.qrels, self.runs, k=self.k)

    def record(self, run: Run) -> dict[str, dict[str, float]]:
        """Write ``<run>/per_query.json`` (rank 0 only) and return :meth:`metrics`."""
        if distributed.is_main():
            run.write_json(PER_QUERY_FILE, self.per_query())
        return self.metrics()


def final_evaluation(
    encoder: BiEncoder,
    data: Dataset,
    enc_cfg: EncoderConfig,
    *,
    dataset: str,
    k: int,
    index_kind: str = "auto",
    plain: str = "retriever",
    adapter: RRRAAdapter | None = None,
    lambda_rr: float = 0.0,
    rerank_signal: str = "p_rel",
    progress: str = "evaluating: encoding corpus",
    callback: Callable[[int, int], None] | None = None,
) -> FinalEvaluation:
    """Retrieve ``data``'s queries with ``encoder`` (top ``k``) and, with an adapter, rerank them.

    ``dataset`` is the name the run's config gives the data (a folder path or an
    embedded name). The corpus vectors are cached (``encoder`` should carry the
    saved weights' fingerprint). Collective under torchrun: every rank encodes
    its shard and gets the same rankings. ``callback(done, total)`` follows the
    corpus encoding (a run's ``progress.json``: :class:`rrra_core.runtime.reports.StageProgress`).
    """
    res = retrieve(
        encoder,
        data.corpus,
        data.queries,
        enc_cfg,
        k=k,
        index_kind=index_kind,
        cache=True,
        progress=progress,
        callback=callback,
    )
    runs = {plain: res.run}
    if adapter is not None and lambda_rr > 0:
        signal = adapter_rerank_signal(
            adapter, res.run, res.query_ids, res.query_vectors, res.corpus.ids, res.corpus.vectors, rerank_signal
        )
        runs["rerank"] = rerank_run(res.run, signal, lambda_rr)
    return FinalEvaluation(dataset=str(dataset), split=data.split, k=k, qrels=data.qrels, runs=runs)
