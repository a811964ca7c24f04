"""Comparing two runs: side-by-side metrics, per-query differences, and which queries changed.

Per-query results are stored next to the run's ``metrics.json`` in
``per_query.json``, written by the final evaluation of phases 1 and 3 (and by
``scripts/per_query.py`` for runs trained before that file existed)::

    {"format": 1, "dataset": "cranfield", "split": "test", "k": 100,
     "measures": ["nDCG@10", ...],
     "variants": {"no_rerank": {"<query id>": {"nDCG@10": 0.5, ...}, ...},
                  "rerank": {...}}}

A *variant* is one ranking the run was scored with: ``retriever`` for phase 1,
``no_rerank`` and ``rerank`` for phase 3 (the keys of ``variants`` in ``metrics.json``).
Every variant holds every qrels query with a relevant document, so the mean of
a column is exactly the aggregate in ``metrics.json``.

Everything here is pure except :func:`evaluate_run`, which loads the run's
model to recompute the record; it imports torch lazily, so the app can import
this module without it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from rrra_core.retrieval.evaluation import DEFAULT_METRICS, PER_QUERY_FILE, PER_QUERY_FORMAT, per_query_record
from rrra_core.runtime.errors import ConfigError, DataError
from rrra_core.runtime.reports import upgrade_metrics
from rrra_core.runtime.run_config import parse_run_config, read_run_config

__all__ = [
    "PER_QUERY_FILE",
    "PER_QUERY_FORMAT",
    "VARIANT_LABELS",
    "PerQuery",
    "per_query_record",
    "parse_per_query",
    "run_metric_variants",
    "default_variant",
    "eval_settings",
    "lineage_round",
    "newest_first",
    "side_by_side",
    "config_differences",
    "QueryDeltas",
    "per_query_deltas",
    "classify_changes",
    "ChangeSummary",
    "summarize_changes",
    "sign_test_p",
    "evaluate_run",
]

VARIANT_LABELS: dict[str, str] = {
    "retriever": "retriever",
    "no_rerank": "retriever (no rerank)",
    "rerank": "retriever + adapter rerank",
}
# The variant a run is judged by when nobody says otherwise: its best-effort final ranking,
# in the same order the app's run table reads headline metrics.
_VARIANT_PREFERENCE = ("rerank", "retriever", "no_rerank")

QueryMetrics = Mapping[str, Mapping[str, float]]  # {query id: {metric: value}}


# ------------------------------------------------------------------ storage
@dataclass(frozen=True)
class PerQuery:
    """A run's per-query metrics on its evaluation split, for each ranking variant."""

    dataset: str
    split: str
    measures: list[str]
    variants: dict[str, dict[str, dict[str, float]]]
    k: int | None = None


def parse_per_query(obj: Any, source: str = PER_QUERY_FILE) -> PerQuery:
    """Check and wrap a loaded ``per_query.json``; a malformed file is a one-line DataError."""
    if not isinstance(obj, dict) or not isinstance(obj.get("variants"), dict) or not obj["variants"]:
        raise DataError(source, "not a per-query results file (no 'variants')")
    if obj.get("format") != PER_QUERY_FORMAT:
        raise DataError(source, f"unsupported per-query format {obj.get('format')!r} (expected {PER_QUERY_FORMAT})")
    variants: dict[str, dict[str, dict[str, float]]] = {}
    for name, queries in obj["variants"].items():
        if not isinstance(queries, dict):
            raise DataError(source, f"variant {name!r} is not an object of queries")
        try:
            variants[str(name)] = {str(q): {str(m): float(v) for m, v in vals.items()} for q, vals in queries.items()}
        except (AttributeError, TypeError, ValueError):
            raise DataError(source, f"variant {name!r} holds a non-numeric metric value") from None
    return PerQuery(
        dataset=str(obj.get("dataset", "")),
        split=str(obj.get("split", "")),
        measures=[str(m) for m in obj.get("measures", [])],
        variants=variants,
        k=obj.get("k"),
    )


# ------------------------------------------------------------- aggregates
def run_metric_variants(kind: str | None, metrics: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """``{variant: {metric: mean}}`` from a phase-1, phase-3 or evaluation run's ``metrics.json`` (else empty).

    An evaluation run is a retrain's "before": its base run scored as phase 3
    scores its own. A phase-2 run has no retrieval metrics of its own; pass
    its ``retrieval_eval.json`` (older retrains wrote one into their base).
    """

    def numbers(d: Any) -> dict[str, float]:
        return {k: float(v) for k, v in (d or {}).items() if k not in ("epoch", "step") and isinstance(v, (int, float))}

    if kind == "phase2":
        return {name: numbers(vals) for name, vals in (metrics.get("eval") or {}).items() if vals}
    if kind in ("phase1", "phase3", "evaluation"):
        variants = upgrade_metrics(metrics, kind)["variants"]
        return {name: numbers(vals) for name, vals in variants.items() if vals}
    return {}


def default_variant(variants: Sequence[str]) -> str | None:
    """The variant to show first: the run's final ranking (reranked where it was)."""
    for name in _VARIANT_PREFERENCE:
        if name in variants:
            return name
    return next(iter(variants), None)


def eval_settings(config: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(dataset, evaluation split) of a phase-1, phase-3 or evaluation run's config; (None, None) if it has none."""
    saved = parse_run_config(config)
    if saved.dataset is None or "eval_split" not in saved.data:  # phase 2 trains only, it names no eval split
        return None, None
    return saved.dataset, saved.eval_split


def lineage_round(config: Mapping[str, Any]) -> int:
    """How many retrain rounds shaped the model a run holds, read from its ``config.json``.

    0 for a run no retrain made; n for round n's runs; n − 1 for round n's evaluation
    of its base (kind ``evaluation``, the round's "before"), which holds the base's
    model though the round writes it after its new run.
    """
    record = config.get("retrain")
    if not isinstance(record, Mapping):
        return 0
    try:
        made = int(record.get("round") or 1)
    except (TypeError, ValueError):
        made = 1
    return made - 1 if config.get("kind") == "evaluation" else made


def newest_first(configs: Mapping[str, Mapping[str, Any]], times: Mapping[str, float]) -> list[str]:
    """Run ids ordered latest first by lineage (:func:`lineage_round`), then by time (``times``, e.g. mtimes).

    By time alone a retrain's "before" run, evaluated last, came out newer than the
    run it precedes, and Compare runs opened with before and after swapped.
    """
    return sorted(configs, key=lambda r: (lineage_round(configs[r]), float(times.get(r, 0.0))), reverse=True)


def _metric_order(names: Sequence[str]) -> list[str]:
    known = [m for m in DEFAULT_METRICS if m in names]
    return known + sorted(m for m in names if m not in DEFAULT_METRICS)


def side_by_side(a: Mapping[str, float], b: Mapping[str, float]) -> pd.DataFrame:
    """One row per metric either side reports: A, B, B − A and the relative change (NaN where undefined)."""
    rows = []
    for m in _metric_order(list(dict.fromkeys([*a, *b]))):
        va, vb = a.get(m), b.get(m)
        delta = vb - va if va is not None and vb is not None else None
        rel = delta / va if delta is not None and va else None
        rows.append({"metric": m, "A": va, "B": vb, "delta": delta, "relative": rel})
    return pd.DataFrame(rows, columns=["metric", "A", "B", "delta", "relative"]).astype(
        {"A": float, "B": float, "delta": float, "relative": float}
    )


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def config_differences(
    a: Mapping[str, Any], b: Mapping[str, Any], ignore: Sequence[str] = ("environment",)
) -> pd.DataFrame:
    """Settings whose values differ between two run configs, as ``setting, A, B`` (machine facts left out).

    Both configs are read in the current schema first, so a run made before it
    compares with a new one setting by setting (``phase.sampler``, ``data.dataset``).
    """
    a, b = parse_run_config(a).as_dict(), parse_run_config(b).as_dict()
    fa = _flatten({k: v for k, v in a.items() if k not in ignore})
    fb = _flatten({k: v for k, v in b.items() if k not in ignore})
    missing = "—"
    rows = [
        {"setting": k, "A": _show(fa.get(k, missing)), "B": _show(fb.get(k, missing))}
        for k in sorted(set(fa) | set(fb))
        if fa.get(k, missing) != fb.get(k, missing)
    ]
    return pd.DataFrame(rows, columns=["setting", "A", "B"])


def _show(v: Any) -> str:
    # One text column: mixed ints, floats, lists and None would not make a valid Arrow column.
    return "None" if v is None else str(v)


# -------------------------------------------------------------- per query
@dataclass(frozen=True)
class QueryDeltas:
    """Per-query values of one metric for runs A and B, on the queries both scored."""

    metric: str
    frame: pd.DataFrame  # query_id, A, B, delta; sorted by delta (largest gain first)
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)


def per_query_deltas(a: QueryMetrics, b: QueryMetrics, metric: str) -> QueryDeltas:
    """B − A for ``metric`` on every query both runs scored; queries only one side has are listed apart.

    The two sides must come from the same qrels split for the difference to
    mean anything; queries present on one side only reveal a mismatch.
    """
    common = [q for q in a if q in b]
    for side, values in (("A", a), ("B", b)):
        if common and metric not in values[common[0]]:
            raise ConfigError(f"run {side} has no per-query {metric!r}; it has {', '.join(values[common[0]])}")
    va = np.array([a[q][metric] for q in common], dtype=np.float64)
    vb = np.array([b[q][metric] for q in common], dtype=np.float64)
    frame = pd.DataFrame({"query_id": pd.Series(common, dtype=str), "A": va, "B": vb, "delta": vb - va})
    # Ties by query id, so the order (and any CSV) is the same on every run.
    frame = frame.sort_values(["delta", "query_id"], ascending=[False, True], kind="stable").reset_index(drop=True)
    return QueryDeltas(metric=metric, frame=frame, only_a=sorted(set(a) - set(b)), only_b=sorted(set(b) - set(a)))


def classify_changes(delta: pd.Series | np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """'helped' where B − A > threshold, 'hurt' where B − A < −threshold, else 'unchanged'."""
    if threshold < 0:
        raise ConfigError(f"the change threshold must be >= 0, got {threshold}")
    d = np.asarray(delta, dtype=np.float64)
    return np.where(d > threshold, "helped", np.where(d < -threshold, "hurt", "unchanged"))


@dataclass(frozen=True)
class ChangeSummary:
    """How B differs from A over the common queries, with two paired significance tests."""

    n: int
    helped: int
    hurt: int
    unchanged: int
    mean_a: float
    mean_b: float
    mean_delta: float
    sign_test_p: float  # exact two-sided sign test on helped vs hurt
    t_test_p: float  # paired t-test on the deltas (NaN if undefined)


def sign_test_p(wins: int, losses: int) -> float:
    """Exact two-sided sign test p-value (ties dropped): P(a split at least this uneven | fair coin)."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)


def _paired_t_p(delta: np.ndarray) -> float:
    n = delta.size
    if n < 2:
        return float("nan")
    sd = float(delta.std(ddof=1))
    if sd == 0.0:
        # Every query moved by the same amount: no variance to test against.
        return 1.0 if float(delta.mean()) == 0.0 else 0.0
    from scipy import stats  # scikit-learn's dependency; imported only when a test is asked for

    t = float(delta.mean()) / (sd / math.sqrt(n))
    return float(2.0 * stats.t.sf(abs(t), df=n - 1))


def summarize_changes(deltas: QueryDeltas, threshold: float = 0.0) -> ChangeSummary:
    """Counts of helped / hurt / unchanged queries, the means, and paired tests (sign test uses the same threshold)."""
    f = deltas.frame
    labels = classify_changes(f["delta"], threshold)
    helped, hurt = int((labels == "helped").sum()), int((labels == "hurt").sum())
    n = len(f)
    nan = float("nan")
    return ChangeSummary(
        n=n,
        helped=helped,
        hurt=hurt,
        unchanged=n - helped - hurt,
        mean_a=float(f["A"].mean()) if n else nan,
        mean_b=float(f["B"].mean()) if n else nan,
        mean_delta=float(f["delta"].mean()) if n else nan,
        sign_test_p=sign_test_p(helped, hurt),
        t_test_p=_paired_t_p(f["delta"].to_numpy(dtype=np.float64)),
    )


# ------------------------------------------------------- recomputing a run
def evaluate_run(run: Any, split: str | None = None, device: str | None = None) -> dict[str, Any]:
    """Recompute a finished phase-1 or phase-3 run's ``per_query.json`` content with its saved model.

    The same retrieval (and, for phase 3, the same adapter reranking: the
    run's recorded rerank choice) as the run's final evaluation, with the
    settings in its ``config.json``.
    ``split`` overrides the evaluation split; ``device`` the saved device.
    """
    from dataclasses import replace

    from rrra_core.data import load_dataset
    from rrra_core.retrieval.encoder import BiEncoder, EncoderConfig
    from rrra_core.retrieval.final_evaluation import final_evaluation
    from rrra_core.runtime.device import resolve_device

    saved = read_run_config(run)
    if saved.kind not in ("phase1", "phase3"):
        raise ConfigError(
            f"run {run.id!r} is a {saved.kind!r} run; per-query results exist for phase-1 and phase-3 runs only"
        )
    if not run.file("model").is_dir():
        raise ConfigError(f"run {run.id!r} has no trained model yet (is it still training?)")
    split = split or saved.eval_split
    if saved.dataset is None or not split:
        raise ConfigError(f"run {run.id!r} names no evaluation split; pass --split")
    settings = saved.phase
    enc = replace(saved.encoder_config(EncoderConfig), model=str(run.path), **({"device": device} if device else {}))

    encoder = BiEncoder.from_pretrained(enc.model, shared=enc.shared).to(resolve_device(enc.device)).eval()
    adapter, choice = None, None
    if saved.kind == "phase3" and run.file("adapter").is_dir():
        from rrra_core.adapter import load_adapter
        from rrra_core.retrieval.rerank_choice import run_rerank_choice
        from rrra_core.runtime.reports import read_metrics

        adapter, _ = load_adapter(run.file("adapter"), device=encoder.device)
        # Rerank as the run chose on its dev queries (issue 29); an older run's fixed setting otherwise.
        choice = run_rerank_choice(run.read_json("config.json", {}), read_metrics(run, saved.kind))
    evaluation = final_evaluation(
        encoder,
        load_dataset(saved.dataset, split),
        enc,
        dataset=saved.dataset,
        k=int(settings.get("eval_k", 100)),
        index_kind=str(settings.get("index_kind", "auto")),
        plain="retriever" if saved.kind == "phase1" else "no_rerank",
        adapter=adapter,
        lambda_rr=float(settings.get("lambda_rr", 0.0)),
        rerank_signal=str(settings.get("rerank_signal", "p_rel")),
        choice=choice,
        progress="per-query: encoding corpus",
    )
    return evaluation.per_query()
