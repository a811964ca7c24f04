"""Agreement between annotators, over the pairs several of them judged.

Two annotators: Cohen's kappa (scikit-learn). More than two: Krippendorff's
alpha for nominal data (the ``krippendorff`` package), which handles pairs
not every annotator judged. Pairwise Cohen's kappas come along in both cases.
Both libraries are imported only when agreement is computed.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Collection
from dataclasses import dataclass, field

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


def _kappa(a: list[str], b: list[str]) -> float | None:
    from sklearn.metrics import cohen_kappa_score

    if not a or (len(set(a)) == 1 and set(a) == set(b)):
        return None  # one shared label everywhere: chance agreement is 1, kappa undefined
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return _finite(cohen_kappa_score(a, b, labels=list(LABELS)))


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
    by_item: dict[tuple[str, str], dict[str, str]] = {}
    seen: set[str] = set()
    chosen = set(annotators) if annotators is not None else None
    for q, d, who, label in session.execute(stmt):
        if chosen is not None and who not in chosen:
            continue
        if not include_unsure and label == "unsure":
            continue
        by_item.setdefault((q, d), {})[who] = label
        seen.add(who)
    if chosen is not None:
        missing = sorted(chosen - seen)
        if missing:
            raise AnnotationError(f"annotator {missing[0]!r} has no judgments on dataset {dataset!r}")
        if len(chosen) < 2:
            raise AnnotationError("agreement needs at least two annotators")
    names = tuple(sorted(chosen if chosen is not None else seen))
    items = {k: v for k, v in sorted(by_item.items()) if len(v) >= 2}

    pairwise: dict[tuple[str, str], float | None] = {}
    pair_items: dict[tuple[str, str], int] = {}
    agree = total = 0
    for a, b in itertools.combinations(names, 2):
        both = [(v[a], v[b]) for v in items.values() if a in v and b in v]
        pair_items[(a, b)] = len(both)
        pairwise[(a, b)] = _kappa([x for x, _ in both], [y for _, y in both])
        agree += sum(x == y for x, y in both)
        total += len(both)
    observed = agree / total if total else None

    if len(names) < 2 or not items:
        return AgreementResult("none", None, names, len(items), observed, pairwise, pair_items)
    if len(names) == 2:
        return AgreementResult(
            "cohen_kappa", pairwise[(names[0], names[1])], names, len(items), observed, pairwise, pair_items
        )

    import krippendorff
    import numpy as np

    code = {label: i for i, label in enumerate(LABELS)}
    data = np.full((len(names), len(items)), np.nan)  # (annotators, items); nan = not judged
    for j, votes in enumerate(items.values()):
        for i, who in enumerate(names):
            if who in votes:
                data[i, j] = code[votes[who]]
    used = {v for votes in items.values() for v in votes.values()}
    if len(used) < 2:
        alpha = None  # a single label everywhere: expected disagreement 0, alpha undefined
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            alpha = _finite(
                krippendorff.alpha(
                    reliability_data=data, level_of_measurement="nominal", value_domain=list(code.values())
                )
            )
    return AgreementResult("krippendorff_alpha", alpha, names, len(items), observed, pairwise, pair_items)
