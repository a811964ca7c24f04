"""The RRRA benchmark: every baseline, full RRRA and each ablation on one dataset, per seed.

One seed runs, sharing everything that can be shared (the zero-shot and
phase-1 encoders and their cached embeddings):

1. plant: hide ``hide_fraction`` of each training query's positives (or, for
   SQuAD, use the answer-bearing paragraphs as real false negatives); the
   pipeline only ever reads the visible qrels;
2. BM25 and the zero-shot encoder on the test split;
3. phase 1 (in-batch negatives) on the visible training labels;
4. phase 2: the full adapter and each architecture/loss ablation, on frozen
   phase-1 embeddings; four-class F1 and false-negative detection for each,
   against the heuristic scores;
5. phase 3 from the phase-1 encoder with each sampler (uniform top-K, SimANS,
   margin filter, RRRA), evaluated with and without adapter reranking. Full
   RRRA reranks as every run does (:mod:`rrra_core.retrieval.rerank_choice`):
   a dev split carved from the visible training queries before phase 1 (no
   phase trains on it) chooses the rerank, on only past a Holm-corrected
   paired test over "off"; the reranking-only ablation keeps the fixed
   ``lambda_rr`` / ``rerank_signal``;
6. optionally, the human-in-the-loop curve: a simulated reviewer labels the top
   N of the adapter's review queue correctly, the labels are merged, and RRRA is
   retrained.

Hidden positives are passed to phase 3 only to label its gradient log; no
sampling or training decision reads them.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from rrra_core.adapter import AdapterFitConfig, LabelConfig, adapter_rerank_signal, load_adapter
from rrra_core.data.beir import Dataset, dataset_folder, load_dataset, load_has_answer
from rrra_core.data.corrections import apply_verdicts
from rrra_core.data.subsample import subsample_queries
from rrra_core.negatives.fn_detection import (
    detection_curves,
    detection_metrics,
    heuristic_scores,
    plant_false_negatives,
)
from rrra_core.negatives.mining import MiningConfig
from rrra_core.retrieval.bm25 import bm25_run
from rrra_core.retrieval.dense import retrieve
from rrra_core.retrieval.encoder import BiEncoder, EncoderConfig
from rrra_core.retrieval.evaluation import answer_recall, evaluate
from rrra_core.retrieval.rerank import rerank_run
from rrra_core.retrieval.rerank_choice import RerankChoiceConfig, choose_rerank_for_retrieval
from rrra_core.runtime.config import config_to_dict, opt
from rrra_core.runtime.config import section as config_section
from rrra_core.runtime.device import resolve_device
from rrra_core.runtime.errors import ConfigError
from rrra_core.runtime.keyed_runs import data_key, keyed_run
from rrra_core.runtime.runs import Run
from rrra_core.training.phase1 import Phase1Config, phase1_config_dict, train_phase1
from rrra_core.training.phase2 import Phase2Config, phase2_config_dict, rerank_dev_split, train_phase2
from rrra_core.training.phase3 import Phase3Config, phase3_config_dict, train_phase3

__all__ = [
    "BenchmarkConfig",
    "run_benchmark",
    "run_seed",
    "seed_truth",
    "variant_detection",
    "ABLATIONS",
    "SAMPLER_METHODS",
    "aggregate",
    "gradient_summary",
    "mean_std",
]

log = logging.getLogger(__name__)

TEST_METRICS = ("R@1", "R@5", "R@10", "R@50", "R@100", "nDCG@10", "RR@10")
SAMPLER_METHODS = {
    "uniform": "uniform top-K",
    "simans": "SimANS",
    "margin": "margin filter",
    "rrra": "RRRA resampling only",
}
# name -> (Phase2Config changes, AdapterFitConfig changes, LabelConfig changes)
ABLATIONS: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {
    "full": ({}, {}, {}),
    "no residual": ({"residual": False}, {}, {}),
    "no L_norm": ({}, {"lambda_norm": 0.0}, {}),
    "no ratio": ({}, {"class_weighting": False}, {}),
    "no init": ({"zero_init": False}, {}, {}),
    # Not the paper's ablations: our own design decisions, measured the same way.
    "random head": ({"head_init": "random"}, {}, {}),
    "outcome labels": ({}, {}, {"scheme": "outcome"}),
}
PAPER_ABLATIONS = ("full", "no residual", "no L_norm", "no ratio", "no init")


@dataclass
class BenchmarkConfig:
    """One benchmark; budget knobs are max lengths, epochs, K and max_train_queries."""

    dataset: str = opt("cranfield", "embedded dataset name or a BEIR folder")
    train_split: str = opt("train", "split the pipeline trains on")
    test_split: str = opt("test", "split the methods are scored on")
    hide_fraction: float = opt(
        0.3, "share of each training query's positives hidden as planted false negatives (0 = realistic setting)"
    )
    truth: str = opt(
        "planted",
        "false-negative truth: 'planted' (hidden positives), "
        "'answers' (SQuAD answer-bearing paragraphs, same article) or 'none'",
        choices=("planted", "answers", "none"),
    )
    seeds: tuple[int, ...] = opt((0, 1, 2), "seeds; each repeats planting and every training run")
    query_max_length: int = opt(48, "max word pieces per query")
    doc_max_length: int = opt(128, "max word pieces per document")
    top_k: int = opt(100, "candidate pool depth K for mining, labels and detection")
    p1_epochs: int = opt(1, "phase-1 epochs")
    p1_lr: float = opt(2e-5, "phase-1 learning rate")
    p2_epochs: int = opt(10, "phase-2 (adapter) epochs")
    p3_epochs: int = opt(1, "phase-3 epochs")
    batch_size: int = opt(32, "batch size for phases 1 and 3")
    n_hard: int = opt(1, "phase 3: hard negatives per query per step")
    n_random: int = opt(
        0,
        "phase 3: extra random corpus negatives per query per step "
        "(the other queries' in-batch positives already are random negatives)",
    )
    mu: float = opt(0.3, "adapter labels: share of visible positives masked as synthetic false negatives")
    label_scheme: str = opt("synthetic", "adapter label scheme: synthetic or outcome", choices=("synthetic", "outcome"))
    gamma: float = opt(2.0, "RRRA resampling exponent")
    hardness_temperature: float = opt(
        0.2, "RRRA: temperature of the softmax mapping scores to s_HN (large = closer to uniform over the top-K)"
    )
    lambda_rr: float = opt(1.0, "rerank strength")
    rerank_signal: str = opt(
        "qa", "adapter signal for reranking: p_rel or qa (qa: chosen on dev, results/fair_*)", choices=("p_rel", "qa")
    )
    relative_margin: float = opt(0.0, "margin filter: relative margin (0: chosen on dev, results/fair_*.md)")
    lambda_adapter: float = opt(0.1, "joint adapter-loss weight in phase 3")
    max_train_queries: int | None = opt(None, "subsample training queries (budget knob)")
    samplers: tuple[str, ...] = opt(("uniform", "simans", "margin", "rrra"), "phase-3 samplers to run")
    variants: tuple[str, ...] = opt(
        PAPER_ABLATIONS, "adapter variants to train in phase 2 ('full' is always run): " + ", ".join(ABLATIONS)
    )
    hitl: tuple[int, ...] = opt((), "human-in-the-loop review sizes N (first seed only); empty to skip")
    device: str = opt("auto", "auto, cpu or cuda")
    precision: str = opt("fp32", "encoding precision, as every encoding driver takes it (fp32, bf16 or fp16)")
    model: str = opt("minilm", "starting encoder")
    rerank: RerankChoiceConfig = config_section(
        RerankChoiceConfig,
        "full RRRA's rerank, chosen per seed on a dev split of the training queries (disabled: the fixed "
        "lambda_rr / rerank_signal, every training query trains)",
        prefix="rerank_",
    )


def _enc(cfg: BenchmarkConfig, model: str) -> EncoderConfig:
    return EncoderConfig(
        model=model,
        query_max_length=cfg.query_max_length,
        doc_max_length=cfg.doc_max_length,
        device=cfg.device,
        precision=cfg.precision,
    )


def _phase3_config(cfg: BenchmarkConfig, seed: int, sampler: str) -> Phase3Config:
    return Phase3Config(
        dataset=cfg.dataset,
        train_split=cfg.train_split,
        eval_split=cfg.test_split,
        sampler=sampler,
        epochs=cfg.p3_epochs,
        batch_size=cfg.batch_size,
        n_hard=cfg.n_hard,
        n_random=cfg.n_random,
        top_k=cfg.top_k,
        gamma=cfg.gamma,
        hardness_temperature=cfg.hardness_temperature,
        relative_margin=cfg.relative_margin,
        lambda_rr=cfg.lambda_rr,
        rerank_signal=cfg.rerank_signal,
        lambda_adapter=cfg.lambda_adapter,
        mu=cfg.mu,
        seed=seed,
        checkpoint_every=0,
        rerank=_NO_RUN_CHOICE,
    )


# The runs hold no dev split of their own: the seed carved one before phase 1, and full RRRA chooses on it.
_NO_RUN_CHOICE = RerankChoiceConfig(enabled=False)


def _without_disabled_choice(config: dict[str, Any]) -> dict[str, Any]:
    """A phase's settings as its folder's key, a disabled per-run rerank choice left out (as ``fair._keyed``).

    Switched off, its fields (the level, the grid) change nothing a run does: a new default level must not
    send every phase to train again.
    """
    phase = config.get("phase")
    if not isinstance(phase, dict) or (phase.get("rerank") or {}).get("enabled", True):
        return config
    return {**config, "phase": {k: v for k, v in phase.items() if k != "rerank"}}


def _subset(data: Dataset, qrels: dict[str, dict[str, int]]) -> Dataset:
    return replace(data, qrels=qrels, queries={q: data.queries[q] for q in qrels if q in data.queries})


def _test_metrics(run: Mapping[str, Mapping[str, float]], test: Dataset) -> dict[str, float]:
    metrics = evaluate(test.qrels, run)
    if test.answers:
        metrics.update(answer_recall(run, test.answers, {d: doc.text for d, doc in test.corpus.items()}))
    return metrics


def _truth(cfg: BenchmarkConfig, train: Dataset, seed: int) -> tuple[dict[str, dict[str, int]], dict[str, set[str]]]:
    """(visible qrels, false-negative truth) for one seed."""
    if cfg.truth == "planted" and cfg.hide_fraction > 0:
        return plant_false_negatives(train.qrels, cfg.hide_fraction, seed)
    if cfg.truth == "answers":
        folder = dataset_folder(cfg.dataset) / "answers"
        path = next(
            (
                p
                for p in (folder / f"{cfg.train_split}_has_answer.tsv.gz", folder / f"{cfg.train_split}_has_answer.tsv")
                if p.is_file()
            ),
            None,
        )
        if path is None:
            return dict(train.qrels), {}
        has = load_has_answer(path)
        # Same-article answer-bearing paragraphs: the cleaner subset (generic answers like "one" match anywhere).
        return dict(train.qrels), {q: {d for d, same in docs.items() if same} for q, docs in has.items()}
    return dict(train.qrels), {}


def seed_truth(cfg: BenchmarkConfig, seed: int) -> tuple[Dataset, dict[str, dict[str, int]], dict[str, set[str]]]:
    """(full training split, visible qrels, false-negative truth) for one seed, after the query subsample.

    Deterministic from the config and the seed, so the truth of a finished
    benchmark can be rebuilt from its results file (``scripts/detection_curves.py``).
    """
    train_full = load_dataset(cfg.dataset, cfg.train_split)
    visible, truth = _truth(cfg, train_full, seed)
    if cfg.max_train_queries is not None and cfg.max_train_queries < len(visible):
        keep = subsample_queries(visible, cfg.max_train_queries, seed)
        visible = {q: visible[q] for q in keep}
        truth = {q: truth[q] for q in keep if q in truth}
    return train_full, visible, truth


def _suspicion(
    pred: Any, truth: Mapping[str, set[str]], adapter_score: str
) -> tuple[np.ndarray, dict[str, np.ndarray], Any]:
    """(truth per labelled negative, each suspicion score, the labelled negatives) from a phase-2 predictions frame."""
    df = pred
    pos = df[df["label"] == 1].groupby("query_id")["score"].min()
    low = df.groupby("query_id")["score"].min()
    neg = df[df["label"] == 0].copy()
    neg["s_pos"] = neg["query_id"].map(pos).fillna(neg["query_id"].map(low))
    neg["truth"] = [d in truth.get(q, ()) for q, d in zip(neg["query_id"], neg["doc_id"])]
    h = heuristic_scores(neg["score"].to_numpy(), neg["s_pos"].to_numpy())
    scores = {
        "adapter": neg[adapter_score].to_numpy(),
        "retriever score": h["retriever"],
        "SimANS score": h["simans"],
        "margin score": h["margin"],
    }
    return neg["truth"].to_numpy(), scores, neg


def variant_detection(
    pred: Any, truth: Mapping[str, set[str]], variant: str, scheme: str
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, Any]], Any]:
    """(metrics, curve points, labelled negatives) of one adapter variant, keyed as the results file names them.

    Under the outcome label scheme the conditional readings mean something else
    (RRRA.md), so that variant is scored by P(rel) instead. The heuristic
    scores depend only on the phase-1 retriever, so they come with ``full`` only.
    """
    score = "p_rel" if scheme == "outcome" else "p_fn_given_neg"
    is_fn, scores, neg = _suspicion(pred, truth, score)
    named = {k: v for k, v in scores.items() if k != "adapter"} if variant == "full" else {}
    named[f"adapter {'P(rel)' if score == 'p_rel' else 'P(FN|neg)'} ({variant})"] = scores["adapter"]
    metrics = {k: detection_metrics(is_fn, v) for k, v in named.items()}
    curves = {k: c for k, v in named.items() if (c := detection_curves(is_fn, v)) is not None}
    return metrics, curves, neg


def gradient_summary(run_dir: Path) -> dict[str, dict[str, float]]:
    """Per category of the phase-3 gradient log (planted false negative, …): how many hard negatives were
    sampled and their gradient magnitudes ``p_j/τ`` (mean, median, p90), plus ``all``."""
    path = run_dir / "gradients.parquet"
    if not path.is_file():
        return {}
    df = pq.read_table(path).to_pandas()
    df = df[df["kind"] == "hard"]
    out = {}
    for cat, g in df.groupby("category"):
        out[cat] = {
            "count": int(len(g)),
            "mean": float(g["grad"].mean()),
            "median": float(g["grad"].median()),
            "p90": float(g["grad"].quantile(0.9)),
        }
    out["all"] = {
        "count": int(len(df)),
        "mean": float(df["grad"].mean()) if len(df) else float("nan"),
        "median": float(df["grad"].median()) if len(df) else float("nan"),
        "p90": float(df["grad"].quantile(0.9)) if len(df) else float("nan"),
    }
    return out


@dataclass
class _SeedRun:
    """One seed's shared state: its data, where results go, and the stage timer."""

    cfg: BenchmarkConfig
    seed: int
    tag: str
    progress: Callable[[str], None]
    train_full: Dataset
    visible: dict[str, dict[str, int]]
    truth: dict[str, set[str]]
    test: Dataset
    train: Dataset
    device: Any
    dev: Dataset | None = None  # the rerank's dev queries, held out of every phase (None: choice disabled)
    on_update: Callable[[dict[str, Any]], None] | None = None
    methods: dict[str, dict[str, float]] = field(default_factory=dict)
    # What the seed's result holds besides methods, filled in as the phases finish.
    sections: dict[str, Any] = field(
        default_factory=lambda: {"detection": {}, "detection_curves": {}, "adapter_f1": {}, "gradients": {}, "hitl": []}
    )
    timings: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    clock: float = field(default_factory=time.perf_counter)

    def tick(self, name: str) -> None:
        """Record the time since the last stage ended under ``name``."""
        self.timings[name] = round(time.perf_counter() - self.clock, 1)
        self.progress(f"seed {self.seed}: {name} done in {self.timings[name]:.0f}s")
        self.clock = time.perf_counter()

    def keyed(self, name: str, kind: str, config: dict[str, Any], train: Dataset | None = None, **extra: Any) -> Any:
        """The run folder of phase ``name`` under these settings: finished ones are reused, half ones resumed.

        The key covers the phase's settings, the exact training labels and the
        false-negative truth its gradient log is labelled with, so another
        sampler, seed or a restarted benchmark finds the phases already done.
        """
        key = {
            **_without_disabled_choice(config),
            "train_labels": data_key((train or self.train).qrels),
            "truth": data_key({q: dict.fromkeys(sorted(d), 1) for q, d in self.truth.items()}),
            **extra,
        }
        return keyed_run(f"{self.tag}-s{self.seed}-{name}", kind, key)

    def result(self, complete: bool) -> dict[str, Any]:
        """The seed's JSON-ready result so far (``complete`` once every stage has run)."""
        return {
            "seed": self.seed,
            "train_queries": len(self.train.qrels),
            "dev_queries": len(self.dev.qrels) if self.dev is not None else 0,
            "planted": int(sum(len(v) for v in self.truth.values())),
            "methods": dict(self.methods),
            **self.sections,
            "timings_s": dict(self.timings),
            "seconds": round(time.perf_counter() - self.started, 1),
            "complete": complete,
        }

    def score(self, name: str, run: Mapping[str, Mapping[str, float]]) -> None:
        """Score a method on the test split and hand the partial result on (a killed run leaves it readable)."""
        self.methods[name] = _test_metrics(run, self.test)
        if self.on_update:
            self.on_update(self.result(complete=False))


def _baselines(s: _SeedRun) -> None:
    """BM25 and the zero-shot encoder on the test split."""
    s.score("BM25", bm25_run(s.test.corpus, s.test.queries, k=100))
    s.tick("bm25")
    zero = BiEncoder.from_pretrained(s.cfg.model).to(s.device).eval()
    enc0 = _enc(s.cfg, s.cfg.model)
    res0 = retrieve(zero, s.test.corpus, s.test.queries, enc0, k=100, progress="zero-shot: encoding test corpus")
    s.score("zero-shot", res0.run)
    s.tick("zero-shot")


def _phase1(s: _SeedRun) -> tuple[Run, EncoderConfig, Any]:
    """Phase 1 on the visible labels, shared by everything after it: (run, its encoder config, test retrieval)."""
    cfg, enc0 = s.cfg, _enc(s.cfg, s.cfg.model)
    p1 = Phase1Config(
        dataset=cfg.dataset,
        train_split=cfg.train_split,
        eval_split=cfg.test_split,
        epochs=cfg.p1_epochs,
        batch_size=cfg.batch_size,
        lr=cfg.p1_lr,
        seed=s.seed,
        eval_k=100,
        checkpoint_every=0,
    )
    with s.keyed("phase1", "phase1", phase1_config_dict(enc0, p1, MiningConfig())) as (p1_run, done):
        if not done:
            train_phase1(p1_run, enc0, p1, train_data=s.train, eval_data=s.test)
    enc1 = _enc(cfg, str(p1_run.path))
    encoder = BiEncoder.from_pretrained(str(p1_run.path)).to(s.device).eval()
    res1 = retrieve(encoder, s.test.corpus, s.test.queries, enc1, k=100, progress="phase 1: encoding test corpus")
    s.score("phase 1 (in-batch)", res1.run)
    s.tick("phase 1")
    return p1_run, enc1, res1


def _rerank_scores(s: _SeedRun, adapter_dir: str | Path, res: Any) -> dict[str, dict[str, float]]:
    """``res``'s test retrieval reranked with the adapter in ``adapter_dir`` (its P(rel))."""
    adapter, _ = load_adapter(adapter_dir, device=s.device)
    signal = adapter_rerank_signal(
        adapter, res.run, res.query_ids, res.query_vectors, res.corpus.ids, res.corpus.vectors, s.cfg.rerank_signal
    )
    return rerank_run(res.run, signal, s.cfg.lambda_rr)


@dataclass
class _AdapterResults:
    """Phase 2 over the variants: adapter folders, four-class F1, detection, and the full adapter's queue."""

    config: Phase2Config
    adapters: dict[str, str] = field(default_factory=dict)
    f1: dict[str, dict[str, Any]] = field(default_factory=dict)
    detection: dict[str, dict[str, float]] = field(default_factory=dict)
    curves: dict[str, dict[str, Any]] = field(default_factory=dict)
    full_queue: Any = None
    runs: dict[str, str] = field(default_factory=dict)  # variant -> run id (keyed folders carry a settings hash)


def _phase2(s: _SeedRun, enc1: EncoderConfig, res1: Any) -> _AdapterResults:
    """The full adapter and its ablations on frozen phase-1 embeddings, each also as a reranker of phase 1."""
    cfg = s.cfg
    unknown = [v for v in cfg.variants if v not in ABLATIONS]
    if unknown:
        raise ConfigError(f"unknown adapter variant(s) {', '.join(unknown)}; choose from {', '.join(ABLATIONS)}")
    out = _AdapterResults(
        Phase2Config(
            dataset=cfg.dataset,
            train_split=cfg.train_split,
            labels=LabelConfig(scheme=cfg.label_scheme, mu=cfg.mu, top_k=cfg.top_k, seed=s.seed),
            fit=AdapterFitConfig(epochs=cfg.p2_epochs, seed=s.seed),
            rerank=_NO_RUN_CHOICE,
        )
    )
    for name in dict.fromkeys(("full", *cfg.variants)):
        sw_changes, fit_changes, label_changes = ABLATIONS[name]
        labels = replace(out.config.labels, **label_changes)
        p2 = replace(out.config, **sw_changes, labels=labels, fit=replace(out.config.fit, **fit_changes))
        with s.keyed(f"phase2-{name.replace(' ', '_')}", "phase2", phase2_config_dict(enc1, p2)) as (run2, done):
            m2 = run2.read_json("metrics.json") if done else train_phase2(run2, enc1, p2, train_data=s.train)
        out.adapters[name] = str(run2.file("adapter"))
        out.runs[name] = run2.id
        out.f1[name] = {"macro_f1": m2["after"]["macro_f1"], **{f"F1 {c}": v for c, v in m2["after"]["f1"].items()}}
        predictions = pq.read_table(run2.file("predictions.parquet")).to_pandas()
        det, cur, queue = variant_detection(predictions, s.truth, name, labels.scheme)
        out.detection.update(det)
        out.curves.update(cur)
        s.sections.update(detection=out.detection, detection_curves=out.curves, adapter_f1=out.f1)
        if name == "full":
            out.full_queue = queue
        label = "RRRA reranking only" if name == "full" else f"ablation: {name} (phase 1 + rerank)"
        s.score(label, _rerank_scores(s, out.adapters[name], res1))
    s.tick("phase 2")
    return out


def _phase3(s: _SeedRun, enc1: EncoderConfig, adapter_dir: str) -> Run | None:
    """Phase 3 with each sampler from the phase-1 encoder (gradient summaries go to the seed's result); the RRRA run."""
    gradients: dict[str, Any] = {}
    rrra_run = None
    for sampler in s.cfg.samplers:
        p3 = _phase3_config(s.cfg, s.seed, sampler)
        with s.keyed(f"phase3-{sampler}", "phase3", phase3_config_dict(enc1, p3, adapter_dir)) as (run3, done):
            if not done:
                train_phase3(
                    run3,
                    enc1,
                    p3,
                    adapter_dir=adapter_dir,
                    train_data=s.train,
                    eval_data=s.test,
                    planted_false_negatives=s.truth,
                )
        gradients[sampler] = gradient_summary(run3.path)
        s.sections["gradients"] = gradients
        enc3 = BiEncoder.from_pretrained(str(run3.path)).to(s.device).eval()
        res3 = retrieve(enc3, s.test.corpus, s.test.queries, _enc(s.cfg, str(run3.path)), k=100)
        s.score(SAMPLER_METHODS[sampler], res3.run)
        if sampler == "rrra":
            s.score("RRRA (resampling + reranking)", _full_rrra(s, run3, res3))
            rrra_run = run3
        s.tick(f"phase 3 {sampler}")
    return rrra_run


def _full_rrra(s: _SeedRun, run3: Run, res3: Any) -> dict[str, dict[str, float]]:
    """Full RRRA's test ranking: ``res3`` reranked as the rule chooses on the seed's dev split (its record kept)."""
    if s.dev is None:
        return _rerank_scores(s, run3.file("adapter"), res3)
    encoder = BiEncoder.from_pretrained(str(run3.path)).to(s.device).eval()
    dev = retrieve(encoder, s.dev.corpus, s.dev.queries, _enc(s.cfg, str(run3.path)), k=s.cfg.rerank.k, progress=False)
    adapter, _ = load_adapter(run3.file("adapter"), device=s.device)
    choice = choose_rerank_for_retrieval(adapter, dev, s.dev.qrels, s.cfg.rerank)
    record = {k: v for k, v in choice.as_dict().items() if k != "dev_queries"}
    s.sections.setdefault("rerank_choice", {})[run3.id] = record
    s.progress(f"seed {s.seed}: full RRRA's rerank {choice.summary()}")
    if not choice.on:
        return {q: dict(docs) for q, docs in res3.run.items()}
    signal = adapter_rerank_signal(
        adapter, res3.run, res3.query_ids, res3.query_vectors, res3.corpus.ids, res3.corpus.vectors, choice.signal
    )
    return rerank_run(res3.run, signal, choice.lambda_rr)


def _hitl(s: _SeedRun, enc1: EncoderConfig, p2: _AdapterResults) -> list[dict[str, Any]]:
    """Human in the loop: a perfect reviewer labels the top N of the review queue, labels merge, RRRA retrains."""
    keys = ("nDCG@10", "R@1", "R@10", "R@100")
    if not s.cfg.hitl or p2.full_queue is None or "rrra" not in s.cfg.samplers:
        return []
    queue = p2.full_queue.sort_values("p_fn_given_neg", ascending=False, kind="stable")
    rows: list[dict[str, Any]] = []
    for n in s.cfg.hitl:
        if n == 0:
            value = s.methods["RRRA (resampling + reranking)"]
            rows.append({"N": 0, "found": 0, **{k: value[k] for k in keys}})
            continue
        top = queue.head(n)
        verdicts = {(q, d): bool(tr) for q, d, tr in zip(top["query_id"], top["doc_id"], top["truth"])}
        corrections = apply_verdicts(s.visible, verdicts)
        # The dev queries stay out of training here too: they choose full RRRA's rerank.
        train_n = _subset(s.train_full, {q: v for q, v in corrections.qrels.items() if q in s.train.qrels})
        # The verdicts shape both phases (known negatives stay negatives), so they are part of the key.
        by_query: dict[str, dict[str, int]] = {}
        for (q, d), v in verdicts.items():
            by_query.setdefault(q, {})[d] = int(v)
        judged = data_key(by_query)
        with s.keyed(f"hitl{n}-phase2", "phase2", phase2_config_dict(enc1, p2.config), train_n, verdicts=judged) as (
            run2,
            done,
        ):
            if not done:
                train_phase2(run2, enc1, p2.config, train_data=train_n, corrections=corrections)
        p3 = _phase3_config(s.cfg, s.seed, "rrra")
        adapter_dir = str(run2.file("adapter"))
        with s.keyed(
            f"hitl{n}-phase3", "phase3", phase3_config_dict(enc1, p3, adapter_dir), train_n, verdicts=judged
        ) as (run3, done):
            m3 = (
                run3.read_json("metrics.json")
                if done
                else train_phase3(
                    run3,
                    enc1,
                    p3,
                    adapter_dir=adapter_dir,
                    train_data=train_n,
                    eval_data=s.test,
                    corrections=corrections,
                    planted_false_negatives=s.truth,
                )
            )
        if s.dev is not None:  # full RRRA as the rule reranks it, not the run's fixed evaluation
            encoder = BiEncoder.from_pretrained(str(run3.path)).to(s.device).eval()
            res3 = retrieve(encoder, s.test.corpus, s.test.queries, _enc(s.cfg, str(run3.path)), k=100, progress=False)
            m3 = {"after": evaluate(s.test.qrels, _full_rrra(s, run3, res3))}
        rows.append({"N": n, "found": sum(verdicts.values()), **{k: m3["after"][k] for k in keys}})
        s.sections["hitl"] = rows
        s.tick(f"hitl N={n}")
    s.sections["hitl"] = rows
    return rows


def run_seed(
    cfg: BenchmarkConfig,
    seed: int,
    tag: str,
    progress: Callable[[str], None] = log.info,
    on_update: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Everything for one seed; returns a JSON-ready dict.

    Every phase is a run folder keyed by its settings under ``tag`` (see
    :meth:`_SeedRun.keyed`), so a rerun reuses what a killed or earlier run
    finished; ``on_update`` gets the partial result after every scored method.
    """
    train_full, visible, truth = seed_truth(cfg, seed)
    train, dev = rerank_dev_split(_subset(train_full, visible), replace(cfg.rerank, seed=seed))
    s = _SeedRun(
        cfg=cfg,
        seed=seed,
        tag=tag,
        progress=progress,
        train_full=train_full,
        visible=visible,
        truth=truth,
        test=load_dataset(cfg.dataset, cfg.test_split),
        train=train,
        dev=dev,
        device=resolve_device(cfg.device),
        on_update=on_update,
    )
    _baselines(s)
    p1_run, enc1, res1 = _phase1(s)
    p2 = _phase2(s, enc1, res1)
    rrra_run = _phase3(s, enc1, p2.adapters["full"])
    _hitl(s, enc1, p2)
    runs = {"phase1": p1_run.id, "phase2": p2.runs, "rrra": rrra_run.id if rrra_run else None}
    return {**s.result(complete=True), "runs": runs}


def mean_std(values: list[float]) -> dict[str, float]:
    """``{mean, std (ddof=1; 0 for one value), n}`` over the values that are not None or NaN."""
    arr = np.array(
        [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))], dtype=np.float64
    )
    if arr.size == 0:
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if arr.size > 1 else 0.0, "n": int(arr.size)}


def aggregate(seeds: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± std over seeds for every method metric, detection score and F1."""
    out: dict[str, Any] = {}
    for section in ("methods", "detection", "adapter_f1"):
        # A section a file lacks (a detection-only recomputation has no methods) aggregates to empty.
        per_seed = [s.get(section, {}) for s in seeds]
        names = list(dict.fromkeys(n for sec in per_seed for n in sec))
        out[section] = {}
        for name in names:
            keys = list(dict.fromkeys(k for sec in per_seed if name in sec for k in sec[name]))
            out[section][name] = {k: mean_std([sec[name].get(k) for sec in per_seed if name in sec]) for k in keys}
    return out


def run_benchmark(
    cfg: BenchmarkConfig, tag: str, on_seed: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """All seeds; ``on_seed`` gets the result so far after every scored method (for partial results files).

    The partial result carries ``"complete": False`` and its unfinished seed
    with what it has scored; the same command resumes it, reusing every phase.
    """
    per_seed: list[dict[str, Any]] = []

    def result(current: list[dict[str, Any]], complete: bool) -> dict[str, Any]:
        return {"config": config_to_dict(cfg), "seeds": current, "summary": aggregate(current), "complete": complete}

    def partial(seed_result: dict[str, Any]) -> None:
        if on_seed:
            on_seed(result([*per_seed, seed_result], complete=False))

    for i, seed in enumerate(cfg.seeds):
        seed_cfg = cfg if i == 0 else replace(cfg, hitl=())
        per_seed.append(run_seed(seed_cfg, seed, tag, on_update=partial))
        if on_seed:
            on_seed(result(per_seed, complete=i == len(cfg.seeds) - 1))
    return result(per_seed, complete=True)
