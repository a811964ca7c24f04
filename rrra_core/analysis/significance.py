"""Paired significance tests over queries: ranx's paired t-test and a Fisher randomization (sign-flip) test.

Both tests are two-sided and pair the same queries: ``x[i]`` and ``y[i]`` are
one query's metric under the control and the treatment (for several seeds,
the per-query mean over seeds, so a query counts once).

The randomization test is scipy's ``permutation_test``, not ranx's
``fisher_randomization_test``: ranx compares each permuted mean difference
with the observed one exactly, so a difference equal up to float rounding is
not counted. On a metric with few distinct values (R@1: two queries differ,
by 0.125 and 0.25) ranx returns p = 0.0 where the exact answer is 0.5; scipy
allows for that rounding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rrra_core.retrieval.rerank_choice import paired_randomization_p

__all__ = ["paired_pvalues", "paired_by_query"]


def paired_pvalues(x: Sequence[float], y: Sequence[float], n_permutations: int = 10000) -> dict[str, Any]:
    """``{"queries", "delta", "p_t", "p_fisher"}``: ranx's paired Student t-test and Fisher randomization test.

    ``p_*`` is None below two pairs (no test is defined); identical inputs give p = 1.
    """
    from ranx.statistical_tests import paired_student_t_test

    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.shape} vs {b.shape}")
    if a.size < 2:
        return {"queries": int(a.size), "delta": None, "p_t": None, "p_fisher": None}
    if np.array_equal(a, b):  # the t statistic is 0/0 there; no difference is p = 1
        return {"queries": int(a.size), "delta": 0.0, "p_t": 1.0, "p_fisher": 1.0}
    p_t, _ = paired_student_t_test(a, b)
    p_f = paired_randomization_p(a, b, n_permutations)  # the same sign-flip test the per-run rerank choice uses
    return {"queries": int(a.size), "delta": float(b.mean() - a.mean()), "p_t": float(p_t), "p_fisher": float(p_f)}


def paired_by_query(control: Sequence[Mapping[str, float]], treatment: Sequence[Mapping[str, float]]) -> dict[str, Any]:
    """Per-seed ``{query: value}`` maps of two systems → :func:`paired_pvalues` over the queries both have.

    Each query's values are averaged over the seeds that scored it, so the test
    is over queries (the unit the metric averages over), not query × seed.
    """
    xs: dict[str, list[float]] = {}
    ys: dict[str, list[float]] = {}
    for per_seed, into in ((control, xs), (treatment, ys)):
        for values in per_seed:
            for q, v in values.items():
                into.setdefault(str(q), []).append(float(v))
    queries = sorted(set(xs) & set(ys))
    return paired_pvalues([float(np.mean(xs[q])) for q in queries], [float(np.mean(ys[q])) for q in queries])
