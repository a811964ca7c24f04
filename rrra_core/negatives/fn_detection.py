"""False-negative detection: planting hidden positives and scoring a review queue (pure functions).

A benchmark hides a fraction of each training query's positives; the pipeline
never sees them. Among the mined hard negatives, the hidden ones are the true
false negatives, and every suspicion score (the adapter's P(FN|neg), the raw
retriever score, SimANS closeness, the relative margin) is judged by how well
it ranks them first: AUROC, average precision, and precision of the top 50 and
100 of a global review queue. The ROC and precision-recall curves are kept too,
thinned to a few hundred points so a results file can carry them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from rrra_core.negatives.mining import query_rng

#: Points kept per ROC or PR curve: enough to draw it, small enough for a results file.
MAX_CURVE_POINTS = 200

__all__ = [
    "MAX_CURVE_POINTS",
    "plant_false_negatives",
    "heuristic_scores",
    "detection_metrics",
    "detection_curves",
    "thin_curve",
    "precision_at",
]


def plant_false_negatives(
    qrels: Mapping[str, Mapping[str, int]], fraction: float, seed: int
) -> tuple[dict[str, dict[str, int]], dict[str, set[str]]]:
    """Hide ``round(fraction * n_pos)`` positives of each query, keeping at least one visible.

    Returns (visible qrels, hidden positives per query). Deterministic per query.
    """
    visible: dict[str, dict[str, int]] = {}
    hidden: dict[str, set[str]] = {}
    for q in sorted(qrels):
        pos = sorted(d for d, r in qrels[q].items() if r > 0)
        n_hide = min(int(round(fraction * len(pos))), max(len(pos) - 1, 0))
        rng = query_rng(seed, q)
        hide = set(rng.choice(pos, size=n_hide, replace=False).tolist()) if n_hide else set()
        visible[q] = {d: r for d, r in qrels[q].items() if d not in hide and r > 0}
        if hide:
            hidden[q] = hide
    return visible, hidden


def heuristic_scores(
    scores: np.ndarray, pos_scores: np.ndarray, tau: float = 0.05, simans_a: float = 0.5, simans_b: float = 0.0
) -> dict[str, np.ndarray]:
    """Suspicion scores that need no adapter, for candidates with their query's ``s_pos``.

    - ``retriever``: the raw score (hardest first);
    - ``simans``: SimANS closeness ``exp(-a (s/τ - s_pos/τ - b)^2)`` (as its sampler weighs);
    - ``margin``: ``s / s_pos``, the quantity the relative-margin filter thresholds.
    """
    s = np.asarray(scores, dtype=np.float64)
    sp = np.asarray(pos_scores, dtype=np.float64)
    return {
        "retriever": s,
        "simans": np.exp(-simans_a * np.square(s / tau - sp / tau - simans_b)),
        "margin": s / np.where(np.abs(sp) > 1e-9, sp, 1e-9),
    }


def precision_at(truth: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Share of true false negatives among the ``k`` highest-scoring candidates (ties: input order)."""
    order = np.argsort(-np.asarray(scores), kind="stable")[:k]
    return float(np.asarray(truth)[order].mean()) if len(order) else float("nan")


def detection_metrics(truth: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """AUROC, AP, P@50 and P@100 of ``scores`` for finding ``truth`` (bool) among candidates."""
    truth = np.asarray(truth, dtype=bool)
    out = {"candidates": int(truth.size), "false_negatives": int(truth.sum())}
    if truth.all() or not truth.any():
        return {**out, "AUROC": float("nan"), "AP": float("nan"), "P@50": float("nan"), "P@100": float("nan")}
    return {
        **out,
        "AUROC": float(roc_auc_score(truth, scores)),
        "AP": float(average_precision_score(truth, scores)),
        "P@50": precision_at(truth, scores, 50),
        "P@100": precision_at(truth, scores, 100),
    }


def thin_curve(x: np.ndarray, y: np.ndarray, max_points: int = MAX_CURVE_POINTS) -> np.ndarray:
    """Indices of at most ``max_points`` points of the polyline (x, y), evenly spaced along its length; both ends kept.

    Spacing by length rather than by index keeps the curve's shape where
    thresholds are sparse (the steep start of a PR curve) and drops the
    thousands of near-identical points where they are dense.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n = len(x)
    if n <= max_points:
        return np.arange(n)
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))])
    idx = np.searchsorted(arc, np.linspace(0.0, arc[-1], max_points - 1), side="left")
    return np.unique(np.concatenate([idx.clip(0, n - 1), [n - 1]]))


def detection_curves(
    truth: np.ndarray, scores: np.ndarray, max_points: int = MAX_CURVE_POINTS, digits: int = 5
) -> dict[str, Any] | None:
    """ROC (fpr, tpr) and precision-recall points of ``scores`` for finding ``truth``, at most ``max_points`` each.

    Returns None when the truth is all one class (no curve exists). ``prevalence``
    is the share of true false negatives: the precision of a random ranking.
    """
    truth = np.asarray(truth, dtype=bool)
    if truth.all() or not truth.any():
        return None
    fpr, tpr, _ = roc_curve(truth, scores)
    precision, recall, _ = precision_recall_curve(truth, scores)
    # sklearn appends (recall 0, precision 1), which no threshold reaches; drawn, it is a spike that was never measured.
    precision, recall = precision[:-1], recall[:-1]
    roc = thin_curve(fpr, tpr, max_points)
    pr = thin_curve(recall, precision, max_points)

    def pts(v: np.ndarray, idx: np.ndarray) -> list[float]:
        return np.round(v[idx], digits).tolist()

    return {
        "roc": {"fpr": pts(fpr, roc), "tpr": pts(tpr, roc)},
        "pr": {"recall": pts(recall, pr), "precision": pts(precision, pr)},
        "prevalence": round(float(truth.mean()), 6),
    }
