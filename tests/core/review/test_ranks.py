"""The fast queue refit (issue 27): every shortcut gives what the straightforward pandas code gave, bit for bit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rrra_core.review import synthetic_frame
from rrra_core.review.bandit import (
    ADAPTIVE_ARMS,
    ARMS,
    FUSED,
    BanditConfig,
    BanditLearner,
    _head,  # noqa: PLC2701 - the plan's shortcut, checked against a full sort
    arm_scores,
    credited,
)
from rrra_core.review.features import feedback_features
from rrra_core.review.learner import Learner, LearnerConfig, prior_scores
from rrra_core.review.ranks import RankCache, group_rank_desc, pct_rank

_EPS = 1e-6


# The code before the shortcuts, kept here as the reference.
def _ref_pct_logit(values: np.ndarray) -> np.ndarray:
    ranks = pd.Series(values).rank(pct=True, method="average").to_numpy()
    n = max(len(values), 1)
    p = np.clip(ranks - 0.5 / n, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def _ref_prior(frame: pd.DataFrame, prior: tuple[tuple[str, float], ...]) -> np.ndarray:
    acc = np.zeros(len(frame))
    for col, w in prior:
        if col.endswith("@q"):
            values = -frame.groupby("query_id")[col[:-2]].rank(ascending=False, method="average")
        else:
            values = frame[col]
        acc += w * values.rank(pct=True, method="average").to_numpy()
    return acc / sum(w for _, w in prior)


_COLUMNS = {"adapter": "p_fn_given_neg", "retriever": "score", "margin": "margin", "bm25": "bm25", "pos_sim": "pos_sim"}


def _ref_arm(frame: pd.DataFrame, arm: str) -> np.ndarray:
    if arm in _COLUMNS:
        return _ref_pct_logit(frame[_COLUMNS[arm]].to_numpy(dtype=float))
    if arm == "pos_sim@q":
        within = -frame.groupby("query_id")["pos_sim"].rank(ascending=False, method="average").to_numpy()
        return _ref_pct_logit(within + 1e-3 * frame["pos_sim"].rank(pct=True).to_numpy())
    if arm == "prior":
        return _ref_pct_logit(_ref_prior(frame, LearnerConfig().prior))
    return _ref_pct_logit(np.mean([_ref_arm(frame, a) for a in FUSED], axis=0))


def _ref_credited(scores: np.ndarray, reviewed: np.ndarray, open_: np.ndarray, window: int) -> np.ndarray:
    pool = np.sort(scores[open_])
    return len(pool) - np.searchsorted(pool, scores[reviewed], side="right") < window


def _frames() -> list[pd.DataFrame]:
    """Plain, tie-ridden (rounded columns, equal closeness across queries) and numbered-query frames."""
    plain = synthetic_frame(n_queries=50, per_query=20, seed=0)
    ties = synthetic_frame(n_queries=40, per_query=25, seed=1)
    for col in ("score", "bm25", "pos_sim", "p_fn_given_neg", "margin"):
        ties[col] = ties[col].round(2)
    ties.loc[ties.index % 7 == 0, "pos_sim"] = 0.0
    numbered = synthetic_frame(n_queries=30, per_query=15, seed=2)
    numbered["query_id"] = numbered["query_id"].str[1:].astype(np.int32)
    return [plain, ties, numbered]


@pytest.mark.parametrize("n", [1, 2, 7, 1000, 20011])
def test_ranks_equal_pandas_average_ranks_with_and_without_ties(n: int) -> None:
    rng = np.random.default_rng(n)
    groups = rng.integers(0, max(n // 15, 1), n)
    for values in (
        rng.random(n),
        np.round(rng.standard_normal(n), 1),
        rng.integers(0, 4, n).astype(float),
        np.where(rng.random(n) < 0.5, 0.0, -0.0),
        rng.integers(0, 9, n),
        np.where(rng.random(n) < 0.1, np.nan, rng.random(n)),
    ):
        expected = pd.Series(values).rank(pct=True, method="average").to_numpy()
        np.testing.assert_array_equal(pct_rank(values), expected)
        within = pd.Series(values).groupby(groups).rank(ascending=False, method="average").to_numpy()
        np.testing.assert_array_equal(group_rank_desc(groups, values), within)


def test_every_static_arm_and_the_prior_equal_the_pandas_reference() -> None:
    for frame in _frames():
        ranks = RankCache(frame)
        for arm in (a for a in ARMS if a not in ADAPTIVE_ARMS):
            np.testing.assert_array_equal(arm_scores(frame, arm, ranks), _ref_arm(frame, arm), err_msg=arm)
            np.testing.assert_array_equal(arm_scores(frame, arm), _ref_arm(frame, arm), err_msg=arm)
        prior = LearnerConfig().prior
        np.testing.assert_array_equal(prior_scores(frame, prior, ranks), _ref_prior(frame, prior))


def test_credit_and_the_plan_head_equal_a_full_sort() -> None:
    rng = np.random.default_rng(0)
    for n, ties in ((50, False), (400, True), (3000, True)):
        scores = rng.standard_normal(n)
        if ties:
            scores = np.round(scores, 1)
        reviewed = rng.choice(n, size=n // 5, replace=False)
        open_ = np.ones(n, dtype=bool)
        open_[reviewed] = False
        for window in (0, 1, 5, 20, n):
            np.testing.assert_array_equal(
                credited(scores, reviewed, open_, window), _ref_credited(scores, reviewed, open_, window)
            )
        full = np.argsort(-scores, kind="stable")
        for k in (1, 3, 25, n - 1, n, n + 5):
            np.testing.assert_array_equal(_head(scores, k), full[:k])


def test_learner_shortcuts_equal_the_full_refit() -> None:
    frame = _frames()[1]
    truth = frame["truth"].to_numpy()
    verdicts = {int(i): bool(truth[i]) for i in range(0, len(frame), 9)}
    codes = RankCache(frame).codes
    a, b = feedback_features(frame, verdicts), feedback_features(frame, verdicts, codes)
    pd.testing.assert_frame_equal(a, b)
    rows = np.arange(3, len(frame), 5)
    for cfg in (LearnerConfig(), LearnerConfig(fn_boost=0.0, rej_penalty=0.0), LearnerConfig(model="none")):
        learner = Learner(frame, cfg, seed=0)
        for given in (verdicts, {}, {k: v for k, v in verdicts.items() if not v}):
            np.testing.assert_array_equal(learner.scores_at(given, rows), learner.refit(given).scores[rows])


def _session(frame: pd.DataFrame, learner: BanditLearner, steps: int = 4) -> list:
    """Refits with a reviewer who judges the top of each order; every output the queue shows."""
    truth = frame["truth"].to_numpy()
    verdicts: dict[int, bool] = {}
    out = []
    for step in range(steps):
        fit = learner.refit(verdicts)
        out.append((fit.scores, fit.note, learner.explain(), learner.state()))
        top = [int(i) for i in np.argsort(-fit.scores, kind="stable") if int(i) not in verdicts][: 10 + 5 * step]
        verdicts.update({i: bool(truth[i]) for i in top})
    return out


def test_a_learner_on_saved_ranks_refits_as_one_that_computed_them(tmp_path) -> None:  # noqa: ANN001
    frame = _frames()[0]
    cfg = BanditConfig()
    fresh = BanditLearner(frame, cfg, seed=1)
    fresh.ranks.save(tmp_path / "arms", "stamp")
    ranks = RankCache(frame)
    assert not RankCache(frame).load(tmp_path / "arms", "other stamp")
    assert ranks.load(tmp_path / "arms", "stamp") and ranks.saved == fresh.ranks.saved
    again = BanditLearner(frame, cfg, seed=1, ranks=ranks)
    for (s1, n1, e1, st1), (s2, n2, e2, st2) in zip(_session(frame, fresh), _session(frame, again), strict=True):
        np.testing.assert_array_equal(s1, s2)
        assert (n1, e1, st1) == (n2, e2, st2)
    (tmp_path / "arms" / "index.json").write_text("{not json")
    assert not RankCache(frame).load(tmp_path / "arms", "stamp")  # a damaged cache is recomputed, not read
