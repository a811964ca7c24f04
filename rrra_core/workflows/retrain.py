"""Retraining with human corrections: new runs trained on corrected labels, compared with their base.

A base run is a phase-2 run (it has an adapter and scored candidates, like
the demo). A retrain job ``<run_id>``:

1. takes the base run's training queries (the same subsample,
   :func:`retrain_scope`);
2. trains on the :class:`~rrra_core.data.corrections.LabelCorrections` its
   caller built from human verdicts on those queries. The core never reads the
   annotation store: ``scripts/retrain.py`` does, and hands the corrections in;
3. phase 2, run ``<run_id>``: retrains the adapter on the corrected labels
   (its ``predictions.parquet`` is browsable like the base's);
4. optionally phase 3, run ``<run_id>-phase3``: fine-tunes encoder and adapter
   jointly with RRRA sampling, evaluated on the eval split. The base's
   encoder and adapter are evaluated the same way into run ``<run_id>-before``
   (kind ``evaluation``), so before and after sit side by side in new runs.

A retrain never writes into its base run. Each new run records the retrain
in its ``config.json`` (``retrain``: settings, base run, policy, counts) and
the verdicts it used in ``verdicts.json``; the final run's ``retrain.json``
is the before/after summary. Progress is only the runs' ``progress.json``;
:func:`retrain_progress` reads them for a follower such as the app. Running a
job again with the same run id and settings resumes it: finished runs are
kept, phase 3 continues from its checkpoint. Any other taken run id (the base
run's, another round's) is refused before anything is written (:func:`check_run_id`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from rrra_core.data.beir import Dataset
from rrra_core.data.corrections import LabelCorrections
from rrra_core.data.subsample import subsample_queries
from rrra_core.runtime.config import config_from_dict, config_to_dict, opt
from rrra_core.runtime.errors import ConfigError
from rrra_core.runtime.paths import runs_dir
from rrra_core.runtime.reports import metrics_record, read_metrics, write_progress
from rrra_core.runtime.run_config import read_run_config
from rrra_core.runtime.runs import Run, create_or_resume_run, open_run

__all__ = [
    "RetrainConfig",
    "RetrainScope",
    "RetrainProgress",
    "PRESETS",
    "VERDICTS_FILE",
    "SUMMARY_FILE",
    "retrain_scope",
    "retrain",
    "retrain_progress",
    "recorded_verdicts",
    "recorded_config",
    "check_run_id",
    "phase3_run_id",
    "before_run_id",
    "final_run_id",
    "lineage",
    "lineage_text",
    "offered_for_review",
    "remine",
]

#: The verdicts a retrain's runs were trained on: ``{"policy", "verdicts": [[query_id, doc_id, relevant], ...]}``.
VERDICTS_FILE = "verdicts.json"
#: A finished retrain's before/after summary, in its phase-2 run and its final run.
SUMMARY_FILE = "retrain.json"

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
    policy: str = opt(
        "majority",
        "how the annotation store decides a verdict per pair: majority, any_relevant or annotator:<name> "
        "(recorded with the new runs; the store checks it)",
    )
    phases: str = opt(
        "2,3", "'2' retrains the adapter; '2,3' also fine-tunes the encoder jointly (phase 3)", choices=("2", "2,3")
    )
    adapter_epochs: int = opt(3, "phase-2 epochs")
    p3_epochs: int = opt(1, "phase-3 passes over the training pairs (re-mining the pool before each)")
    p3_max_steps: int = opt(10, "phase-3 optimizer steps; 0 = all of p3_epochs")
    p3_batch_size: int = opt(16, "phase-3 queries per step")
    p3_lr: float = opt(2e-5, "phase-3 encoder learning rate")
    eval_split: str = opt("test", "split the phase-3 before/after evaluation uses; empty for none")
    remine: bool = opt(
        True,
        "after phase 3, re-mine the training queries' top-K with the new encoder and score them with the new "
        "adapter, so the new run can be reviewed (its own predictions.parquet)",
    )
    seed: int = opt(0, "random seed")

    def __post_init__(self) -> None:
        if not self.policy or not self.policy.strip():
            raise ConfigError("a retrain needs a label-merge policy")
        if self.phases not in ("2", "2,3"):
            raise ConfigError(f"phases must be '2' or '2,3', got {self.phases!r}")
        if self.adapter_epochs < 1 or self.p3_epochs < 1 or self.p3_batch_size < 1 or self.p3_max_steps < 0:
            raise ConfigError("epochs, steps and batch size must be positive")

    @property
    def joint(self) -> bool:
        """Whether phase 3 runs too."""
        return "3" in self.phases.split(",")


def phase3_run_id(run_id: str) -> str:
    return f"{run_id}-phase3"


def before_run_id(run_id: str) -> str:
    """The run holding the base run's evaluation for this retrain (its "before")."""
    return f"{run_id}-before"


def final_run_id(run_id: str, cfg: RetrainConfig) -> str:
    """The run a finished retrain job is judged by: its phase-3 run if any, else its phase-2 run."""
    return phase3_run_id(run_id) if cfg.joint else run_id


# ----------------------------------------------------------------- the scope
@dataclass(frozen=True)
class RetrainScope:
    """What a retrain's corrections apply to: the base run, its training split and its training queries."""

    base: Run
    sections: dict[str, Any]  # the base's typed settings: encoder (EncoderConfig), phase2 (Phase2Config)
    data: Dataset  # the base's full training split
    query_ids: list[str]  # the base run's training queries (its subsample): verdicts apply to these only

    @property
    def dataset(self) -> str:
        """The dataset name or folder the base run trained on (the annotation store's key for it)."""
        return str(self.sections["phase2"].dataset)


def _base_sections(base: Run) -> dict[str, Any]:
    """The base's typed settings: a phase-2 run's own, or a finished retrain's phase-3 run's (its encoder is the
    fine-tuned ``model/``, its adapter settings those of the retrain's phase-2 run)."""
    from rrra_core.retrieval.encoder import EncoderConfig
    from rrra_core.training.phase2 import Phase2Config

    saved = read_run_config(base)  # any run, made before or after the one config schema
    if saved.kind == "phase2" and saved.encoder and saved.phase:
        return {
            "encoder": saved.encoder_config(EncoderConfig),
            "phase2": saved.phase_config(Phase2Config),
            "adapter_run": base,
        }
    record = (base.read_json("config.json", {}) or {}).get("retrain") or {}
    if saved.kind == "phase3" and record.get("phase2_run") and base.file("predictions.parquet").is_file():
        run2 = open_run(record["phase2_run"])
        enc = replace(saved.encoder_config(EncoderConfig), model=str(base.file("model")))
        return {"encoder": enc, "phase2": read_run_config(run2).phase_config(Phase2Config), "adapter_run": run2}
    raise ConfigError(
        f"run {base.id!r} is a {saved.kind!r} run without scored candidates; "
        "retraining starts from a phase-2 run or a finished retrain's run"
    )


def lineage(base: Run) -> dict[str, Any]:
    """The round a retrain from ``base`` makes and its ancestry: ``{"round": n, "lineage": [root, ..., base]}``."""
    record = (base.read_json("config.json", {}) or {}).get("retrain") or {}
    return {"round": int(record.get("round", 0)) + 1, "lineage": [*record.get("lineage", []), base.id]}


def retrain_scope(cfg: RetrainConfig) -> RetrainScope:
    """The base run of ``cfg`` with its training split and queries; a non-phase-2 base is a ConfigError."""
    from rrra_core.data.beir import load_dataset

    base = open_run(cfg.base_run)
    sections = _base_sections(base)
    p2 = sections["phase2"]
    data = load_dataset(p2.dataset, p2.train_split)
    # Exactly the queries phase 2 kept for the base run (same rule, same seed),
    # so "before" and "after" train on the same questions.
    return RetrainScope(base, sections, data, subsample_queries(data.qrels, p2.max_train_queries, p2.subsample_seed))


# ----------------------------------------------------------------- the record
def _write_verdicts(run: Run, policy: str, corrections: LabelCorrections) -> None:
    rows = [[q, d, relevant] for (q, d), relevant in sorted(corrections.verdicts.items())]
    run.write_json(VERDICTS_FILE, {"policy": policy, "verdicts": rows})


def recorded_verdicts(run_id: str) -> tuple[str, dict[tuple[str, str], bool]] | None:
    """``(policy, verdicts)`` a started retrain recorded in its phase-2 run, or ``None`` if it has not started."""
    saved = Run(runs_dir() / run_id).read_json(VERDICTS_FILE)
    if not isinstance(saved, dict):
        return None
    return str(saved.get("policy")), {(str(q), str(d)): bool(r) for q, d, r in saved.get("verdicts") or []}


def _retrain_record(run_id: str) -> dict[str, Any] | None:
    """The ``retrain`` section of run ``run_id``'s ``config.json``; ``None`` for a run no retrain made."""
    cfg = Run(runs_dir() / run_id).read_json("config.json")
    record = cfg.get("retrain") if isinstance(cfg, dict) else None
    return record if isinstance(record, dict) else None


def recorded_config(run_id: str) -> RetrainConfig | None:
    """The settings a retrain recorded in its phase-2 run's ``config.json``, or ``None`` if it is not a retrain."""
    record = _retrain_record(run_id)
    if record is None:
        return None
    names = {f.name for f in fields(RetrainConfig)}
    return config_from_dict(RetrainConfig, {k: v for k, v in record.items() if k in names})


def _job_run_ids(run_id: str, cfg: RetrainConfig) -> list[str]:
    """The runs retrain job ``run_id`` writes: its phase-2 run, and with phase 3 that run and the base's evaluation."""
    if not cfg.joint:
        return [run_id]
    return [run_id, phase3_run_id(run_id)] + ([before_run_id(run_id)] if cfg.eval_split else [])


def check_run_id(cfg: RetrainConfig, run_id: str) -> None:
    """Refuse a run id taken by anything but this job's own runs: the same round resumed with the same settings.

    A retrain writes ``verdicts.json``, ``retrain.json`` and a review queue into
    its runs; handed a taken id (its base run's, another round's, any other
    run's) it would write them into a run that is not its own. Reads only, so a
    caller refuses before anything is written.
    """
    for rid in _job_run_ids(run_id, cfg):
        path = runs_dir() / rid
        if not path.is_dir() or not any(path.iterdir()):
            continue
        if rid == cfg.base_run:
            raise ConfigError(
                f"run id {rid!r} names the base run; a retrain never writes into its base: choose a new run id"
            )
        record = _retrain_record(rid)
        if record is None or record.get("phase2_run") != run_id:
            raise ConfigError(f"run id {rid!r} is taken by another run ({path}); choose a new run id")
    saved = recorded_config(run_id)
    if saved is not None and saved != cfg:
        changed = [
            f"{f.name} {getattr(saved, f.name)!r}"
            for f in fields(cfg)
            if getattr(saved, f.name) != getattr(cfg, f.name)
        ]
        raise ConfigError(
            f"run {run_id!r} is a retrain with other settings ({', '.join(changed)}); resume it with those "
            "or choose a new run id"
        )


def _check_resume(run_id: str, corrections: LabelCorrections) -> None:
    saved = recorded_verdicts(run_id)
    if saved is not None and saved[1] != corrections.verdicts:
        raise ConfigError(
            f"run {run_id!r} was started with {len(saved[1])} other verdicts; resume it with the ones it recorded "
            f"({VERDICTS_FILE}) or start a new run id"
        )


def _check_documents(corrections: LabelCorrections, scope: RetrainScope) -> None:
    """Refuse verdicts on documents the corpus no longer holds, before any run folder is made."""
    gone = sorted({d for _, d in corrections.verdicts} - set(scope.data.corpus))
    if gone:
        raise ConfigError(
            f"{len(gone)} judged document(s) are not in {scope.dataset!r}'s corpus any more (e.g. {gone[0]!r}); "
            "the corpus changed since they were judged: remove those judgments or restore the documents"
        )


# ----------------------------------------------------------------- the job
def retrain(
    cfg: RetrainConfig, run_id: str, corrections: LabelCorrections, *, scope: RetrainScope | None = None
) -> dict[str, Any]:
    """Run a retrain job end to end on ``corrections`` (resuming what a killed job left); returns its summary.

    ``corrections`` are the base run's training labels corrected by human
    verdicts on its training queries: ``apply_verdicts(scope.data.qrels,
    verdicts, query_ids=scope.query_ids)`` with ``scope = retrain_scope(cfg)``
    (pass that ``scope`` to skip loading the data again). The summary holds
    the base run, the new runs, the label changes and the before/after metrics.
    """
    from rrra_core.training.phase2 import phase2_config_dict, train_phase2

    scope = scope or retrain_scope(cfg)
    base, keep = scope.base, scope.query_ids
    stray = sorted({q for q, _ in corrections.verdicts} - set(keep))
    if stray:
        raise ConfigError(
            f"the corrections judge {len(stray)} queries outside base run {base.id!r}'s training queries "
            f"(e.g. {stray[0]!r}); build them on retrain_scope(cfg).query_ids"
        )
    _check_documents(corrections, scope)
    check_run_id(cfg, run_id)
    _check_resume(run_id, corrections)
    enc, p2 = scope.sections["encoder"], scope.sections["phase2"]
    qrels = {q: corrections.qrels[q] for q in keep if q in corrections.qrels}
    train = replace(scope.data, qrels=qrels, queries={q: scope.data.queries[q] for q in qrels})
    changes = corrections.summary(scope.data.qrels)
    log.info("retrain %s from %s (policy %s): %s", run_id, base.id, cfg.policy, changes)

    # Phase 2 on the corrected labels. The subsample is already applied; its size and seed stay in the
    # config so that a next round's scope (retrain_scope of this round's run) draws the same queries.
    p2n = replace(p2, fit=replace(p2.fit, epochs=cfg.adapter_epochs, seed=cfg.seed))
    record = {**config_to_dict(cfg), "base_run": base.id, "changes": changes, **lineage(base)}
    meta = {"retrain": {**record, "phase2_run": run_id}}
    run2 = create_or_resume_run("phase2", {**phase2_config_dict(enc, p2n), **meta}, run_id)
    _write_verdicts(run2, cfg.policy, corrections)
    if not run2.file("predictions.parquet").is_file():
        train_phase2(run2, enc, p2n, train_data=train, corrections=corrections)
    summary: dict[str, Any] = {
        "base_run": base.id,
        "phase2_run": run2.id,
        "policy": cfg.policy,
        "changes": changes,
        "adapter": {
            "before": read_metrics(scope.sections.get("adapter_run", base), "phase2")["after"] or None,
            "after": read_metrics(run2, "phase2")["after"] or None,
        },
    }
    summary.update(round=record["round"], lineage=record["lineage"])
    if cfg.joint:
        summary.update(_phase3(cfg, run_id, scope, run2, train, corrections, meta))
        if cfg.remine:
            remine(open_run(phase3_run_id(run_id)), enc, p2, train)
    run2.write_json(SUMMARY_FILE, summary)
    open_run(final_run_id(run_id, cfg)).write_json(SUMMARY_FILE, summary)
    return summary


def _phase3(
    cfg: RetrainConfig,
    run_id: str,
    scope: RetrainScope,
    run2: Run,
    train: Dataset,
    corrections: LabelCorrections,
    meta: dict[str, Any],
) -> dict[str, Any]:
    from rrra_core.data.beir import load_dataset
    from rrra_core.training.phase3 import Phase3Config, phase3_config_dict, train_phase3

    enc, sw = scope.sections["encoder"], scope.sections["phase2"]
    p3 = Phase3Config(
        dataset=sw.dataset,
        train_split=sw.train_split,
        eval_split=cfg.eval_split,
        sampler="rrra",
        epochs=cfg.p3_epochs,
        max_steps=cfg.p3_max_steps or None,
        batch_size=cfg.p3_batch_size,
        lr=cfg.p3_lr,
        seed=cfg.seed,
    )
    adapter_dir = str(run2.file("adapter"))
    run3 = create_or_resume_run("phase3", {**phase3_config_dict(enc, p3, adapter_dir), **meta}, phase3_run_id(run_id))
    _write_verdicts(run3, cfg.policy, corrections)
    eval_data = load_dataset(sw.dataset, cfg.eval_split) if cfg.eval_split else None
    if (run3.read_json("progress.json", {}) or {}).get("status") != "done":
        train_phase3(
            run3, enc, p3, adapter_dir=adapter_dir, train_data=train, eval_data=eval_data, corrections=corrections
        )
    out: dict[str, Any] = {"phase3_run": run3.id, "before_run": None}
    before = None
    if eval_data is not None:
        run_b = _evaluate_base(scope.base, before_run_id(run_id), enc, p3, eval_data, meta)
        out["before_run"], before = run_b.id, read_metrics(run_b)["variants"]
    after = read_metrics(run3, "phase3")["variants"]
    out["retrieval"] = {"before": before, "after": after, "split": cfg.eval_split}
    return out


def _evaluate_base(base: Run, run_id: str, enc: Any, p3: Any, eval_data: Dataset, meta: dict[str, Any]) -> Run:
    """The base run's encoder and adapter evaluated as phase 3 evaluates its own, into a new run (kind ``evaluation``).

    The run holds ``metrics.json`` (the variants' metrics, in the one shape) and
    ``per_query.json``, so Compare runs can put the base beside the retrained
    run; the base run's folder is only read. The base reranks as it chose on its
    own dev queries (issue 29); a base made before runs chose keeps phase 3's
    fixed ``lambda_rr`` and ``rerank_signal``.
    """
    from rrra_core.adapter import load_adapter
    from rrra_core.retrieval.encoder import BiEncoder
    from rrra_core.retrieval.final_evaluation import final_evaluation
    from rrra_core.retrieval.rerank_choice import run_rerank_choice
    from rrra_core.runtime.device import resolve_device
    from rrra_core.runtime.reports import METRICS_FILE, StageProgress

    choice = run_rerank_choice(base.read_json("config.json", {}), base.read_json(METRICS_FILE, {}))

    settings = {
        "of_run": base.id,
        "encoder": config_to_dict(enc),
        "data": {"dataset": p3.dataset, "eval_split": eval_data.split},
        "evaluation": {
            "adapter": str(base.file("adapter")),
            **{k: getattr(p3, k) for k in ("eval_k", "index_kind", "lambda_rr", "rerank_signal")},
            "rerank": choice.setting.name if choice else None,
        },
        **meta,
    }
    run = create_or_resume_run("evaluation", settings, run_id)
    if (run.read_json("progress.json", {}) or {}).get("status") == "done":
        return run
    # Counted part by part (the corpus, the queries, the reranking), each with its ETA: thousands of test
    # queries are a minute's work on a CPU after the corpus, which a count of documents alone left silent.
    stage = StageProgress(run, None, "evaluating the base run", (0.0, 0.95))
    stage.start("evaluating the base run: loading its encoder and adapter")
    device = resolve_device(enc.device)
    encoder = BiEncoder.from_pretrained(enc.model, shared=enc.shared).to(device).eval()
    adapter, _ = load_adapter(base.file("adapter"), device=device)
    adapter.eval()
    evaluation = final_evaluation(
        encoder,
        eval_data,
        enc,
        dataset=p3.dataset,
        k=p3.eval_k,
        index_kind=p3.index_kind,
        plain="no_rerank",
        adapter=adapter,
        lambda_rr=p3.lambda_rr,
        rerank_signal=p3.rerank_signal,
        stage=stage,
        choice=choice,
    )
    variants = evaluation.record(run)
    after = variants.get("rerank") or variants.get("no_rerank") or {}
    record = metrics_record(None, after=after, variants=variants, rerank_choice=choice.as_dict() if choice else None)
    run.write_json("metrics.json", record)
    write_progress(run, None, "done", status="done")
    return run


# ----------------------------------------------------------------- what the app lists
def offered_for_review(run: Run, config: Mapping[str, Any]) -> bool:
    """Whether a run with scored candidates is one a reviewer should be offered.

    Any run a retrain did not make is. A retrain's runs are only once the job
    finished (its summary written), and then only its final run: a joint
    retrain's phase-2 run scored candidates mined by the *old* encoder, and a
    running, failed or cancelled job's runs are half made.
    """
    record = config.get("retrain")
    if not isinstance(record, Mapping):
        return True
    if not run.file(SUMMARY_FILE).is_file():
        return False
    joint = "3" in str(record.get("phases", "2")).split(",")
    return not (joint and config.get("kind") == "phase2")


def lineage_text(config: Mapping[str, Any]) -> str | None:
    """One line on where a retrained run comes from (``None`` for a run no retrain made)."""
    record = config.get("retrain")
    if not isinstance(record, Mapping):
        return None
    chain = " → ".join([*map(str, record.get("lineage") or [record.get("base_run")]), "this run"])
    ch = record.get("changes") or {}
    return (
        f"round {record.get('round', 1)}: {chain} · {ch.get('judgments', 0)} verdicts ({record.get('policy')}), "
        f"{ch.get('false_negatives_added', 0)} false negatives turned positive · phases {record.get('phases')}"
    )


# ----------------------------------------------------------------- the reviewable run
#: Progress of the re-mining stage, beside the phase-3 run's own ``progress.json`` (which says "done" for training).
REMINE_PROGRESS = "remine_progress.json"
# The counted parts of re-mining and their shares of its bar (``stage_parts``).
_REMINE_PARTS = (
    ("encoding the corpus", "docs", 0.88),
    ("encoding the queries", "queries", 0.04),
    ("scoring candidates", "pairs", 0.08),
)


def remine(run: Run, enc: Any, p2: Any, train: Dataset) -> None:
    """Make a finished phase-3 ``run`` reviewable: its ``predictions.parquet`` from its own encoder and adapter.

    The fine-tuned encoder (``<run>/model``) re-mines every training query's
    top-K, and the jointly trained adapter (``<run>/adapter``) scores them, in
    the columns phase 2 writes, so the browser and the review queue read the
    new run as they read its base. ``train.qrels`` are the corrected labels:
    a pair a reviewer found relevant is a labelled positive here, so the queue
    no longer offers it. Kept if already written (a resumed job).
    """
    from rrra_core.adapter import load_adapter
    from rrra_core.retrieval.dense import retrieve
    from rrra_core.retrieval.encoder import BiEncoder
    from rrra_core.retrieval.final_evaluation import stage_parts
    from rrra_core.runtime.device import resolve_device
    from rrra_core.runtime.reports import StageProgress, progress_record
    from rrra_core.training.phase2 import pool_predictions, write_predictions

    if run.file("predictions.parquet").is_file():
        return
    stage = StageProgress(run, None, "re-mining", file=REMINE_PROGRESS)
    stage.start("re-mining: loading the new encoder and adapter")
    # Each part's ETA is timed from its own start (a part built up front would count the corpus's time as its own).
    corpus, queries, scoring = stage_parts(stage, _REMINE_PARTS)
    new_enc = replace(enc, model=str(run.file("model")))
    device = resolve_device(enc.device)
    encoder = BiEncoder.from_pretrained(new_enc.model, shared=enc.shared).to(device).eval()
    adapter, _ = load_adapter(run.file("adapter"), device=device)
    res = retrieve(
        encoder,
        train.corpus,
        train.queries,
        new_enc,
        k=p2.labels.top_k,
        index_kind=p2.index_kind,
        progress="re-mining: encoding corpus",
        callback=corpus,
        query_callback=queries,
    )
    write_predictions(run, pool_predictions(adapter, res, train.qrels, p2.labels.top_k, callback=scoring))
    run.write_json(REMINE_PROGRESS, progress_record(None, "re-mining", status="done", message="done"))


# ----------------------------------------------------------------- following a job
@dataclass
class RetrainProgress:
    """Where a retrain job stands, read from its runs' ``progress.json`` files."""

    fraction: float = 0.0  # of the whole job, in [0, 1]
    stage: str = "preparing"  # what it is doing now, for people
    epoch: int | None = None
    step: int | None = None
    done: bool = False  # the final run holds the summary
    runs: dict[str, str] = field(default_factory=dict)  # {run id: its status} for the runs made so far
    updated: float | None = None  # when a run last wrote its progress (seconds since the epoch)
    eta_s: float | None = None  # the current stage's estimated time left


def _part_fraction(p: Mapping[str, Any]) -> float:
    if p.get("status") == "done":
        return 1.0
    if p.get("fraction") is not None:
        return float(p["fraction"])
    if p.get("total_steps"):
        return float(p.get("step") or 0) / float(p["total_steps"])
    return 0.0


def _part_message(p: Mapping[str, Any]) -> str:
    if p.get("message"):
        return str(p["message"])
    if p.get("loss") is not None and p.get("total_steps"):
        eta = f" · ETA {p['eta_s']:.0f} s" if p.get("eta_s") else ""
        return f"step {p.get('step')}/{p['total_steps']} · loss {p['loss']:.4f}{eta}"
    return str(p.get("stage") or "starting")


def _parts(run_id: str, cfg: RetrainConfig) -> list[tuple[str, str, str, float]]:
    """``(run id, progress file, label, share of the bar)`` of each stage of a retrain job, in order."""
    if not cfg.joint:
        return [(run_id, "progress.json", "phase 2: adapter", 1.0)]
    r3 = phase3_run_id(run_id)
    parts = [(run_id, "progress.json", "phase 2: adapter", 0.3)]
    parts.append((r3, "progress.json", "phase 3: joint fine-tuning", 0.45))
    if cfg.eval_split:
        parts.append((before_run_id(run_id), "progress.json", "evaluating the base run", 0.1))
    if cfg.remine:
        parts.append((r3, REMINE_PROGRESS, "re-mining the training queries", 0.15))
    total = sum(share for *_, share in parts)
    return [(rid, f, label, share / total) for rid, f, label, share in parts]


def retrain_progress(run_id: str, cfg: RetrainConfig) -> RetrainProgress:
    """How far retrain job ``run_id`` (with settings ``cfg``) has come, from its runs' files alone."""
    out = RetrainProgress(done=Run(runs_dir() / final_run_id(run_id, cfg)).file(SUMMARY_FILE).is_file())
    current = None
    for rid, name, label, share in _parts(run_id, cfg):
        run = Run(runs_dir() / rid)
        p = run.read_json(name, {}) if run.file("config.json").is_file() and run.file(name).is_file() else None
        if p is None:
            current = current or (label, {})
            continue
        p = p if isinstance(p, dict) else {}
        out.runs[rid] = str(p.get("status") or "starting")
        out.updated = max(out.updated or 0.0, run.file(name).stat().st_mtime)
        out.fraction += share * min(1.0, max(0.0, _part_fraction(p)))
        if current is None and p.get("status") != "done":
            current = (label, p)
    if out.done:
        out.fraction, out.stage = 1.0, "done"
    elif not out.runs:
        out.stage = "preparing: loading the data and the verdicts"
    elif current is not None:
        label, p = current
        out.stage = f"{label} · {_part_message(p)}" if p else label
        out.epoch, out.step, out.eta_s = p.get("epoch"), p.get("step"), p.get("eta_s")
    out.fraction = round(min(1.0, out.fraction), 4)
    return out
