"""Imports: qrels, exported judgments and Label Studio annotations, as judgments.

Each import is all or nothing: a file with one bad row (unknown id, invalid
label) writes nothing, and the error names the file and line. Imported rows
get ``import`` events; re-importing an unchanged file writes nothing.

The whole file is read and checked before anything is written. A large file
is then written in batches of short transactions and published at once
(``db/staging.py``), so saves in the app go on meanwhile; an import stopped
half-way shows nothing and is picked up where it stopped by running it again.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from rrra_core.data import iter_jsonl, iter_lines, read_training_file
from rrra_core.runtime.errors import DataError

from .errors import AnnotationError
from .judgments import JudgmentInput, check_item
from .staging import BATCH_ROWS, Progress, import_items

__all__ = [
    "ImportSummary",
    "read_qrels_file",
    "read_hard_negatives",
    "import_qrels",
    "import_judgments",
    "import_label_studio",
]

_BEIR_HEADER = ("query-id", "corpus-id", "score")


@dataclass(frozen=True)
class ImportSummary:
    """How many judgments a file held, and how many of them changed the store."""

    rows: int
    changed: int


def _qrels_rows(path: Path) -> Iterator[tuple[int, str, str, str]]:
    lines = ((n, t) for n, t in iter_lines(path) if t.strip())
    first = next(lines, None)
    if first is None:
        return
    beir = tuple(f.strip() for f in first[1].split("\t")) == _BEIR_HEADER
    if not beir:
        lines = iter([first, *lines])
    for number, text in lines:
        fields = [f.strip() for f in text.split("\t")] if beir else text.split()
        if beir and len(fields) == 3:
            yield number, fields[0], fields[1], fields[2]
        elif not beir and len(fields) == 4:
            yield number, fields[0], fields[2], fields[3]
        else:
            expected = "3 tab-separated fields (BEIR)" if beir else "4 fields 'qid iter docid rel' (TREC)"
            raise DataError(path, f"expected {expected}, found {len(fields)}: {text[:80]!r}", number)


def read_qrels_file(path: str | Path) -> dict[str, dict[str, int]]:
    """Read BEIR TSV (with its header) or TREC qrels, keeping every grade, zeros and negatives too.

    The format is told by the first line. A repeated (query, doc) pair is an
    error, since its grade would be ambiguous.
    """
    p = Path(path)
    qrels: dict[str, dict[str, int]] = {}
    seen: dict[tuple[str, str], int] = {}
    for number, q, d, raw in _qrels_rows(p):
        if not q or not d:
            raise DataError(p, "empty query or doc id", number)
        try:
            grade = int(raw)
        except ValueError:
            raise DataError(p, f"the relevance grade must be an integer, found {raw[:40]!r}", number) from None
        first = seen.get((q, d))
        if first is not None:
            raise DataError(p, f"repeated pair query {q!r}, doc {d!r} (first on line {first})", number)
        seen[(q, d)] = number
        qrels.setdefault(q, {})[d] = grade
    return qrels


def read_hard_negatives(path: str | Path) -> dict[str, list[str]]:
    """``{query_id: [doc_id, ...]}`` from a Tevatron training file (e.g. a run's ``negatives.jsonl``).

    Examples without a query id and passages without a doc id are skipped.
    """
    out: dict[str, list[str]] = {}
    for ex in read_training_file(path):
        if ex.query_id is None:
            continue
        out.setdefault(ex.query_id, []).extend(p.docid for p in ex.negatives if p.docid is not None)
    return out


def _write(
    session: Session, dataset: str, items: list[JudgmentInput], path: Path, batch_rows: int, progress: Progress | None
) -> ImportSummary:
    try:
        rows, changed = import_items(session, dataset, items, batch_rows=batch_rows, progress=progress)
    except AnnotationError as err:
        raise DataError(path, str(err)) from None
    return ImportSummary(rows, changed)


def _checked(item: dict[str, Any], path: Path, line: int) -> JudgmentInput:
    try:
        return check_item(item)
    except AnnotationError as err:
        raise DataError(path, str(err), line) from None


def import_qrels(
    session: Session,
    dataset: str,
    path: str | Path,
    annotator: str,
    *,
    note: str = "",
    batch_rows: int = BATCH_ROWS,
    progress: Progress | None = None,
) -> ImportSummary:
    """Import a qrels file (BEIR TSV or TREC) as ``annotator``'s judgments; all or nothing.

    A grade above 0 becomes "relevant", 0 or below "not_relevant". Every id
    must be in the registered dataset. More than ``batch_rows`` rows are
    written in batches and published at once; ``progress(staged, total)``
    hears of each batch (see ``db/staging.py``).
    """
    p = Path(path)
    items = []
    for number, q, d, raw in _qrels_rows(p):
        try:
            grade = int(raw)
        except ValueError:
            raise DataError(p, f"the relevance grade must be an integer, found {raw[:40]!r}", number) from None
        label = "relevant" if grade > 0 else "not_relevant"
        items.append(
            _checked({"query_id": q, "doc_id": d, "label": label, "annotator": annotator, "note": note}, p, number)
        )
    return _write(session, dataset, items, p, batch_rows, progress)


def _timestamp(value: Any, name: str, path: Path, line: int) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        raise DataError(path, f"{name} is not an ISO date-time: {str(value)[:40]!r}", line) from None


def import_judgments(
    session: Session,
    path: str | Path,
    *,
    dataset: str | None = None,
    batch_rows: int = BATCH_ROWS,
    progress: Progress | None = None,
) -> ImportSummary:
    """Import a JSONL file written by :func:`db.export_judgments`, keeping its timestamps.

    Lines name their dataset; with ``dataset`` given, every line must be of
    that dataset. All datasets in the file must be registered. Each
    dataset's lines are published at once (batches as in :func:`import_qrels`).
    """
    p = Path(path)
    by_dataset: dict[str, list[JudgmentInput]] = {}
    for number, obj in iter_jsonl(p):
        name = obj.get("dataset", dataset)
        if not isinstance(name, str) or not name:
            raise DataError(p, "missing 'dataset'", number)
        if dataset is not None and name != dataset:
            raise DataError(p, f"judgment of dataset {name!r}, expected {dataset!r}", number)
        item = _checked(obj, p, number)
        item = dataclasses.replace(
            item,
            created_at=_timestamp(obj.get("created_at"), "created_at", p, number),
            updated_at=_timestamp(obj.get("updated_at"), "updated_at", p, number),
        )
        by_dataset.setdefault(name, []).append(item)
    rows = changed = 0
    for name, items in by_dataset.items():
        summary = _write(session, name, items, p, batch_rows, progress)
        rows, changed = rows + summary.rows, changed + summary.changed
    return ImportSummary(rows, changed)


def _ls_annotator(annotation: dict[str, Any]) -> str | None:
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or who.get("username") or who.get("id")
    return None if who is None else (who if isinstance(who, str) else f"label-studio:{who}")


def _ls_verdict(annotation: dict[str, Any]) -> tuple[str | None, str]:
    label, note = None, ""
    for result in annotation.get("result") or []:
        value = result.get("value") or {}
        if result.get("from_name") == "relevance" and value.get("choices"):
            label = value["choices"][0]
        elif result.get("from_name") == "note" and value.get("text"):
            note = "\n".join(value["text"])
    return label, note


def import_label_studio(
    session: Session,
    dataset: str,
    path: str | Path,
    *,
    annotator: str | None = None,
    batch_rows: int = BATCH_ROWS,
    progress: Progress | None = None,
) -> ImportSummary:
    """Import a Label Studio JSON export of tasks made by :func:`db.label_studio_tasks`.

    Each annotation's "relevance" choice (and "note" text) becomes a judgment
    by its Label Studio user (email, else ``label-studio:<id>``), or by
    ``annotator`` when given. Cancelled and empty annotations are skipped;
    of several by one person on one task, the last counts.
    """
    p = Path(path)
    try:
        tasks = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(p, "file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(p, f"not a Label Studio JSON export: {err}") from None
    if not isinstance(tasks, list):
        raise DataError(p, "not a Label Studio JSON export: expected a list of tasks")
    found: dict[tuple[str, str, str], JudgmentInput] = {}
    for i, task in enumerate(tasks, start=1):
        data = task.get("data") if isinstance(task, dict) else None
        if not isinstance(data, dict) or "query_id" not in data or "doc_id" not in data:
            raise DataError(p, f"task {i} has no data.query_id and data.doc_id (was it exported by RRRA Studio?)")
        if data.get("dataset") not in (None, dataset):
            raise DataError(p, f"task {i} is from dataset {data['dataset']!r}, not {dataset!r}")
        for annotation in task.get("annotations") or []:
            if annotation.get("was_cancelled"):
                continue
            label, note = _ls_verdict(annotation)
            who = annotator or _ls_annotator(annotation)
            if label is None or who is None:
                continue
            try:
                item = check_item(
                    {
                        "query_id": data["query_id"],
                        "doc_id": data["doc_id"],
                        "label": label,
                        "annotator": who,
                        "note": note,
                    }
                )
            except AnnotationError as err:
                raise DataError(p, f"task {i}: {err}") from None
            found[(item.query_id, item.doc_id, item.annotator)] = item
    return _write(session, dataset, list(found.values()), p, batch_rows, progress)
