from __future__ import annotations

import numpy as np
import pytest

from rrra_core.analysis.significance import paired_by_query, paired_pvalues


def test_a_consistent_gain_is_significant_and_noise_is_not():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.2, 0.6, size=60)
    gain = paired_pvalues(x, x + 0.05 + rng.normal(0, 0.01, size=60))
    assert gain["delta"] == pytest.approx(0.05, abs=0.01) and gain["p_t"] < 0.001 and gain["p_fisher"] < 0.001
    noise = paired_pvalues(x, x + rng.normal(0, 0.05, size=60))
    assert noise["p_t"] > 0.05 and noise["queries"] == 60


def test_identical_systems_give_p_one_and_too_few_queries_give_none():
    assert paired_pvalues([0.1, 0.5, 0.3], [0.1, 0.5, 0.3])["p_t"] == 1.0
    assert paired_pvalues([0.1], [0.2])["p_t"] is None
    with pytest.raises(ValueError, match="differ in length"):
        paired_pvalues([0.1, 0.2], [0.1])


def test_seeds_are_averaged_per_query_and_only_shared_queries_are_paired():
    control = [{"a": 0.0, "b": 1.0, "c": 0.5}, {"a": 0.2, "b": 1.0}]
    treatment = [{"a": 1.0, "b": 1.0}, {"a": 0.6, "b": 0.0, "d": 1.0}]
    out = paired_by_query(control, treatment)
    # a: 0.1 -> 0.8, b: 1.0 -> 0.5; c and d are in one system only.
    assert out["queries"] == 2 and out["delta"] == pytest.approx(((0.8 - 0.1) + (0.5 - 1.0)) / 2)


def test_the_randomization_test_counts_differences_equal_up_to_rounding():
    # Two queries differ (by 0.125 and 0.25): flipping their signs gives |mean| >= observed half the time.
    x = np.zeros(75)
    y = np.zeros(75)
    y[[3, 40]] = [-0.125, -0.25]
    assert paired_pvalues(x, y)["p_fisher"] == pytest.approx(0.5, abs=0.03)
