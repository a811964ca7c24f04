"""Calibration on synthetic data whose answer is known: ECE, reliability bins, the suggested threshold, the maps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rrra_core.review import LearnerConfig, SimConfig, make_order, simulate, synthetic_frame
from rrra_core.review.calibration import (
    expected_calibration_error,
    fit_calibrator,
    judged_negatives,
    reliability,
    suggest_threshold,
)
from rrra_core.review.queue_calibration import SOURCES, session_calibration


def _sample(n: int, seed: int = 0, low: float = 0.0, high: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.uniform(low, high, n)
    return p, rng.random(n) < p


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_a_calibrated_sample_has_ece_near_zero(strategy: str) -> None:
    p, y = _sample(200_000)
    rel = reliability(p, y, n_bins=10, strategy=strategy)
    assert rel.ece < 0.01
    assert rel.bins["n"].sum() == 200_000 and len(rel.bins) == 10
    assert np.allclose(rel.bins["observed"], rel.bins["mean_p"], atol=0.02)


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_a_shifted_sample_has_the_shift_as_ece(strategy: str) -> None:
    # The truth follows p, the model says p + 0.1 (kept inside [0, 1]): every bin is 0.1 too high.
    p, y = _sample(200_000, seed=1, low=0.2, high=0.8)
    assert expected_calibration_error(p + 0.1, y, strategy=strategy) == pytest.approx(0.1, abs=0.01)


def test_uniform_bins_have_fixed_edges_and_drop_empty_ones() -> None:
    rel = reliability([0.05, 0.07, 0.95, 1.0], [False, True, True, True], n_bins=10)
    assert rel.bins[["lo", "hi"]].round(2).values.tolist() == [[0.0, 0.1], [0.9, 1.0]]
    assert rel.bins["n"].tolist() == [2, 2] and rel.bins["observed"].tolist() == [0.5, 1.0]
    # |0.06 - 0.5| * 2/4 + |0.975 - 1| * 2/4
    assert rel.ece == pytest.approx(0.22 + 0.0125)


def test_quantile_bins_hold_equal_counts() -> None:
    p, y = _sample(1000, seed=2, high=0.1)  # the mass near 0, as P(FN|neg)'s is
    assert reliability(p, y, n_bins=10, strategy="quantile").bins["n"].tolist() == [100] * 10
    assert len(reliability(p, y, n_bins=10).bins) == 1


def test_nothing_to_measure_gives_no_ece_and_bad_input_fails() -> None:
    assert reliability([], []).ece is None and reliability([np.nan], [True]).n == 0
    with pytest.raises(ValueError):
        reliability([0.5], [True, False])
    with pytest.raises(ValueError):
        reliability([0.5], [True], strategy="kmeans")


def test_the_suggested_threshold_measures_its_precision() -> None:
    # 20 items at 0.9 (16 FN), 20 at 0.65 (12 FN), 40 at 0.3 (4 FN).
    p = np.repeat([0.9, 0.65, 0.3], [20, 20, 40])
    y = np.concatenate([np.arange(20) < 16, np.arange(20) < 12, np.arange(40) < 4])
    tip = suggest_threshold(p, y, target_precision=0.7)
    # Above 0.30 to 0.60: 28 of 40 = 0.7 (reported as 0.60: nothing was judged between); above 0.25, 32 of 80.
    assert tip.threshold == 0.6 and tip.precision == pytest.approx(0.7) and (tip.hits, tip.support) == (28, 40)
    assert tip.sentence.startswith("Above 0.60, 7 in 10 were false negatives (28 of 40 judged")
    assert tip.interval[0] < 0.7 < tip.interval[1]
    strict = suggest_threshold(p, y, target_precision=0.8)
    assert strict.threshold == 0.85 and strict.precision == pytest.approx(0.8)  # the 0.9 items alone


def test_too_few_verdicts_or_an_unreachable_target_say_so() -> None:
    few = suggest_threshold([0.9] * 12, [True] * 12)
    assert few.threshold is None and few.sentence == "12 judged so far: 18 more needed to suggest a threshold."
    p, y = _sample(200, seed=3, high=0.5)
    none = suggest_threshold(p, y, target_precision=0.9)
    assert none.threshold is None and none.precision < 0.9 and "No threshold reaches 90%" in none.sentence
    assert f"above {none.at:.2f}" in none.sentence  # where the best precision was measured


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_a_calibration_map_turns_a_logit_scale_score_into_probabilities(method: str) -> None:
    rng = np.random.default_rng(4)
    z = rng.normal(0, 2, 20_000)  # a score on some logit scale
    y = rng.random(len(z)) < 1 / (1 + np.exp(-(0.5 * z - 1)))
    assert expected_calibration_error(1 / (1 + np.exp(-z)), y) > 0.1  # read as a probability it is off
    calibrate = fit_calibrator(z[:10_000], y[:10_000], method)
    assert expected_calibration_error(calibrate(z[10_000:]), y[10_000:]) < 0.02


def test_platt_on_separable_verdicts_stays_inside_zero_and_one() -> None:
    calibrate = fit_calibrator([0.0, 1.0, 2.0, 3.0], [False, False, True, True])
    p = calibrate(np.array([-10.0, 10.0]))
    assert 0 < p[0] < 0.5 < p[1] < 1


def test_judged_negatives_votes_and_uses_the_runs_probability() -> None:
    preds = pd.DataFrame({"query_id": ["q", "q", "q", "q"], "doc_id": ["a", "b", "c", "p"],
                          "label": [0, 0, 0, 1], "p_fn_given_neg": [0.9, 0.2, 0.5, 0.0]})  # fmt: skip
    judgments = pd.DataFrame(
        [("q", "a", "relevant"), ("q", "a", "relevant"), ("q", "a", "not_relevant"),  # 2:1, a false negative
         ("q", "b", "not_relevant"), ("q", "b", "unsure"),  # unsure abstains
         ("q", "c", "relevant"), ("q", "c", "not_relevant"),  # a tie: left out
         ("q", "p", "relevant")],  # a labelled positive: not a negative of this run
        columns=["query_id", "doc_id", "label"],
    )  # fmt: skip
    out = judged_negatives(preds, judgments)
    assert out.values.tolist() == [["q", "a", 0.9, True], ["q", "b", 0.2, False]]


def test_a_session_reports_every_source_before_and_after_the_refits() -> None:
    frame = synthetic_frame(n_queries=40, per_query=20, seed=5)
    out = session_calibration(frame, LearnerConfig(), SimConfig(refit_every=10, seed=0), [0, 40, 80])
    before, after = out["budgets"]["0"], out["budgets"]["80"]
    assert list(before["pool"]) == ["adapter"] and before["reviewed"]["adapter"]["n"] == 0
    assert before["pool"]["adapter"]["n"] == len(frame)
    assert set(after["pool"]) == set(SOURCES) and after["pool"]["learnt"]["n"] == len(frame) - 80
    # The first 10 items were shown before any verdict: no prospective probability for them.
    assert after["reviewed"]["adapter"]["n"] == 80 and after["reviewed"]["learnt"]["n"] == 70
    # The same session as the benchmark's learnt order: the same items found.
    plain = simulate(frame, make_order("learnt", frame, seed=0), SimConfig(budget=80, seed=0), adaptive=True)
    assert out["curve"] == plain.found
    # The Platt map brings the learnt score's pool ECE near the pool's own base rate gaps.
    assert after["pool"]["learnt"]["ece"] < 0.2
