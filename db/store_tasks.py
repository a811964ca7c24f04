"""Review tasks chosen from a run's store: the rows :func:`db.exports.select_tasks` picks, without the whole run.

:func:`~db.exports.select_tasks` runs :func:`~db.review.review_queue` over every
candidate as a dict: at a training set's size (10M scored candidates) tens of
GB and minutes, in the app's process when the Overview exports. A run's store
(:class:`~rrra_core.analysis.run_reader.RunStore`, ``<run>/reader/``) already
holds what the choice needs as arrays over the labelled negatives, in (query,
rank) order: ``neg_p`` (P(FN|neg)), ``neg_query``, ``neg_row``, and
``adapter_order`` (P(FN|neg) high first, ties by query then rank). Here:

- ``queue``/``suspects`` by ``p_fn`` walk the head of ``adapter_order``, past
  the judged pairs, to the cap; ``uncertainty`` and ``random`` sort keys over
  ``neg_p`` (``|p - 0.5|``, or :func:`~db.review.random_keys`' seeded draw) and
  take the cap's head; the count before the cap is arithmetic on the arrays;
- ``judged``: the judged pairs sorted, cut to the cap, then their rows;
- only the rows written are read (``negative_rows``, ``pair_rows``), a batch at
  a time, as the task writer takes them.

The rows are :func:`~db.review.review_queue`'s for the same choice, key for key
(the predictions file's column names, ids as strings, ``p_fn_given_neg``
filled in), so the task files are byte for byte the whole-frame path's;
``tests/db/test_db_store_tasks.py`` checks every choice. A labelled negative
without a P(FN|neg) sends the caller back to the whole frame
(:func:`store_can_select`: the queue falls back to ``p_fn / (p_fn + p_tn)`` per
row, the store sorts it last). Two candidates of one query at the same rank
would go by the file's order here, by doc id there; a run's ranks are distinct.

The store is duck-typed, as :mod:`rrra_core.review.live` takes it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy.orm import Session

from .exports import TaskChoice
from .judgments import judged_pairs
from .review import p_fn_given_neg, random_keys

__all__ = ["store_can_select", "file_column_names", "select_store_tasks", "judged_positions", "READ_BATCH"]

#: Rows read from the store at once: scattered rows touch most of a large run's row groups, so a batch is large
#: (a 10M-row run read about 40 times for every task it has), and turned into dicts a few thousand at a time.
READ_BATCH = 262_144
_DICT_BATCH = 4096
_WALK = 65_536  # adapter-order positions looked at per step of the p_fn walk
_SEED = 0  # select_tasks' review_queue seed


def store_can_select(store: Any) -> bool:
    """Whether the store gives exactly the whole frame's choice: every labelled negative has a P(FN|neg)."""
    p_sorted = store.p_sorted  # NaN sorts last
    return not (len(p_sorted) and np.isnan(p_sorted[-1]))


def file_column_names(path: str | Path) -> dict[str, str]:
    """The store's column name -> the predictions file's, where they differ (phase 2's ``p_TP`` is the store's
    ``p_tp``): the schema only, no rows."""
    names = pq.read_schema(path).names
    return {name.lower(): name for name in names if name.lower() != name and name.lower() not in names}


def judged_positions(store: Any, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
    """Positions (in the negatives' arrays, sorted) of the labelled negatives among ``pairs``; others ignored.

    Vectorised: the ids are looked up by Arrow's hash join, and only the judged
    queries' negatives are compared, so a million judgments cost a second, not a
    Python search per pair.
    """
    if not pairs or not store.n_negatives:
        return np.zeros(0, dtype=np.int64)
    qs = pa.array([q for q, _ in pairs], pa.string())
    ds = pa.array([d for _, d in pairs], pa.string())
    qi = pc.index_in(qs, value_set=pa.array(store.query_ids, pa.string())).fill_null(-1).to_numpy()
    code = pc.index_in(ds, value_set=pa.array(store.doc_ids, pa.string())).fill_null(-1).to_numpy()
    ok = (qi >= 0) & (code >= 0)
    if not ok.any():
        return np.zeros(0, dtype=np.int64)
    n_docs = np.int64(len(store.doc_ids))
    wanted = qi[ok].astype(np.int64) * n_docs + code[ok]
    neg_query = np.asarray(store.neg_query)
    queries = np.unique(qi[ok])
    lo = np.searchsorted(neg_query, queries, side="left")  # neg_query is non-decreasing: (query, rank) order
    hi = np.searchsorted(neg_query, queries, side="right")
    sizes = hi - lo
    pos = np.repeat(lo - np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes) + np.arange(sizes.sum())
    keys = neg_query[pos].astype(np.int64) * n_docs + np.asarray(store.doc_code)[np.asarray(store.neg_row)[pos]]
    return pos[np.isin(keys, wanted)]


def _head(keys: np.ndarray, cap: int | None) -> np.ndarray:
    """Indices of ``keys`` in a stable ascending sort, the first ``cap`` only (a partition first when it is small)."""
    if cap is None or cap >= len(keys):
        return np.argsort(keys, kind="stable")
    kth = np.partition(keys, cap - 1)[cap - 1]
    near = np.flatnonzero(keys <= kth)  # every tie of the cap-th key: the stable sort then cuts exactly
    return near[np.argsort(keys[near], kind="stable")][:cap]


def _queue_positions(store: Any, choice: TaskChoice, gone: np.ndarray) -> tuple[np.ndarray, int]:
    """The negatives' positions a queue or suspects choice writes, in order and capped, and how many it selected."""
    threshold = choice.suspect_threshold if choice.select == "suspects" else choice.threshold
    p = store.neg_p
    cap = choice.cap
    if choice.order == "p_fn":
        stop = store.n_negatives if threshold is None else store.count_suspects(threshold)
        in_pool = len(gone) if threshold is None else int(np.count_nonzero(np.asarray(p[gone]) >= threshold))
        taken: list[np.ndarray] = []
        got = 0
        for at in range(0, stop, _WALK):
            if cap is not None and got >= cap:
                break
            chunk = np.asarray(store.adapter_order[at : min(at + _WALK, stop)])
            chunk = chunk[~np.isin(chunk, gone)] if len(gone) else chunk
            taken.append(chunk)
            got += len(chunk)
        picked = np.concatenate(taken) if taken else np.zeros(0, dtype=np.int64)
        return (picked[:cap] if cap is not None else picked), stop - in_pool
    keep = np.ones(store.n_negatives, dtype=bool) if threshold is None else np.asarray(p) >= threshold
    keep[gone] = False
    kept = np.flatnonzero(keep)  # in (query, rank) order: review_queue's tie order
    del keep
    if choice.order == "uncertainty":
        keys = np.abs(np.asarray(p[kept], dtype=float) - 0.5)
    else:
        keys = random_keys(len(kept), _SEED)
    return kept[_head(keys, cap)], len(kept)


def _records(frame: Any, names: Mapping[str, str]) -> Iterator[dict[str, Any]]:
    """A store frame's rows as review_queue's dicts: the file's column names, string ids, P(FN|neg) filled in."""
    frame = frame.drop(columns=[c for c in ("rerank", "src_row") if c in frame.columns])
    if names:
        frame = frame.rename(columns=dict(names))
    for at in range(0, len(frame), _DICT_BATCH):
        for row in frame.iloc[at : at + _DICT_BATCH].to_dict("records"):
            row["query_id"], row["doc_id"] = str(row["query_id"]), str(row["doc_id"])
            row["p_fn_given_neg"] = p_fn_given_neg(row)
            yield row


def _negative_rows(store: Any, positions: np.ndarray, names: Mapping[str, str]) -> Iterator[dict[str, Any]]:
    for at in range(0, len(positions), READ_BATCH):
        yield from _records(store.negative_rows(positions[at : at + READ_BATCH]), names)


def _judged_rows(store: Any, pairs: list[tuple[str, str]], names: Mapping[str, str]) -> Iterator[dict[str, Any]]:
    """The judged ``pairs`` (sorted) as the run's rows where it scored them, else bare ``query_id``/``doc_id`` rows."""
    for at in range(0, len(pairs), READ_BATCH):
        batch = pairs[at : at + READ_BATCH]
        found = store.locate(batch)
        scored = iter(_records(store.rows_at(found.row[found.row >= 0]), names))
        for (q, d), row in zip(batch, found.row, strict=True):
            yield next(scored) if row >= 0 else {"query_id": q, "doc_id": d}


def select_store_tasks(
    session: Session, dataset: str, store: Any, choice: TaskChoice, *, names: Mapping[str, str] | None = None
) -> tuple[Iterator[dict[str, Any]], int]:
    """:func:`~db.exports.select_tasks` over a run's store: the rows (read lazily, in order) and the count before
    the cap.

    ``names`` maps the store's column names to the predictions file's (the
    store lower-cases phase 2's ``p_TP`` ...), so the rows carry the same keys
    as the whole frame's. Check :func:`store_can_select` first.
    """
    names = names or {}
    done = judged_pairs(session, dataset) if (choice.select == "judged" or not choice.include_judged) else set()
    if choice.select == "judged":
        pairs = sorted(done)  # by query, then doc: select_tasks' fixed order
        return _judged_rows(store, pairs[: choice.cap] if choice.cap is not None else pairs, names), len(pairs)
    gone = judged_positions(store, sorted(done)) if done else np.zeros(0, dtype=np.int64)
    positions, selected = _queue_positions(store, choice, gone)
    return _negative_rows(store, positions, names), selected
