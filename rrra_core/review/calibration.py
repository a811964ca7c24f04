"""Whether a probability can be taken at its word: reliability bins, ECE, a threshold with its precision.

Measured against verdicts (a reviewer's, or the benchmark's oracle): of the
candidates given P(FN|neg) near 0.6, were about 6 in 10 false negatives?

- **Reliability bins** (:func:`reliability`): ``"uniform"`` (the default, and
  what the expected calibration error conventionally uses) cuts [0, 1] into
  ``n_bins`` equal-width bins; ``"quantile"`` sorts the probabilities and splits
  them into ``n_bins`` groups of (nearly) equal size, which spreads the bins
  where the mass is when most probabilities sit near 0, as P(FN|neg)'s do.
  Empty bins are dropped.
- **ECE**: the bins' mean gap between predicted probability and observed
  frequency, each weighted by its share of the items:
  ``sum_b n_b / N * |mean(p)_b - mean(y)_b|``.
- **A threshold** (:func:`suggest_threshold`): a point of a grid (0.05 steps)
  above which at least ``target_precision`` of the judged items were false
  negatives, with at least ``min_support`` of them, and the most of them: the
  most a reviewer can accept in bulk at that precision.
- **A calibration map** (:func:`fit_calibrator`) for a score that is not a
  probability. The learnt queue order's score is a sum of logits (prior, a
  class-balanced logistic model, a per-query boost; see
  :mod:`~rrra_core.review.learner`) and its model's ``proba`` is fitted with
  balanced class weights, so neither is a probability of a false negative. Platt
  scaling (the default) fits ``sigmoid(a * s + b)`` on the verdicts, with
  Platt's smoothed targets ``(N+ + 1) / (N+ + 2)`` and ``1 / (N- + 2)`` so a
  separable handful of verdicts does not give 0 and 1. Its two parameters
  extrapolate in the logit, which matters because the verdicts come from the
  top of the queue and the map is applied to the rest. Isotonic regression
  (``method="isotonic"``) fits any monotone map but is flat outside the scores
  it saw, so it suits maps fitted and applied on the same range.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "BIN_STRATEGIES",
    "MIN_VERDICTS",
    "Reliability",
    "Threshold",
    "reliability",
    "expected_calibration_error",
    "suggest_threshold",
    "fit_calibrator",
    "judged_negatives",
    "wilson_interval",
]

BIN_STRATEGIES = ("uniform", "quantile")
MIN_VERDICTS = 30  # fewer verdicts than this and a reliability diagram is noise
_GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05 ... 0.95


@dataclass(frozen=True)
class Reliability:
    """Reliability bins (``lo``, ``hi``, ``n``, ``mean_p``, ``observed``) and their ECE over ``n`` items."""

    bins: pd.DataFrame
    ece: float | None
    n: int
    strategy: str

    def to_dict(self, digits: int = 4) -> dict:
        """JSON-ready: the ECE, the item count and one list per bin column."""
        return {
            "ece": None if self.ece is None else round(self.ece, digits),
            "n": self.n,
            "strategy": self.strategy,
            "bins": {c: [round(float(v), digits) for v in self.bins[c]] for c in self.bins.columns},
        }


@dataclass(frozen=True)
class Threshold:
    """A suggested threshold, the share of false negatives above it among the judged, and the sentence to show."""

    threshold: float | None
    precision: float | None
    support: int  # judged items above the threshold
    hits: int  # of those, false negatives
    n: int  # judged items in all
    target: float
    sentence: str
    interval: tuple[float, float] | None = None  # 95 % Wilson interval of the precision
    at: float | None = None  # where ``precision`` was measured: the threshold, or the best grid point short of target

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        out = {k: getattr(self, k) for k in ("threshold", "at", "support", "hits", "n", "target", "sentence")}
        out["precision"] = None if self.precision is None else round(self.precision, 4)
        out["interval"] = None if self.interval is None else [round(v, 4) for v in self.interval]
        return out


def _arrays(probs: object, verdicts: object) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probs, dtype=float).ravel()
    y = np.asarray(verdicts, dtype=bool).ravel()
    if p.shape != y.shape:
        raise ValueError(f"{len(p)} probabilities but {len(y)} verdicts")
    keep = ~np.isnan(p)
    return p[keep], y[keep]


def _bin_index(p: np.ndarray, n_bins: int, strategy: str) -> np.ndarray:
    if strategy == "uniform":
        # [0, 1/k), ..., [(k-1)/k, 1]: 1.0 goes to the last bin.
        return np.minimum((np.clip(p, 0.0, 1.0) * n_bins).astype(int), n_bins - 1)
    if strategy == "quantile":
        idx = np.empty(len(p), dtype=int)
        for b, part in enumerate(np.array_split(np.argsort(p, kind="stable"), n_bins)):
            idx[part] = b
        return idx
    raise ValueError(f"unknown bin strategy {strategy!r}; choose from {', '.join(BIN_STRATEGIES)}")


def reliability(probs: object, verdicts: object, n_bins: int = 10, strategy: str = "uniform") -> Reliability:
    """Reliability bins of ``probs`` against boolean ``verdicts`` (NaN probabilities are left out), and their ECE."""
    p, y = _arrays(probs, verdicts)
    columns = ["lo", "hi", "n", "mean_p", "observed"]
    if not len(p):
        return Reliability(pd.DataFrame(columns=columns), None, 0, strategy)
    frame = pd.DataFrame({"bin": _bin_index(p, n_bins, strategy), "p": p, "y": y.astype(float)})
    bins = frame.groupby("bin").agg(lo=("p", "min"), hi=("p", "max"), n=("p", "size"), mean_p=("p", "mean"),
                                    observed=("y", "mean"))  # fmt: skip
    if strategy == "uniform":  # the bin's edges, not the extreme values inside it
        bins["lo"], bins["hi"] = bins.index / n_bins, (bins.index + 1) / n_bins
    ece = float((bins["n"] / len(p) * (bins["mean_p"] - bins["observed"]).abs()).sum())
    return Reliability(bins.reset_index(drop=True)[columns], ece, len(p), strategy)


def expected_calibration_error(
    probs: object, verdicts: object, n_bins: int = 10, strategy: str = "uniform"
) -> float | None:
    """ECE of ``probs`` against ``verdicts`` (None without items); see :func:`reliability`."""
    return reliability(probs, verdicts, n_bins, strategy).ece


def _in_ten(precision: float) -> str:
    return f"{round(precision * 10)} in 10"


def suggest_threshold(
    probs: object,
    verdicts: object,
    target_precision: float = 0.7,
    min_support: int = 10,
    min_verdicts: int = MIN_VERDICTS,
    grid: tuple[float, ...] = _GRID,
) -> Threshold:
    """The lowest grid threshold above which ``target_precision`` of the judged items were false negatives.

    Above means strictly above (``p > t``). Of the grid points that keep the
    same judged items above, the highest is reported: the verdicts say nothing
    about the probabilities between it and the lowest. A threshold needs ``min_support``
    judged items above it, so a lucky 2 of 2 does not set it. With fewer than
    ``min_verdicts`` verdicts in all, or no threshold that reaches the target,
    ``threshold`` is None and the sentence says why (and, in the second case,
    the best precision any threshold reached).
    """
    p, y = _arrays(probs, verdicts)
    n = len(p)
    if n < min_verdicts:
        return Threshold(None, None, 0, 0, n, target_precision,
                         f"{n} judged so far: {min_verdicts - n} more needed to suggest a threshold.")  # fmt: skip
    rows = []
    for t in grid:
        above = p > t
        support = int(above.sum())
        if support >= min_support:
            rows.append((t, int(y[above].sum()), support))
    reached = [r for r in rows if r[1] / r[2] >= target_precision]
    if reached:
        _, hits, support = reached[0]
        # Of the grid points that keep the same judged items above, the highest: nothing was judged in between.
        t = max(r[0] for r in rows if r[2] == support)
        sentence = (
            f"Above {t:.2f}, {_in_ten(hits / support)} were false negatives "
            f"({hits} of {support} judged; target {target_precision:.0%})."
        )
        return Threshold(
            t, hits / support, support, hits, n, target_precision, sentence, wilson_interval(hits, support), t
        )
    if not rows:
        sentence = f"No threshold has {min_support} judged items above it yet ({n} judged)."
        return Threshold(None, None, 0, 0, n, target_precision, sentence)
    t, hits, support = max(rows, key=lambda r: (r[1] / r[2], r[2]))
    sentence = (
        f"No threshold reaches {target_precision:.0%} yet; the best: above {t:.2f}, "
        f"{_in_ten(hits / support)} were false negatives ({hits} of {support} judged)."
    )
    return Threshold(
        None, hits / support, support, hits, n, target_precision, sentence, wilson_interval(hits, support), t
    )


def _platt(scores: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    n_pos, n_neg = int(y.sum()), int((~y).sum())
    target = np.where(y, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    # Each item once as a positive with weight t and once as a negative with 1 - t: cross-entropy on soft targets.
    x = np.concatenate([scores, scores])[:, None]
    labels = np.concatenate([np.ones(len(y)), np.zeros(len(y))])
    model = LogisticRegression(C=1e6, max_iter=1000).fit(x, labels, sample_weight=np.concatenate([target, 1 - target]))
    a, b = float(model.coef_[0, 0]), float(model.intercept_[0])

    def apply(s: np.ndarray) -> np.ndarray:
        z = a * np.asarray(s, dtype=float) + b
        return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))

    return apply


def fit_calibrator(scores: object, verdicts: object, method: str = "platt") -> Callable[[np.ndarray], np.ndarray]:
    """A map from a score to P(false negative), fitted on judged items (``platt`` or ``isotonic``).

    Needs at least one verdict. Fit it on scores the model gave *before* the
    verdicts were known (see :mod:`~rrra_core.review.queue_calibration`): a
    score already fitted on an item's own verdict is overconfident about it.
    """
    s, y = _arrays(scores, verdicts)
    if not len(s):
        raise ValueError("a calibration map needs at least one verdict")
    if method == "platt":
        return _platt(s, y)
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(s, y.astype(float))
        return lambda x: iso.predict(np.asarray(x, dtype=float))
    raise ValueError(f"unknown calibration method {method!r}; choose platt or isotonic")


def judged_negatives(preds: pd.DataFrame, judgments: pd.DataFrame) -> pd.DataFrame:
    """One verdict per judged labelled negative of a run: ``query_id``, ``doc_id``, ``p_fn_given_neg``, ``verdict``.

    ``judgments`` has ``query_id``, ``doc_id`` and ``label`` (``relevant``,
    ``not_relevant``, ``unsure``); several annotators of one pair vote, ``unsure``
    abstains, and a tie leaves the pair out. The probability is this run's
    (``preds``, label 0 rows), so judgments saved while another run was open
    are measured against this one.
    """
    cols = ["query_id", "doc_id", "p_fn_given_neg", "verdict"]
    decisive = judgments[judgments["label"].isin(("relevant", "not_relevant"))]
    if decisive.empty:
        return pd.DataFrame(columns=cols)
    votes = (
        decisive.assign(vote=np.where(decisive["label"] == "relevant", 1.0, -1.0))
        .groupby(["query_id", "doc_id"], as_index=False)["vote"]
        .sum()
    )
    votes = votes[votes["vote"] != 0]
    negatives = preds.loc[preds["label"] == 0, ["query_id", "doc_id", "p_fn_given_neg"]].astype(
        {"query_id": str, "doc_id": str}
    )
    votes = votes.astype({"query_id": str, "doc_id": str})
    out = negatives.merge(votes, on=["query_id", "doc_id"]).drop_duplicates(["query_id", "doc_id"])
    out["verdict"] = out["vote"] > 0
    return out[cols].reset_index(drop=True)


def wilson_interval(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95 % by default); (0, 1) without items."""
    if n == 0:
        return 0.0, 1.0
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)
