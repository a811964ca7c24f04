"""The review queue's orders, as functions over a candidates frame.

Every order maps the verdicts so far to one score per row (higher = show
sooner), wrapped in a :class:`~rrra_core.review.learner.Fit`. The static orders
ignore the verdicts; ``learnt`` and ``uncertainty`` refit on them.

- ``bandit``: Thompson sampling among the signals and the fitted model, each
  scored on the hit rate of what it would have shown, with a learnt per-query
  boost (:mod:`~rrra_core.review.bandit`);
- ``learnt``: the online learner (fixed prior, model, fixed per-query cluster boost);
- ``adapter``: the adapter's static P(FN|neg);
- ``retriever``: the retriever score (hardest negative first);
- ``margin``: score / the query's positive score (the relative-margin quantity);
- ``bm25``: the BM25 score of the pair (lexical match to the query);
- ``closeness``: TF-IDF closeness to the query's labelled positives;
- ``uncertainty``: active learning's choice, the row whose P(FN) is closest to
  0.5: the learnt model's once it can be fitted, the adapter's before;
- ``random``: a seeded shuffle, the floor.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from rrra_core.review.bandit import BanditConfig, BanditLearner
from rrra_core.review.learner import Fit, Learner, LearnerConfig

__all__ = [
    "ORDERS",
    "ADAPTIVE_ORDERS",
    "STATIC_ORDERS",
    "Rescore",
    "retriever",
    "adapter",
    "margin",
    "random",
    "uncertainty",
    "make_order",
]

ORDERS: tuple[str, ...] = (
    "bandit",
    "learnt",
    "adapter",
    "retriever",
    "margin",
    "bm25",
    "closeness",
    "uncertainty",
    "random",
)
STATIC_ORDERS: tuple[str, ...] = ("adapter", "retriever", "margin", "bm25", "closeness")
ADAPTIVE_ORDERS: frozenset[str] = frozenset({"bandit", "learnt", "uncertainty"})
Rescore = Callable[[Mapping[int, bool]], Fit]


def retriever(frame: pd.DataFrame) -> np.ndarray:
    """The retriever score: the hardest negatives are the likeliest false negatives."""
    return frame["score"].to_numpy(dtype=float)


def adapter(frame: pd.DataFrame) -> np.ndarray:
    """The adapter's P(FN|neg)."""
    return frame["p_fn_given_neg"].to_numpy(dtype=float)


def margin(frame: pd.DataFrame) -> np.ndarray:
    """Score over the query's positive score: near or above 1 means as close to the query as its positive."""
    return frame["margin"].to_numpy(dtype=float)


def random(frame: pd.DataFrame, seed: int) -> np.ndarray:
    """A seeded shuffle."""
    return np.random.default_rng(seed).random(len(frame))


def uncertainty(proba: np.ndarray) -> np.ndarray:
    """Closest to 0.5 first: the rows a classifier is least sure about."""
    return -np.abs(np.asarray(proba, dtype=float) - 0.5)


def _static(scores: np.ndarray, name: str) -> Rescore:
    def rescore(verdicts: Mapping[int, bool]) -> Fit:
        return Fit(scores, False, f"static {name} order", 0.0)

    return rescore


def _uncertainty(frame: pd.DataFrame, cfg: LearnerConfig, seed: int) -> Rescore:
    learner = Learner(frame, cfg, seed)
    fallback = uncertainty(adapter(frame))

    def rescore(verdicts: Mapping[int, bool]) -> Fit:
        fit = learner.refit(verdicts)
        if fit.proba is None:
            return Fit(fallback, False, fit.note.split(":")[0] + ": adapter's P(FN|neg) closest to 0.5", fit.seconds)
        return Fit(uncertainty(fit.proba), True, fit.note, fit.seconds, fit.proba)

    return rescore


def make_order(
    name: str,
    frame: pd.DataFrame,
    cfg: LearnerConfig | None = None,
    seed: int = 0,
    bandit: BanditConfig | None = None,
    adapter_detection: float | None = None,
) -> Rescore:
    """The rescoring function of order ``name`` over ``frame`` (one of :data:`ORDERS`).

    ``adapter_detection`` (the run's held-out false-negative detection, if it
    recorded one) informs the ``bandit`` order's cold start.
    """
    cfg = cfg or LearnerConfig()
    if name == "bandit":
        return BanditLearner(frame, bandit or BanditConfig(), seed, adapter_detection).refit
    if name == "learnt":
        return Learner(frame, cfg, seed).refit
    if name == "uncertainty":
        return _uncertainty(frame, cfg, seed)
    static = {
        "adapter": adapter,
        "retriever": retriever,
        "margin": margin,
        "bm25": lambda f: f["bm25"].to_numpy(dtype=float),
        "closeness": lambda f: f["pos_sim"].to_numpy(dtype=float),
    }
    if name in static:
        return _static(static[name](frame), name)
    if name == "random":
        return _static(random(frame, seed), name)
    raise ValueError(f"unknown order {name!r}; choose from {', '.join(ORDERS)}")
