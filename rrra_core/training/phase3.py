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

import logging
import time
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from rrra_core.adapter import AdapterConfig, RRRAAdapter, load_adapter, predict_pairs, save_adapter
from rrra_core.adapter.losses import adapter_loss
from rrra_core.adapter.model import FN, TN, TP
from rrra_core.analysis.comparison import PER_QUERY_FILE, per_query_record
from rrra_core.data.beir import Dataset, doc_text, load_dataset
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
from rrra_core.retrieval.evaluation import evaluate, rank_run
from rrra_core.retrieval.rerank import rerank_run
from rrra_core.runtime import distributed
from rrra_core.runtime.config import config_to_dict, opt
from rrra_core.runtime.device import autocast_dtype
from rrra_core.runtime.errors import ConfigError, DataError
from rrra_core.runtime.runs import Run
from rrra_core.training.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from rrra_core.training.losses import info_nce
from rrra_core.training.phase1 import _RANK_SEED_STRIDE, epoch_batches, step_plan, training_pairs
from rrra_core.training.schedule import lr_at
from rrra_core.training.step import PairEmbedder, backward_and_step, embed_global_batch, set_lr

__all__ = ["Phase3Config", "train_phase3", "phase3_config_dict", "GRADIENT_CATEGORIES", "adapter_rerank_signal"]

log = logging.getLogger(__name__)

GRADIENT_CATEGORIES = ("planted_fn", "human_confirmed", "adapter_suspected", "other")


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
        "extra random corpus negatives per query per step; 0 (the default, as in the benchmarks) relies on the in-batch negatives, the other queries' positives, as the random mix",
    )
    top_k: int = opt(100, "candidate pool depth K")
    remine_every: int = opt(1, "re-mine the pool from the current encoder every N epochs")
    gamma: float = opt(2.0, "rrra: exponent on (1 - P(FN|neg))")
    hardness_temperature: float = opt(0.05, "rrra: temperature of the softmax that maps scores to s_HN")
    simans_a: float = opt(0.5, "simans: a, on the logit scale s/tau")
    simans_b: float = opt(0.0, "simans: b, on the logit scale s/tau")
    relative_margin: float = opt(0.05, "margin: drop candidates with s_i > (1 - margin) * s_pos")
    lambda_adapter: float = opt(0.1, "weight of the adapter loss in joint training; 0 freezes the adapter")
    mu: float = opt(0.3, "joint adapter loss: probability a positive pair is presented as FN")
    class_weighting: bool = opt(
        True, "joint adapter loss uses the class weights the adapter was trained with in phase 2"
    )
    suspect_threshold: float = opt(
        0.5, "P(FN|neg) above which a negative counts as adapter-suspected in the gradient log"
    )
    lambda_rr: float = opt(1.0, "rerank strength at evaluation; 0 = no reranking")
    rerank_signal: str = opt("p_rel", "adapter signal for reranking: p_rel or qa", choices=("p_rel", "qa"))
    eval_k: int = opt(100, "retrieval depth for evaluation (and reranking)")
    index_kind: str = opt("auto", "FAISS index kind: auto, flat, ivf or hnsw")
    max_train_queries: int | None = opt(None, "subsample training queries (budget knob)")
    checkpoint_every: int = opt(50, "save a resumable checkpoint every N steps (and at each epoch end)")
    seed: int = opt(0, "random seed")

    def __post_init__(self) -> None:
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


def phase3_config_dict(enc_cfg: EncoderConfig, cfg: Phase3Config, adapter_dir: str | None) -> dict[str, Any]:
    """The sections saved in a phase-3 run's ``config.json``."""
    return {"encoder": config_to_dict(enc_cfg), "phase3": config_to_dict(cfg), "adapter_init": adapter_dir}


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
) -> dict[str, Any]:
    """Top-K candidates per training query with scores, s_pos and P(FN|neg), as JSON-ready lists.

    Collective under torchrun (the corpus encoding is sharded); every rank returns rank 0's pool.
    """
    res = retrieve(
        encoder,
        data.corpus,
        data.queries,
        enc_cfg,
        k=cfg.top_k,
        index_kind=cfg.index_kind,
        cache=cache,
        progress="re-mining: encoding corpus",
    )
    mined = mine_hard_negatives(rank_run(res.run), data.qrels, None, MiningConfig(top_k=cfg.top_k, n_neg=None))
    row = {d: i for i, d in enumerate(res.corpus.ids)}
    qrow = {q: i for i, q in enumerate(res.query_ids)}
    pool: dict[str, Any] = {}
    for q, negs in mined.items():
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
            "phase 3 epoch %d: %d of %d training queries get no hard negative (%d with no candidates left, %d because %s; e.g. %s); they train on in-batch negatives only",
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


def adapter_rerank_signal(
    adapter: RRRAAdapter,
    run: Mapping[str, Mapping[str, float]],
    qids: list[str],
    qvecs: np.ndarray,
    doc_ids: list[str],
    dvecs: np.ndarray,
    signal: str,
) -> dict[str, dict[str, float]]:
    """The adapter's relevance in (0, 1] for every (query, doc) of ``run``."""
    qrow = {q: i for i, q in enumerate(qids)}
    drow = {d: i for i, d in enumerate(doc_ids)}
    pairs = [(q, d) for q, docs in run.items() for d in docs]
    if not pairs:
        return {}
    pred = predict_pairs(
        adapter, qvecs, dvecs, np.array([qrow[q] for q, _ in pairs]), np.array([drow[d] for _, d in pairs])
    )
    values = pred["p_rel"] if signal == "p_rel" else (1.0 + pred["qa"]) / 2.0
    out: dict[str, dict[str, float]] = {}
    for (q, d), v in zip(pairs, values):
        out.setdefault(q, {})[d] = float(v)
    return out


def _final_evaluation(
    run: Run,
    encoder: BiEncoder,
    adapter: RRRAAdapter | None,
    data: Dataset | None,
    enc_cfg: EncoderConfig,
    cfg: Phase3Config,
) -> dict[str, Any]:
    """Metrics with and without reranking; the per-query scores go to ``per_query.json`` for run comparison."""
    if data is None:
        return {}
    res = retrieve(
        encoder,
        data.corpus,
        data.queries,
        enc_cfg,
        k=cfg.eval_k,
        index_kind=cfg.index_kind,
        cache=True,
        progress="evaluating: encoding corpus",
    )
    runs = {"no_rerank": res.run}
    if adapter is not None and cfg.lambda_rr > 0:
        signal = adapter_rerank_signal(
            adapter, res.run, res.query_ids, res.query_vectors, res.corpus.ids, res.corpus.vectors, cfg.rerank_signal
        )
        runs["rerank"] = rerank_run(res.run, signal, cfg.lambda_rr)
    if distributed.is_main():
        run.write_json(PER_QUERY_FILE, per_query_record(cfg.dataset, data.split, data.qrels, runs, k=cfg.eval_k))
    return {name: evaluate(data.qrels, r) for name, r in runs.items()}


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


# ----------------------------------------------------------------- the loop
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
    planted = planted_false_negatives or {}
    device = distributed.local_device(enc_cfg.device)
    main, world = distributed.is_main(), distributed.get_world_size()
    torch.manual_seed(cfg.seed)
    train_data = train_data or load_dataset(cfg.dataset, cfg.train_split)
    if eval_data is None and cfg.eval_split:
        eval_data = load_dataset(cfg.dataset, cfg.eval_split)
    if cfg.sampler == "rrra" and adapter_dir is None:
        raise ConfigError("the rrra sampler needs a trained adapter (phase 2); pass its folder")

    encoder = BiEncoder.from_pretrained(enc_cfg.model, shared=enc_cfg.shared).to(device)
    adapter: RRRAAdapter | None = None
    adapter_cfg: AdapterConfig | None = None
    if adapter_dir is not None:
        adapter, adapter_cfg = load_adapter(adapter_dir, device=device)
        if adapter_cfg.dim != encoder.dim:
            raise ConfigError(f"adapter dim {adapter_cfg.dim} does not match the encoder's {encoder.dim}")
    joint = adapter is not None and cfg.sampler == "rrra" and cfg.lambda_adapter > 0

    pairs = training_pairs(train_data.qrels, cfg.max_train_queries, cfg.seed)
    if not pairs:
        raise DataError(cfg.dataset, f"split {cfg.train_split!r} has no labelled positives to train on")
    steps_per_epoch, total_steps, warmup = step_plan(
        len(pairs), cfg.batch_size, cfg.seed, cfg.epochs, cfg.max_steps, cfg.warmup_ratio
    )
    excluded = {q: set(human_relevant.get(q, ())) for q in train_data.qrels}

    groups = [{"params": list(encoder.parameters()), "lr": cfg.lr, "weight_decay": cfg.weight_decay}]
    if joint:
        groups.append({"params": list(adapter.parameters()), "lr": cfg.adapter_lr, "weight_decay": cfg.weight_decay})
    optimizer = torch.optim.AdamW(groups)
    model = torch.nn.ModuleDict({"encoder": encoder, **({"adapter": adapter} if adapter is not None else {})})
    amp_dtype = autocast_dtype(device)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None

    step, epoch = 0, 0
    metrics: dict[str, Any] = {}
    if distributed.broadcast_object(has_checkpoint(run.path)):
        state = load_checkpoint(run.path, model, optimizer, scaler)
        step, epoch = state["step"], state["epoch"]
        metrics = distributed.broadcast_object((run.read_json("metrics.json", {}) or {}) if main else None)
        log.info("resumed %s at step %d (epoch %d)", run.id, step, epoch)
    # Only rank 0 keeps the gradient log (every rank holds the same gathered batch).
    grads: dict[str, list] = {
        k: [] for k in ("step", "epoch", "query_id", "doc_id", "kind", "category", "p_fn", "score", "grad")
    }
    prev = run.read_json("gradients_partial.json") if step and main else None
    if prev:
        grads = prev
    # One DDP forward per step for the encoder (queries and documents together) and one
    # for the adapter. BERT's pooler head never reaches the loss, so the encoder's
    # wrapper looks for unused parameters; every adapter parameter is used every step.
    embedder = distributed.wrap(
        PairEmbedder(encoder, enc_cfg.query_max_length, enc_cfg.doc_max_length), find_unused_parameters=True
    )
    adapter_fwd = distributed.wrap(adapter, find_unused_parameters=False) if joint else adapter

    all_doc_ids = list(train_data.corpus)
    t_start = time.perf_counter()
    steps_at_start = step
    pool_state = distributed.broadcast_object(run.read_json("pool.json") if step and main else None)
    coverage: dict[str, Any] | None = None
    while epoch < cfg.epochs and step < total_steps:
        if pool_state is None or pool_state.get("epoch") != epoch - epoch % cfg.remine_every:
            encoder.eval()
            pool = _mine_pool(encoder, adapter, train_data, enc_cfg, cfg, confirmed_negatives, excluded, cache=True)
            pool_state = {"epoch": epoch, "pool": pool}
            if main:
                run.write_json("pool.json", pool_state)
        pool = pool_state["pool"]
        weights = {q: _weights(cfg, e) for q, e in pool.items()}
        coverage = _report_coverage(cfg, weights, [q for q, _ in pairs], epoch, main)
        encoder.train()
        if adapter is not None:
            adapter.train(joint)
        batches = epoch_batches(len(pairs), cfg.batch_size, cfg.seed, epoch)
        first = step - epoch * steps_per_epoch
        bar = tqdm(
            total=len(batches),
            initial=first,
            desc=f"phase 3 ({cfg.sampler}) epoch {epoch + 1}/{cfg.epochs}",
            unit="step",
            disable=not main,
        )
        for b in range(first, len(batches)):
            if step >= total_steps:
                break
            idx = batches[b]
            qids = [pairs[i][0] for i in idx]
            pos = [pairs[i][1] for i in idx]
            hard: list[tuple[int, str, float, float]] = []  # (query row, doc, score, p_fn)
            rand: list[tuple[int, str]] = []
            for r, q in enumerate(qids):
                rng = query_rng(cfg.seed * 7919 + step, q)
                entry = pool.get(q)
                if entry and cfg.n_hard:
                    for i in sample_without_replacement(weights[q], cfg.n_hard, rng):
                        hard.append((r, entry["docs"][i], entry["scores"][i], entry["p_fn"][i]))
                for _ in range(cfg.n_random):
                    d = all_doc_ids[int(rng.integers(len(all_doc_ids)))]
                    if d not in train_data.qrels[q] and d not in excluded.get(q, ()):
                        rand.append((r, d))
            docs = pos + [h[1] for h in hard] + [d for _, d in rand]
            rows = list(range(len(qids))) + [h[0] for h in hard] + [r for r, _ in rand]  # query row of each doc
            mask = torch.tensor(
                [[d in train_data.qrels[q] or d in excluded.get(q, ()) for d in docs] for q in qids], device=device
            )  # (B, N)
            targets = torch.arange(len(qids), device=device)

            torch.manual_seed(cfg.seed * 1_000_003 + step + _RANK_SEED_STRIDE * distributed.get_rank())
            scale = lr_at(step, total_steps, warmup, 1.0)
            set_lr(optimizer, scale)
            ctx = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else nullcontext()
            with ctx:
                q_emb, d_emb, local = embed_global_batch(
                    embedder,
                    [train_data.queries[q] for q in qids],
                    [doc_text(train_data.corpus[d], enc_cfg.with_title) for d in docs],
                    rows,
                )  # (B, H), (N, H): the whole batch on every rank
                loss_c = info_nce(q_emb, d_emb, targets, cfg.temperature, mask)
                loss = loss_c
                parts: dict[str, float] = {}
                if joint:
                    B = len(qids)
                    rng = np.random.default_rng([cfg.seed, step])
                    pos_targets = np.where(rng.random(B) < cfg.mu, FN, TP)
                    tgt = np.concatenate([pos_targets, np.full(len(docs) - B, TN)])
                    # The phase-2 class weights, so raw logits keep one meaning and readings stay calibrated.
                    w = adapter.class_weights().to(device) if cfg.class_weighting else None
                    qa = q_emb[torch.tensor(rows, device=device)]  # (P, H): pair j is (query of doc j, doc j)
                    loss_a, parts = _local_adapter_loss(adapter_fwd, qa, d_emb, tgt, local, w)
                    loss = loss_c + cfg.lambda_adapter * loss_a
            grad_norm = backward_and_step(
                loss, optimizer, model.parameters(), cfg.max_grad_norm, scaler, loss_scale=world
            )

            # Gradient analysis: |dL/ds_j| = p_j / tau for every sampled negative.
            if main:
                with torch.no_grad():
                    scores = (q_emb.detach() @ d_emb.detach().T).float()  # (B, N)
                    scores = scores.masked_fill(
                        mask & ~torch.nn.functional.one_hot(targets, len(docs)).bool(), float("-inf")
                    )
                    p = torch.softmax(scores / cfg.temperature, dim=-1) / cfg.temperature  # (B, N)
                    scores, p = scores.cpu(), p.cpu()  # one device-to-host copy, not one per logged negative
                offset = len(qids)
                for j, (r, d, s, pf) in enumerate(hard):
                    _log_grad(
                        grads,
                        step + 1,
                        epoch + 1,
                        qids[r],
                        d,
                        "hard",
                        _category(qids[r], d, pf, cfg, planted, human_relevant),
                        pf,
                        s,
                        float(p[r, offset + j]),
                    )
                offset += len(hard)
                for j, (r, d) in enumerate(rand):
                    _log_grad(
                        grads,
                        step + 1,
                        epoch + 1,
                        qids[r],
                        d,
                        "random",
                        _category(qids[r], d, 0.0, cfg, planted, human_relevant),
                        float("nan"),
                        float(scores[r, offset + j]),
                        float(p[r, offset + j]),
                    )

            step += 1
            # loss_c is the whole batch's on every rank; the adapter part is summed over ranks.
            loss_value = loss_c.item() + cfg.lambda_adapter * parts["total"] if joint else loss_c.item()
            elapsed = time.perf_counter() - t_start
            rate = (step - steps_at_start) / elapsed if elapsed > 0 else 0.0
            if main:
                run.log(
                    {
                        "phase": 3,
                        "step": step,
                        "epoch": epoch + 1,
                        "loss": loss_value,
                        "loss_contrastive": loss_c.item(),
                        **{f"adapter_{k}": v for k, v in parts.items()},
                        "lr_scale": scale,
                        "grad_norm": grad_norm,
                        "n_docs": len(docs),
                        "time": round(elapsed, 3),
                    }
                )
                run.write_json(
                    "progress.json",
                    {
                        "phase": 3,
                        "epoch": epoch + 1,
                        "epochs": cfg.epochs,
                        "step": step,
                        "total_steps": total_steps,
                        "loss": loss_value,
                        "eta_s": (total_steps - step) / rate if rate else None,
                        "status": "training",
                    },
                )
            bar.set_postfix(loss=f"{loss_value:.4f}")
            bar.update(1)
            if main and cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                run.write_json("gradients_partial.json", grads)
                save_checkpoint(run.path, model, optimizer, {"step": step, "epoch": epoch}, scaler)
        bar.close()
        if not (step >= (epoch + 1) * steps_per_epoch or step >= total_steps):
            break
        epoch += 1
        if main:
            run.write_json("gradients_partial.json", grads)
            save_checkpoint(run.path, model, optimizer, {"step": step, "epoch": epoch}, scaler)

    # Save, stamp the encoder with the saved weights' digest (so the final corpus
    # vectors are cached for whoever loads the run), then evaluate.
    if main:
        encoder.save(run.file("model"), max_seq_length=enc_cfg.doc_max_length)
    encoder.eval()
    encoder._fingerprint = distributed.broadcast_object(BiEncoder._digest_dir(run.file("model")) if main else None)
    if adapter is not None:
        adapter.eval()
        if main:
            save_adapter(adapter, adapter_cfg, run.file("adapter"))
    if main:
        _write_gradients(run, grads, cfg.sampler)
    metrics["eval"] = _final_evaluation(run, encoder, adapter, eval_data, enc_cfg, cfg)
    metrics["train"] = {
        "pairs": len(pairs),
        "steps": step,
        "steps_per_epoch": steps_per_epoch,
        "joint_adapter": joint,
        "sampler": cfg.sampler,
        "processes": world,
    }
    if coverage is not None:
        metrics["train"]["without_hard_negative"] = (
            coverage  # the last pool's: which queries trained on in-batch negatives only
        )
    if main:
        run.write_json("metrics.json", metrics)
        run.write_json(
            "progress.json",
            {
                "phase": 3,
                "epoch": epoch,
                "epochs": cfg.epochs,
                "step": step,
                "total_steps": total_steps,
                "status": "done",
            },
        )
        run.file("gradients_partial.json").unlink(missing_ok=True)
    distributed.barrier()  # the run folder is complete before any rank returns
    return metrics


def _log_grad(
    grads: dict[str, list],
    step: int,
    epoch: int,
    q: str,
    d: str,
    kind: str,
    category: int,
    p_fn: float,
    score: float,
    grad: float,
) -> None:
    grads["step"].append(step)
    grads["epoch"].append(epoch)
    grads["query_id"].append(q)
    grads["doc_id"].append(d)
    grads["kind"].append(kind)
    grads["category"].append(GRADIENT_CATEGORIES[category])
    grads["p_fn"].append(None if p_fn != p_fn else p_fn)  # NaN -> null (JSON-safe)
    grads["score"].append(score)
    grads["grad"].append(grad)


def _write_gradients(run: Run, grads: dict[str, list], sampler: str) -> None:
    """``gradients.parquet``: one row per sampled negative (step, category, sampler, p_j/tau, ...)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({**grads, "sampler": [sampler] * len(grads["step"])})
    tmp = run.file("gradients.parquet.tmp")
    pq.write_table(table, tmp)
    tmp.replace(run.file("gradients.parquet"))
