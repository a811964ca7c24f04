"""Exports: corrected qrels, training files with corrected labels, and tasks for other tools.

* qrels as BEIR TSV (``query-id corpus-id score``) and TREC (``qid 0 docid rel``),
  positives only; confirmed negatives go to their own file, never in as 0;
* Tevatron and FlagEmbedding training JSONL whose positives are the corrected
  qrels and whose negatives put people's confirmed negatives first, then any
  mined hard negatives that nobody found relevant;
* Label Studio task JSON with the model's suggestion as a prediction, and an
  Argilla record file with it as a suggestion, so a team can review elsewhere;
* every current judgment as JSONL, which :func:`db.import_judgments` reads back.

Every writer replaces its file atomically and writes in a fixed order, so the
same labels always give the same bytes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from rrra_core.data import Doc, Passage, TrainingExample, atomic_writer, write_flag, write_tevatron

from .errors import AnnotationError
from .judgments import list_judgments
from .models import LABELS, MODEL_VIEW_FIELDS
from .review import p_fn_given_neg

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


def export_judgments(session: Session, path: str | Path, dataset: str | None = None) -> int:
    """Write every current judgment (of one dataset, or all) as JSONL; returns how many.

    One object per line with the dataset name, ids, label, annotator, note,
    the model view and both timestamps; :func:`db.import_judgments` reads it.
    """
    rows = list_judgments(session, dataset)
    rows.sort(key=lambda j: (j.dataset_name, j.query_id, j.doc_id, j.annotator))
    with atomic_writer(path) as fh:
        for j in rows:
            obj = {
                "dataset": j.dataset_name,
                "query_id": j.query_id,
                "doc_id": j.doc_id,
                "annotator": j.annotator,
                "label": j.label,
                "note": j.note,
                **{name: getattr(j, name) for name in MODEL_VIEW_FIELDS},
                "created_at": j.created_at.isoformat(),
                "updated_at": j.updated_at.isoformat(),
            }
            fh.write(json.dumps(obj, ensure_ascii=False))
            fh.write("\n")
    return len(rows)
