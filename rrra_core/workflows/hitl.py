"""The human-in-the-loop benchmark: how much retrieval quality each reviewed item buys back.

A collection with a share of its training positives hidden (planted false
negatives, :func:`~rrra_core.negatives.fn_detection.plant_false_negatives`)
stands in for an index nobody labelled fully. Per seed:

1. **base**: the adapter (phase 2) trained on the visible labels over the
   frozen encoder, scoring every training query's top-K: the review queue a
   user of the app starts from;
2. **review**: a simulated oracle reviewer walks that queue in each order
   (``learnt``, refit every ``refit_every`` verdicts as the app does, and
   ``retriever`` score for comparison) and answers from the hidden truth;
3. **retrain**: the product's own retrain job (:func:`rrra_core.workflows.retrain.retrain`,
   phase 2 + phase 3 with RRRA sampling) on the visible labels merged with
   the first N verdicts, for every N; with no verdict (the *lower* bound) and
   with every hidden positive restored (the *upper* bound: nothing hidden).
   Every retrain has the same settings and budget.

Each point's result goes into the seed's part file the moment it finishes,
so a killed benchmark resumes where it stopped (:func:`run_seed`);
:func:`summarize` turns the parts into means, standard deviations, the
fraction of the lost nDCG@10 recovered and paired tests over test queries.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rrra_core.analysis.significance import paired_by_query
from rrra_core.runtime.config import config_from_dict, config_to_dict, opt
from rrra_core.runtime.errors import ConfigError
from rrra_core.runtime.runs import atomic_path
from rrra_core.workflows.benchmark import mean_std

__all__ = [
    "HitlConfig",
    "PRIMARY_METRIC",
    "base_run_id",
    "build_hidden_base",
    "review_sessions",
    "plan_points",
    "run_seed",
    "read_part",
    "summarize",
]

log = logging.getLogger(__name__)

#: The metric the recovered fraction and the significance tests are read on.
PRIMARY_METRIC = "nDCG@10"
REPORTED = ("nDCG@10", "R@1", "R@10", "R@100")


@dataclass
class HitlConfig:
    """One human-in-the-loop benchmark: the collection, what is hidden, the review budgets and the retrain budget."""

    dataset: str = opt("cranfield", "embedded dataset name or a BEIR folder (its train and eval splits)")
    hide_fraction: float = opt(0.3, "share of each training query's positives hidden from training")
    budgets: tuple[int, ...] = opt((25, 50, 100, 200, 400), "review sizes N")
    orders: tuple[str, ...] = opt(("learnt", "retriever"), "queue orders the simulated reviewer walks")
    compare_at: tuple[int, ...] = opt(
        (50, 200), "N at which the orders after the first are retrained too (the first order: every N)"
    )
    refit_every: int = opt(10, "verdicts between two refits of the learnt order (as the app's default)")
    model: str = opt("minilm", "the frozen base encoder (and phase 3's starting point)")
    doc_max_length: int = opt(128, "max word pieces per document")
    top_k: int = opt(100, "candidates per training query in the review queue")
    max_train_queries: int | None = opt(None, "subsample training queries (the quick variant)")
    adapter_epochs: int = opt(10, "phase-2 epochs, for the base and every retrain")
    p3_epochs: int = opt(1, "phase-3 epochs of every retrain")
    p3_max_steps: int = opt(0, "phase-3 step cap of every retrain; 0 = all of p3_epochs")
    p3_batch_size: int = opt(32, "phase-3 queries per step")
    p3_lr: float = opt(2e-5, "phase-3 encoder learning rate")
    eval_split: str = opt("test", "the split every retrain is scored on")
    variant: str = opt("rerank", "the scored ranking: rerank (encoder + adapter, what the app serves) or no_rerank")
    prefix: str = opt("hitl", "run ids are <prefix>-<dataset>-h<hide%>-s<seed>-<point>")

    def __post_init__(self) -> None:
        if not 0 < self.hide_fraction < 1:
            raise ConfigError(f"hide_fraction must be in (0, 1), got {self.hide_fraction}")
        if not self.budgets or any(int(b) < 1 for b in (*self.budgets, *self.compare_at)):
            raise ConfigError("budgets and compare_at must be positive review sizes")
        self.budgets = tuple(sorted({int(b) for b in self.budgets}))
        self.orders = tuple(self.orders)
        from rrra_core.review.orders import ORDERS

        unknown = [o for o in self.orders if o not in ORDERS]
        if unknown:
            raise ConfigError(f"unknown order {unknown[0]!r}; choose from {', '.join(ORDERS)}")
        if self.variant not in ("rerank", "no_rerank"):
            raise ConfigError(f"variant must be rerank or no_rerank, got {self.variant!r}")
        if not self.eval_split:
            raise ConfigError("the benchmark needs an eval split")

    def tag(self, seed: int) -> str:
        name = Path(self.dataset).name if ("/" in self.dataset or "\\" in self.dataset) else self.dataset
        return f"{self.prefix}-{name}-h{round(self.hide_fraction * 100)}-s{seed}"


def base_run_id(cfg: HitlConfig, seed: int) -> str:
    return f"{cfg.tag(seed)}-base"


# ----------------------------------------------------------------- the data
def seed_labels(cfg: HitlConfig, seed: int) -> tuple[Any, dict[str, dict[str, int]], dict[str, set[str]]]:
    """(training split, visible qrels, hidden positives) for one seed, after the query subsample."""
    from rrra_core.data.beir import load_dataset
    from rrra_core.data.subsample import subsample_queries
    from rrra_core.negatives.fn_detection import plant_false_negatives

    train = load_dataset(cfg.dataset, "train")
    keep = subsample_queries(train.qrels, cfg.max_train_queries, seed)
    qrels = {q: train.qrels[q] for q in keep}
    visible, hidden = plant_false_negatives(qrels, cfg.hide_fraction, seed)
    train = replace(train, qrels=qrels, queries={q: train.queries[q] for q in qrels})
    return train, visible, {q: set(v) for q, v in hidden.items() if v}


def build_hidden_base(
    run_id: str, dataset: str, hide_fraction: float, seed: int, *, epochs: int = 10, top_k: int = 100, **more: Any
) -> str:
    """A phase-2 run on ``dataset``'s training labels with ``hide_fraction`` of the positives hidden.

    Kept if it already has its predictions (a killed build resumes). ``more``
    may name ``model``, ``doc_max_length`` and ``max_train_queries``.
    """
    from rrra_core.adapter import AdapterFitConfig, LabelConfig
    from rrra_core.retrieval.encoder import EncoderConfig
    from rrra_core.runtime.runs import create_run, open_run
    from rrra_core.training.phase2 import Phase2Config, phase2_config_dict, train_phase2

    cfg = HitlConfig(
        dataset=dataset,
        hide_fraction=hide_fraction,
        adapter_epochs=epochs,
        top_k=top_k,
        **{k: v for k, v in more.items() if v is not None},
    )
    enc = EncoderConfig(model=cfg.model, query_max_length=48, doc_max_length=cfg.doc_max_length)
    p2 = Phase2Config(
        dataset=dataset,
        train_split="train",
        max_train_queries=cfg.max_train_queries,
        subsample_seed=seed,
        labels=LabelConfig(mu=0.3, top_k=top_k, seed=seed),
        fit=AdapterFitConfig(epochs=epochs, seed=seed),
    )
    try:
        run = open_run(run_id)
    except ConfigError:
        run = create_run("phase2", phase2_config_dict(enc, p2), run_id=run_id)
    if run.file("predictions.parquet").is_file():
        return run_id
    train, visible, _ = seed_labels(cfg, seed)
    train_phase2(run, enc, p2, train_data=replace(train, qrels=visible))
    return run_id


# ----------------------------------------------------------------- the review
def review_sessions(
    cfg: HitlConfig, seed: int, base_dir: Path, train: Any, visible: Mapping, hidden: Mapping
) -> dict[str, list[tuple[str, str, bool]]]:
    """``{order: [(query_id, doc_id, truth), ...]}``: what the oracle reviewer saw, in order, up to the largest N."""
    import pandas as pd

    from rrra_core.review.features import candidates_frame, load_or_build_features
    from rrra_core.review.learner import LearnerConfig
    from rrra_core.review.orders import make_order
    from rrra_core.review.simulate import SimConfig, is_adaptive, simulate

    frame = candidates_frame(pd.read_parquet(base_dir / "predictions.parquet"), visible, hidden)
    corpus = {d: (doc.title, doc.text) for d, doc in train.corpus.items()}
    frame = load_or_build_features(frame, corpus, train.queries, base_dir / "review_features.parquet")
    sim = SimConfig(budget=max(cfg.budgets), refit_every=cfg.refit_every, seed=seed, pool_metrics=False)
    out = {}
    for order in cfg.orders:
        res = simulate(frame, make_order(order, frame, LearnerConfig(), seed), sim, adaptive=is_adaptive(order))
        rows = frame.iloc[res.shown]
        out[order] = list(zip(rows["query_id"], rows["doc_id"], map(bool, rows["truth"]), strict=True))
    return out


@dataclass(frozen=True)
class Point:
    """One retrain: its name, the order and N it stands for, and the verdicts it merges."""

    name: str
    order: str | None
    n: int
    verdicts: dict[tuple[str, str], bool]


def plan_points(cfg: HitlConfig, sessions: Mapping[str, list], hidden: Mapping[str, set[str]]) -> list[Point]:
    """The retrains of one seed, in the order that makes a cut-short benchmark most useful.

    The bounds first (they frame the curve), then the first order at the
    target N = 200 and at the other N, then the comparison orders at
    ``compare_at``. A benchmark stopped early then lacks only the last rows,
    the same ones in every seed.
    """
    upper = {(q, d): True for q, ds in hidden.items() for d in ds}
    points = [Point("lower", None, 0, {}), Point("upper", None, len(upper), upper)]
    first, *others = cfg.orders
    plan = [(first, n) for n in sorted(cfg.budgets, key=lambda n: (n != 200, n))]
    plan += [(o, n) for o in others for n in sorted(cfg.compare_at, key=lambda n: (n != 200, n))]
    for order, n in plan:
        seen = sessions[order][:n]
        points.append(Point(f"{order}-n{n}", order, n, {(q, d): t for q, d, t in seen}))
    return points


# ----------------------------------------------------------------- the parts file
def read_part(path: Path) -> dict[str, Any]:
    """A seed's part file (``{}`` if none yet)."""
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_part(path: Path, part: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(part, indent=1, default=str))


def _retrain_point(cfg: HitlConfig, seed: int, base_id: str, point: Point, train: Any, visible: Mapping) -> dict:
    from rrra_core.data.corrections import apply_verdicts
    from rrra_core.runtime.paths import runs_dir
    from rrra_core.runtime.runs import Run
    from rrra_core.workflows.retrain import RetrainConfig, phase3_run_id, retrain, retrain_scope

    rc = RetrainConfig(
        base_run=base_id,
        policy="oracle",
        phases="2,3",
        adapter_epochs=cfg.adapter_epochs,
        p3_epochs=cfg.p3_epochs,
        p3_max_steps=cfg.p3_max_steps,
        p3_batch_size=cfg.p3_batch_size,
        p3_lr=cfg.p3_lr,
        eval_split=cfg.eval_split,
        seed=seed,
        remine=False,  # nobody reviews these runs: their re-mined queue would cost time and be read by no one
    )
    scope = retrain_scope(rc)
    # The base run's config names the full split; the benchmark's labels are the visible ones.
    scope = replace(scope, data=replace(train, qrels=dict(visible)), query_ids=sorted(visible))
    corrections = apply_verdicts(visible, point.verdicts, query_ids=sorted(visible))
    run_id = f"{cfg.tag(seed)}-{point.name}"
    t0 = time.perf_counter()
    summary = retrain(rc, run_id, corrections, scope=scope)
    per_query = Run(runs_dir() / phase3_run_id(run_id)).read_json("per_query.json", {}) or {}
    variants = summary["retrieval"]["after"]
    return {
        "point": point.name,
        "order": point.order,
        "N": point.n,
        "found": int(sum(point.verdicts.values())),
        "metrics": variants,
        "per_query": {v: (per_query.get("variants") or {}).get(v) for v in ("rerank", "no_rerank")},
        "run": phase3_run_id(run_id),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def run_seed(
    cfg: HitlConfig, seed: int, part_path: Path, progress: Callable[[str], None] = log.info, command: str = ""
) -> dict:
    """Every point of one seed into ``part_path``, each written as it finishes; a rerun skips the finished ones.

    ``command`` is recorded in the part file (the result file's header quotes it).
    """
    part = read_part(part_path)
    settings = config_to_dict(cfg)
    if part and part.get("config") != settings:
        raise ConfigError(f"{part_path} was made with other settings; remove it or choose another --out")
    train, visible, hidden = seed_labels(cfg, seed)
    base_id = build_hidden_base(
        base_run_id(cfg, seed),
        cfg.dataset,
        cfg.hide_fraction,
        seed,
        epochs=cfg.adapter_epochs,
        top_k=cfg.top_k,
        model=cfg.model,
        doc_max_length=cfg.doc_max_length,
        max_train_queries=cfg.max_train_queries,
    )
    from rrra_core.runtime.runs import open_run

    sessions = review_sessions(cfg, seed, open_run(base_id).path, train, visible, hidden)
    part = part or {
        "command": command,
        "config": settings,
        "seed": seed,
        "base_run": base_id,
        "training_queries": len(visible),
        "hidden_positives": sum(len(v) for v in hidden.values()),
        "sessions": {o: [[q, d, t] for q, d, t in s] for o, s in sessions.items()},
        "points": {},
    }
    for point in plan_points(cfg, sessions, hidden):
        if point.name in part["points"]:
            continue
        progress(f"seed {seed}: {point.name} ({point.n} verdicts, {sum(point.verdicts.values())} relevant)")
        part["points"][point.name] = _retrain_point(cfg, seed, base_id, point, train, visible)
        _write_part(part_path, part)
    return part


# ----------------------------------------------------------------- the summary
def _per_query(point: Mapping[str, Any], variant: str, metric: str) -> dict[str, float]:
    pq = (point.get("per_query") or {}).get(variant) or {}  # {query_id: {metric: value}}
    return {str(q): float(row[metric]) for q, row in pq.items() if metric in row}


def paired_test(parts: list[dict], a: str, b: str, variant: str, metric: str = PRIMARY_METRIC) -> dict[str, Any]:
    """Point ``b`` against point ``a`` over test queries: per-query ``metric`` averaged over seeds, then ranx's
    paired Student t-test and Fisher randomization test (both two-sided)."""
    pairs = [(p["points"].get(a), p["points"].get(b)) for p in parts]
    pairs = [(pa, pb) for pa, pb in pairs if pa is not None and pb is not None]
    test = paired_by_query(
        [_per_query(pa, variant, metric) for pa, _ in pairs], [_per_query(pb, variant, metric) for _, pb in pairs]
    )
    if test["p_t"] is None:
        return {"control": a, "treatment": b, "queries": test["queries"], "p_t": None, "p_fisher": None}
    return {"control": a, "treatment": b, "metric": metric, **test}


def summarize(parts: list[dict[str, Any]], test_at: int = 200, variant: str | None = None) -> dict[str, Any]:
    """Means and standard deviations over seeds per point, the recovered fraction per N and the paired tests.

    ``variant`` is the ranking read (``rerank`` or ``no_rerank``; default the
    parts' ``variant`` setting): every point stores both.
    """
    if not parts:
        raise ConfigError("no finished seed to summarize")
    cfg = config_from_dict(HitlConfig, parts[0]["config"])
    variant = variant or cfg.variant
    if variant not in ("rerank", "no_rerank"):
        raise ConfigError(f"variant must be rerank or no_rerank, got {variant!r}")
    names = list(dict.fromkeys(n for p in parts for n in p["points"]))
    points: dict[str, Any] = {}
    for name in names:
        done = [p["points"][name] for p in parts if name in p["points"]]
        first = done[0]
        points[name] = {
            "order": first["order"],
            "N": first["N"],
            "found": mean_std([d["found"] for d in done]),
            **{m: mean_std([d["metrics"][variant][m] for d in done]) for m in REPORTED},
        }
    lower = points.get("lower", {}).get(PRIMARY_METRIC, {}).get("mean")
    upper = points.get("upper", {}).get(PRIMARY_METRIC, {}).get("mean")
    gap = (upper - lower) if lower is not None and upper is not None else None

    def recovered(order: str) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for n in cfg.budgets:
            p = points.get(f"{order}-n{n}")
            out[str(n)] = (p[PRIMARY_METRIC]["mean"] - lower) / gap if p and gap else None
        return out

    main_order = cfg.orders[0]
    per_seed = {
        str(p["seed"]): {n: pt["metrics"][variant][PRIMARY_METRIC] for n, pt in p["points"].items()} for p in parts
    }
    tests = [paired_test(parts, "lower", "upper", variant)]
    tests += [paired_test(parts, "lower", f"{o}-n{test_at}", variant) for o in cfg.orders]
    return {
        "variant": variant,
        "seeds": sorted(p["seed"] for p in parts),
        "points": points,
        "recovered": {o: recovered(o) for o in cfg.orders},
        "per_seed": per_seed,
        "tests": tests,
        "summary": {
            "recovered_at": recovered(main_order),
            "upper": upper,
            "lower": lower,
            "order": main_order,
            "metric": PRIMARY_METRIC,
        },
    }
