"""Defaults across collections: the setting with the smallest mean dev shortfall, over settings all collections ran."""

from __future__ import annotations

import pytest

from rrra_core.analysis.defaults import dev_shortfalls


def _trials(*scores: tuple[dict, float]) -> dict:
    return {str(i): {"settings": s, "dev": {"nDCG@10": v}} for i, (s, v) in enumerate(scores)}


def test_the_default_loses_least_on_average_not_the_most_wins() -> None:
    a, b, c = {"k": 100}, {"k": 50}, {"k": 10}
    tunings = {
        # c wins two collections by a hair but falls behind on the third; b is never far off.
        "x": {"uniform": _trials((a, 0.50), (b, 0.599), (c, 0.60))},
        "y": {"uniform": _trials((a, 0.40), (b, 0.499), (c, 0.50))},
        "z": {"uniform": _trials((a, 0.30), (b, 0.30), (c, 0.25))},
    }
    rows = dev_shortfalls(tunings)["uniform"]
    assert [r.settings for r in rows] == [b, c, a]
    assert rows[0].per_collection == pytest.approx({"x": 0.001, "y": 0.001, "z": 0.0})
    assert rows[0].mean == pytest.approx(0.002 / 3)


def test_only_settings_and_methods_every_collection_tried_are_ranked_and_ties_keep_the_grid_order() -> None:
    a, b, c = {"m": 0.0}, {"m": 0.1}, {"m": 0.2}
    tunings = {
        "x": {"margin": _trials((a, 0.5), (b, 0.5), (c, 0.9)), "simans": _trials((a, 0.1))},
        "y": {"margin": _trials((a, 0.4), (b, 0.4))},  # ran 2 trials: c cannot be ranked
    }
    out = dev_shortfalls(tunings)
    assert set(out) == {"margin"}
    assert [r.settings for r in out["margin"]] == [a, b]  # a tie: the earlier (pre-tuning) setting first
    assert dev_shortfalls({}) == {}
