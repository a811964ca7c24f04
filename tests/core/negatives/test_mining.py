from __future__ import annotations

import numpy as np
import pytest

from rrra_core.negatives.mining import (
    MiningConfig,
    margin_keep_mask,
    mine_hard_negatives,
    positive_score,
    sample_without_replacement,
    simans_weights,
)
from rrra_core.runtime.errors import ConfigError


def make_candidates(n: int = 30) -> dict[str, list[tuple[str, float]]]:
    # q1: docs d0..d{n-1} with scores 0.9, 0.89, ...; positives d2 and d5.
    return {"q1": [(f"d{i}", round(0.9 - 0.01 * i, 4)) for i in range(n)], "q2": [("d0", 0.5)]}


QRELS = {"q1": {"d2": 1, "d5": 2, "d7": 0}}  # d7 judged non-relevant: an ordinary negative


def test_positives_never_appear_and_topk_takes_hardest():
    cfg = MiningConfig(n_neg=5)
    out = mine_hard_negatives(make_candidates(), QRELS, None, cfg)
    assert list(out) == ["q1"]  # q2 has no positives -> skipped
    assert [d for d, _ in out["q1"]] == ["d0", "d1", "d3", "d4", "d6"]
    assert out["q1"][0] == ("d0", 0.9)
    for sampler in ("uniform", "simans"):
        mined = mine_hard_negatives(make_candidates(), QRELS, None, MiningConfig(sampler=sampler, n_neg=None))
        assert {"d2", "d5"}.isdisjoint(d for d, _ in mined["q1"])
        assert len(mined["q1"]) == 28


def test_rank_window_counts_after_removing_positives():
    cfg = MiningConfig(rank_start=2, rank_end=6, n_neg=None)
    out = mine_hard_negatives(make_candidates(), QRELS, None, cfg)
    # Negatives in order: d0 d1 d3 d4 d6 d7 d8 ... -> window [2, 6) = d3 d4 d6 d7.
    assert [d for d, _ in out["q1"]] == ["d3", "d4", "d6", "d7"]
    # top_k cuts the candidate list before positives are removed.
    out = mine_hard_negatives(make_candidates(), QRELS, None, MiningConfig(top_k=4, n_neg=None))
    assert [d for d, _ in out["q1"]] == ["d0", "d1", "d3"]


def test_margin_filter_drops_exactly_the_expected_items():
    scores = np.array([0.95, 0.9, 0.81, 0.8, 0.79, 0.5])
    # threshold (1 - 0.1) * 0.9 = 0.81 (kept: s <= threshold)
    assert margin_keep_mask(scores, 0.9, 0.1).tolist() == [False, False, True, True, True, True]
    # Driver: positive scores from retrieval are d2=0.88 and d5=0.85; the lowest
    # (0.85) is the reference: threshold 0.95 * 0.85 = 0.8075 drops d0..d9 (0.81).
    out = mine_hard_negatives(make_candidates(), QRELS, None, MiningConfig(relative_margin=0.05, n_neg=3))
    assert [d for d, _ in out["q1"]] == ["d10", "d11", "d12"]
    # Explicit positive scores take precedence over retrieved ones.
    explicit = {"q1": {"d2": 0.7, "d5": 0.75, "d99": 0.1}}  # d99 is not a positive: ignored
    out = mine_hard_negatives(make_candidates(), QRELS, explicit, MiningConfig(relative_margin=0.0, n_neg=2))
    assert [d for d, _ in out["q1"]] == ["d20", "d21"]


def test_positive_score_fallbacks():
    cands = [("a", 0.9), ("b", 0.8), ("c", 0.4)]
    assert positive_score(cands, {"b"}) == 0.8
    assert positive_score(cands, {"b"}, {"b": 0.3}) == 0.3
    # Positive not retrieved: it scores at most the lowest candidate.
    assert positive_score(cands, {"z"}) == 0.4
    assert positive_score([], {"z"}) is None


def test_simans_weights_peak_at_pos_plus_b_and_sum_to_one():
    scores = np.linspace(-1, 1, 201)
    for b in (0.0, -0.2, 0.1):
        w = simans_weights(scores, pos_score=0.5, a=3.0, b=b)
        assert w.sum() == pytest.approx(1.0)
        assert scores[np.argmax(w)] == pytest.approx(0.5 + b)
        expected = np.exp(-3.0 * (scores - 0.5 - b) ** 2)
        np.testing.assert_allclose(w, expected / expected.sum())
    # Stable with a huge sharpness: still a distribution, no NaN.
    w = simans_weights(np.array([0.1, 0.2, 5.0]), 0.0, a=1e6, b=0.0)
    assert np.isfinite(w).all() and w.sum() == pytest.approx(1.0) and w[0] == pytest.approx(1.0)
    assert simans_weights(np.array([]), 0.0, 1.0, 0.0).size == 0


@pytest.mark.parametrize("sampler", ["uniform", "simans"])
def test_samplers_are_deterministic_per_seed(sampler):
    cands = {f"q{i}": make_candidates()["q1"] for i in range(5)}
    qrels = {q: QRELS["q1"] for q in cands}

    def run(seed, c=cands):
        return mine_hard_negatives(c, qrels, None, MiningConfig(sampler=sampler, n_neg=5, seed=seed))

    first = run(1)
    assert run(1) == first
    assert run(2) != first
    # A query's draw does not depend on which other queries are mined or their order.
    alone = run(1, {"q3": cands["q3"]})
    assert alone["q3"] == first["q3"]
    reordered = run(1, dict(reversed(list(cands.items()))))
    assert reordered == first
    for negs in first.values():
        scores = [s for _, s in negs]
        assert scores == sorted(scores, reverse=True) and len(set(negs)) == 5


def test_sampler_draws_follow_the_weights():
    weights = np.array([0.5, 0.0, 0.3, 0.15, 0.05])
    rng = np.random.default_rng(123)
    draws = np.array([sample_without_replacement(weights, 1, rng)[0] for _ in range(20_000)])
    freq = np.bincount(draws, minlength=5) / draws.size
    np.testing.assert_allclose(freq, weights, atol=0.015)
    assert freq[1] == 0.0


def test_sample_without_replacement_edge_cases():
    rng = np.random.default_rng(0)
    idx = sample_without_replacement(np.array([1.0, 0.0, 2.0, 3.0]), 10, rng)
    assert idx.tolist() == [0, 2, 3]  # n >= nonzero count: all non-zero ones
    idx = sample_without_replacement(np.array([1.0, 1.0, 1.0, 1.0]), 3, rng)
    assert len(set(idx.tolist())) == 3
    assert sample_without_replacement(np.zeros(3), 2, rng).size == 0


def test_simans_prefers_negatives_near_the_positive_score():
    # Positive at 0.5; negatives near 0.5 should dominate with a sharp a.
    cands = {"q": [(f"n{i}", s) for i, s in enumerate(np.linspace(0.95, 0.0, 20))] + [("p", 0.5)]}
    cands["q"].sort(key=lambda x: -x[1])
    counts: dict[str, int] = {}
    for seed in range(300):
        cfg = MiningConfig(sampler="simans", n_neg=1, simans_a=200.0, seed=seed)
        ((doc, _),) = mine_hard_negatives(cands, {"q": {"p": 1}}, None, cfg)["q"]
        counts[doc] = counts.get(doc, 0) + 1
    near = {d for d, s in cands["q"] if abs(s - 0.5) < 0.11 and d != "p"}
    assert sum(counts.get(d, 0) for d in near) / 300 > 0.9


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rank_start": 5, "rank_end": 5}, "rank_end"),
        ({"rank_start": -1}, "rank_start"),
        ({"relative_margin": -0.1}, "relative_margin"),
        ({"relative_margin": 1.0}, "relative_margin"),
        ({"sampler": "hardest"}, "unknown sampler"),
        ({"n_neg": 0}, "n_neg"),
        ({"top_k": 0}, "top_k"),
        ({"simans_a": -1.0}, "simans_a"),
        ({"simans_b": float("nan")}, "simans_b"),
        ({"seed": -3}, "seed"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(ConfigError, match=message) as err:
        MiningConfig(**kwargs)
    assert "\n" not in str(err.value)


def test_config_help_texts():
    help_texts = MiningConfig.help()
    assert set(help_texts) >= {"top_k", "rank_start", "rank_end", "relative_margin", "sampler", "n_neg"}
    assert all(help_texts.values())
