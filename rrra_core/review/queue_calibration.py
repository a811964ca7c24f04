"""Calibration before and after the refits: a simulated ``learnt`` session, measured against the oracle.

After ``b`` verdicts of a session, three probabilities of "false negative" are
compared with the truth, on the ``b`` reviewed items and on the pool still
unreviewed:

- ``adapter``: the adapter's static P(FN|neg), as it is (what the refits do not touch);
- ``adapter_platt``: that P(FN|neg) through a Platt map fitted on the verdicts so far;
- ``learnt``: the learnt order's score through a Platt map fitted on the verdicts so far.

A map is always fitted on *prospective* pairs: the score an item had when the
queue put it in front of the reviewer, and the verdict that followed. Once a
refit has seen an item's verdict its score is fitted to it (the model, the
per-query boost), and a map fitted on such scores would be overconfident on the
items it has not seen. On the reviewed items each item's probability is also
prospective: the map fitted on the verdicts before its refit, applied to the
score it was shown with (the first ``refit_every`` items, shown before any
verdict, have none). On the pool the map fitted on all ``b`` pairs is applied to
the scores of the refit after ``b`` verdicts.

The threshold the app would suggest from those ``b`` verdicts
(:func:`~rrra_core.review.calibration.suggest_threshold` on the adapter's
P(FN|neg)) is reported with the precision it measured and the precision above
it on the pool still unreviewed (also when no threshold reached the target:
then at the best one), so a reader can see whether the sentence holds beyond
the items it was measured on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from rrra_core.review.calibration import fit_calibrator, reliability, suggest_threshold
from rrra_core.review.learner import Fit, Learner, LearnerConfig
from rrra_core.review.simulate import SimConfig, SimResult, simulate

__all__ = ["SOURCES", "Session", "learnt_session", "calibration_at", "session_calibration"]

SOURCES = ("adapter", "adapter_platt", "learnt")
_EPS = 1e-6


@dataclass
class Session:
    """A simulated learnt session with the scores of every refit (keyed by the verdicts it had seen)."""

    frame: pd.DataFrame
    result: SimResult
    scores_at: dict[int, np.ndarray]
    learner: Learner

    def scores_after(self, n: int) -> np.ndarray:
        """The learnt scores after the first ``n`` verdicts (refitting if the session did not)."""
        if n not in self.scores_at:
            verdicts = dict(zip(self.result.shown[:n], self.result.verdicts[:n], strict=True))
            self.scores_at[n] = np.asarray(self.learner.refit(verdicts).scores, dtype=float)
        return self.scores_at[n]

    def shown_with(self) -> np.ndarray:
        """The verdicts-seen count of the refit that ranked each shown item (its queue when shown)."""
        refits = np.array(sorted(self.scores_at))
        k = np.arange(len(self.result.shown))
        return refits[np.searchsorted(refits, k, side="right") - 1]


def learnt_session(frame: pd.DataFrame, cfg: LearnerConfig, sim: SimConfig) -> Session:
    """Run the ``learnt`` order's session (as ``simulate`` does) and keep every refit's scores."""
    learner = Learner(frame, cfg, sim.seed)
    scores_at: dict[int, np.ndarray] = {}

    def rescore(verdicts: Mapping[int, bool]) -> Fit:
        fit = learner.refit(verdicts)
        scores_at[len(verdicts)] = np.asarray(fit.scores, dtype=float)
        return fit

    result = simulate(frame, rescore, sim, adaptive=True)
    return Session(frame, result, scores_at, learner)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def _prospective(score_when_shown: np.ndarray, when: np.ndarray, y: np.ndarray, b: int) -> np.ndarray:
    """Each of the first ``b`` items' calibrated probability from the verdicts before its refit (NaN before any)."""
    out = np.full(b, np.nan)
    for r in np.unique(when[:b]):
        if r == 0:
            continue
        mine = np.flatnonzero(when[:b] == r)
        out[mine] = fit_calibrator(score_when_shown[:r], y[:r])(score_when_shown[mine])
    return out


def calibration_at(session: Session, b: int, n_bins: int = 10) -> dict[str, Any]:
    """Reliability of the three sources (:data:`SOURCES`) on the reviewed items and the pool after ``b`` verdicts."""
    truth = session.frame["truth"].to_numpy(dtype=bool)
    p_fn = session.frame["p_fn_given_neg"].to_numpy(dtype=float)
    shown = np.asarray(session.result.shown[:b], dtype=np.int64)
    b = len(shown)
    pool = np.ones(len(truth), dtype=bool)
    pool[shown] = False
    y = truth[shown]
    when = session.shown_with()
    learnt_shown = np.array([session.scores_at[r][i] for r, i in zip(when[:b], shown, strict=True)])
    reviewed: dict[str, Any] = {"adapter": p_fn[shown]}
    on_pool: dict[str, Any] = {"adapter": p_fn[pool]}
    if b:
        reviewed["adapter_platt"] = _prospective(_logit(p_fn[shown]), when, y, b)
        reviewed["learnt"] = _prospective(learnt_shown, when, y, b)
        on_pool["adapter_platt"] = fit_calibrator(_logit(p_fn[shown]), y)(_logit(p_fn[pool]))
        on_pool["learnt"] = fit_calibrator(learnt_shown, y)(session.scores_after(b)[pool])
    out: dict[str, Any] = {
        "reviewed": {s: reliability(reviewed[s], y, n_bins).to_dict() for s in reviewed},
        "pool": {s: reliability(on_pool[s], truth[pool], n_bins).to_dict() for s in on_pool},
    }
    suggestion = suggest_threshold(p_fn[shown], y)
    tip = suggestion.to_dict()
    t = suggestion.at  # the threshold, or the best point short of the target
    if t is not None:
        above = pool & (p_fn > t)
        tip["pool_support"] = int(above.sum())
        tip["pool_precision"] = round(float(truth[above].mean()), 4) if above.any() else None
    out["threshold"] = tip
    return out


def session_calibration(
    frame: pd.DataFrame, cfg: LearnerConfig, sim: SimConfig, budgets: Sequence[int], n_bins: int = 10
) -> dict[str, Any]:
    """One learnt session's calibration at every budget (0 = before any refit), and its found curve."""
    session = learnt_session(frame, cfg, SimConfig(**{**sim.__dict__, "budget": max(budgets), "pool_metrics": False}))
    return {
        "curve": session.result.found,
        "budgets": {str(b): calibration_at(session, b, n_bins) for b in budgets},
    }
