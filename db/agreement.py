"""Agreement between annotators, over the pairs several of them judged.

Two annotators: Cohen's kappa (scikit-learn's formula on a bincount). More than two: Krippendorff's
alpha for nominal data (the ``krippendorff`` package), which handles pairs
not every annotator judged. Pairwise Cohen's kappas come along in both cases.
Votes are read as columns into one (items x annotators) array of label codes.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from .datasets import get_dataset
from .errors import AnnotationError
from .models import LABELS, Judgment

__all__ = ["AgreementResult", "agreement"]


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
    """Cohen's kappa of two annotators' label codes on the same items (scikit-learn's formula, on a bincount).

    scikit-learn's ``cohen_kappa_score`` validates and encodes string labels on
    every call: at a million judgments that was most of the agreement's time.
    """
    if a.size == 0 or (np.unique(a).size == 1 and np.array_equal(np.unique(a), np.unique(b))):
        return None  # one shared label everywhere: chance agreement is 1, kappa undefined
    k = len(LABELS)
    confusion = np.bincount(a * k + b, minlength=k * k).reshape(k, k).astype(np.float64)
    expected = np.outer(confusion.sum(axis=1), confusion.sum(axis=0)) / confusion.sum()
    off = 1.0 - np.eye(k)
    denominator = float((off * expected).sum())
    if denominator == 0.0:
        return None
    return _finite(1.0 - float((off * confusion).sum()) / denominator)


def _code_matrix(rows: list, names: tuple[str, ...]) -> np.ndarray:
    """``(items, annotators)`` label codes (``-1``: not judged) of the pairs at least two of ``names`` judged.

    Items are numbered by hashing query and doc ids apart (``pd.factorize``) and
    combining the two codes, which is far quicker than factorizing id pairs.
    """
    if not rows:
        return np.full((0, len(names)), -1, dtype=np.int64)
    queries, docs, who, labels = (np.asarray(col, dtype=object) for col in zip(*rows, strict=True))
    q_code, _ = pd.factorize(queries)
    d_code, d_uniques = pd.factorize(docs)
    _, item = np.unique(q_code.astype(np.int64) * len(d_uniques) + d_code, return_inverse=True)
    who_code = pd.Categorical(who, categories=list(names)).codes
    label_code = pd.Categorical(labels, categories=list(LABELS)).codes
    codes = np.full((int(item.max()) + 1, len(names)), -1, dtype=np.int64)
    codes[item, who_code] = label_code
    return codes[(codes >= 0).sum(axis=1) >= 2]


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
    """
    ds = get_dataset(session, dataset)
    if ds is None:
        raise AnnotationError(f"unknown dataset {dataset!r}")
    stmt = select(Judgment.query_id, Judgment.doc_id, Judgment.annotator, Judgment.label).where(
        Judgment.dataset_id == ds.id
    )
    if not include_unsure:
        stmt = stmt.where(Judgment.label != "unsure")
    if annotators is not None:
        stmt = stmt.where(Judgment.annotator.in_(list(annotators)))
    # Columns, not ORM rows, into arrays: a million judgments read in seconds.
    rows = session.connection().execute(stmt).all()  # Core rows: no ORM loading layer
    seen = {r[2] for r in rows}
    chosen = set(annotators) if annotators is not None else None
    if chosen is not None:
        missing = sorted(chosen - seen)
        if missing:
            raise AnnotationError(f"annotator {missing[0]!r} has no judgments on dataset {dataset!r}")
        if len(chosen) < 2:
            raise AnnotationError("agreement needs at least two annotators")
    names = tuple(sorted(chosen if chosen is not None else seen))
    codes = _code_matrix(rows, names)  # (items judged by two or more, annotators); -1 = not judged
    n_items = codes.shape[0]

    pairwise: dict[tuple[str, str], float | None] = {}
    pair_items: dict[tuple[str, str], int] = {}
    agree = total = 0
    for (i, a), (j, b) in itertools.combinations(enumerate(names), 2):
        both = (codes[:, i] >= 0) & (codes[:, j] >= 0)
        x, y = codes[both, i], codes[both, j]
        pair_items[(a, b)] = int(both.sum())
        pairwise[(a, b)] = _kappa(x, y)
        agree += int((x == y).sum())
        total += int(both.sum())
    observed = agree / total if total else None

    if len(names) < 2 or not n_items:
        return AgreementResult("none", None, names, n_items, observed, pairwise, pair_items)
    if len(names) == 2:
        return AgreementResult(
            "cohen_kappa", pairwise[(names[0], names[1])], names, n_items, observed, pairwise, pair_items
        )

    import krippendorff

    data = np.where(codes.T >= 0, codes.T, np.nan)  # (annotators, items); nan = not judged
    if np.unique(codes[codes >= 0]).size < 2:
        alpha = None  # a single label everywhere: expected disagreement 0, alpha undefined
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            alpha = _finite(
                krippendorff.alpha(
                    reliability_data=data, level_of_measurement="nominal", value_domain=list(range(len(LABELS)))
                )
            )
    return AgreementResult("krippendorff_alpha", alpha, names, n_items, observed, pairwise, pair_items)
