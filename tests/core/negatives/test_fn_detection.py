from __future__ import annotations

import numpy as np

from rrra_core.negatives.fn_detection import detection_metrics, heuristic_scores, plant_false_negatives, precision_at


def test_planting_hides_the_fraction_and_keeps_one_visible() -> None:
    qrels = {"q1": {f"d{i}": 1 for i in range(10)}, "q2": {"x": 1}, "q3": {"a": 1, "b": 1}}
    visible, hidden = plant_false_negatives(qrels, 0.3, seed=0)
    assert len(hidden["q1"]) == 3 and len(visible["q1"]) == 7
    assert "q2" not in hidden and visible["q2"] == {"x": 1}
    for q in qrels:
        assert not set(visible[q]) & hidden.get(q, set())
        assert set(visible[q]) | hidden.get(q, set()) == set(qrels[q])
    assert plant_false_negatives(qrels, 0.3, seed=0) == (visible, hidden)
    assert plant_false_negatives(qrels, 0.3, seed=1)[1] != hidden


def test_detection_metrics_on_a_perfect_and_a_useless_score() -> None:
    truth = np.array([True, False, False, True, False])
    perfect = detection_metrics(truth, np.array([0.9, 0.1, 0.2, 0.8, 0.3]))
    assert perfect["AUROC"] == 1.0 and perfect["AP"] == 1.0 and perfect["false_negatives"] == 2
    inverted = detection_metrics(truth, -np.array([0.9, 0.1, 0.2, 0.8, 0.3]))
    assert inverted["AUROC"] == 0.0
    assert precision_at(truth, np.array([0.9, 0.1, 0.2, 0.8, 0.3]), 2) == 1.0


def test_heuristics_rank_as_their_samplers_do() -> None:
    s = np.array([0.9, 0.7, 0.5])
    h = heuristic_scores(s, np.full(3, 0.7))
    assert np.argmax(h["simans"]) == 1  # closest to s_pos
    assert np.argmax(h["margin"]) == 0 and np.allclose(h["margin"], s / 0.7)
