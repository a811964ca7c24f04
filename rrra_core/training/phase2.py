"""Phase 2 as a run: freeze an encoder, precompute embeddings, build labels, train the adapter.

Writes into the run folder: ``adapter/`` (config JSON + safetensors),
``metrics.json`` (four-class F1 on held-out queries, class counts) and
``predictions.parquet``: the adapter's view of every training query's top-K
candidates (the rerank's dev queries included) (rank, retriever score, label, the four class probabilities,
P(FN|neg), P(FP|pos), P(rel), QA, CA). The app's browser and review queue read
that file; nothing is recomputed in the UI. Unless ``rerank.enabled`` is
false, a dev split of the training queries (:mod:`rrra_core.retrieval.rerank_choice`)
is held out of the adapter's training and chooses the run's rerank after the
fit; ``metrics.json`` keeps the choice under ``rerank_choice``. The fit checkpoints at each epoch
end, so a killed run resumes (the corpus vectors come back from the cache).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from rrra_core.adapter import (
    CLASSES,
    AdapterConfig,
    AdapterFitConfig,
    LabelConfig,
    RRRAAdapter,
    build_adapter_pairs,
    predict_pairs,
    save_adapter,
    train_adapter,
)
from rrra_core.data.beir import Dataset, load_dataset
from rrra_core.data.corrections import LabelCorrections
from rrra_core.data.subsample import subsample_queries
from rrra_core.retrieval.dense import Retrieval, retrieve
from rrra_core.retrieval.encoder import BiEncoder, EncoderConfig
from rrra_core.retrieval.evaluation import rank_run
from rrra_core.retrieval.rerank_choice import (
    RERANK_CHOICE_KEY,
    RerankChoice,
    RerankChoiceConfig,
    choose_rerank_for_retrieval,
    dev_queries,
)
from rrra_core.runtime.config import opt, section
from rrra_core.runtime.device import resolve_device
from rrra_core.runtime.errors import ConfigError
from rrra_core.runtime.reports import METRICS_FILE, StageProgress, records_failure, write_progress
from rrra_core.runtime.run_config import run_config_dict
from rrra_core.runtime.runs import Run, atomic_path

__all__ = [
    "Phase2Config",
    "train_phase2",
    "phase2_config_dict",
    "pool_predictions",
    "write_predictions",
    "rerank_dev_split",
]

log = logging.getLogger(__name__)

# The run's progress bar, stage by stage: encoding dominates a CPU run, then the fit.
_CORPUS_SPAN, _QUERY_SPAN = (0.0, 0.62), (0.62, 0.68)
_LABELS_AT, _FIT_SPAN, _SCORE_SPAN = 0.7, (0.75, 0.95), (0.95, 1.0)


@dataclass
class Phase2Config:
    """Phase-2 settings: the data, the adapter's shape (the ablation switches), its labels and its fit."""

    dataset: str = opt("cranfield", "embedded dataset name or a BEIR folder")
    train_split: str = opt("train", "qrels split whose queries train the adapter")
    hidden: int | None = opt(None, "MLP hidden size h (default: d)")
    residual: bool = opt(True, "a = c + MLP(z); false = the no-residual ablation")
    zero_init: bool = opt(True, "zero the last MLP layer so a = c at start; false = the no-initialization ablation")
    head_init: str = opt(
        "cosine",
        "classification head start: 'cosine' (the retriever's ranking) or 'random'",
        choices=("cosine", "random"),
    )
    index_kind: str = opt("auto", "FAISS index kind")
    max_train_queries: int | None = opt(
        None, "subsample this many training queries (budget knob; the quick demo uses it)"
    )
    subsample_seed: int = opt(0, "seed for the query subsample")
    labels: LabelConfig = section(LabelConfig, "how the adapter's training labels are made", prefix="label_")
    fit: AdapterFitConfig = section(AdapterFitConfig, "how the adapter is fit on the frozen embeddings")
    rerank: RerankChoiceConfig = section(
        RerankChoiceConfig, "how the run's rerank is chosen on a dev split of its training queries", prefix="rerank_"
    )

    def __post_init__(self) -> None:
        if self.max_train_queries is not None and self.max_train_queries < 1:
            raise ConfigError(f"max_train_queries must be at least 1 (or unset for all), got {self.max_train_queries}")

    def adapter_config(self, dim: int) -> AdapterConfig:
        """The adapter's architecture for embeddings of size ``dim``."""
        return AdapterConfig(
            dim=dim, hidden=self.hidden, residual=self.residual, zero_init=self.zero_init, head_init=self.head_init
        )


def phase2_config_dict(enc_cfg: EncoderConfig, cfg: Phase2Config) -> dict[str, Any]:
    """The settings saved in a phase-2 run's ``config.json`` (see :mod:`rrra_core.runtime.run_config`)."""
    return run_config_dict(enc_cfg, cfg)


def pool_predictions(
    adapter: RRRAAdapter,
    res: Retrieval,
    qrels: dict[str, dict[str, int]],
    top_k: int,
    callback: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """The adapter's readings for every query's top-K candidates, as columns (``callback`` follows the scoring)."""
    qrow = {q: i for i, q in enumerate(res.query_ids)}
    drow = {d: i for i, d in enumerate(res.corpus.ids)}
    cols: dict[str, list] = {k: [] for k in ("query_id", "doc_id", "rank", "score", "label")}
    for q, ranked in rank_run(res.run).items():
        for r, (d, s) in enumerate(ranked[:top_k]):
            cols["query_id"].append(q)
            cols["doc_id"].append(d)
            cols["rank"].append(r)
            cols["score"].append(float(s))
            cols["label"].append(int(qrels.get(q, {}).get(d, 0) > 0))
    if not cols["query_id"]:
        return {
            **cols,
            **{f"p_{c}": [] for c in CLASSES},
            "p_fn_given_neg": [],
            "p_fp_given_pos": [],
            "p_rel": [],
            "qa": [],
            "ca": [],
        }
    pred = predict_pairs(
        adapter,
        res.query_vectors,
        res.corpus.vectors,
        np.array([qrow[q] for q in cols["query_id"]]),
        np.array([drow[d] for d in cols["doc_id"]]),
        callback=callback,
    )
    for i, c in enumerate(CLASSES):
        cols[f"p_{c}"] = pred["probs"][:, i].tolist()
    for k in ("p_fn_given_neg", "p_fp_given_pos", "p_rel", "qa", "ca"):
        cols[k] = pred[k].tolist()
    return cols


def _training_queries(cfg: Phase2Config, train_data: Dataset | None) -> Dataset:
    """The split to train on, cut to the ``max_train_queries`` subsample."""
    data = train_data or load_dataset(cfg.dataset, cfg.train_split)
    keep = subsample_queries(data.qrels, cfg.max_train_queries, cfg.subsample_seed)
    if len(keep) == len(data.qrels):
        return data
    return replace(data, qrels={q: data.qrels[q] for q in keep}, queries={q: data.queries[q] for q in keep})


def rerank_dev_split(
    data: Dataset, cfg: RerankChoiceConfig, dev_ids: list[str] | None = None
) -> tuple[Dataset, Dataset | None]:
    """``(train, dev)``: ``data`` less the rerank's dev queries, and those queries (None when not choosing).

    ``dev_ids`` given (phase 3: the queries its phase-2 adapter held out), those; else the carve of
    :func:`~rrra_core.retrieval.rerank_choice.dev_queries`, the same for the same training queries.
    """
    if not cfg.enabled or len(data.qrels) < 2:
        return data, None
    if dev_ids is None:
        train_ids, dev_ids = dev_queries(list(data.qrels), cfg)
    else:
        train_ids = [q for q in data.qrels if q not in set(dev_ids)]

    def subset(ids: list[str], split: str) -> Dataset:
        return replace(
            data, split=split, qrels={q: data.qrels[q] for q in ids}, queries={q: data.queries[q] for q in ids}
        )

    return subset(train_ids, data.split), subset(dev_ids, f"{data.split}-dev")


def _retrieve_candidates(
    run: Run, encoder: BiEncoder, data: Dataset, enc_cfg: EncoderConfig, cfg: Phase2Config
) -> Retrieval:
    """Every training query's top candidates, deep enough for synthetic wrong positives (70% of the progress bar)."""
    labels = cfg.labels
    deep = max(labels.top_k, labels.fp_rank_range[1]) if labels.scheme == "synthetic" else labels.top_k
    # One bar moving with every batch, with an ETA: a CPU spends minutes here (a cache hit skips the callbacks).
    corpus = StageProgress(run, 2, "encoding the corpus", _CORPUS_SPAN, unit="docs")
    corpus.start()
    queries = StageProgress(run, 2, "encoding the queries", _QUERY_SPAN, unit="queries")

    def on_corpus(done: int, total: int) -> None:
        corpus.update(done, total)
        if done >= total:  # the queries' clock starts when the corpus is done
            queries.start()

    return retrieve(
        encoder,
        data.corpus,
        data.queries,
        enc_cfg,
        k=deep,
        index_kind=cfg.index_kind,
        progress="phase 2: encoding corpus",
        callback=on_corpus,
        query_callback=queries.update,
    )


@records_failure(2)
def train_phase2(
    run: Run,
    enc_cfg: EncoderConfig,
    cfg: Phase2Config,
    train_data: Dataset | None = None,
    corrections: LabelCorrections | None = None,
) -> dict[str, Any]:
    """Train an adapter on frozen embeddings of ``enc_cfg.model`` into ``run`` (resuming its fit); returns its metrics.

    ``progress.json`` follows the stages (encoding, labels, training, predictions)
    so a page can show a progress bar while this runs in another process.
    ``train_data.qrels`` are the labels to train on (``corrections.qrels`` when
    retraining with corrections); ``corrections.verdicts`` become the adapter's
    human-labelled pairs.
    """
    device = resolve_device(enc_cfg.device)
    train_data = _training_queries(cfg, train_data)
    fit_data, dev = rerank_dev_split(train_data, cfg.rerank)
    write_progress(run, 2, "loading the encoder", fraction=0.0)
    encoder = BiEncoder.from_pretrained(enc_cfg.model, shared=enc_cfg.shared).to(device).eval()
    res = _retrieve_candidates(run, encoder, train_data, enc_cfg, cfg)  # the dev queries too: one encoding

    write_progress(run, 2, "building adapter labels", fraction=_LABELS_AT)
    ranked = rank_run(res.run)
    candidates = {q: r[: cfg.labels.top_k] for q, r in ranked.items()}
    verdicts = corrections.verdicts if corrections is not None else None
    if verdicts and dev is not None:  # a verdict on a dev query would train the adapter on it
        verdicts = {qd: v for qd, v in verdicts.items() if str(qd[0]) not in dev.qrels}
    pairs = build_adapter_pairs(fit_data.qrels, candidates, cfg.labels, verdicts=verdicts, deep_candidates=ranked)

    write_progress(run, 2, "training the adapter", fraction=_FIT_SPAN[0])
    torch.manual_seed(cfg.fit.seed)
    adapter_cfg = cfg.adapter_config(encoder.dim)
    adapter = RRRAAdapter(adapter_cfg).to(device)
    vectors = (res.query_ids, res.query_vectors), (res.corpus.ids, res.corpus.vectors)
    metrics = train_adapter(adapter, pairs, *vectors, cfg.fit, run=run, stage="training the adapter", span=_FIT_SPAN)
    save_adapter(adapter, adapter_cfg, run.file("adapter"))

    scoring = StageProgress(run, 2, "scoring candidates", _SCORE_SPAN, unit="pairs")
    scoring.start()
    write_predictions(run, pool_predictions(adapter, res, train_data.qrels, cfg.labels.top_k, scoring.update))
    if dev is not None:
        write_progress(run, 2, "choosing the rerank on dev", fraction=_SCORE_SPAN[1])
        choice: RerankChoice = choose_rerank_for_retrieval(adapter, res, dev.qrels, cfg.rerank)
        log.info("phase 2: rerank %s", choice.summary())
        metrics[RERANK_CHOICE_KEY] = choice.as_dict()
    run.write_json(METRICS_FILE, metrics)
    write_progress(run, 2, "done", status="done", message="done")
    return metrics


def write_predictions(run: Run, cols: dict[str, Any]) -> None:
    """``<run>/predictions.parquet`` from :func:`pool_predictions` columns, written atomically, and the store the
    app reads them through (``<run>/reader/``: by query, so a page never loads the whole run)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from rrra_core.analysis.run_reader import build_store

    with atomic_path(run.file("predictions.parquet")) as tmp:
        pq.write_table(pa.table(cols), tmp)
    build_store(run.path)
