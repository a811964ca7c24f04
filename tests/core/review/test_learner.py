"""The learnt order: it finds more false negatives once it learns from verdicts, and says why when it cannot fit."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from rrra_core.review import Learner, LearnerConfig, SimConfig, make_order, prior_scores, simulate, synthetic_frame


def _found(frame: pd.DataFrame, cfg: LearnerConfig, budget: int, seed: int) -> int:
    res = simulate(
        frame, make_order("learnt", frame, cfg, seed), SimConfig(budget=budget, seed=seed, pool_metrics=False)
    )
    return res.found_at(budget)


def test_refitting_finds_more_false_negatives_than_the_unrefitted_prior() -> None:
    """Same weak prior, same frames: learning from the verdicts (model + cluster boost) must find clearly more."""
    weak = replace(LearnerConfig(), prior=(("score", 1.0),))
    frozen = replace(weak, model="none", fn_boost=0.0, rej_penalty=0.0)
    learnt, static = [], []
    for seed in range(3):
        frame = synthetic_frame(n_queries=80, per_query=30, seed=seed)
        learnt.append(_found(frame, weak, 150, seed))
        static.append(_found(frame, frozen, 150, seed))
    assert np.mean(learnt) >= 1.25 * np.mean(static), (learnt, static)
    assert all(a > b for a, b in zip(learnt, static, strict=True)), (learnt, static)


def test_the_model_finds_signal_the_prior_misses() -> None:
    """Truth carried by a feature the prior ignores: only a fitted model can find it."""
    frame = synthetic_frame(n_queries=60, per_query=30, seed=5)
    frame["q_coverage"] = frame["truth"] * 0.5 + np.random.default_rng(0).random(len(frame))
    blind = (("score", 1.0),)
    with_model = replace(LearnerConfig(), prior=blind, fn_boost=0.0, rej_penalty=0.0, blend=1.0)
    prior_only = replace(with_model, model="none")
    assert _found(frame, with_model, 200, 0) >= 2 * _found(frame, prior_only, 200, 0)


def test_no_verdicts_falls_back_to_the_prior_and_says_so() -> None:
    frame = synthetic_frame(seed=1)
    cfg = LearnerConfig()
    fit = Learner(frame, cfg).refit({})
    assert not fit.fitted and fit.proba is None
    assert "no verdicts" in fit.note and "prior" in fit.note
    assert np.argsort(-fit.scores)[0] == np.argsort(-prior_scores(frame, cfg.prior))[0]


def test_one_class_falls_back_with_a_clear_message() -> None:
    frame = synthetic_frame(seed=2)
    learner = Learner(frame, LearnerConfig())
    negatives = np.flatnonzero(~frame["truth"].to_numpy())[:15]
    fit = learner.refit({int(i): False for i in negatives})
    assert not fit.fitted
    assert "only rejections" in fit.note and "prior" in fit.note
    positives = np.flatnonzero(frame["truth"].to_numpy())[:3]
    fit = learner.refit({int(i): True for i in positives})
    assert not fit.fitted and "only confirmed false negatives" in fit.note


def test_a_rejection_lowers_and_a_confirmation_raises_the_rest_of_its_query() -> None:
    frame = synthetic_frame(seed=3)
    learner = Learner(frame, replace(LearnerConfig(), model="none"))
    rows = np.flatnonzero(frame["query_id"].to_numpy() == "q0")
    before = learner.refit({}).scores
    up = learner.refit({int(rows[0]): True}).scores
    down = learner.refit({int(rows[0]): False}).scores
    assert (up[rows[1:]] > before[rows[1:]]).all() and (down[rows[1:]] < before[rows[1:]]).all()
    other = np.flatnonzero(frame["query_id"].to_numpy() != "q0")
    assert np.allclose(up[other], before[other])


def test_both_classes_fit_a_model() -> None:
    frame = synthetic_frame(seed=4)
    truth = frame["truth"].to_numpy()
    verdicts = {int(i): bool(truth[i]) for i in np.r_[np.flatnonzero(truth)[:5], np.flatnonzero(~truth)[:20]]}
    for model in ("logistic", "gbm"):
        fit = Learner(frame, replace(LearnerConfig(), model=model)).refit(verdicts)
        assert fit.fitted and fit.proba is not None and model in fit.note
        assert fit.scores.shape == (len(frame),)
