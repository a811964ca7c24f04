"""Agreement between annotators, over the pairs several of them judged.

Two annotators: Cohen's kappa (scikit-learn's formula on a bincount). More than two: Krippendorff's
alpha for nominal data (the ``krippendorff`` package's formula, tested equal to it), which handles pairs
not every annotator judged. Pairwise Cohen's kappas come along in both cases.
Both are functions of counts, so the database counts: it packs each pair's
votes into one number (who said what) and counts the pairs per pattern, from
which alpha's ``value_counts`` and every annotator pair's confusion matrix
follow. At a million judgments a few hundred rows leave it. Beyond
:data:`PACKED_MAX` annotators, per-pair label counts and a self-join grouped by
who and what give the same counts, more slowly.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import BigInteger, case, cast, func, select, type_coerce
from sqlalchemy.orm import Session

from .datasets import get_dataset
from .errors import AnnotationError
from .models import LABELS, Judgment

__all__ = ["AgreementResult", "agreement", "agreement_of_patterns", "packed_votes", "unpack", "PACKED_MAX"]


@dataclass(frozen=True)
class AgreementResult:
    """An agreement figure and what it was computed on.

    ``value`` is ``None`` when it is undefined: fewer than two annotators
    share an item, or every label given was the same (chance agreement 1).
    """

    method: str  # "cohen_kappa", "krippendorff_alpha", or "none"
    value: float | None
    annotators: tuple[str, ...]
    n_items: int  # pairs judged by at least two of ``annotators``
    observed_agreement: float | None  # share of annotator pairs on an item that agree
    pairwise_kappa: dict[tuple[str, str], float | None] = field(default_factory=dict)
    pairwise_items: dict[tuple[str, str], int] = field(default_factory=dict)


def _finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _kappa(a: np.ndarray, b: np.ndarray) -> float | None:
    """Cohen's kappa of two annotators' label codes on the same items (scikit-learn's formula, on a bincount)."""
    k = len(LABELS)
    return _kappa_of(np.bincount(a * k + b, minlength=k * k).reshape(k, k))


def _kappa_of(confusion: np.ndarray) -> float | None:
    """Cohen's kappa from a ``(labels, labels)`` confusion matrix of counts (scikit-learn's formula).

    scikit-learn's ``cohen_kappa_score`` validates and encodes string labels on
    every call, and needs the labels themselves; the database hands over only
    the counts, one row per (annotator pair, label pair).
    """
    confusion = confusion.astype(np.float64)
    rows, cols = np.flatnonzero(confusion.sum(axis=1)), np.flatnonzero(confusion.sum(axis=0))
    if rows.size == 0 or (rows.size == 1 and np.array_equal(rows, cols)):
        return None  # one shared label everywhere: chance agreement is 1, kappa undefined
    k = confusion.shape[0]
    expected = np.outer(confusion.sum(axis=1), confusion.sum(axis=0)) / confusion.sum()
    off = 1.0 - np.eye(k)
    denominator = float((off * expected).sum())
    if denominator == 0.0:
        return None
    return _finite(1.0 - float((off * confusion).sum()) / denominator)


def _alpha_nominal(per_label: np.ndarray, items: np.ndarray) -> float:
    """Krippendorff's alpha, nominal, from distinct ``value_counts`` rows each standing for ``items`` units.

    The ``krippendorff`` package's computation (coincidences, random
    coincidences, nominal distances) with each distinct row weighted by how
    many pairs have it, rather than repeated once per pair: the same sums, a
    few hundred rows instead of a million. Tested equal to the package.
    """
    v = per_label.astype(np.float64)  # (rows, labels)
    k = v.shape[1]
    pairable = np.maximum(v.sum(axis=1), 2)
    unnormalized = v[:, :, None] * v[:, None, :] - v[:, None, :] * np.eye(k)[None, :, :]
    o = (unnormalized / (pairable - 1)[:, None, None] * items[:, None, None]).sum(axis=0)  # (labels, labels)
    n_v = o.sum(axis=0)
    e = (np.outer(n_v, n_v) - np.diagflat(n_v)) / (n_v.sum() - 1)
    d = 1.0 - np.eye(k)  # nominal: 0 for the same label, 1 otherwise
    return float(1.0 - (o * d).sum() / (e * d).sum())


def _judgments(dataset_id: int, annotators: Collection[str] | None, include_unsure: bool) -> Any:
    """The judgments agreement is computed on, as a subquery (``annotator``, ``label`` and the pair)."""
    stmt = select(Judgment.query_id, Judgment.doc_id, Judgment.annotator, Judgment.label).where(
        Judgment.dataset_id == dataset_id
    )
    if not include_unsure:
        stmt = stmt.where(Judgment.label != "unsure")
    if annotators is not None:
        stmt = stmt.where(Judgment.annotator.in_(list(annotators)))
    return stmt.subquery()


#: Up to this many annotators, each pair's votes pack into one 64-bit number (two bits each: none or a label).
PACKED_MAX = 31


def packed_votes(names: tuple[str, ...], annotator: Any, label: Any) -> Any:
    """A pair's votes as one number, summed over its judgments: annotator ``i``'s label code plus one, times ``4**i``.

    Two bits per annotator (none, or one of the three labels), so up to
    :data:`PACKED_MAX` annotators fit in a 64-bit integer; :func:`unpack` reads it back.
    """
    who = case({name: 4**i for i, name in enumerate(names)}, value=annotator)
    what = case({name: i + 1 for i, name in enumerate(LABELS)}, value=label)
    return cast(func.sum(type_coerce(who, BigInteger) * what), BigInteger)


def unpack(packed: np.ndarray, n_names: int) -> np.ndarray:
    """``(patterns, annotators)`` label codes (``-1``: not judged) of numbers made by :func:`packed_votes`."""
    shifts = 2 * np.arange(n_names, dtype=np.int64)
    return ((packed.astype(np.int64)[:, None] >> shifts[None, :]) & 3) - 1


def _packed(session: Session, votes: Any, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``(patterns, items)``: each distinct pattern of who said what on a pair judged by two or more, and how many.

    The database packs each pair's votes (:func:`packed_votes`) and counts the
    pairs per number: one grouped scan of the judgments, a few hundred rows out.
    """
    per_pair = (
        select(packed_votes(names, votes.c.annotator, votes.c.label).label("packed"))
        .group_by(votes.c.query_id, votes.c.doc_id)
        .having(func.count() >= 2)
        .subquery()
    )
    # In number order, as the Overview's np.unique has them: the same sums in the same order, the same floats.
    stmt = select(per_pair.c.packed, func.count()).group_by(per_pair.c.packed).order_by(per_pair.c.packed)
    rows = session.connection().execute(stmt).all()
    packed = np.array([p for p, _ in rows], dtype=np.int64)
    return unpack(packed, len(names)), np.array([n for _, n in rows], dtype=np.int64)


def _from_patterns(
    patterns: np.ndarray, items: np.ndarray, names: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray, dict[tuple[str, str], np.ndarray]]:
    """Label counts per pattern, pairs per pattern, and each annotator pair's confusion, from the patterns."""
    k = len(LABELS)
    per_label = np.stack([(patterns == c).sum(axis=1) for c in range(k)], axis=1)  # (patterns, labels)
    confusions = {}
    for (i, a), (j, b) in itertools.combinations(enumerate(names), 2):
        both = (patterns[:, i] >= 0) & (patterns[:, j] >= 0)
        cells = patterns[both, i] * k + patterns[both, j]
        confusions[(a, b)] = np.bincount(cells, weights=items[both], minlength=k * k).reshape(k, k).astype(np.int64)
    return per_label, items, confusions


def _label_counts(session: Session, votes: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(label counts, pairs)``: each distinct row of how many annotators gave each label on a pair judged by
    two or more, and how many pairs have it; counted in the database (a few dozen rows).
    """
    per_label = [func.sum(case((votes.c.label == label, 1), else_=0)) for label in LABELS]
    items = (
        select(*(c.label(f"n{i}") for i, c in enumerate(per_label)))
        .group_by(votes.c.query_id, votes.c.doc_id)
        .having(func.count() >= 2)
        .subquery()
    )
    counts = [items.c[f"n{i}"] for i in range(len(LABELS))]
    stmt = select(*counts, func.count()).group_by(*counts).order_by(*counts)
    hist = np.array(session.connection().execute(stmt).all(), dtype=np.int64).reshape(-1, len(LABELS) + 1)
    return hist[:, :-1], hist[:, -1]


def _confusions(session: Session, votes: Any, names: tuple[str, ...]) -> dict[tuple[str, str], np.ndarray]:
    """Each annotator pair's ``(labels, labels)`` confusion matrix on the pairs both judged, counted in the database.

    One self-join of the votes on the pair, grouped by who and what: the rows
    that leave the database are one per (annotator pair, label pair).
    """
    other = votes.alias("other")
    stmt = (
        select(votes.c.annotator, other.c.annotator, votes.c.label, other.c.label, func.count())
        .join(
            other,
            (other.c.query_id == votes.c.query_id)
            & (other.c.doc_id == votes.c.doc_id)
            & (votes.c.annotator < other.c.annotator),
        )
        .group_by(votes.c.annotator, other.c.annotator, votes.c.label, other.c.label)
    )
    k = len(LABELS)
    code = {label: i for i, label in enumerate(LABELS)}
    out = {pair: np.zeros((k, k), dtype=np.int64) for pair in itertools.combinations(names, 2)}
    for a, b, la, lb, n in session.connection().execute(stmt):
        # The database's string order may not be Python's: put each pair in ``names``' order.
        if (a, b) in out:
            out[(a, b)][code[la], code[lb]] += n
        else:
            out[(b, a)][code[lb], code[la]] += n
    return out


def agreement(
    session: Session,
    dataset: str,
    *,
    annotators: Collection[str] | None = None,
    include_unsure: bool = True,
) -> AgreementResult:
    """Agreement on ``dataset`` between ``annotators`` (default: everyone who judged it).

    Items are (query, doc) pairs judged by at least two of them. With
    ``include_unsure=False``, "unsure" verdicts are left out (as if not given).
    Everything is counted in the database (per-pair label counts, and each
    annotator pair's confusion matrix); no judgment is read one by one.
    """
    ds = get_dataset(session, dataset)
    if ds is None:
        raise AnnotationError(f"unknown dataset {dataset!r}")
    votes = _judgments(ds.id, annotators, include_unsure)
    seen = set(session.connection().execute(select(votes.c.annotator).distinct()).scalars())
    chosen = set(annotators) if annotators is not None else None
    if chosen is not None:
        missing = sorted(chosen - seen)
        if missing:
            raise AnnotationError(f"annotator {missing[0]!r} has no judgments on dataset {dataset!r}")
        if len(chosen) < 2:
            raise AnnotationError("agreement needs at least two annotators")
    names = tuple(sorted(chosen if chosen is not None else seen))
    k = len(LABELS)
    per_label, items, confusions = np.zeros((0, k), dtype=np.int64), np.zeros(0, dtype=np.int64), {}
    if 2 <= len(names) <= PACKED_MAX:
        per_label, items, confusions = _from_patterns(*_packed(session, votes, names), names)
    elif len(names) > PACKED_MAX:
        per_label, items = _label_counts(session, votes)
        confusions = _confusions(session, votes, names) if items.sum() else {}
    return _result(names, per_label, items, confusions)


def agreement_of_patterns(names: tuple[str, ...], patterns: np.ndarray, items: np.ndarray) -> AgreementResult:
    """:func:`agreement` of everyone in ``names`` from vote patterns already counted (:func:`packed_votes`).

    For a reader that packs the votes in a scan of its own (the Overview).
    ``patterns`` are those of pairs judged by two or more, ``items`` how many pairs have each.
    """
    if len(names) < 2:
        return _result(names, np.zeros((0, len(LABELS)), dtype=np.int64), np.zeros(0, dtype=np.int64), {})
    return _result(names, *_from_patterns(patterns, items, names))


def _result(
    names: tuple[str, ...], per_label: np.ndarray, items: np.ndarray, confusions: dict[tuple[str, str], np.ndarray]
) -> AgreementResult:
    """The figures from distinct label-count rows (``items`` pairs each) and each annotator pair's confusion."""
    k = len(LABELS)
    n_items = int(items.sum())

    pairwise: dict[tuple[str, str], float | None] = {}
    pair_items: dict[tuple[str, str], int] = {}
    agree = total = 0
    for pair in itertools.combinations(names, 2):
        confusion = confusions.get(pair, np.zeros((k, k), dtype=np.int64))
        pair_items[pair] = int(confusion.sum())
        pairwise[pair] = _kappa_of(confusion)
        agree += int(np.trace(confusion))
        total += int(confusion.sum())
    observed = agree / total if total else None

    if len(names) < 2 or not n_items:
        return AgreementResult("none", None, names, n_items, observed, pairwise, pair_items)
    if len(names) == 2:
        return AgreementResult(
            "cohen_kappa", pairwise[(names[0], names[1])], names, n_items, observed, pairwise, pair_items
        )

    if np.count_nonzero(per_label[items > 0].sum(axis=0)) < 2:
        alpha = None  # a single label everywhere: expected disagreement 0, alpha undefined
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            alpha = _finite(_alpha_nominal(per_label, items))
    return AgreementResult("krippendorff_alpha", alpha, names, n_items, observed, pairwise, pair_items)
