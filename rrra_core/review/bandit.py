"""The ``bandit`` queue order: which signal to follow is learnt from this collection's verdicts.

Every signal the queue has is an **arm** with its own order over the
candidates: the adapter's P(FN|neg), the retriever score, the relative margin,
BM25, closeness to the labelled positives (global and within the query),
``fusion`` (the unweighted mean of the adapter, retriever, BM25 and both
closeness arms on the common scale: no number in it was fitted anywhere), the
fixed blend (:func:`~rrra_core.review.learner.prior_scores`), the fitted model
(:class:`~rrra_core.review.learner.Learner`, the prior plus its logistic model,
with the learnt boost below) and ``blend``, the former learnt order (the same
with its fixed +1/-1 per-query boost), so a collection whose false negatives
cluster can still choose that boost's full strength. All are put on one scale,
the logit of the row's global percentile rank, so they can be compared, fused
and boosted.

- **Belief per arm.** An arm is scored on the hit rate of what it would have
  shown. Each refit records every arm's next ``window`` unreviewed items; a
  verdict given after it counts for the arms whose window held it
  (``prospective``). The record travels with the queue version
  (:meth:`BanditLearner.state`), so the app's refits, each a fresh process,
  credit as one long session does. Crediting by the *current* orders instead
  (the former rule, still used for verdicts no record covers) let every arm
  share the hits that the per-query boost later lifted to the top, and beliefs
  swung with it. Its belief is a Beta posterior over that hit rate, from a
  cold-start prior worth ``prior_strength`` verdicts whose mean follows the hit
  rate of all verdicts so far (``pooled``): an arm nobody has credited yet is
  believed average, not as good as the optimistic starting rate, so the queue
  does not wander to it merely because the arms it tried have come down to
  earth.
- **Honest exploration.** Each refit plans the next ``plan`` items by Thompson
  sampling: per slot, draw a hit rate from every arm's posterior and show the
  next item of the arm with the highest draw. An arm the queue stops following
  still gets its top items shown while its posterior is wide, so it can prove
  itself; the rest of the queue follows the arm with the best posterior mean.
- **Learnt per-query boost.** ``q_fn`` (confirmed false negatives among the
  other reviewed items of the query) and ``q_rej`` (rejections) enter every arm
  with weights set by the verdicts: the shrunk log odds ratio of a hit between
  reviewed items with and without them. Where false negatives do not cluster
  the weights stay near zero.
- **Cold start from the collection** (:func:`cold_start`): before any verdict
  each arm's prior mean is set from what the run already knows without
  verdicts: how strongly the arm's order agrees with the other signals', and the
  adapter's own held-out false-negative detection from its training, when the
  run recorded it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from rrra_core.review.features import feedback_features
from rrra_core.review.learner import Fit, Learner, LearnerConfig, prior_scores
from rrra_core.review.ranks import RankCache, pct_rank

__all__ = [
    "ARMS",
    "ADAPTIVE_ARMS",
    "BanditConfig",
    "ArmBelief",
    "arm_scores",
    "arms_signature",
    "credited",
    "learnt_boost",
    "cold_start",
    "adapter_skill",
    "BanditLearner",
]

#: Every arm the order may use; the static ones read these frame columns.
ARMS: tuple[str, ...] = (
    "adapter", "retriever", "margin", "bm25", "pos_sim", "pos_sim@q", "fusion", "prior", "model", "blend"
)  # fmt: skip
#: The signals the ``fusion`` arm averages with equal weights (margin is left out: it is the retriever score over
#: the positive's, near zero on collections with one strong positive).
FUSED: tuple[str, ...] = ("adapter", "retriever", "bm25", "pos_sim", "pos_sim@q")
#: Static arms that combine several signals (not a "single order" when the app compares against the best one).
COMPOSITE_ARMS: tuple[str, ...] = ("fusion", "prior")
#: The arms refitted on the verdicts (the others are static orders).
ADAPTIVE_ARMS: tuple[str, ...] = ("model", "blend")
_COLUMNS = {"adapter": "p_fn_given_neg", "retriever": "score", "margin": "margin", "bm25": "bm25", "pos_sim": "pos_sim"}
_EPS = 1e-6


@dataclass(frozen=True)
class BanditConfig:
    """How the ``bandit`` order chooses among its arms."""

    arms: tuple[str, ...] = field(default=ARMS, metadata={"help": "signals to choose among (a subset of ARMS)"})
    window: int = field(
        default=20, metadata={"help": "a reviewed item counts for an arm when in the arm's next N unreviewed"}
    )
    plan: int = field(
        default=3, metadata={"help": "items per refit drawn by Thompson sampling (the rest follow the best arm)"}
    )
    prior_strength: float = field(default=4.0, metadata={"help": "verdicts the cold-start belief is worth per arm"})
    prior_rate: float = field(default=0.2, metadata={"help": "cold-start hit rate of an average arm"})
    pooled: float = field(
        default=10.0,
        metadata={
            "help": "0: an arm's prior mean stays prior_rate; > 0: it follows the hit rate of every verdict so far, "
            "prior_rate counting as this many verdicts (empirical Bayes: an arm nobody has credited is then "
            "believed average, not optimistic)"
        },
    )
    cold_spread: float = field(
        default=1.0, metadata={"help": "how far the cold-start evidence moves an arm's prior hit rate (x e^±spread)"}
    )
    half_life: float = field(
        default=0.0,
        metadata={
            "help": "0: every credited verdict counts the same; > 0: a verdict's weight in an arm's belief halves "
            "every this many verdicts given after it (an arm's hit rate falls as its best items are used up)"
        },
    )
    boost: bool = field(default=True, metadata={"help": "learn the per-query boost from the verdicts"})
    boost_shrink: float = field(default=10.0, metadata={"help": "reviewed items of a kind at which the boost is half"})
    explore: bool = field(default=True, metadata={"help": "Thompson sampling (False: always the best mean)"})
    prospective: bool = field(
        default=True,
        metadata={
            "help": "credit a verdict to the arms whose next `window` items held it when it was shown (recorded at "
            "each refit); False: to the arms whose order holds it now, after the later verdicts' boost"
        },
    )
    model: LearnerConfig = field(
        default_factory=lambda: LearnerConfig(fn_boost=0.0, rej_penalty=0.0),
        metadata={"help": "the model arm's learner (its boost is the learnt one)"},
    )
    blend: LearnerConfig = field(
        default_factory=LearnerConfig,
        metadata={"help": "the blend arm's learner: the fixed blend with its own fixed per-query boost"},
    )


@dataclass(frozen=True)
class ArmBelief:
    """One arm's belief after the verdicts so far: its Beta posterior and the evidence behind it."""

    arm: str
    hits: int
    n: int  # reviewed items credited to the arm
    alpha: float
    beta: float
    shown: int = 0  # of the planned slots, how many the arm won in the latest plan

    @property
    def mean(self) -> float:
        """The posterior mean hit rate."""
        return self.alpha / (self.alpha + self.beta)


def _pct_logit(values: np.ndarray) -> np.ndarray:
    """Logit of each value's global percentile rank: every arm on one scale, ties sharing their rank."""
    return _logit_of_pct(pct_rank(values))


def _logit_of_pct(ranks: np.ndarray) -> np.ndarray:
    n = max(len(ranks), 1)
    p = np.clip(ranks - 0.5 / n, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def arm_scores(frame: pd.DataFrame, arm: str, ranks: RankCache | None = None) -> np.ndarray:
    """A static arm's order over ``frame`` on the common scale (higher = show sooner).

    ``ranks``: the frame's shared ranks (:class:`~rrra_core.review.ranks.RankCache`), so that the arms, the
    fusion of them and the learners' prior rank each column once; the result is kept there too (read only).
    """
    ranks = ranks or RankCache(frame)
    if arm not in _COLUMNS and arm not in ("pos_sim@q", "prior", "fusion"):
        raise ValueError(f"unknown static arm {arm!r}")
    return ranks.memo(("arm", arm), lambda: _arm_scores(frame, arm, ranks))


def arms_signature() -> str:
    """What the static arms are made of (their columns, the fused arms, the prior's weights).

    A saved arm (:meth:`~rrra_core.review.ranks.RankCache.save`) is only taken up while this is unchanged.
    """
    return repr((sorted(_COLUMNS.items()), FUSED, LearnerConfig().prior))


def _arm_scores(frame: pd.DataFrame, arm: str, ranks: RankCache) -> np.ndarray:
    if arm in _COLUMNS:
        col = _COLUMNS[arm]
        if frame[col].dtype.kind == "f":
            return _logit_of_pct(ranks.pct(col))
        return _pct_logit(frame[col].to_numpy(dtype=float))
    if arm == "pos_sim@q":
        within = -ranks.within("pos_sim")
        # within-query rank first, global closeness to break ties between queries' equal ranks
        return _pct_logit(within + 1e-3 * ranks.pct("pos_sim"))
    if arm == "prior":
        return _pct_logit(prior_scores(frame, LearnerConfig().prior, ranks))
    # fusion, unweighted rank fusion: no number in it was fitted anywhere
    parts = [arm_scores(frame, a, ranks) for a in FUSED if a == "pos_sim@q" or _has(frame, a)]
    return _pct_logit(np.mean(parts, axis=0))


def credited(scores: np.ndarray, reviewed: np.ndarray, open_: np.ndarray, window: int) -> np.ndarray:
    """Which ``reviewed`` rows sit in this order's next ``window`` unreviewed items (the order would show them)."""
    pool = scores[open_]
    if len(pool) < window or window <= 0:
        return np.full(len(reviewed), window > 0)
    # fewer than `window` open rows score above a reviewed one exactly when it reaches the window-th highest
    return scores[reviewed] >= np.partition(pool, len(pool) - window)[len(pool) - window]


def learnt_boost(fb: pd.DataFrame, reviewed: np.ndarray, y: np.ndarray, shrink: float) -> tuple[float, float]:
    """(weight per confirmed FN in the query, per rejection): shrunk log odds ratios of a hit, from the verdicts.

    Each is the log odds ratio of a false negative between reviewed items that
    have the feedback and those that do not (add-half smoothing; for rejections,
    among the items whose query has no confirmed FN), times
    ``n / (n + shrink)`` where ``n`` is the number with it; a boost that does not
    raise the hit rate (or a penalty that does not lower it) is zero.
    """

    def lor(has: np.ndarray, among: np.ndarray) -> float:
        n1, n0 = int((has & among).sum()), int((~has & among).sum())
        if n1 == 0 or n0 == 0:
            return 0.0
        h1, h0 = y[has & among].sum(), y[~has & among].sum()
        odds = np.log((h1 + 0.5) / (n1 - h1 + 0.5)) - np.log((h0 + 0.5) / (n0 - h0 + 0.5))
        return float(odds * n1 / (n1 + shrink))

    if not len(reviewed):
        return 0.0, 0.0
    q_fn = fb["q_fn"].to_numpy()[reviewed]
    q_rej = fb["q_rej"].to_numpy()[reviewed]
    every = np.ones(len(reviewed), dtype=bool)
    w_fn = max(lor(q_fn > 0, every), 0.0)
    # rejections among items without a confirmed FN in the query, so the FN boost does not masquerade as a penalty
    w_rej = max(-lor(q_rej > 0, q_fn == 0), 0.0)
    return w_fn, w_rej


def adapter_skill(metrics: Mapping[str, Any] | None) -> float | None:
    """The adapter's held-out false-negative detection from a phase-2 run's ``metrics.json``, as a skill in [-1, 1].

    The F1 of the FN class on the held-out queries (masked positives, its own
    training labels), rescaled so that 0 is what calling every negative a false
    negative scores (``2p / (1 + p)`` at FN share ``p``) and 1 is perfect;
    ``None`` when the run recorded no such F1.
    """
    after = (metrics or {}).get("after") or {}
    f1 = (after.get("f1") or {}).get("FN")
    support = after.get("support") or {}
    fn, tn = support.get("FN", 0), support.get("TN", 0)
    if f1 is None or fn + tn == 0:
        return None
    p = fn / (fn + tn)
    floor = 2 * p / (1 + p)
    return float(np.clip((f1 - floor) / max(1 - floor, 1e-9), -1, 1))


def cold_start(
    frame: pd.DataFrame, arms: tuple[str, ...], adapter_detection: float | None = None, sample: int = 20000
) -> dict[str, float]:
    """Each arm's cold-start evidence in [-1, 1], from the collection alone (no verdicts).

    Agreement: the arm's mean Spearman correlation with the other static arms
    over (a sample of) the rows, centred on the arms' average and scaled to
    [-1, 1], so a signal that agrees with the rest leads and an outlier waits.
    ``adapter_detection`` (:func:`adapter_skill`, in [-1, 1]) is added to the
    adapter's.
    The adaptive arms, which need verdicts, take the prior arm's evidence.
    """
    static = [a for a in arms if a not in ADAPTIVE_ARMS]
    rows = frame
    if len(frame) > sample:
        rows = frame.sample(sample, random_state=0)
    mat = np.column_stack([arm_scores(rows, a) for a in static])  # (rows, arms), already rank-like
    corr = np.corrcoef(mat, rowvar=False) if len(static) > 1 else np.ones((1, 1))
    corr = np.nan_to_num(corr)
    agree = (corr.sum(axis=1) - 1) / max(len(static) - 1, 1)
    evidence = dict(zip(static, (agree - agree.mean()) / max(np.abs(agree - agree.mean()).max(), 1e-9), strict=True))
    if adapter_detection is not None and "adapter" in evidence:
        evidence["adapter"] = float(np.clip(evidence["adapter"] + adapter_detection, -1, 1))
    for a in ADAPTIVE_ARMS:
        if a in arms:
            evidence[a] = evidence.get("prior", 0.0)
    return {a: float(evidence.get(a, 0.0)) for a in arms}


class BanditLearner:
    """Holds every arm's static order; ``refit`` turns the verdicts so far into the next order (a :class:`Fit`).

    ``beliefs`` and ``boost`` after a refit say why the queue orders as it does.
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        cfg: BanditConfig,
        seed: int = 0,
        adapter_detection: float | None = None,
        *,
        ranks: RankCache | None = None,
    ) -> None:
        """``ranks``: ``frame``'s ranks and arrays when the caller has them (e.g. saved with the run's features)."""
        self.cfg = cfg
        self.seed = seed
        self.frame = frame
        self.arms = tuple(
            a for a in cfg.arms if a in ADAPTIVE_ARMS or a in ("prior", "pos_sim@q", "fusion") or _has(frame, a)
        )
        # each column ranked once for the arms, the fusion and the learners' prior
        self.ranks = ranks if ranks is not None else RankCache(frame)
        self.static = {a: arm_scores(frame, a, self.ranks) for a in self.arms if a not in ADAPTIVE_ARMS}
        learners = {"model": replace(cfg.model, fn_boost=0.0, rej_penalty=0.0), "blend": cfg.blend}
        self.adaptive = {a: Learner(frame, learners[a], seed, self.ranks) for a in ADAPTIVE_ARMS if a in self.arms}
        # saved with the arms (the sample's draw alone costs a second at 10M rows)
        evidence = self.ranks.memo(
            ("evidence", self.arms, adapter_detection),
            lambda: np.array(list(cold_start(frame, self.arms, adapter_detection).values())),
        )
        self.evidence = dict(zip(self.arms, (float(e) for e in evidence), strict=True))
        self.beliefs: dict[str, ArmBelief] = {}
        self.boost: tuple[float, float] = (0.0, 0.0)
        self._credit: dict[str, np.ndarray] = {}  # per arm: which verdicts (in the order given) count for it
        self._y = np.zeros(0, dtype=bool)
        # prospective credit: each arm's next `window` rows at the latest refit, and per verdict the arms it was in
        self._windows: dict[str, np.ndarray] = {}
        self._ledger: dict[int, frozenset[str]] = {}
        self.best: str = max(self.arms, key=lambda a: self.evidence[a])

    def _prior(self, arm: str) -> tuple[float, float]:
        base = self.cfg.prior_rate
        if self.cfg.pooled > 0:
            base = (self._y.sum() + base * self.cfg.pooled) / (len(self._y) + self.cfg.pooled)
        odds = base / (1 - base) * np.exp(self.cfg.cold_spread * self.evidence[arm])
        m = odds / (1 + odds)
        return m * self.cfg.prior_strength, (1 - m) * self.cfg.prior_strength

    @staticmethod
    def _adaptive_scores(
        learner: Learner, verdicts: Mapping[int, bool], out_of_fold: bool, fb: pd.DataFrame
    ) -> tuple[np.ndarray, Fit]:
        """An adaptive arm's scores: unreviewed rows by the fit on every verdict, reviewed ones out of fold.

        Out of fold (two folds), so the arm is credited with what it would have
        shown before it saw an item's verdict, not with having memorised it. The
        blend arm is scored in sample: its fixed boost already leaves the item's
        own verdict out (``feedback_features``), and splitting the verdicts would
        halve the per-query evidence its order runs on; its model weighs 0.3.
        ``fb``: the verdicts' feedback features (computed once per refit, not once per arm).
        Only the model arm is put on the common scale (it takes the learnt boost there); the
        blend arm is only ever ordered, and a rank of every row costs seconds at 10M.
        """
        fit = learner.refit(verdicts, fb)
        scores = np.asarray(fit.scores, dtype=float)
        if out_of_fold and len(verdicts) >= 4:
            scores = scores.copy()
            keys = np.fromiter(verdicts.keys(), dtype=np.int64, count=len(verdicts))
            folds = np.arange(len(keys)) % 2
            for f in (0, 1):
                train = {int(i): verdicts[int(i)] for i in keys[folds != f]}
                held = keys[folds == f]
                scores[held] = np.asarray(learner.scores_at(train, held), dtype=float)
        return (_pct_logit(scores) if out_of_fold else scores), fit

    def refit(self, verdicts: Mapping[int, bool]) -> Fit:
        """Scores for every row: the planned next items first, then the best-believed arm's order."""
        t0 = time.perf_counter()
        n = len(self.frame)
        reviewed = np.fromiter(verdicts.keys(), dtype=np.int64, count=len(verdicts))
        y = np.fromiter(verdicts.values(), dtype=bool, count=len(verdicts))
        open_ = np.ones(n, dtype=bool)
        open_[reviewed] = False
        fb = feedback_features(self.frame, verdicts, self.ranks.codes)
        w_fn, w_rej = learnt_boost(fb, reviewed, y, self.cfg.boost_shrink) if self.cfg.boost else (0.0, 0.0)
        self.boost = (w_fn, w_rej)
        lift = w_fn * np.log1p(fb["q_fn"].to_numpy()) / np.log(2) - w_rej * np.log1p(fb["q_rej"].to_numpy()) / np.log(2)
        # the lift is zero outside the reviewed queries: only their rows change (at 10M rows, a copy per arm
        # instead of a sum per arm; none when the verdicts set no boost)
        lifted = np.flatnonzero(lift)
        orders = {a: _plus_at(s, lift, lifted) for a, s in self.static.items()}
        proba, coefficients, fitted, model_note = None, None, False, "no model arm"
        for a, learner in self.adaptive.items():
            scores, fit = self._adaptive_scores(learner, verdicts, out_of_fold=a == "model", fb=fb)
            orders[a] = _plus_at(scores, lift, lifted) if a == "model" else scores  # the blend keeps its own boost
            if a == "model" or proba is None:
                proba, coefficients, fitted, model_note = fit.proba, fit.coefficients, fit.fitted, fit.note
        self._y = y  # the pooled prior reads every verdict so far
        if self.cfg.prospective:
            for row in reviewed:
                if int(row) not in self._ledger and self._windows:
                    self._ledger[int(row)] = frozenset(a for a, w in self._windows.items() if row in w)
        beliefs = {}
        weights = None
        if self.cfg.half_life > 0:  # each verdict's weight: halved for every `half_life` verdicts given after it
            weights = 0.5 ** ((len(reviewed) - 1 - np.arange(len(reviewed))) / self.cfg.half_life)
        for a in self.arms:
            hit = credited(orders[a], reviewed, open_, self.cfg.window) if len(reviewed) else np.zeros(0, bool)
            if self.cfg.prospective and self._ledger:
                known = np.fromiter((int(r) in self._ledger for r in reviewed), dtype=bool, count=len(reviewed))
                was = np.fromiter(
                    (a in self._ledger.get(int(r), ()) for r in reviewed), dtype=bool, count=len(reviewed)
                )
                hit = np.where(known, was, hit)
            a0, b0 = self._prior(a)
            self._credit[a] = hit
            hits, cnt = int(y[hit].sum()), int(hit.sum())
            w_hits, w_cnt = float(hits), float(cnt)
            if weights is not None:  # recent verdicts weigh more: the belief follows the arm's current depth
                w = weights[hit]
                w_hits, w_cnt = float(w[y[hit]].sum()), float(w.sum())
            beliefs[a] = ArmBelief(a, hits, cnt, a0 + w_hits, b0 + w_cnt - w_hits)
        self._y = y
        self.best = max(self.arms, key=lambda a: (beliefs[a].mean, self.evidence[a]))
        final = orders[self.best].copy()
        won = dict.fromkeys(self.arms, 0)
        if self.cfg.explore and self.cfg.plan > 0:
            rng = np.random.default_rng([self.seed, len(verdicts)])
            # an arm's walk skips at most the reviewed and the planned rows: its head is all it needs
            head = len(reviewed) + self.cfg.plan + 1
            ranked: dict[str, np.ndarray] = {}
            ptr = dict.fromkeys(self.arms, 0)
            taken = ~open_
            top = final.max(initial=0.0) + 1.0
            for slot in range(min(self.cfg.plan, int(open_.sum()))):
                draws = {a: rng.beta(beliefs[a].alpha, beliefs[a].beta) for a in self.arms}
                arm = max(draws, key=draws.get)
                if arm not in ranked:
                    ranked[arm] = _head(orders[arm], head)
                order = ranked[arm]
                while taken[order[ptr[arm]]]:
                    ptr[arm] += 1
                row = order[ptr[arm]]
                taken[row] = True
                final[row] = top + self.cfg.plan - slot
                won[arm] += 1
        self.beliefs = {a: replace(b, shown=won[a]) for a, b in beliefs.items()}
        if self.cfg.prospective:
            # what each arm would show next: the planned rows count for the arms that hold them
            self._windows = {a: set(_top_open(orders[a], open_, self.cfg.window).tolist()) for a in self.arms}
        best = self.beliefs[self.best]
        note = (
            f"{model_note}; bandit following {self.best} (belief {best.mean:.2f} on {best.n} verdicts), "
            f"boost {w_fn:+.2f} per confirmed FN in the query, {-w_rej:+.2f} per rejection"
        )
        return Fit(final, fitted, note, time.perf_counter() - t0, proba, coefficients)

    def state(self) -> tuple[dict[str, list[int]], dict[int, list[str]]]:
        """``(windows, ledger)``: each arm's next ``window`` rows now, and per credited verdict the arms it was in.

        What a later learner needs (:meth:`restore`) to keep crediting each
        verdict to the arms that would have shown it; rows are positions in
        ``frame`` (the caller keys them by pair to outlive it).
        """
        windows = {a: sorted(int(r) for r in w) for a, w in self._windows.items()}
        return windows, {r: sorted(arms) for r, arms in self._ledger.items()}

    def restore(self, windows: Mapping[str, Any], ledger: Mapping[int, Any]) -> None:
        """Take up a former learner's :meth:`state` (arms no longer in play are dropped)."""
        self._windows = {a: {int(r) for r in rows} for a, rows in windows.items() if a in self.arms}
        self._ledger = {int(r): frozenset(a for a in arms if a in self.arms) for r, arms in ledger.items()}

    def explain(self, recent: int = 20) -> dict[str, Any]:
        """The latest refit's reasons, JSON-ready: each arm's belief and evidence, the boost, the arm followed.

        ``recent``: the hit rate of the last ``recent`` verdicts (in the order
        given to :meth:`refit`), beside that of the best-believed static arm on
        the last ``recent`` verdicts it would have shown.
        """
        static = [a for a in self.beliefs if a not in (*ADAPTIVE_ARMS, *COMPOSITE_ARMS)]  # single signals only
        best_static = max(static, key=lambda a: (self.beliefs[a].mean, self.evidence[a])) if static else None
        tail = self._y[-recent:]
        mine = self._y[self._credit[best_static]][-recent:] if best_static and len(self._y) else np.zeros(0, bool)
        return {
            "best": self.best,
            "boost": {"per_false_negative": round(self.boost[0], 4), "per_rejection": round(-self.boost[1], 4)},
            "arms": {
                a: {
                    "belief": round(b.mean, 4),
                    "hits": b.hits,
                    "verdicts": b.n,
                    "cold_start": round(self.evidence[a], 4),
                    "planned": b.shown,
                }
                for a, b in self.beliefs.items()
            },
            "recent": {
                "n": len(tail),
                "hits": int(tail.sum()),
                "best_static": best_static,
                "best_static_n": len(mine),
                "best_static_hits": int(mine.sum()),
            },
        }


def _plus_at(scores: np.ndarray, lift: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``scores + lift`` where ``lift`` is zero outside ``rows`` (``scores`` itself when ``rows`` is empty)."""
    if not len(rows):
        return scores
    out = scores.copy()
    out[rows] += lift[rows]
    return out


def _head(scores: np.ndarray, k: int) -> np.ndarray:
    """The first ``k`` rows of ``np.argsort(-scores, kind="stable")`` (highest first, ties by row), in O(n)."""
    if k >= len(scores):
        return np.argsort(-scores, kind="stable")
    rows = np.flatnonzero(scores >= np.partition(scores, len(scores) - k)[len(scores) - k])  # ties may add rows
    return rows[np.argsort(-scores[rows], kind="stable")][:k]


def _top_open(scores: np.ndarray, open_: np.ndarray, k: int) -> np.ndarray:
    """The rows of the ``k`` highest-scoring open rows."""
    idx = np.flatnonzero(open_)
    if len(idx) <= k:
        return idx
    return idx[np.argpartition(-scores[idx], k - 1)[:k]]


def _has(frame: pd.DataFrame, arm: str) -> bool:
    return _COLUMNS.get(arm, "") in frame.columns
