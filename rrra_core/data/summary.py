"""What a BEIR folder holds, checked: documents, queries, splits and judgments per split.

The New project page shows this before anything is trained, so a user learns
about a bad file in one line (a ``DataError`` with file and line) instead of
minutes into a background job. Every file is read with the loaders' own checks.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

from rrra_core.data.beir import available_splits, dataset_folder, load_corpus, load_qrels, load_queries
from rrra_core.data.textio import resolve_data_file
from rrra_core.runtime.errors import DataError

__all__ = ["SplitSummary", "DatasetSummary", "summarize_dataset"]


@dataclass(frozen=True)
class SplitSummary:
    """One ``qrels/<split>.tsv``: how many queries it judges and how many positive pairs."""

    queries: int
    positives: int


@dataclass(frozen=True)
class DatasetSummary:
    folder: Path
    documents: int
    queries: int
    splits: dict[str, SplitSummary]
    #: The loaders' warnings (empty texts), worth showing but not fatal.
    notes: list[str] = field(default_factory=list)


def summarize_dataset(name_or_path: str | Path) -> DatasetSummary:
    """Load and check every file of a BEIR folder (or embedded dataset); a one-line ``DataError`` on the first problem.

    A folder without a single standard qrels split is refused too: phase 2 needs
    one to learn from.
    """
    folder = dataset_folder(name_or_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        corpus = load_corpus(resolve_data_file(folder, "corpus"))
        queries, _ = load_queries(resolve_data_file(folder, "queries"))
        splits = {}
        for split in available_splits(folder):
            qrels = load_qrels(folder / "qrels" / f"{split}.tsv", corpus_ids=corpus, query_ids=queries)
            splits[split] = SplitSummary(queries=len(qrels), positives=sum(len(d) for d in qrels.values()))
    if not splits:
        raise DataError(
            folder / "qrels",
            "no split: expected qrels/<split>.tsv files headed 'query-id<TAB>corpus-id<TAB>score'",
        )
    return DatasetSummary(
        folder=folder,
        documents=len(corpus),
        queries=len(queries),
        splits=splits,
        notes=[str(w.message) for w in caught],
    )
