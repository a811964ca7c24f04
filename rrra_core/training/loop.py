"""What the three training loops share: the step plan, optimizer groups, resume, progress, the final save.

Each phase's loop (``phase1``, ``adapter.fit`` for phase 2, ``phase3``) reads
top to bottom and calls these helpers for the parts that must behave the same
in every phase:

* :func:`training_pairs`, :class:`StepPlan`: one (query, positive) pair per
  labelled positive; batches that are a pure function of (seed, epoch), so a
  resumed run replays exactly the batches it had left;
* :func:`param_groups`: AdamW groups by the ``dim()`` rule, no weight decay
  on biases and norm weights (tensors with fewer than two dimensions);
* :func:`resume_state` / :func:`save_state`: the checkpoint dict
  ``{model, optimizer, step, epoch, ...}`` that lets a killed run continue;
* :class:`Reporter`: one ``log.jsonl`` line per step and the one
  ``progress.json`` shape (:mod:`rrra_core.runtime.reports`);
* :func:`save_encoder`: save the final encoder and stamp it with the saved
  weights' digest, so its final evaluation's corpus vectors are cached (the
  evaluation itself is :func:`rrra_core.retrieval.final_evaluation.final_evaluation`).

Under torchrun only rank 0 writes; the helpers that read the run folder
broadcast what they read.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from rrra_core.data.beir import Dataset, load_dataset
from rrra_core.data.subsample import subsample_queries
from rrra_core.runtime import distributed
from rrra_core.runtime.device import autocast_dtype
from rrra_core.runtime.errors import DataError
from rrra_core.runtime.reports import METRICS_FILE, StageProgress, step_message, write_progress
from rrra_core.runtime.runs import Run
from rrra_core.training.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint

if TYPE_CHECKING:
    from rrra_core.retrieval.encoder import BiEncoder, EncoderConfig

__all__ = [
    "RANK_SEED_STRIDE",
    "training_pairs",
    "phase_inputs",
    "epoch_batches",
    "step_plan",
    "StepPlan",
    "param_groups",
    "MixedPrecision",
    "seed_step",
    "TrainState",
    "resume_state",
    "save_state",
    "read_saved_metrics",
    "Reporter",
    "save_encoder",
]

# Offsets rank r's dropout seed, so ranks draw different masks (rank 0 keeps the
# single-process seed); far apart from the per-step increments.
RANK_SEED_STRIDE = 1_000_000_007


# ------------------------------------------------------------------ the step plan
def training_pairs(qrels: dict[str, dict[str, int]], max_queries: int | None, seed: int) -> list[tuple[str, str]]:
    """One (query id, positive doc id) pair per labelled positive, optionally on a query subsample."""
    qids = subsample_queries(qrels, max_queries, seed)
    return [(q, d) for q in qids for d in sorted(qrels[q]) if qrels[q][d] > 0]


def phase_inputs(
    cfg: Any, train_data: Dataset | None, eval_data: Dataset | None
) -> tuple[Dataset, Dataset | None, list[tuple[str, str]]]:
    """(training split, evaluation split or None, training pairs) of a contrastive phase's config.

    Splits not passed in are loaded from ``cfg.dataset``; a training split
    without a labelled positive is a one-line :class:`DataError`.
    """
    train_data = train_data or load_dataset(cfg.dataset, cfg.train_split)
    if eval_data is None and cfg.eval_split:
        eval_data = load_dataset(cfg.dataset, cfg.eval_split)
    pairs = training_pairs(train_data.qrels, cfg.max_train_queries, cfg.seed)
    if not pairs:
        raise DataError(cfg.dataset, f"split {cfg.train_split!r} has no labelled positives to train on")
    return train_data, eval_data, pairs


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


@dataclass(frozen=True)
class StepPlan:
    """The batches of a contrastive run (phases 1 and 3) and where its steps end."""

    n_pairs: int
    batch_size: int
    seed: int
    epochs: int
    steps_per_epoch: int
    total_steps: int
    warmup: int

    @classmethod
    def make(
        cls, n_pairs: int, batch_size: int, seed: int, epochs: int, max_steps: int | None, warmup_ratio: float
    ) -> StepPlan:
        per_epoch, total, warmup = step_plan(n_pairs, batch_size, seed, epochs, max_steps, warmup_ratio)
        return cls(n_pairs, batch_size, seed, epochs, per_epoch, total, warmup)

    def remaining(self, step: int, epoch: int) -> Iterator[tuple[int, np.ndarray]]:
        """``(batch number, pair indices)`` of ``epoch`` from where ``step`` left it, up to the last step.

        The caller takes one optimizer step per batch it is given.
        """
        batches = epoch_batches(self.n_pairs, self.batch_size, self.seed, epoch)
        first = step - epoch * self.steps_per_epoch  # batches already done in this epoch (resume)
        for b in range(first, len(batches)):
            if step + (b - first) >= self.total_steps:
                return
            yield b, batches[b]

    def epoch_finished(self, step: int, epoch: int) -> bool:
        """Whether ``step`` completes ``epoch`` (or the whole run)."""
        return step >= (epoch + 1) * self.steps_per_epoch or step >= self.total_steps

    def running(self, step: int, epoch: int) -> bool:
        return epoch < self.epochs and step < self.total_steps

    def epochs_to_run(self, epoch: int) -> range:
        """The epochs the loop runs from ``epoch`` on (``max_steps`` may end it before ``epochs``)."""
        return range(epoch, min(self.epochs, math.ceil(self.total_steps / max(1, self.steps_per_epoch))))


# ------------------------------------------------------------ optimizer and steps
def param_groups(module: nn.Module, weight_decay: float, **group: Any) -> list[dict[str, Any]]:
    """AdamW parameter groups by the ``dim()`` rule: decay matrices, never biases or norm weights.

    Tensors with fewer than two dimensions (biases, LayerNorm weights) get no
    weight decay, in every phase; ``group`` adds settings to both groups (e.g.
    a group's own ``lr``). Frozen parameters are left out.
    """
    params = [p for p in module.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay, **group},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0, **group},
    ]


@dataclass
class MixedPrecision:
    """The autocast dtype the device supports (None = full precision) and, for fp16, its loss scaler."""

    device: torch.device
    dtype: torch.dtype | None
    scaler: torch.amp.GradScaler | None

    @classmethod
    def for_device(cls, device: torch.device) -> MixedPrecision:
        dtype = autocast_dtype(device)
        return cls(device, dtype, torch.amp.GradScaler("cuda") if dtype == torch.float16 else None)

    def autocast(self) -> AbstractContextManager[Any]:
        return torch.autocast(self.device.type, dtype=self.dtype) if self.dtype else nullcontext()


def seed_step(seed: int, step: int) -> None:
    """Seed dropout for one step: it replays identically on resume, and each rank draws its own masks."""
    torch.manual_seed(seed * 1_000_003 + step + RANK_SEED_STRIDE * distributed.get_rank())


# ------------------------------------------------------------------ checkpoints
@dataclass
class TrainState:
    """Where a loop is: the checkpoint's ``state.json`` besides the weights and moments."""

    step: int = 0
    epoch: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.step, "epoch": self.epoch, **self.extra}


def resume_state(
    run: Run,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None = None,
    legacy_params: Sequence[nn.Parameter] | None = None,
) -> TrainState | None:
    """Load ``<run>/checkpoint`` into ``model`` and ``optimizer`` if there is one; its loop state, else None.

    Collective under torchrun (the run folder must be visible to every rank).
    ``legacy_params``: the parameters in the order a checkpoint written with
    other optimizer groups listed them (see :func:`load_checkpoint`).
    """
    if not distributed.broadcast_object(has_checkpoint(run.path)):
        return None
    saved = load_checkpoint(run.path, model, optimizer, scaler, legacy_params=legacy_params)
    step, epoch = saved.pop("step"), saved.pop("epoch")
    return TrainState(step=step, epoch=epoch, extra=saved)


def save_state(
    run: Run,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    state: TrainState,
    scaler: torch.amp.GradScaler | None = None,
) -> None:
    """Replace ``<run>/checkpoint`` with the current training state (rank 0 only)."""
    if distributed.is_main():
        save_checkpoint(run.path, model, optimizer, state.as_dict(), scaler)


def read_saved_metrics(run: Run) -> dict[str, Any]:
    """``metrics.json`` as the run left it (rank 0 reads, every rank gets it); empty if none."""
    return distributed.broadcast_object((run.read_json(METRICS_FILE, {}) or {}) if distributed.is_main() else None)


# ------------------------------------------------------------------ reporting
class Reporter:
    """One ``log.jsonl`` line per optimizer step, the run's ``progress.json`` and the console bar (rank 0 only).

    ``stage`` names the step loop in ``progress.json``; ``span`` maps its steps
    onto a part of the whole run's progress bar (phase 2 trains between its
    encoding and scoring stages); ``every_s`` throttles progress writes for
    loops with very fast steps. ``reserve`` is the share of the span kept for
    ``sub_stages`` long stages between steps (phase 3 re-mines its pool, phase 1
    evaluates each epoch): each gets ``reserve / sub_stages`` of the bar to move
    across (:meth:`sub_stage`), so the bar moves while they work and never goes
    back when the steps resume.
    """

    def __init__(
        self,
        run: Run | None,
        phase: int,
        total_steps: int,
        epochs: int,
        start_step: int = 0,
        span: tuple[float, float] = (0.0, 1.0),
        every_s: float = 0.0,
        stage: str = "training",
        reserve: float = 0.0,
        sub_stages: int = 0,
    ) -> None:
        self.run = run if distributed.is_main() else None
        self.stage_name = stage
        self.phase, self.total_steps, self.epochs = phase, total_steps, epochs
        self.start_step, self.span, self.every_s = start_step, span, every_s
        self.reserve = reserve if sub_stages > 0 else 0.0
        self._sub_share = self.reserve / sub_stages if sub_stages > 0 else 0.0
        self._offset = 0.0  # the reserve the sub-stages so far have used
        self.last_step = start_step
        self.t_start = time.perf_counter()
        self._last_write = -math.inf
        self._bar: Any = None

    def start_epoch(self, desc: str, steps: int, done: int = 0) -> None:
        """A console progress bar for an epoch of ``steps`` steps, ``done`` of them already (resume)."""
        self._bar = tqdm(total=steps, initial=done, desc=desc, unit="step", disable=not distributed.is_main())

    def end_epoch(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.t_start

    def eta_s(self, step: int) -> float | None:
        elapsed = self.elapsed()
        rate = (step - self.start_step) / elapsed if elapsed > 0 else 0.0
        return (self.total_steps - step) / rate if rate else None

    def _fraction(self, step: int) -> float:
        lo, hi = self.span
        return lo + self._offset + (hi - lo - self.reserve) * step / max(1, self.total_steps)

    def sub_stage(self, name: str, unit: str = "", **fields: Any) -> StageProgress:
        """A long stage between steps: a :class:`StageProgress` over the next share of the reserve, started.

        Past the planned number of sub-stages its share is empty: the message
        and ETA still move, the bar waits for the steps.
        """
        share = max(0.0, min(self._sub_share, self.reserve - self._offset))
        start = self._fraction(self.last_step)
        self._offset += share
        progress = StageProgress(
            self.run, self.phase, name, (start, start + share), unit=unit, epochs=self.epochs, **fields
        )
        progress.start()
        return progress

    def stage(self, name: str, fraction: float | None = None, **fields: Any) -> None:
        """A stage outside the step loop (loading, mining, evaluating, ...); ``fraction`` defaults to the steps done."""
        if self.run is not None:
            done = self._fraction(self.last_step) if fraction is None else fraction
            write_progress(self.run, self.phase, name, epochs=self.epochs, fraction=done, **fields)

    def step(self, step: int, epoch: int, loss: float, **record: Any) -> None:
        """Log optimizer step ``step`` (1-based) of ``epoch`` (1-based) and update the progress."""
        self.last_step = step
        if self._bar is not None:
            self._bar.set_postfix(loss=f"{loss:.4f}")
            self._bar.update(1)
        if self.run is None:
            return
        elapsed = self.elapsed()
        line = {"phase": self.phase, "step": step, "epoch": epoch, "loss": loss, **record, "time": round(elapsed, 3)}
        self.run.log(line)
        if elapsed - self._last_write < self.every_s and step < self.total_steps:
            return
        self._last_write = elapsed
        eta = self.eta_s(step)
        eta = None if eta is None else round(eta, 1)
        write_progress(
            self.run,
            self.phase,
            self.stage_name,
            step=step,
            total_steps=self.total_steps,
            epoch=epoch,
            epochs=self.epochs,
            fraction=self._fraction(step),
            loss=loss,
            eta_s=eta,
            message=step_message(step, self.total_steps, loss, eta),
        )

    def done(self, step: int, epoch: int) -> None:
        """The run is complete: ``status: done``, fraction 1."""
        if self.run is not None:
            write_progress(
                self.run,
                self.phase,
                "done",
                status="done",
                step=step,
                total_steps=self.total_steps,
                epoch=epoch,
                epochs=self.epochs,
                message="done",
            )


# ------------------------------------------------------------------ the final model
def save_encoder(run: Run, encoder: BiEncoder, enc_cfg: EncoderConfig) -> None:
    """Save the final encoder to ``<run>/model`` and stamp it with the saved weights' digest.

    The stamp makes the final evaluation's corpus vectors a cache entry for
    whoever loads ``<run>/model`` later. Leaves the encoder in eval mode.
    """
    from rrra_core.retrieval.encoder import BiEncoder

    main = distributed.is_main()
    if main:
        encoder.save(run.file("model"), max_seq_length=enc_cfg.doc_max_length)
    encoder.eval()
    encoder.stamp(distributed.broadcast_object(BiEncoder.saved_digest(run.file("model")) if main else None))
