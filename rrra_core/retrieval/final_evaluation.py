"""A trained model's final evaluation: the rankings it is scored by, their metrics and per-query record.

One function serves every place that scores a finished model: the end of
phases 1 and 3, a retrain job's "before" (its base run), and
``scripts/per_query.py`` recomputing a run's ``per_query.json``. Each ranking
is a *variant*: the retriever alone (named ``retriever`` for phase 1,
``no_rerank`` for phase 3) and, given an adapter and ``lambda_rr > 0``, the
same top-k reranked by the adapter (``rerank``): by the run's own rerank
choice when it made one (issue 29; the retriever's order again when it chose
off), else by the fixed ``lambda_rr`` and signal.

Its progress is counted in every part that takes a while (:func:`stage_parts`):
the corpus (docs), the queries, and the reranking (queries): thousands of
queries take tens of seconds to encode and to score on a CPU, which a count of
documents alone left silent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rrra_core.adapter.model import RRRAAdapter
from rrra_core.adapter.rerank import adapter_rerank_signal
from rrra_core.data.beir import Dataset
from rrra_core.retrieval.dense import Retrieval, retrieve
from rrra_core.retrieval.encoder import BiEncoder, EncoderConfig
from rrra_core.retrieval.evaluation import PER_QUERY_FILE, evaluate, per_query_record
from rrra_core.retrieval.rerank import rerank_run
from rrra_core.retrieval.rerank_choice import RerankChoice
from rrra_core.runtime import distributed
from rrra_core.runtime.reports import StageProgress, stage_message
from rrra_core.runtime.runs import Run

__all__ = ["FinalEvaluation", "final_evaluation", "stage_parts", "EVALUATION_PARTS"]

Callback = Callable[[int, int], None]
#: The parts of a final evaluation and their shares of its stage's span (the corpus dominates; measured on SQuAD's
#: 2,067 documents and 4,624 test queries with MiniLM on 2 CPU cores: 85 s, 36 s and 18 s).
EVALUATION_PARTS = (
    ("", "docs", 0.6),
    ("encoding the queries", "queries", 0.25),
    ("reranking with the adapter", "queries", 0.15),
)
# Queries reranked per adapter call: small enough that the count moves every second or so on a CPU.
_RERANK_CHUNK = 256


class _Part:
    """One counted part of a stage: a :class:`StageProgress` begun at the part's first count."""

    def __init__(self, stage: StageProgress, label: str, unit: str, span: tuple[float, float]) -> None:
        self.stage, self.label, self.unit, self.span = stage, label, unit, span
        self.progress: StageProgress | None = None

    def __call__(self, done: int, total: int) -> None:
        s = self.stage
        if self.progress is None:
            # The ETA is this part's own rate from here on, not the stage's since it began.
            self.progress = StageProgress(
                s.run,
                s.phase,
                s.stage,
                self.span,
                unit=self.unit,
                every_s=s.every_s,
                file=s.file,
                start_done=done,
                clock=s._clock,  # the stage's own clock (a test's fake one too)
                **s.fields,
            )
        name = f"{s.stage}: {self.label}" if self.label else s.stage
        self.progress.update(done, total, stage_message(name, done, total, self.unit, self.progress.eta_s(done, total)))


def stage_parts(stage: StageProgress, parts: Sequence[tuple[str, str, float]]) -> list[Callback]:
    """``callback(done, total)`` for each part of ``stage``, counted in turn: ``(label, unit, share)`` each.

    A long stage is often several counted parts (an evaluation encodes the
    corpus, then the queries, then reranks them). Each part moves the bar
    across its share of the stage's span, under the stage's name and fields,
    with the message ``<stage>: <label> · 1200/4624 queries · ETA 9 s`` (an
    empty label: ``<stage> · ...``); its ETA is timed from its own first count,
    so a part never inherits the rate of the one before it.
    """
    lo, hi = stage.span
    whole = sum(share for *_, share in parts) or 1.0
    callbacks: list[Callback] = []
    at = lo
    for label, unit, share in parts:
        end = at + (hi - lo) * share / whole
        callbacks.append(_Part(stage, label, unit, (at, end)))
        at = end
    return callbacks


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
    callback: Callback | None = None,
    stage: StageProgress | None = None,
    choice: RerankChoice | None = None,
) -> FinalEvaluation:
    """Retrieve ``data``'s queries with ``encoder`` (top ``k``) and, with an adapter, rerank them.

    ``dataset`` is the name the run's config gives the data (a folder path or an
    embedded name). The corpus vectors are cached (``encoder`` should carry the
    saved weights' fingerprint). Collective under torchrun: every rank encodes
    its shard and gets the same rankings. ``stage`` (a run's ``progress.json``)
    counts the corpus, the queries and the reranking in turn
    (:data:`EVALUATION_PARTS`); ``callback(done, total)`` follows the corpus
    encoding only. ``choice`` (the run's rerank choice, see
    :mod:`rrra_core.retrieval.rerank_choice`) overrides ``lambda_rr`` and
    ``rerank_signal``; its ``rerank`` variant is the retriever's order when it is off.
    """
    docs, queries, reranking = stage_parts(stage, EVALUATION_PARTS) if stage is not None else (callback, None, None)
    res = retrieve(
        encoder,
        data.corpus,
        data.queries,
        enc_cfg,
        k=k,
        index_kind=index_kind,
        cache=True,
        progress=progress,
        callback=docs,
        query_callback=queries,
    )
    runs = {plain: res.run}
    if choice is not None and adapter is not None:
        # The run's choice names the ``rerank`` variant even when it is off: what the run serves.
        lambda_rr, rerank_signal = choice.setting.lambda_rr, choice.setting.signal
        if lambda_rr == 0:
            runs["rerank"] = {q: dict(docs) for q, docs in res.run.items()}
            if reranking is not None and res.run:  # nothing to rerank: its part of the bar is done
                reranking(len(res.run), len(res.run))
    if adapter is not None and lambda_rr > 0:
        signal = _rerank_signal(adapter, res, rerank_signal, reranking)
        runs["rerank"] = rerank_run(res.run, signal, lambda_rr)
    return FinalEvaluation(dataset=str(dataset), split=data.split, k=k, qrels=data.qrels, runs=runs)


def _rerank_signal(
    adapter: RRRAAdapter, res: Retrieval, signal: str, callback: Callback | None
) -> dict[str, dict[str, float]]:
    """The adapter's signal on every retrieved pair, a chunk of queries at a time so that ``callback`` counts them."""
    qids = list(res.run)
    out: dict[str, dict[str, float]] = {}
    for start in range(0, len(qids), _RERANK_CHUNK):
        if callback is not None:
            callback(start, len(qids))
        chunk = {q: res.run[q] for q in qids[start : start + _RERANK_CHUNK]}
        out.update(
            adapter_rerank_signal(
                adapter, chunk, res.query_ids, res.query_vectors, res.corpus.ids, res.corpus.vectors, signal
            )
        )
    if callback is not None:
        callback(len(qids), len(qids))
    return out
