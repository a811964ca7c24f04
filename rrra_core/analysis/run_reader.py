"""A run's scored candidates laid out for the app: read what a page shows, never the whole run per view.

``predictions.parquet`` is written in the run's query order, one or a few large
row groups: picking one query's rows means reading every row (a 10M-row run:
24 s and 3.8 GB to load, 290 ms per full-frame scan). :func:`build_store` writes,
once per predictions file, a sidecar folder ``<run>/reader/``:

- ``candidates.parquet``: every row sorted by (query, rank), in small row groups,
  with the ``rerank`` column (:func:`~rrra_core.analysis.candidates.with_rerank`,
  λ 1) and the row's position in the original file (``src_row``);
- ``queries.parquet``: each query's id, first and last row, its positive score
  ``s_pos`` (as :func:`~rrra_core.review.features.candidates_frame` defines it)
  and its first row in the original file;
- ``docs.parquet``: the distinct document ids, whose codes the arrays use;
- ``.npy`` arrays, memory-mapped by readers: per row the document code, label
  and P(FN|neg); per labelled negative its row, query, score, margin and
  original position; the labelled negatives in the adapter's order (P(FN|neg)
  high first, then query and rank: the Overview's top suspects and the adapter
  queue) and P(FN|neg) sorted for counting suspects at any threshold.

:class:`RunStore` opens that folder: one query's candidates read by predicate
pushdown on the row groups that hold them, the suspects' count by a binary
search, the top suspects from the head of the adapter order, judged pairs by
their query's rows. Its memory is a few arrays of numbers (memory-mapped), not
a frame of strings, so a process can keep one per run (``st.cache_resource``).
A store whose source file changed (size or mtime) is rebuilt, so a rescored
run is never served stale.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rrra_core.analysis.candidates import read_predictions_table
from rrra_core.retrieval.rerank import fuse_scores

__all__ = ["STORE_DIR", "ROW_GROUP", "RunStore", "build_store", "open_store", "store_is_current"]

STORE_DIR = "reader"
FORMAT = 1
#: Rows per row group of ``candidates.parquet``: a query's 100 candidates cost one small group's read.
ROW_GROUP = 8192
#: Row groups read at once when taking scattered rows (about half a million rows, whatever the run's size).
_TAKE_GROUPS = 64
_META = "meta.json"
_ARRAYS = ("doc_code", "label", "p_fn", "neg_row", "neg_query", "neg_p", "neg_score", "neg_margin", "neg_src",
           "adapter_order", "p_sorted")  # fmt: skip


def _source_stamp(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def store_is_current(run_dir: str | Path) -> bool:
    """Whether ``<run>/reader/`` was built from the run's current ``predictions.parquet``."""
    run_dir = Path(run_dir)
    try:
        meta = json.loads((run_dir / STORE_DIR / _META).read_text(encoding="utf-8"))
        return meta.get("format") == FORMAT and meta.get("source") == _source_stamp(run_dir / "predictions.parquet")
    except (OSError, ValueError):
        return False


def build_store(run_dir: str | Path) -> Path:
    """Write ``<run>/reader/`` from the run's ``predictions.parquet`` (atomically: a half-built store is never read).

    The one pass over the whole run; a missing, damaged or incomplete
    predictions file is a one-line ``DataError`` naming it, as
    :func:`~rrra_core.analysis.candidates.read_predictions` says it.
    """
    run_dir = Path(run_dir)
    source = run_dir / "predictions.parquet"
    stamp = _source_stamp(source) if source.is_file() else None
    table = read_predictions_table(source)
    n = table.num_rows
    table = table.append_column("src_row", pa.array(np.arange(n, dtype=np.int64)))
    order = pc.sort_indices(table, sort_keys=[("query_id", "ascending"), ("rank", "ascending")])
    table = table.take(order)
    del order

    qcol = table.column("query_id").combine_chunks()
    change = (
        np.flatnonzero(~pc.equal(qcol.slice(1), qcol.slice(0, max(n - 1, 0))).to_numpy(zero_copy_only=False)) + 1
        if n > 1
        else np.zeros(0, dtype=np.int64)
    )
    starts = np.concatenate([[0], change]).astype(np.int64) if n else np.zeros(0, dtype=np.int64)
    stops = np.append(starts[1:], n).astype(np.int64)
    qidx = np.repeat(np.arange(len(starts), dtype=np.int32), stops - starts)

    score = table.column("score").to_numpy().astype(float)
    rank = table.column("rank").to_numpy().astype(np.int64)
    label = table.column("label").to_numpy().astype(np.int64)
    p_fn = table.column("p_fn_given_neg").to_numpy().astype(float)
    src = table.column("src_row").to_numpy()

    # rerank: the same fused order as with_rerank (ties keep the retriever's order), within each query.
    fused = fuse_scores(score, table.column("p_rel").to_numpy().astype(float), 1.0)
    within = np.lexsort((rank, -fused, qidx))
    rerank = np.empty(n, dtype=np.int64)
    rerank[within] = np.arange(n) - starts[qidx[within]]
    table = table.append_column("rerank", pa.array(rerank))
    del fused, within, rerank

    # s_pos: the query's lowest-scoring labelled positive, else its lowest candidate score (candidates_frame).
    big = np.where(label == 1, score, np.inf)
    pos_min = np.minimum.reduceat(big, starts) if n else np.zeros(0)
    low = np.minimum.reduceat(score, starts) if n else np.zeros(0)
    s_pos = np.where(np.isfinite(pos_min), pos_min, low)
    first_src = np.minimum.reduceat(src, starts) if n else np.zeros(0, dtype=np.int64)

    docs = table.column("doc_id").combine_chunks().dictionary_encode()
    doc_code = docs.indices.to_numpy().astype(np.int32)

    neg_row = np.flatnonzero(label == 0).astype(np.int64)
    neg_query = qidx[neg_row]
    sp = s_pos[neg_query]
    neg_margin = score[neg_row] / np.where(np.abs(sp) > 1e-9, sp, 1e-9)
    # Rows are sorted by (query, rank): a stable sort on P(FN|neg) alone keeps query, then rank, for ties.
    adapter_order = np.argsort(-p_fn[neg_row], kind="stable").astype(np.int64)

    queries = pa.table(
        {
            "query_id": qcol.take(pa.array(starts)) if n else pa.array([], pa.string()),
            "start": starts,
            "stop": stops,
            "s_pos": s_pos,
            "first_src": first_src,
        }
    )
    arrays = {
        "doc_code": doc_code,
        "label": label.astype(np.int8),
        "p_fn": p_fn,
        "neg_row": neg_row,
        "neg_query": neg_query.astype(np.int32),
        "neg_p": p_fn[neg_row],
        "neg_score": score[neg_row],
        "neg_margin": neg_margin,
        "neg_src": src[neg_row],
        "adapter_order": adapter_order,
        "p_sorted": np.sort(p_fn[neg_row]),
    }
    meta = {"format": FORMAT, "source": stamp, "n_rows": n, "n_queries": len(starts), "n_negatives": len(neg_row)}
    return _write_store(run_dir, table, queries, pa.table({"doc_id": docs.dictionary}), arrays, meta)


def _write_store(
    run_dir: Path, table: pa.Table, queries: pa.Table, docs: pa.Table, arrays: dict[str, np.ndarray], meta: dict
) -> Path:
    """Write the store's files into a fresh folder, then move it in whole (a reader never sees half of one)."""
    out = run_dir / STORE_DIR
    tmp = run_dir / f".{STORE_DIR}.{secrets.token_hex(4)}.tmp"
    tmp.mkdir()
    try:
        pq.write_table(table, tmp / "candidates.parquet", row_group_size=ROW_GROUP)
        pq.write_table(queries, tmp / "queries.parquet")
        pq.write_table(docs, tmp / "docs.parquet")
        for name, values in arrays.items():
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(values))
        (tmp / _META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            old = run_dir / f".{STORE_DIR}.{secrets.token_hex(4)}.old"
            os.rename(out, old)
            shutil.rmtree(old, ignore_errors=True)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def open_store(run_dir: str | Path) -> RunStore:
    """The run's store, built first when it is missing or was made from another predictions file."""
    run_dir = Path(run_dir)
    if not store_is_current(run_dir):
        if not (run_dir / "predictions.parquet").is_file():
            read_predictions_table(run_dir / "predictions.parquet")  # the one-line DataError
        build_store(run_dir)
    return RunStore(run_dir / STORE_DIR)


@dataclass(frozen=True)
class Pairs:
    """Where (query, doc) pairs sit in a store: their rows (-1 where the run has no such pair)."""

    query_id: list[str]
    doc_id: list[str]
    row: np.ndarray  # (n_pairs,) candidate row, or -1


class RunStore:
    """Read-only access to a built ``<run>/reader/``: numbers memory-mapped, rows read by the query's row groups.

    Never mutated after opening, so one instance serves every session of the app.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.meta = json.loads((self.folder / _META).read_text(encoding="utf-8"))
        q = pq.read_table(self.folder / "queries.parquet")
        self.query_ids: list[str] = q.column("query_id").to_pylist()
        self.starts = q.column("start").to_numpy()
        self.stops = q.column("stop").to_numpy()
        self.s_pos = q.column("s_pos").to_numpy()
        self.first_src = q.column("first_src").to_numpy()
        self.query_index = {qid: i for i, qid in enumerate(self.query_ids)}
        for name in _ARRAYS:
            setattr(self, name, np.load(self.folder / f"{name}.npy", mmap_mode="r"))
        self._file = pq.ParquetFile(self.folder / "candidates.parquet")
        meta = self._file.metadata
        self._group_starts = np.cumsum([0] + [meta.row_group(i).num_rows for i in range(meta.num_row_groups)])

    # --- sizes and ids ---------------------------------------------------------------

    @property
    def n_rows(self) -> int:
        return int(self.meta["n_rows"])

    @property
    def n_negatives(self) -> int:
        return int(self.meta["n_negatives"])

    def scored_queries(self) -> list[str]:
        """The run's query ids in the order the predictions file first lists them."""
        return [self.query_ids[i] for i in np.argsort(self.first_src, kind="stable")]

    @cached_property
    def doc_ids(self) -> list[str]:
        """Document ids by code (read on first use: the Overview's counts never need them)."""
        return pq.read_table(self.folder / "docs.parquet").column("doc_id").to_pylist()

    @cached_property
    def doc_index(self) -> dict[str, int]:
        return {d: i for i, d in enumerate(self.doc_ids)}

    # --- rows ------------------------------------------------------------------------

    def rows(self, start: int, stop: int, columns: list[str] | None = None) -> pd.DataFrame:
        """Candidate rows ``start:stop`` (in (query, rank) order), reading only the row groups that hold them."""
        if stop <= start:
            return self._file.schema_arrow.empty_table().to_pandas().drop(columns=["src_row"])
        first = int(np.searchsorted(self._group_starts, start, side="right") - 1)
        last = int(np.searchsorted(self._group_starts, stop - 1, side="right") - 1)
        table = self._file.read_row_groups(list(range(first, last + 1)), columns=columns)
        offset = int(self._group_starts[first])
        frame = table.slice(start - offset, stop - start).to_pandas()
        return frame.drop(columns=[c for c in ("src_row",) if c in frame.columns])

    def candidates(self, query_id: str) -> pd.DataFrame:
        """One query's candidates in the retriever's order (``candidates_for`` on the whole run); empty if unscored."""
        i = self.query_index.get(str(query_id))
        if i is None:
            return self.rows(0, 0)
        return self.rows(int(self.starts[i]), int(self.stops[i])).reset_index(drop=True)

    def locate(self, pairs: Iterable[tuple[str, str]]) -> Pairs:
        """Each pair's candidate row (-1 where this run did not score it): a search within its query's rows."""
        qs, ds, rows = [], [], []
        for q, d in pairs:
            q, d = str(q), str(d)
            i, code = self.query_index.get(q), self.doc_index.get(d)
            row = -1
            if i is not None and code is not None:
                start = int(self.starts[i])
                hit = np.flatnonzero(self.doc_code[start : int(self.stops[i])] == code)
                row = start + int(hit[0]) if len(hit) else -1
            qs.append(q)
            ds.append(d)
            rows.append(row)
        return Pairs(qs, ds, np.asarray(rows, dtype=np.int64))

    def negatives_at(self, pairs: Iterable[tuple[str, str]]) -> pd.DataFrame:
        """The labelled-negative rows among ``pairs``: ``query_id``, ``doc_id``, ``p_fn_given_neg``, ``label``,
        ``row`` (candidate row) and ``src_row``, in the predictions file's order."""
        found = self.locate(pairs)
        keep = found.row >= 0
        rows = found.row[keep]
        frame = pd.DataFrame(
            {
                "query_id": np.asarray(found.query_id, dtype=object)[keep],
                "doc_id": np.asarray(found.doc_id, dtype=object)[keep],
                "label": self.label[rows].astype(np.int64) if len(rows) else np.zeros(0, np.int64),
                "p_fn_given_neg": self.p_fn[rows] if len(rows) else np.zeros(0),
                "row": rows,
            }
        )
        frame = frame[frame["label"] == 0].drop_duplicates(["query_id", "doc_id"])
        src = self._src_rows(frame["row"].to_numpy())
        return frame.assign(src_row=src).sort_values("src_row", kind="stable").reset_index(drop=True)

    def _src_rows(self, rows: np.ndarray) -> np.ndarray:
        """Original file positions of candidate ``rows`` (labelled negatives only)."""
        pos = np.searchsorted(self.neg_row, rows)
        return np.asarray(self.neg_src[pos], dtype=np.int64) if len(rows) else np.zeros(0, dtype=np.int64)

    def negative_positions(self, rows: np.ndarray) -> np.ndarray:
        """Positions in the negatives' arrays of candidate ``rows`` that are labelled negatives (others dropped)."""
        rows = np.asarray(rows, dtype=np.int64)
        rows = rows[rows >= 0]
        if not len(rows):
            return np.zeros(0, dtype=np.int64)
        pos = np.searchsorted(self.neg_row, rows)
        ok = pos < len(self.neg_row)
        ok[ok] = np.asarray(self.neg_row[pos[ok]]) == rows[ok]
        return pos[ok]

    def negative_positions_or_missing(self, rows: np.ndarray) -> np.ndarray:
        """Per candidate row, its position in the negatives' arrays, or -1 (no such row, or a labelled positive)."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.full(len(rows), -1, dtype=np.int64)
        if not len(rows) or not len(self.neg_row):
            return out
        pos = np.clip(np.searchsorted(self.neg_row, rows), 0, len(self.neg_row) - 1)
        ok = (rows >= 0) & (np.asarray(self.neg_row[pos]) == rows)
        out[ok] = pos[ok]
        return out

    # --- suspects ---------------------------------------------------------------------

    def count_suspects(self, threshold: float) -> int:
        """Labelled negatives with P(FN|neg) ≥ ``threshold`` (a binary search on the sorted values)."""
        return int(len(self.p_sorted) - np.searchsorted(self.p_sorted, float(threshold), side="left"))

    def negative_rows(self, positions: np.ndarray) -> pd.DataFrame:
        """Labelled negatives at ``positions`` (of the negatives' arrays) as full candidate rows, in that order."""
        rows = np.asarray(self.neg_row[np.asarray(positions, dtype=np.int64)], dtype=np.int64)
        return self.rows_at(rows)

    def rows_at(self, rows: np.ndarray) -> pd.DataFrame:
        """Candidate ``rows`` (any order) as a frame in that order, reading only the row groups that hold them."""
        return self._take(rows).drop(columns=["src_row"])

    def _take(self, rows: np.ndarray) -> pd.DataFrame:
        """Candidate ``rows`` with their ``src_row``, reading only the row groups that hold them."""
        rows = np.asarray(rows, dtype=np.int64)
        if not len(rows):
            return self._file.schema_arrow.empty_table().to_pandas()
        groups = np.searchsorted(self._group_starts, rows, side="right") - 1
        wanted = np.unique(groups)
        # a batch of row groups at a time, keeping only the asked rows of each: 1,000 pairs scattered over a
        # 10M-row run touch most of its groups, and reading them all at once held the whole run in memory
        parts, order = [], []
        for at in range(0, len(wanted), _TAKE_GROUPS):
            batch = wanted[at : at + _TAKE_GROUPS]
            hit = np.flatnonzero((groups >= batch[0]) & (groups <= batch[-1]))
            table = self._file.read_row_groups([int(g) for g in batch])
            sizes = [self._group_starts[g + 1] - self._group_starts[g] for g in batch]
            offsets = np.concatenate([[0], np.cumsum(sizes)])
            local = offsets[np.searchsorted(batch, groups[hit])] + (rows[hit] - self._group_starts[groups[hit]])
            parts.append(table.take(pa.array(local)))
            order.append(hit)
        taken = pa.concat_tables(parts).take(pa.array(np.argsort(np.concatenate(order), kind="stable")))
        return taken.to_pandas().reset_index(drop=True)

    def query_rows(self, query_ids: Iterable[str]) -> pd.DataFrame:
        """Every candidate of ``query_ids`` (unscored ones skipped) in the predictions file's order.

        What filtering the whole frame by those queries gives (a map's sampled queries), read from their row
        groups only.
        """
        found = sorted({i for q in query_ids if (i := self.query_index.get(str(q))) is not None})
        if not found:
            return self.rows(0, 0)
        rows = np.concatenate([np.arange(self.starts[i], self.stops[i], dtype=np.int64) for i in found])
        frame = self._take(rows).sort_values("src_row", kind="stable")
        return frame.drop(columns=["src_row"]).reset_index(drop=True)

    def pair_rows(self, pairs: Iterable[tuple[str, str]]) -> pd.DataFrame:
        """The candidate rows of the (query, doc) ``pairs`` this run scored, labelled positive or negative, in the
        pairs' order (each pair once; pairs the run did not score left out): a page's few pairs, by their rows."""
        found = self.locate(dict.fromkeys((str(q), str(d)) for q, d in pairs))
        return self.rows_at(found.row[found.row >= 0])

    def top_suspects(
        self, n: int = 20, *, threshold: float = 0.0, exclude: Iterable[tuple[str, str]] = ()
    ) -> pd.DataFrame:
        """:func:`~rrra_core.analysis.candidates.top_suspects` on the whole run, read from the adapter order's head.

        The ``n`` labelled negatives most likely false negatives (P(FN|neg) ≥ ``threshold``), skipping ``exclude``.
        """
        skip = self.negative_positions(self.locate(exclude).row) if exclude else np.zeros(0, dtype=np.int64)
        limit = self.count_suspects(threshold)
        taken: list[np.ndarray] = []
        got, at, step = 0, 0, max(4 * n, 64)
        while got < n and at < limit:
            chunk = np.asarray(self.adapter_order[at : min(at + step, limit)])
            chunk = chunk[~np.isin(chunk, skip)]
            taken.append(chunk)
            got += len(chunk)
            at += step
        picked = np.concatenate(taken)[:n] if taken else np.zeros(0, dtype=np.int64)
        return self.negative_rows(picked)
