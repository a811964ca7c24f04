"""The review queue: which suspected false negative a reviewer should see next.

A queue order is a function from the verdicts so far to a score per candidate
(:mod:`~rrra_core.review.orders`). The ``bandit`` order learns from those verdicts
which signal to follow (:mod:`~rrra_core.review.bandit`); the ``learnt`` order
refits a small model on them every N of them, on features the adapter does not see (lexical
evidence, closeness to the labelled positives, per-query feedback:
:mod:`~rrra_core.review.features`, :mod:`~rrra_core.review.learner`).
:mod:`~rrra_core.review.simulate` replays a review session against a known
truth, which is how ``scripts/bench_review.py`` compares the orders.
In the app, :mod:`~rrra_core.review.refit` turns the store's verdicts into a
new model version in the run folder (:mod:`~rrra_core.review.versions`;
``scripts/refit_queue.py`` is its driver) and :mod:`~rrra_core.review.queue`
orders the live queue by any order, the learnt one from the latest version.
"""

from __future__ import annotations

from rrra_core.review.bandit import ARMS, ArmBelief, BanditConfig, BanditLearner
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
from rrra_core.review.queue import queue_scores
from rrra_core.review.refit import RefitConfig, RefitResult, fit_version, refit_run, run_frame
from rrra_core.review.simulate import SimConfig, SimResult, is_adaptive, simulate
from rrra_core.review.synthetic import synthetic_frame
from rrra_core.review.versions import (
    QueueVersion,
    RefitBusy,
    read_latest,
    read_scores,
    refit_lock,
    usable_latest,
    write_version,
)

__all__ = [
    "ARMS",
    "ArmBelief",
    "BanditConfig",
    "BanditLearner",
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
    "queue_scores",
    "RefitConfig",
    "RefitResult",
    "fit_version",
    "refit_run",
    "run_frame",
    "QueueVersion",
    "RefitBusy",
    "read_latest",
    "read_scores",
    "usable_latest",
    "refit_lock",
    "write_version",
]
