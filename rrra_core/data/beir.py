"""Loading retrieval collections in BEIR layout.

A BEIR folder holds ``corpus.jsonl`` (``_id``, ``title``, ``text``),
``queries.jsonl`` (``_id``, ``text``) and ``qrels/<split>.tsv``; the JSONL files
may be gzipped. Loaders check every record and raise
:class:`~rrra_core.runtime.errors.DataError` with file and line on the first problem,
so a bad file fails at load time instead of silently skewing a metric.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rrra_core.data.textio import iter_jsonl, iter_lines, resolve_data_file
from rrra_core.runtime.errors import ConfigError, DataError
from rrra_core.runtime.paths import DEMO_DATASETS, demo_dataset_dir

__all__ = [
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
]

QRELS_HEADER = ("query-id", "corpus-id", "score")
HAS_ANSWER_HEADER = ("query-id", "corpus-id", "score", "same_article")

#: How many example ids a warning or error lists before it stops.
_SHOW_IDS = 5


class DataWarning(UserWarning):
    """Data that loads but deserves the user's attention (e.g. empty texts)."""


@dataclass(frozen=True)
class Doc:
    """One corpus document; ``title`` is ``""`` when the collection has none."""

    title: str
    text: str


def doc_text(doc: Doc, with_title: bool = True) -> str:
    """The string to embed for ``doc``: ``"title text"``, or just the text.

    This is the BEIR/MTEB convention (title and text joined by one space),
    so scores stay comparable with published ones. An empty or blank title
    adds nothing.
    """
    title = doc.title.strip()
    if with_title and title:
        return f"{title} {doc.text}"
    return doc.text


@dataclass
class Dataset:
    """A collection with the judgments of one split.

    ``queries`` and ``answers`` hold only the queries judged in ``split``
    (those with at least one positive in ``qrels``), which is what evaluation
    and training iterate over; ``all_queries`` keeps every query in the file.
    ``answers`` is empty unless the queries file carries ``answers`` lists.
    """

    name: str
    split: str
    corpus: dict[str, Doc]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    answers: dict[str, list[str]] = field(default_factory=dict)
    all_queries: dict[str, str] = field(default_factory=dict)
    folder: Path | None = None


# --- record checks ---------------------------------------------------------


def _get_id(obj: dict[str, Any], path: Path, line: int) -> str:
    if "_id" not in obj:
        raise DataError(path, "missing required key '_id'", line)
    value = obj["_id"]
    # JSON numbers are accepted because some exports write numeric ids, but
    # ids are strings everywhere else so "1" and 1 must end up equal.
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(path, f"'_id' must be a string, found {type(value).__name__}", line)
    ident = str(value)
    if not ident.strip():
        raise DataError(path, "'_id' is empty", line)
    return ident


def _get_str(obj: dict[str, Any], key: str, path: Path, line: int, required: bool) -> str:
    if key not in obj or (not required and obj[key] is None):
        if required:
            raise DataError(path, f"missing required key {key!r}", line)
        return ""
    value = obj[key]
    if not isinstance(value, str):
        raise DataError(path, f"{key!r} must be a string, found {type(value).__name__}", line)
    return value


def _check_duplicate(seen: dict[str, int], ident: str, path: Path, line: int) -> None:
    first = seen.get(ident)
    if first is not None:
        raise DataError(path, f"duplicate _id {ident!r} (first on line {first})", line)
    seen[ident] = line


def _warn_empty(path: Path, what: str, empty: list[str]) -> None:
    if not empty:
        return
    shown = ", ".join(repr(i) for i in empty[:_SHOW_IDS])
    more = ", ..." if len(empty) > _SHOW_IDS else ""
    warnings.warn(f"{path}: {len(empty)} {what} with empty text ({shown}{more})", DataWarning, stacklevel=3)


# --- loaders ---------------------------------------------------------------


def load_corpus(path: str | Path) -> dict[str, Doc]:
    """Read a BEIR ``corpus.jsonl`` (or ``.gz``) into ``{doc_id: Doc}``.

    ``_id`` and ``text`` are required, ``title`` is optional; a file without a
    single document is an error. Documents with empty text are kept, since real collections have them (Cranfield 471 and
    995) and dropping them would change the corpus; one ``DataWarning`` lists
    them.
    """
    p = Path(path)
    corpus: dict[str, Doc] = {}
    seen: dict[str, int] = {}
    empty: list[str] = []
    for line, obj in iter_jsonl(p):
        ident = _get_id(obj, p, line)
        _check_duplicate(seen, ident, p, line)
        text = _get_str(obj, "text", p, line, required=True)
        title = _get_str(obj, "title", p, line, required=False)
        if not text.strip():
            empty.append(ident)
        corpus[ident] = Doc(title=title, text=text)
    if not corpus:
        # Said here, naming this file: otherwise the first qrels line is blamed for a document "not in the corpus".
        raise DataError(p, 'no documents: the file is empty (expected one {"_id", "text"} object per line)')
    _warn_empty(p, "document(s)", empty)
    return corpus


def load_queries(path: str | Path) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Read a BEIR ``queries.jsonl`` (or ``.gz``): ``({id: text}, {id: answers})``.

    The optional ``answers`` field (a list of strings, as in the SQuAD demo)
    feeds answer-recall metrics; the second dict is empty when no query has
    one. Empty query texts are kept with one ``DataWarning``; a file without a
    single query is an error.
    """
    p = Path(path)
    texts: dict[str, str] = {}
    answers: dict[str, list[str]] = {}
    seen: dict[str, int] = {}
    empty: list[str] = []
    for line, obj in iter_jsonl(p):
        ident = _get_id(obj, p, line)
        _check_duplicate(seen, ident, p, line)
        text = _get_str(obj, "text", p, line, required=True)
        if not text.strip():
            empty.append(ident)
        texts[ident] = text
        if obj.get("answers") is not None:
            value = obj["answers"]
            if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
                raise DataError(p, "'answers' must be a list of strings", line)
            answers[ident] = list(value)
    if not texts:
        raise DataError(p, 'no queries: the file is empty (expected one {"_id", "text"} object per line)')
    _warn_empty(p, "query(ies)", empty)
    return texts, answers


def _iter_tsv(path: Path, header: tuple[str, ...]) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line, fields)`` of a TSV file whose first line must be ``header``."""
    expected = "\t".join(header)
    lines = iter_lines(path)
    first = next(lines, None)
    if first is None:
        raise DataError(path, f"empty file; expected the header {expected!r}", 1)
    found = "\t".join(f.strip() for f in first[1].split("\t"))
    if found != expected:
        raise DataError(path, f"wrong header: expected {expected!r}, found {first[1][:80]!r}", 1)
    for line, text in lines:
        if not text.strip():
            continue
        fields = [f.strip() for f in text.split("\t")]
        if len(fields) != len(header):
            raise DataError(
                path, f"expected {len(header)} tab-separated fields, found {len(fields)}: {text[:80]!r}", line
            )
        if not fields[0] or not fields[1]:
            raise DataError(path, "empty query-id or corpus-id", line)
        yield line, fields


def _parse_int(value: str, column: str, path: Path, line: int) -> int:
    try:
        return int(value)
    except ValueError:
        raise DataError(path, f"{column} must be an integer, found {value[:40]!r}", line) from None


def _check_known(ident: str, known: Collection[str] | None, what: str, source: str, path: Path, line: int) -> None:
    if known is not None and ident not in known:
        raise DataError(path, f"{what} {ident!r} is not in the {source}", line)


def load_qrels(
    path: str | Path,
    corpus_ids: Collection[str] | None = None,
    query_ids: Collection[str] | None = None,
) -> dict[str, dict[str, int]]:
    """Read a qrels TSV into ``{query_id: {doc_id: score}}``, positives only.

    The header must be exactly ``query-id<TAB>corpus-id<TAB>score``. Rows
    with score <= 0 are checked and then dropped: our qrels hold positives
    only, as several metric libraries ignore zero judgments anyway. When
    ``corpus_ids``/``query_ids`` are given, every row's ids must be in them;
    a repeated (query, doc) pair is an error, since its score is ambiguous.
    """
    p = Path(path)
    qrels: dict[str, dict[str, int]] = {}
    seen: dict[tuple[str, str], int] = {}
    for line, (qid, did, raw_score) in _iter_tsv(p, QRELS_HEADER):
        score = _parse_int(raw_score, "score", p, line)
        _check_known(qid, query_ids, "query-id", "queries", p, line)
        _check_known(did, corpus_ids, "corpus-id", "corpus", p, line)
        first = seen.get((qid, did))
        if first is not None:
            raise DataError(p, f"repeated pair query-id {qid!r}, corpus-id {did!r} (first on line {first})", line)
        seen[(qid, did)] = line
        if score > 0:
            qrels.setdefault(qid, {})[did] = score
    # Nothing to train or evaluate on: say so here rather than score 0 queries and print nDCG@10 0.0.
    if not seen:
        raise DataError(p, "no judgments: the file holds only its header")
    if not qrels:
        raise DataError(p, f"no relevant judgment (score > 0) among its {len(seen)} rows")
    return qrels


def load_has_answer(
    path: str | Path,
    corpus_ids: Collection[str] | None = None,
    query_ids: Collection[str] | None = None,
) -> dict[str, dict[str, bool]]:
    """Read a SQuAD ``*_has_answer.tsv(.gz)``: ``{query_id: {doc_id: same_article}}``.

    These rows are the answer-bearing paragraphs other than the gold one, i.e.
    false-negative candidates; ``same_article`` marks the cleaner subset.
    """
    p = Path(path)
    result: dict[str, dict[str, bool]] = {}
    seen: dict[tuple[str, str], int] = {}
    for line, (qid, did, raw_score, raw_same) in _iter_tsv(p, HAS_ANSWER_HEADER):
        _parse_int(raw_score, "score", p, line)
        if raw_same not in ("0", "1"):
            raise DataError(p, f"same_article must be 0 or 1, found {raw_same[:40]!r}", line)
        _check_known(qid, query_ids, "query-id", "queries", p, line)
        _check_known(did, corpus_ids, "corpus-id", "corpus", p, line)
        first = seen.get((qid, did))
        if first is not None:
            raise DataError(p, f"repeated pair query-id {qid!r}, corpus-id {did!r} (first on line {first})", line)
        seen[(qid, did)] = line
        result.setdefault(qid, {})[did] = raw_same == "1"
    return result


def _has_qrels_header(path: Path) -> bool:
    try:
        for _, text in iter_lines(path):
            return tuple(f.strip() for f in text.split("\t")) == QRELS_HEADER
    except DataError:
        return False
    return False


def available_splits(folder: str | Path) -> list[str]:
    """Sorted split names of a BEIR folder: ``qrels/*.tsv`` with the standard header.

    Files with another header (Cranfield's ``test_raw_codes.tsv``) are extra
    material, not splits, so they are left out.
    """
    qrels_dir = Path(folder) / "qrels"
    if not qrels_dir.is_dir():
        return []
    return sorted(p.stem for p in qrels_dir.glob("*.tsv") if p.is_file() and _has_qrels_header(p))


def load_beir(folder: str | Path, split: str = "test", name: str | None = None) -> Dataset:
    """Load a BEIR folder's corpus, queries and ``qrels/<split>.tsv`` into a ``Dataset``.

    Every qrels id is checked against the corpus and the queries, so later
    code can index them without guarding against missing keys.
    """
    base = Path(folder)
    if not base.is_dir():
        raise DataError(base, "dataset folder not found")
    qrels_path = _split_file(base, split)
    corpus = load_corpus(resolve_data_file(base, "corpus"))
    all_queries, all_answers = load_queries(resolve_data_file(base, "queries"))
    qrels = load_qrels(qrels_path, corpus_ids=corpus, query_ids=all_queries)
    judged = {qid: all_queries[qid] for qid in all_queries if qid in qrels}
    answers = {qid: all_answers[qid] for qid in judged if qid in all_answers}
    return Dataset(
        name=name if name is not None else base.name,
        split=split,
        corpus=corpus,
        queries=judged,
        qrels=qrels,
        answers=answers,
        all_queries=all_queries,
        folder=base,
    )


def dataset_folder(name_or_path: str | Path) -> Path:
    """The folder of an embedded demo dataset (by name) or of a BEIR folder (by path).

    Demo names win over a same-named folder in the working directory; write
    ``./squad`` to mean the folder.
    """
    key = str(name_or_path)
    if key in DEMO_DATASETS:
        return demo_dataset_dir(key)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    raise ConfigError(
        f"unknown dataset {key!r}: not a demo dataset ({', '.join(DEMO_DATASETS)}) nor an existing folder"
    )


def check_dataset(name_or_path: str | Path, splits: Iterable[str] = ()) -> Path:
    """The dataset's folder, once its files and each of ``splits`` are there (empty split names skipped).

    Reads no file, so a driver can refuse a mistyped name or split before it
    creates a run folder rather than after.
    """
    base = dataset_folder(name_or_path)
    resolve_data_file(base, "corpus")
    resolve_data_file(base, "queries")
    for split in splits:
        if split:
            _split_file(base, split)
    return base


def _split_file(base: Path, split: str) -> Path:
    """``qrels/<split>.tsv`` of a dataset folder; a one-line error naming the splits there when it is missing."""
    path = base / "qrels" / f"{split}.tsv"
    if not path.is_file():
        listed = ", ".join(available_splits(base)) or "none"
        raise DataError(path, f"no split {split!r} in this dataset; available splits: {listed}")
    return path


def load_dataset(name_or_path: str | Path, split: str = "test") -> Dataset:
    """Load an embedded demo dataset by name, or a BEIR folder by path."""
    key = str(name_or_path)
    return load_beir(dataset_folder(name_or_path), split=split, name=key if key in DEMO_DATASETS else None)
