"""Benchmark the review queue's orders with a simulated reviewer (issues 14 and 26).

For every order (bandit, learnt, the static adapter, retriever, margin, bm25 and
closeness orders, uncertainty, random) and seed, a simulated reviewer walks the
queue of a run's labelled negatives, answers from a known truth, and the
adaptive orders refit every ``--refit-every`` verdicts. Writes ``<out>.json``
(each (order, seed) result as it finishes; a rerun resumes from what is there,
whatever orders it ran) and ``<out>.md`` (headed by the command that made it).
``summary`` gathers the collections' files into ``results/review_loop_summary``:
the learnt order against the best static order per collection and budget.

Split: queries go to dev or test by a fixed hash of their id (md5, even = dev).
Every setting of the adaptive orders (``BanditConfig``'s and ``LearnerConfig``'s
defaults) was chosen on dev; the result files report test unless ``--split dev``.

Collections (:data:`COLLECTIONS`; their runs are built once by
``scripts/make_review_runs.py`` with the arguments each names, and found under
``$RRRA_HOME/runs`` by that script's naming; nothing here downloads anything):

- ``squad``: one unplanted run; truth: the same-article answer-bearing
  paragraphs of ``answers/train_has_answer.tsv.gz``. A seed draws
  ``--subsample`` of the split's queries and sets tie-breaking, the random order
  and the learners' seeds.
- ``cranfield``, ``scifact``, ``adi`` (30 % of each query's positives hidden;
  SciFact's 1.1 positives per query leave most queries with none) and
  ``cranfield-sparse`` (one positive hidden in half the queries): one run per
  seed, the seed being the planting's; truth: the hidden positives, rebuilt here
  from the seed (``rrra_core.review.planting``).

Calibration (skip with ``--no-calibration``): per seed the learnt session is
replayed and the adapter's P(FN|neg), and Platt maps of it and of the learnt
score fitted on the verdicts so far, are measured against the oracle at
0/100/200/400 verdicts (``rrra_core.review.queue_calibration``).

Examples:
    python scripts/make_review_runs.py cranfield --seeds 0 1 2
    python scripts/bench_review.py cranfield --split dev --no-calibration
    python scripts/bench_review.py squad --predictions runs/demo-squad/predictions.parquet
    python scripts/bench_review.py summary
    python scripts/bench_review.py quick --out /tmp/review_quick
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rrra_core.review import (
    ORDERS,
    BanditConfig,
    BanditLearner,
    Learner,
    LearnerConfig,
    SimConfig,
    is_adaptive,
    make_order,
    simulate,
)
from rrra_core.review.bandit import adapter_skill
from rrra_core.review.features import candidates_frame, load_or_build_features
from rrra_core.review.orders import STATIC_ORDERS
from rrra_core.review.queue_calibration import SOURCES, session_calibration
from rrra_core.review.synthetic import synthetic_frame

BUDGETS = (25, 50, 100, 200, 400)
# What was tried on the dev split (found at 200, mean ± std over 3 seeds; SQuAD dev: 80 % query draws, Cranfield
# dev: the 3 plantings), and what the defaults became. Kept here so the result files carry it.
DEV_TUNING = (
    "dev, SQuAD (retriever 21.3 ± 2.5, adapter 18.7 ± 2.4): prior score+BM25+pos_sim 35.7 ± 3.3; "
    "+ boost 1/0.3 39.0 ± 5.0, 1/0.6 48.7 ± 11.9, 1/1 48.7 ± 9.0, 1/1.5 48.3, 2/1 38.7, 0.5/1 48.3; "
    "logistic alone (all features + feedback) 41.3 ± 7.8, C 0.1 small 43.7 ± 7.8, with boost 35.7-39.3; "
    "logistic on the feedback counts + prior 35.0; gbm blend 45.0 ± 8.8; "
    "prior + 0.3 x logistic + boost 1/1 52.3 ± 9.5; that with pos_sim x2, the adapter and pos_sim@q "
    "in the prior (the default) 54.3 ± 13.0",
    "dev, Cranfield (adapter 38.7 ± 5.2, retriever 19.0, margin 22.0): prior 38.3, + adapter 39.0, + boost 1/1 40.0; "
    "logistic alone 40.3 ± 4.5; blend 0.3 + boost 41.0-43.3; boost 0.5/0.5 42.7; blend 0.6 43.0; "
    "the default 46.0 ± 2.2",
)
# The bandit order (issue 26), dev halves, found at 200, mean over 3 seeds (SQuAD dev: 80 % query draws of the
# unplanted 1,500-query run; the others: the 3 plantings). Every variant at 50-400: results/review_loop_dev.md.
DEV_BANDIT = (
    "dev round 2 (every variant at 100/200/400 on all five collections: results/review_loop_dev.md, made by "
    "bench_review.py <collection> --split dev --out results/review_loop_dev/<collection> and dev-summary): the "
    "former bandit's worst ratio to the best static order was 0.86 (SciFact @100); crediting verdicts by what each "
    "arm would have shown when shown 0.89; + a pooled prior mean 0.89 (mean @200 1.29); + the unweighted fusion arm "
    "0.96 (mean @200 1.25): the default. Criterion fixed before the round: the largest worst ratio, variants within "
    "0.02 of it ranked by the mean ratio at 200 (prior strength 8 and window 10 reach 0.97 at means 1.23 / 1.22; "
    "plan 2 0.89; a lean arm set 0.92; the fusion arm alone 0.94 at 1.20; boost shrink 3 0.94)",
    "dev round 3 (same criterion): a half-life on each arm's belief, so an arm whose best items are used up loses "
    "it sooner (seen on the scale collection, where the queue kept following the fixed blend past its head): half-life "
    "30 / 60 / 120 verdicts reach a worst ratio of 0.89 / 0.89 / 0.86 (SciFact @100) at mean @200 1.29 / 1.23 / "
    "1.23, against the default's 0.96 at 1.25: not adopted (BanditConfig.half_life stays 0, off)",
)
SUMMARY_BUDGET = 200
# Bandit settings tried on the dev halves (``--orders bandit:<name>``): each is a set of BanditConfig overrides, kept
# here so every figure in results/review_loop_dev/ can be remade. The chosen one became BanditConfig's defaults.
# The defaults before the dev round of issue 26's second pass: credit by the current order, a fixed prior mean, and no
# fusion arm. Each variant is spelled out in full against it, so its figures do not move when the defaults do.
_FORMER = {
    "prospective": False,
    "half_life": 0.0,
    "pooled": 0.0,
    "arms": ("adapter", "retriever", "margin", "bm25", "pos_sim", "pos_sim@q", "prior", "model", "blend"),
}
_FUSION = ("adapter", "retriever", "margin", "bm25", "pos_sim", "pos_sim@q", "fusion", "prior", "model", "blend")
BANDIT_VARIANTS: dict[str, dict[str, Any]] = {
    "former": _FORMER,
    "pooled10": {**_FORMER, "pooled": 10.0},
    "prosp": {**_FORMER, "prospective": True},
    "prosp_pooled10": {**_FORMER, "prospective": True, "pooled": 10.0},
    "fusion_only": {**_FORMER, "arms": ("fusion",)},
    "fusion_only_s3": {**_FORMER, "arms": ("fusion",), "boost_shrink": 3.0},
    "fp": {**_FORMER, "arms": _FUSION, "prospective": True, "pooled": 10.0},
    "fp_s3": {**_FORMER, "arms": _FUSION, "prospective": True, "pooled": 10.0, "boost_shrink": 3.0},
    "fp_plan2": {**_FORMER, "arms": _FUSION, "prospective": True, "pooled": 10.0, "plan": 2},
    "fp_w10": {**_FORMER, "arms": _FUSION, "prospective": True, "pooled": 10.0, "window": 10},
    "fp_s8": {**_FORMER, "arms": _FUSION, "prospective": True, "pooled": 10.0, "prior_strength": 8.0},
    "fp_h30": {**_FORMER, "arms": _FUSION, "prospective": True, "pooled": 10.0, "half_life": 30.0},
    "fp_h60": {**_FORMER, "arms": _FUSION, "prospective": True, "pooled": 10.0, "half_life": 60.0},
    "fp_h120": {**_FORMER, "arms": _FUSION, "prospective": True, "pooled": 10.0, "half_life": 120.0},
    "fp_lean": {
        **_FORMER,
        "prospective": True,
        "pooled": 10.0,
        "arms": ("adapter", "retriever", "bm25", "pos_sim", "pos_sim@q", "fusion", "model"),
    },
}
CALIBRATION_BUDGETS = (0, 100, 200, 400)  # 0: before any refit


def is_dev(query_id: str) -> bool:
    """The fixed dev/test split: md5 of the query id, even = dev."""
    return int(hashlib.md5(query_id.encode()).hexdigest(), 16) % 2 == 0


class Collection(NamedTuple):
    """A benchmark collection: the dataset and split its runs train on, and how its truth is made."""

    dataset: str
    split: str = "train"
    truth: str = "dense"  # "answers": SQuAD's answer-bearing paragraphs; "dense"/"sparse": planted (planting.plant)
    rate: float = 0.3
    one_run: bool = False  # one candidate set for every seed (a seed draws queries instead)
    make: str = ""  # the make_review_runs.py arguments that build its runs

    @property
    def prefix(self) -> str:
        """Its runs' id prefix (as make_review_runs.py names them)."""
        if self.truth == "answers":
            return f"review-{self.dataset}-unplanted"
        if self.truth == "dense" and self.rate == 0.3:
            return f"review-{self.dataset}"
        return f"review-{self.dataset}-{self.truth}{round(100 * self.rate)}"


COLLECTIONS: dict[str, Collection] = {
    "squad": Collection("squad", truth="answers", rate=0.0, one_run=True,
                        make="squad --rate 0 --seeds 0 --epochs 2 --max-queries 1500"),
    "cranfield": Collection("cranfield", make="cranfield --seeds 0 1 2"),
    "scifact": Collection("scifact", make="scifact --seeds 0 1 2 --epochs 1"),
    "adi": Collection("adi", split="test", make="adi --split test --seeds 0 1 2"),
    "cranfield-sparse": Collection("cranfield", truth="sparse", rate=0.5,
                                   make="cranfield --planting sparse --rate 0.5 --seeds 0 1 2 --epochs 3"),
    # a scale collection (scripts/make_scale_collection.py, built by scripts/build_scale.py): its folder is the
    # one the run given by --predictions names, its truth the recombined and near-duplicate positives in answers/
    "scale": Collection("", truth="answers", rate=0.0, one_run=True),
}  # fmt: skip


def _truth_and_qrels(coll: Collection, seed: int) -> tuple[dict, dict, Any]:
    from rrra_core.data.beir import dataset_folder, load_dataset, load_has_answer
    from rrra_core.review.planting import plant

    train = load_dataset(coll.dataset, coll.split)
    if coll.truth != "answers":
        visible, hidden = plant(train.qrels, coll.rate, seed, coll.truth)
        return visible, hidden, train
    has = load_has_answer(dataset_folder(coll.dataset) / "answers" / f"{coll.split}_has_answer.tsv.gz")
    return dict(train.qrels), {q: {d for d, same in v.items() if same} for q, v in has.items()}, train


def build_frame(coll: Collection, predictions: Path, seed: int) -> pd.DataFrame:
    """The run's labelled negatives with truth and every feature (lexical ones cached beside the predictions)."""
    qrels, truth, train = _truth_and_qrels(coll, seed)
    frame = candidates_frame(pd.read_parquet(predictions), qrels, truth)
    corpus = {d: (doc.title, doc.text) for d, doc in train.corpus.items()}
    frame = load_or_build_features(frame, corpus, train.queries, predictions.parent / "review_features.parquet")
    metrics = predictions.parent / "metrics.json"
    frame.attrs["adapter_skill"] = adapter_skill(json.loads(metrics.read_text())) if metrics.is_file() else None
    return frame


def split_frame(frame: pd.DataFrame, split: str, fraction: float, seed: int) -> pd.DataFrame:
    """The split's rows; with ``fraction`` < 1, a seeded draw of that share of its queries."""
    keep = frame["query_id"].map(is_dev) == (split == "dev")
    part = frame[keep]
    if fraction < 1:
        qs = sorted(part["query_id"].unique())
        chosen = np.random.default_rng(seed).choice(qs, size=max(1, int(fraction * len(qs))), replace=False)
        part = part[part["query_id"].isin(set(chosen))]
    return part.reset_index(drop=True)


def order_choice(name: str) -> str:
    """An ``--orders`` value: one of ORDERS, or ``bandit:<variant>`` of :data:`BANDIT_VARIANTS`."""
    if name in ORDERS or (name.startswith("bandit:") and name[7:] in BANDIT_VARIANTS):
        return name
    raise argparse.ArgumentTypeError(
        f"unknown order {name!r}; choose from {', '.join(ORDERS)} or bandit:<{'|'.join(BANDIT_VARIANTS)}>"
    )


def bandit_config(order: str) -> BanditConfig | None:
    """The BanditConfig of a ``bandit:<variant>`` order (None for the others)."""
    if not order.startswith("bandit:"):
        return None
    return replace(BanditConfig(), **BANDIT_VARIANTS[order[7:]])


def run_one(frame: pd.DataFrame, order: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """One simulated session: found and precision at each budget, and every refit's time and pool AUROC/AP."""
    budget = max(args.budgets)
    cfg = SimConfig(budget=budget, refit_every=args.refit_every, seed=seed)
    t0 = time.perf_counter()
    variant = bandit_config(order)
    rescore = make_order(
        "bandit" if variant else order,
        frame,
        LearnerConfig(),
        seed,
        bandit=variant,
        adapter_detection=frame.attrs.get("adapter_skill"),
    )
    res = simulate(frame, rescore, cfg, adaptive=variant is not None or is_adaptive(order))
    found = {str(b): res.found_at(b) for b in args.budgets}
    return {
        "order": order,
        "seed": seed,
        "rows": len(frame),
        "queries": int(frame["query_id"].nunique()),
        "false_negatives": int(frame["truth"].sum()),
        "found": found,
        "precision": {b: round(n / min(int(b), len(frame)), 4) for b, n in found.items()},
        "curve": res.found,
        "refits": [r.__dict__ for r in res.refits],
        "refit_seconds_max": max((r.seconds for r in res.refits), default=0.0),
        "wall_seconds": round(time.perf_counter() - t0, 2),
    }


def time_full_refit(frame: pd.DataFrame, n_verdicts: int = 400, seed: int = 0, order: str = "bandit") -> dict:
    """Wall time of one learnt refit on the whole run (every query, not one split), after ``n_verdicts`` verdicts."""
    learner = BanditLearner(frame, BanditConfig(), seed) if order == "bandit" else Learner(frame, LearnerConfig(), seed)
    rng = np.random.default_rng(seed)
    truth = frame["truth"].to_numpy()
    # Half the verdicts from true FNs, so the refit fits a model instead of falling back.
    fns = rng.choice(np.flatnonzero(truth), size=min(n_verdicts // 10, int(truth.sum())), replace=False)
    rest = rng.choice(np.flatnonzero(~truth), size=n_verdicts - len(fns), replace=False)
    verdicts = {int(i): bool(truth[i]) for i in np.concatenate([fns, rest])}
    times = [learner.refit(verdicts).seconds for _ in range(3)]
    return {"order": order, "rows": len(frame), "verdicts": n_verdicts, "seconds_max": round(max(times), 3)}


def calibration_budgets(budgets: list[int]) -> list[int]:
    """The budgets calibration is measured at: 0 and those of :data:`CALIBRATION_BUDGETS` the run reaches."""
    reach = [b for b in CALIBRATION_BUDGETS if 0 < b <= max(budgets)]
    return [0, *(reach or [max(budgets)])]


def run_calibration(frame: pd.DataFrame, seed: int, args: argparse.Namespace, curve: list[int] | None) -> dict:
    """The learnt session's calibration before and after the refits (it replays the session: seconds)."""
    cfg = SimConfig(budget=max(args.budgets), refit_every=args.refit_every, seed=seed)
    out = session_calibration(frame, LearnerConfig(), cfg, calibration_budgets(args.budgets))
    # The replay is the learnt order's session of the results: same items, same order.
    out["same_session"] = curve is None or out.pop("curve") == curve
    out.pop("curve", None)
    return out


def _pooled_bins(parts: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Uniform reliability bins of several seeds merged: counts add, means weighted by count."""
    frames = [pd.DataFrame(p["bins"]) for p in parts if p["n"]]
    if not frames:
        return {}
    rows = pd.concat(frames)
    rows["wp"], rows["wo"] = rows["mean_p"] * rows["n"], rows["observed"] * rows["n"]
    g = rows.groupby(["lo", "hi"], as_index=False)[["n", "wp", "wo"]].sum()
    return {
        "lo": g["lo"].tolist(),
        "hi": g["hi"].tolist(),
        "n": g["n"].astype(int).tolist(),
        "mean_p": (g["wp"] / g["n"]).round(4).tolist(),
        "observed": (g["wo"] / g["n"]).round(4).tolist(),
    }


def summarize_calibration(cal: dict[str, dict[str, Any]], budgets: list[int]) -> dict[str, Any]:
    """ECE mean and std over seeds per (reviewed or pool, source, budget), the bins pooled over seeds, the tips."""
    ece: dict[str, Any] = {}
    bins: dict[str, Any] = {}
    for where in ("reviewed", "pool"):
        for src in SOURCES:
            row = {}
            for b in map(str, budgets):
                vals = [c["budgets"][b][where][src]["ece"] for c in cal.values() if src in c["budgets"][b][where]]
                vals = [v for v in vals if v is not None]
                row[b] = [round(x, 4) for x in _mean_std(vals)] if vals else None
                parts = [c["budgets"][b][where][src] for c in cal.values() if src in c["budgets"][b][where]]
                if parts:
                    bins[f"{where}/{src}/{b}"] = _pooled_bins(parts)
            ece[f"{where}/{src}"] = row
    tips = {b: {s: c["budgets"][b]["threshold"] for s, c in cal.items()} for b in map(str, budgets)}
    return {"ece": ece, "bins": bins, "thresholds": tips}


def _mean_std(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values))


def summarize(results: dict[str, dict[str, Any]], budgets: list[int], orders: list[str]) -> dict[str, Any]:
    """Mean and std over seeds of found at every budget, and the summary block at budget 200."""
    table: dict[str, dict[str, list[float]]] = {}
    for o in orders:
        runs = [r for r in results.values() if r["order"] == o]
        table[o] = {str(b): list(_mean_std([r["found"][str(b)] for r in runs])) for b in budgets} if runs else {}
    b = str(SUMMARY_BUDGET) if SUMMARY_BUDGET in budgets else str(max(budgets))
    refit = [
        r["refit_seconds_max"] for r in results.values() if r["order"].startswith("bandit") or is_adaptive(r["order"])
    ]
    return {
        "table": table,
        "summary": {
            "budget": int(b),
            "found": {o: round(table[o][b][0], 2) for o in orders if table[o]},
            "found_std": {o: round(table[o][b][1], 2) for o in orders if table[o]},
            "learnt_refit_seconds_max": max(refit, default=None),
        },
    }


def targets(summary: dict[str, Any], dataset: str) -> list[str]:
    """The issue's targets, each with its measured ratio and whether it holds."""
    f, s = summary["found"], summary["found_std"]
    if "learnt" not in f:
        return []
    if dataset == "cranfield" and "adapter" in f:
        ratio = f["learnt"] / max(f["adapter"], 1e-9)
        return [
            f"learnt / adapter at {summary['budget']}: {ratio:.2f}x (target >= 1.2x): "
            + ("met" if ratio >= 1.2 else "NOT met")
        ]
    if {"retriever", "margin"} <= f.keys():
        best = max(("retriever", "margin"), key=lambda o: f[o])
        ratio = f["learnt"] / max(f[best], 1e-9)
        gap = f["learnt"] - 1.5 * f[best]
        beyond = gap > max(s["learnt"], s[best])
        verdict = "met" if ratio >= 1.5 and beyond else "NOT met"
        return [
            f"learnt / {best} (the better of retriever and margin) at {summary['budget']}: {ratio:.2f}x "
            f"(target >= 1.5x, margin beyond one std): {verdict}; learnt - 1.5 x {best} = {gap:.1f}, "
            f"std learnt {s['learnt']:.1f}, {best} {s[best]:.1f}"
        ]
    return []


def render(out: dict[str, Any]) -> str:
    """The Markdown report, from the JSON alone."""
    budgets, orders = out["settings"]["budgets"], out["settings"]["orders"]
    lines = [
        f"`{out['command']}`",
        "",
        f"# Review queue: simulated reviewer on {out['dataset']} ({out['settings']['split']} split)",
        "",
    ]
    lines += [f"- {note}" for note in out["notes"]]
    lines += [
        "",
        "False negatives found after N reviewed items, mean ± std over seeds " + str(out["settings"]["seeds"]),
        "",
    ]
    lines += ["| order | " + " | ".join(f"N={b}" for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
    for o in orders:
        cells = out["table"].get(o, {})
        lines.append(
            f"| {o} | "
            + " | ".join(f"{cells[str(b)][0]:.1f} ± {cells[str(b)][1]:.1f}" if cells else "–" for b in budgets)
            + " |"
        )
    lines += ["", "## Targets", ""] + [f"- {t}" for t in out["targets"]]
    rf = out.get("full_refit")
    lines += ["", "## Refit time", ""]
    lines.append(f"- adaptive orders, slowest refit in any session: {out['summary']['learnt_refit_seconds_max']} s")
    if rf:
        lines.append(
            f"- one {rf.get('order', 'learnt')} refit on the whole run ({rf['rows']} rows, {rf['verdicts']} "
            f"verdicts): {rf['seconds_max']} s"
        )
    if out.get("calibration"):
        lines += render_calibration(out["calibration"])
    return "\n".join(lines) + "\n"


SOURCE_NAMES = {
    "adapter": "adapter P(FN\\|neg)",
    "adapter_platt": "adapter P(FN\\|neg), Platt map",
    "learnt": "learnt score, Platt map",
}


def _bin_cell(bins: dict[str, list[float]], i: int) -> str:
    return f"{bins['mean_p'][i]:.3f} → {bins['observed'][i]:.3f} ({bins['n'][i]:,})"


def _reliability_table(bins: dict[str, Any], where: str, budget: str) -> list[str]:
    """One row per uniform bin, one column per source: mean predicted → observed (items)."""
    cols = {s: bins.get(f"{where}/{s}/{budget}") or {} for s in SOURCES}
    edges = sorted({(lo, hi) for c in cols.values() for lo, hi in zip(c.get("lo", []), c.get("hi", []), strict=True)})
    lines = ["| P bin | " + " | ".join(SOURCE_NAMES[s] for s in SOURCES) + " |", "|---|" + "---|" * len(SOURCES)]
    for lo, hi in edges:
        cells = []
        for s in SOURCES:
            c = cols[s]
            at = [i for i, e in enumerate(zip(c.get("lo", []), c.get("hi", []), strict=True)) if e == (lo, hi)]
            cells.append(_bin_cell(c, at[0]) if at else "–")
        lines.append(f"| {lo:.1f}–{hi:.1f} | " + " | ".join(cells) + " |")
    return lines


def render_calibration(cal: dict[str, Any]) -> list[str]:
    """The calibration section of the report: ECE by budget, reliability bins, the suggested thresholds."""
    budgets = [str(b) for b in cal["budgets"]]
    at = str(SUMMARY_BUDGET) if str(SUMMARY_BUDGET) in budgets else budgets[-1]
    lines = [
        "",
        "## Calibration before and after the refits",
        "",
        "The learnt order's session per seed (the one in the table above), measured against the oracle after N "
        "verdicts, on the N reviewed items and on the pool still unreviewed. Sources: the adapter's static "
        "P(FN|neg) as it is; that P(FN|neg) through a Platt map fitted on the verdicts so far; the learnt order's "
        "score (a sum of logits, not a probability) through a Platt map fitted on the verdicts so far. Maps are "
        "fitted on the score each item had when it was shown (before its verdict), and a reviewed item's "
        "probability is the one it had when shown, so the first 10 items (shown before any verdict) have none "
        "for the mapped sources (rrra_core/review/queue_calibration.py). ECE: 10 equal-width bins, mean ± std "
        "over seeds.",
        "",
        "| ECE on | source | " + " | ".join(f"N={b}" for b in budgets) + " |",
        "|---|---|" + "---|" * len(budgets),
    ]
    for where in ("reviewed", "pool"):
        for src in SOURCES:
            row = cal["ece"][f"{where}/{src}"]
            cells = [f"{row[b][0]:.3f} ± {row[b][1]:.3f}" if row.get(b) else "–" for b in budgets]
            lines.append(f"| {where} | {SOURCE_NAMES[src]} | " + " | ".join(cells) + " |")
    for where in ("reviewed", "pool"):
        lines += ["", f"Reliability on the {where} items at N={at}, seeds pooled: mean predicted → observed "
                  "share of false negatives (items)", ""]  # fmt: skip
        lines += _reliability_table(cal["bins"], where, at)
    lines += [
        "",
        "Suggested threshold on the adapter's P(FN|neg) from the reviewed items (target precision 70 %, at least "
        "10 judged above it), and the share of false negatives above it on the pool still unreviewed:",
        "",
        "| N | seed | suggestion | on the pool above it |",
        "|---|---|---|---|",
    ]
    for b in budgets:
        for seed, tip in cal["thresholds"][b].items():
            pool = (
                f"{tip['pool_precision']:.2f} ({tip['pool_support']:,} items)"
                if tip.get("pool_precision") is not None
                else "–"
            )
            lines.append(f"| {b} | {seed} | {tip['sentence']} | {pool} |")
    if not all(c.get("same_session", True) for c in cal["seeds"].values()):
        lines += ["", "- NOTE: a replayed session differs from the learnt result above"]
    return lines


def default_predictions(coll: Collection, seeds: list[int]) -> list[Path]:
    """Each seed's run predictions under ``$RRRA_HOME/runs`` (a one-run collection: seed 0's for all)."""
    from rrra_core.runtime.paths import runs_dir

    return [runs_dir() / f"{coll.prefix}-s{0 if coll.one_run else s}" / "predictions.parquet" for s in seeds]


def _inputs(args: argparse.Namespace) -> list[tuple[int, pd.DataFrame]]:
    """(seed, the whole run's frame) per seed."""
    if args.dataset == "quick":
        return [(s, synthetic_frame(n_queries=120, per_query=30, seed=100 + s)) for s in args.seeds]
    coll = COLLECTIONS[args.dataset]
    preds = [Path(p) for p in args.predictions] or default_predictions(coll, args.seeds)
    if not coll.dataset:  # the scale collection: the folder its run was built on
        from rrra_core.runtime.run_config import read_run_config

        if not args.predictions:
            sys.exit(f"{args.dataset}: give --predictions <run>/predictions.parquet of a scripts/build_scale.py run")
        coll = coll._replace(dataset=read_run_config(preds[0].parent).dataset)
    if coll.one_run:
        frame = build_frame(coll, preds[0], 0)
        return [(s, frame) for s in args.seeds]
    if len(preds) != len(args.seeds):
        sys.exit(f"{args.dataset}: give one --predictions file per seed (each seed is its own planted run)")
    return [(s, build_frame(coll, p, s)) for s, p in zip(args.seeds, preds, strict=True)]


def _notes(args: argparse.Namespace) -> list[str]:
    if args.dataset == "quick":
        seed_note = "synthetic frames (rrra_core.review.synthetic), one per seed"
    elif COLLECTIONS[args.dataset].one_run:
        seed_note = (
            f"a seed draws {args.subsample:.0%} of the split's queries (one fixed candidate set) "
            "and sets tie-breaking, the random order and the learners' seeds"
        )
    else:
        coll = COLLECTIONS[args.dataset]
        seed_note = (
            f"a seed is a planting: its own phase-2 run on {coll.dataset} {coll.split} with positives hidden "
            f"({coll.truth}, rate {coll.rate}; rrra_core.review.planting)"
        )
    make = COLLECTIONS[args.dataset].make if args.dataset in COLLECTIONS else ""
    return [
        "split: queries by md5(query id), even = dev; every learnt-order setting was chosen on dev; "
        f"this file: {args.split}",
        f"seeds: {seed_note}",
        *([f"runs: python scripts/make_review_runs.py {make}"] if make else []),
        "bandit: Thompson sampling among the signals and the fitted model, each scored on the hit rate of what "
        "it would have shown, learnt per-query boost, cold start from signal agreement and the adapter's held-out "
        "FN detection (rrra_core.review.bandit, BanditConfig defaults)",
        f"learnt (the fixed blend) refits every {args.refit_every} verdicts: prior logit + 0.3 x logistic-model "
        "logit + 1 per confirmed FN in the query - 1 per rejection (LearnerConfig defaults)",
        *DEV_BANDIT,
        *DEV_TUNING,
        "no feature reads the document id, nor the title beyond BM25's usual title + text (on SQuAD the id and "
        "title reveal the article, and the truth is built from articles)",
    ]


def calibrate(
    inputs: list[tuple[int, pd.DataFrame]],
    args: argparse.Namespace,
    results: dict[str, Any],
    old: dict[str, Any] | None,
) -> dict[str, Any]:
    """Each seed's calibration (kept from ``old`` when it was made at the same budgets) and its summary."""
    budgets = calibration_budgets(args.budgets)
    seeds = (old or {}).get("seeds", {}) if (old or {}).get("budgets") == budgets else {}
    for seed, whole in inputs:
        if str(seed) not in seeds:
            frame = split_frame(whole, args.split, args.subsample, seed)
            seeds[str(seed)] = run_calibration(frame, seed, args, results.get(f"learnt/{seed}", {}).get("curve"))
            print(f"calibration/{seed}: done", flush=True)
    return {"budgets": budgets, "seeds": seeds, **summarize_calibration(seeds, budgets)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", choices=(*COLLECTIONS, "quick"), help="a collection; 'quick': synthetic, seconds (CI)")
    p.add_argument(
        "--predictions",
        nargs="*",
        default=[],
        help="predictions.parquet, one per seed (default: $RRRA_HOME/runs/<collection's prefix>-s<seed>/)",
    )
    p.add_argument("--out", default=None, help="output stem (default: results/review_loop_<dataset>)")
    p.add_argument("--split", choices=("dev", "test"), default="test", help="which half of the queries to report")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--budgets", type=int, nargs="+", default=list(BUDGETS))
    p.add_argument(
        "--orders", nargs="+", default=list(ORDERS), type=order_choice, help="orders, or bandit:<dev variant>"
    )
    p.add_argument("--refit-every", type=int, default=10, help="verdicts between two refits")
    p.add_argument("--subsample", type=float, default=0.8, help="squad: share of the split's queries a seed draws")
    p.add_argument("--no-calibration", action="store_true", help="skip the learnt session's calibration replay")
    args = p.parse_args(argv)
    if args.dataset == "quick":
        args.budgets = [b for b in args.budgets if b <= 100] or [25, 50]
        args.subsample = 1.0
    elif not COLLECTIONS[args.dataset].one_run:
        args.subsample = 1.0
    args.out = Path(args.out or f"results/review_loop_{args.dataset}")
    return args


def _same_settings(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    """Whether an old result file's sessions can be reused: the same settings, whatever orders either ran."""
    if not old:
        return False
    strip = ("orders", "no_calibration")
    return {k: v for k, v in old.items() if k not in strip} == {k: v for k, v in new.items() if k not in strip}


def summary_table(
    files: dict[str, dict[str, Any]],
    learnt: str,
    budgets: tuple[int, ...],
    static_orders: tuple[str, ...] = STATIC_ORDERS,
) -> dict[str, Any]:
    """Learnt vs the best static order per collection and budget, from each collection's result JSON.

    ``worst_ratio``: the smallest learnt / best-static ratio over the collections
    and ``budgets`` (100, 200, 400 only, as the issue's target reads);
    ``mean_ratio_at_200``: their mean at 200; ``squad_over_retriever_at_200``.
    """
    collections: dict[str, Any] = {}
    ratios: list[float] = []
    at200: list[float] = []
    for name, data in files.items():
        table = data["table"]
        found = {o: {str(b): round(cells[str(b)][0], 2) for b in budgets if str(b) in cells} for o, cells in
                 table.items() if cells}  # fmt: skip
        best = {}
        for b in map(str, budgets):
            static = [(found[o][b], o) for o in static_orders if o in found and b in found[o]]
            if static and learnt in found and b in found[learnt]:
                value, order = max(static)
                ratio = found[learnt][b] / max(value, 1e-9)
                best[b] = {"order": order, "found": value, "ratio": round(ratio, 3)}
                if int(b) >= 100:
                    ratios.append(ratio)
                if b == "200":
                    at200.append(ratio)
        collections[name] = {"found": found, "best_static": best, "seeds": data["settings"]["seeds"]}
    squad = collections.get("squad", {}).get("found", {})
    over = None
    if learnt in squad and "retriever" in squad and "200" in squad[learnt]:
        over = round(squad[learnt]["200"] / max(squad["retriever"]["200"], 1e-9), 3)
    return {
        "learnt_order": learnt,
        "collections": collections,
        "worst_ratio": round(min(ratios), 3) if ratios else None,
        "mean_ratio_at_200": round(float(np.mean(at200)), 3) if at200 else None,
        "squad_over_retriever_at_200": over,
    }


def render_summary(out: dict[str, Any]) -> str:
    """The summary's Markdown: one row per collection, learnt vs the best static order at each budget."""
    s = out["summary"]
    lines = [f"`{out['command']}`", "", f"# Review queue: learnt ({s['learnt_order']}) vs the best static order", ""]
    lines += [f"- {n}" for n in out["notes"]]
    lines += _summary_rows(s, [str(b) for b in out["budgets"]])
    if out.get("summary_vs_adapter_retriever_margin"):
        lines += ["", "## Against the three orders the issue's table used (adapter, retriever, margin) only", ""]
        lines += _summary_rows(out["summary_vs_adapter_retriever_margin"], [str(b) for b in out["budgets"]])
    return "\n".join(lines) + "\n"


def _summary_rows(s: dict[str, Any], budgets: list[str]) -> list[str]:
    lines = ["", "| collection | " + " | ".join(f"N={b}: learnt / best static" for b in budgets) + " |"]
    lines.append("|---|" + "---|" * len(budgets))
    for name, c in s["collections"].items():
        cells = []
        for b in budgets:
            best = c["best_static"].get(b)
            if best is None:
                cells.append("–")
                continue
            cells.append(f"{c['found'][s['learnt_order']][b]:.1f} / {best['found']:.1f} {best['order']} "
                         f"(**{best['ratio']:.2f}x**)")  # fmt: skip
        lines.append(f"| {name} (seeds {c['seeds']}) | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"- worst ratio (every collection, N = 100, 200, 400): {s['worst_ratio']} (target >= 0.95)",
        f"- mean ratio at 200: {s['mean_ratio_at_200']} (target >= 1.3)",
        f"- SQuAD learnt / retriever at 200: {s['squad_over_retriever_at_200']} (target >= 2.0)",
    ]
    return lines


def dev_summary(folder: Path, names: list[str], stem: Path, command: str) -> dict[str, Any]:
    """``<stem>.{json,md}``: every adaptive order and bandit variant tried on the dev halves, against the best static.

    Reads ``<folder>/<collection>.json`` (``--split dev`` runs, whatever orders each invocation ran) and scores each
    adaptive order as the summary scores the learnt one: worst ratio at 100/200/400 and the mean ratio at 200.
    """
    budgets = (50, 100, 200, 400)
    files: dict[str, dict[str, Any]] = {}
    for name in names:
        path = folder / f"{name}.json"
        if path.is_file():
            data = json.loads(path.read_text())
            orders = sorted({r["order"] for r in data["results"].values()})
            have = [b for b in budgets if all(str(b) in r["found"] for r in data["results"].values())]
            data["table"] = summarize(data["results"], have, orders)["table"]
            files[name] = data
    adaptive = sorted({o for d in files.values() for o in d["table"] if o not in STATIC_ORDERS and o != "random"})
    variants = {o: summary_table(files, o, budgets) for o in adaptive}
    out = {"command": command, "budgets": list(budgets), "collections": list(files), "variants": variants,
           "settings": {o: BANDIT_VARIANTS.get(o.split(":", 1)[-1]) for o in adaptive}}  # fmt: skip
    lines = [f"`{command}`", "", "# Review queue: every order tried on the dev halves (issue 26)", ""]
    lines += [
        "- dev halves: queries whose md5 is even; the planted collections' 3 seeds are 3 plantings (each its own "
        "phase-2 run), SQuAD's 3 seeds draw 80 % of the dev queries of one unplanted run",
        "- `bandit` is BanditConfig's defaults as committed; `bandit:<name>` a variant of "
        "`scripts/bench_review.py`'s BANDIT_VARIANTS (spelled out in full; `former` is the default before this round)",
        "- each cell: the order's found / the best static order's found at that budget (adapter, retriever, margin, "
        "bm25, closeness; best per collection and budget)",
        "",
        "| order | worst ratio (100-400) | mean ratio @200 | "
        + " | ".join(f"{c} @100 / @200 / @400" for c in files)
        + " |",
        "|---|---|---|" + "---|" * len(files),
    ]
    for o, v in sorted(variants.items(), key=lambda kv: -(kv[1]["worst_ratio"] or 0)):
        cells = []
        for c in files:
            best = v["collections"][c]["best_static"]
            cells.append(" / ".join(f"{best[b]['ratio']:.2f}" if b in best else "–" for b in ("100", "200", "400")))
        lines.append(f"| {o} | {v['worst_ratio']} | {v['mean_ratio_at_200']} | " + " | ".join(cells) + " |")
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(out, indent=1))
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return out


def write_summary(names: list[str], learnt: str, stem: Path, command: str) -> dict[str, Any]:
    """``<stem>.json`` and ``.md`` from the collections' result files that exist (the missing ones are named)."""
    files, missing = {}, []
    for name in names:
        path = Path(f"results/review_loop_{name}.json")
        data = json.loads(path.read_text()) if path.is_file() else {}
        if data.get("table"):
            files[name] = data
        else:
            missing.append(name)
    budgets = (50, 100, 200, 400)
    notes = [
        "test halves (md5 of the query id, odd), means over seeds; each collection's own file says how its runs "
        "were built and what was tried on dev",
        f"static orders: {', '.join(STATIC_ORDERS)}; the best of them is taken per collection and budget",
        *([f"not run (no result file): {', '.join(missing)}"] if missing else []),
    ]
    three = ("adapter", "retriever", "margin")
    out = {"command": command, "budgets": list(budgets), "notes": notes,
           "summary": summary_table(files, learnt, budgets),
           "summary_vs_adapter_retriever_margin": summary_table(files, learnt, budgets, three)}  # fmt: skip
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(out, indent=1))
    stem.with_suffix(".md").write_text(render_summary(out))
    return out


def main(argv: list[str] | None = None) -> None:
    raw = list(argv if argv is not None else sys.argv[1:])
    if raw and raw[0] == "dev-summary":
        p = argparse.ArgumentParser(description="write results/review_loop_dev.{md,json} from the --split dev runs")
        p.add_argument("dev_summary")
        p.add_argument("--collections", nargs="+", default=list(COLLECTIONS))
        p.add_argument("--folder", default="results/review_loop_dev", help="where the --split dev runs wrote")
        p.add_argument("--out", default="results/review_loop_dev")
        a = p.parse_args(raw)
        command = "python scripts/bench_review.py " + " ".join(shlex.quote(x) for x in raw)
        dev_summary(Path(a.folder), a.collections, Path(a.out), command)
        print(Path(a.out).with_suffix(".md").read_text())
        return
    if raw and raw[0] == "summary":
        p = argparse.ArgumentParser(description="write results/review_loop_summary.{md,json}")
        p.add_argument("summary")
        p.add_argument("--collections", nargs="+", default=list(COLLECTIONS))
        p.add_argument("--learnt", default="bandit", help="the order reported as learnt")
        p.add_argument("--out", default="results/review_loop_summary")
        a = p.parse_args(raw)
        command = "python scripts/bench_review.py " + " ".join(shlex.quote(x) for x in raw)
        print(render_summary(write_summary(a.collections, a.learnt, Path(a.out), command)))
        return
    args = parse_args(argv)
    json_path, md_path = args.out.with_suffix(".json"), args.out.with_suffix(".md")
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "predictions")}
    old = json.loads(json_path.read_text()) if json_path.is_file() else {}
    same = _same_settings(old.get("settings"), settings)
    results = old.get("results", {}) if same else {}
    command = "python scripts/bench_review.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    out: dict[str, Any] = {"command": command, "dataset": args.dataset, "settings": settings, "notes": _notes(args)}
    inputs = _inputs(args)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    for seed, whole in inputs:
        frame = split_frame(whole, args.split, args.subsample, seed)
        for order in args.orders:
            key = f"{order}/{seed}"
            if key in results:
                continue
            results[key] = run_one(frame, order, seed, args)
            print(f"{key}: found {results[key]['found']}", flush=True)
            json_path.write_text(json.dumps({**out, "results": results}))  # after each result: a rerun resumes
    out.update(summarize(results, args.budgets, args.orders))
    out["targets"] = targets(out["summary"], args.dataset)
    out["full_refit"] = old.get("full_refit") if same else None
    out["full_refit"] = out["full_refit"] or time_full_refit(inputs[0][1])
    if not args.no_calibration:
        out["calibration"] = calibrate(inputs, args, results, old.get("calibration") if same else None)
    out["results"] = results
    json_path.write_text(json.dumps(out, indent=1))
    md_path.write_text(render(out))
    print(render(out))


if __name__ == "__main__":
    main()
