"""Whether a run reranks, and how: chosen on a dev split of its own training queries.

The adapter's rerank (:mod:`rrra_core.retrieval.rerank`) needs no retraining to
tune: it re-scores candidates the model already retrieved. So every run
chooses it on its own data instead of applying fixed defaults blind
(issue 29).

**The dev split.** ``carve_dev(training queries, fraction, seed)``, the rule the
fair comparison uses (:func:`rrra_core.data.subsample.carve_dev`), carved
*before* training: phase 2 trains its adapter on the rest (the adapter fit's
own held-out queries, which pick its epoch, come from the rest too), phase 3
trains its encoder and adapter on the rest. The carve depends only on the
training query ids and this config's seed, so phase 2, the phase 3 that
starts from it and a retrain round on the same queries hold out the same
queries. Nothing that scores the rerank on dev has trained on them (the
encoder of a phase-2 run is frozen; only a phase-1 encoder trained before
the carve may have seen them, which the benchmark avoids by carving first).

**The rule.** Every candidate setting (a signal and a strength λ_RR) is scored
per dev query (``metric``, nDCG@10 by default) and compared with "off" (the
retriever's own order) by a paired two-sided randomization test over the dev
queries (scipy's ``permutation_test``, sign flips, as the randomization test
of :mod:`rrra_core.analysis.significance`; called directly because
``paired_pvalues`` also runs ranx's t-test, whose numba compilation alone
costs seconds a run would spend for nothing). Choosing the
best of several settings on the same queries inflates its gain, so the
p-values are Holm-corrected over the candidates (family-wise error ≤
``level``). The rerank is switched on only with a setting whose corrected
p-value is at most ``level`` and whose mean gain is positive; among those the
one with the highest dev mean. Otherwise it is off. Holm rather than a
choose/confirm split of dev: the dev splits are small (tens to a few hundred
queries) and halving them loses more power than the correction does, while
Holm still bounds the chance of switching on a rerank that does not help.

**The level, 0.02**, was chosen on dev data alone (``results/rerank_choice.md``,
:func:`rrra_core.workflows.rerank_choice_bench.select_level`): every phase-2
run of ADI, Cranfield, SciFact and SQuAD (3 seeds each) halved its dev
queries, chose at each candidate level on one half and read the chosen
setting's gain over off on the other, both ways. By the criterion stated
before the figures were read (no collection's mean out-of-half gain below
-0.003; then the largest mean over the collections, a stricter level within
0.0005 preferred), 0.02 is kept: every level was admissible, and 0.02 gained
most (+0.0113 nDCG@10 vs +0.0103 at 0.01, from SciFact and SQuAD). With
:data:`PERMUTATIONS` resamples a two-sided p is at least 2/2001, so Holm over
six settings cannot go below 0.006: a level under that never switches on.

Nothing here imports torch at import time: the app reads a run's choice.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rrra_core.data.subsample import carve_dev
from rrra_core.runtime.config import opt
from rrra_core.runtime.errors import ConfigError

__all__ = [
    "RERANK_CHOICE_KEY",
    "RerankChoiceConfig",
    "RerankSetting",
    "RerankChoice",
    "parse_settings",
    "dev_queries",
    "holm",
    "paired_randomization_p",
    "choose_rerank",
    "score_settings",
    "rerank_dev_scores",
    "choose_rerank_for_retrieval",
    "read_rerank_choice",
    "run_rerank_choice",
    "fixed_choice",
]

#: Where a run's ``metrics.json`` keeps its choice.
RERANK_CHOICE_KEY = "rerank_choice"
#: The fair comparison's rerank grid (``workflows/fair.py``), in its order.
DEFAULT_SETTINGS = "p_rel:1.0,p_rel:0.5,p_rel:0.25,qa:1.0,qa:0.5,qa:2.0"
_SIGNALS = ("p_rel", "qa")
#: Random sign flips per test: a two-sided p is at least 2/2001, so Holm over 6 settings at least 0.006.
PERMUTATIONS = 2000


@dataclass
class RerankChoiceConfig:
    """How a run chooses its rerank on dev (see the module docstring)."""

    enabled: bool = opt(True, "choose the rerank on a dev split (false: the fixed lambda_rr / rerank_signal)")
    dev_fraction: float = opt(0.2, "share of the training queries held out of training to choose the rerank on")
    seed: int = opt(0, "seed of the dev carve (the same queries in every phase that trains on the same queries)")
    settings: str = opt(DEFAULT_SETTINGS, "candidate settings, signal:lambda_rr separated by commas (off is implied)")
    metric: str = opt("nDCG@10", "per-query dev metric the settings are compared by")
    level: float = opt(
        0.02,
        "family-wise level of the Holm-corrected paired randomization test vs off (chosen on dev split halves, "
        "results/rerank_choice.md)",
    )
    k: int = opt(100, "retrieval depth reranked on dev")

    def __post_init__(self) -> None:
        if not 0.0 < self.dev_fraction < 1.0:
            raise ConfigError(f"rerank dev_fraction must be in (0, 1), got {self.dev_fraction}")
        if not 0.0 < self.level < 1.0:
            raise ConfigError(f"rerank level must be in (0, 1), got {self.level}")
        if self.k < 1:
            raise ConfigError(f"rerank k must be at least 1, got {self.k}")

        parse_settings(self.settings)


@dataclass(frozen=True)
class RerankSetting:
    """One way to rerank: the adapter signal and the strength λ_RR (0: off)."""

    signal: str
    lambda_rr: float

    @property
    def name(self) -> str:
        return "off" if self.lambda_rr == 0 else f"{self.signal}:{self.lambda_rr:g}"


def parse_settings(text: str) -> list[RerankSetting]:
    """``"p_rel:1.0,qa:2"`` → the settings; a bad one is a one-line :class:`ConfigError`."""
    out: list[RerankSetting] = []
    for item in (s.strip() for s in text.split(",")):
        signal, _, lam = item.partition(":")
        try:
            value = float(lam)
        except ValueError:
            raise ConfigError(f"rerank setting {item!r}: expected signal:lambda_rr, e.g. qa:2.0") from None
        if signal not in _SIGNALS or not value > 0 or not math.isfinite(value):
            raise ConfigError(f"rerank setting {item!r}: signal must be one of {_SIGNALS} and lambda_rr > 0")
        out.append(RerankSetting(signal, value))
    if not out:
        raise ConfigError("name at least one rerank setting")
    return out


@dataclass(frozen=True)
class RerankChoice:
    """What a run chose, with its evidence: kept in ``metrics.json`` under :data:`RERANK_CHOICE_KEY`.

    ``on`` False means the retriever's own order. ``dev`` maps each setting
    (``off`` included) to ``{"mean", "delta", "p", "p_holm"}``; ``rule`` says
    how it was chosen, in words. A run made before choices existed reads as a
    ``fixed`` choice of its configured strength (:func:`read_rerank_choice`).
    """

    on: bool
    signal: str | None
    lambda_rr: float
    rule: str
    metric: str = "nDCG@10"
    level: float | None = None
    n_dev: int = 0
    p_value: float | None = None  # the chosen (or best) setting's Holm-corrected p
    best: str | None = None  # the best setting on dev, whether or not it passed
    dev: dict[str, dict[str, Any]] = field(default_factory=dict)
    dev_queries: list[str] = field(default_factory=list)
    seconds: float | None = None

    @property
    def setting(self) -> RerankSetting:
        return RerankSetting(self.signal or "p_rel", self.lambda_rr if self.on else 0.0)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line for a page: ``on · qa, λ 2 · dev nDCG@10 +0.012 over off (p 0.003, 150 queries)``."""
        if self.rule == "fixed":
            state = f"{self.signal}, λ {self.lambda_rr:g}" if self.on else "off"
            return f"{state} · fixed setting (chosen before per-run choices existed; no dev evidence)"
        best = self.dev.get(self.best or "", {})
        gain = best.get("delta")
        evidence = (
            f"best {self.best}: dev {self.metric} {gain:+.4f} over off "
            f"(Holm p {self.p_value:.3g}, {self.n_dev} queries)"
            if gain is not None and self.p_value is not None
            else f"{self.n_dev} dev queries"
        )
        head = f"on · {self.signal}, λ {self.lambda_rr:g}" if self.on else "off"
        return f"{head} · {evidence} · level {self.level:g}"


def dev_queries(train_ids: Sequence[str], cfg: RerankChoiceConfig) -> tuple[list[str], list[str]]:
    """``(train, dev)``: the training queries less the dev split the rerank is chosen on."""
    return carve_dev(train_ids, cfg.dev_fraction, cfg.seed)


def paired_randomization_p(control: Sequence[float], treatment: Sequence[float], n_resamples: int) -> float:
    """Two-sided p of the mean paired difference by random sign flips (1.0 below two pairs or with no difference)."""
    import numpy as np
    from scipy.stats import permutation_test

    a, b = np.asarray(control, dtype=np.float64), np.asarray(treatment, dtype=np.float64)
    if a.size < 2 or np.array_equal(a, b):
        return 1.0
    result = permutation_test(
        (a, b),
        lambda u, v, axis: np.mean(v - u, axis=axis),
        permutation_type="samples",
        vectorized=True,
        n_resamples=n_resamples,
        alternative="two-sided",
        random_state=0,
    )
    return float(result.pvalue)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given), each at most 1."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    out = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


def choose_rerank(
    off: Mapping[str, float],
    candidates: Mapping[RerankSetting, Mapping[str, float]],
    cfg: RerankChoiceConfig,
) -> RerankChoice:
    """The rule on per-query dev values: ``off`` and each candidate's ``{query: metric}``.

    Pure: no model, no files. Queries are paired by id (those ``off`` has).
    """
    queries = sorted(off)
    base = [float(off[q]) for q in queries]
    mean_off = sum(base) / len(base) if base else 0.0
    dev: dict[str, dict[str, Any]] = {"off": {"mean": mean_off, "delta": 0.0, "p": None, "p_holm": None}}
    names, raw = [], []
    for setting, values in candidates.items():
        treat = [float(values.get(q, 0.0)) for q in queries]
        p = paired_randomization_p(base, treat, PERMUTATIONS)
        mean = sum(treat) / len(treat) if treat else 0.0
        dev[setting.name] = {"mean": mean, "delta": mean - mean_off, "p": p}
        names.append(setting)
        raw.append(p)
    for setting, p_adj in zip(names, holm(raw)):
        dev[setting.name]["p_holm"] = p_adj
    # The best on dev (the earliest of equals), and the best among the settings that pass.
    best = max(names, key=lambda s: dev[s.name]["mean"], default=None)
    passing = [s for s in names if dev[s.name]["delta"] > 0 and dev[s.name]["p_holm"] <= cfg.level]
    chosen = max(passing, key=lambda s: dev[s.name]["mean"], default=None)
    shown = chosen or best
    return RerankChoice(
        on=chosen is not None,
        signal=chosen.signal if chosen else None,
        lambda_rr=chosen.lambda_rr if chosen else 0.0,
        rule=f"holm-randomization: on only if a setting beats off on dev {cfg.metric} "
        f"at family-wise level {cfg.level:g}",
        metric=cfg.metric,
        level=cfg.level,
        n_dev=len(queries),
        p_value=dev[shown.name]["p_holm"] if shown else None,
        best=best.name if best else None,
        dev=dev,
        dev_queries=queries,
    )


def score_settings(
    run: Mapping[str, Mapping[str, float]],
    signals: Mapping[str, Mapping[str, Mapping[str, float]]],
    qrels: Mapping[str, Mapping[str, int]],
    settings: Sequence[RerankSetting],
    metric: str,
) -> tuple[dict[str, float], dict[RerankSetting, dict[str, float]]]:
    """Per-query ``metric`` of ``run`` as is (off) and reranked by each setting (``signals[signal][q][d]``)."""
    from rrra_core.retrieval.evaluation import evaluate_per_query
    from rrra_core.retrieval.rerank import rerank_run

    def per_query(r: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
        return {q: v[metric] for q, v in evaluate_per_query(qrels, r, (metric,)).items()}

    return per_query(run), {s: per_query(rerank_run(run, signals[s.signal], s.lambda_rr)) for s in settings}


def rerank_dev_scores(
    adapter: Any, res: Any, qrels: Mapping[str, Mapping[str, int]], cfg: RerankChoiceConfig
) -> tuple[dict[str, float], dict[RerankSetting, dict[str, float]]]:
    """Per-query dev ``cfg.metric`` of off and of every candidate setting, for a model's retrieval ``res``.

    ``res`` is a :class:`~rrra_core.retrieval.dense.Retrieval` of the dev
    queries, cut to ``cfg.k``; ``qrels`` are their labels. The adapter's
    signals are computed once; every setting reuses them.
    """
    from rrra_core.adapter.rerank import adapter_rerank_signals
    from rrra_core.retrieval.evaluation import rank_run

    run = {q: dict(r[: cfg.k]) for q, r in rank_run({q: res.run[q] for q in qrels if q in res.run}).items()}
    settings = parse_settings(cfg.settings)
    wanted = tuple(dict.fromkeys(x.signal for x in settings))
    signals = adapter_rerank_signals(
        adapter, run, res.query_ids, res.query_vectors, res.corpus.ids, res.corpus.vectors, wanted
    )
    return score_settings(run, signals, qrels, settings, cfg.metric)


def choose_rerank_for_retrieval(
    adapter: Any, res: Any, qrels: Mapping[str, Mapping[str, int]], cfg: RerankChoiceConfig
) -> RerankChoice:
    """The choice for a model's retrieval of the dev queries (see :func:`rerank_dev_scores`), timed."""
    start = time.perf_counter()
    off, per_setting = rerank_dev_scores(adapter, res, qrels, cfg)
    choice = choose_rerank(off, per_setting, cfg)
    return RerankChoice(**{**choice.as_dict(), "seconds": time.perf_counter() - start})


def fixed_choice(lambda_rr: float, signal: str) -> RerankChoice:
    """A run's fixed setting as a choice (a run made before per-run choices, or with the choice disabled)."""
    return RerankChoice(on=lambda_rr > 0, signal=signal, lambda_rr=float(lambda_rr), rule="fixed")


def read_rerank_choice(
    metrics: Mapping[str, Any] | None, lambda_rr: float | None = None, signal: str | None = None
) -> RerankChoice | None:
    """A run's choice from its ``metrics.json``; without one, its fixed ``lambda_rr`` / ``signal`` (None: unknown).

    Old runs keep today's behaviour: their configured strength, read as a
    ``fixed`` choice.
    """
    raw = (metrics or {}).get(RERANK_CHOICE_KEY)
    if isinstance(raw, Mapping):
        known = {f for f in RerankChoice.__dataclass_fields__}
        try:
            return RerankChoice(**{k: v for k, v in raw.items() if k in known})
        except TypeError:
            pass  # a damaged record reads as no choice
    if lambda_rr is None:
        return None
    return fixed_choice(float(lambda_rr), signal or "p_rel")


def run_rerank_choice(config: Mapping[str, Any] | None, metrics: Mapping[str, Any] | None) -> RerankChoice | None:
    """The rerank a run uses, from its ``config.json`` and ``metrics.json`` (as loaded).

    Its recorded choice; else a phase-3 run's fixed ``lambda_rr`` and
    ``rerank_signal``; else None (a phase-2 run made before per-run choices:
    a caller keeps its own default, as before).
    """
    from rrra_core.runtime.run_config import parse_run_config

    try:
        phase = parse_run_config(config or {}).phase
    except ConfigError:
        phase = {}
    lam = phase.get("lambda_rr")
    return read_rerank_choice(metrics, lam if isinstance(lam, int | float) else None, phase.get("rerank_signal"))
