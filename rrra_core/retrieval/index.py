"""Dense retrieval index: FAISS over L2-normalised float32 embeddings.

Embeddings are L2-normalised, so inner product equals cosine similarity and the
scores a retriever reports here are the same cosine scores the training code
uses. One :class:`DenseIndex` pairs a FAISS index with the string document ids
of its rows; FAISS itself only knows row numbers.

Index kinds:

* ``flat`` -- ``IndexFlatIP``, exact brute force. The default for corpora under
  :data:`AUTO_FLAT_MAX` documents. Exact results keep evaluation and
  false-negative mining free of index noise, and :func:`retrieve` builds a fresh
  index per call, so build time counts: a flat index builds in seconds where IVF
  and HNSW take minutes, and an approximate index only pays off after many
  thousands of queries on one build (``results/speed_index.md`` has the
  figures). A serving index (``serving=True``) is built once for query after
  query, so there ``auto`` switches at :data:`SERVING_FLAT_MAX`.
* ``ivf`` -- ``IndexIVFFlat``; recall depends on ``nprobe`` and on how
  clustered the data is. Chosen by ``auto`` above the flat limit, with k-means
  on a 64-per-list sample and ``nprobe = nlist / 64``, which keeps recall@10
  near 1 at 1M documents (``results/speed_index.md``).
* ``hnsw`` -- ``IndexHNSWFlat``; no training step, sub-millisecond queries.
  Questions are out of distribution for a graph built over passages, so its
  recall for real questions lags far behind synthetic passage-like queries
  (``results/speed_index.md``) and ``auto`` does not pick it.

On disk an index is a folder with ``index.faiss``, ``doc_ids.txt`` (one id per
line) and ``index.json`` (kind, dim, count, params). Never pickled.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from rrra_core.runtime.errors import ConfigError, DataError, UserError

__all__ = [
    "AUTO_FLAT_MAX",
    "SERVING_FLAT_MAX",
    "INDEX_KINDS",
    "DenseIndex",
    "auto_kind",
]

#: ``kind="auto"`` uses an exact flat index below this many documents, and IVF from
#: there on: memory and batch query time grow linearly with the corpus, and stay
#: affordable up to here (``results/speed_index.md``).
AUTO_FLAT_MAX = 2_000_000
#: For serving (one index answering query after query, :class:`rrra_core.retrieval.search.Searcher`)
#: the build is paid once, and what matters is one query's latency: exact search
#: grows with the corpus, and from about this size it outweighs encoding the query
#: (``results/speed_index.md``), so ``auto`` then builds IVF.
SERVING_FLAT_MAX = 100_000
# auto's IVF: k-means sample per list (k-means time grows with it) and lists probed.
_AUTO_IVF_TRAIN_PER_LIST = 64
_AUTO_IVF_PROBE_SHARE = 64
INDEX_KINDS = ("flat", "ivf", "hnsw", "auto")

_INDEX_FILE = "index.faiss"
_IDS_FILE = "doc_ids.txt"
_META_FILE = "index.json"
_FORMAT_VERSION = 1
# Embeddings come from a normalising encoder; allow float32 rounding plus a
# little slack, but catch un-normalised vectors, which would silently turn
# cosine scores into dot products.
_NORM_TOLERANCE = 1e-2
# FAISS k-means wants at least ~39 training points per centroid.
_MIN_POINTS_PER_CENTROID = 39
_MAX_POINTS_PER_CENTROID = 256


def _check_matrix(x: Any, what: str, dim: int | None = None) -> np.ndarray:
    """Return ``x`` as a C-contiguous float32 (n, d) array of unit vectors, or raise."""
    if not isinstance(x, np.ndarray):
        raise ConfigError(f"{what} must be a numpy array, got {type(x).__name__}")
    if x.ndim != 2:
        raise ConfigError(f"{what} must be a 2-D array (rows x dim), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ConfigError(f"{what} must be a float array, got dtype {x.dtype}")
    if x.shape[1] == 0:
        raise ConfigError(f"{what} has zero columns")
    if dim is not None and x.shape[1] != dim:
        raise ConfigError(f"{what} has dimension {x.shape[1]}, index has dimension {dim}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise ConfigError(f"{what} contains NaN or infinite values")
    if x.shape[0]:
        norms = np.linalg.norm(x, axis=1)
        bad = np.flatnonzero(np.abs(norms - 1.0) > _NORM_TOLERANCE)
        if bad.size:
            raise ConfigError(f"{what} must be L2-normalised; row {int(bad[0])} has norm {float(norms[bad[0]]):.4g}")
    return x


def _check_ids(ids: Sequence[str], n_rows: int, what: str) -> list[str]:
    ids = list(ids)
    if len(ids) != n_rows:
        raise UserError(f"{what}: {len(ids)} ids for {n_rows} embedding rows")
    seen: set[str] = set()
    for i, doc_id in enumerate(ids):
        if not isinstance(doc_id, str):
            raise UserError(f"{what}: id at position {i} is {type(doc_id).__name__}, not str")
        # doc_ids.txt is one id per line, so line breaks and empty ids cannot round-trip.
        if not doc_id or "\n" in doc_id or "\r" in doc_id or doc_id != doc_id.strip():
            raise UserError(
                f"{what}: id at position {i} ({doc_id!r}) is empty or has surrounding/line-break whitespace"
            )
        if doc_id in seen:
            raise UserError(f"{what}: duplicate id {doc_id!r}")
        seen.add(doc_id)
    return ids


def auto_kind(n: int, serving: bool = False) -> str:
    """The index ``kind="auto"`` builds for ``n`` documents: exact below :data:`AUTO_FLAT_MAX`
    (:data:`SERVING_FLAT_MAX` for a serving index), IVF above."""
    return "flat" if n < (SERVING_FLAT_MAX if serving else AUTO_FLAT_MAX) else "ivf"


def _default_nlist(n: int) -> int:
    # ~4*sqrt(n) lists (the FAISS guideline's low end), capped so k-means has
    # enough points per centroid.
    return max(1, min(int(round(4 * math.sqrt(n))), n // _MIN_POINTS_PER_CENTROID))


def _default_nprobe(nlist: int) -> int:
    # Probing 1/8 of the lists (at least 8) keeps recall@10 >= ~0.95 on
    # clustered text embeddings; uniform random vectors are the worst case and
    # need a larger nprobe.
    return min(nlist, max(8, nlist // 8))


@dataclass
class DenseIndex:
    """A FAISS inner-product index plus the string id of each row."""

    index: faiss.Index
    doc_ids: list[str]
    kind: str
    params: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ build
    @classmethod
    def build(
        cls,
        embeddings: np.ndarray,
        doc_ids: Sequence[str],
        kind: str = "auto",
        *,
        nlist: int | None = None,
        hnsw_m: int = 32,
        ef_search: int = 128,
        ef_construction: int = 40,
        nprobe: int | None = None,
        ivf_train_size: int | None = None,
        serving: bool = False,
    ) -> DenseIndex:
        """Index unit-norm document embeddings under their ids.

        ``kind="auto"`` is exact (flat) below :data:`AUTO_FLAT_MAX` documents and
        IVF above (with a 64-per-list k-means sample and ``nprobe = nlist / 64``
        unless given); see the module docstring for why. ``ivf_train_size`` caps the
        sample IVF's k-means trains on (default ``min(n, 256 * nlist)``); k-means
        time grows with it, so large corpora on few cores want ~40-64 per list.
        ``serving=True`` says the index will answer many single queries after one
        build, which moves ``auto``'s switch to IVF down to :data:`SERVING_FLAT_MAX`.
        """
        if kind not in INDEX_KINDS:
            raise ConfigError(f"unknown index kind {kind!r}; expected one of {', '.join(INDEX_KINDS)}")
        x = _check_matrix(embeddings, "document embeddings")
        ids = _check_ids(doc_ids, x.shape[0], "document ids")
        n, d = x.shape
        if n == 0:
            raise ConfigError("cannot build an index over zero documents")
        if kind == "auto":
            kind = auto_kind(n, serving)
            if kind == "ivf":
                nlist = nlist if nlist is not None else _default_nlist(n)
                nprobe = nprobe if nprobe is not None else max(8, nlist // _AUTO_IVF_PROBE_SHARE)
                ivf_train_size = (
                    ivf_train_size if ivf_train_size is not None else max(nlist, _AUTO_IVF_TRAIN_PER_LIST * nlist)
                )

        params: dict[str, Any] = {}
        if kind == "flat":
            index: faiss.Index = faiss.IndexFlatIP(d)
        elif kind == "hnsw":
            for name, value in (("hnsw_m", hnsw_m), ("ef_search", ef_search), ("ef_construction", ef_construction)):
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    raise ConfigError(f"{name} must be a positive integer, got {value!r}")
            index = faiss.IndexHNSWFlat(d, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = ef_construction
            index.hnsw.efSearch = ef_search
            params = {"hnsw_m": hnsw_m, "ef_search": ef_search, "ef_construction": ef_construction}
        else:  # ivf
            if nlist is None:
                nlist = _default_nlist(n)
            if not isinstance(nlist, int) or isinstance(nlist, bool) or not 1 <= nlist <= n:
                raise ConfigError(f"nlist must be an integer in [1, {n}], got {nlist!r}")
            if nprobe is None:
                nprobe = _default_nprobe(nlist)
            if not isinstance(nprobe, int) or isinstance(nprobe, bool) or nprobe < 1:
                raise ConfigError(f"nprobe must be a positive integer, got {nprobe!r}")
            nprobe = min(nprobe, nlist)
            quantizer = faiss.IndexFlatIP(d)
            index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
            # Train on a fixed-seed sample so builds are reproducible and
            # k-means cost does not grow with the corpus.
            n_train = min(n, _MAX_POINTS_PER_CENTROID * nlist)
            if ivf_train_size is not None:
                if not isinstance(ivf_train_size, int) or isinstance(ivf_train_size, bool) or ivf_train_size < nlist:
                    raise ConfigError(
                        f"ivf_train_size must be an integer of at least nlist ({nlist}), got {ivf_train_size!r}"
                    )
                n_train = min(n, ivf_train_size)
            sample = x if n_train == n else x[np.sort(np.random.default_rng(0).choice(n, n_train, replace=False))]
            index.train(sample)
            index.nprobe = nprobe
            params = {"nlist": nlist, "nprobe": nprobe}
        index.add(x)
        return cls(index=index, doc_ids=ids, kind=kind, params=params)

    # ----------------------------------------------------------------- basics
    @property
    def dim(self) -> int:
        return int(self.index.d)

    def __len__(self) -> int:
        return len(self.doc_ids)

    def set_search_params(self, *, ef_search: int | None = None, nprobe: int | None = None) -> None:
        """Change the speed/recall knob of an approximate index after building or loading."""
        if ef_search is not None:
            if self.kind != "hnsw":
                raise ConfigError(f"ef_search applies to hnsw indexes, this one is {self.kind}")
            if ef_search < 1:
                raise ConfigError(f"ef_search must be positive, got {ef_search}")
            self.index.hnsw.efSearch = int(ef_search)
            self.params["ef_search"] = int(ef_search)
        if nprobe is not None:
            if self.kind != "ivf":
                raise ConfigError(f"nprobe applies to ivf indexes, this one is {self.kind}")
            if nprobe < 1:
                raise ConfigError(f"nprobe must be positive, got {nprobe}")
            nprobe = min(int(nprobe), int(self.index.nlist))
            faiss.extract_index_ivf(self.index).nprobe = nprobe
            self.params["nprobe"] = nprobe

    # ----------------------------------------------------------------- search
    def search(self, query_emb: np.ndarray, k: int) -> tuple[np.ndarray, list[list[str]]]:
        """Top-``k`` documents per query row, best first.

        Returns ``(scores, ids)``: ``scores`` is float32 ``(n_queries, k')`` with
        ``k' = min(k, len(self))``; ``ids[i]`` lists the found ids. Approximate
        indexes can find fewer than ``k'`` documents; those slots are dropped
        from ``ids[i]`` and their scores are ``-inf``, so ``scores[i, :len(ids[i])]``
        are always the valid ones.
        """
        scores, rows = self.search_rows(query_emb, k)
        ids = [[self.doc_ids[r] for r in row if r >= 0] for row in rows.tolist()]
        return scores, ids

    def search_rows(self, query_emb: np.ndarray, k: int, threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`search`, but the found documents as row numbers ``(n_queries, k')`` (-1 where none was found).

        ``threads`` caps FAISS's OpenMP threads for this call: one query gains
        nothing from a parallel scan, and idle FAISS threads spinning after it
        slow the torch work that follows (``results/speed_latency.md``).
        """
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ConfigError(f"k must be a positive integer, got {k!r}")
        q = _check_matrix(query_emb, "query embeddings", dim=self.dim)
        k = min(k, len(self.doc_ids))
        if q.shape[0] == 0:
            return np.zeros((0, k), dtype=np.float32), np.zeros((0, k), dtype=np.int64)
        before = faiss.omp_get_max_threads()
        if threads is not None:
            faiss.omp_set_num_threads(threads)
        try:
            scores, rows = self.index.search(q, k)
        finally:
            if threads is not None:
                faiss.omp_set_num_threads(before)
        scores = np.asarray(scores, dtype=np.float32)
        scores[rows < 0] = -np.inf
        return scores, rows

    def search_run(self, query_ids: Sequence[str], query_emb: np.ndarray, k: int) -> dict[str, dict[str, float]]:
        """Retrieve top-``k`` for each query and return a run ``{qid: {doc_id: score}}``."""
        scores, ids = self.search(query_emb, k)
        qids = _check_ids(query_ids, len(ids), "query ids")
        return {
            qid: {doc_id: float(s) for doc_id, s in zip(row_ids, row_scores)}
            for qid, row_ids, row_scores in zip(qids, ids, scores)
        }

    # ------------------------------------------------------------ persistence
    def save(self, folder: str | Path) -> Path:
        """Write the index folder atomically: a crash leaves either the old folder or none.

        Files go to a temporary sibling folder (``index.json`` last), which then
        replaces ``folder`` by rename.
        """
        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
        try:
            faiss.write_index(self.index, str(tmp / _INDEX_FILE))
            with open(tmp / _IDS_FILE, "w", encoding="utf-8", newline="\n") as fh:
                fh.writelines(f"{doc_id}\n" for doc_id in self.doc_ids)
            meta = {
                "format_version": _FORMAT_VERSION,
                "kind": self.kind,
                "dim": self.dim,
                "count": len(self.doc_ids),
                "params": self.params,
            }
            with open(tmp / _META_FILE, "w", encoding="utf-8") as fh:
                json.dump(meta, fh, indent=2, sort_keys=True)
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
            old = None
            if folder.exists():
                # A directory cannot be replaced in one rename; move the old one
                # aside first. A crash in between leaves no `folder`, never a mix.
                old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old-", dir=folder.parent))
                old.rmdir()
                folder.rename(old)
            tmp.rename(folder)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> DenseIndex:
        """Read a folder written by :meth:`save`, checking that its parts agree."""
        folder = Path(folder)
        meta_path = folder / _META_FILE
        if not meta_path.is_file():
            raise DataError(folder, f"not a saved index (missing {_META_FILE})")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(meta_path, f"invalid JSON: {exc}") from None
        if not isinstance(meta, dict):
            raise DataError(meta_path, "expected a JSON object")
        for key in ("kind", "dim", "count"):
            if key not in meta:
                raise DataError(meta_path, f"missing key {key!r}")
        kind, dim, count = meta["kind"], meta["dim"], meta["count"]
        params = meta.get("params") or {}
        if kind not in ("flat", "ivf", "hnsw"):
            raise DataError(meta_path, f"unknown index kind {kind!r}")
        if not isinstance(params, dict):
            raise DataError(meta_path, "'params' must be an object")

        ids_path = folder / _IDS_FILE
        if not ids_path.is_file():
            raise DataError(folder, f"missing {_IDS_FILE}")
        text = ids_path.read_text(encoding="utf-8")
        if text and not text.endswith("\n"):
            raise DataError(ids_path, "truncated file (no final newline)")
        doc_ids = text.split("\n")[:-1] if text else []
        if len(doc_ids) != count:
            raise DataError(ids_path, f"{len(doc_ids)} ids but {_META_FILE} says count={count}")
        if len(set(doc_ids)) != len(doc_ids):
            raise DataError(ids_path, "duplicate document ids")

        index_path = folder / _INDEX_FILE
        if not index_path.is_file():
            raise DataError(folder, f"missing {_INDEX_FILE}")
        try:
            index = faiss.read_index(str(index_path))
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
            raise DataError(index_path, f"cannot read FAISS index: {first}") from None
        if index.ntotal != count:
            raise DataError(index_path, f"index holds {index.ntotal} vectors but {_META_FILE} says count={count}")
        if index.d != dim:
            raise DataError(index_path, f"index dimension {index.d} but {_META_FILE} says dim={dim}")
        if index.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise DataError(index_path, "index does not use inner-product metric")

        loaded = cls(index=index, doc_ids=doc_ids, kind=kind, params=dict(params))
        # Search-time knobs are not guaranteed to round-trip through the FAISS
        # file, so reapply them from index.json.
        if kind == "hnsw" and "ef_search" in params:
            loaded.set_search_params(ef_search=int(params["ef_search"]))
        if kind == "ivf" and "nprobe" in params:
            loaded.set_search_params(nprobe=int(params["nprobe"]))
        return loaded
