"""Hard-negative sampling weights for every sampler phase 3 compares (pure functions).

All weights are over one query's candidate pool (its top-K with labelled
positives removed), unnormalised and non-negative:

- ``uniform``: every candidate alike (the "uniform top-K" baseline);
- ``topk``: the ``n`` best-scoring candidates, deterministically;
- ``simans``: ``exp(-a (s_i/τ - s_pos/τ - b)^2)``. SimANS was defined on raw
  dot-product logits; our scores are cosines, so we apply it on the logit scale
  ``s/τ`` the loss uses (otherwise a = 0.5 would be almost uniform);
- ``margin``: uniform over candidates with ``s_i <= (1 - margin) s_pos``;
- ``rrra``: ``s_HN,i * (1 - p_FN,i)^γ`` with ``s_HN`` a softmax of ``s/τ_h``
  over the pool (RRRA.md, "Resampling").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from rrra_core.negatives.mining import margin_keep_mask, simans_weights

__all__ = ["SAMPLERS", "hardness", "rrra_weights", "sampler_weights", "pool_coverage", "zero_weight_reason"]

SAMPLERS = ("rrra", "uniform", "topk", "simans", "margin")


def hardness(scores: np.ndarray, tau: float) -> np.ndarray:
    """``s_HN``: the retriever's scores mapped to (0, 1] by a softmax over the pool."""
    z = np.asarray(scores, dtype=np.float64) / tau
    z -= z.max(initial=0.0) if z.size else 0.0
    e = np.exp(z)
    return e / e.sum() if e.size else e


def rrra_weights(scores: np.ndarray, p_fn: np.ndarray, gamma: float, tau: float) -> np.ndarray:
    """RRRA resampling weights ``s_HN · (1 − p_FN)^γ``, normalised to sum to 1."""
    w = hardness(scores, tau) * np.power(np.clip(1.0 - np.asarray(p_fn, dtype=np.float64), 0.0, 1.0), gamma)
    total = w.sum()
    return w / total if total > 0 else w


def sampler_weights(
    sampler: str,
    scores: np.ndarray,
    pos_score: float,
    p_fn: np.ndarray | None,
    *,
    gamma: float = 2.0,
    hardness_tau: float = 0.05,
    simans_a: float = 0.5,
    simans_b: float = 0.0,
    logit_tau: float = 0.05,
    relative_margin: float = 0.05,
    n: int = 1,
) -> np.ndarray:
    """Sampling weights over one pool for ``sampler`` (see the module docstring)."""
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0:
        return s
    if sampler == "uniform":
        return np.ones_like(s)
    if sampler == "topk":
        w = np.zeros_like(s)
        w[np.argsort(-s, kind="stable")[:n]] = 1.0
        return w
    if sampler == "simans":
        return simans_weights(s / logit_tau, pos_score / logit_tau, simans_a, simans_b)
    if sampler == "margin":
        return margin_keep_mask(s, pos_score, relative_margin).astype(np.float64)
    if sampler == "rrra":
        if p_fn is None:
            raise ValueError("the rrra sampler needs the adapter's P(FN|neg) for every candidate")
        return rrra_weights(s, p_fn, gamma, hardness_tau)
    raise ValueError(f"unknown sampler {sampler!r}; expected one of {', '.join(SAMPLERS)}")


def pool_coverage(weights: Mapping[str, np.ndarray], queries: Iterable[str]) -> dict[str, list[str]]:
    """The training queries that can get no hard negative from their pool, by reason.

    ``no_candidates``: the query has no pool, or nothing was left in it once its
    positives were removed. ``zero_weight``: it has candidates but the sampler
    gives every one weight zero (for ``rrra``, the adapter puts P(FN|neg) at 1
    on all of them; for ``margin``, every candidate is within the margin of the
    positive). Both kinds train on in-batch negatives only, which is what the
    method asks for, but a user should hear about it: a whole pool of suspected
    false negatives is usually an untrained adapter or a mislabelled query.
    """
    out: dict[str, list[str]] = {"no_candidates": [], "zero_weight": []}
    for q in sorted(set(queries)):
        w = weights.get(q)
        if w is None or np.asarray(w).size == 0:
            out["no_candidates"].append(q)
        elif not (np.asarray(w) > 0).any():
            out["zero_weight"].append(q)
    return out


def zero_weight_reason(sampler: str) -> str:
    """Why ``sampler`` gives every candidate of a pool weight zero, in words for logs and the app."""
    return {
        "rrra": "the adapter put P(FN|neg) at 1 on every candidate",
        "margin": "every candidate was within the margin of the positive",
    }.get(sampler, "the sampler gave every candidate weight zero")
