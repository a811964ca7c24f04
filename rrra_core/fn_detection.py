"""False-negative detection: planting hidden positives and scoring a review queue (pure functions).

A benchmark hides a fraction of each training query's positives; the pipeline
never sees them. Among the mined hard negatives, the hidden ones are the true
false negatives, and every suspicion score (the adapter's P(FN|neg), the raw
retriever score, SimANS closeness, the relative margin) is judged by how well
it ranks them first: AUROC, average precision, and precision of the top 50 and
100 of a global review queue.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from .mining import query_rng

__all__ = ["plant_false_negatives", "heuristic_scores", "detection_metrics", "precision_at"]


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


def heuristic_scores(scores: np.ndarray, pos_scores: np.ndarray, tau: float = 0.05, simans_a: float = 0.5, simans_b: float = 0.0) -> dict[str, np.ndarray]:
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
