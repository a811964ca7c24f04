"""A synthetic scored run at a training set's size (issue 27): ``predictions.parquet`` in phase 2's schema.

Users train on 100,000 queries x top-100 = 10,000,000 scored candidates; no
shipped dataset is that large, so the scale benchmark (``scripts/bench_scale.py``)
times the app's reads on a run made here: the columns phase 2 writes
(:func:`rrra_core.training.phase2.pool_predictions`), queries in an unsorted
order as phase 2 writes them, one or two labelled positives per query near the
top, and a corpus ten times smaller than the candidate count, so documents recur
across queries as they do in a real pool. Written in row blocks, so making the
10M-row file never holds it all as Python objects.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["query_name", "doc_name", "write_synthetic_run"]

CLASSES = ("TP", "FN", "FP", "TN")


def query_name(i: int) -> str:
    return f"q{i:07d}"


def doc_name(i: int) -> str:
    return f"d{i:08d}"


def _block(queries: np.ndarray, per_query: int, n_docs: int, rng: np.random.Generator) -> pa.Table:
    n = len(queries) * per_query
    q = np.repeat(queries, per_query)
    rank = np.tile(np.arange(per_query), len(queries))
    score = np.sort(rng.random((len(queries), per_query)), axis=1)[:, ::-1].reshape(-1) * 0.5 + 0.4
    # Distinct documents within a query (a real top-K never lists one twice), recurring across queries.
    docs = (np.repeat(rng.integers(0, n_docs, len(queries)), per_query) + rank) % n_docs
    label = np.zeros(n, dtype=np.int64)
    label[np.arange(len(queries)) * per_query + rng.integers(0, min(5, per_query), len(queries))] = 1
    probs = rng.dirichlet((1.0, 0.3, 0.3, 3.0), n)
    p_fn_given_neg = probs[:, 1] / (probs[:, 1] + probs[:, 3])
    p_fp_given_pos = probs[:, 2] / (probs[:, 0] + probs[:, 2])
    cols = {
        "query_id": pa.array([query_name(i) for i in q]),
        "doc_id": pa.array([doc_name(i) for i in docs]),
        "rank": rank.astype(np.int64),
        "score": score,
        "label": label,
        **{f"p_{c}": probs[:, i] for i, c in enumerate(CLASSES)},
        "p_fn_given_neg": p_fn_given_neg,
        "p_fp_given_pos": p_fp_given_pos,
        "p_rel": probs[:, 0] + probs[:, 1],
        "qa": rng.random(n) * 2 - 1,
        "ca": rng.random(n) * 2 - 1,
    }
    return pa.table(cols)


def write_synthetic_run(
    folder: str | Path, n_queries: int, per_query: int = 100, *, seed: int = 0, block: int = 5000
) -> Path:
    """Write ``<folder>/predictions.parquet`` (``n_queries * per_query`` rows) and a phase-2 ``config.json``.

    The config names no dataset on disk (``synthetic``): the benchmark reads
    candidates, never text. Returns the predictions file.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_queries)  # phase 2 writes queries in the run's order, not sorted
    n_docs = max(n_queries * per_query // 10, per_query)
    path = folder / "predictions.parquet"
    writer = None
    try:
        for start in range(0, n_queries, block):
            table = _block(order[start : start + block], per_query, n_docs, rng)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    config = {"kind": "phase2", "data": {"dataset": "synthetic", "train_split": "train"}, "phase": {}}
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return path
