"""A simulated reviewer: walk a queue item by item, answer from a known truth, refit every N verdicts.

What the app's review page would do with a real reviewer, run against a truth
set (SQuAD's answer-bearing paragraphs, Cranfield's planted hidden positives) so
orders can be compared on how many false negatives a reviewer finds per item
reviewed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from rrra_core.review.orders import ADAPTIVE_ORDERS, Rescore

__all__ = ["SimConfig", "Refit", "SimResult", "simulate", "is_adaptive"]


@dataclass(frozen=True)
class SimConfig:
    """One simulated review session."""

    budget: int = field(default=400, metadata={"help": "items the reviewer looks at"})
    refit_every: int = field(default=10, metadata={"help": "verdicts between two refits of an adaptive order"})
    seed: int = field(default=0, metadata={"help": "tie-breaking among equal scores"})
    pool_metrics: bool = field(default=True, metadata={"help": "AUROC/AP of the unreviewed pool after each refit"})


@dataclass
class Refit:
    """One rescoring: after how many verdicts, its wall time, the pool's AUROC/AP, and what it did."""

    reviewed: int
    seconds: float
    fitted: bool
    note: str
    auroc: float | None = None
    ap: float | None = None


@dataclass
class SimResult:
    """The shown rows in order, their verdicts, the cumulative found count, and every refit."""

    shown: list[int]
    verdicts: list[bool]
    found: list[int]
    refits: list[Refit]

    def found_at(self, budget: int) -> int:
        """False negatives found among the first ``budget`` items (all of them if the queue ran out first)."""
        return self.found[min(budget, len(self.found)) - 1] if self.found and budget > 0 else 0

    def to_dict(self) -> dict[str, Any]:
        return {"shown": self.shown, "found": self.found, "refits": [asdict(r) for r in self.refits]}


def _pool_metrics(truth: np.ndarray, scores: np.ndarray, open_: np.ndarray) -> tuple[float | None, float | None]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    t = truth[open_]
    if t.all() or not t.any():
        return None, None
    s = scores[open_]
    return float(roc_auc_score(t, s)), float(average_precision_score(t, s))


def simulate(frame: pd.DataFrame, rescore: Rescore, cfg: SimConfig, adaptive: bool = True) -> SimResult:
    """Review ``cfg.budget`` rows of ``frame`` (bool column ``truth``) in the order ``rescore`` gives.

    The oracle answers each shown row from ``truth``. An ``adaptive`` order is
    rescored after every ``cfg.refit_every`` verdicts; the remaining rows are then
    re-sorted, and a row once shown is never shown again. Ties break by a seeded
    random key, so equal scores do not favour the frame's row order.
    """
    truth = frame["truth"].to_numpy(dtype=bool)
    n = len(frame)
    tie = np.random.default_rng(cfg.seed).random(n)
    open_ = np.ones(n, dtype=bool)
    shown: list[int] = []
    verdicts: dict[int, bool] = {}
    found: list[int] = []
    refits: list[Refit] = []

    def rescore_now() -> np.ndarray:
        fit = rescore(verdicts)
        auroc, ap = _pool_metrics(truth, fit.scores, open_) if cfg.pool_metrics else (None, None)
        refits.append(Refit(len(verdicts), round(fit.seconds, 4), fit.fitted, fit.note, auroc, ap))
        order = np.lexsort((tie, -np.asarray(fit.scores, dtype=float)))  # score desc, then the tie key
        return order[open_[order]]

    queue = rescore_now()
    pos = 0
    while len(shown) < min(cfg.budget, n):
        i = int(queue[pos])
        pos += 1
        open_[i] = False
        shown.append(i)
        verdicts[i] = bool(truth[i])
        found.append((found[-1] if found else 0) + int(truth[i]))
        if adaptive and len(shown) % cfg.refit_every == 0 and len(shown) < min(cfg.budget, n):
            queue, pos = rescore_now(), 0
    return SimResult(shown, [verdicts[i] for i in shown], found, refits)


def is_adaptive(name: str) -> bool:
    """Whether the named order refits on the verdicts."""
    return name in ADAPTIVE_ORDERS
