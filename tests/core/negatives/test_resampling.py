from __future__ import annotations

import numpy as np
import pytest

from rrra_core.negatives.mining import sample_without_replacement
from rrra_core.negatives.resampling import hardness, rrra_weights, sampler_weights


def test_rrra_weights_shrink_as_false_negative_probability_grows() -> None:
    scores = np.array([0.8, 0.8, 0.8])
    p_fn = np.array([0.0, 0.5, 0.9])
    w = rrra_weights(scores, p_fn, gamma=2.0, tau=0.05)
    assert np.isclose(w.sum(), 1.0)
    assert w[0] > w[1] > w[2]
    assert np.allclose(w / w[0], (1 - p_fn) ** 2)


def test_rrra_prefers_harder_negatives_when_equally_trusted() -> None:
    w = rrra_weights(np.array([0.9, 0.5]), np.zeros(2), gamma=2.0, tau=0.05)
    assert w[0] > w[1]
    assert np.allclose(hardness(np.array([0.9, 0.5]), 0.05), w)


def test_confirmed_relevant_probability_one_is_never_sampled() -> None:
    w = sampler_weights("rrra", np.array([0.9, 0.8, 0.7]), 0.95, np.array([1.0, 0.0, 0.0]))
    rng = np.random.default_rng(0)
    picks = {int(i) for _ in range(200) for i in sample_without_replacement(w, 1, rng)}
    assert 0 not in picks


@pytest.mark.parametrize("sampler", ["uniform", "topk", "simans", "margin"])
def test_baseline_samplers_ignore_the_adapter(sampler: str) -> None:
    s = np.array([0.95, 0.9, 0.6, 0.3])
    a = sampler_weights(sampler, s, 0.9, np.zeros(4), n=2)
    b = sampler_weights(sampler, s, 0.9, np.ones(4) * 0.9, n=2)
    assert np.array_equal(a, b)


def test_topk_margin_and_simans_shapes() -> None:
    s = np.array([0.95, 0.9, 0.6, 0.3])
    assert sampler_weights("topk", s, 0.9, None, n=2).tolist() == [1, 1, 0, 0]
    # margin 0.05 against s_pos 0.9: keep s <= 0.855
    assert sampler_weights("margin", s, 0.9, None, relative_margin=0.05).tolist() == [0, 0, 1, 1]
    w = sampler_weights("simans", s, 0.9, None)
    assert int(np.argmax(w)) == 1  # closest to the positive's score
    with pytest.raises(ValueError):
        sampler_weights("rrra", s, 0.9, None)


def test_pool_coverage_names_queries_without_a_sampleable_hard_negative() -> None:
    from rrra_core.negatives.resampling import pool_coverage

    weights = {"a": np.array([0.2, 0.0]), "b": np.array([0.0, 0.0]), "c": np.array([])}
    cov = pool_coverage(weights, ["a", "b", "c", "d", "b"])
    assert cov == {"no_candidates": ["c", "d"], "zero_weight": ["b"]}
    # RRRA's own weights: an adapter certain every candidate is a false negative leaves nothing to sample.
    assert pool_coverage({"q": rrra_weights(np.array([0.9, 0.8]), np.array([1.0, 1.0]), 2.0, 0.05)}, ["q"])[
        "zero_weight"
    ] == ["q"]
