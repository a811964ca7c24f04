"""Retrieval evaluation: IR metrics, open-QA answer recall, TREC run files.

IR metrics come from ``ir_measures`` (pytrec_eval provider), so names and
definitions are the standard ones (``nDCG@10``, ``RR@10``, ``R@100``; nDCG uses
trec_eval's linear gains). Two conventions are fixed here rather than left to
the provider:

* Every query in the qrels that has at least one relevant document (grade > 0)
  is in the average; a query the system returned nothing for scores 0. Queries
  in the run without qrels are ignored, and so are qrels queries with no
  relevant document (no metric here is defined for them).
* Ties in a run are broken by document id (ascending), the same order
  :func:`rank_run` and :func:`write_trec_run` use. trec_eval would break them by
  descending id; we hand it rank-derived scores so all three agree.

Answer recall is the DPR metric for open-domain QA (NQ, TriviaQA): a question
counts as answered at k if any of its top-k passages contains an answer string
as a contiguous token sequence.
"""

from __future__ import annotations

import math
import os
import re
import sys
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path

import ir_measures

from rrra_core.runtime.errors import ConfigError, DataError, UserError
from rrra_core.runtime.runs import atomic_path

__all__ = [
    "DEFAULT_METRICS",
    "DEFAULT_ANSWER_KS",
    "parse_metrics",
    "evaluate",
    "evaluate_per_query",
    "PER_QUERY_FILE",
    "PER_QUERY_FORMAT",
    "per_query_record",
    "rank_run",
    "tokenize_answer_text",
    "has_answer",
    "answer_recall",
    "answer_ranks",
    "write_trec_run",
    "read_trec_run",
]

DEFAULT_METRICS: tuple[str, ...] = ("nDCG@10", "RR@10", "R@1", "R@5", "R@10", "R@20", "R@50", "R@100")
DEFAULT_ANSWER_KS: tuple[int, ...] = (1, 5, 20, 100)
#: A run's per-query results, beside its ``metrics.json`` (read back by :mod:`rrra_core.analysis.comparison`).
PER_QUERY_FILE = "per_query.json"
PER_QUERY_FORMAT = 1

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Mapping[str, float]]


# --------------------------------------------------------------------- ranking
def rank_run(run: Run) -> dict[str, list[tuple[str, float]]]:
    """Each query's ``(doc_id, score)`` list, best first, ties by doc id ascending."""
    return {qid: sorted(docs.items(), key=lambda item: (-item[1], item[0])) for qid, docs in run.items()}


# --------------------------------------------------------------------- metrics
def parse_metrics(metrics: Iterable[str]) -> list[ir_measures.Measure]:
    """Parse ir-measures metric names; an unknown or malformed name is a ConfigError."""
    if isinstance(metrics, str):
        metrics = (metrics,)
    parsed = []
    for name in metrics:
        try:
            parsed.append(ir_measures.parse_measure(name))
        except (NameError, ValueError, TypeError, SyntaxError, AttributeError) as exc:
            raise ConfigError(f"unknown metric {name!r} ({exc}); examples: {', '.join(DEFAULT_METRICS)}") from None
    if not parsed:
        raise ConfigError("no metrics requested")
    return parsed


def _evaluated_queries(qrels: Qrels) -> list[str]:
    return [qid for qid, docs in qrels.items() if any(rel > 0 for rel in docs.values())]


def _tie_broken_run(run: Run, qids: Iterable[str]) -> dict[str, dict[str, float]]:
    # Replace scores by descending rank values so trec_eval sees our tie order.
    out: dict[str, dict[str, float]] = {}
    ranked = rank_run({qid: run[qid] for qid in qids if qid in run and run[qid]})
    for qid, docs in ranked.items():
        n = len(docs)
        out[qid] = {doc_id: float(n - i) for i, (doc_id, _) in enumerate(docs)}
    return out


def evaluate_per_query(qrels: Qrels, run: Run, metrics: Sequence[str] = DEFAULT_METRICS) -> dict[str, dict[str, float]]:
    """``{qid: {metric: value}}`` for every qrels query with a relevant document.

    Queries missing from the run get 0 for every metric.
    """
    measures = parse_metrics(metrics)
    names = [str(m) for m in measures]
    qids = _evaluated_queries(qrels)
    result = {qid: dict.fromkeys(names, 0.0) for qid in qids}
    if not qids:
        return result
    sub_qrels = {qid: {d: int(r) for d, r in qrels[qid].items()} for qid in qids}
    sub_run = _tie_broken_run(run, qids)
    if sub_run:
        for m in ir_measures.pytrec_eval.iter_calc(measures, sub_qrels, sub_run):
            if m.query_id in result:
                result[m.query_id][str(m.measure)] = float(m.value)
    return result


def evaluate(qrels: Qrels, run: Run, metrics: Sequence[str] = DEFAULT_METRICS) -> dict[str, float]:
    """Mean of each metric over the qrels queries with a relevant document (absent from run = 0).

    Every metric is 0.0 if no query has a relevant document.
    """
    per_query = evaluate_per_query(qrels, run, metrics)
    names = [str(m) for m in parse_metrics(metrics)]
    if not per_query:
        return dict.fromkeys(names, 0.0)
    n = len(per_query)
    return {name: sum(values[name] for values in per_query.values()) / n for name in names}


def per_query_record(
    dataset: str,
    split: str,
    qrels: Qrels,
    runs: Mapping[str, Run],
    k: int | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> dict[str, object]:
    """The JSON-ready ``per_query.json`` content for ``runs`` (``{variant: run dict}``) scored on ``qrels``.

    A *variant* is one ranking a run was scored with (``retriever``;
    ``no_rerank`` and ``rerank``). The mean of a variant's column is exactly
    :func:`evaluate` of that run.
    """
    variants = {name: evaluate_per_query(qrels, run, metrics) for name, run in runs.items()}
    return {
        "format": PER_QUERY_FORMAT,
        "dataset": str(dataset),
        "split": str(split),
        "k": k,
        "measures": [str(m) for m in parse_metrics(metrics)],
        "variants": variants,
    }


# --------------------------------------------------------------- answer recall
@lru_cache(maxsize=1)
def _token_regex() -> re.Pattern[str]:
    # DPR's SimpleTokenizer: runs of [\p{L}\p{N}\p{M}] or single non-space chars.
    # Python's \w has no \p{M}, and after NFD an accent is a separate combining
    # mark, so add all marks to the word class explicitly (built once, lazily).
    marks = []
    start = None
    for cp in range(sys.maxunicode + 1):
        is_mark = unicodedata.category(chr(cp)).startswith("M")
        if is_mark and start is None:
            start = cp
        elif not is_mark and start is not None:
            marks.append((start, cp - 1))
            start = None
    if start is not None:
        marks.append((start, sys.maxunicode))
    mark_class = "".join(f"\\U{a:08x}-\\U{b:08x}" if a != b else f"\\U{a:08x}" for a, b in marks)
    # [^\W_] is \w without the underscore, which DPR treats as punctuation.
    return re.compile(f"(?:[^\\W_]|[{mark_class}])+|\\S", flags=re.UNICODE)


def tokenize_answer_text(text: str) -> tuple[str, ...]:
    """DPR-style tokens: NFD-normalised, lowercased, word runs (letters, digits, marks) or single symbols."""
    return tuple(_token_regex().findall(unicodedata.normalize("NFD", text).lower()))


def _usable(tokens: tuple[str, ...]) -> bool:
    # An answer without any letter or digit (e.g. "-" or "") would match almost
    # anything (DPR's empty answer even matches every passage).
    return any(ch.isalnum() for tok in tokens for ch in tok)


class _DocTokens:
    """A passage's tokens plus a token -> positions map for fast phrase lookup."""

    __slots__ = ("tokens", "positions")

    def __init__(self, text: str) -> None:
        self.tokens = tokenize_answer_text(text)
        positions: dict[str, list[int]] = {}
        for i, tok in enumerate(self.tokens):
            positions.setdefault(tok, []).append(i)
        self.positions = positions

    def contains(self, phrase: tuple[str, ...]) -> bool:
        n = len(phrase)
        for i in self.positions.get(phrase[0], ()):
            if self.tokens[i : i + n] == phrase:
                return True
        return False


def has_answer(text: str, answers: Sequence[str]) -> bool:
    """Whether ``text`` contains any answer as a contiguous DPR token sequence.

    Case and Unicode composition are normalised (NFD, lowercase); accents stay
    part of their word, so "cafe" does not match "café". Matching is by whole
    tokens, so "one" does not match "someone". Answers with no letter or digit
    are ignored.
    """
    if isinstance(answers, str):
        answers = [answers]
    doc = _DocTokens(text)
    return any(_usable(phrase) and doc.contains(phrase) for phrase in map(tokenize_answer_text, answers))


def answer_ranks(
    run: Run, answers: Mapping[str, Sequence[str]], doc_texts: Mapping[str, str], max_k: int
) -> dict[str, int | None]:
    """Per question with a usable answer: the rank of the first passage in the top ``max_k`` holding one, or None.

    Ranking is by score, ties by doc id; a question missing from the run is a
    miss. Each passage is tokenised at most once. Per-question values are what
    a paired significance test over questions needs.
    """
    doc_cache: dict[str, _DocTokens] = {}
    out: dict[str, int | None] = {}
    for qid, answer_list in answers.items():
        if isinstance(answer_list, str):
            answer_list = [answer_list]
        phrases = {p for p in map(tokenize_answer_text, answer_list) if _usable(p)}
        if not phrases:
            continue
        out[qid] = None
        docs = run.get(qid)
        if not docs:
            continue
        top = sorted(docs.items(), key=lambda item: (-item[1], item[0]))[:max_k]
        for rank, (doc_id, _) in enumerate(top, start=1):
            doc = doc_cache.get(doc_id)
            if doc is None:
                if doc_id not in doc_texts:
                    raise UserError(f"run for question {qid!r} retrieves {doc_id!r}, which has no passage text")
                doc = doc_cache[doc_id] = _DocTokens(doc_texts[doc_id])
            if any(doc.contains(p) for p in phrases):
                out[qid] = rank
                break
    return out


def answer_recall(
    run: Run,
    answers: Mapping[str, Sequence[str]],
    doc_texts: Mapping[str, str],
    ks: Sequence[int] = DEFAULT_ANSWER_KS,
) -> dict[str, float]:
    """DPR top-k answer recall: ``{"AnswerRecall@k": share}`` for each ``k``.

    The denominator is every question in ``answers`` with at least one usable
    answer (see :func:`answer_ranks`).
    """
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ConfigError(f"answer recall cut-offs must be positive integers, got {list(ks)}")
    ranks = answer_ranks(run, answers, doc_texts, ks[-1])
    n = len(ranks)
    return {f"AnswerRecall@{k}": (sum(r is not None and r <= k for r in ranks.values()) / n if n else 0.0) for k in ks}


# ------------------------------------------------------------------- TREC runs
def write_trec_run(path: str | Path, run: Run, tag: str = "rrra") -> Path:
    """Write a run as TREC lines ``qid Q0 docid rank score tag`` (best first), atomically."""
    path = Path(path)
    if not tag or any(ch.isspace() for ch in tag):
        raise ConfigError(f"run tag must be non-empty without whitespace, got {tag!r}")
    lines = []
    for qid, docs in rank_run(run).items():
        if not qid or any(ch.isspace() for ch in qid):
            raise UserError(f"query id {qid!r} cannot be written to a TREC run (empty or has whitespace)")
        for rank, (doc_id, score) in enumerate(docs, start=1):
            if not doc_id or any(ch.isspace() for ch in doc_id):
                raise UserError(f"doc id {doc_id!r} cannot be written to a TREC run (empty or has whitespace)")
            if not math.isfinite(score):
                raise UserError(f"score for query {qid!r}, doc {doc_id!r} is not finite: {score}")
            # repr keeps the full float precision, so a round trip is exact.
            lines.append(f"{qid} Q0 {doc_id} {rank} {float(score)!r} {tag}\n")
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        fh.writelines(lines)
        fh.flush()
        os.fsync(fh.fileno())
    return path


def read_trec_run(path: str | Path) -> dict[str, dict[str, float]]:
    """Read a TREC run file into ``{qid: {doc_id: score}}``; bad lines raise DataError(path:line)."""
    path = Path(path)
    run: dict[str, dict[str, float]] = {}
    try:
        fh = open(path, encoding="utf-8")
    except FileNotFoundError:
        raise DataError(path, "run file not found") from None
    with fh:
        try:
            for line_no, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                parts = line.split()
                if len(parts) != 6:
                    raise DataError(
                        path, f"expected 6 fields 'qid Q0 docid rank score tag', found {len(parts)}", line_no
                    )
                qid, _, doc_id, rank, score_text, _ = parts
                try:
                    int(rank)
                except ValueError:
                    raise DataError(path, f"rank {rank!r} is not an integer", line_no) from None
                try:
                    score = float(score_text)
                except ValueError:
                    raise DataError(path, f"score {score_text!r} is not a number", line_no) from None
                if not math.isfinite(score):
                    raise DataError(path, f"score {score_text!r} is not finite", line_no)
                docs = run.setdefault(qid, {})
                if doc_id in docs:
                    raise DataError(path, f"doc {doc_id!r} listed twice for query {qid!r}", line_no)
                docs[doc_id] = score
        except UnicodeDecodeError:
            raise DataError(path, "not UTF-8 text") from None
    return run
