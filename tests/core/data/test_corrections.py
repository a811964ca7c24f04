"""Verdicts become label corrections in one pure function: corrected qrels, confirmed negatives, human positives."""

from __future__ import annotations

import copy

import pytest

from rrra_core.data import LabelCorrections, apply_verdicts

BASE = {
    "q1": {"d1": 1, "d2": 2},
    "q2": {"d5": 1},
    "q3": {"d9": 1},
}


def test_a_confirmed_false_negative_becomes_a_positive_and_a_rejected_positive_leaves() -> None:
    out = apply_verdicts(BASE, {("q1", "d3"): True, ("q1", "d1"): False, ("q2", "d6"): False})
    assert out.qrels == {"q1": {"d2": 2, "d3": 1}, "q2": {"d5": 1}, "q3": {"d9": 1}}
    # Confirmed negatives stay out of the qrels (never relevance 0) and are kept apart.
    assert out.confirmed_negatives == {"q1": {"d1"}, "q2": {"d6"}}
    assert all(g > 0 for docs in out.qrels.values() for g in docs.values())
    assert out.human_relevant == {"q1": {"d3"}}


def test_a_verdict_of_relevant_keeps_the_base_grade() -> None:
    out = apply_verdicts(BASE, {("q1", "d2"): True})
    assert out.qrels["q1"] == {"d1": 1, "d2": 2}
    assert out.summary(BASE) == {"judgments": 1, "false_negatives_added": 0, "confirmed_negatives": 0}


def test_the_base_qrels_are_not_modified() -> None:
    base = copy.deepcopy(BASE)
    out = apply_verdicts(base, {("q1", "d3"): True, ("q2", "d5"): False})
    assert base == BASE
    out.qrels["q1"]["d1"] = 7  # and the result shares nothing with the input
    assert base == BASE


def test_verdicts_outside_the_scope_are_ignored_and_not_counted() -> None:
    verdicts = {("q1", "d3"): True, ("q2", "d6"): False, ("test-q", "x"): True}
    out = apply_verdicts(BASE, verdicts, query_ids={"q1"})
    assert out.verdicts == {("q1", "d3"): True}
    assert out.confirmed_negatives == {}
    # Queries outside the scope keep their labels.
    assert out.qrels["q2"] == {"d5": 1} and "test-q" not in out.qrels
    # By default the scope is the base qrels' queries: a test query's verdict never leaks in.
    assert "test-q" not in apply_verdicts(BASE, verdicts).qrels


def test_the_scope_may_name_a_query_without_positives_and_a_verdict_gives_it_one() -> None:
    out = apply_verdicts(BASE, {("q4", "d1"): True}, query_ids={"q1", "q4"})
    assert out.qrels["q4"] == {"d1": 1}
    assert out.summary(BASE)["false_negatives_added"] == 1


def test_a_query_left_without_a_positive_drops_out_but_keeps_its_confirmed_negatives() -> None:
    out = apply_verdicts(BASE, {("q3", "d9"): False})
    assert "q3" not in out.qrels
    assert out.confirmed_negatives == {"q3": {"d9"}}


def test_summary_counts_what_a_retrain_records() -> None:
    verdicts = {("q1", "d3"): True, ("q1", "d4"): True, ("q1", "d1"): True, ("q2", "d6"): False, ("q3", "d7"): False}
    out = apply_verdicts(BASE, verdicts)
    assert out.summary(BASE) == {"judgments": 5, "false_negatives_added": 2, "confirmed_negatives": 2}
    assert out.added_positives(BASE) == 2
    assert out.human_relevant == {"q1": {"d1", "d3", "d4"}}


def test_no_verdicts_change_nothing() -> None:
    out = apply_verdicts(BASE, {})
    assert out == LabelCorrections(qrels=BASE)
    assert out.summary(BASE) == {"judgments": 0, "false_negatives_added": 0, "confirmed_negatives": 0}


def test_corrections_are_frozen() -> None:
    out = apply_verdicts(BASE, {})
    with pytest.raises(AttributeError):
        out.qrels = {}  # type: ignore[misc]
