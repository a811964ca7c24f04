"""The bandit order: it follows whichever signal this collection's verdicts favour, and its boost is learnt."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rrra_core.review import SimConfig, make_order, simulate, synthetic_frame
from rrra_core.review.bandit import (
    BanditConfig,
    BanditLearner,
    adapter_skill,
    cold_start,
    credited,
    learnt_boost,
)
from rrra_core.review.features import feedback_features


def _scattered(seed: int, informative: str) -> pd.DataFrame:
    """A synthetic frame whose false negatives sit one per query (no clustering), found by one column alone."""
    frame = synthetic_frame(n_queries=150, per_query=20, hot_share=0.0, seed=seed)
    rng = np.random.default_rng(seed)
    truth = np.zeros(len(frame), dtype=bool)
    truth[rng.choice(len(frame), size=60, replace=False)] = True
    frame["truth"] = truth
    frame[informative] = frame[informative] + 3.0 * truth * frame[informative].std()
    return frame


def _found(frame: pd.DataFrame, order: str, seed: int, budget: int = 200) -> int:
    res = simulate(frame, make_order(order, frame, seed=seed), SimConfig(budget=budget, seed=seed, pool_metrics=False))
    return res.found_at(budget)


def test_bandit_keeps_up_with_the_one_informative_signal_wherever_it_is() -> None:
    """BM25 alone knows here, then the adapter alone: the bandit finds nearly as many as each, far above chance."""
    for informative, order, seed in (("bm25", "bm25", 0), ("p_fn_given_neg", "adapter", 1)):
        frame = _scattered(seed, informative)
        best = _found(frame, order, seed)
        bandit = _found(frame, "bandit", seed)
        assert bandit >= 0.8 * best, (informative, bandit, best)
        assert bandit > 3 * _found(frame, "random", seed), informative


def test_boost_is_learnt_where_false_negatives_cluster_and_vanishes_where_they_do_not() -> None:
    frame = synthetic_frame(n_queries=40, per_query=10, hot_share=0.3, fn_per_hot=4, seed=0)
    truth = frame["truth"].to_numpy()
    hot = frame.groupby("query_id")["truth"].transform("any").to_numpy()
    # Review every row of the hot queries and as many of the cold: hits cluster in queries with other hits.
    rows = np.concatenate([np.flatnonzero(hot), np.flatnonzero(~hot)[: int(hot.sum())]])
    verdicts = {int(i): bool(truth[i]) for i in rows}
    idx = np.fromiter(verdicts, dtype=np.int64)
    y = np.fromiter(verdicts.values(), dtype=bool)
    w_fn, _ = learnt_boost(feedback_features(frame, verdicts), idx, y, shrink=10.0)
    assert w_fn > 1.0
    # The same number of hits spread one per query: a confirmed FN says nothing about its query's other rows.
    spread = {int(i): False for i in rows}
    for q, i in zip(range(len(rows)), rows[::10], strict=False):
        spread[int(i)] = q % 2 == 0
    y2 = np.fromiter(spread.values(), dtype=bool)
    w_fn2, _ = learnt_boost(feedback_features(frame, spread), idx, y2, shrink=10.0)
    assert w_fn2 < 0.3


def test_an_item_counts_for_an_order_only_within_its_next_window() -> None:
    scores = np.arange(10, dtype=float)  # row 9 first
    open_ = np.ones(10, dtype=bool)
    open_[[9, 3]] = False
    # Row 9 tops the order; row 3 has 5 unreviewed rows (4..8) above it.
    assert credited(scores, np.array([9, 3]), open_, window=5).tolist() == [True, False]
    assert credited(scores, np.array([9, 3]), open_, window=6).tolist() == [True, True]


def test_cold_start_reads_the_collection_and_the_adapters_own_detection() -> None:
    frame = synthetic_frame(seed=0)
    arms = ("adapter", "retriever", "bm25", "prior", "model")
    base = cold_start(frame, arms)
    assert set(base) == set(arms) and all(-1 <= v <= 1 for v in base.values())
    assert base["model"] == base["prior"]
    assert cold_start(frame, arms, adapter_detection=0.5)["adapter"] > base["adapter"]
    good = {"after": {"f1": {"FN": 0.6}, "support": {"FN": 10, "TN": 990}}}
    none = {"after": {"f1": {"FN": 0.01}, "support": {"FN": 10, "TN": 990}}}
    assert adapter_skill(good) > 0.5 and adapter_skill(none) <= 0.0
    assert adapter_skill({}) is None


def test_explain_says_what_each_signal_rests_on() -> None:
    frame = synthetic_frame(seed=2)
    learner = BanditLearner(frame, BanditConfig(), seed=0)
    truth = frame["truth"].to_numpy()
    order = np.argsort(-frame["pos_sim"].to_numpy())[:40]
    fit = learner.refit({int(i): bool(truth[i]) for i in order})
    why = learner.explain()
    assert fit.scores.shape == (len(frame),)
    assert why["best"] in why["arms"]
    assert sum(a["planned"] for a in why["arms"].values()) == BanditConfig().plan
    assert all(0 <= a["hits"] <= a["verdicts"] <= 40 for a in why["arms"].values())
    assert why["arms"]["pos_sim"]["verdicts"] > 0
    assert why["recent"]["n"] == 20 and why["recent"]["hits"] == int(truth[order[-20:]].sum())
    # The next plan puts its items first, none of them already reviewed.
    top = np.argsort(-fit.scores)[: BanditConfig().plan]
    assert not set(top.tolist()) & set(order.tolist())


def _two_signals(n: int = 200) -> pd.DataFrame:
    """A frame where the adapter and BM25 orders are exact opposites."""
    frame = synthetic_frame(n_queries=20, per_query=n // 20, hot_share=0.0, seed=3)
    frame["p_fn_given_neg"] = np.linspace(0.0, 1.0, len(frame))
    frame["bm25"] = np.linspace(1.0, 0.0, len(frame))
    return frame


def test_a_verdict_counts_for_the_arms_that_would_have_shown_it_when_it_was_shown() -> None:
    frame = _two_signals()
    cfg = BanditConfig(arms=("adapter", "bm25"), prospective=True, window=5, explore=False, boost=False)
    learner = BanditLearner(frame, cfg, seed=0)
    learner.refit({})  # records each arm's next 5 rows
    top_adapter = int(np.argmax(frame["p_fn_given_neg"].to_numpy()))
    beliefs = learner.refit({top_adapter: True}) and learner.beliefs
    assert (beliefs["adapter"].hits, beliefs["adapter"].n) == (1, 1)
    assert beliefs["bm25"].n == 0  # BM25 ranks it last: it would never have shown it


def test_a_restored_learner_credits_as_the_one_it_continues() -> None:
    frame = _two_signals()
    cfg = BanditConfig(arms=("adapter", "bm25", "fusion"), prospective=True, window=5, plan=2)
    first = BanditLearner(frame, cfg, seed=0)
    verdicts: dict[int, bool] = {}
    for _ in range(3):
        fit = first.refit(verdicts)
        fresh = [int(r) for r in np.argsort(-fit.scores) if int(r) not in verdicts][:4]
        verdicts.update({r: r % 3 == 0 for r in fresh})
    windows, ledger = first.state()
    second = BanditLearner(frame, cfg, seed=0)
    second.restore(windows, ledger)
    first.refit(verdicts)
    second.refit(verdicts)
    assert {a: (b.hits, b.n) for a, b in second.beliefs.items()} == {a: (b.hits, b.n) for a, b in first.beliefs.items()}
    assert len(ledger) == 8  # the verdicts of the first two batches, each with the arms that held it


def test_a_half_life_weighs_an_arms_recent_verdicts_more() -> None:
    """An arm whose early items were hits and latest misses is believed worse with a half-life than without."""
    frame = _two_signals()
    order = np.argsort(-frame["p_fn_given_neg"].to_numpy())[:40]
    verdicts = {int(r): i < 20 for i, r in enumerate(order)}  # 20 hits, then 20 misses, all in the adapter's head
    means = {}
    for half_life in (0.0, 10.0):
        cfg = BanditConfig(arms=("adapter", "bm25"), prospective=False, window=60, explore=False, half_life=half_life)
        learner = BanditLearner(frame, cfg, seed=0)
        learner.refit(verdicts)
        belief = learner.beliefs["adapter"]
        assert (belief.hits, belief.n) == (20, 40)  # the counts shown stay the verdicts themselves
        means[half_life] = belief.mean
    assert means[10.0] < means[0.0] - 0.15
