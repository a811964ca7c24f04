"""The query subsample behind every ``max_train_queries`` budget knob."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = ["subsample_queries"]


def subsample_queries(query_ids: Iterable[str], n: int | None, seed: int) -> list[str]:
    """``n`` of ``query_ids`` drawn without replacement, sorted; all of them (sorted) if ``n`` is None or not smaller.

    The one rule every phase, the retrain job and the benchmark use: numpy's
    ``default_rng(seed)`` choosing from the sorted ids. The same seed and ids
    give the same queries everywhere, so a retrain trains on exactly the
    questions its base run did.
    """
    qids = sorted(query_ids)
    if n is None or n >= len(qids):
        return qids
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(qids, size=n, replace=False).tolist())
