"""What a running or finished run reports: one shape of ``progress.json`` and of ``metrics.json`` for every phase.

``progress.json`` (rewritten while a run works, polled by the app and the
retrain job) always holds every key of :data:`PROGRESS_KEYS`, ``None`` where a
phase has nothing to say::

    {"phase": 1, "stage": "training", "status": "running", "step": 12,
     "total_steps": 40, "epoch": 1, "epochs": 2, "fraction": 0.3, "loss": 2.71,
     "eta_s": 55.0, "message": "step 12/40 · loss 2.7100 · ETA 55 s", "updated": 1718000000.0}

``status`` is ``running`` until the run ends with ``done``; ``stage`` names
what it is doing; ``fraction`` in [0, 1] is how far it has come.

A long stage outside a step loop (encoding a corpus, mining, scoring, a final
evaluation) reports through a :class:`StageProgress`: it owns a span of the
bar, moves ``fraction`` across it as work is done, fills ``eta_s`` (the
stage's time left at its rate so far) and a ``message`` such as
``encoding the corpus · 640/1400 docs · ETA 21 s``, at most once a second.

``metrics.json`` holds the keys of :data:`METRICS_KEYS`:

* ``before``: the starting model's evaluation (phase 1: retrieval metrics), else null;
* ``epochs``: one entry per finished epoch, ``{"epoch", "step", ...numbers}``
  (phase 1: retrieval metrics; phase 2: the held-out ``val_macro_f1`` and
  ``val_accuracy``; phase 3: none, it evaluates at the end);
* ``best``: the best epoch's entry (phases 1 and 2), else null;
* ``after``: the final model's evaluation: retrieval metrics of its final
  ranking (phase 1; phase 3 reranked where it reranks), or the adapter's
  four-class metrics on held-out queries (phase 2); empty when nothing was evaluated;
* ``variants``: every ranking the final evaluation scored, ``{name: metrics}``
  (phase 1 ``retriever``; phase 3 ``no_rerank`` and ``rerank``; the keys of
  ``per_query.json``); empty for phase 2;
* ``train``: what training did (pairs, steps, processes, ...; phase 2 also its
  class counts and weights and ``fit``, the metrics on its training pairs);
* ``rerank_choice``: the run's rerank as chosen on its dev queries, with the
  evidence (:class:`rrra_core.retrieval.rerank_choice.RerankChoice` as a dict;
  phases 2 and 3), else null: an older run, read as its fixed setting.

:func:`read_metrics` is the one reader; it upgrades the per-phase shapes that
runs made before this one wrote (phase 2 ``val``, phase 3 ``eval``).
Nothing here imports torch.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from rrra_core.runtime.runs import Run

T = TypeVar("T")

__all__ = [
    "PROGRESS_FILE",
    "METRICS_FILE",
    "PROGRESS_KEYS",
    "PROGRESS_EVERY_S",
    "METRICS_KEYS",
    "progress_record",
    "step_message",
    "write_progress",
    "eta_seconds",
    "stage_message",
    "StageProgress",
    "metrics_record",
    "upgrade_metrics",
    "read_metrics",
]

PROGRESS_FILE = "progress.json"
METRICS_FILE = "metrics.json"
PROGRESS_KEYS = (
    "phase",
    "stage",
    "status",
    "step",
    "total_steps",
    "epoch",
    "epochs",
    "fraction",
    "loss",
    "eta_s",
    "message",
    "updated",
)
METRICS_KEYS = ("phase", "before", "epochs", "best", "after", "variants", "train", "rerank_choice")
_PHASE_OF_KIND = {"phase1": 1, "phase2": 2, "phase3": 3}
# Followers poll once a second: writing more often costs I/O and shows nothing more.
PROGRESS_EVERY_S = 1.0


def step_message(step: int, total_steps: int, loss: float | None, eta_s: float | None) -> str:
    """The one-line training status: ``step 12/40 · loss 2.7100 · ETA 55 s``."""
    if loss is None:
        return f"step {step}/{total_steps}"
    return f"step {step}/{total_steps} · loss {loss:.4f}" + (f" · ETA {eta_s:.0f} s" if eta_s else "")


def progress_record(
    phase: int | None,
    stage: str,
    *,
    status: str = "running",
    step: int | None = None,
    total_steps: int | None = None,
    epoch: int | None = None,
    epochs: int | None = None,
    fraction: float | None = None,
    loss: float | None = None,
    eta_s: float | None = None,
    message: str | None = None,
) -> dict[str, Any]:
    """A ``progress.json`` record with every key of :data:`PROGRESS_KEYS` (``phase`` None: not a training run).

    ``fraction`` defaults to ``step / total_steps`` when both are known (1.0
    once ``status`` is ``done``); ``message`` to :func:`step_message` while
    steps are counted, else the stage.
    """
    if fraction is None:
        if status == "done":
            fraction = 1.0
        elif step is not None and total_steps:
            fraction = step / total_steps
    if message is None:
        message = step_message(step, total_steps, loss, eta_s) if step is not None and total_steps else stage
    return {
        "phase": phase,
        "stage": stage,
        "status": status,
        "step": step,
        "total_steps": total_steps,
        "epoch": epoch,
        "epochs": epochs,
        "fraction": None if fraction is None else round(min(1.0, max(0.0, float(fraction))), 4),
        "loss": loss,
        "eta_s": eta_s,
        "message": message,
        "updated": round(time.time(), 3),
    }


def write_progress(run: Run, phase: int | None, stage: str, **fields: Any) -> dict[str, Any]:
    """Replace ``<run>/progress.json`` with :func:`progress_record` ``(phase, stage, **fields)``; returns it."""
    record = progress_record(phase, stage, **fields)
    run.write_json(PROGRESS_FILE, record)
    return record


def eta_seconds(elapsed: float, done: float, total: float) -> float | None:
    """Seconds left at the rate so far (``done`` units in ``elapsed`` s); None until there is a rate, 0 when done."""
    if total <= 0 or done >= total:
        return 0.0
    if done <= 0 or elapsed <= 0:
        return None
    return round(elapsed / done * (total - done), 1)


def stage_message(stage: str, done: int, total: int, unit: str = "", eta_s: float | None = None) -> str:
    """The one-line stage status: ``encoding the corpus · 640/1400 docs · ETA 21 s``."""
    counts = f"{done}/{total}" + (f" {unit}" if unit else "")
    return f"{stage} · {counts}" + (f" · ETA {eta_s:.0f} s" if eta_s else "")


class StageProgress:
    """One stage's share of a run's progress bar: ``update(done, total)`` moves it, with an ETA.

    ``span`` = (lo, hi) is the part of the whole bar the stage covers; ``done``
    of ``total`` units puts the bar at ``lo + (hi - lo) * done / total`` (never
    backwards). The ETA is the stage's own time left at its rate since it
    started (``start_done`` units were done before: a resumed stage). Writes go
    to ``<run>/<file>`` (``progress.json`` unless told) at most once every
    ``every_s`` seconds (:data:`PROGRESS_EVERY_S` unless told), but the first
    and the last update (``done >= total``) are always written: a follower sees
    the stage's first rate and its end. ``fields``
    are further :data:`PROGRESS_KEYS` written with every record (``epoch``,
    ``epochs``, ...). ``run`` None (a rank other than 0) writes nothing.
    ``update`` has the ``callback(done, total)`` signature of the encoders.
    """

    def __init__(
        self,
        run: Run | None,
        phase: int | None,
        stage: str,
        span: tuple[float, float] = (0.0, 1.0),
        *,
        unit: str = "",
        every_s: float | None = None,
        file: str = PROGRESS_FILE,
        start_done: int = 0,
        clock: Callable[[], float] = time.monotonic,
        **fields: Any,
    ) -> None:
        self.run, self.phase, self.stage, self.span, self.unit = run, phase, stage, span, unit
        self.every_s = PROGRESS_EVERY_S if every_s is None else every_s
        self.file, self.start_done, self.fields = file, start_done, fields
        self._clock = clock
        self._t0 = clock()
        self._last_write = -math.inf
        self._fraction = span[0]
        self._updated = False  # the first update always writes, even right after start()

    def fraction(self, done: int, total: int) -> float:
        """Where ``done`` of ``total`` puts the whole bar (within the span, never below an earlier update)."""
        lo, hi = self.span
        share = min(1.0, max(0.0, done / total)) if total > 0 else 1.0
        self._fraction = max(self._fraction, lo + (hi - lo) * share)
        return self._fraction

    def eta_s(self, done: int, total: int) -> float | None:
        return eta_seconds(self._clock() - self._t0, done - self.start_done, total - self.start_done)

    def start(self, message: str | None = None) -> dict[str, Any]:
        """Say the stage has begun (bar at the span's start); its clock (the ETA's rate) starts now."""
        self._t0 = self._clock()
        return self._write(self.fraction(0, 1), None, message or self.stage)

    def update(self, done: int, total: int, message: str | None = None) -> dict[str, Any] | None:
        """``done`` of ``total`` units finished; the written record, or None when throttled."""
        last = done >= total
        if not last and self._updated and self._clock() - self._last_write < self.every_s:
            return None
        self._updated = True
        eta = self.eta_s(done, total)
        text = message or stage_message(self.stage, done, total, self.unit, eta)
        return self._write(self.fraction(done, total), eta, text)

    def _write(self, fraction: float, eta: float | None, message: str) -> dict[str, Any]:
        self._last_write = self._clock()
        record = progress_record(self.phase, self.stage, fraction=fraction, eta_s=eta, message=message, **self.fields)
        if self.run is not None:
            self.run.write_json(self.file, record)
        return record


def metrics_record(
    phase: int | None,
    *,
    before: Mapping[str, Any] | None = None,
    epochs: list[dict[str, Any]] | None = None,
    best: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    variants: Mapping[str, Any] | None = None,
    train: Mapping[str, Any] | None = None,
    rerank_choice: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``metrics.json`` record with every key of :data:`METRICS_KEYS` (see the module docstring).

    ``phase`` is None for a run that only evaluates (a retrain's ``evaluation`` run).
    """
    return {
        "phase": phase,
        "before": dict(before) if before is not None else None,
        "epochs": list(epochs or []),
        "best": dict(best) if best is not None else None,
        "after": dict(after or {}),
        "variants": dict(variants or {}),
        "train": dict(train or {}),
        "rerank_choice": dict(rerank_choice) if rerank_choice is not None else None,
    }


def _legacy_phase(raw: Mapping[str, Any], kind: str | None) -> int:
    if kind in _PHASE_OF_KIND:
        return _PHASE_OF_KIND[kind]
    if "eval" in raw:  # phase 3, and a retrain's evaluation run
        return 3
    if "val" in raw or "class_counts" in raw:
        return 2
    return 1


def upgrade_metrics(raw: Any, kind: str | None = None) -> dict[str, Any]:
    """A loaded ``metrics.json`` in the current shape; ``kind`` (the run's) settles old files' phase.

    Files written before the one shape: phase 1 already had ``before``,
    ``epochs``, ``best``, ``after`` and ``train``; phase 2 kept its held-out
    metrics in ``val``, its training-pair metrics in ``train`` and the counts at
    the top; phase 3 kept ``{"eval": {variant: metrics}, "train"}``.
    An empty or unreadable record gives an empty shape (a run still starting).
    """
    if not isinstance(raw, Mapping) or not raw:
        return metrics_record(_PHASE_OF_KIND.get(kind or ""), epochs=[])
    if "phase" in raw and "variants" in raw:
        return {**metrics_record(raw.get("phase")), **raw}
    phase = _legacy_phase(raw, kind)
    if phase == 2:
        counts = ("class_counts", "class_weights", "pairs", "queries", "steps", "seconds")
        history = [dict(e) for e in raw.get("epochs") or [] if isinstance(e, Mapping)]
        train = {"fit": raw.get("train"), **{k: raw[k] for k in counts if k in raw}}
        return metrics_record(2, epochs=history, best=_best(history, "val_macro_f1"), after=raw.get("val"), train=train)
    if phase == 3:
        variants = {k: v for k, v in (raw.get("eval") or {}).items() if v}
        after = variants.get("rerank") or variants.get("no_rerank")
        return metrics_record(3, after=after, variants=variants, train=raw.get("train"))
    after = raw.get("after")
    return metrics_record(
        1,
        before=raw.get("before"),
        epochs=raw.get("epochs"),
        best=raw.get("best"),
        after=after,
        variants={"retriever": after} if after else {},
        train=raw.get("train"),
    )


def _best(epochs: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    scored = [e for e in epochs if isinstance(e.get(key), (int, float))]
    return max(scored, key=lambda e: e[key]) if scored else None


def read_metrics(run: Run, kind: str | None = None) -> dict[str, Any]:
    """The one reader of ``<run>/metrics.json``, in the current shape (empty shape while there is none)."""
    return upgrade_metrics(run.read_json(METRICS_FILE, {}) or {}, kind)


def records_failure(phase: int | None) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorate a training function whose first argument is its run: an error marks the run failed.

    The run's ``progress.json`` then says ``status: failed`` (``cancelled`` for
    an interrupt) with the error's one line, instead of a stage that looks
    alive forever, and the error goes on to the caller unchanged. Nothing else
    in the run is touched: its last good checkpoint stays for a resume.
    """

    def wrap(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def run_it(run: Run, *args: Any, **kwargs: Any) -> T:
            try:
                return fn(run, *args, **kwargs)
            except BaseException as err:
                from rrra_core.runtime import distributed

                if distributed.is_main():
                    status = "cancelled" if isinstance(err, KeyboardInterrupt) else "failed"
                    line = (str(err).strip().splitlines() or [type(err).__name__])[0]
                    try:
                        write_progress(run, phase, status, status=status, message=f"{status}: {line}")
                    except OSError:  # a full disk or a read-only folder: the original error matters more
                        pass
                raise

        return run_it

    return wrap
