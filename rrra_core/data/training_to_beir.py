"""A Tevatron or FlagEmbedding training file turned into a BEIR folder, so every tool can read it.

The phases, the app and the annotation store all read BEIR folders; a
training file carries the same information per example. Each passage becomes
a corpus document (its ``docid``, or, for FlagEmbedding, which has none, an id
derived from its text, so the same passage in two examples is one document),
each query a query, and its positives the ``qrels/<split>.tsv`` rows. The
negatives stay in the corpus, as candidates, not as judgments.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from rrra_core.data.beir import QRELS_HEADER
from rrra_core.data.textio import atomic_write_text
from rrra_core.data.training_files import Passage, read_training_file

__all__ = ["training_file_to_beir"]


def _text_id(prefix: str, *parts: str) -> str:
    # Derived from the text: stable across runs and machines, and equal for equal texts.
    return prefix + hashlib.sha1("\x00".join(parts).encode("utf-8")).hexdigest()[:16]


def _doc_id(passage: Passage) -> str:
    return passage.docid if passage.docid is not None else _text_id("d", passage.title, passage.text)


def training_file_to_beir(path: str | Path, out_folder: str | Path, split: str = "train") -> Path:
    """Write ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv`` for the training file at ``path``.

    The format is detected from the first record (``read_training_file``), whose
    checks name the file and line of a bad record. Returns the folder.
    """
    examples = read_training_file(path)
    corpus: dict[str, Passage] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, set[str]] = {}
    for ex in examples:
        qid = ex.query_id if ex.query_id is not None else _text_id("q", ex.query)
        queries.setdefault(qid, ex.query)
        for passage in (*ex.positives, *ex.negatives):
            corpus.setdefault(_doc_id(passage), passage)
        qrels.setdefault(qid, set()).update(_doc_id(p) for p in ex.positives)
    out = Path(out_folder)
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        out / "corpus.jsonl",
        (json.dumps({"_id": d, "title": p.title, "text": p.text}, ensure_ascii=False) for d, p in corpus.items()),
    )
    atomic_write_text(
        out / "queries.jsonl", (json.dumps({"_id": q, "text": t}, ensure_ascii=False) for q, t in queries.items())
    )
    rows = ("\t".join(QRELS_HEADER), *(f"{q}\t{d}\t1" for q, docs in qrels.items() for d in sorted(docs)))
    atomic_write_text(out / "qrels" / f"{split}.tsv", rows)
    return out
