"""Hidden positives for the review-queue benchmark: which labelled positives a run is trained without.

Two ways to hide, both deterministic per (seed, query) so the benchmark rebuilds
the truth from the seed alone:

- ``dense``: :func:`~rrra_core.negatives.fn_detection.plant_false_negatives`,
  ``round(rate x positives)`` of every query (at least one kept visible);
  most queries of a multi-positive collection then hold false negatives;
- ``sparse``: one positive hidden in a ``rate`` share of the queries that have
  two or more, so most queries hold none, as on a collection whose labels are
  nearly complete.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["PLANTINGS", "plant"]

PLANTINGS: tuple[str, ...] = ("dense", "sparse")


def _sparse(
    qrels: Mapping[str, Mapping[str, int]], rate: float, seed: int
) -> tuple[dict[str, dict[str, int]], dict[str, set[str]]]:
    from rrra_core.negatives.mining import query_rng

    visible: dict[str, dict[str, int]] = {}
    hidden: dict[str, set[str]] = {}
    for q in sorted(qrels):
        pos = sorted(d for d, r in qrels[q].items() if r > 0)
        rng = query_rng(seed, q)
        hide: set[str] = set()
        if len(pos) >= 2 and rng.random() < rate:
            hide = {str(rng.choice(pos))}
        visible[q] = {d: r for d, r in qrels[q].items() if d not in hide and r > 0}
        if hide:
            hidden[q] = hide
    return visible, hidden


def plant(
    qrels: Mapping[str, Mapping[str, int]], rate: float, seed: int, how: str = "dense"
) -> tuple[dict[str, dict[str, int]], dict[str, set[str]]]:
    """(visible qrels, hidden positives per query) for planting ``how`` at ``rate`` with ``seed``."""
    if how == "dense":
        from rrra_core.negatives.fn_detection import plant_false_negatives

        return plant_false_negatives(qrels, rate, seed)
    if how == "sparse":
        return _sparse(qrels, rate, seed)
    raise ValueError(f"unknown planting {how!r}; choose from {', '.join(PLANTINGS)}")
