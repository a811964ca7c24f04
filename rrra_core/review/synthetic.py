"""A small synthetic candidates frame with a known truth, for tests and the benchmark's ``--quick`` run.

Shaped like the real ones: a few "hot" queries hold several false negatives
each (they cluster by query), and every signal is only weakly informative, so
an order that learns from verdicts has something to gain over a static one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["synthetic_frame"]


def synthetic_frame(
    n_queries: int = 60, per_query: int = 40, hot_share: float = 0.25, fn_per_hot: int = 4, seed: int = 0
) -> pd.DataFrame:
    """Candidates with every static feature, ``truth`` and a positive score per query.

    False negatives sit in ``hot_share`` of the queries, ``fn_per_hot`` each. The
    retriever score and P(FN|neg) barely separate them; ``pos_sim`` does a little
    better, as closeness to the positive does on the real data.
    """
    rng = np.random.default_rng(seed)
    n = n_queries * per_query
    q = np.repeat(np.arange(n_queries), per_query)
    hot = rng.random(n_queries) < hot_share
    truth = np.zeros(n, dtype=bool)
    for i in np.flatnonzero(hot):
        truth[i * per_query + rng.choice(per_query, size=min(fn_per_hot, per_query), replace=False)] = True
    t = truth.astype(float)
    score = 0.5 + 0.05 * rng.standard_normal(n) + 0.03 * t
    frame = pd.DataFrame(
        {
            "query_id": [f"q{i}" for i in q],
            "doc_id": [f"d{i}" for i in range(n)],
            "score": score,
            "s_pos": 0.6 + 0.05 * rng.standard_normal(n_queries)[q],
            "p_fn_given_neg": 1 / (1 + np.exp(-(rng.standard_normal(n) + 0.4 * t - 2))),
            "p_rel": 1 / (1 + np.exp(-(rng.standard_normal(n) + 0.3 * t - 2))),
            "bm25": np.abs(5 + 2 * rng.standard_normal(n) + 1.0 * t),
            "q_coverage": rng.random(n),
            "q_idf_coverage": rng.random(n),
            "rare_idf": 3 + rng.random(n),
            "pos_sim": np.clip(0.2 + 0.1 * rng.standard_normal(n) + 0.06 * t, 0, 1),
            "truth": truth,
        }
    )
    frame["margin"] = frame["score"] / frame["s_pos"]
    frame["rank"] = frame.groupby("query_id")["score"].rank(ascending=False, method="first") - 1
    frame["bm25_rank"] = frame.groupby("query_id")["bm25"].rank(ascending=False, method="first") - 1
    return frame
