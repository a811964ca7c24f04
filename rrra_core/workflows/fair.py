"""A fair comparison of RRRA with its baselines: equal tuning on a dev split, several seeds, paired tests.

Per seed:

1. the seed's labels (planted or real false negatives, as the ordinary
   benchmark makes them, :func:`rrra_core.workflows.benchmark.seed_truth`) and
   a dev split carved from its training queries (:func:`carve_dev`); nothing
   after this reads the test split until step 5;
2. phase 1 and the phase-2 adapter on the remaining training queries;
3. on the tuning seed (the first), every method gets the same number of trial
   settings (:data:`TRIALS`), each a phase-3 run from the phase-1 encoder,
   scored on dev nDCG@10. RRRA's reranking is tuned the same way: its trials
   are (signal, λ_RR) pairs, on the phase-1 retrieval for *reranking only* and,
   once RRRA's sampler is chosen, on that encoder for *full RRRA* (the tuning
   table). *Reranking only* is the reranker's ablation and takes the best dev
   setting. The other seeds reuse the choices. Full RRRA's rerank is not a
   tuned choice but the rule every run applies
   (:mod:`rrra_core.retrieval.rerank_choice`: on only when a setting beats
   "off" on the run's dev queries by a Holm-corrected paired test), applied in
   every seed to that seed's RRRA encoder on that seed's dev split, as the
   ordinary benchmark does: its row is what a user's run would get;
4. every finished phase is a run folder named by a hash of its settings
   (:mod:`rrra_core.runtime.keyed_runs`), so a second process, an added
   method or a killed benchmark picks up what exists, and the tuning seed's
   final runs *are* its chosen trials;
5. each chosen method is evaluated once on the test split, with per-query
   nDCG@10 and R@1 (and answer hit@1 where the queries carry answers) kept for
   the paired tests.

Results go into one part file per seed, rewritten after every trial and method
(:func:`run_seed`); :func:`summarize` turns the part files into the result
file (means ± std over seeds, the tuning table, ranx p-values against the best
baseline) and may be run at any time.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from rrra_core.adapter import AdapterFitConfig, LabelConfig, adapter_rerank_signal, load_adapter
from rrra_core.analysis.significance import paired_by_query
from rrra_core.data.beir import Dataset, load_dataset
from rrra_core.data.subsample import carve_dev
from rrra_core.negatives.mining import MiningConfig
from rrra_core.retrieval.bm25 import bm25_run
from rrra_core.retrieval.dense import Retrieval, retrieve
from rrra_core.retrieval.encoder import BiEncoder, EncoderConfig
from rrra_core.retrieval.evaluation import DEFAULT_METRICS, answer_ranks, answer_recall, evaluate, evaluate_per_query
from rrra_core.retrieval.rerank import rerank_run
from rrra_core.retrieval.rerank_choice import (
    RerankChoice,
    RerankChoiceConfig,
    RerankSetting,
    choose_rerank,
    score_settings,
)
from rrra_core.runtime.config import config_from_dict, config_to_dict, opt
from rrra_core.runtime.device import resolve_device
from rrra_core.runtime.errors import ConfigError
from rrra_core.runtime.keyed_runs import data_key, keyed_run, locked
from rrra_core.runtime.runs import write_json_atomic
from rrra_core.training.phase1 import Phase1Config, phase1_config_dict, train_phase1
from rrra_core.training.phase2 import Phase2Config, phase2_config_dict, train_phase2
from rrra_core.training.phase3 import Phase3Config, phase3_config_dict, train_phase3
from rrra_core.workflows.benchmark import BenchmarkConfig, gradient_summary, mean_std, seed_truth

__all__ = [
    "full_rerank_choice",
    "FairConfig",
    "TRIALS",
    "RERANK_TRIALS",
    "BASELINES",
    "REFERENCES",
    "run_seed",
    "summarize",
    "read_parts",
]

log = logging.getLogger(__name__)

PRIMARY = "nDCG@10"
# Phase-3 sampler settings tried per method, the pre-tuning default first. Each list is a one-at-a-time design
# around a centre: the knobs the method has, over the range where they change which negatives are drawn.
TRIALS: dict[str, list[dict[str, Any]]] = {
    "uniform": [{"top_k": k} for k in (100, 50, 30, 20, 200, 10)],
    "simans": [
        {"simans_a": a, "simans_b": b}
        for a, b in ((0.5, 0.0), (0.1, 0.0), (0.02, 0.0), (1.0, 0.0), (0.5, -1.0), (0.1, -1.0))
    ],
    "margin": [{"relative_margin": m} for m in (0.05, 0.0, 0.02, 0.1, 0.2, 0.3)],
    "rrra": [
        {"hardness_temperature": t, "gamma": g, "top_k": k}
        for t, g, k in (
            (0.05, 2.0, 100),
            (0.2, 2.0, 100),
            (1.0, 2.0, 100),
            (0.2, 1.0, 100),
            (0.2, 4.0, 100),
            (0.2, 2.0, 50),
        )
    ],
}
# RRRA's reranking: (signal, λ_RR). λ = 0 is not a trial: it is the retriever's own order, scored anyway.
# Full RRRA (the system a user deploys) may choose it: λ_RR = 0 is one value of its tuned λ_RR, and on a
# collection where the adapter's rerank hurts dev (Cranfield), the tuned system must not carry that loss to
# test. *Reranking only* is the reranker's ablation and always reranks.
RERANK_OFF = "off"
#: Full RRRA's entry in ``chosen``: the per-run rule at today's level, applied per seed on its own dev split.
#: A part chosen otherwise (the best dev mean, another level) is chosen again, and full RRRA rescored.
RERANK_RULE = f"rule@{RerankChoiceConfig().level:g}"
RERANK_TRIALS: list[dict[str, Any]] = [
    {"rerank_signal": s, "lambda_rr": lam}
    for s, lam in (("p_rel", 1.0), ("p_rel", 0.5), ("p_rel", 0.25), ("qa", 1.0), ("qa", 0.5), ("qa", 2.0))
]
METHOD_NAMES = {
    "uniform": "uniform top-K",
    "simans": "SimANS",
    "margin": "margin filter",
    "rrra": "RRRA resampling only",
}
RERANK_ONLY = "RRRA reranking only"
FULL = "RRRA (resampling + reranking)"
# The best baseline is the best *tuned* one: the hard-negative samplers RRRA's resampling replaces, each given
# the same dev trials. The untuned references (lexical, zero-shot, in-batch only) are reported beside them and
# tested too, but a dataset where BM25 beats every dense model (SQuAD) says nothing about resampling.
BASELINES = ("uniform top-K", "SimANS", "margin filter")
REFERENCES = ("BM25", "zero-shot", "phase 1 (in-batch)")
PER_QUERY_METRICS = ("nDCG@10", "R@1")


@dataclass
class FairConfig:
    """One fair comparison; budget knobs are max lengths, epochs, trials and max_train_queries."""

    dataset: str = opt("cranfield", "embedded dataset name or a BEIR folder")
    train_split: str = opt("train", "split the dev queries are carved from and the pipeline trains on")
    test_split: str = opt("test", "split read once, at the end")
    hide_fraction: float = opt(0.3, "share of each training query's positives hidden as planted false negatives")
    truth: str = opt(
        "planted", "false-negative truth: planted, answers (SQuAD) or none", choices=("planted", "answers", "none")
    )
    seeds: tuple[int, ...] = opt((0, 1, 2), "seeds to run (each its own process if you like: parts are merged)")
    tune_seed: int = opt(0, "the seed whose dev split chooses every setting; the others reuse its choice")
    dev_fraction: float = opt(0.2, "share of the training queries carved out as the dev split")
    trials: int = opt(6, "settings tried per method on dev (at most the grid's length, 6)")
    methods: tuple[str, ...] = opt(("uniform", "simans", "margin", "rrra"), "phase-3 samplers compared")
    query_max_length: int = opt(48, "max word pieces per query")
    doc_max_length: int = opt(128, "max word pieces per document")
    top_k: int = opt(100, "candidate depth for the adapter's labels (phase 2)")
    p1_epochs: int = opt(1, "phase-1 epochs")
    p1_lr: float = opt(2e-5, "phase-1 learning rate")
    p2_epochs: int = opt(10, "phase-2 (adapter) epochs; the best held-out epoch is kept")
    p3_epochs: int = opt(2, "phase-3 epochs (the pool is re-mined every epoch)")
    batch_size: int = opt(32, "batch size for phases 1 and 3")
    n_hard: int = opt(1, "phase 3: hard negatives per query per step")
    mu: float = opt(0.3, "adapter labels: share of visible positives masked as synthetic false negatives")
    lambda_adapter: float = opt(0.1, "joint adapter-loss weight in phase 3 (RRRA)")
    max_train_queries: int | None = opt(None, "subsample training queries before the dev carve (budget knob)")
    device: str = opt("auto", "auto, cpu or cuda")
    precision: str = opt("fp32", "encoding precision (fp32, bf16 or fp16)")
    model: str = opt("minilm", "starting encoder")

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in TRIALS]
        if unknown:
            raise ConfigError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(TRIALS)}")
        if not 1 <= self.trials <= min(len(v) for v in TRIALS.values()):
            raise ConfigError(f"trials must be between 1 and {min(len(v) for v in TRIALS.values())}, got {self.trials}")
        if not self.seeds:
            raise ConfigError("at least one seed is needed")
        if not 0.0 < self.dev_fraction < 1.0:
            raise ConfigError(f"dev_fraction must be in (0, 1), got {self.dev_fraction}")


# ----------------------------------------------------------------- one seed's inputs
@dataclass
class SeedData:
    """One seed's splits: training queries (dev carved out), dev, test, and the false-negative truth."""

    seed: int
    train: Dataset
    dev: Dataset
    test: Dataset
    truth: dict[str, set[str]]


def seed_data(cfg: FairConfig, seed: int) -> SeedData:
    """The seed's labels as the ordinary benchmark makes them, then the dev carve (deterministic per seed)."""
    bench = BenchmarkConfig(
        dataset=cfg.dataset,
        train_split=cfg.train_split,
        test_split=cfg.test_split,
        hide_fraction=cfg.hide_fraction,
        truth=cfg.truth,
        max_train_queries=cfg.max_train_queries,
    )
    full, visible, truth = seed_truth(bench, seed)
    train_ids, dev_ids = carve_dev(visible, cfg.dev_fraction, seed)

    def subset(ids: list[str], split: str) -> Dataset:
        return replace(
            full,
            split=split,
            qrels={q: visible[q] for q in ids},
            queries={q: full.queries[q] for q in ids if q in full.queries},
            answers={q: full.answers[q] for q in ids if q in full.answers},
        )

    return SeedData(
        seed=seed,
        train=subset(train_ids, cfg.train_split),
        dev=subset(dev_ids, f"{cfg.train_split}-dev"),
        test=load_dataset(cfg.dataset, cfg.test_split),
        truth={q: truth[q] for q in train_ids if q in truth},
    )


def _enc(cfg: FairConfig, model: str) -> EncoderConfig:
    return EncoderConfig(
        model=model,
        query_max_length=cfg.query_max_length,
        doc_max_length=cfg.doc_max_length,
        device=cfg.device,
        precision=cfg.precision,
    )


def _queries_key(data: Dataset) -> str:
    return data_key(data.qrels)


# ----------------------------------------------------------------- phases
def _phase1(cfg: FairConfig, name: str, d: SeedData) -> str:
    """The phase-1 encoder folder (trained, or reused when the same settings already finished)."""
    enc0 = _enc(cfg, cfg.model)
    p1 = Phase1Config(
        dataset=cfg.dataset,
        train_split=cfg.train_split,
        eval_split="",
        epochs=cfg.p1_epochs,
        batch_size=cfg.batch_size,
        lr=cfg.p1_lr,
        seed=d.seed,
        checkpoint_every=0,
    )
    config = {**phase1_config_dict(enc0, p1, MiningConfig()), "train_queries": _queries_key(d.train)}
    with keyed_run(f"fair-{name}-s{d.seed}-phase1", "phase1", config) as (run, done):
        if not done:
            train_phase1(run, enc0, p1, train_data=d.train, eval_data=None)
        return str(run.path)


def _phase2(cfg: FairConfig, name: str, d: SeedData, enc1: EncoderConfig) -> tuple[str, dict[str, Any]]:
    """(the full adapter's folder, its fit summary) on frozen phase-1 embeddings."""
    p2 = Phase2Config(
        dataset=cfg.dataset,
        train_split=cfg.train_split,
        labels=LabelConfig(mu=cfg.mu, top_k=cfg.top_k, seed=d.seed),
        fit=AdapterFitConfig(epochs=cfg.p2_epochs, seed=d.seed),
        rerank=_NO_RUN_CHOICE,
    )
    config = {**_keyed(phase2_config_dict(enc1, p2)), "train_queries": _queries_key(d.train)}
    with keyed_run(f"fair-{name}-s{d.seed}-phase2", "phase2", config) as (run, done):
        metrics = run.read_json("metrics.json") if done else train_phase2(run, enc1, p2, train_data=d.train)
        train = metrics.get("train") or {}
        fit = {"kept_epoch": train.get("kept_epoch"), "warnings": train.get("warnings", [])}
        return str(run.file("adapter")), {**fit, "val_macro_f1": (metrics.get("after") or {}).get("macro_f1")}


# The runs hold no dev split of their own: this comparison carved one before training (and chooses on it).
_NO_RUN_CHOICE = RerankChoiceConfig(enabled=False)


def _keyed(config: dict[str, Any]) -> dict[str, Any]:
    """A run's settings as its folder's key: the disabled per-run rerank choice left out, as before it existed.

    Switched off, it changes nothing a run does, so the folders trained before it are found again.
    """
    phase = {k: v for k, v in config["phase"].items() if k != "rerank"}
    return {**config, "phase": phase}


def _phase3_config(cfg: FairConfig, d: SeedData, sampler: str, settings: Mapping[str, Any]) -> Phase3Config:
    base = Phase3Config(
        dataset=cfg.dataset,
        train_split=cfg.train_split,
        eval_split="",
        sampler=sampler,
        epochs=cfg.p3_epochs,
        remine_every=1,
        batch_size=cfg.batch_size,
        n_hard=cfg.n_hard,
        lambda_adapter=cfg.lambda_adapter,
        mu=cfg.mu,
        lambda_rr=0.0,  # reranking is tuned and scored here, not inside the run
        seed=d.seed,
        checkpoint_every=0,
        rerank=_NO_RUN_CHOICE,
        # Every sampler knob pinned to the values the trials were designed around (the pre-tuning defaults):
        # the run folders are keyed by their settings, so a later change of Phase3Config's defaults must not
        # orphan finished trials or shift what an untouched knob means.
        **_PINNED,
    )
    return replace(base, **settings)


_PINNED: dict[str, Any] = {
    "top_k": 100,
    "gamma": 2.0,
    "hardness_temperature": 0.05,
    "simans_a": 0.5,
    "simans_b": 0.0,
    "relative_margin": 0.05,
    "rerank_signal": "p_rel",
}


def _phase3(
    cfg: FairConfig, name: str, d: SeedData, enc1: EncoderConfig, adapter: str, sampler: str, trial: int
) -> str:
    """The phase-3 folder of ``sampler`` with its ``trial``-th settings (trained, or reused)."""
    p3 = _phase3_config(cfg, d, sampler, TRIALS[sampler][trial])
    config = {**_keyed(phase3_config_dict(enc1, p3, adapter)), "train_queries": _queries_key(d.train)}
    with keyed_run(f"fair-{name}-s{d.seed}-phase3-{sampler}", "phase3", config) as (run, done):
        if not done:
            train_phase3(
                run, enc1, p3, adapter_dir=adapter, train_data=d.train, eval_data=None, planted_false_negatives=d.truth
            )
        return str(run.path)


def _worker_init(threads: int) -> None:
    """A phase-3 worker: its share of the cores, and the parent's log format (spawned processes start bare)."""
    import torch

    from rrra_core.runtime.cli import setup_logging

    torch.set_num_threads(threads)
    setup_logging()


def _trained(
    cfg: FairConfig,
    name: str,
    d: SeedData,
    enc1: EncoderConfig,
    adapter: str,
    items: list[tuple[str, int]],
    workers: int,
    progress: Callable[[str], None],
) -> Iterator[tuple[str, int, str]]:
    """``(sampler, trial, folder)`` for each item, in order, training what is not yet a finished run.

    With ``workers`` > 1 the runs train in that many processes at once, each with its share of the cores: the
    trials are independent runs from the same phase-1 encoder, and one small model per core keeps a CPU busier
    than one process with several threads. Each run is keyed by its settings and seeded as in one process.
    """
    if workers <= 1 or len(items) <= 1:
        for method, trial in items:
            progress(f"seed {d.seed}: phase 3, {method} trial {trial + 1}/{cfg.trials} {TRIALS[method][trial]}")
            yield method, trial, _phase3(cfg, name, d, enc1, adapter, method, trial)
        return
    import torch

    workers = min(workers, len(items))
    progress(f"seed {d.seed}: {len(items)} phase-3 runs in {workers} processes")
    # spawn, not fork: a fork of a process whose torch thread pool has started can deadlock.
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_init,
        initargs=(max(1, torch.get_num_threads() // workers),),
    )
    try:
        futures = [(m, t, pool.submit(_phase3, cfg, name, d, enc1, adapter, m, t)) for m, t in items]
        for method, trial, future in futures:
            yield method, trial, future.result()
    finally:
        pool.shutdown(cancel_futures=True)  # a failure stops what has not started; started runs finish


# ----------------------------------------------------------------- scoring
def _retrieval(cfg: FairConfig, model_dir: str, data: Dataset) -> Retrieval:
    """Top-100 of ``data``'s queries; the corpus vectors are cached, so dev and test share one encoding."""
    device = resolve_device(cfg.device)
    encoder = BiEncoder.from_pretrained(model_dir).to(device).eval()
    return retrieve(encoder, data.corpus, data.queries, _enc(cfg, model_dir), k=100, progress=False)


def _signals(cfg: FairConfig, adapter_dir: str, res: Retrieval) -> dict[str, dict[str, dict[str, float]]]:
    adapter, _ = load_adapter(adapter_dir, device=resolve_device(cfg.device))
    return {
        s: adapter_rerank_signal(
            adapter, res.run, res.query_ids, res.query_vectors, res.corpus.ids, res.corpus.vectors, s
        )
        for s in dict.fromkeys(t["rerank_signal"] for t in RERANK_TRIALS)
    }


def _reranked(res: Retrieval, signals: Mapping[str, Any], trial: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    if not trial["lambda_rr"]:
        return {q: dict(docs) for q, docs in res.run.items()}
    return rerank_run(res.run, signals[trial["rerank_signal"]], trial["lambda_rr"])


def _dev_scores(run: Mapping[str, Mapping[str, float]], dev: Dataset) -> dict[str, float]:
    m = evaluate(dev.qrels, run)
    return {k: m[k] for k in ("nDCG@10", "R@1", "R@10", "R@100")}


def _answer_hits_at_1(run: Mapping[str, Mapping[str, float]], test: Dataset, texts: Mapping[str, str]) -> dict:
    """Per question: 1.0 if the top passage holds an answer (DPR's answer recall@1), for the paired test."""
    return {q: float(r == 1) for q, r in answer_ranks(run, test.answers, texts, 1).items()}


def _test_scores(run: Mapping[str, Mapping[str, float]], test: Dataset) -> dict[str, Any]:
    """Test metrics (and answer recall) with the per-query values the paired tests read."""
    per_query = evaluate_per_query(test.qrels, run)  # every default metric, once; the means are taken here
    metrics = {m: float(np.mean([v[m] for v in per_query.values()])) if per_query else 0.0 for m in DEFAULT_METRICS}
    out: dict[str, Any] = {
        "metrics": metrics,
        "per_query": {m: {q: v[m] for q, v in per_query.items()} for m in PER_QUERY_METRICS},
    }
    if test.answers:
        texts = {d: doc.text for d, doc in test.corpus.items()}
        metrics.update(answer_recall(run, test.answers, texts))
        out["per_query"]["AnswerRecall@1"] = _answer_hits_at_1(run, test, texts)
    return out


# ----------------------------------------------------------------- part files
def part_path(parts_dir: Path, seed: int) -> Path:
    return parts_dir / f"s{seed}.json"


def _read_part(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path} is damaged ({err}); move it aside to rerun that seed") from None


def read_parts(parts_dir: Path) -> list[dict[str, Any]]:
    """Every seed's part file in ``parts_dir``, by seed."""
    parts = [p for p in (_read_part(f) for f in sorted(parts_dir.glob("s*.json"))) if p is not None]
    return sorted(parts, key=lambda p: p["seed"])


_OFF_SETTINGS: dict[str, Any] = {"rerank_signal": None, "lambda_rr": 0.0}


def rerank_settings(key: str) -> dict[str, Any]:
    """The (signal, λ_RR) a rerank choice stands for (``off``: the retriever's own order)."""
    return dict(_OFF_SETTINGS) if key == RERANK_OFF else RERANK_TRIALS[int(key)]


def _choice(method: str, chosen: Mapping[str, Any]) -> str | None:
    """The dev choices a method's test score was made with (None for the untuned references).

    A test score is stamped with it, so a changed choice (a new tuning option,
    more trials) rescores that method instead of keeping a stale number.
    """
    if method == RERANK_ONLY:
        return chosen.get("rerank_only")
    if method == FULL:
        return f"{chosen.get('rrra')}/{chosen.get('full_rerank')}"
    sampler = {v: k for k, v in METHOD_NAMES.items()}.get(method)
    return chosen.get(sampler) if sampler else None


def _chosen(trials: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The trial with the best dev nDCG@10 (the earliest of equals: the default comes first)."""
    best = None
    for key, t in trials.items():
        if best is None or t["dev"][PRIMARY] > trials[best]["dev"][PRIMARY]:
            best = key
    return best


# ----------------------------------------------------------------- one seed
def run_seed(
    cfg: FairConfig,
    name: str,
    seed: int,
    parts_dir: Path,
    progress: Callable[[str], None] = log.info,
    on_save: Callable[[], None] | None = None,
    wait_s: float = 0.0,
    command: str = "",
    workers: int = 1,
) -> dict[str, Any]:
    """Tune (the tuning seed) and score one seed, rewriting its part file after every trial and method.

    Another seed needs the tuning seed's choices: it scores the untuned
    baselines first, then waits up to ``wait_s`` for them (a process per seed
    can start at once), else stops with a one-line error. A seed another
    process is running waits for that process (then finds its work done).
    ``workers`` phase-3 runs train at once (:func:`_trained`); each keeps its settings and seed.
    """
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    parts_dir.mkdir(parents=True, exist_ok=True)
    with locked(parts_dir / f".s{seed}.lock"):
        return _run_seed(cfg, name, seed, parts_dir, progress, on_save, wait_s, command, workers)


def _run_seed(cfg, name, seed, parts_dir, progress, on_save, wait_s, command, workers) -> dict[str, Any]:  # noqa: ANN001
    path = part_path(parts_dir, seed)
    part = _read_part(path) or {"seed": seed, "config": config_to_dict(cfg), "tuning": {}, "chosen": {}, "test": {}}
    if not same_settings(part["config"], config_to_dict(cfg)):
        if not more_trials(part["config"], config_to_dict(cfg)):
            raise ConfigError(f"{path} was made with other settings; pass another --out, or move it aside")
        # More trials extend the tuning: finished trials are kept, and a changed choice rescores what it shapes.
        progress(f"seed {seed}: extending {part['config']['trials']} trials per method to {cfg.trials}")
        # The old choices are void until the tuning seed has run the new trials (another seed waits for them).
        part.update(config=config_to_dict(cfg), finished=False, chosen={})
    for method, entry in part["test"].items():  # scores made before they were stamped: with today's choices
        entry.setdefault("choice", _choice(method, part["chosen"]))
    if command and command not in part.setdefault("commands", []):
        part["commands"].append(command)
    t0 = time.perf_counter()

    def save() -> None:
        part["seconds"] = round(part.get("seconds", 0.0) + time.perf_counter() - save.t, 1)
        save.t = time.perf_counter()
        write_json_atomic(path, part, compact=True)  # per-query values: read by code, not people
        if on_save is not None:
            on_save()

    save.t = t0
    d = seed_data(cfg, seed)
    part.update(train_queries=len(d.train.qrels), dev_queries=len(d.dev.qrels), test_queries=len(d.test.qrels))
    progress(f"seed {seed}: phase 1 ({len(d.train.qrels)} training queries, {len(d.dev.qrels)} dev)")
    p1 = _phase1(cfg, name, d)
    enc1 = _enc(cfg, p1)
    progress(f"seed {seed}: phase 2")
    adapter, fit = _phase2(cfg, name, d, enc1)
    part["adapter_fit"] = fit
    save()

    if seed == cfg.tune_seed:
        _tune(cfg, name, d, p1, enc1, adapter, part, save, progress, workers)
    else:
        _score_on_test(cfg, name, d, p1, enc1, adapter, None, part, save, progress, workers)  # untuned baselines
        part["chosen"] = _wait_for_choices(cfg, parts_dir, seed, wait_s, progress)
        save()
    _score_on_test(cfg, name, d, p1, enc1, adapter, part["chosen"], part, save, progress, workers)
    part["finished"] = True
    save()
    return part


def _wait_for_choices(
    cfg: FairConfig, parts_dir: Path, seed: int, wait_s: float, progress: Callable[[str], None]
) -> dict[str, Any]:
    """The tuning seed's choices, waiting while its process is still tuning (up to ``wait_s``)."""
    deadline = time.monotonic() + wait_s
    while True:
        first = _read_part(part_path(parts_dir, cfg.tune_seed))
        if first and _tuning_finished(cfg, first):
            return dict(first["chosen"])
        if time.monotonic() >= deadline:
            raise ConfigError(
                f"seed {seed} needs the tuning seed {cfg.tune_seed}'s choices: run that seed first (or pass --wait)"
            )
        progress(f"seed {seed}: waiting for seed {cfg.tune_seed} to finish tuning")
        time.sleep(min(60.0, max(1.0, deadline - time.monotonic())))


def same_settings(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Two configs describe the same comparison (which seeds a process runs does not matter)."""
    return {k: v for k, v in a.items() if k != "seeds"} == {k: v for k, v in b.items() if k != "seeds"}


def more_trials(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """``new`` is ``old`` with more trials per method (the finished ones are the first of the new ones)."""
    return new.get("trials", 0) > old.get("trials", 0) and same_settings({**old, "trials": new["trials"]}, new)


def full_rerank_choice(
    run: Mapping[str, Mapping[str, float]],
    signals: Mapping[str, Any],
    qrels: Mapping[str, Mapping[str, int]],
    trials: list[dict[str, Any]],
) -> RerankChoice:
    """Full RRRA's rerank by the per-run rule over ``trials`` (per-query dev nDCG@10, Holm-corrected test)."""
    settings = [RerankSetting(t["rerank_signal"], float(t["lambda_rr"])) for t in trials]
    rule = RerankChoiceConfig(settings=",".join(f"{s.signal}:{s.lambda_rr}" for s in settings), metric=PRIMARY)
    off, per = score_settings(run, signals, qrels, settings, PRIMARY)
    return choose_rerank(off, per, rule)


def _trial_key(choice: RerankChoice, trials: list[dict[str, Any]]) -> str:
    """The trial key a choice stands for (``off`` when it is off)."""
    if not choice.on:
        return RERANK_OFF
    return next(
        str(i)
        for i, t in enumerate(trials)
        if (t["rerank_signal"], float(t["lambda_rr"])) == (choice.signal, choice.lambda_rr)
    )


def _tuning_finished(cfg: FairConfig, part: Mapping[str, Any]) -> bool:
    """The tuning seed has chosen every method with *these* trials (not a smaller grid run before)."""
    if (part.get("config") or {}).get("trials") != cfg.trials:
        return False
    if any(len(part.get("tuning", {}).get(m, {})) < cfg.trials for m in cfg.methods):
        return False
    full = ("full_rerank",) if "rrra" in cfg.methods else ()  # full RRRA's rerank is tuned on RRRA's encoder
    if full and part.get("chosen", {}).get("full_rerank") != RERANK_RULE:
        return False  # chosen by an older rule (the best dev mean, another level): chosen again, no retraining
    return all(m in part.get("chosen", {}) for m in (*cfg.methods, "rerank_only", *full))


def _tune(cfg, name, d, p1, enc1, adapter, part, save, progress, workers) -> None:  # noqa: ANN001 - one call site
    """Every method's trials on dev; a trial already in the part file is not rerun."""
    tuning = part["tuning"]
    dev1 = _retrieval(cfg, p1, d.dev)
    part["dev_phase1"] = _dev_scores(dev1.run, d.dev)
    signals = _signals(cfg, adapter, dev1)
    tuning["rerank_only"] = {
        str(i): {"settings": t, "dev": _dev_scores(_reranked(dev1, signals, t), d.dev)}
        for i, t in enumerate(RERANK_TRIALS[: cfg.trials])
    }
    part["chosen"]["rerank_only"] = _chosen(tuning["rerank_only"])
    save()
    pending = [(m, i) for m in cfg.methods for i in range(cfg.trials) if str(i) not in tuning.setdefault(m, {})]
    for method, i, folder in _trained(cfg, name, d, enc1, adapter, pending, workers, progress):
        dev = _dev_scores(_retrieval(cfg, folder, d.dev).run, d.dev)
        tuning[method][str(i)] = {"settings": TRIALS[method][i], "dev": dev, "run": Path(folder).name}
        progress(f"seed {d.seed}: {method}, trial {i + 1}: dev {PRIMARY} {dev[PRIMARY]:.4f}")
        save()
    for method in cfg.methods:
        part["chosen"][method] = _chosen(tuning[method])
    save()
    if "rrra" in cfg.methods:
        # Full RRRA reranks the chosen RRRA encoder with its jointly trained adapter: its six trials on dev, for
        # the tuning table; whether a seed reranks is the per-run rule's, on that seed's dev split (_score_on_test).
        # The run is trained again if its folder is gone (keyed by its settings: the same folder).
        folder = _phase3(cfg, name, d, enc1, adapter, "rrra", int(part["chosen"]["rrra"]))
        res = _retrieval(cfg, folder, d.dev)
        signals = _signals(cfg, f"{folder}/adapter", res)
        tuning["full_rerank"] = {
            RERANK_OFF: {"settings": _OFF_SETTINGS, "dev": _dev_scores(res.run, d.dev)},
            **{
                str(i): {"settings": t, "dev": _dev_scores(_reranked(res, signals, t), d.dev)}
                for i, t in enumerate(RERANK_TRIALS[: cfg.trials])
            },
        }
        part["chosen"]["full_rerank"] = RERANK_RULE
    save()


def _seed_full_rerank(cfg: FairConfig, folder: str, d: SeedData) -> RerankChoice:
    """Full RRRA's rerank for one seed: the per-run rule on its RRRA encoder's retrieval of its own dev split."""
    res = _retrieval(cfg, folder, d.dev)
    return full_rerank_choice(
        res.run, _signals(cfg, f"{folder}/adapter", res), d.dev.qrels, RERANK_TRIALS[: cfg.trials]
    )


def _score_on_test(cfg, name, d, p1, enc1, adapter, chosen, part, save, progress, workers) -> None:  # noqa: ANN001
    """The chosen settings, each evaluated once on the test split; a method already scored is not redone."""
    test = part["test"]

    def current(method: str) -> bool:
        return method in test and test[method].get("choice") == _choice(method, chosen or {})

    def score(method: str, make: Callable[[], Mapping[str, Mapping[str, float]]], force: bool = False) -> None:
        if current(method) and not force:
            return
        progress(f"seed {d.seed}: scoring {method} on {cfg.test_split}")
        test[method] = {**_test_scores(make(), d.test), "choice": _choice(method, chosen or {})}
        save()

    score("BM25", lambda: bm25_run(d.test.corpus, d.test.queries, k=100))
    score("zero-shot", lambda: _retrieval(cfg, cfg.model, d.test).run)
    res1 = _retrieval(cfg, p1, d.test)
    score("phase 1 (in-batch)", lambda: res1.run)
    if chosen is None:
        return
    rerank_only = rerank_settings(chosen["rerank_only"])
    score(RERANK_ONLY, lambda: _reranked(res1, _signals(cfg, adapter, res1), rerank_only))
    unscored = [m for m in cfg.methods if not current(METHOD_NAMES[m]) or (m == "rrra" and not current(FULL))]
    if workers > 1:  # the chosen runs this seed still lacks, trained side by side before they are scored in turn
        items = [(m, int(chosen[m])) for m in unscored]
        for _ in _trained(cfg, name, d, enc1, adapter, items, workers, progress):
            pass
    grads = part.setdefault("gradients", {})
    for method in cfg.methods:
        label = METHOD_NAMES[method]
        # Full RRRA and resampling only are scored together, from one run: a run trained again (its folder gone)
        # may differ from the one the old resampling-only score came from.
        both = method == "rrra" and not current(FULL)
        if current(label) and label in grads and not both:
            continue  # scored with today's choices: its run is not needed (nor trained again if it is gone)
        folder = _phase3(cfg, name, d, enc1, adapter, method, int(chosen[method]))
        # What the sampler fed the encoder (read from the run's log), again whenever the method is (re)scored.
        if label not in grads or not current(label) or both:
            grads[label] = gradient_summary(Path(folder))
            save()
        res = _retrieval(cfg, folder, d.test)
        score(label, lambda res=res: res.run, force=both)
        if both:
            progress(f"seed {d.seed}: full RRRA's rerank by the per-run rule on this seed's dev split")
            choice = _seed_full_rerank(cfg, folder, d)
            key = _trial_key(choice, RERANK_TRIALS[: cfg.trials])
            part["full_rerank_choice"] = {
                **{k: v for k, v in choice.as_dict().items() if k != "dev_queries"},
                "key": key,
            }
            progress(f"seed {d.seed}: full RRRA's rerank {choice.summary()}")
            full = rerank_settings(key)
            score(
                FULL,
                lambda res=res, folder=folder, full=full: _reranked(res, _signals(cfg, f"{folder}/adapter", res), full),
                force=True,
            )


# ----------------------------------------------------------------- the result
def _best_baseline(
    table: Mapping[str, Mapping[str, Any]], metric: str, among: tuple[str, ...] = BASELINES
) -> str | None:
    """The baseline with the highest test mean: the strongest opponent, so the test is conservative for RRRA."""
    scored = [(table[b][metric]["mean"], b) for b in among if b in table and metric in table[b]]
    return max(scored)[1] if scored else None


def _versus(parts: list[dict[str, Any]], control: str, treatment: str, metric: str) -> dict[str, Any]:
    both = [p for p in parts if control in p["test"] and treatment in p["test"]]
    key = metric if metric != "answer_recall@1" else "AnswerRecall@1"
    test = paired_by_query(
        [p["test"][control]["per_query"].get(key, {}) for p in both],
        [p["test"][treatment]["per_query"].get(key, {}) for p in both],
    )
    return {"control": control, "treatment": treatment, "metric": metric, "seeds": len(both), **test}


def _summary(table, parts, metric: str, table_key: str, among=BASELINES) -> dict[str, Any] | None:  # noqa: ANN001
    best = _best_baseline(table, table_key, among)
    if best is None or FULL not in table:
        return None
    test = _versus(parts, best, FULL, metric)
    m, b = table[FULL][table_key]["mean"], table[best][table_key]["mean"]
    return {
        "metric": metric,
        "rrra": m,
        "best_baseline": best,
        "best_baseline_value": b,
        "delta": m - b,
        "p_value": test["p_t"],
        "seeds": min(table[FULL][table_key]["n"], table[best][table_key]["n"]),
    }


def _gradients(parts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per method and gradient-log category: hard negatives sampled and their mean gradient, mean ± std over seeds."""
    out: dict[str, dict[str, Any]] = {}
    methods = list(dict.fromkeys(m for p in parts for m in p.get("gradients", {})))
    for m in methods:
        per_seed = [p["gradients"][m] for p in parts if m in p.get("gradients", {})]
        cats = list(dict.fromkeys(c for g in per_seed for c in g))
        out[m] = {c: {k: mean_std([g[c][k] for g in per_seed if c in g]) for k in ("count", "mean")} for c in cats}
    return out


def _full_rerank_choices(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per seed whose full RRRA is pooled: the per-run rule's choice, its dev evidence, test full − resampling only."""
    out = []
    for p in parts:
        record, test = p.get("full_rerank_choice") or {}, p["test"]
        if "key" not in record or FULL not in test or METHOD_NAMES["rrra"] not in test:
            continue  # chosen by an older rule (no per-seed record), or not scored with today's choices
        best = (record.get("dev") or {}).get(record.get("best") or "", {})
        out.append(
            {
                "seed": p["seed"],
                "choice": record["key"],
                "setting": RerankSetting(record.get("signal") or "p_rel", record["lambda_rr"]).name,
                "n_dev": record.get("n_dev"),
                "level": record.get("level"),
                "best": record.get("best"),
                "best_dev_gain": best.get("delta"),
                "best_p_holm": best.get("p_holm"),
                "test_full_minus_resampling": {
                    m: test[FULL]["metrics"][m] - test[METHOD_NAMES["rrra"]]["metrics"][m] for m in ("nDCG@10", "R@1")
                },
            }
        )
    return out


def summarize(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The result file's body from the part files (any number of finished methods and seeds)."""
    if not parts:
        raise ConfigError("no part file to summarize: run a seed first")
    cfg = replace(config_from_dict(FairConfig, parts[0]["config"]), seeds=tuple(p["seed"] for p in parts))
    tune = next((p for p in parts if p["seed"] == cfg.tune_seed), {})
    # Only scores made with the tuning seed's current choices are pooled: a seed not yet rescored after its
    # choices changed (more trials) shows as fewer seeds (n=k), never as a stale number.
    chosen = tune.get("chosen", {})
    parts = [
        {
            **p,
            "test": {m: v for m, v in p["test"].items() if v.get("choice", _choice(m, chosen)) == _choice(m, chosen)},
            "finished": bool(p.get("finished")) and p["config"].get("trials") == cfg.trials,
        }
        for p in parts
    ]
    methods = list(dict.fromkeys(m for p in parts for m in p["test"]))
    table: dict[str, dict[str, Any]] = {}
    for m in methods:
        done = [p["test"][m]["metrics"] for p in parts if m in p["test"]]
        table[m] = {k: mean_std([x[k] for x in done]) for k in done[0]}
    tests = []
    for metric, key in (("nDCG@10", "nDCG@10"), ("R@1", "R@1")) + (
        (("answer_recall@1", "AnswerRecall@1"),) if any("AnswerRecall@1" in t for t in table.values()) else ()
    ):
        best = _best_baseline(table, key)
        for treatment in (FULL, METHOD_NAMES["rrra"], RERANK_ONLY):
            if best and treatment in table:
                tests.append(_versus(parts, best, treatment, metric))
        reference = _best_baseline(table, key, REFERENCES)
        if reference and FULL in table:
            tests.append(_versus(parts, reference, FULL, metric))
    tuning = tune.get("tuning", {})
    out: dict[str, Any] = {
        "config": config_to_dict(cfg),
        "seeds_done": [p["seed"] for p in parts if p.get("finished")],
        "parts": [
            {
                "seed": p["seed"],
                "commands": p.get("commands", []),
                "finished": bool(p.get("finished")),
                "methods": list(p["test"]),
                "seconds": p.get("seconds"),
                "train_queries": p.get("train_queries"),
                "dev_queries": p.get("dev_queries"),
                "test_queries": p.get("test_queries"),
                "adapter_fit": p.get("adapter_fit"),
            }
            for p in parts
        ],
        "tuning": {"seed": cfg.tune_seed, "trials": tuning, "chosen": tune.get("chosen", {})},
        "dev_phase1": tune.get("dev_phase1"),
        "methods": table,
        "tests": tests,
        "gradients": _gradients(parts),
        "full_rerank_choices": _full_rerank_choices(parts),
        "summary": _summary(table, parts, "nDCG@10", "nDCG@10"),
        # Full RRRA against the strongest untuned reference (BM25, zero-shot or phase 1), in the same shape.
        "summary_reference": _summary(table, parts, "nDCG@10", "nDCG@10", REFERENCES),
    }
    if any("AnswerRecall@1" in t for t in table.values()):
        out["summary_ar1"] = _summary(table, parts, "answer_recall@1", "AnswerRecall@1")
    return out
