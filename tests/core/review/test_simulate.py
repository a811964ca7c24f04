"""The simulated reviewer's bookkeeping: budget, monotone counts, no item shown twice, refits on schedule."""

from __future__ import annotations

import numpy as np
import pytest

from rrra_core.review import ORDERS, SimConfig, is_adaptive, make_order, simulate, synthetic_frame
from rrra_core.review.orders import margin, retriever, uncertainty


@pytest.mark.parametrize("order", ORDERS)
def test_bookkeeping(order: str) -> None:
    frame = synthetic_frame(n_queries=30, per_query=20, seed=0)
    cfg = SimConfig(budget=95, refit_every=10, seed=1)
    res = simulate(frame, make_order(order, frame, seed=1), cfg, adaptive=is_adaptive(order))
    assert len(res.shown) == 95 and len(set(res.shown)) == 95
    assert np.all(np.diff(res.found) >= 0) and np.all(np.diff(res.found) <= 1)
    truth = frame["truth"].to_numpy()
    assert res.found[-1] == int(truth[res.shown].sum())
    assert res.verdicts == [bool(truth[i]) for i in res.shown]
    # Refits at 0, 10, ..., 90: none after the last item of the budget.
    assert [r.reviewed for r in res.refits] == ([0, *range(10, 95, 10)] if is_adaptive(order) else [0])
    assert all(r.seconds >= 0 for r in res.refits)


def test_a_budget_over_the_pool_stops_at_the_pool() -> None:
    frame = synthetic_frame(n_queries=3, per_query=5, seed=0)
    res = simulate(frame, make_order("learnt", frame), SimConfig(budget=100, refit_every=4), adaptive=True)
    assert sorted(res.shown) == list(range(15))
    assert res.found_at(100) == int(frame["truth"].sum())


def test_static_orders_follow_their_scores() -> None:
    frame = synthetic_frame(seed=2)
    for name, scores in (("retriever", retriever(frame)), ("margin", margin(frame))):
        res = simulate(frame, make_order(name, frame), SimConfig(budget=20), adaptive=False)
        assert res.shown == list(np.argsort(-scores, kind="stable")[:20])


def test_pool_metrics_are_recorded_after_each_refit() -> None:
    frame = synthetic_frame(seed=3)
    res = simulate(frame, make_order("learnt", frame), SimConfig(budget=30, refit_every=10), adaptive=True)
    assert all(r.auroc is not None and 0 <= r.auroc <= 1 and 0 <= r.ap <= 1 for r in res.refits)


def test_uncertainty_prefers_the_row_closest_to_a_half() -> None:
    assert np.argmax(uncertainty(np.array([0.1, 0.48, 0.9]))) == 1


def test_ties_break_by_seed_not_by_row_order() -> None:
    frame = synthetic_frame(n_queries=10, per_query=10, seed=0)
    frame["score"] = 0.5
    a = simulate(frame, make_order("retriever", frame), SimConfig(budget=10, seed=0), adaptive=False).shown
    b = simulate(frame, make_order("retriever", frame), SimConfig(budget=10, seed=1), adaptive=False).shown
    assert a != b and a != list(range(10))
