"""Phase 1: contrastive fine-tuning of the bi-encoder (InfoNCE, in-batch + optional hard negatives).

The loop reads top to bottom: build training pairs, optionally mine hard
negatives with the starting encoder, then for each epoch shuffle, step, log,
evaluate, checkpoint. A killed run resumes from ``<run>/checkpoint`` at the
exact batch it stopped at, because the batch order and every random draw are
derived from (seed, epoch, step) rather than from a stateful generator.

Under ``torchrun`` every rank runs this same loop on the same global batches
(``--batch-size`` is the global batch); each embeds its share and the loss is
taken over the gathered batch (see :mod:`rrra_core.training.step`). Corpus
encoding for mining and evaluation is sharded across ranks. Only rank 0
writes the run folder.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rrra_core.data.beir import Dataset, doc_text
from rrra_core.data.training_files import read_training_file, write_tevatron
from rrra_core.negatives.mining import MiningConfig, mine_hard_negatives, mined_examples
from rrra_core.retrieval.dense import evaluate_encoder, retrieve
from rrra_core.retrieval.encoder import BiEncoder, EncoderConfig
from rrra_core.retrieval.evaluation import rank_run
from rrra_core.retrieval.final_evaluation import final_evaluation
from rrra_core.runtime import distributed
from rrra_core.runtime.config import opt
from rrra_core.runtime.errors import ConfigError, DataError
from rrra_core.runtime.reports import METRICS_FILE, metrics_record, records_failure, upgrade_metrics
from rrra_core.runtime.run_config import run_config_dict
from rrra_core.runtime.runs import Run
from rrra_core.training.checkpoint import has_checkpoint
from rrra_core.training.loop import (
    MixedPrecision,
    Reporter,
    StepPlan,
    TrainState,
    epoch_batches,
    param_groups,
    phase_inputs,
    read_saved_metrics,
    resume_state,
    save_encoder,
    save_state,
    seed_step,
    step_plan,
    training_pairs,
)
from rrra_core.training.losses import info_nce
from rrra_core.training.schedule import lr_at
from rrra_core.training.step import PairEmbedder, backward_and_step, embed_global_batch, set_lr

__all__ = [
    "Phase1Config",
    "train_phase1",
    "phase1_config_dict",
    "training_pairs",
    "epoch_batches",
    "step_plan",
]

log = logging.getLogger(__name__)


@dataclass
class Phase1Config:
    """Phase-1 settings. Budget knobs: epochs, max_steps, batch_size, max_train_queries, the max lengths."""

    dataset: str = opt("scifact", "embedded dataset name (squad, scifact, cranfield, adi) or a BEIR folder")
    train_split: str = opt("train", "qrels split to train on")
    eval_split: str = opt("test", "qrels split to evaluate on after each epoch; empty for none")
    epochs: int = opt(1, "passes over the training pairs")
    max_steps: int | None = opt(None, "stop after this many optimizer steps (budget knob)")
    batch_size: int = opt(
        32,
        "queries per step, over all processes under torchrun; "
        "each brings its positive as an in-batch negative for the others",
    )
    lr: float = opt(2e-5, "peak AdamW learning rate")
    warmup_ratio: float = opt(0.1, "fraction of steps with linear warmup")
    weight_decay: float = opt(0.01, "AdamW weight decay (never on biases and norm weights)")
    temperature: float = opt(0.05, "InfoNCE temperature tau (0.05 = sentence-transformers' scale 20)")
    max_grad_norm: float = opt(1.0, "gradient clipping norm")
    hard_negatives: str = opt(
        "none",
        "'none' (in-batch only), 'mine' (mine with the starting encoder), or a Tevatron/FlagEmbedding JSONL path",
    )
    n_hard: int = opt(1, "hard negatives per query per step, when hard negatives are used")
    max_train_queries: int | None = opt(None, "subsample this many training queries (budget knob)")
    eval_k: int = opt(100, "retrieval depth for evaluation")
    index_kind: str = opt("auto", "FAISS index for evaluation and mining: auto, flat, ivf or hnsw")
    checkpoint_every: int = opt(50, "save a resumable checkpoint every N steps (and at each epoch end)")
    seed: int = opt(0, "random seed")

    def __post_init__(self) -> None:
        if self.max_train_queries is not None and self.max_train_queries < 1:
            raise ConfigError(f"max_train_queries must be at least 1 (or unset for all), got {self.max_train_queries}")
        if self.checkpoint_every < 0:
            raise ConfigError(f"checkpoint_every must be >= 0 (0 = only at epoch ends), got {self.checkpoint_every}")
        if self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 2:
            raise ConfigError(f"batch_size must be at least 2 for in-batch negatives, got {self.batch_size}")
        if not (self.lr > 0 and self.temperature > 0):
            raise ConfigError("lr and temperature must be positive")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.n_hard < 0:
            raise ConfigError(f"n_hard must be >= 0, got {self.n_hard}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"max_steps must be at least 1, got {self.max_steps}")


def phase1_config_dict(enc_cfg: EncoderConfig, cfg: Phase1Config, mining: MiningConfig) -> dict[str, Any]:
    """The settings saved in a phase-1 run's ``config.json`` (see :mod:`rrra_core.runtime.run_config`)."""
    return run_config_dict(enc_cfg, cfg, mining=mining)


# ----------------------------------------------------------------- inputs
def _load_negatives(
    spec: str,
    run: Run,
    encoder: BiEncoder,
    data: Dataset,
    enc_cfg: EncoderConfig,
    cfg: Phase1Config,
    mining: MiningConfig,
) -> dict[str, list[str]]:
    """Per-query hard-negative doc ids, copied or mined into ``<run>/negatives.jsonl``.

    Collective under torchrun: all ranks encode the corpus, rank 0 reads or
    writes the files, and every rank gets rank 0's negatives.
    """
    if spec == "none" or cfg.n_hard == 0:
        return {}
    out_path = run.file("negatives.jsonl")
    main = distributed.is_main()
    examples = None
    if distributed.broadcast_object(out_path.is_file()):  # resumed run: reuse exactly what was mined before
        examples = read_training_file(out_path) if main else None
    elif spec == "mine":
        log.info("mining hard negatives with the starting encoder")
        res = retrieve(encoder, data.corpus, data.queries, enc_cfg, k=mining.top_k, index_kind=cfg.index_kind)
        if main:
            mined = mine_hard_negatives(rank_run(res.run), data.qrels, None, mining)
            examples = mined_examples(mined, data.queries, data.corpus, data.qrels, res.run)
            write_tevatron(out_path, examples)
    elif main:
        examples = read_training_file(spec)
        write_tevatron(out_path, examples)  # the run folder must be self-contained
    examples = distributed.broadcast_object(examples)
    negatives: dict[str, list[str]] = {}
    for ex in examples:
        if ex.query_id is None:
            raise DataError(spec, "hard negatives need query ids (Tevatron format with query_id)")
        ids = [p.docid for p in ex.negatives if p.docid is not None]
        unknown = [d for d in ids if d not in data.corpus]
        if unknown:
            raise DataError(spec, f"query {ex.query_id!r}: negative doc id {unknown[0]!r} is not in the corpus")
        negatives[ex.query_id] = ids
    return negatives


def _starting_metrics(
    run: Run,
    encoder: BiEncoder,
    eval_data: Dataset | None,
    enc_cfg: EncoderConfig,
    cfg: Phase1Config,
    resuming: bool,
) -> dict[str, Any]:
    """The metrics record: the saved one when resuming, else a new one with the starting encoder's evaluation."""
    if resuming:
        return upgrade_metrics(read_saved_metrics(run), "phase1")
    log.info("evaluating the starting encoder")
    before = evaluate_encoder(encoder.eval(), eval_data, enc_cfg, cfg.eval_k, cfg.index_kind, cache=True)
    metrics = metrics_record(1, before=before, epochs=[])
    if distributed.is_main():
        run.write_json(METRICS_FILE, metrics)
    return metrics


# ----------------------------------------------------------------- one step
@dataclass
class _Batch:
    """One step's queries and documents: docs are the positives, then the hard negatives."""

    qids: list[str]
    docs: list[str]
    rows: list[int]  # the batch row of the query that brings each doc


def _batch(
    pairs: list[tuple[str, str]],
    idx: np.ndarray,
    negatives: dict[str, list[str]],
    qrels: dict[str, dict[str, int]],
    n_hard: int,
    rng: np.random.Generator,
) -> _Batch:
    """The batch's queries, their positives and up to ``n_hard`` hard negatives each (never a labelled positive)."""
    qids = [pairs[i][0] for i in idx]
    hard: list[str] = []
    rows = list(range(len(qids)))
    for r, q in enumerate(qids):
        cands = [d for d in negatives.get(q, []) if d not in qrels[q]]
        if cands:
            take = min(n_hard, len(cands))
            hard.extend(cands[i] for i in rng.choice(len(cands), size=take, replace=False))
            rows.extend([r] * take)
    return _Batch(qids, [pairs[i][1] for i in idx] + hard, rows)


def _contrastive_loss(
    embedder: torch.nn.Module, batch: _Batch, data: Dataset, enc_cfg: EncoderConfig, cfg: Phase1Config, device: Any
) -> torch.Tensor:
    """InfoNCE over the gathered batch; a doc labelled positive for a query is never that query's negative."""
    mask = torch.tensor([[d in data.qrels[q] for d in batch.docs] for q in batch.qids], device=device)  # (B, N)
    targets = torch.arange(len(batch.qids), device=device)
    q_emb, d_emb, _ = embed_global_batch(
        embedder,
        [data.queries[q] for q in batch.qids],
        [doc_text(data.corpus[d], enc_cfg.with_title) for d in batch.docs],
        batch.rows,
    )  # (B, H), (N, H): the whole batch on every rank
    return info_nce(q_emb, d_emb, targets, cfg.temperature, mask)


# ----------------------------------------------------------------- epoch ends
def _evaluate_epoch(
    run: Run,
    encoder: BiEncoder,
    eval_data: Dataset | None,
    enc_cfg: EncoderConfig,
    cfg: Phase1Config,
    last: bool,
    callback: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """(the epoch's metrics, the final evaluation's variants) after an epoch; the last one saves the model first.

    ``callback(done, total)`` follows the evaluation's corpus encoding (the run's progress bar).

    Saving first stamps the encoder with the saved weights' digest, so the final
    evaluation's corpus vectors are cached for whoever loads ``<run>/model``.
    """
    if not last:
        return evaluate_encoder(encoder, eval_data, enc_cfg, cfg.eval_k, cfg.index_kind, False, callback), {}
    save_encoder(run, encoder, enc_cfg)
    if eval_data is None:
        return {}, {}
    evaluation = final_evaluation(
        encoder, eval_data, enc_cfg, dataset=cfg.dataset, k=cfg.eval_k, index_kind=cfg.index_kind, callback=callback
    )
    variants = evaluation.record(run)
    return variants["retriever"], variants


def _record_epoch(
    run: Run,
    metrics: dict[str, Any],
    state: TrainState,
    epoch_metrics: dict[str, float],
    variants: dict[str, dict[str, float]],
) -> None:
    """Add the finished epoch's evaluation to ``metrics.json``, keeping the best epoch by nDCG@10."""
    metrics["epochs"].append({"epoch": state.epoch, "step": state.step, **epoch_metrics})
    best = metrics.get("best")
    if epoch_metrics and (best is None or epoch_metrics["nDCG@10"] > best["nDCG@10"]):
        metrics["best"] = {"epoch": state.epoch, **epoch_metrics}
    metrics["variants"] = variants or metrics.get("variants") or {}
    state.extra["best_metric"] = metrics["best"]
    if distributed.is_main():
        run.write_json(METRICS_FILE, metrics)


def _train_summary(pairs: list, state: TrainState, plan: StepPlan, report: Reporter) -> dict[str, Any]:
    return {
        "pairs": len(pairs),
        "steps": state.step,
        "steps_per_epoch": plan.steps_per_epoch,
        "processes": distributed.get_world_size(),
        "seconds_this_session": round(report.elapsed(), 1),
    }


# ----------------------------------------------------------------- the loop
@records_failure(1)
def train_phase1(
    run: Run,
    enc_cfg: EncoderConfig,
    cfg: Phase1Config,
    mining: MiningConfig | None = None,
    train_data: Dataset | None = None,
    eval_data: Dataset | None = None,
) -> dict[str, Any]:
    """Train phase 1 into ``run`` (resuming if it has a checkpoint); returns its metrics.

    Under torchrun, call it on every rank (after :func:`rrra_core.runtime.distributed.setup`)
    with the same arguments; resuming needs the run folder visible to all ranks.
    """
    mining = mining or MiningConfig()
    device = distributed.local_device(enc_cfg.device)
    main, world = distributed.is_main(), distributed.get_world_size()
    torch.manual_seed(cfg.seed)
    train_data, eval_data, pairs = phase_inputs(cfg, train_data, eval_data)

    encoder = BiEncoder.from_pretrained(enc_cfg.model, shared=enc_cfg.shared).to(device)
    resuming = distributed.broadcast_object(has_checkpoint(run.path))
    metrics = _starting_metrics(run, encoder, eval_data, enc_cfg, cfg, resuming)
    negatives = _load_negatives(cfg.hard_negatives, run, encoder, train_data, enc_cfg, cfg, mining)
    plan = StepPlan.make(len(pairs), cfg.batch_size, cfg.seed, cfg.epochs, cfg.max_steps, cfg.warmup_ratio)

    optimizer = torch.optim.AdamW(param_groups(encoder, cfg.weight_decay), lr=cfg.lr)
    amp = MixedPrecision.for_device(device)
    state = resume_state(run, encoder, optimizer, amp.scaler) or TrainState()
    if resuming:
        log.info("resumed %s at step %d (epoch %d)", run.id, state.step, state.epoch)
    # One DDP forward per step embeds queries and documents. BERT computes its pooler
    # head, which mean pooling never reads: those weights get no gradient, so DDP must
    # look for unused parameters (they then keep grad None, as in one process).
    embedder = distributed.wrap(
        PairEmbedder(encoder, enc_cfg.query_max_length, enc_cfg.doc_max_length), find_unused_parameters=True
    )
    # Each epoch's evaluation re-encodes the evaluation corpus: a tenth of the bar each (three at most in all).
    evaluations = len(plan.epochs_to_run(state.epoch)) if eval_data is not None else 0
    report = Reporter(
        run, 1, plan.total_steps, cfg.epochs, state.step, reserve=min(0.3, 0.1 * evaluations), sub_stages=evaluations
    )

    encoder.train()
    while plan.running(state.step, state.epoch):
        done = state.step - state.epoch * plan.steps_per_epoch
        report.start_epoch(f"epoch {state.epoch + 1}/{cfg.epochs}", plan.steps_per_epoch, done)
        for b, idx in plan.remaining(state.step, state.epoch):
            rng = np.random.default_rng([cfg.seed, state.epoch, b])
            batch = _batch(pairs, idx, negatives, train_data.qrels, cfg.n_hard, rng)
            seed_step(cfg.seed, state.step)
            lr = lr_at(state.step, plan.total_steps, plan.warmup, cfg.lr)
            set_lr(optimizer, lr / cfg.lr)
            with amp.autocast():
                loss = _contrastive_loss(embedder, batch, train_data, enc_cfg, cfg, device)
            grad_norm = backward_and_step(
                loss, optimizer, encoder.parameters(), cfg.max_grad_norm, amp.scaler, loss_scale=world
            )
            state.step += 1
            report.step(state.step, state.epoch + 1, loss.item(), lr=lr, grad_norm=grad_norm, n_docs=len(batch.docs))
            if cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0:
                save_state(run, encoder, optimizer, state, amp.scaler)
        report.end_epoch()
        if not plan.epoch_finished(state.step, state.epoch):
            break
        state.epoch += 1
        last = not plan.running(state.step, state.epoch)
        progress = report.sub_stage(f"evaluating epoch {state.epoch}", unit="docs", epoch=state.epoch)
        _record_epoch(
            run, metrics, state, *_evaluate_epoch(run, encoder, eval_data, enc_cfg, cfg, last, progress.update)
        )
        encoder.train()
        save_state(run, encoder, optimizer, state, amp.scaler)

    metrics["after"] = metrics["epochs"][-1] if metrics.get("epochs") else {}
    metrics["train"] = _train_summary(pairs, state, plan, report)
    if main:
        if not run.file("model").is_dir():  # resumed after the last epoch had already saved
            encoder.save(run.file("model"), max_seq_length=enc_cfg.doc_max_length)
        run.write_json(METRICS_FILE, metrics)
    report.done(state.step, state.epoch)
    distributed.barrier()  # the run folder is complete before any rank returns
    return metrics
