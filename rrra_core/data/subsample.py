"""Query subsets: the ``max_train_queries`` subsample, and the dev split carved from training queries."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from rrra_core.runtime.errors import ConfigError

__all__ = ["subsample_queries", "carve_dev"]


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


def carve_dev(query_ids: Iterable[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """``(train, dev)``: ``round(fraction * n)`` of the training queries set aside for choosing settings.

    Fixed per seed (its own generator stream, so it never coincides with
    :func:`subsample_queries`' draw); at least one query on each side when
    there are two or more. Every setting is chosen on ``dev``; the test split
    is read once, at the end.
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"dev_fraction must be in (0, 1), got {fraction}")
    qids = sorted(query_ids)
    if len(qids) < 2:
        raise ConfigError(f"a dev split needs at least 2 training queries, got {len(qids)}")
    n_dev = min(max(1, round(fraction * len(qids))), len(qids) - 1)
    rng = np.random.default_rng([seed, 0xDE5])
    dev = set(rng.choice(qids, size=n_dev, replace=False).tolist())
    return [q for q in qids if q not in dev], sorted(dev)
