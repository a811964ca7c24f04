"""A run's scored candidates as people browse them: reading, reranking, searching, flagging.

Phase 2 writes ``predictions.parquet``: every training query's top-K with the
retriever's rank and score, the training label, and the adapter's four class
probabilities. The app's browser, review queue and overview read it through
these pure functions (pandas in, pandas out), so all of it is tested without
a browser and nothing is recomputed with a model in the UI.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rrra_core.data.beir import dataset_folder, load_has_answer
from rrra_core.retrieval.rerank import fuse_scores
from rrra_core.runtime.errors import DataError

__all__ = [
    "REQUIRED_COLUMNS",
    "read_predictions_table",
    "read_predictions",
    "with_rerank",
    "candidates_for",
    "suspected",
    "top_suspects",
    "search_queries",
    "known_false_negatives",
    "predicted_class",
]

REQUIRED_COLUMNS = (
    "query_id",
    "doc_id",
    "rank",
    "score",
    "label",
    "p_tp",
    "p_fn",
    "p_fp",
    "p_tn",
    "p_fn_given_neg",
    "p_rel",
)
CLASS_COLUMNS = ("p_tp", "p_fn", "p_fp", "p_tn")


def read_predictions_table(path: str | Path) -> pa.Table:
    """A ``predictions.parquet`` as an Arrow table: checked, class columns lower-cased, string ids.

    The one reader of the file's raw form (the whole-frame read below and the
    run store's build both start here). Raises a one-line ``DataError`` naming
    the file for a missing or damaged (unreadable) file or one without the
    columns phase 2 writes.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(p, "no predictions file (train an adapter with scripts/train_adapter.py first)")
    try:
        table = pq.read_table(p)
    except Exception as err:  # noqa: BLE001 - pyarrow raises many kinds
        raise DataError(
            p,
            f"damaged: not a readable parquet file ({type(err).__name__}); restore it, or score the run's "
            "candidates again (scripts/train_phase2.py)",
        ) from None
    # Phase 2 names the class columns after the classes (p_TP ...); the store and the pages use lower case.
    upper = {f"p_{c.upper()}": f"p_{c}" for c in ("tp", "fn", "fp", "tn")}
    table = table.rename_columns([upper.get(c, c) for c in table.column_names])
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise DataError(p, f"missing column(s) {', '.join(missing)}")
    for name in ("query_id", "doc_id"):
        col = table.column(name)
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        if not pa.types.is_string(col.type) and not pa.types.is_large_string(col.type):
            col = col.cast(pa.string())
        table = table.set_column(table.column_names.index(name), name, col)
    return table


def read_predictions(path: str | Path, *, lambda_rr: float = 1.0) -> pd.DataFrame:
    """Load a ``predictions.parquet`` with string ids and a ``rerank`` position column.

    The whole run in memory: for scripts and small runs. The app's pages read
    a run's store instead (:mod:`rrra_core.analysis.run_reader`). Errors as
    :func:`read_predictions_table`.
    """
    return with_rerank(read_predictions_table(path).to_pandas(), lambda_rr)


def with_rerank(df: pd.DataFrame, lambda_rr: float = 1.0, signal: str = "p_rel") -> pd.DataFrame:
    """Add ``rerank``: each candidate's 0-based position after the adapter rerank.

    The same fusion as evaluation (``log s_base + lambda * log s_adapter``);
    ties keep the retriever's order, so ``lambda_rr = 0`` gives ``rerank == rank``.
    """
    out = df.copy()
    if out.empty:
        out["rerank"] = pd.Series(dtype="int64")
        return out
    fused = fuse_scores(out["score"].to_numpy(), out[signal].to_numpy(), lambda_rr)
    order = pd.DataFrame(
        {"query_id": out["query_id"].to_numpy(), "fused": -fused, "rank": out["rank"].to_numpy()}, index=out.index
    )
    order = order.sort_values(["query_id", "fused", "rank"], kind="stable")
    out["rerank"] = order.groupby("query_id", sort=False).cumcount().reindex(out.index).astype("int64")
    return out


def candidates_for(df: pd.DataFrame, query_id: str) -> pd.DataFrame:
    """One query's candidates in the retriever's order."""
    return df[df["query_id"] == str(query_id)].sort_values("rank", kind="stable").reset_index(drop=True)


def suspected(df: pd.DataFrame, threshold: float) -> pd.Series:
    """Labelled negatives whose P(FN|neg) is at least ``threshold``: the suspected false negatives."""
    return (df["label"] == 0) & (df["p_fn_given_neg"] >= threshold)


def top_suspects(
    df: pd.DataFrame, n: int = 20, *, threshold: float = 0.0, exclude: Collection[tuple[str, str]] = ()
) -> pd.DataFrame:
    """The ``n`` labelled negatives most likely to be false negatives, skipping ``exclude`` pairs."""
    rows = df[suspected(df, threshold)]
    if exclude:
        keys = pd.MultiIndex.from_arrays([rows["query_id"], rows["doc_id"]])
        rows = rows[~keys.isin(list(exclude))]
    return (
        rows.sort_values(["p_fn_given_neg", "query_id", "rank"], ascending=[False, True, True], kind="stable")
        .head(n)
        .reset_index(drop=True)
    )


_WORD = re.compile(r"\w+", re.UNICODE)


def search_queries(
    queries: Mapping[str, str], needle: str, *, within: Iterable[str] | None = None, limit: int = 50
) -> list[str]:
    """Query ids matching ``needle``: an exact id first, then ids starting with it, then texts with all its words.

    ``within`` restricts the search (a split's queries, or the queries a run scored).
    """
    pool = list(within) if within is not None else list(queries)
    needle = needle.strip()
    if not needle:
        return pool[:limit]
    exact = [q for q in pool if q == needle]
    prefix = [q for q in pool if q != needle and q.startswith(needle)]
    words = [w.lower() for w in _WORD.findall(needle)]
    seen = set(exact) | set(prefix)
    text = [q for q in pool if q not in seen and words and all(w in queries.get(q, "").lower() for w in words)]
    return (exact + prefix + text)[:limit]


def known_false_negatives(dataset: str, split: str) -> dict[str, set[str]]:
    """Ground-truth false negatives shipped with a dataset, if any (SQuAD: answer-bearing paragraphs).

    Only same-article paragraphs count: short generic answers ("one", "no")
    match paragraphs anywhere, and those are rarely truly relevant.
    """
    try:
        folder = dataset_folder(dataset) / "answers"
    except Exception:  # noqa: BLE001 - an unknown dataset simply has none
        return {}
    path = next(
        (p for p in (folder / f"{split}_has_answer.tsv.gz", folder / f"{split}_has_answer.tsv") if p.is_file()), None
    )
    if path is None:
        return {}
    return {q: {d for d, same in docs.items() if same} for q, docs in load_has_answer(path).items()}


def predicted_class(df: pd.DataFrame) -> pd.Series:
    """The adapter's verdict given the label: TP or FP for labelled positives, FN or TN for negatives."""
    pos = df["label"] > 0
    verdict = np.where(
        pos, np.where(df["p_tp"] >= df["p_fp"], "TP", "FP"), np.where(df["p_fn"] >= df["p_tn"], "FN", "TN")
    )
    return pd.Series(verdict, index=df.index)
