"""The review queue: which suspected false negative a reviewer should see next.

A queue order is a function from the verdicts so far to a score per candidate
(:mod:`~rrra_core.review.orders`). The ``learnt`` order refits a small model on
those verdicts every N of them, on features the adapter does not see (lexical
evidence, closeness to the labelled positives, per-query feedback:
:mod:`~rrra_core.review.features`, :mod:`~rrra_core.review.learner`).
:mod:`~rrra_core.review.simulate` replays a review session against a known
truth, which is how ``scripts/bench_review.py`` compares the orders.
"""

from __future__ import annotations

from rrra_core.review.features import (
    FEEDBACK_FEATURES,
    STATIC_FEATURES,
    LexicalConfig,
    candidates_frame,
    feedback_features,
    load_or_build_features,
)
from rrra_core.review.learner import Fit, Learner, LearnerConfig, prior_scores
from rrra_core.review.orders import ORDERS, make_order
from rrra_core.review.simulate import SimConfig, SimResult, is_adaptive, simulate
from rrra_core.review.synthetic import synthetic_frame

__all__ = [
    "FEEDBACK_FEATURES",
    "STATIC_FEATURES",
    "LexicalConfig",
    "candidates_frame",
    "feedback_features",
    "load_or_build_features",
    "Fit",
    "Learner",
    "LearnerConfig",
    "prior_scores",
    "ORDERS",
    "make_order",
    "SimConfig",
    "SimResult",
    "is_adaptive",
    "simulate",
    "synthetic_frame",
]
