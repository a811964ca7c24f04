"""Retraining with human corrections: merge the store's judgments into the labels, retrain, record the job.

A base run is a phase-2 run (it has an adapter and scored candidates, like
the demo). Retraining:

1. takes the base run's training queries (the same subsample);
2. merges the annotation store's judgments under a policy: confirmed false
   negatives become positives, confirmed negatives stay eligible as
   negatives, and every judgment becomes a human-labelled adapter pair;
3. phase 2: retrains the adapter on the corrected labels (a new phase-2 run
   whose ``predictions.parquet`` the app can browse);
4. optionally phase 3: fine-tunes encoder and adapter jointly with RRRA
   sampling, evaluated on the eval split; the base's encoder and adapter are
   evaluated the same way, so the run holds a before/after comparison.

Progress goes to the run folders' ``progress.json`` and to the store's
``training_jobs`` row (keyed by the new run id), which the app follows.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from rrra_core.runtime.config import config_from_dict, config_to_dict, opt
from rrra_core.runtime.errors import ConfigError
from rrra_core.runtime.runs import Run, create_run, open_run

__all__ = ["RetrainConfig", "PRESETS", "BASE_EVAL_FILE", "retrain", "phase3_run_id", "final_run_id"]

#: A phase-2 base run's retrieval evaluation (its encoder + adapter rerank), written by its first phase-3 retrain.
BASE_EVAL_FILE = "retrieval_eval.json"

log = logging.getLogger(__name__)

#: quick: a few minutes on 2 CPU cores for the demo; full: the base run's own budget.
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {"phases": "2,3", "adapter_epochs": 3, "p3_max_steps": 10, "p3_batch_size": 16},
    "full": {"phases": "2,3", "adapter_epochs": 5, "p3_max_steps": 0, "p3_batch_size": 32},
}


@dataclass
class RetrainConfig:
    """What to retrain from, with which labels, and how much."""

    base_run: str = opt("demo-squad", "phase-2 run to start from (its encoder, adapter settings and training queries)")
    policy: str = opt("majority", "how judgments become labels: majority, any_relevant or annotator:<name>")
    phases: str = opt(
        "2,3", "'2' retrains the adapter; '2,3' also fine-tunes the encoder jointly (phase 3)", choices=("2", "2,3")
    )
    adapter_epochs: int = opt(3, "phase-2 epochs")
    p3_max_steps: int = opt(10, "phase-3 optimizer steps; 0 = one full epoch")
    p3_batch_size: int = opt(16, "phase-3 queries per step")
    p3_lr: float = opt(2e-5, "phase-3 encoder learning rate")
    eval_split: str = opt("test", "split the phase-3 before/after evaluation uses; empty for none")
    seed: int = opt(0, "random seed")

    def __post_init__(self) -> None:
        from db import parse_policy

        try:
            parse_policy(self.policy)
        except Exception as err:  # noqa: BLE001 - AnnotationError is the user's message
            raise ConfigError(str(err)) from None
        if self.adapter_epochs < 1 or self.p3_batch_size < 1 or self.p3_max_steps < 0:
            raise ConfigError("epochs, steps and batch size must be positive")


def phase3_run_id(run_id: str) -> str:
    return f"{run_id}-phase3"


def final_run_id(run_id: str, cfg: RetrainConfig) -> str:
    """The run a finished retrain job is judged by: its phase-3 run if any, else its phase-2 run."""
    return phase3_run_id(run_id) if "3" in cfg.phases.split(",") else run_id


def _base_sections(base: Run) -> dict[str, Any]:
    from rrra_core.adapter import LabelConfig, Phase2Config
    from rrra_core.retrieval.encoder import EncoderConfig
    from rrra_core.training.phase2 import AdapterSwitches

    cfg = base.read_json("config.json", {}) or {}
    if cfg.get("kind") != "phase2" or not all(k in cfg for k in ("encoder", "adapter", "labels", "phase2")):
        raise ConfigError(
            f"run {base.id!r} is a {cfg.get('kind')!r} run; retraining starts from a phase-2 run (one with scored candidates)"
        )
    return {
        "encoder": config_from_dict(EncoderConfig, cfg["encoder"]),
        "adapter": config_from_dict(AdapterSwitches, cfg["adapter"]),
        "labels": config_from_dict(LabelConfig, cfg["labels"]),
        "phase2": config_from_dict(Phase2Config, cfg["phase2"]),
    }


def _subsample(qrels: dict[str, dict[str, int]], n: int | None, seed: int) -> list[str]:
    # Exactly the queries phase 2 kept for the base run (same rule, same seed),
    # so "before" and "after" train on the same questions.
    if n is None or n >= len(qrels):
        return sorted(qrels)
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(sorted(qrels), size=n, replace=False).tolist())


class _JobRow:
    """Mirror a run's progress.json into the store's training-job row every few seconds."""

    def __init__(self, session_factory: Any, run_id: str) -> None:
        self.sessions, self.run_id = session_factory, run_id
        self._watch: Run | None = None
        self._phase = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def follow(self, run: Run, phase: str, base_progress: float, share: float) -> None:
        self._watch, self._phase, self._base, self._share = run, phase, base_progress, share
        self.update(phase=phase, status="running", progress=base_progress)

    def update(self, **fields: Any) -> None:
        import db

        with self.sessions() as s:
            db.update_training_job(s, self.run_id, **fields)

    def _loop(self) -> None:
        while not self._stop.wait(2.0):
            run = self._watch
            if run is None:
                continue
            p = run.read_json("progress.json", {}) or {}
            frac = p.get("fraction")
            if frac is None and p.get("total_steps"):
                frac = p.get("step", 0) / max(1, p["total_steps"])
            msg = p.get("stage") or (
                f"step {p.get('step')}/{p.get('total_steps')} · loss {p['loss']:.4f}"
                + (f" · ETA {p['eta_s']:.0f} s" if p.get("eta_s") else "")
                if p.get("loss") is not None
                else ""
            )
            try:
                self.update(
                    progress=min(1.0, self._base + self._share * float(frac or 0.0)),
                    epoch=p.get("epoch"),
                    step=p.get("step"),
                    message=msg or "",
                )
            except Exception:  # noqa: BLE001 - progress is best effort; the job itself must not die for it
                log.debug("could not update the job row", exc_info=True)

    def stop(self) -> None:
        self._stop.set()


def retrain(cfg: RetrainConfig, run_id: str, *, db_url: str | None = None) -> dict[str, Any]:
    """Run a retrain job end to end (resuming what a killed job left); returns the before/after summary."""
    import db
    from rrra_core.adapter import Judgment
    from rrra_core.data.beir import load_dataset
    from rrra_core.training.phase2 import phase2_config_dict, train_phase2

    base = open_run(cfg.base_run)
    sec = _base_sections(base)
    enc, sw, labels, p2 = sec["encoder"], sec["adapter"], sec["labels"], sec["phase2"]
    sessions = db.session_factory(db.init_db(db_url))
    with sessions() as s:
        if db.get_training_job(s, run_id) is None:
            db.create_training_job(s, run_id, status="running", phase="preparing")
        else:
            db.update_training_job(s, run_id, status="running", phase="preparing")
    row = _JobRow(sessions, run_id)
    row.start()
    try:
        train_full = load_dataset(sw.dataset, sw.train_split)
        keep = _subsample(train_full.qrels, sw.max_train_queries, sw.subsample_seed)
        with sessions() as s:
            name = db.ensure_dataset(s, sw.dataset).name
            corrected, confirmed = db.merge_labels(s, name, train_full.qrels, cfg.policy, query_ids=keep)
            judgments = [Judgment(*t) for t in db.judgments_for_training(s, name, cfg.policy, query_ids=keep)]
        corrected = {q: corrected[q] for q in keep if q in corrected}
        train = replace(train_full, qrels=corrected, queries={q: train_full.queries[q] for q in corrected})
        human_relevant = {j.query_id: set() for j in judgments if j.relevant}
        for j in judgments:
            if j.relevant:
                human_relevant[j.query_id].add(j.doc_id)
        changes = {
            "judgments": len(judgments),
            "false_negatives_added": sum(len(v) for v in human_relevant.values() if v)
            - sum(1 for j in judgments if j.relevant and train_full.qrels.get(j.query_id, {}).get(j.doc_id, 0) > 0),
            "confirmed_negatives": sum(len(v) for v in confirmed.values()),
        }
        log.info("retrain %s from %s: %s", run_id, base.id, changes)

        # Phase 2 on the corrected labels (same queries: the subsample is already applied).
        sw2 = replace(sw, max_train_queries=None)
        p2n = replace(p2, epochs=cfg.adapter_epochs, seed=cfg.seed)
        meta = {"retrain": {**config_to_dict(cfg), "base_run": base.id, "changes": changes}}
        run2 = _open_or_create(run_id, "phase2", {**phase2_config_dict(enc, sw2, labels, p2n), **meta})
        share2 = 0.4 if "3" in cfg.phases else 1.0
        if not run2.file("predictions.parquet").is_file():
            row.follow(run2, "phase 2: adapter", 0.0, share2)
            train_phase2(run2, enc, sw2, labels, p2n, train_data=train, judgments=judgments)
        summary: dict[str, Any] = {
            "base_run": base.id,
            "phase2_run": run2.id,
            "changes": changes,
            "adapter": {
                "before": (base.read_json("metrics.json", {}) or {}).get("val"),
                "after": (run2.read_json("metrics.json", {}) or {}).get("val"),
            },
        }

        if "3" in cfg.phases.split(","):
            summary.update(_phase3(cfg, run_id, base, run2, enc, sw2, train, confirmed, human_relevant, row, meta))
        run2.write_json("retrain.json", summary)
        final = open_run(final_run_id(run_id, cfg))
        final.write_json("retrain.json", summary)
        row.stop()
        with sessions() as s:
            db.finish_training_job(s, run_id, "done", message=f"new run {final.id}")
        return summary
    except BaseException as err:
        row.stop()
        status = "cancelled" if isinstance(err, KeyboardInterrupt) else "failed"
        try:
            with sessions() as s:
                db.finish_training_job(
                    s, run_id, status, error=None if status == "cancelled" else f"{type(err).__name__}: {err}"
                )
        except Exception:  # noqa: BLE001 - never hide the original error
            log.exception("could not record the job's end")
        raise


def _open_or_create(run_id: str, kind: str, cfg: dict[str, Any]) -> Run:
    try:
        run = open_run(run_id)
    except ConfigError:
        return create_run(kind, cfg, run_id=run_id)
    if (run.read_json("config.json", {}) or {}).get("kind") != kind:
        raise ConfigError(f"run {run_id!r} exists and is not a {kind} run; choose another run id")
    return run


def _phase3(
    cfg: RetrainConfig,
    run_id: str,
    base: Run,
    run2: Run,
    enc: Any,
    sw: Any,
    train: Any,
    confirmed: dict[str, set[str]],
    human_relevant: dict[str, set[str]],
    row: _JobRow,
    meta: dict[str, Any],
) -> dict[str, Any]:
    from rrra_core.data.beir import load_dataset
    from rrra_core.training.phase3 import Phase3Config, phase3_config_dict, train_phase3

    p3 = Phase3Config(
        dataset=sw.dataset,
        train_split=sw.train_split,
        eval_split=cfg.eval_split,
        sampler="rrra",
        max_steps=cfg.p3_max_steps or None,
        batch_size=cfg.p3_batch_size,
        lr=cfg.p3_lr,
        seed=cfg.seed,
    )
    adapter_dir = str(run2.file("adapter"))
    run3 = _open_or_create(phase3_run_id(run_id), "phase3", {**phase3_config_dict(enc, p3, adapter_dir), **meta})
    eval_data = load_dataset(sw.dataset, cfg.eval_split) if cfg.eval_split else None
    out: dict[str, Any] = {"phase3_run": run3.id}
    if not (run3.read_json("progress.json", {}) or {}).get("status") == "done":
        row.follow(run3, "phase 3: joint fine-tuning", 0.4, 0.5)
        train_phase3(
            run3,
            enc,
            p3,
            adapter_dir=adapter_dir,
            train_data=train,
            eval_data=eval_data,
            confirmed_negatives=confirmed,
            human_relevant=human_relevant,
        )
    after = (run3.read_json("metrics.json", {}) or {}).get("eval")
    saved = base.read_json(BASE_EVAL_FILE, None) or {}
    before = saved.get("eval") if saved.get("dataset") == p3.dataset and saved.get("split") == cfg.eval_split else None
    if eval_data is not None and before is None:
        row.update(
            phase="evaluating the base run",
            progress=0.9,
            message="before: the base encoder and adapter on the eval split",
        )
        before = _evaluate_base(base, enc, p3, eval_data)
        # The base's own retrieval metrics (and its per_query.json), so Compare runs can put it beside the new run.
        base.write_json(BASE_EVAL_FILE, {"dataset": p3.dataset, "split": cfg.eval_split, "eval": before})
    out["retrieval"] = {"before": before, "after": after, "split": cfg.eval_split}
    return out


def _evaluate_base(base: Run, enc: Any, p3: Any, eval_data: Any) -> dict[str, Any]:
    """The base run's encoder (and adapter rerank) on the eval split, as phase 3 evaluates its own."""
    from rrra_core.adapter import load_adapter
    from rrra_core.retrieval.encoder import BiEncoder
    from rrra_core.training.phase3 import _final_evaluation

    encoder = BiEncoder.from_pretrained(enc.model, shared=enc.shared).eval()
    adapter, _ = load_adapter(base.file("adapter"))
    adapter.eval()
    return _final_evaluation(base, encoder, adapter, eval_data, enc, p3)
