"""How a retrained run's candidate pool overlaps its base run's, from the two runs' stores.

The Overview explains why a retrained run's suspect count differs from its
base's: how many of this run's (query, doc) pairs the base scored too, and how
many of those shared pairs are suspects by each run's P(FN|neg). Joining the
two whole predictions frames costs seconds and gigabytes at 10M candidates
per view; :func:`pool_overlap` joins the stores' integer codes once (their
queries and documents mapped by id) and keeps only the shared pairs' sorted
probabilities, so the counts at any threshold are binary searches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rrra_core.analysis.run_reader import RunStore

__all__ = ["PoolOverlap", "pool_overlap"]


@dataclass(frozen=True)
class PoolOverlap:
    """The pairs a run shares with its base: how many, and the suspects' probabilities among them by each run."""

    n_shared: int
    base_negatives_p: np.ndarray  # (k,) sorted P(FN|neg) by the base of shared pairs the base labels negative
    run_negatives_p: np.ndarray  # (m,) sorted P(FN|neg) by the run of shared pairs the run labels negative

    def suspects_by_base(self, threshold: float) -> int:
        """Shared pairs that are suspects (labelled negative, P(FN|neg) ≥ ``threshold``) by the base's scores."""
        return _at_least(self.base_negatives_p, threshold)

    def suspects_by_run(self, threshold: float) -> int:
        """Shared pairs that are suspects by this run's labels and scores."""
        return _at_least(self.run_negatives_p, threshold)


def _at_least(sorted_p: np.ndarray, threshold: float) -> int:
    return int(len(sorted_p) - np.searchsorted(sorted_p, float(threshold), side="left"))


def _row_queries(store: RunStore) -> np.ndarray:
    """Each candidate row's query index in ``store`` (rows are sorted by query)."""
    return np.repeat(np.arange(len(store.query_ids), dtype=np.int64), store.stops - store.starts)


def pool_overlap(run: RunStore, base: RunStore) -> PoolOverlap:
    """The (query, doc) pairs ``run`` shares with ``base``, each counted once (an inner join on both ids).

    One pass over both stores' arrays (no frame of strings): the base's query and
    document codes are mapped onto the run's, and the pairs matched as one integer key.
    """
    qmap = np.array([run.query_index.get(q, -1) for q in base.query_ids], dtype=np.int64)
    run_docs = run.doc_index
    dmap = np.array([run_docs.get(d, -1) for d in base.doc_ids], dtype=np.int64)
    n_docs = max(len(run_docs), 1)
    base_q = qmap[_row_queries(base)] if len(qmap) else np.zeros(0, dtype=np.int64)
    base_d = dmap[np.asarray(base.doc_code)] if len(dmap) else np.zeros(0, dtype=np.int64)
    known = np.flatnonzero((base_q >= 0) & (base_d >= 0))
    base_key = base_q[known] * n_docs + base_d[known]
    run_key = _row_queries(run) * n_docs + np.asarray(run.doc_code, dtype=np.int64)
    _, run_at, base_at = np.intersect1d(run_key, base_key, return_indices=True)
    base_rows = known[base_at]
    base_neg = base_rows[np.asarray(base.label)[base_rows] == 0]
    run_neg = run_at[np.asarray(run.label)[run_at] == 0]
    return PoolOverlap(len(run_at), base_negatives_p=_sorted(base, base_neg), run_negatives_p=_sorted(run, run_neg))


def _sorted(store: RunStore, rows: np.ndarray) -> np.ndarray:
    """P(FN|neg) of ``rows``, sorted, without missing values (which no threshold counts, as in a frame's filter)."""
    p = np.asarray(store.p_fn)[rows]
    return np.sort(p[~np.isnan(p)])
