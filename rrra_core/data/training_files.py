"""Reading and writing dense-retriever training files.

Two JSONL formats are common, and both are supported so users can bring data
from, and take data to, the usual trainers:

* Tevatron: ``{"query_id", "query", "positive_passages": [{"docid", "title",
  "text", "score"?}], "negative_passages": [...]}``
* FlagEmbedding: ``{"query", "pos": [str], "neg": [str], "pos_scores"?,
  "neg_scores"?}``; other keys (``prompt``, ``type``) are ignored.

Both read into the same :class:`TrainingExample`, so the rest of the code
does not care where an example came from.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rrra_core.data.textio import atomic_writer, iter_jsonl
from rrra_core.runtime.errors import DataError

__all__ = [
    "Passage",
    "TrainingExample",
    "read_tevatron",
    "write_tevatron",
    "read_flag",
    "write_flag",
    "read_training_file",
    "detect_training_format",
]


@dataclass(frozen=True)
class Passage:
    """A passage in a training example; ``docid`` is ``None`` when unknown (FlagEmbedding)."""

    docid: str | None
    text: str
    title: str = ""
    score: float | None = None


@dataclass(frozen=True)
class TrainingExample:
    """One query with its positive and (hard) negative passages."""

    query: str
    positives: tuple[Passage, ...]
    negatives: tuple[Passage, ...]
    query_id: str | None = None


# --- field checks ----------------------------------------------------------


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _require(obj: dict[str, Any], key: str, path: Path, line: int) -> Any:
    if key not in obj:
        raise DataError(path, f"missing required key {key!r}", line)
    return obj[key]


def _as_str(value: Any, what: str, path: Path, line: int) -> str:
    if not isinstance(value, str):
        raise DataError(path, f"{what} must be a string, found {_type_name(value)}", line)
    return value


def _as_id(value: Any, what: str, path: Path, line: int) -> str | None:
    # Numeric ids are accepted and turned into strings: ids are strings everywhere.
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(path, f"{what} must be a string, found {_type_name(value)}", line)
    return str(value)


def _as_score(value: Any, what: str, path: Path, line: int) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(path, f"{what} must be a number, found {_type_name(value)}", line)
    return float(value)


def _as_list(value: Any, what: str, path: Path, line: int) -> list[Any]:
    if not isinstance(value, list):
        raise DataError(path, f"{what} must be a list, found {_type_name(value)}", line)
    return value


def _need_positive(positives: tuple[Passage, ...], key: str, path: Path, line: int) -> None:
    # An example without a positive cannot contribute to a contrastive loss;
    # it almost always means an upstream export went wrong.
    if not positives:
        raise DataError(path, f"{key!r} is empty; every example needs at least one positive", line)


# --- Tevatron --------------------------------------------------------------


def _tevatron_passage(value: Any, where: str, path: Path, line: int) -> Passage:
    if not isinstance(value, dict):
        raise DataError(path, f"{where} must be an object, found {_type_name(value)}", line)
    text = _as_str(_require(value, "text", path, line), f"{where}.text", path, line)
    title = value.get("title")
    title = "" if title is None else _as_str(title, f"{where}.title", path, line)
    return Passage(
        docid=_as_id(value.get("docid"), f"{where}.docid", path, line),
        text=text,
        title=title,
        score=_as_score(value.get("score"), f"{where}.score", path, line),
    )


def _tevatron_example(obj: dict[str, Any], path: Path, line: int) -> TrainingExample:
    query = _as_str(_require(obj, "query", path, line), "'query'", path, line)
    pos_raw = _as_list(_require(obj, "positive_passages", path, line), "'positive_passages'", path, line)
    # Tevatron's own test/encode files have no negatives; treat absence as none.
    neg_raw = _as_list(obj.get("negative_passages", []), "'negative_passages'", path, line)
    positives = tuple(_tevatron_passage(p, f"positive_passages[{i}]", path, line) for i, p in enumerate(pos_raw))
    negatives = tuple(_tevatron_passage(p, f"negative_passages[{i}]", path, line) for i, p in enumerate(neg_raw))
    _need_positive(positives, "positive_passages", path, line)
    return TrainingExample(
        query=query,
        positives=positives,
        negatives=negatives,
        query_id=_as_id(obj.get("query_id"), "'query_id'", path, line),
    )


def read_tevatron(path: str | Path) -> list[TrainingExample]:
    """Read a Tevatron JSONL training file (plain or ``.gz``).

    ``query`` and ``positive_passages`` (non-empty) are required;
    ``negative_passages``, ``query_id`` and each passage's ``docid``,
    ``title`` and ``score`` are optional.
    """
    p = Path(path)
    return [_tevatron_example(obj, p, line) for line, obj in iter_jsonl(p)]


def _tevatron_passage_json(passage: Passage) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if passage.docid is not None:
        out["docid"] = passage.docid
    out["title"] = passage.title
    out["text"] = passage.text
    if passage.score is not None:
        out["score"] = passage.score
    return out


def write_tevatron(path: str | Path, examples: Iterable[TrainingExample]) -> None:
    """Write examples as Tevatron JSONL, atomically (``.gz`` if the name says so).

    ``query_id``, ``docid`` and ``score`` are written only when not ``None``,
    so a read-back gives equal examples.
    """
    with atomic_writer(path) as fh:
        for ex in examples:
            obj: dict[str, Any] = {}
            if ex.query_id is not None:
                obj["query_id"] = ex.query_id
            obj["query"] = ex.query
            obj["positive_passages"] = [_tevatron_passage_json(p) for p in ex.positives]
            obj["negative_passages"] = [_tevatron_passage_json(p) for p in ex.negatives]
            fh.write(json.dumps(obj, ensure_ascii=False))
            fh.write("\n")


# --- FlagEmbedding ---------------------------------------------------------


def _flag_passages(obj: dict[str, Any], key: str, path: Path, line: int) -> tuple[Passage, ...]:
    texts = _as_list(obj.get(key, []) if key == "neg" else _require(obj, key, path, line), repr(key), path, line)
    for i, t in enumerate(texts):
        _as_str(t, f"{key}[{i}]", path, line)
    scores_key = f"{key}_scores"
    raw_scores = obj.get(scores_key)
    if raw_scores is None:
        return tuple(Passage(docid=None, text=t) for t in texts)
    scores = _as_list(raw_scores, repr(scores_key), path, line)
    if len(scores) != len(texts):
        raise DataError(path, f"{scores_key!r} has {len(scores)} values but {key!r} has {len(texts)}", line)
    return tuple(
        Passage(docid=None, text=t, score=_as_score(s, f"{scores_key}[{i}]", path, line))
        for i, (t, s) in enumerate(zip(texts, scores))
    )


def _flag_example(obj: dict[str, Any], path: Path, line: int) -> TrainingExample:
    query = _as_str(_require(obj, "query", path, line), "'query'", path, line)
    positives = _flag_passages(obj, "pos", path, line)
    negatives = _flag_passages(obj, "neg", path, line)
    _need_positive(positives, "pos", path, line)
    return TrainingExample(query=query, positives=positives, negatives=negatives, query_id=None)


def read_flag(path: str | Path) -> list[TrainingExample]:
    """Read a FlagEmbedding JSONL training file (plain or ``.gz``).

    ``query`` and a non-empty ``pos`` are required, ``neg`` defaults to empty,
    ``pos_scores``/``neg_scores`` become passage scores, unknown keys are
    ignored. Passages have ``docid=None`` and an empty title.
    """
    p = Path(path)
    return [_flag_example(obj, p, line) for line, obj in iter_jsonl(p)]


def _flag_text(passage: Passage) -> str:
    # FlagEmbedding has no title field, so the title is folded into the text
    # the same way the encoder sees documents (BEIR/MTEB: "title text").
    title = passage.title.strip()
    return f"{title} {passage.text}" if title else passage.text


def _flag_scores(passages: tuple[Passage, ...], key: str) -> list[float] | None:
    scores = [p.score for p in passages]
    if all(s is None for s in scores):
        return None
    if any(s is None for s in scores):
        # A partial score list cannot be written in this format; refusing is
        # better than silently dropping or inventing scores.
        raise ValueError(f"cannot write {key!r}: some passages have a score and some do not")
    return [float(s) for s in scores if s is not None]


def write_flag(path: str | Path, examples: Iterable[TrainingExample]) -> None:
    """Write examples as FlagEmbedding JSONL, atomically (``.gz`` if the name says so).

    The format has no ids or titles: ``query_id`` and ``docid`` are dropped
    and a non-empty title is prefixed to the text. Scores are written as
    ``pos_scores``/``neg_scores`` when every passage in the list has one.
    """
    with atomic_writer(path) as fh:
        for ex in examples:
            obj: dict[str, Any] = {
                "query": ex.query,
                "pos": [_flag_text(p) for p in ex.positives],
                "neg": [_flag_text(p) for p in ex.negatives],
            }
            pos_scores = _flag_scores(ex.positives, "pos_scores")
            neg_scores = _flag_scores(ex.negatives, "neg_scores")
            if pos_scores is not None:
                obj["pos_scores"] = pos_scores
            if neg_scores is not None:
                obj["neg_scores"] = neg_scores
            fh.write(json.dumps(obj, ensure_ascii=False))
            fh.write("\n")


# --- auto-detection --------------------------------------------------------


def detect_training_format(obj: dict[str, Any]) -> str | None:
    """``"tevatron"``, ``"flag"`` or ``None`` for one parsed JSONL record, by its keys."""
    if "positive_passages" in obj:
        return "tevatron"
    if "pos" in obj:
        return "flag"
    return None


def read_training_file(path: str | Path) -> list[TrainingExample]:
    """Read a Tevatron or FlagEmbedding file, choosing the format from the first record.

    The first non-blank line decides; every later line must then match that
    format, so a mixed file fails with the line that breaks it.
    """
    p = Path(path)
    first = next(iter_jsonl(p), None)
    if first is None:
        raise DataError(p, "no training examples (the file is empty)")
    line, obj = first
    kind = detect_training_format(obj)
    if kind == "tevatron":
        return read_tevatron(p)
    if kind == "flag":
        return read_flag(p)
    keys = ", ".join(sorted(obj)[:8])
    raise DataError(
        p,
        f"unknown training format: expected 'positive_passages' (Tevatron) or 'pos' (FlagEmbedding), found keys {keys}",
        line,
    )
