"""Phase 2: train the adapter on frozen, precomputed embeddings.

The encoder is frozen, so every pair is two rows of two fixed matrices. The
loop reads top to bottom: look up the pairs' vectors, hold out a share of the
queries for reporting, weight the classes, then for each epoch shuffle, step
AdamW, log the loss parts, and evaluate on the held-out queries.

Evaluation conditions on the label, as the app does: the head never sees the
label, but at inference the label is known, so a labeled positive is predicted
TP or FP (whichever of P(TP), P(FP) is larger) and a labeled negative FN or TN.
The joint argmax could not tell a masked positive (FN) from a visible one (TP):
they are the same kind of document, only the label differs.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.metrics import confusion_matrix, f1_score

from rrra_core.adapter.labels import AdapterPairs, class_counts
from rrra_core.adapter.losses import adapter_loss, class_weights
from rrra_core.adapter.model import (
    CLASSES,
    FN,
    FP,
    TN,
    TP,
    RRRAAdapter,
    ca_score,
    class_probs,
    p_fn_given_neg,
    p_fp_given_pos,
    p_rel,
    qa_score,
)
from rrra_core.runtime import reports
from rrra_core.runtime.config import opt
from rrra_core.runtime.errors import ConfigError, DataError, TrainingDiverged
from rrra_core.runtime.reports import metrics_record
from rrra_core.runtime.runs import Run, atomic_path
from rrra_core.training.loop import Reporter, TrainState, param_groups, resume_state, save_state
from rrra_core.training.schedule import lr_at

log = logging.getLogger(__name__)

__all__ = [
    "AdapterFitConfig",
    "Vectors",
    "train_adapter",
    "predict_pairs",
    "pair_indices",
    "split_queries",
    "classification_metrics",
]

# Fewer held-out queries than this and the per-epoch macro-F1 is mostly noise: the fit still keeps its best
# epoch (a collapse is usually visible even on a few queries) but says the choice is unreliable.
MIN_VAL_QUERIES = 10
_BEST_FILE = "adapter_best_epoch.pt"

# Embeddings by id: a dict id -> (d,) vector, or (ids, (n, d) matrix).
Vectors = Mapping[str, np.ndarray] | tuple[Sequence[str], np.ndarray]


@dataclass
class AdapterFitConfig:
    """How phase 2 fits the adapter on frozen embeddings; the loss ablations are one switch each."""

    epochs: int = opt(5, "passes over the training pairs")
    batch_size: int = opt(256, "pairs per optimizer step")
    lr: float = opt(1e-3, "peak AdamW learning rate (linear decay to zero)")
    warmup_ratio: float = opt(0.0, "fraction of steps with linear warmup")
    weight_decay: float = opt(0.01, "AdamW weight decay (not applied to biases)")
    lambda_norm: float = opt(1.0, "weight of L_norm; 0 = the no-L_norm ablation")
    class_weighting: bool = opt(
        True, "inverse-frequency class weights in the cross-entropy; false = the no-ratio ablation"
    )
    weight_clip: float = opt(10.0, "class weights are clipped to [1/clip, clip]")
    val_fraction: float = opt(0.1, "share of queries held out for the reported F1 (their pairs are not trained on)")
    keep: str = opt(
        "best",
        "which epoch's weights to keep: best (held-out macro-F1; the last epoch without held-out queries) or last",
        choices=("best", "last"),
    )
    seed: int = opt(0, "random seed (query split, batch order, dropout); the adapter is initialized by its caller")
    checkpoint_every: int = opt(
        0, "also save a resumable checkpoint every N steps (a checkpoint is always saved at each epoch end); 0 = off"
    )

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(f"epochs and batch_size must be positive, got {self.epochs} and {self.batch_size}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ConfigError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.lambda_norm < 0:
            raise ConfigError(f"lambda_norm must be >= 0, got {self.lambda_norm}")
        if self.weight_clip < 1.0:
            raise ConfigError(f"weight_clip must be >= 1, got {self.weight_clip}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.checkpoint_every < 0:
            raise ConfigError(f"checkpoint_every must be >= 0, got {self.checkpoint_every}")
        if self.keep not in ("best", "last"):
            raise ConfigError(f"keep must be best or last, got {self.keep!r}")


def _as_matrix(vecs: Vectors, what: str) -> tuple[dict[str, int], np.ndarray]:
    if isinstance(vecs, tuple):
        ids, matrix = vecs
        matrix = np.asarray(matrix, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != len(ids):
            raise DataError(f"{what} vectors", f"expected {len(ids)} rows of a 2-d matrix, got shape {matrix.shape}")
        return {str(i): r for r, i in enumerate(ids)}, matrix
    ids = list(vecs)
    if not ids:
        return {}, np.zeros((0, 0), dtype=np.float32)
    return {str(i): r for r, i in enumerate(ids)}, np.stack([np.asarray(vecs[i], dtype=np.float32) for i in ids])


def pair_indices(
    pairs: AdapterPairs, query_vecs: Vectors, doc_vecs: Vectors
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(Q, D, q_index, d_index)``: pair i is ``Q[q_index[i]]`` against ``D[d_index[i]]``.

    Keeps one row per distinct id instead of one per pair (a 100-deep pool of
    6k queries would otherwise need two 600k x d matrices).
    """
    q_rows, Q = _as_matrix(query_vecs, "query")
    d_rows, D = _as_matrix(doc_vecs, "document")
    missing_q = next((q for q in pairs.query_ids if q not in q_rows), None)
    if missing_q is not None:
        raise DataError("query vectors", f"no embedding for query id {missing_q!r}")
    missing_d = next((d for d in pairs.doc_ids if d not in d_rows), None)
    if missing_d is not None:
        raise DataError("document vectors", f"no embedding for doc id {missing_d!r}")
    q_index = np.fromiter((q_rows[q] for q in pairs.query_ids), dtype=np.int64, count=len(pairs))
    d_index = np.fromiter((d_rows[d] for d in pairs.doc_ids), dtype=np.int64, count=len(pairs))
    return Q, D, q_index, d_index


def split_queries(query_ids: Sequence[str], val_fraction: float, seed: int) -> set[str]:
    """The held-out query ids: round(val_fraction * n) of the distinct queries (at least 1, never all)."""
    qids = sorted(set(query_ids))
    if val_fraction <= 0 or len(qids) < 2:
        return set()
    n_val = min(max(1, round(val_fraction * len(qids))), len(qids) - 1)
    rng = np.random.default_rng([seed, 2])
    return {qids[i] for i in rng.choice(len(qids), size=n_val, replace=False)}


@torch.inference_mode()
def predict_pairs(
    adapter: RRRAAdapter,
    q_vecs: np.ndarray | torch.Tensor,
    d_vecs: np.ndarray | torch.Tensor,
    q_index: np.ndarray | None = None,
    d_index: np.ndarray | None = None,
    batch_size: int = 8192,
    callback: Callable[[int, int], None] | None = None,
) -> dict[str, np.ndarray]:
    """The adapter's readings for N pairs, as numpy arrays.

    Pair i is ``q_vecs[i]`` against ``d_vecs[i]``, or ``q_vecs[q_index[i]]``
    against ``d_vecs[d_index[i]]`` when indices are given. Returns ``probs``
    (N, 4) over CLASSES and (N,) ``p_fn_given_neg``, ``p_fp_given_pos``,
    ``p_rel``, ``qa`` = cos(q, a), ``ca`` = cos(a, c). Runs in eval mode and
    restores the adapter's previous mode. ``callback(done, total)`` follows the
    batches (phase 2 scores every candidate of every query with it).
    """
    device = next(adapter.parameters()).device
    Q = torch.as_tensor(np.asarray(q_vecs, dtype=np.float32) if not torch.is_tensor(q_vecs) else q_vecs).to(
        device, torch.float32
    )
    D = torch.as_tensor(np.asarray(d_vecs, dtype=np.float32) if not torch.is_tensor(d_vecs) else d_vecs).to(
        device, torch.float32
    )
    n = len(q_index) if q_index is not None else Q.shape[0]
    if q_index is None and D.shape[0] != n:
        raise ValueError(f"q_vecs and d_vecs must have the same number of rows, got {n} and {D.shape[0]}")
    qi = torch.as_tensor(q_index if q_index is not None else np.arange(n), dtype=torch.long, device=device)
    di = torch.as_tensor(d_index if d_index is not None else np.arange(n), dtype=torch.long, device=device)
    was_training = adapter.training
    adapter.eval()
    parts: dict[str, list[torch.Tensor]] = {
        k: [] for k in ("probs", "p_fn_given_neg", "p_fp_given_pos", "p_rel", "qa", "ca")
    }
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            q, c = Q[qi[start : start + batch_size]], D[di[start : start + batch_size]]  # (b, d)
            a, logits = adapter(q, c)
            probs = class_probs(adapter.calibrated_logits(logits))  # (b, 4)
            parts["probs"].append(probs)
            parts["p_fn_given_neg"].append(p_fn_given_neg(probs))
            parts["p_fp_given_pos"].append(p_fp_given_pos(probs))
            parts["p_rel"].append(p_rel(probs))
            parts["qa"].append(qa_score(q, a))
            parts["ca"].append(ca_score(a, c))
            if callback is not None:
                callback(min(start + batch_size, n), n)
    adapter.train(was_training)
    width = {"probs": (0, len(CLASSES))}
    return {
        k: (torch.cat(v).cpu().numpy() if v else np.zeros(width.get(k, (0,)), dtype=np.float32))
        for k, v in parts.items()
    }


def classification_metrics(targets: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    """Label-conditioned F1 per class, macro F1, accuracy and confusion matrix (rows = truth, CLASSES order).

    The label (the class table's row) is read off the target: TP/FP pairs are
    labeled positive, FN/TN negative. Macro F1 averages the classes present in
    ``targets``; an absent class's F1 is None.
    """
    targets = np.asarray(targets, dtype=np.int64)
    positive = np.isin(targets, [TP, FP])[:, None]
    allowed = np.where(positive, [1, 0, 1, 0], [0, 1, 0, 1])  # (N, 4): TP/FP if pos, FN/TN if neg
    pred = np.where(allowed == 1, probs, -1.0).argmax(axis=1) if len(targets) else np.zeros(0, dtype=np.int64)
    classes = list(range(len(CLASSES)))
    f1 = f1_score(targets, pred, labels=classes, average=None, zero_division=0) if len(targets) else np.zeros(4)
    support = np.bincount(targets, minlength=len(CLASSES))
    per_class = {name: (float(f1[k]) if support[k] else None) for k, name in enumerate(CLASSES)}
    present = [float(f1[k]) for k in classes if support[k]]
    return {
        "f1": per_class,
        "macro_f1": float(np.mean(present)) if present else None,
        "accuracy": float((pred == targets).mean()) if len(targets) else None,
        "confusion": confusion_matrix(targets, pred, labels=classes).tolist()
        if len(targets)
        else [[0] * 4 for _ in classes],
        "support": {name: int(support[k]) for k, name in enumerate(CLASSES)},
        # The separation resampling relies on: P(FN | neg) of real FN vs TN pairs.
        "mean_p_fn_given_neg": {
            name: (float(_p_fn(probs[targets == k]).mean()) if support[k] else None)
            for name, k in (("FN", FN), ("TN", TN))
        },
    }


def _p_fn(probs: np.ndarray) -> np.ndarray:
    return p_fn_given_neg(torch.from_numpy(np.asarray(probs))).numpy()


@dataclass
class _FitData:
    """The pairs as rows of two fixed matrices on the adapter's device, split into training and held-out pairs."""

    Q: torch.Tensor  # (n_queries, d)
    D: torch.Tensor  # (n_docs, d)
    q_index: np.ndarray  # (N,) pair i is Q[q_index[i]] against D[d_index[i]]
    d_index: np.ndarray
    qi: torch.Tensor  # the same indices on the device
    di: torch.Tensor
    targets: torch.Tensor  # (N,) classes
    train_idx: np.ndarray  # pairs trained on
    val_idx: np.ndarray  # pairs of the held-out queries
    n_val_queries: int
    counts: np.ndarray  # (4,) training pairs per class
    weights: np.ndarray | None  # (4,) cross-entropy class weights, None = unweighted


def _fit_data(
    adapter: RRRAAdapter, pairs: AdapterPairs, query_vecs: Vectors, doc_vecs: Vectors, cfg: AdapterFitConfig
) -> _FitData:
    device = next(adapter.parameters()).device
    Q_np, D_np, q_index, d_index = pair_indices(pairs, query_vecs, doc_vecs)
    if Q_np.shape[1] != adapter.cfg.dim or D_np.shape[1] != adapter.cfg.dim:
        raise ConfigError(
            f"adapter dim {adapter.cfg.dim} does not match embeddings of size {Q_np.shape[1]}/{D_np.shape[1]}"
        )
    val_queries = split_queries(pairs.query_ids, cfg.val_fraction, cfg.seed)
    is_val = np.fromiter((q in val_queries for q in pairs.query_ids), dtype=bool, count=len(pairs))
    train_idx = np.flatnonzero(~is_val)
    counts = class_counts(pairs.select(train_idx))
    return _FitData(
        Q=torch.from_numpy(Q_np).to(device),
        D=torch.from_numpy(D_np).to(device),
        q_index=q_index,
        d_index=d_index,
        qi=torch.from_numpy(q_index).to(device),
        di=torch.from_numpy(d_index).to(device),
        targets=torch.from_numpy(np.asarray(pairs.targets, dtype=np.int64)).to(device),
        train_idx=train_idx,
        val_idx=np.flatnonzero(is_val),
        n_val_queries=len(val_queries),
        counts=counts,
        weights=class_weights(counts, cfg.weight_clip) if cfg.class_weighting else None,
    )


def _evaluate_pairs(adapter: RRRAAdapter, data: _FitData, pairs: AdapterPairs, idx: np.ndarray) -> dict[str, Any]:
    out = predict_pairs(adapter, data.Q, data.D, data.q_index[idx], data.d_index[idx])
    return classification_metrics(pairs.targets[idx], out["probs"])


def _fit_step(
    adapter: RRRAAdapter,
    optimizer: torch.optim.Optimizer,
    data: _FitData,
    batch: np.ndarray,
    weights: torch.Tensor | None,
    cfg: AdapterFitConfig,
    lr: float,
) -> dict[str, float]:
    """One AdamW step on the pairs ``batch``; returns the loss parts."""
    b = torch.from_numpy(batch).to(data.Q.device)
    q, c = data.Q[data.qi[b]], data.D[data.di[b]]  # (b, d)
    a, logits = adapter(q, c)
    loss, parts = adapter_loss(logits, data.targets[b], a, q, c, weights, cfg.lambda_norm)
    for group in optimizer.param_groups:
        group["lr"] = lr
    if not torch.isfinite(loss.detach()):
        raise TrainingDiverged(f"the adapter loss is {loss.item()}: training diverged and was stopped")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grads = [p.grad for p in adapter.parameters() if p.grad is not None]
    if grads and not torch.isfinite(torch.stack([g.detach().abs().max() for g in grads])).all():
        raise TrainingDiverged("a non-finite adapter gradient: training diverged and was stopped")
    optimizer.step()
    return parts


def _fit_metrics(
    adapter: RRRAAdapter,
    data: _FitData,
    pairs: AdapterPairs,
    history: list[dict[str, Any]],
    val: dict[str, Any],
    steps: int,
    seconds: float,
    kept_epoch: int | None = None,
    warnings: Sequence[str] = (),
) -> dict[str, Any]:
    """The ``metrics.json`` record of a fit (see :mod:`rrra_core.runtime.reports`)."""
    best = _best_entry(history)
    weights = data.weights
    train = {
        "fit": _evaluate_pairs(adapter, data, pairs, data.train_idx),
        "class_counts": {name: int(data.counts[k]) for k, name in enumerate(CLASSES)},
        "class_weights": {name: float(weights[k]) for k, name in enumerate(CLASSES)} if weights is not None else None,
        "pairs": {"train": int(len(data.train_idx)), "val": int(len(data.val_idx))},
        "queries": {"train": len(set(pairs.query_ids)) - data.n_val_queries, "val": data.n_val_queries},
        "steps": steps,
        "seconds": round(seconds, 2),
        "kept_epoch": kept_epoch if kept_epoch is not None else (history[-1]["epoch"] if history else None),
        "warnings": list(warnings),
    }
    return metrics_record(2, epochs=history, best=best, after=val, train=train)


def _best_entry(history: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The epoch with the highest held-out macro-F1 (the earliest of equals: fewer steps, same score)."""
    best = None
    for entry in history:
        if entry.get("val_macro_f1") is not None and (best is None or entry["val_macro_f1"] > best["val_macro_f1"]):
            best = entry
    return best


def train_adapter(
    adapter: RRRAAdapter,
    pairs: AdapterPairs,
    query_vecs: Vectors,
    doc_vecs: Vectors,
    cfg: AdapterFitConfig,
    run: Run | None = None,
    stage: str = "training",
    span: tuple[float, float] = (0.0, 1.0),
) -> dict[str, Any]:
    """Train ``adapter`` in place on ``pairs`` with frozen embeddings; returns its ``metrics.json`` record.

    Trains on the device the adapter is on. With a ``run`` it logs every step,
    reports progress (as ``stage``, over the ``span`` of the run's progress
    bar) and checkpoints at each epoch end (and every ``checkpoint_every``
    steps), so a killed fit resumes where it stopped. Metrics: ``after`` (the
    held-out queries, from :func:`classification_metrics`), ``epochs`` (held-out
    macro-F1 and accuracy per epoch), ``train`` (the training pairs' metrics as
    ``fit``, class counts and weights, step and time totals). The adapter is
    left in eval mode.
    """
    if len(pairs) == 0:
        raise DataError("adapter pairs", "no pairs to train on")
    data = _fit_data(adapter, pairs, query_vecs, doc_vecs, cfg)
    adapter.set_class_weights(data.weights)
    weights = torch.from_numpy(data.weights).to(data.Q.device) if data.weights is not None else None
    optimizer = torch.optim.AdamW(param_groups(adapter, cfg.weight_decay), lr=cfg.lr)
    steps_per_epoch = math.ceil(len(data.train_idx) / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    warmup = int(math.ceil(cfg.warmup_ratio * total_steps))

    torch.manual_seed(cfg.seed)
    state = resume_state(run, adapter, optimizer) if run is not None else None
    if state is not None:
        torch.set_rng_state(torch.tensor(state.extra.pop("torch_rng"), dtype=torch.uint8))
    state = state or TrainState(extra={"history": []})
    history, epoch_val = state.extra["history"], {}
    best_weights = None
    report = Reporter(
        run, 2, total_steps, cfg.epochs, state.step, span=span, every_s=reports.PROGRESS_EVERY_S, stage=stage
    )
    adapter.train()
    while state.epoch < cfg.epochs:
        order = np.random.default_rng([cfg.seed, state.epoch]).permutation(data.train_idx)
        done = state.step - state.epoch * steps_per_epoch  # batches of this epoch already trained (resume)
        for start in range(done * cfg.batch_size, len(order), cfg.batch_size):
            lr = lr_at(state.step, total_steps, warmup, cfg.lr)
            parts = _fit_step(adapter, optimizer, data, order[start : start + cfg.batch_size], weights, cfg, lr)
            state.step += 1
            report.step(state.step, state.epoch + 1, parts["total"], lr=lr, ce=parts["ce"], norm=parts["norm"])
            if run is not None and cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0:
                _save_fit_state(run, adapter, optimizer, state)
        state.epoch += 1
        epoch_val = _evaluate_pairs(adapter, data, pairs, data.val_idx) if len(data.val_idx) else {}
        history.append(
            {
                "epoch": state.epoch,
                "step": state.step,
                "val_macro_f1": epoch_val.get("macro_f1"),
                "val_accuracy": epoch_val.get("accuracy"),
            }
        )
        if _best_entry(history) is history[-1]:
            best_weights = _remember_best(run, adapter, best_weights)
        if run is not None:
            run.log({"phase": 2, "event": "eval", **history[-1]})
            _save_fit_state(run, adapter, optimizer, state)
    kept, warnings = _keep_epoch(adapter, run, history, best_weights, data.n_val_queries, cfg)
    for w in warnings:
        log.warning("adapter: %s", w)
    if kept != (history[-1]["epoch"] if history else None) or (not epoch_val and len(data.val_idx) and history):
        # Restored an earlier epoch, or resumed after the last one: evaluate the weights kept.
        epoch_val = _evaluate_pairs(adapter, data, pairs, data.val_idx)
    adapter.eval()
    return _fit_metrics(adapter, data, pairs, history, epoch_val, state.step, report.elapsed(), kept, warnings)


def _remember_best(run: Run | None, adapter: RRRAAdapter, previous: dict | None) -> dict:
    """A copy of the weights of the best epoch so far (also in the run folder, so a resume still has them)."""
    weights = {k: v.detach().clone() for k, v in adapter.state_dict().items()}
    if run is not None:
        with atomic_path(run.file(_BEST_FILE)) as tmp:
            torch.save(weights, tmp)
    return weights


def _keep_epoch(
    adapter: RRRAAdapter,
    run: Run | None,
    history: list[dict[str, Any]],
    best_weights: dict | None,
    n_val_queries: int,
    cfg: AdapterFitConfig,
) -> tuple[int | None, list[str]]:
    """Load the epoch ``cfg.keep`` names into ``adapter``; returns (that epoch, warnings about the choice).

    Why: on a small collection the adapter can collapse after an epoch or two
    (predicting most true negatives as false negatives) and the last epoch is
    then the worst one. The held-out queries decide, and say when they are too
    few to decide much.
    """
    last = history[-1]["epoch"] if history else None
    best = _best_entry(history)
    warnings: list[str] = []
    if cfg.keep == "last" or best is None:
        if cfg.keep == "best" and history:
            warnings.append("no held-out queries: the last epoch is kept, unchecked")
        return last, warnings
    if n_val_queries < MIN_VAL_QUERIES:
        warnings.append(
            f"only {n_val_queries} held-out queries choose the epoch (fewer than {MIN_VAL_QUERIES}): "
            "the choice is unreliable; raise val_fraction or train on more queries"
        )
    if best["epoch"] != last:
        if best_weights is None and run is not None and run.file(_BEST_FILE).is_file():
            best_weights = torch.load(run.file(_BEST_FILE), map_location="cpu", weights_only=True)
        if best_weights is None:  # resumed from an old checkpoint with no saved best weights
            warnings.append(f"epoch {best['epoch']} scored best but its weights were not kept; the last is used")
            return last, warnings
        adapter.load_state_dict(best_weights)
        log.info("adapter: keeping epoch %d of %d (held-out macro-F1 %.3f)", best["epoch"], last, best["val_macro_f1"])
    return best["epoch"], warnings


def _save_fit_state(run: Run, adapter: RRRAAdapter, optimizer: torch.optim.Optimizer, state: TrainState) -> None:
    # The torch generator too: an adapter with dropout then replays its masks after a resume.
    torch_rng = torch.get_rng_state().tolist()
    save_state(run, adapter, optimizer, TrainState(state.step, state.epoch, {**state.extra, "torch_rng": torch_rng}))
