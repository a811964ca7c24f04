"""The arithmetic inside the benchmarks: padding, an index's break-even, training-step ratios."""

from __future__ import annotations

import numpy as np
import pytest

from rrra_core.speed.encode import computed_tokens
from rrra_core.speed.index_scale import add_break_even
from rrra_core.speed.train_step import step_ratios


def test_sorting_by_token_count_pads_less_than_sorting_by_characters() -> None:
    lengths = np.array([5, 1, 4, 2])  # tokens
    chars = [40, 30, 10, 20]  # the character order pairs 5 with 1 and 2 with 4
    ours, theirs = computed_tokens(lengths, chars, [[0, 1, 2, 3]], bs=2)
    assert ours == 5 * 2 + 2 * 2  # batches (5, 4) and (2, 1)
    assert theirs == 5 * 2 + 4 * 2  # batches (5, 1) and (2, 4)
    # Each chunk is one call: texts are sorted and batched within it, never across chunks.
    assert computed_tokens(lengths, chars, [[0, 1], [2, 3]], bs=2) == (5 * 2 + 4 * 2, 5 * 2 + 4 * 2)


def test_break_even_counts_queries_until_a_longer_build_pays_off() -> None:
    rows = [
        {"kind": "flat", "build_s": 1.0, "sweep": [{"search": "exact", "queries_per_s_batch": 100.0}]},
        {
            "kind": "ivf",
            "build_s": 11.0,
            "sweep": [
                {"search": "nprobe=8", "queries_per_s_batch": 200.0},  # saves 5 ms a query
                {"search": "nprobe=64", "queries_per_s_batch": 50.0},  # slower than exact
            ],
        },
    ]
    add_break_even(rows)
    assert "break_even_queries" not in rows[0]["sweep"][0]
    assert rows[1]["sweep"][0]["break_even_queries"] == 2000  # 10 s more build / 5 ms saved
    assert rows[1]["sweep"][1]["break_even_queries"] is None


def test_step_ratios_judge_fastest_steps_and_credit_extra_documents() -> None:
    def variant(fastest: float, median: float, docs: float, rounds: list[float]) -> dict:
        return {"step_seconds": {"min": fastest, "p50": median}, "docs_per_step_mean": docs, "median_per_round": rounds}

    p3 = variant(1.2, 1.5, 96.0, [1.5, 1.4])
    p1 = variant(1.0, 1.0, 64.0, [1.0, 1.0])
    r = step_ratios(p3, p1)
    assert r["fastest_step"] == 1.2 and r["median_step"] == 1.5
    assert r["per_round_median"] == [1.5, 1.4]
    assert r["per_document_fastest"] == pytest.approx(0.8)  # 1.2x the time for 1.5x the documents
