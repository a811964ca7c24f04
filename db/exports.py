"""Exports: corrected qrels, training files with corrected labels, and tasks for other tools.

* qrels as BEIR TSV (``query-id corpus-id score``) and TREC (``qid 0 docid rel``),
  positives only; confirmed negatives go to their own file, never in as 0;
* Tevatron and FlagEmbedding training JSONL whose positives are the corrected
  qrels and whose negatives put people's confirmed negatives first, then any
  mined hard negatives that nobody found relevant;
* Label Studio task JSON with the model's suggestion as a prediction, and an
  Argilla record file with it as a suggestion, so a team can review elsewhere;
* every current judgment as JSONL, which :func:`db.import_judgments` reads back.

Review tasks are a choice, not every candidate (a run's whole pool is tens of
thousands of tasks, 100 MB, nothing a person uploads): :class:`TaskChoice`
picks the review queue's next N, the suspects at a P(FN|neg) threshold, or
the pairs people judged, at most :data:`DEFAULT_TASK_LIMIT` unless asked for
more; :func:`select_tasks` applies it to a run's rows (a ``.jsonl``/``.csv``
or a file outside a run folder), :func:`db.store_tasks.select_store_tasks` to a
run's store (the same rows, without every candidate in memory), and
:func:`write_tasks` streams the tasks to disk one at a time. ``scripts/annotations.py export`` and the Overview's
export section both go through them.

Every writer replaces its file atomically and writes in a fixed order, so the
same labels always give the same bytes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import DateTime, String, case, false, func, select, type_coerce
from sqlalchemy.orm import Session

from rrra_core.data import Doc, Passage, TrainingExample, atomic_writer, write_flag, write_tevatron

from .datasets import get_dataset
from .engine import by_bytes
from .errors import AnnotationError
from .judgments import judged_pairs
from .models import LABELS, MODEL_VIEW_FIELDS, Judgment, StoredDataset
from .review import REVIEW_ORDERS, p_fn_given_neg, review_queue

__all__ = [
    "TRAINING_FORMATS",
    "LABEL_STUDIO_CONFIG",
    "ARGILLA_SETTINGS",
    "ARGILLA_MAPPING",
    "write_beir_qrels",
    "write_trec_qrels",
    "write_confirmed_negatives",
    "training_examples",
    "write_training_file",
    "label_studio_tasks",
    "argilla_records",
    "write_json",
    "export_judgments",
    "TASK_FORMATS",
    "TASK_SELECTIONS",
    "DEFAULT_TASK_LIMIT",
    "SUSPECT_THRESHOLD",
    "PROGRESS_EVERY",
    "TaskChoice",
    "select_tasks",
    "write_tasks",
]

TRAINING_FORMATS = ("tevatron", "flag")

#: A Label Studio labeling config matching :func:`label_studio_tasks` (paste it into the project settings).
LABEL_STUDIO_CONFIG = """<View>
  <Header value="$query"/>
  <Text name="document" value="$document"/>
  <Choices name="relevance" toName="document" choice="single" showInline="true">
    <Choice value="relevant"/>
    <Choice value="not_relevant"/>
    <Choice value="unsure"/>
  </Choices>
  <TextArea name="note" toName="document" placeholder="note (optional)"/>
</View>"""

#: The Argilla dataset settings matching :func:`argilla_records`, as plain data.
ARGILLA_SETTINGS: dict[str, Any] = {
    "fields": [{"name": "query", "type": "text"}, {"name": "document", "type": "text"}],
    "questions": [
        {"name": "relevance", "type": "label_selection", "labels": list(LABELS)},
        {"name": "note", "type": "text", "required": False},
    ],
    "metadata": [
        {"name": "query_id", "type": "terms"},
        {"name": "doc_id", "type": "terms"},
        {"name": "rank", "type": "integer"},
        {"name": "p_fn_given_neg", "type": "float"},
    ],
}
#: ``dataset.records.log(records, mapping=ARGILLA_MAPPING)`` turns these keys into the suggestion's score and agent.
ARGILLA_MAPPING = {"suggestion_score": "relevance.suggestion.score", "suggestion_agent": "relevance.suggestion.agent"}


def _sorted_qrels(qrels: Mapping[str, Mapping[str, int]]) -> Iterable[tuple[str, str, int]]:
    for q in sorted(qrels):
        for d in sorted(qrels[q]):
            grade = int(qrels[q][d])
            if grade > 0:
                yield q, d, grade


def write_beir_qrels(path: str | Path, qrels: Mapping[str, Mapping[str, int]]) -> None:
    """Write positives as a BEIR qrels TSV (header ``query-id corpus-id score``), sorted."""
    with atomic_writer(path) as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for q, d, grade in _sorted_qrels(qrels):
            fh.write(f"{q}\t{d}\t{grade}\n")


def write_trec_qrels(path: str | Path, qrels: Mapping[str, Mapping[str, int]]) -> None:
    """Write positives as TREC qrels (``qid 0 docid rel``, space-separated), sorted."""
    with atomic_writer(path) as fh:
        for q, d, grade in _sorted_qrels(qrels):
            if any(c.isspace() for c in q + d):
                raise AnnotationError(f"TREC qrels cannot hold ids with spaces: query {q!r}, doc {d!r}")
            fh.write(f"{q} 0 {d} {grade}\n")


def write_confirmed_negatives(path: str | Path, confirmed: Mapping[str, Iterable[str]]) -> None:
    """Write confirmed negatives as a TSV with header ``query-id corpus-id`` (no score column), sorted."""
    with atomic_writer(path) as fh:
        fh.write("query-id\tcorpus-id\n")
        for q in sorted(confirmed):
            for d in sorted(confirmed[q]):
                fh.write(f"{q}\t{d}\n")


def _passage(corpus: Mapping[str, Doc], doc_id: str) -> Passage:
    doc = corpus.get(doc_id)
    if doc is None:
        raise AnnotationError(f"doc id {doc_id!r} is not in the corpus")
    return Passage(docid=doc_id, text=doc.text, title=doc.title)


def training_examples(
    corpus: Mapping[str, Doc],
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    confirmed_negatives: Mapping[str, Iterable[str]] | None = None,
    hard_negatives: Mapping[str, Iterable[str]] | None = None,
    *,
    max_negatives: int | None = None,
) -> list[TrainingExample]:
    """One training example per query with a positive, from corrected labels.

    Positives are the qrels' docs (highest grade first). Negatives are the
    confirmed negatives, then ``hard_negatives`` (e.g. mined from a run) in
    their order, minus any positive, without repeats, cut to ``max_negatives``.
    Queries go in sorted id order.
    """
    confirmed_negatives = confirmed_negatives or {}
    hard_negatives = hard_negatives or {}
    examples = []
    for q in sorted(qrels):
        positives = sorted((d for d, g in qrels[q].items() if g > 0), key=lambda d: (-qrels[q][d], d))
        if not positives:
            continue
        if q not in queries:
            raise AnnotationError(f"query id {q!r} is not in the queries")
        negatives: list[str] = []
        for d in [*sorted(confirmed_negatives.get(q, ())), *hard_negatives.get(q, ())]:
            if d not in qrels[q] and d not in negatives:
                negatives.append(d)
        if max_negatives is not None:
            negatives = negatives[:max_negatives]
        examples.append(
            TrainingExample(
                query=queries[q],
                positives=tuple(_passage(corpus, d) for d in positives),
                negatives=tuple(_passage(corpus, d) for d in negatives),
                query_id=q,
            )
        )
    return examples


def write_training_file(path: str | Path, examples: Iterable[TrainingExample], format: str = "tevatron") -> None:
    """Write ``examples`` as Tevatron or FlagEmbedding JSONL (atomically)."""
    if format == "tevatron":
        write_tevatron(path, examples)
    elif format == "flag":
        write_flag(path, examples)
    else:
        raise AnnotationError(f"unknown training format {format!r}: use {' or '.join(TRAINING_FORMATS)}")


def _suggestion(row: Mapping[str, Any]) -> tuple[str, float] | None:
    p = p_fn_given_neg(row)
    if p is None:
        return None
    return ("relevant", p) if p >= 0.5 else ("not_relevant", 1.0 - p)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _task_data(
    dataset: str, corpus: Mapping[str, Doc], queries: Mapping[str, str], row: Mapping[str, Any]
) -> dict[str, Any]:
    q, d = str(row["query_id"]), str(row["doc_id"])
    if q not in queries:
        raise AnnotationError(f"query id {q!r} is not in the queries")
    doc = corpus.get(d)
    if doc is None:
        raise AnnotationError(f"doc id {d!r} is not in the corpus")
    p = p_fn_given_neg(row)
    return {
        "dataset": dataset,
        "query_id": q,
        "doc_id": d,
        "query": queries[q],
        "title": doc.title,
        "document": f"{doc.title}\n\n{doc.text}" if doc.title.strip() else doc.text,
        "rank": None if _missing(row.get("rank")) else int(row["rank"]),
        "score": None if _missing(row.get("score")) else float(row["score"]),
        "p_fn_given_neg": p,
    }


def label_studio_tasks(
    dataset: str,
    corpus: Mapping[str, Doc],
    queries: Mapping[str, str],
    candidates: Iterable[Mapping[str, Any]],
    *,
    run_id: str | None = None,
) -> list[dict[str, Any]]:
    """Label Studio tasks, one per candidate, with the model's suggestion as a prediction.

    The prediction's choice is "relevant" when P(FN|neg) >= 0.5, its score
    the model's confidence in that choice, and its ``model_version`` the run
    id. Import the list as JSON into a project set up with
    :data:`LABEL_STUDIO_CONFIG`; :func:`db.import_label_studio` reads its JSON export back.
    """
    tasks = []
    for row in candidates:
        task: dict[str, Any] = {"data": _task_data(dataset, corpus, queries, row)}
        suggestion = _suggestion(row)
        if suggestion is not None:
            choice, confidence = suggestion
            task["predictions"] = [
                {
                    "model_version": str(row.get("run_id") or run_id or "rrra"),
                    "score": confidence,
                    "result": [
                        {
                            "id": "relevance",
                            "from_name": "relevance",
                            "to_name": "document",
                            "type": "choices",
                            "value": {"choices": [choice]},
                        }
                    ],
                }
            ]
        tasks.append(task)
    return tasks


def argilla_records(
    dataset: str,
    corpus: Mapping[str, Doc],
    queries: Mapping[str, str],
    candidates: Iterable[Mapping[str, Any]],
    *,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Argilla records with the model's suggestion, plus the settings and mapping to log them.

    Load into Argilla 2.x with::

        spec = json.load(open(path))
        records = spec["records"]  # fields, metadata, a "relevance" suggestion
        dataset.records.log(records, mapping=spec["mapping"])  # a dataset made with spec["settings"]
    """
    records = []
    for row in candidates:
        data = _task_data(dataset, corpus, queries, row)
        record: dict[str, Any] = {
            "id": f"{data['query_id']}::{data['doc_id']}",
            "query": data["query"],
            "document": data["document"],
            "query_id": data["query_id"],
            "doc_id": data["doc_id"],
            "rank": data["rank"],
            "p_fn_given_neg": data["p_fn_given_neg"],
        }
        suggestion = _suggestion(row)
        if suggestion is not None:
            record["relevance"] = suggestion[0]
            record["suggestion_score"] = suggestion[1]
            record["suggestion_agent"] = str(row.get("run_id") or run_id or "rrra")
        records.append(record)
    return {"dataset": dataset, "settings": ARGILLA_SETTINGS, "mapping": ARGILLA_MAPPING, "records": records}


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented UTF-8 JSON, atomically."""
    with atomic_writer(path) as fh:
        json.dump(obj, fh, ensure_ascii=False, indent=1)
        fh.write("\n")


_BATCH = 20_000


def _jsonl(objects: list[dict[str, Any]]) -> bytes:
    """``objects`` as JSON lines, each exactly what ``orjson.dumps(obj)`` writes, in one orjson call.

    Every object starts with the key ``"dataset"``, and a string value never
    holds an unescaped quote, so ``},{"dataset":`` occurs in orjson's compact
    list only between two objects: splitting there gives the same bytes as a
    call per object, at a third of the cost (a million calls were most of the export).
    """
    if not objects:
        return b""
    packed = orjson.dumps(objects, option=orjson.OPT_NAIVE_UTC)[1:-1]
    return packed.replace(b'},{"dataset":', b'}\n{"dataset":') + b"\n"


def _iso_utc(column: Any, dialect: str) -> Any:
    """A stored timestamp as the text orjson writes for it, computed where it is stored when that is cheaper.

    SQLite keeps ``YYYY-MM-DD HH:MM:SS[.ffffff]`` text: turning it into the
    ISO form (``T``, microseconds only when not zero, ``+00:00``) is a few
    string functions in SQL, where parsing a million of them into datetimes
    in Python was a third of the export. PostgreSQL hands over naive UTC
    datetimes, which orjson writes the same way (``OPT_NAIVE_UTC``).
    """
    raw = type_coerce(column, String) if dialect == "sqlite" else type_coerce(column, DateTime)
    if dialect != "sqlite":
        return raw
    whole = case((func.substr(raw, 20).in_(["", ".000000"]), func.substr(raw, 12, 8)), else_=func.substr(raw, 12))
    return func.substr(raw, 1, 10) + "T" + whole + "+00:00"


def export_judgments(session: Session, path: str | Path, dataset: str | None = None) -> int:
    """Write every current judgment (of one dataset, or all) as JSONL; returns how many.

    One object per line with the dataset name, ids, label, annotator, note,
    the model view and both timestamps; :func:`db.import_judgments` reads it.
    Sorted by dataset, query, doc and annotator in the database (one dataset:
    read in the order of the judgments' unique index, no sort) and streamed in
    batches (a server-side cursor on PostgreSQL), each written as it arrives,
    so a million judgments never sit in memory.
    """
    dialect = session.get_bind().dialect.name
    view = [getattr(Judgment, name) for name in MODEL_VIEW_FIELDS]
    keys = (Judgment.query_id, Judgment.doc_id, Judgment.annotator)
    stamps = (_iso_utc(Judgment.created_at, dialect), _iso_utc(Judgment.updated_at, dialect))
    stmt = select(StoredDataset.name, *keys, Judgment.label, Judgment.note, *view, *stamps).join(
        StoredDataset, StoredDataset.id == Judgment.dataset_id
    )
    if dataset is not None:
        ds = get_dataset(session, dataset)
        if ds is None:
            stmt = stmt.where(false())
        else:
            stmt = stmt.where(Judgment.dataset_id == ds.id)
        order = [by_bytes(session, k) for k in keys]
    else:
        order = [by_bytes(session, k) for k in (StoredDataset.name, *keys)]
    names = ("dataset", "query_id", "doc_id", "annotator", "label", "note", *MODEL_VIEW_FIELDS)
    names += ("created_at", "updated_at")
    n = 0
    with atomic_writer(path) as fh:
        out = fh.buffer  # orjson's UTF-8 bytes as they are: no decoding and encoding again
        for rows in _stream(session, stmt.order_by(*order), _BATCH):
            out.write(_jsonl([dict(zip(names, row)) for row in rows]))
            n += len(rows)
    return n


def _stream(session: Session, stmt: Any, batch: int) -> Iterator[list[tuple[Any, ...]]]:
    """``stmt``'s rows in batches of ``batch``, straight from the driver's cursor (server-side on PostgreSQL).

    The statement's values are ids and constants, rendered inline. Plain DBAPI
    tuples: no result processing per row, which at a million rows cost more
    than reading them. Its columns must need no conversion (text, numbers,
    naive timestamps).
    """
    conn = session.connection()
    sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    driver = conn.connection.driver_connection
    assert driver is not None
    # A named cursor is psycopg's server-side one: rows come over as fetched, never all at once.
    cursor = driver.cursor(name="rrra_export") if conn.dialect.name == "postgresql" else driver.cursor()
    try:
        cursor.execute(sql)
        while rows := cursor.fetchmany(batch):
            yield rows
    finally:
        cursor.close()


# --- review tasks: which candidates go out, streamed to disk -------------------------------

TASK_FORMATS = ("label-studio", "argilla")
#: What a task export can hold: ``queue``, the review queue's next N (people's verdicts left out);
#: ``suspects``, labelled negatives at P(FN|neg) >= a threshold, likeliest first; ``judged``, the pairs people judged.
TASK_SELECTIONS = ("queue", "suspects", "judged")
#: Tasks written when no limit is given: an afternoon's review, a file of about a megabyte (not the whole pool).
DEFAULT_TASK_LIMIT = 500
#: The suspects' threshold when none is given (the app's default too).
SUSPECT_THRESHOLD = 0.5
#: :func:`write_tasks` reports its count every this many tasks.
PROGRESS_EVERY = 50_000


@dataclass(frozen=True)
class TaskChoice:
    """Which candidates a task export writes: a selection, its order and threshold, and at most how many."""

    select: str = "queue"
    order: str = "p_fn"  # one of db.review.REVIEW_ORDERS (queue and suspects)
    threshold: float | None = None  # queue: optional; suspects: SUSPECT_THRESHOLD when None
    limit: int | None = DEFAULT_TASK_LIMIT  # None or 0: every selected candidate
    include_judged: bool = False  # queue and suspects: keep pairs someone already judged

    def __post_init__(self) -> None:
        if self.select not in TASK_SELECTIONS:
            raise AnnotationError(f"unknown task selection {self.select!r}: use one of {', '.join(TASK_SELECTIONS)}")
        if self.order not in REVIEW_ORDERS:
            raise AnnotationError(f"unknown review order {self.order!r}: use one of {', '.join(REVIEW_ORDERS)}")
        if self.limit is not None and self.limit < 0:
            raise AnnotationError(f"the task limit must be 0 (all) or more, found {self.limit}")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise AnnotationError(f"the threshold must be in [0, 1], found {self.threshold}")

    @property
    def cap(self) -> int | None:
        """How many tasks at most (``None``: all)."""
        return self.limit or None

    def describe(self, written: int, selected: int) -> str:
        """What went out, in words: ``the review queue's next 500 of 7,931 (--limit 0 for all)``."""
        what = {
            "queue": "of the review queue"
            + (f" at P(FN|neg) >= {self.threshold:g}" if self.threshold is not None else ""),
            "suspects": f"suspects at P(FN|neg) >= {self.suspect_threshold:g}",
            "judged": "judged pairs",
        }[self.select]
        more = f"; --limit 0 for all {selected:,}" if written < selected else ""
        return f"{written:,} of {selected:,} {what}{more}"

    @property
    def suspect_threshold(self) -> float:
        return SUSPECT_THRESHOLD if self.threshold is None else self.threshold


def select_tasks(
    session: Session, dataset: str, candidates: Iterable[Mapping[str, Any]] | Any | None, choice: TaskChoice
) -> tuple[list[dict[str, Any]], int]:
    """The candidates ``choice`` sends out, in order and cut to its limit, and how many it selected before the cut.

    ``candidates`` are a run's rows (``predictions.parquet`` as rows or a
    DataFrame); ``judged`` also sends judged pairs the run never scored, as
    bare ``query_id``/``doc_id`` rows (no model suggestion).
    """
    candidates = [] if candidates is None else candidates
    if choice.select == "judged":
        done = judged_pairs(session, dataset)
        picked: dict[tuple[str, str], dict[str, Any]] = {}
        for row in review_queue(session, dataset, candidates, "p_fn", exclude_judged=False, negatives_only=False):
            pair = (row["query_id"], row["doc_id"])
            if pair in done:
                picked.setdefault(pair, row)
        for q, d in done - picked.keys():
            picked[(q, d)] = {"query_id": q, "doc_id": d}
        selected = [picked[pair] for pair in sorted(picked)]  # by query, then doc: a fixed order
    else:
        threshold = choice.suspect_threshold if choice.select == "suspects" else choice.threshold
        selected = review_queue(
            session, dataset, candidates, choice.order, threshold=threshold, exclude_judged=not choice.include_judged
        )
    return selected[: choice.cap] if choice.cap is not None else selected, len(selected)


def _label_studio_task(
    dataset: str, corpus: Mapping[str, Doc], queries: Mapping[str, str], row: Mapping[str, Any], run_id: str | None
) -> dict[str, Any]:
    return label_studio_tasks(dataset, corpus, queries, [row], run_id=run_id)[0]


def _argilla_record(
    dataset: str, corpus: Mapping[str, Doc], queries: Mapping[str, str], row: Mapping[str, Any], run_id: str | None
) -> dict[str, Any]:
    return argilla_records(dataset, corpus, queries, [row], run_id=run_id)["records"][0]


def _json_items(items: Iterator[dict[str, Any]]) -> Iterator[str]:
    for i, item in enumerate(items):
        yield ("\n " if i == 0 else ",\n ") + json.dumps(item, ensure_ascii=False)


def write_tasks(
    path: str | Path,
    fmt: str,
    dataset: str,
    corpus: Mapping[str, Doc],
    queries: Mapping[str, str],
    rows: Iterable[Mapping[str, Any]],
    *,
    run_id: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write ``rows`` as Label Studio tasks or Argilla records, one at a time, atomically; returns how many.

    The file is what :func:`label_studio_tasks` (a JSON list) or
    :func:`argilla_records` (settings, mapping and records) make of the rows,
    one task per line, never held in memory whole. ``progress`` is called with
    the count every :data:`PROGRESS_EVERY` tasks (a long export says how far it is).
    """
    if fmt not in TASK_FORMATS:
        raise AnnotationError(f"unknown task format {fmt!r}: use {' or '.join(TASK_FORMATS)}")
    make = _label_studio_task if fmt == "label-studio" else _argilla_record
    n = 0

    def items() -> Iterator[dict[str, Any]]:
        nonlocal n
        for row in rows:
            n += 1
            yield make(dataset, corpus, queries, row, run_id)
            if progress is not None and n % PROGRESS_EVERY == 0:
                progress(n)  # the task before it is on its way to disk

    with atomic_writer(path) as fh:
        if fmt == "argilla":
            head = {"dataset": dataset, "settings": ARGILLA_SETTINGS, "mapping": ARGILLA_MAPPING}
            fh.write(json.dumps(head, ensure_ascii=False)[:-1] + ', "records": [')
        else:
            fh.write("[")
        for text in _json_items(items()):
            fh.write(text)
        fh.write("\n]}\n" if fmt == "argilla" else "\n]\n")
    return n
