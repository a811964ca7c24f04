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
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from rrra_core.analysis.comparison import PER_QUERY_FILE, per_query_record
from rrra_core.data.beir import Dataset, doc_text, load_dataset
from rrra_core.data.training_files import read_training_file, write_tevatron
from rrra_core.negatives.mining import MiningConfig, mine_hard_negatives, mined_examples
from rrra_core.retrieval.dense import evaluate_encoder, retrieve
from rrra_core.retrieval.encoder import BiEncoder, EncoderConfig
from rrra_core.retrieval.evaluation import evaluate, rank_run
from rrra_core.runtime import distributed
from rrra_core.runtime.config import config_to_dict, opt
from rrra_core.runtime.device import autocast_dtype
from rrra_core.runtime.errors import ConfigError, DataError
from rrra_core.runtime.runs import Run
from rrra_core.training.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from rrra_core.training.losses import info_nce
from rrra_core.training.schedule import lr_at
from rrra_core.training.step import PairEmbedder, backward_and_step, embed_global_batch, set_lr

__all__ = ["TrainConfig", "train_phase1", "training_pairs", "epoch_batches", "step_plan"]

log = logging.getLogger(__name__)

# Offsets rank r's dropout seed, so ranks draw different masks (rank 0 keeps the
# single-process seed); far apart from the per-step increments.
_RANK_SEED_STRIDE = 1_000_000_007


@dataclass
class TrainConfig:
    """Phase-1 settings. Budget knobs: epochs, max_steps, batch_size, max_train_queries, the max lengths."""

    dataset: str = opt("scifact", "embedded dataset name (squad, scifact, cranfield, adi) or a BEIR folder")
    train_split: str = opt("train", "qrels split to train on")
    eval_split: str = opt("test", "qrels split to evaluate on after each epoch; empty for none")
    epochs: int = opt(1, "passes over the training pairs")
    max_steps: int | None = opt(None, "stop after this many optimizer steps (budget knob)")
    batch_size: int = opt(
        32,
        "queries per step, over all processes under torchrun; each brings its positive as an in-batch negative for the others",
    )
    lr: float = opt(2e-5, "peak AdamW learning rate")
    warmup_ratio: float = opt(0.1, "fraction of steps with linear warmup")
    weight_decay: float = opt(0.01, "AdamW weight decay")
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


def training_pairs(qrels: dict[str, dict[str, int]], max_queries: int | None, seed: int) -> list[tuple[str, str]]:
    """One (query id, positive doc id) pair per labelled positive, optionally on a query subsample."""
    qids = sorted(qrels)
    if max_queries is not None and max_queries < len(qids):
        rng = np.random.default_rng(seed)
        qids = sorted(rng.choice(qids, size=max_queries, replace=False).tolist())
    return [(q, d) for q in qids for d in sorted(qrels[q]) if qrels[q][d] > 0]


def epoch_batches(n_pairs: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The epoch's batches of pair indices; a pure function of (seed, epoch) so resuming replays it."""
    order = np.random.default_rng([seed, epoch]).permutation(n_pairs)
    # Drop a last batch too small to give in-batch negatives.
    return [order[i : i + batch_size] for i in range(0, n_pairs, batch_size) if len(order[i : i + batch_size]) >= 2]


def step_plan(
    n_pairs: int, batch_size: int, seed: int, epochs: int, max_steps: int | None, warmup_ratio: float
) -> tuple[int, int, int]:
    """(steps per epoch, total optimizer steps, warmup steps) for a training run."""
    steps_per_epoch = len(epoch_batches(n_pairs, batch_size, seed, 0))
    total_steps = steps_per_epoch * epochs
    if max_steps is not None:
        total_steps = min(total_steps, max_steps)
    return steps_per_epoch, total_steps, int(math.ceil(warmup_ratio * total_steps))


def _load_negatives(
    spec: str,
    run: Run,
    encoder: BiEncoder,
    data: Dataset,
    enc_cfg: EncoderConfig,
    cfg: TrainConfig,
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


def _final_evaluation(
    run: Run, encoder: BiEncoder, data: Dataset, enc_cfg: EncoderConfig, cfg: TrainConfig
) -> dict[str, float]:
    """The final model's metrics; its per-query scores go to ``per_query.json`` so runs can be compared query by query."""
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
    if distributed.is_main():
        run.write_json(
            PER_QUERY_FILE, per_query_record(cfg.dataset, data.split, data.qrels, {"retriever": res.run}, k=cfg.eval_k)
        )
    return evaluate(data.qrels, res.run)


def train_phase1(
    run: Run,
    enc_cfg: EncoderConfig,
    cfg: TrainConfig,
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
    train_data = train_data or load_dataset(cfg.dataset, cfg.train_split)
    if eval_data is None and cfg.eval_split:
        eval_data = load_dataset(cfg.dataset, cfg.eval_split)

    encoder = BiEncoder.from_pretrained(enc_cfg.model, shared=enc_cfg.shared).to(device)
    resuming = distributed.broadcast_object(has_checkpoint(run.path))
    metrics: dict[str, Any] = distributed.broadcast_object(
        run.read_json("metrics.json", {}) if resuming and main else {}
    )
    if not resuming:
        log.info("evaluating the starting encoder")
        metrics["before"] = evaluate_encoder(encoder.eval(), eval_data, enc_cfg, cfg.eval_k, cfg.index_kind, cache=True)
        metrics["epochs"] = []
        if main:
            run.write_json("metrics.json", metrics)
    negatives = _load_negatives(cfg.hard_negatives, run, encoder, train_data, enc_cfg, cfg, mining)

    pairs = training_pairs(train_data.qrels, cfg.max_train_queries, cfg.seed)
    if not pairs:
        raise DataError(cfg.dataset, f"split {cfg.train_split!r} has no labelled positives to train on")
    steps_per_epoch, total_steps, warmup = step_plan(
        len(pairs), cfg.batch_size, cfg.seed, cfg.epochs, cfg.max_steps, cfg.warmup_ratio
    )

    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    params = [(n, p) for n, p in encoder.named_parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for n, p in params if not n.endswith(no_decay)], "weight_decay": cfg.weight_decay},
            {"params": [p for n, p in params if n.endswith(no_decay)], "weight_decay": 0.0},
        ],
        lr=cfg.lr,
    )
    amp_dtype = autocast_dtype(device)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None

    step, epoch, best = 0, 0, metrics.get("best")
    if resuming:
        state = load_checkpoint(run.path, encoder, optimizer, scaler)
        step, epoch = state["step"], state["epoch"]
        log.info("resumed %s at step %d (epoch %d)", run.id, step, epoch)
    # One DDP forward per step embeds queries and documents. BERT computes its pooler
    # head, which mean pooling never reads: those weights get no gradient, so DDP must
    # look for unused parameters (they then keep grad None, as in one process).
    embedder = distributed.wrap(
        PairEmbedder(encoder, enc_cfg.query_max_length, enc_cfg.doc_max_length), find_unused_parameters=True
    )

    encoder.train()
    t_start = time.perf_counter()
    steps_at_start = step
    while epoch < cfg.epochs and step < total_steps:
        batches = epoch_batches(len(pairs), cfg.batch_size, cfg.seed, epoch)
        first = step - epoch * steps_per_epoch  # batches already done in this epoch (resume)
        bar = tqdm(
            total=len(batches), initial=first, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step", disable=not main
        )
        for b in range(first, len(batches)):
            if step >= total_steps:
                break
            idx = batches[b]
            qids = [pairs[i][0] for i in idx]
            pos = [pairs[i][1] for i in idx]
            rng = np.random.default_rng([cfg.seed, epoch, b])
            hard: list[str] = []
            rows = list(range(len(qids)))  # the batch row of the query that brings each doc
            for r, q in enumerate(qids):
                cands = [d for d in negatives.get(q, []) if d not in train_data.qrels[q]]
                if cands:
                    take = min(cfg.n_hard, len(cands))
                    hard.extend(cands[i] for i in rng.choice(len(cands), size=take, replace=False))
                    rows.extend([r] * take)
            docs = pos + hard
            # A doc labelled positive for a query is never that query's negative.
            mask = torch.tensor([[d in train_data.qrels[q] for d in docs] for q in qids], device=device)  # (B, N)
            targets = torch.arange(len(qids), device=device)

            # Dropout replays identically on resume; each rank draws its own masks.
            torch.manual_seed(cfg.seed * 1_000_003 + step + _RANK_SEED_STRIDE * distributed.get_rank())
            lr = lr_at(step, total_steps, warmup, cfg.lr)
            set_lr(optimizer, lr / cfg.lr)
            ctx = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else nullcontext()
            with ctx:
                q_emb, d_emb, _ = embed_global_batch(
                    embedder,
                    [train_data.queries[q] for q in qids],
                    [doc_text(train_data.corpus[d], enc_cfg.with_title) for d in docs],
                    rows,
                )  # (B, H), (N, H): the whole batch on every rank
                loss = info_nce(q_emb, d_emb, targets, cfg.temperature, mask)
            grad_norm = backward_and_step(
                loss, optimizer, encoder.parameters(), cfg.max_grad_norm, scaler, loss_scale=world
            )
            step += 1
            loss_value = loss.item()
            elapsed = time.perf_counter() - t_start
            rate = (step - steps_at_start) / elapsed if elapsed > 0 else 0.0
            if main:
                run.log(
                    {
                        "phase": 1,
                        "step": step,
                        "epoch": epoch + 1,
                        "loss": loss_value,
                        "lr": lr,
                        "grad_norm": grad_norm,
                        "n_docs": len(docs),
                        "time": round(elapsed, 3),
                    }
                )
                run.write_json(
                    "progress.json",
                    {
                        "phase": 1,
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
                save_checkpoint(run.path, encoder, optimizer, {"step": step, "epoch": epoch}, scaler)
        bar.close()
        epoch_done = step >= (epoch + 1) * steps_per_epoch or step >= total_steps
        if not epoch_done:
            break
        epoch += 1
        last = epoch >= cfg.epochs or step >= total_steps
        cache = False
        if last:
            # Save first, then stamp the encoder with the saved weights' digest, so the
            # final evaluation's corpus vectors are cached for whoever loads run/model.
            if main:
                encoder.save(run.file("model"), max_seq_length=enc_cfg.doc_max_length)
            encoder.eval()
            encoder._fingerprint = distributed.broadcast_object(
                BiEncoder._digest_dir(run.file("model")) if main else None
            )
            cache = True
        if last and eval_data is not None:
            epoch_metrics = _final_evaluation(run, encoder, eval_data, enc_cfg, cfg)
        else:
            epoch_metrics = evaluate_encoder(encoder, eval_data, enc_cfg, cfg.eval_k, cfg.index_kind, cache=cache)
        encoder.train()
        metrics["epochs"].append({"epoch": epoch, "step": step, **epoch_metrics})
        if epoch_metrics and (best is None or epoch_metrics["nDCG@10"] > best["nDCG@10"]):
            best = {"epoch": epoch, **epoch_metrics}
        metrics["best"] = best
        if main:
            run.write_json("metrics.json", metrics)
            save_checkpoint(run.path, encoder, optimizer, {"step": step, "epoch": epoch, "best_metric": best}, scaler)

    metrics["after"] = metrics["epochs"][-1] if metrics.get("epochs") else {}
    metrics["train"] = {
        "pairs": len(pairs),
        "steps": step,
        "steps_per_epoch": steps_per_epoch,
        "processes": world,
        "seconds_this_session": round(time.perf_counter() - t_start, 1),
    }
    if main:
        if not run.file("model").is_dir():  # resumed after the last epoch had already saved
            encoder.save(run.file("model"), max_seq_length=enc_cfg.doc_max_length)
        run.write_json("metrics.json", metrics)
        run.write_json(
            "progress.json",
            {
                "phase": 1,
                "epoch": epoch,
                "epochs": cfg.epochs,
                "step": step,
                "total_steps": total_steps,
                "status": "done",
            },
        )
    distributed.barrier()  # the run folder is complete before any rank returns
    return metrics


def phase1_config_dict(enc_cfg: EncoderConfig, cfg: TrainConfig, mining: MiningConfig) -> dict[str, Any]:
    """The sections saved in a phase-1 run's ``config.json``."""
    return {"encoder": config_to_dict(enc_cfg), "train": config_to_dict(cfg), "mining": config_to_dict(mining)}
