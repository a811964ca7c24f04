"""The online learner behind the ``learnt`` queue order.

Every ``refit_every`` verdicts it fits a small classifier (false negative or not)
on the reviewed candidates and re-scores the rest. Three parts, each measured on
the dev split (``scripts/bench_review.py``):

- a **prior** for the cold start and for a fit that cannot be made yet (no
  verdicts, or one class only): a weighted mean of global percentile ranks of a
  few unsupervised signals (retriever score, BM25, closeness to the positives,
  the adapter's P(FN|neg), and closeness to the positives ranked within the query);
- the **model**: logistic regression (or gradient boosting) over the standardised
  static features (optionally the prior and the per-query feedback counts too),
  fitted on the verdicts so far;
- a **per-query cluster boost**: added to the logit per confirmed false negative
  in the same query, subtracted per rejection. False negatives cluster by query,
  and a boost acts from the first verdict, long before a model has enough of
  them to learn the same thing from the feedback features.

The defaults are what found the most on the dev split of both benchmarks: the
prior's logit, plus 0.3 x the logistic model's logit, plus the boost (+1 per
confirmed FN, -1 per rejection). A model alone (its logit replacing the prior)
was noisier with few verdicts and found fewer; gradient boosting found fewer
than the logistic model and refits slower.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rrra_core.review.features import FEEDBACK_FEATURES, STATIC_FEATURES, feedback_features
from rrra_core.review.ranks import RankCache, pct_rank

__all__ = ["LearnerConfig", "Fit", "prior_scores", "Learner"]

_EPS = 1e-4
#: Rows per block when the model's input matrix is filled (a few MB: the block stays in cache across its columns).
_BLOCK = 1 << 16


@dataclass(frozen=True)
class LearnerConfig:
    """What the learnt order fits and how it mixes in the prior and the cluster boost."""

    model: str = field(default="logistic", metadata={"help": "logistic, gbm, or none (prior + boost only)"})
    features: tuple[str, ...] = field(
        default=STATIC_FEATURES,
        metadata={"help": "frame columns the model reads (add q_fn, q_rej to let it learn the feedback itself)"},
    )
    c: float = field(default=1.0, metadata={"help": "inverse L2 strength of the logistic regression"})
    prior: tuple[tuple[str, float], ...] = field(
        default=(("score", 1.0), ("bm25", 1.0), ("pos_sim", 2.0), ("p_fn_given_neg", 1.0), ("pos_sim@q", 1.0)),
        metadata={"help": "(column, weight) pairs whose global percentile ranks make the cold-start order"},
    )
    prior_as_feature: bool = field(default=False, metadata={"help": "give the model the prior's logit as a feature"})
    fn_boost: float = field(default=1.0, metadata={"help": "logit added per confirmed FN in the same query"})
    rej_penalty: float = field(default=1.0, metadata={"help": "logit subtracted per rejection in the same query"})
    balanced: bool = field(default=True, metadata={"help": "weight the two classes equally in the fit"})
    min_fn: int = field(default=1, metadata={"help": "confirmed FNs needed before a model replaces the prior"})
    blend: float = field(
        default=0.3,
        metadata={"help": "0: the model's logit replaces the prior; > 0: prior logit + blend * model logit"},
    )


@dataclass
class Fit:
    """One refit: the scores of every row, whether a model was fitted, why not if not, and its wall time."""

    scores: np.ndarray
    fitted: bool
    note: str
    seconds: float
    proba: np.ndarray | None = None  # the model's P(FN) per row, when fitted
    coefficients: dict[str, float] | None = None  # a fitted logistic model's weights by column, and its intercept


def prior_scores(
    frame: pd.DataFrame, prior: tuple[tuple[str, float], ...], ranks: RankCache | None = None
) -> np.ndarray:
    """Weighted mean of the listed columns' global percentile ranks, in (0, 1); higher = review first.

    A column named ``"<col>@q"`` stands for ``col``'s rank *within its query*
    (best first), so the order also reaches each query's best candidate, not
    only the globally highest values. ``ranks``: the frame's shared ranks (the
    arms and both learners rank the same columns).
    """
    total = sum(w for _, w in prior)
    if not prior or total <= 0:
        return np.full(len(frame), 0.5)
    ranks = ranks or RankCache(frame)

    def make() -> np.ndarray:
        acc = np.zeros(len(frame))
        for col, w in prior:
            if col.endswith("@q"):
                pct = ranks.memo(("pct-within", col), lambda col=col: pct_rank(-ranks.within(col[:-2])))
            else:
                pct = ranks.pct(col)
            acc += w * pct
        return acc / total

    return ranks.memo(("prior", prior), make)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


class Learner:
    """Holds a run's standardised static features; ``refit`` turns the verdicts so far into scores.

    The static part is prepared once (standardising 80k rows is the slow step);
    each refit only recomputes the feedback counts, fits on the reviewed rows and
    scores all rows.
    """

    def __init__(self, frame: pd.DataFrame, cfg: LearnerConfig, seed: int = 0, ranks: RankCache | None = None) -> None:
        self.cfg = cfg
        self.seed = seed
        self.frame = frame
        #: The frame's shared ranks and arrays (learners on one frame share the prior and the standardised features).
        self.ranks = ranks or RankCache(frame)
        self.prior = prior_scores(frame, cfg.prior, self.ranks)
        self._prior_logit = self.ranks.memo(("prior_logit", cfg.prior), lambda: _logit(self.prior))  # read only
        static = [f for f in cfg.features if f not in FEEDBACK_FEATURES]
        if cfg.prior_as_feature:
            static.append("prior_logit")

        key = (tuple(static), cfg.prior if cfg.prior_as_feature else None)
        self.feedback = [f for f in cfg.features if f in FEEDBACK_FEATURES]
        k = len(static)

        def design() -> np.ndarray:
            # One (rows, static + feedback) matrix: the static columns standardised once, the feedback columns
            # rewritten in place before each full refit. At 10M rows a stacked copy per refit cost seconds and
            # a gigabyte; the values, and so every fit and score, are the same as stacking them.
            x = np.empty((len(frame), k + len(self.feedback)))
            cols = [frame[f].to_numpy(dtype=float) for f in static if f != "prior_logit"]
            if cfg.prior_as_feature:
                cols.append(self._prior_logit)
            moments = ("moments", *key)  # the means and deviations: kept (and saved) with the ranks
            known = self.ranks.get(moments)
            # filled a block of rows at a time, so each block's columns are written while it is in cache
            for start in range(0, len(x), _BLOCK):
                block = x[start : start + _BLOCK, :k]
                for j, col in enumerate(cols):
                    block[:, j] = col[start : start + _BLOCK]
                if known is not None:
                    _standardise(block, known)
            if known is None:
                stats = self.ranks.memo(moments, lambda: np.stack([x[:, :k].mean(axis=0), x[:, :k].std(axis=0)]))
                for start in range(0, len(x), _BLOCK):
                    _standardise(x[start : start + _BLOCK, :k], stats)
            return x

        # shared by the learners on one frame (used one at a time: each writes the feedback columns it reads);
        # without feedback columns it is never written, so the run saves it with its arms and maps it back
        name = ("design_fb", *key, tuple(self.feedback)) if self.feedback else ("design", *key)
        self._design = self.ranks.memo(name, design)
        self.static = self._design[:, :k]  # (n_rows, n_static), never written to
        #: The model's input columns, in order (static ones standardised, feedback ones as log1p counts).
        self.columns: tuple[str, ...] = (*static, *self.feedback)
        self._model()  # imports scikit-learn now, so the first refit's wall time is the fit's own

    def _boost(self, q_fn: np.ndarray, q_rej: np.ndarray) -> np.ndarray:
        return self.cfg.fn_boost * q_fn - self.cfg.rej_penalty * q_rej

    def _matrix(self, fb: pd.DataFrame) -> np.ndarray:
        """Every row's model input for the feedback ``fb`` (the shared matrix, its feedback columns rewritten)."""
        if self.feedback:
            self._design[:, self.static.shape[1] :] = np.log1p(fb[self.feedback].to_numpy())
        return self._design

    def _rows_matrix(self, rows: np.ndarray, q_fn: np.ndarray, q_rej: np.ndarray) -> np.ndarray:
        """``rows``' model input, given their feedback counts (the same values :meth:`_matrix` holds there)."""
        if not self.feedback:
            return self.static[rows]
        fb = {"q_fn": q_fn, "q_rej": q_rej}
        return np.column_stack([self.static[rows], *(np.log1p(fb[f]) for f in self.feedback)])

    def _model(self):  # noqa: ANN202 - a scikit-learn estimator
        if self.cfg.model == "gbm":
            from sklearn.ensemble import HistGradientBoostingClassifier

            return HistGradientBoostingClassifier(
                max_iter=100, learning_rate=0.1, max_leaf_nodes=8, min_samples_leaf=5, random_state=self.seed,
                class_weight="balanced" if self.cfg.balanced else None,
            )  # fmt: skip
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(
            C=self.cfg.c,
            solver="liblinear",
            class_weight="balanced" if self.cfg.balanced else None,
            max_iter=1000,
            random_state=self.seed,
        )

    def refit(self, verdicts: Mapping[int, bool], fb: pd.DataFrame | None = None) -> Fit:
        """Scores for every row from the verdicts so far (row index -> confirmed false negative).

        Falls back to the prior (plus the cluster boost) when no model can be
        fitted: no verdicts yet, or only one class among them; ``note`` says which.
        ``fb``: :func:`~rrra_core.review.features.feedback_features` of these verdicts, when the caller has it.
        """
        return self._refit(verdicts, None, fb)

    def scores_at(self, verdicts: Mapping[int, bool], rows: np.ndarray) -> np.ndarray:
        """``refit(verdicts).scores[rows]``, reading only the reviewed rows and ``rows`` (the bandit's out of fold)."""
        return self._refit(verdicts, np.asarray(rows, dtype=np.int64)).scores

    def _refit(self, verdicts: Mapping[int, bool], rows: np.ndarray | None, fb: pd.DataFrame | None = None) -> Fit:
        """:meth:`refit`, its scores and probabilities at ``rows`` only (every row when ``None``)."""
        t0 = time.perf_counter()
        idx = np.fromiter(verdicts.keys(), dtype=np.int64, count=len(verdicts))
        y = np.fromiter(verdicts.values(), dtype=bool, count=len(verdicts))
        if rows is None:
            if fb is None:
                fb = feedback_features(self.frame, verdicts, self.ranks.codes)
            boost = self._boost(fb["q_fn"].to_numpy(), fb["q_rej"].to_numpy())
            base = self._prior_logit + boost
        else:  # the counts at the reviewed rows and `rows` only: the same numbers feedback_features gives there
            q_fn, q_rej = _feedback_at(self.ranks.codes, idx, y, np.concatenate([idx, rows]))
            boost = self._boost(q_fn[len(idx) :], q_rej[len(idx) :])
            base = self._prior_logit[rows] + boost
        if self.cfg.model == "none":
            return Fit(base, False, "prior + cluster boost (no model by configuration)", time.perf_counter() - t0)
        if not len(y):
            return Fit(base, False, "no verdicts yet: prior order", time.perf_counter() - t0)
        if y.all() or not y.any():
            kind = "confirmed false negatives" if y.all() else "rejections"
            note = f"only {kind} so far ({len(y)}): prior order with the cluster boost until both classes are seen"
            return Fit(base, False, note, time.perf_counter() - t0)
        if y.sum() < self.cfg.min_fn:
            note = f"{int(y.sum())} confirmed false negatives (< {self.cfg.min_fn}): prior order with the cluster boost"
            return Fit(base, False, note, time.perf_counter() - t0)
        if rows is None:
            x = self._matrix(fb)
            x_train, x_score = x[idx], x
        else:
            x = self._rows_matrix(np.concatenate([idx, rows]), q_fn, q_rej)
            x_train, x_score = x[: len(idx)], x[len(idx) :]
        model = self._model().fit(x_train, y)
        proba = model.predict_proba(x_score)[:, 1]
        model_logit = _logit(proba)
        scores = base + self.cfg.blend * model_logit if self.cfg.blend > 0 else model_logit + boost
        note = f"{self.cfg.model} fitted on {len(y)} verdicts ({int(y.sum())} false negatives)"
        coefs = None
        if hasattr(model, "coef_"):
            coefs = {c: float(w) for c, w in zip(self.columns, model.coef_[0], strict=True)}
            coefs["intercept"] = float(model.intercept_[0])
        return Fit(scores, True, note, time.perf_counter() - t0, proba, coefs)


def _standardise(block: np.ndarray, moments: np.ndarray) -> None:
    """``block -= mean; block /= deviation`` in place (a zero deviation divides by one)."""
    block -= moments[0]
    block /= np.where(moments[1] > 0, moments[1], 1.0)


def _feedback_at(codes: np.ndarray, idx: np.ndarray, y: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``feedback_features``' ``q_fn`` and ``q_rej`` at ``rows`` only (reviewed rows ``idx``, verdicts ``y``)."""
    n_codes = int(codes.max()) + 1 if len(codes) else 0
    fn_q = np.bincount(codes[idx[y]], minlength=n_codes)
    rej_q = np.bincount(codes[idx[~y]], minlength=n_codes)
    at = codes[rows]
    q_fn = fn_q[at].astype(float) - np.isin(rows, idx[y])
    q_rej = rej_q[at].astype(float) - np.isin(rows, idx[~y])
    return q_fn, q_rej
