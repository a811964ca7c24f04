"""Data loading and writing: BEIR collections, training files, safe text I/O, label corrections.

Every loader turns a bad input into a one-line :class:`~rrra_core.runtime.errors.DataError`
naming the file and line; every writer replaces its target atomically.
"""

from __future__ import annotations

from rrra_core.data.beir import (
    HAS_ANSWER_HEADER,
    QRELS_HEADER,
    Dataset,
    DataWarning,
    Doc,
    available_splits,
    check_dataset,
    dataset_folder,
    doc_text,
    load_beir,
    load_corpus,
    load_dataset,
    load_has_answer,
    load_qrels,
    load_queries,
)
from rrra_core.data.corrections import LabelCorrections, Verdicts, apply_verdicts
from rrra_core.data.subsample import subsample_queries
from rrra_core.data.textio import (
    atomic_write_text,
    atomic_writer,
    iter_jsonl,
    iter_lines,
    open_text,
    resolve_data_file,
)
from rrra_core.data.training_files import (
    Passage,
    TrainingExample,
    detect_training_format,
    read_flag,
    read_tevatron,
    read_training_file,
    write_flag,
    write_tevatron,
)

__all__ = [
    # beir
    "Doc",
    "Dataset",
    "DataWarning",
    "QRELS_HEADER",
    "HAS_ANSWER_HEADER",
    "doc_text",
    "load_corpus",
    "load_queries",
    "load_qrels",
    "load_has_answer",
    "available_splits",
    "load_beir",
    "load_dataset",
    "dataset_folder",
    "check_dataset",
    # corrections
    "Verdicts",
    "LabelCorrections",
    "apply_verdicts",
    # the max_train_queries subsample
    "subsample_queries",
    # textio
    "open_text",
    "iter_lines",
    "iter_jsonl",
    "atomic_writer",
    "atomic_write_text",
    "resolve_data_file",
    # training files
    "Passage",
    "TrainingExample",
    "read_tevatron",
    "write_tevatron",
    "read_flag",
    "write_flag",
    "read_training_file",
    "detect_training_format",
]
