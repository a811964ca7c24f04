from __future__ import annotations

import math

import pytest

from rrra_core.retrieval.evaluation import (
    DEFAULT_METRICS,
    answer_ranks,
    answer_recall,
    evaluate,
    evaluate_per_query,
    has_answer,
    rank_run,
    read_trec_run,
    write_trec_run,
)
from rrra_core.runtime.errors import ConfigError, DataError

QRELS = {"q1": {"d1": 1, "d2": 1, "d9": 0}, "q2": {"d5": 1}, "q3": {"d7": 0}}
RUN = {
    "q1": {"d3": 0.9, "d1": 0.8, "d4": 0.7, "d2": 0.6},
    "q9": {"d1": 1.0},  # no qrels: ignored
}


def test_hand_computed_metrics_and_absent_queries_count_as_zero():
    # q1: relevant at ranks 2 and 4. q2 is missing from the run -> all zeros.
    # q3 has no relevant document -> not evaluated at all.
    ndcg_q1 = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    per_q = evaluate_per_query(QRELS, RUN, ["nDCG@10", "RR@10", "R@1", "R@2", "R@5"])
    assert set(per_q) == {"q1", "q2"}
    assert per_q["q1"] == pytest.approx({"nDCG@10": ndcg_q1, "RR@10": 0.5, "R@1": 0.0, "R@2": 0.5, "R@5": 1.0})
    assert per_q["q2"] == {"nDCG@10": 0.0, "RR@10": 0.0, "R@1": 0.0, "R@2": 0.0, "R@5": 0.0}
    agg = evaluate(QRELS, RUN, ["nDCG@10", "RR@10", "R@2", "R@5"])
    assert agg == pytest.approx({"nDCG@10": ndcg_q1 / 2, "RR@10": 0.25, "R@2": 0.25, "R@5": 0.5})


def test_default_metrics_and_graded_ndcg_uses_linear_gain():
    qrels = {"q": {"a": 2, "b": 1}}
    run = {"q": {"b": 0.9, "a": 0.1}}
    result = evaluate(qrels, run)
    assert list(result) == list(DEFAULT_METRICS)
    expected = (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))
    assert result["nDCG@10"] == pytest.approx(expected)
    assert result["R@1"] == 0.5 and result["R@5"] == 1.0 and result["RR@10"] == 1.0


def test_ties_are_broken_by_doc_id_everywhere():
    run = {"q": {"b": 1.0, "a": 1.0, "c": 2.0}}
    assert rank_run(run)["q"] == [("c", 2.0), ("a", 1.0), ("b", 1.0)]
    assert evaluate({"q": {"b": 1}}, run, ["RR@10"])["RR@10"] == pytest.approx(1 / 3)
    assert evaluate({"q": {"a": 1}}, run, ["RR@10"])["RR@10"] == pytest.approx(1 / 2)


def test_unknown_metric_is_a_config_error():
    for bad in ("Bogus@10", "nDCG@x", ""):
        with pytest.raises(ConfigError, match="unknown metric"):
            evaluate(QRELS, RUN, [bad])


def test_trec_run_round_trip(tmp_path):
    run = {"q1": {"d1": 0.5, "d2": 0.75, "d3": 0.5}, "q2": {"x": -1.25e-7}}
    path = write_trec_run(tmp_path / "runs" / "a.trec", run, tag="mine")
    lines = path.read_text().splitlines()
    assert lines[0] == "q1 Q0 d2 1 0.75 mine"
    assert [line.split()[2] for line in lines[:3]] == ["d2", "d1", "d3"]
    assert read_trec_run(path) == run
    assert [p.name for p in path.parent.iterdir()] == ["a.trec"]  # no temp file left


def test_malformed_trec_line_names_path_and_line(tmp_path):
    path = tmp_path / "bad.trec"
    path.write_text("q1 Q0 d1 1 0.5 tag\n\nq1 Q0 d2 2 oops tag\n")
    with pytest.raises(DataError) as err:
        read_trec_run(path)
    assert str(err.value).startswith(f"{path}:3: ")
    assert "\n" not in str(err.value)
    path.write_text("q1 Q0 d1 1 0.5\n")
    with pytest.raises(DataError, match=r"bad\.trec:1: expected 6 fields"):
        read_trec_run(path)


@pytest.mark.parametrize(
    ("text", "answers", "expected"),
    [
        ("The capital is PARIS, France.", ["paris"], True),
        ("Born in São Paulo in 1990", ["sao paulo"], False),  # accents stay part of the word
        ("Born in São Paulo in 1990", ["SÃO PAULO"], True),
        ("Born in Sa\u0303o Paulo", ["São Paulo"], True),  # composed vs decomposed forms agree
        ("It was someone else.", ["one"], False),  # whole tokens only
        ("It was one else.", ["one"], True),
        ("Price: $5.00 total", ["5.00"], True),  # punctuation tokens match contiguously
        ("Ends with U.S.", ["U.S."], True),
        ("Just a dash - here", ["-", "--"], False),  # no letter or digit: ignored
        ("Just a dash - here", ["-", "dash"], True),
        ("Anything at all", [], False),
        ("Anything at all", "all", True),  # a single string is one answer
    ],
)
def test_has_answer(text, answers, expected):
    assert has_answer(text, answers) is expected


def test_answer_recall_tiny_example():
    docs = {"p1": "Paris is in France.", "p2": "Berlin is in Germany.", "p3": "Rome, Italy."}
    run = {
        "q1": {"p2": 0.9, "p1": 0.5},  # answer at rank 2
        "q2": {"p3": 0.7, "p2": 0.7},  # tie: p2 before p3 -> answer at rank 2
        "q3": {"p1": 0.3},  # never answered
        # q4 missing from the run -> a miss
        "q5": {"p1": 0.9},  # no usable answer -> not counted at all
    }
    answers = {"q1": ["paris"], "q2": ["Rome"], "q3": ["Madrid"], "q4": ["x"], "q5": ["?"]}
    result = answer_recall(run, answers, docs, ks=(1, 2, 5))
    assert result == {"AnswerRecall@1": 0.0, "AnswerRecall@2": 0.5, "AnswerRecall@5": 0.5}
    # Per question (what a paired test needs): the first answering rank, None for a miss, q5 left out.
    assert answer_ranks(run, answers, docs, 5) == {"q1": 2, "q2": 2, "q3": None, "q4": None}
    assert answer_ranks(run, answers, docs, 1) == {"q1": None, "q2": None, "q3": None, "q4": None}
    run["q1"]["p1"] = 1.0
    assert answer_recall(run, answers, docs, ks=(1,)) == {"AnswerRecall@1": 0.25}
