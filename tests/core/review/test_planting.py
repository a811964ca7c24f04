"""Hidden positives for the review benchmark: a sparse planting leaves most queries without a false negative."""

from __future__ import annotations

import pytest

from rrra_core.review.planting import plant


def _qrels() -> dict[str, dict[str, int]]:
    return {f"q{i}": {f"d{i}_{j}": 1 for j in range(1 + i % 4)} for i in range(400)}


def test_sparse_hides_one_positive_in_a_share_of_the_multi_positive_queries() -> None:
    qrels = _qrels()
    visible, hidden = plant(qrels, 0.25, seed=3, how="sparse")
    multi = [q for q, v in qrels.items() if len(v) >= 2]
    assert all(len(v) == 1 for v in hidden.values()) and set(hidden) <= set(multi)
    assert 0.15 * len(multi) < len(hidden) < 0.35 * len(multi)
    assert all(visible[q] for q in qrels)  # every query keeps a positive
    assert all(not (hidden.get(q, set()) & set(visible[q])) for q in qrels)
    assert plant(qrels, 0.25, seed=3, how="sparse") == (visible, hidden)  # the benchmark rebuilds it from the seed


def test_dense_hides_a_share_of_every_querys_positives() -> None:
    visible, hidden = plant(_qrels(), 0.5, seed=0)
    assert sum(map(len, hidden.values())) > sum(map(len, visible.values())) / 3
    with pytest.raises(ValueError, match="unknown planting"):
        plant(_qrels(), 0.5, seed=0, how="all")
