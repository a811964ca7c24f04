"""The model's reading of one (query, doc) pair, conditioned on the pair's label, as every page shows it.

A labelled positive can only be a true positive or a false positive, so the
number that matters for it is P(FP|pos); a labelled negative's is P(FN|neg).
The browser, the map and the disagreements page all show the one that
matches the label, through :func:`conditional`, so they never contradict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["conditional", "conditional_text"]


def _num(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def conditional(row: Mapping[str, Any]) -> tuple[str, float | None]:
    """``("P(FP|pos)", p)`` for a labelled positive, ``("P(FN|neg)", p)`` otherwise; ``p`` ``None`` if unknown.

    P(FP|pos) comes from the predictions' ``p_fp_given_pos`` when the run wrote
    it, else from the class probabilities: p_fp / (p_tp + p_fp).
    """
    label = _num(row.get("label"))
    if label is not None and label > 0:
        given = _num(row.get("p_fp_given_pos"))
        if given is None:
            tp, fp = _num(row.get("p_tp")), _num(row.get("p_fp"))
            given = fp / (tp + fp) if tp is not None and fp is not None and tp + fp > 0 else None
        return "P(FP|pos)", given
    return "P(FN|neg)", _num(row.get("p_fn_given_neg"))


def conditional_text(row: Mapping[str, Any], fmt: str = ".3f") -> str:
    """``"P(FP|pos) 0.123"`` or ``"P(FN|neg) —"``: plain text (escape ``|`` before using it in Markdown)."""
    name, value = conditional(row)
    return f"{name} {'—' if value is None else format(value, fmt)}"
