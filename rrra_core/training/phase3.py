"""Phase 3: joint fine-tuning of encoder and adapter with resampled hard negatives.

Each step takes a batch of (query, positive) pairs and, per query, ``n_hard``
hard negatives drawn from its candidate pool (top-K from the current encoder,
labelled positives removed) with the chosen sampler's weights, plus
``n_random`` random corpus documents. The contrastive loss is InfoNCE over
[positives; hard; random], so every query also sees the batch's other
positives: those are the random negatives the method mixes in, and
``n_random`` defaults to 0 (an extra random document per query costs a third
more encoding per step, ``results/speed_train.md``). With ``sampler="rrra"`` and ``lambda_adapter > 0``
the adapter is trained too, on the same step's embeddings:
``L = L_contrastive + λ · L_adapter`` (no ``L_norm`` in this phase, RRRA.md).

The pool is re-mined from the current encoder every ``remine_every`` epochs and
saved in the run folder (``pool.json``), so a killed run resumes with exactly
the pool it was using. Every sampled negative's gradient magnitude ``p_j/τ`` is
logged with its category into ``gradients.parquet``.

Adapter loss in this phase (ours): the pair (q, its positive) is class TP, or
FN with probability ``mu`` (the head never sees the label, so this only sets the
FN/TP prior while teaching it what relevant pairs look like); sampled hard and
random negatives are TN. That uses only embeddings the step computes anyway.

Under ``torchrun`` every rank runs this loop on the same global batches and
the same pool (mined from a sharded corpus encoding, rank 0's copy broadcast).
The contrastive loss is taken over the gathered batch
(:mod:`rrra_core.training.step`); the adapter loss over each rank's own pairs,
weighted so that the ranks' parts sum to the single-process loss. Only rank 0
writes the run folder.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rrra_core.adapter import AdapterConfig, RRRAAdapter, load_adapter, predict_pairs, save_adapter
from rrra_core.adapter.losses import adapter_loss
from rrra_core.adapter.model import FN, TN, TP
from rrra_core.data.beir import Dataset, doc_text
from rrra_core.data.corrections import LabelCorrections
from rrra_core.negatives.mining import (
    MiningConfig,
    mine_hard_negatives,
    positive_score,
    query_rng,
    sample_without_replacement,
)
from rrra_core.negatives.resampling import SAMPLERS, pool_coverage, sampler_weights, zero_weight_reason
from rrra_core.retrieval.dense import retrieve
from rrra_core.retrieval.encoder import BiEncoder, EncoderConfig
from rrra_core.retrieval.evaluation import rank_run
from rrra_core.retrieval.final_evaluation import final_evaluation, stage_parts
from rrra_core.retrieval.rerank_choice import RerankChoiceConfig, choose_rerank_for_retrieval, read_rerank_choice
from rrra_core.runtime import distributed
from rrra_core.runtime.config import opt, section
from rrra_core.runtime.errors import ConfigError
from rrra_core.runtime.reports import METRICS_FILE, StageProgress, metrics_record, records_failure, upgrade_metrics
from rrra_core.runtime.run_config import run_config_dict
from rrra_core.runtime.runs import Run, atomic_path
from rrra_core.training.loop import (
    MixedPrecision,
    Reporter,
    StepPlan,
    TrainState,
    param_groups,
    phase_inputs,
    read_saved_metrics,
    resume_state,
    save_encoder,
    save_state,
    seed_step,
)
from rrra_core.training.losses import info_nce, negative_gradient_magnitudes
from rrra_core.training.phase2 import rerank_dev_split
from rrra_core.training.schedule import lr_at
from rrra_core.training.step import PairEmbedder, backward_and_step, embed_global_batch, set_lr

__all__ = ["Phase3Config", "train_phase3", "phase3_config_dict", "GRADIENT_CATEGORIES"]

log = logging.getLogger(__name__)

GRADIENT_CATEGORIES = ("planted_fn", "human_confirmed", "adapter_suspected", "other")
_PARTIAL_GRADIENTS = "gradients_partial.json"
_POOL_FILE = "pool.json"
#: The counted parts of mining the pool and their shares of its stage (``stage_parts``): the corpus, the training
#: queries, and the adapter's scoring of each query's candidates.
_MINING_PARTS = (
    ("", "docs", 0.7),
    ("encoding the queries", "queries", 0.15),
    ("scoring the candidates", "queries", 0.15),
)


@dataclass
class Phase3Config:
    """Phase-3 settings. Budget knobs: epochs, max_steps, batch_size, top_k, n_hard, max_train_queries."""

    dataset: str = opt("cranfield", "embedded dataset name or a BEIR folder")
    train_split: str = opt("train", "qrels split to train on")
    eval_split: str = opt("test", "qrels split to evaluate on at the end; empty for none")
    sampler: str = opt("rrra", "hard-negative sampler", choices=SAMPLERS)
    epochs: int = opt(1, "passes over the training pairs")
    max_steps: int | None = opt(None, "stop after this many optimizer steps")
    batch_size: int = opt(32, "queries per step, over all processes under torchrun")
    lr: float = opt(2e-5, "peak encoder learning rate")
    adapter_lr: float = opt(1e-3, "peak adapter learning rate")
    warmup_ratio: float = opt(0.1, "fraction of steps with linear warmup")
    weight_decay: float = opt(0.01, "AdamW weight decay")
    temperature: float = opt(0.05, "InfoNCE temperature tau")
    max_grad_norm: float = opt(1.0, "gradient clipping norm")
    n_hard: int = opt(1, "hard negatives sampled per query per step")
    n_random: int = opt(
        0,
        "extra random corpus negatives per query per step; 0 (the default, as in the benchmarks) relies on "
        "the in-batch negatives, the other queries' positives, as the random mix",
    )
    top_k: int = opt(100, "candidate pool depth K")
    remine_every: int = opt(1, "re-mine the pool from the current encoder every N epochs")
    gamma: float = opt(2.0, "rrra: exponent on (1 - P(FN|neg))")
    hardness_temperature: float = opt(
        0.2, "rrra: temperature of the softmax that maps scores to s_HN (0.2: chosen on dev, results/fair_*.md)"
    )
    simans_a: float = opt(0.5, "simans: a, on the logit scale s/tau")
    simans_b: float = opt(0.0, "simans: b, on the logit scale s/tau")
    relative_margin: float = opt(
        0.0, "margin: drop candidates with s_i > (1 - margin) * s_pos (0: chosen on dev, results/fair_*.md)"
    )
    lambda_adapter: float = opt(0.1, "weight of the adapter loss in joint training; 0 freezes the adapter")
    mu: float = opt(0.3, "joint adapter loss: probability a positive pair is presented as FN")
    class_weighting: bool = opt(
        True, "joint adapter loss uses the class weights the adapter was trained with in phase 2"
    )
    suspect_threshold: float = opt(
        0.5, "P(FN|neg) above which a negative counts as adapter-suspected in the gradient log"
    )
    lambda_rr: float = opt(
        2.0, "rerank strength at evaluation; 0 = no reranking (2.0: chosen on dev, results/fair_defaults.md)"
    )
    rerank_signal: str = opt(
        "qa", "adapter signal for reranking: p_rel or qa (qa: chosen on dev, results/fair_*)", choices=("p_rel", "qa")
    )
    eval_k: int = opt(100, "retrieval depth for evaluation (and reranking)")
    rerank: RerankChoiceConfig = section(
        RerankChoiceConfig,
        "how the run chooses its rerank on dev (with an adapter; replaces lambda_rr / rerank_signal unless disabled)",
        prefix="rerank_",
    )
    index_kind: str = opt("auto", "FAISS index kind: auto, flat, ivf or hnsw")
    max_train_queries: int | None = opt(None, "subsample training queries (budget knob)")
    checkpoint_every: int = opt(50, "save a resumable checkpoint every N steps (and at each epoch end)")
    seed: int = opt(0, "random seed")

    def __post_init__(self) -> None:
        if self.max_train_queries is not None and self.max_train_queries < 1:
            raise ConfigError(f"max_train_queries must be at least 1 (or unset for all), got {self.max_train_queries}")
        if self.checkpoint_every < 0:
            raise ConfigError(f"checkpoint_every must be >= 0 (0 = only at epoch ends), got {self.checkpoint_every}")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"unknown sampler {self.sampler!r}; choose one of {', '.join(SAMPLERS)}")
        if self.rerank_signal not in ("p_rel", "qa"):
            raise ConfigError(f"rerank_signal must be p_rel or qa, got {self.rerank_signal!r}")
        for name in ("epochs", "batch_size", "top_k", "remine_every", "eval_k"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise ConfigError("batch_size must be at least 2")
        for name in ("n_hard", "n_random", "lambda_adapter", "lambda_rr", "gamma"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.mu <= 1:
            raise ConfigError(f"mu must be in [0, 1], got {self.mu}")
        for name in ("lr", "adapter_lr", "temperature", "hardness_temperature"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"max_steps must be at least 1, got {self.max_steps}")


def phase3_config_dict(enc_cfg: EncoderConfig, cfg: Phase3Config, adapter_dir: str | None) -> dict[str, Any]:
    """The settings saved in a phase-3 run's ``config.json`` (see :mod:`rrra_core.runtime.run_config`)."""
    return run_config_dict(enc_cfg, cfg, adapter_init=adapter_dir)


# ----------------------------------------------------------------- the pool
def _mine_pool(
    encoder: BiEncoder,
    adapter: RRRAAdapter | None,
    data: Dataset,
    enc_cfg: EncoderConfig,
    cfg: Phase3Config,
    confirmed_negatives: Mapping[str, set[str]],
    excluded: Mapping[str, set[str]],
    cache: bool,
    stage: StageProgress | None = None,
) -> dict[str, Any]:
    """Top-K candidates per training query with scores, s_pos and P(FN|neg), as JSON-ready lists.

    Collective under torchrun (the corpus encoding is sharded); every rank returns rank 0's pool.
    ``stage`` counts the corpus, the queries and the candidates' scoring in turn (:data:`_MINING_PARTS`).
    """
    docs, queries, scoring = stage_parts(stage, _MINING_PARTS) if stage is not None else (None, None, None)
    res = retrieve(
        encoder,
        data.corpus,
        data.queries,
        enc_cfg,
        k=cfg.top_k,
        index_kind=cfg.index_kind,
        cache=cache,
        progress="re-mining: encoding corpus",
        callback=docs,
        query_callback=queries,
    )
    mined = mine_hard_negatives(rank_run(res.run), data.qrels, None, MiningConfig(top_k=cfg.top_k, n_neg=None))
    row = {d: i for i, d in enumerate(res.corpus.ids)}
    qrow = {q: i for i, q in enumerate(res.query_ids)}
    pool: dict[str, Any] = {}
    for i, (q, negs) in enumerate(mined.items()):
        if scoring is not None:
            scoring(i, len(mined))
        negs = [(d, s) for d, s in negs if d not in excluded.get(q, set())]
        # s_pos: the lowest labelled-positive score, computed exactly from the vectors.
        pos_ids = [d for d in data.qrels[q] if d in row]
        qv = res.query_vectors[qrow[q]]
        pos_scores = {d: float(res.corpus.vectors[row[d]] @ qv) for d in pos_ids}
        s_pos = positive_score(negs, set(pos_ids), pos_scores)
        p_fn = [0.0] * len(negs)
        if adapter is not None and negs:
            dv = res.corpus.vectors[[row[d] for d, _ in negs]]
            p_fn = predict_pairs(adapter, np.repeat(qv[None, :], len(negs), axis=0), dv)["p_fn_given_neg"].tolist()
        confirmed = confirmed_negatives.get(q, set())
        # A human said "not relevant": always eligible, whatever the adapter thinks.
        p_fn = [0.0 if d in confirmed else float(p) for (d, _), p in zip(negs, p_fn)]
        pool[q] = {"docs": [d for d, _ in negs], "scores": [float(s) for _, s in negs], "p_fn": p_fn, "s_pos": s_pos}
    if scoring is not None:
        scoring(len(mined), len(mined))
    # Ranks must sample from one pool; an approximate index need not rank ties alike everywhere.
    return distributed.broadcast_object(pool)


def _weights(cfg: Phase3Config, entry: dict[str, Any]) -> np.ndarray:
    return sampler_weights(
        cfg.sampler,
        np.asarray(entry["scores"]),
        entry["s_pos"] if entry["s_pos"] is not None else 1.0,
        np.asarray(entry["p_fn"]),
        gamma=cfg.gamma,
        hardness_tau=cfg.hardness_temperature,
        simans_a=cfg.simans_a,
        simans_b=cfg.simans_b,
        logit_tau=cfg.temperature,
        relative_margin=cfg.relative_margin,
        n=cfg.n_hard,
    )


def _report_coverage(
    cfg: Phase3Config, weights: Mapping[str, np.ndarray], train_queries: list[str], epoch: int, main: bool
) -> dict[str, Any] | None:
    """Warn when some training queries can get no hard negative this epoch; the counts for metrics.json."""
    if not cfg.n_hard:
        return None
    cov = pool_coverage(weights, train_queries)
    n_queries = len(set(train_queries))
    summary: dict[str, Any] = {
        "queries": n_queries,
        **{k: len(v) for k, v in cov.items()},
        "examples": {k: v[:10] for k, v in cov.items()},
    }
    missing = summary["no_candidates"] + summary["zero_weight"]
    if main and missing:
        log.warning(
            "phase 3 epoch %d: %d of %d training queries get no hard negative (%d with no candidates left, "
            "%d because %s; e.g. %s); they train on in-batch negatives only",
            epoch + 1,
            missing,
            n_queries,
            summary["no_candidates"],
            summary["zero_weight"],
            zero_weight_reason(cfg.sampler),
            ", ".join((cov["zero_weight"] + cov["no_candidates"])[:3]),
        )
    return summary


def _category(
    q: str, d: str, p_fn: float, cfg: Phase3Config, planted: Mapping[str, set[str]], human: Mapping[str, set[str]]
) -> int:
    if d in planted.get(q, ()):
        return 0
    if d in human.get(q, ()):
        return 1
    if p_fn >= cfg.suspect_threshold:
        return 2
    return 3


def _local_adapter_loss(
    adapter: torch.nn.Module,
    q: torch.Tensor,
    d: torch.Tensor,
    targets: np.ndarray,
    local: np.ndarray,
    weights: torch.Tensor | None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """This rank's part of the joint adapter loss, and the whole loss's parts for logging.

    q, d: (P, H) query and document of every pair of the global batch;
    targets: (P,) classes; local: the pairs embedded on this rank. The loss is
    a weighted mean, ``sum_i w_i l_i / sum_i w_i`` over all P pairs; the rank
    sums over its own pairs and divides by the global ``sum_i w_i``, so the
    ranks' parts (and their gradients) add up to the single-process loss. In
    one process ``local`` is every pair and this is ``adapter_loss`` itself.
    """
    dev = q.device
    idx = torch.as_tensor(local, device=dev)
    w_all = (
        weights[torch.as_tensor(targets, device=dev)] if weights is not None else torch.ones(len(targets), device=dev)
    )
    share = float(w_all[idx].sum() / w_all.sum())  # this rank's share of sum_i w_i
    qa, dl = q[idx].float(), d[idx].float()  # (p, H)
    # The adapter runs in fp32 here as in phase 2, mining and reranking, whatever
    # autocast the encoder step uses: it is small, and its readings are probabilities.
    with torch.autocast(dev.type, enabled=False):
        a, logits = adapter(qa, dl)
        if share > 0:
            loss, parts = adapter_loss(
                logits, torch.as_tensor(targets[local], device=dev), a, qa, dl, weights, lambda_norm=0.0
            )
            if share != 1.0:
                loss = loss * share
        else:  # no weight here (e.g. a rank without pairs): contribute zero, but through the adapter, for DDP
            loss, parts = logits.sum() * 0.0, {"ce": 0.0, "norm": 0.0}
    # Logged parts are the global batch's: ce adds up over ranks as the loss does; norm
    # is a plain mean over pairs; total is ce, since this phase drops L_norm.
    ce = distributed.all_reduce_sum(parts["ce"] * share)
    norm = distributed.all_reduce_sum(parts["norm"] * len(local) / len(targets))
    return loss, {"ce": ce, "norm": norm, "total": ce}


# ----------------------------------------------------------------- the models
@dataclass
class _Models:
    """The encoder and, from phase 2, the adapter; ``joint`` when the adapter trains too."""

    encoder: BiEncoder
    adapter: RRRAAdapter | None
    adapter_cfg: AdapterConfig | None
    joint: bool
    module: torch.nn.ModuleDict = field(init=False)  # what the checkpoint holds and the step clips

    def __post_init__(self) -> None:
        parts = {"encoder": self.encoder, **({"adapter": self.adapter} if self.adapter is not None else {})}
        self.module = torch.nn.ModuleDict(parts)

    def train_mode(self) -> None:
        self.encoder.train()
        if self.adapter is not None:
            self.adapter.train(self.joint)


def _load_models(enc_cfg: EncoderConfig, cfg: Phase3Config, adapter_dir: str | None, device: torch.device) -> _Models:
    encoder = BiEncoder.from_pretrained(enc_cfg.model, shared=enc_cfg.shared).to(device)
    adapter: RRRAAdapter | None = None
    adapter_cfg: AdapterConfig | None = None
    if adapter_dir is not None:
        adapter, adapter_cfg = load_adapter(adapter_dir, device=device)
        if adapter_cfg.dim != encoder.dim:
            raise ConfigError(f"adapter dim {adapter_cfg.dim} does not match the encoder's {encoder.dim}")
    joint = adapter is not None and cfg.sampler == "rrra" and cfg.lambda_adapter > 0
    return _Models(encoder, adapter, adapter_cfg, joint)


def _optimizer(models: _Models, cfg: Phase3Config) -> tuple[torch.optim.Optimizer, list[torch.nn.Parameter]]:
    """AdamW over the encoder, and the adapter when it trains, each at its own peak learning rate.

    Also returns the parameters in the order a checkpoint from before the
    ``dim()`` grouping listed them (one group per model), so such a run resumes.
    """
    groups = param_groups(models.encoder, cfg.weight_decay, lr=cfg.lr)
    legacy = list(models.encoder.parameters())
    if models.joint:
        groups += param_groups(models.adapter, cfg.weight_decay, lr=cfg.adapter_lr)
        legacy += list(models.adapter.parameters())
    return torch.optim.AdamW(groups), legacy


def _epoch_pool(
    run: Run,
    pool_state: dict[str, Any] | None,
    epoch: int,
    report: Reporter,
    models: _Models,
    data: Dataset,
    enc_cfg: EncoderConfig,
    cfg: Phase3Config,
    confirmed_negatives: Mapping[str, set[str]],
    excluded: Mapping[str, set[str]],
) -> dict[str, Any]:
    """The pool ``epoch`` samples from: the current one, or re-mined from the encoder every ``remine_every`` epochs."""
    if pool_state is not None and pool_state.get("epoch") == epoch - epoch % cfg.remine_every:
        return pool_state
    # The corpus is encoded again by the current encoder: minutes on a CPU, so the bar follows it.
    mining = report.sub_stage("mining the candidate pool", unit="docs", epoch=epoch + 1)
    models.encoder.eval()
    pool = _mine_pool(
        models.encoder,
        models.adapter,
        data,
        enc_cfg,
        cfg,
        confirmed_negatives,
        excluded,
        cache=True,
        stage=mining,
    )
    pool_state = {"epoch": epoch, "pool": pool}
    if distributed.is_main():
        run.write_json(_POOL_FILE, pool_state)
    return pool_state


# ----------------------------------------------------------------- one step
@dataclass
class _Batch:
    """One step's queries and documents: docs are the positives, then the hard, then the random negatives."""

    qids: list[str]
    pos: list[str]
    hard: list[tuple[int, str, float, float]]  # (query row, doc, score, p_fn)
    rand: list[tuple[int, str]]  # (query row, doc)
    docs: list[str] = field(init=False)
    rows: list[int] = field(init=False)  # the batch row of the query that brings each doc

    def __post_init__(self) -> None:
        self.docs = self.pos + [h[1] for h in self.hard] + [d for _, d in self.rand]
        self.rows = list(range(len(self.qids))) + [h[0] for h in self.hard] + [r for r, _ in self.rand]


def _sample_batch(
    pairs: list[tuple[str, str]],
    idx: np.ndarray,
    pool: Mapping[str, Any],
    weights: Mapping[str, np.ndarray],
    cfg: Phase3Config,
    step: int,
    all_doc_ids: list[str],
    qrels: Mapping[str, Mapping[str, int]],
    excluded: Mapping[str, set[str]],
) -> _Batch:
    """Per query: ``n_hard`` negatives drawn from its pool with the sampler's weights, ``n_random`` corpus documents."""
    qids = [pairs[i][0] for i in idx]
    hard: list[tuple[int, str, float, float]] = []
    rand: list[tuple[int, str]] = []
    for r, q in enumerate(qids):
        rng = query_rng(cfg.seed * 7919 + step, q)
        entry = pool.get(q)
        if entry and cfg.n_hard:
            for i in sample_without_replacement(weights[q], cfg.n_hard, rng):
                hard.append((r, entry["docs"][i], entry["scores"][i], entry["p_fn"][i]))
        for _ in range(cfg.n_random):
            d = all_doc_ids[int(rng.integers(len(all_doc_ids)))]
            if d not in qrels[q] and d not in excluded.get(q, ()):
                rand.append((r, d))
    return _Batch(qids, [pairs[i][1] for i in idx], hard, rand)


def _joint_loss(
    embedder: torch.nn.Module,
    adapter_fwd: torch.nn.Module | None,
    models: _Models,
    batch: _Batch,
    mask: torch.Tensor,
    data: Dataset,
    enc_cfg: EncoderConfig,
    cfg: Phase3Config,
    step: int,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float], torch.Tensor, torch.Tensor]:
    """(L, L_contrastive, the adapter loss's parts, query and doc embeddings) of one step.

    ``L = L_contrastive + λ · L_adapter`` when the adapter trains, else the
    contrastive loss alone.
    """
    device = mask.device
    targets = torch.arange(len(batch.qids), device=device)
    q_emb, d_emb, local = embed_global_batch(
        embedder,
        [data.queries[q] for q in batch.qids],
        [doc_text(data.corpus[d], enc_cfg.with_title) for d in batch.docs],
        batch.rows,
    )  # (B, H), (N, H): the whole batch on every rank
    loss_c = info_nce(q_emb, d_emb, targets, cfg.temperature, mask)
    if not models.joint:
        return loss_c, loss_c, {}, q_emb, d_emb
    B = len(batch.qids)
    rng = np.random.default_rng([cfg.seed, step])
    pos_targets = np.where(rng.random(B) < cfg.mu, FN, TP)
    tgt = np.concatenate([pos_targets, np.full(len(batch.docs) - B, TN)])
    # The phase-2 class weights, so raw logits keep one meaning and readings stay calibrated.
    w = models.adapter.class_weights().to(device) if cfg.class_weighting else None
    qa = q_emb[torch.tensor(batch.rows, device=device)]  # (P, H): pair j is (query of doc j, doc j)
    loss_a, parts = _local_adapter_loss(adapter_fwd, qa, d_emb, tgt, local, w)
    return loss_c + cfg.lambda_adapter * loss_a, loss_c, parts, q_emb, d_emb


# ----------------------------------------------------------------- the gradient log
class _GradientLog:
    """Every sampled negative's gradient magnitude ``|dL/ds_j| = p_j/τ`` with its category.

    Only rank 0 keeps it (every rank holds the same gathered batch). A copy in
    ``gradients_partial.json`` travels with each checkpoint, so a resumed run
    continues the log it had.
    """

    COLUMNS = ("step", "epoch", "query_id", "doc_id", "kind", "category", "p_fn", "score", "grad")

    def __init__(self, columns: dict[str, list] | None = None) -> None:
        self.columns = columns or {k: [] for k in self.COLUMNS}

    @classmethod
    def resume(cls, run: Run, step: int) -> _GradientLog:
        return cls(run.read_json(_PARTIAL_GRADIENTS) if step and distributed.is_main() else None)

    def add_step(
        self,
        step: int,
        epoch: int,
        batch: _Batch,
        q_emb: torch.Tensor,
        d_emb: torch.Tensor,
        mask: torch.Tensor,
        temperature: float,
        categorize: Any,
    ) -> None:
        """Log every sampled negative of one step (``step``, ``epoch`` 1-based)."""
        B, N = len(batch.qids), len(batch.docs)
        targets = torch.arange(B, device=q_emb.device)
        with torch.no_grad():
            scores = (q_emb.detach() @ d_emb.detach().T).float()  # (B, N)
            scores = scores.masked_fill(mask & ~torch.nn.functional.one_hot(targets, N).bool(), float("-inf"))
            p = negative_gradient_magnitudes(scores, targets, temperature)  # (B, N): p_j / tau
            scores, p = scores.cpu(), p.cpu()  # one device-to-host copy, not one per logged negative
        offset = B
        for j, (r, d, s, pf) in enumerate(batch.hard):
            q = batch.qids[r]
            self._add(step, epoch, q, d, "hard", categorize(q, d, pf), pf, s, float(p[r, offset + j]))
        offset += len(batch.hard)
        for j, (r, d) in enumerate(batch.rand):
            q, score = batch.qids[r], float(scores[r, offset + j])
            self._add(step, epoch, q, d, "random", categorize(q, d, 0.0), float("nan"), score, float(p[r, offset + j]))

    def _add(
        self, step: int, epoch: int, q: str, d: str, kind: str, category: int, p_fn: float, score: float, grad: float
    ) -> None:
        row = (step, epoch, q, d, kind, GRADIENT_CATEGORIES[category], None if p_fn != p_fn else p_fn, score, grad)
        for name, value in zip(self.COLUMNS, row):  # NaN p_fn -> null (JSON-safe)
            self.columns[name].append(value)

    def save_partial(self, run: Run) -> None:
        run.write_json(_PARTIAL_GRADIENTS, self.columns)

    def write(self, run: Run, sampler: str) -> None:
        """``gradients.parquet``: one row per sampled negative (step, category, sampler, p_j/tau, ...)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({**self.columns, "sampler": [sampler] * len(self.columns["step"])})
        with atomic_path(run.file("gradients.parquet")) as tmp:
            pq.write_table(table, tmp)


# ----------------------------------------------------------------- the end
def _finish(
    run: Run,
    models: _Models,
    grads: _GradientLog,
    eval_data: Dataset | None,
    enc_cfg: EncoderConfig,
    cfg: Phase3Config,
    progress: StageProgress,
    dev: Dataset | None = None,
) -> tuple[dict[str, dict[str, float]], dict[str, Any] | None]:
    """Save the encoder (stamped, so the evaluation's corpus vectors are cached), the adapter and the
    gradient log, choose the rerank on ``dev`` (when given), then evaluate with and without reranking
    (``progress`` follows its corpus encoding); returns the variants' metrics and the choice."""
    save_encoder(run, models.encoder, enc_cfg)
    if models.adapter is not None:
        models.adapter.eval()
        if distributed.is_main():
            save_adapter(models.adapter, models.adapter_cfg, run.file("adapter"))
    if distributed.is_main():
        grads.write(run, cfg.sampler)
    choice = _choose_rerank(models, dev, enc_cfg, cfg)
    if eval_data is None:
        return {}, choice.as_dict() if choice else None
    evaluation = final_evaluation(
        models.encoder,
        eval_data,
        enc_cfg,
        dataset=cfg.dataset,
        k=cfg.eval_k,
        index_kind=cfg.index_kind,
        plain="no_rerank",
        adapter=models.adapter,
        lambda_rr=cfg.lambda_rr,
        rerank_signal=cfg.rerank_signal,
        stage=progress,
        choice=choice,
    )
    return evaluation.record(run), choice.as_dict() if choice else None


def _choose_rerank(models: _Models, dev: Dataset | None, enc_cfg: EncoderConfig, cfg: Phase3Config) -> Any:
    """The run's rerank chosen on ``dev`` with the trained encoder and adapter (None without either)."""
    if dev is None or models.adapter is None:
        return None
    models.encoder.eval()
    res = retrieve(
        models.encoder, dev.corpus, dev.queries, enc_cfg, k=cfg.rerank.k, index_kind=cfg.index_kind, progress=False
    )
    choice = choose_rerank_for_retrieval(models.adapter, res, dev.qrels, cfg.rerank)
    log.info("phase 3: rerank %s", choice.summary())
    return choice


def rerank_inputs(
    cfg: Phase3Config, adapter_dir: str | None, train_data: Dataset | None, eval_data: Dataset | None
) -> tuple[Dataset, Dataset | None, list[tuple[str, str]], Dataset | None]:
    """:func:`phase_inputs` less the rerank's dev queries, and those queries (None: no adapter, or disabled).

    The dev queries are the ones the phase-2 adapter was chosen on (its ``metrics.json`` records them), so
    neither that adapter nor this phase trains on them; an adapter run without a record (made before runs
    chose their rerank) gets a fresh carve of the training queries (:func:`rerank_dev_split`).
    """
    train_data, eval_data, pairs = phase_inputs(cfg, train_data, eval_data)
    if adapter_dir is None or not cfg.rerank.enabled:
        return train_data, eval_data, pairs, None
    metrics_file = Path(adapter_dir).parent / METRICS_FILE
    recorded = read_rerank_choice(json.loads(metrics_file.read_text()) if metrics_file.is_file() else {})
    ids = [q for q in recorded.dev_queries if q in train_data.qrels] if recorded else None
    train_data, dev = rerank_dev_split(train_data, cfg.rerank, dev_ids=ids or None)
    train_data, eval_data, pairs = phase_inputs(cfg, train_data, eval_data)
    return train_data, eval_data, pairs, dev


def _train_summary(
    pairs: list, state: TrainState, plan: StepPlan, models: _Models, cfg: Phase3Config, coverage: dict | None
) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "pairs": len(pairs),
        "steps": state.step,
        "steps_per_epoch": plan.steps_per_epoch,
        "joint_adapter": models.joint,
        "sampler": cfg.sampler,
        "processes": distributed.get_world_size(),
    }
    if coverage is not None:  # the last pool's: which queries trained on in-batch negatives only
        summary["without_hard_negative"] = coverage
    return summary


# ----------------------------------------------------------------- the trainer
@dataclass
class _Trainer:
    """Everything a phase-3 step needs besides its batch: the models, their optimizer, the run's logs."""

    run: Run
    cfg: Phase3Config
    enc_cfg: EncoderConfig
    data: Dataset
    models: _Models
    optimizer: torch.optim.Optimizer
    amp: MixedPrecision
    plan: StepPlan
    report: Reporter
    grads: _GradientLog
    excluded: Mapping[str, set[str]]
    categorize: Callable[[str, str, float], int]
    embedder: torch.nn.Module = field(init=False)
    adapter_fwd: torch.nn.Module | None = field(init=False)

    def __post_init__(self) -> None:
        # One DDP forward per step for the encoder (queries and documents together) and one
        # for the adapter. BERT's pooler head never reaches the loss, so the encoder's
        # wrapper looks for unused parameters; every adapter parameter is used every step.
        encoder, adapter = self.models.encoder, self.models.adapter
        self.embedder = distributed.wrap(
            PairEmbedder(encoder, self.enc_cfg.query_max_length, self.enc_cfg.doc_max_length),
            find_unused_parameters=True,
        )
        self.adapter_fwd = distributed.wrap(adapter, find_unused_parameters=False) if self.models.joint else adapter

    def step(self, state: TrainState, batch: _Batch) -> None:
        """One optimizer step on ``batch``: the loss, the gradient log, the step's log line, a checkpoint when due."""
        cfg, data, models = self.cfg, self.data, self.models
        mask = torch.tensor(
            [[d in data.qrels[q] or d in self.excluded.get(q, ()) for d in batch.docs] for q in batch.qids],
            device=self.amp.device,
        )  # (B, N): a query's positives and human-confirmed relevant docs are never its negatives
        seed_step(cfg.seed, state.step)
        scale = lr_at(state.step, self.plan.total_steps, self.plan.warmup, 1.0)
        set_lr(self.optimizer, scale)
        with self.amp.autocast():
            out = _joint_loss(self.embedder, self.adapter_fwd, models, batch, mask, data, self.enc_cfg, cfg, state.step)
        loss, loss_c, parts, q_emb, d_emb = out
        world = distributed.get_world_size()
        grad_norm = backward_and_step(
            loss, self.optimizer, models.module.parameters(), cfg.max_grad_norm, self.amp.scaler, loss_scale=world
        )
        if distributed.is_main():
            self.grads.add_step(
                state.step + 1, state.epoch + 1, batch, q_emb, d_emb, mask, cfg.temperature, self.categorize
            )
        state.step += 1
        # loss_c is the whole batch's on every rank; the adapter part is summed over ranks.
        loss_value = loss_c.item() + cfg.lambda_adapter * parts["total"] if models.joint else loss_c.item()
        self.report.step(
            state.step,
            state.epoch + 1,
            loss_value,
            loss_contrastive=loss_c.item(),
            **{f"adapter_{k}": v for k, v in parts.items()},
            lr_scale=scale,
            grad_norm=grad_norm,
            n_docs=len(batch.docs),
        )
        if cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0:
            self.checkpoint(state)

    def checkpoint(self, state: TrainState) -> None:
        """The checkpoint, with the gradient log so far beside it."""
        if distributed.is_main():
            self.grads.save_partial(self.run)
        save_state(self.run, self.models.module, self.optimizer, state, self.amp.scaler)


def _start(
    run: Run, models: _Models, cfg: Phase3Config, device: torch.device
) -> tuple[torch.optim.Optimizer, MixedPrecision, TrainState, dict[str, Any]]:
    """The optimizer, mixed precision, the loop state and metrics: fresh, or as a killed run left them."""
    optimizer, legacy_order = _optimizer(models, cfg)
    amp = MixedPrecision.for_device(device)
    state = resume_state(run, models.module, optimizer, amp.scaler, legacy_params=legacy_order)
    if state is None:
        return optimizer, amp, TrainState(), metrics_record(3)
    log.info("resumed %s at step %d (epoch %d)", run.id, state.step, state.epoch)
    return optimizer, amp, state, upgrade_metrics(read_saved_metrics(run), "phase3")


# ----------------------------------------------------------------- the loop
def _mining_passes(pool_state: dict[str, Any] | None, start_epoch: int, plan: StepPlan, cfg: Phase3Config) -> int:
    """How many times the loop will mine its pool from ``start_epoch`` on (the rule of :func:`_epoch_pool`)."""
    passes, mined = 0, pool_state.get("epoch") if pool_state else None
    for epoch in plan.epochs_to_run(start_epoch):
        if mined != epoch - epoch % cfg.remine_every:
            passes, mined = passes + 1, epoch
    return passes


def _reporter(
    run: Run, plan: StepPlan, cfg: Phase3Config, state: TrainState, pool_state: dict[str, Any] | None, evaluates: bool
) -> Reporter:
    """The loop's reporter, its bar shared out: the final evaluation the last tenth, each mining pass a tenth
    (at most three tenths in all; each re-encodes the corpus), the steps the rest."""
    passes = _mining_passes(pool_state, state.epoch, plan, cfg)
    span = (0.0, 0.9 if evaluates else 1.0)
    reserve = min(0.3, 0.1 * passes)
    return Reporter(run, 3, plan.total_steps, cfg.epochs, state.step, span=span, reserve=reserve, sub_stages=passes)


@records_failure(3)
def train_phase3(
    run: Run,
    enc_cfg: EncoderConfig,
    cfg: Phase3Config,
    adapter_dir: str | None = None,
    train_data: Dataset | None = None,
    eval_data: Dataset | None = None,
    corrections: LabelCorrections | None = None,
    planted_false_negatives: Mapping[str, set[str]] | None = None,
) -> dict[str, Any]:
    """Train phase 3 into ``run`` (resuming if it has a checkpoint); returns its metrics.

    ``enc_cfg.model`` is the starting encoder (usually a phase-1 run). The
    adapter starts from ``adapter_dir`` (a phase-2 output); without one, RRRA
    sampling is impossible and no reranking is evaluated. ``train_data.qrels``
    are the labels to train on, with human corrections already merged
    (``corrections.qrels``); the ``corrections``' confirmed negatives stay
    eligible as negatives whatever the adapter says, and the pairs a human
    confirmed relevant are never negatives. ``planted_false_negatives`` is read
    only to label the gradient log (benchmarks with hidden positives): sampling
    and training never see it.
    """
    confirmed_negatives = corrections.confirmed_negatives if corrections else {}
    human_relevant = corrections.human_relevant if corrections else {}
    device = distributed.local_device(enc_cfg.device)
    main = distributed.is_main()
    torch.manual_seed(cfg.seed)
    train_data, eval_data, pairs, dev = rerank_inputs(cfg, adapter_dir, train_data, eval_data)
    if cfg.sampler == "rrra" and adapter_dir is None:
        raise ConfigError("the rrra sampler needs a trained adapter (phase 2); pass its folder")
    models = _load_models(enc_cfg, cfg, adapter_dir, device)
    plan = StepPlan.make(len(pairs), cfg.batch_size, cfg.seed, cfg.epochs, cfg.max_steps, cfg.warmup_ratio)
    excluded = {q: set(human_relevant.get(q, ())) for q in train_data.qrels}
    optimizer, amp, state, metrics = _start(run, models, cfg, device)
    pool_state = distributed.broadcast_object(run.read_json(_POOL_FILE) if state.step and main else None)
    report = _reporter(run, plan, cfg, state, pool_state, eval_data is not None)
    trainer = _Trainer(
        run=run,
        cfg=cfg,
        enc_cfg=enc_cfg,
        data=train_data,
        models=models,
        optimizer=optimizer,
        amp=amp,
        plan=plan,
        report=report,
        grads=_GradientLog.resume(run, state.step),
        excluded=excluded,
        categorize=partial(_category, cfg=cfg, planted=planted_false_negatives or {}, human=human_relevant),
    )
    all_doc_ids = list(train_data.corpus)
    coverage: dict[str, Any] | None = None
    while plan.running(state.step, state.epoch):
        args = (models, train_data, enc_cfg, cfg, confirmed_negatives, excluded)
        pool_state = _epoch_pool(run, pool_state, state.epoch, report, *args)
        pool, weights = pool_state["pool"], {q: _weights(cfg, e) for q, e in pool_state["pool"].items()}
        coverage = _report_coverage(cfg, weights, [q for q, _ in pairs], state.epoch, main)
        models.train_mode()
        done = state.step - state.epoch * plan.steps_per_epoch
        report.start_epoch(f"phase 3 ({cfg.sampler}) epoch {state.epoch + 1}/{cfg.epochs}", plan.steps_per_epoch, done)
        for _, idx in plan.remaining(state.step, state.epoch):
            batch = _sample_batch(pairs, idx, pool, weights, cfg, state.step, all_doc_ids, train_data.qrels, excluded)
            trainer.step(state, batch)
        report.end_epoch()
        if not plan.epoch_finished(state.step, state.epoch):
            break
        state.epoch += 1
        metrics["epochs"].append({"epoch": state.epoch, "step": state.step})
        if main:
            run.write_json(METRICS_FILE, metrics)
        trainer.checkpoint(state)

    evaluating = StageProgress(report.run, 3, "evaluating", (report.span[1], 1.0), unit="docs", epoch=state.epoch)
    evaluating.start()
    variants, choice = _finish(run, models, trainer.grads, eval_data, enc_cfg, cfg, evaluating, dev)
    metrics.update(after=variants.get("rerank") or variants.get("no_rerank") or {}, variants=variants)
    metrics["rerank_choice"] = choice
    metrics["train"] = _train_summary(pairs, state, plan, models, cfg, coverage)
    if main:
        run.write_json(METRICS_FILE, metrics)
        run.file(_PARTIAL_GRADIENTS).unlink(missing_ok=True)
    report.done(state.step, state.epoch)
    distributed.barrier()  # the run folder is complete before any rank returns
    return metrics
