"""Training dynamics of a run: loss curves, per-epoch metrics and the gradient analysis.

Pure functions over what the training loops write: ``log.jsonl`` (one line per
optimizer step, plus phase-2 ``"event": "eval"`` lines), ``metrics.json`` and
phase 3's ``gradients.parquet`` (one row per sampled negative with its
``p_j/τ``, category, sampler and step). The app turns the frames returned here
into charts; nothing here reads files or imports torch.

The gradient analysis is the paper's (RRRA.md, "Gradient analysis"): with
InfoNCE the gradient on a negative's score is ``p_j/τ``, so a sampler that
keeps drawing false negatives spends large gradients pushing relevant
documents away. Comparing the magnitude per negative category across samplers
shows whether resampling takes that force off the false negatives.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from rrra_core.negatives.resampling import zero_weight_reason
from rrra_core.runtime.errors import ConfigError

__all__ = [
    "LOSS_SERIES",
    "CATEGORY_LABELS",
    "ALL_CATEGORIES",
    "step_frame",
    "loss_curves",
    "epoch_boundaries",
    "epoch_table",
    "hard_negative_note",
    "sibling_runs",
    "series_labels",
    "gradient_frame",
    "gradient_distribution",
    "gradient_over_training",
]

# Loss columns the loops log, with the name a reader of the paper knows them by.
LOSS_SERIES: dict[str, str] = {
    "loss": "total loss",
    "loss_contrastive": "contrastive (InfoNCE)",
    "adapter_ce": "adapter cross-entropy",
    "ce": "adapter cross-entropy",
    "adapter_norm": "L_norm",
    "norm": "L_norm",
}
# The phase-3 gradient-log categories (``GRADIENT_CATEGORIES`` in training/phase3.py, kept
# in step by a test: importing it here would pull torch into the app).
CATEGORY_LABELS: dict[str, str] = {
    "planted_fn": "false negative (planted)",
    "human_confirmed": "false negative (human-confirmed)",
    "adapter_suspected": "suspected by the adapter",
    "other": "other negatives",
}
ALL_CATEGORIES = "all"
_STEP_COLUMNS = ("step", "epoch", "lr", "lr_scale", "grad_norm", "n_docs", "time")


# ------------------------------------------------------------------ the step log
def step_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per optimizer step from ``log.jsonl`` records (event lines skipped), sorted by step.

    A resumed run logs again the steps between its last checkpoint and the
    kill; they replay identically, so the last record of each step is kept.
    """
    rows = [dict(r) for r in records if "step" in r and "loss" in r and "event" not in r]
    if not rows:
        return pd.DataFrame(columns=["step", "epoch", "loss"])
    df = pd.DataFrame(rows)
    keep = [c for c in (*_STEP_COLUMNS, *LOSS_SERIES) if c in df.columns]
    df = df[keep].drop_duplicates("step", keep="last").sort_values("step", kind="stable").reset_index(drop=True)
    return df


def loss_curves(steps: pd.DataFrame, smooth: int = 1) -> pd.DataFrame:
    """Long frame ``step, epoch, series, value, smoothed`` for every logged loss column.

    ``smooth`` is a trailing moving-average window in steps (1 = raw): single
    steps are noisy at small batch sizes, and a trailing window never uses
    future steps, so a curve read at step t is what the run had seen by t.
    """
    if smooth < 1:
        raise ConfigError(f"smoothing window must be at least 1 step, got {smooth}")
    frames = []
    seen: set[str] = set()
    for col, label in LOSS_SERIES.items():
        if col not in steps.columns or label in seen or steps[col].isna().all():
            continue
        seen.add(label)
        values = steps[col].astype(float)
        frames.append(
            pd.DataFrame(
                {
                    "step": steps["step"].to_numpy(),
                    "epoch": steps["epoch"].to_numpy() if "epoch" in steps else 1,
                    "series": label,
                    "value": values.to_numpy(),
                    "smoothed": values.rolling(smooth, min_periods=1).mean().to_numpy(),
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=["step", "epoch", "series", "value", "smoothed"])
    return pd.concat(frames, ignore_index=True)


def epoch_boundaries(steps: pd.DataFrame) -> list[int]:
    """The last step of every epoch but the final one (where a chart draws a divider)."""
    if steps.empty or "epoch" not in steps:
        return []
    last = steps.groupby("epoch")["step"].max().sort_index()
    return [int(s) for s in last.iloc[:-1]]


def epoch_table(kind: str | None, metrics: Mapping[str, Any], steps: pd.DataFrame) -> pd.DataFrame:
    """One row per epoch: its last step, mean training loss, and the evaluation logged after it.

    Phase 1 evaluates retrieval after every epoch (its starting encoder is
    epoch 0); phase 2 logs the adapter's held-out macro-F1 and accuracy; phase
    3 evaluates only at the end, so its rows carry the training loss alone.
    """
    rows: dict[int, dict[str, Any]] = {}
    if kind == "phase1" and metrics.get("before"):
        rows[0] = {"epoch": 0, "step": 0, **_numbers(metrics["before"])}
    for e in metrics.get("epochs") or []:
        if isinstance(e, Mapping) and "epoch" in e:
            rows[int(e["epoch"])] = {"epoch": int(e["epoch"]), **_numbers(e)}
    if not steps.empty and "loss" in steps and "epoch" in steps:
        by_epoch = steps.groupby("epoch").agg(step=("step", "max"), train_loss=("loss", "mean"))
        for epoch, r in by_epoch.iterrows():
            row = rows.setdefault(int(epoch), {"epoch": int(epoch)})
            row.setdefault("step", int(r["step"]))
            row["train loss (mean)"] = float(r["train_loss"])
    if not rows:
        return pd.DataFrame(columns=["epoch", "step"])
    df = pd.DataFrame([rows[e] for e in sorted(rows)])
    first = [c for c in ("epoch", "step", "train loss (mean)") if c in df.columns]
    return df[first + [c for c in df.columns if c not in first]]


def hard_negative_note(metrics: Mapping[str, Any]) -> str | None:
    """A sentence on the phase-3 queries that had no hard negative to sample, or None when every query had one."""
    cov = (metrics.get("train") or {}).get("without_hard_negative") or {}
    empty, zero = int(cov.get("no_candidates", 0)), int(cov.get("zero_weight", 0))
    if not empty + zero:
        return None
    sampler = (metrics.get("train") or {}).get("sampler", "")
    parts = [f"{zero} because {zero_weight_reason(sampler)}"] if zero else []
    if empty:
        parts.append(f"{empty} with no candidates left once their positives were removed")
    return (
        f"In the last candidate pool, {empty + zero} of {cov.get('queries', '?')} training queries "
        "had no hard negative to sample "
        f"({'; '.join(parts)}). They trained on in-batch negatives only."
    )


def _numbers(d: Mapping[str, Any]) -> dict[str, float]:
    return {k: v for k, v in d.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


# --------------------------------------------------------------- gradient analysis
def sibling_runs(run_id: str, candidates: Iterable[str]) -> list[str]:
    """Runs sharing ``run_id``'s prefix up to its last ``-`` (a benchmark seed's runs), ``run_id`` first.

    ``bench-x-s0-phase3-rrra`` has siblings ``bench-x-s0-phase3-uniform``,
    ``…-simans``, ``…-margin``: the samplers one benchmark seed trained from
    the same encoder and adapter, which is the comparison the paper makes.
    """
    if "-" not in run_id:
        return [run_id]
    prefix = run_id.rsplit("-", 1)[0] + "-"
    others = sorted(c for c in candidates if c != run_id and c.startswith(prefix))
    return [run_id, *others]


def series_labels(samplers: Mapping[str, str]) -> dict[str, str]:
    """A legend label per run (``{run id: sampler}`` in): the sampler, plus the run id where samplers repeat."""
    counts: dict[str, int] = {}
    for s in samplers.values():
        counts[s] = counts.get(s, 0) + 1
    return {run: (s if counts[s] == 1 else f"{s} · {run}") for run, s in samplers.items()}


def gradient_frame(
    frames: Mapping[str, pd.DataFrame], kinds: Sequence[str] = ("hard",), scale: Mapping[str, float] | None = None
) -> pd.DataFrame:
    """Stack gradient logs ``{series label: gradients frame}`` into ``series, step, epoch, category, grad``.

    ``kinds`` keeps hard and/or random negatives (the paper's figure is about
    the sampled hard negatives). ``scale`` multiplies a series' ``grad``: pass
    each run's ``τ`` to read ``p_j`` (the softmax share) instead of ``p_j/τ``,
    which makes runs with different temperatures comparable.
    """
    parts = []
    for label, df in frames.items():
        sub = df[df["kind"].isin(list(kinds))] if "kind" in df else df
        grad = sub["grad"].to_numpy(dtype=np.float64) * float((scale or {}).get(label, 1.0))
        parts.append(
            pd.DataFrame(
                {
                    "series": label,
                    "step": sub["step"].to_numpy(),
                    "epoch": sub["epoch"].to_numpy(),
                    "category": sub["category"].astype(str).to_numpy(),
                    "grad": grad,
                }
            )
        )
    if not parts:
        return pd.DataFrame(
            {
                "series": pd.Series(dtype=str),
                "step": pd.Series(dtype=int),
                "epoch": pd.Series(dtype=int),
                "category": pd.Series(dtype=str),
                "grad": pd.Series(dtype=float),
            }
        )
    return pd.concat(parts, ignore_index=True)


def _category_order(categories: Iterable[str]) -> list[str]:
    present = list(dict.fromkeys(categories))
    return [c for c in CATEGORY_LABELS if c in present] + sorted(c for c in present if c not in CATEGORY_LABELS)


def _box_stats(values: np.ndarray) -> dict[str, float]:
    """Quartiles and Tukey whiskers (the most extreme values within 1.5 IQR of the box)."""
    q1, med, q3 = np.quantile(values, [0.25, 0.5, 0.75])
    iqr = q3 - q1
    inside = values[(values >= q1 - 1.5 * iqr) & (values <= q3 + 1.5 * iqr)]
    return {
        "mean": float(values.mean()),
        "median": float(med),
        "q1": float(q1),
        "q3": float(q3),
        "p90": float(np.quantile(values, 0.9)),
        "lowerfence": float(inside.min()),
        "upperfence": float(inside.max()),
        "max": float(values.max()),
    }


def gradient_distribution(grads: pd.DataFrame, with_all: bool = True) -> pd.DataFrame:
    """Per series and negative category: count, share of the series' negatives, mean, quartiles, p90, whiskers.

    Summaries rather than raw points, so a chart of a long run stays small.
    ``with_all`` adds an ``all`` category per series (every negative pooled),
    the number the paper quotes per sampler.
    """
    cols = [
        "series",
        "category",
        "count",
        "share",
        "mean",
        "median",
        "q1",
        "q3",
        "p90",
        "lowerfence",
        "upperfence",
        "max",
    ]
    rows = []
    for series, g in grads.groupby("series", sort=False):
        total = len(g)
        groups = [(c, g[g["category"] == c]) for c in _category_order(g["category"])]
        if with_all:
            groups.append((ALL_CATEGORIES, g))
        for cat, sub in groups:
            if sub.empty:
                continue
            rows.append(
                {
                    "series": series,
                    "category": cat,
                    "count": int(len(sub)),
                    "share": len(sub) / total,
                    **_box_stats(sub["grad"].to_numpy(dtype=np.float64)),
                }
            )
    return pd.DataFrame(rows, columns=cols)


def gradient_over_training(grads: pd.DataFrame, buckets: int = 20) -> pd.DataFrame:
    """Per series, category and step bucket: the steps covered, count, mean, median and quartiles.

    Buckets split ``[1, last step]`` into ``buckets`` equal spans (one per step
    when a run is shorter), shared by every series so samplers line up.
    """
    cols = ["series", "category", "bucket", "step_lo", "step_hi", "step_mid", "count", "mean", "median", "q1", "q3"]
    if buckets < 1:
        raise ConfigError(f"need at least one step bucket, got {buckets}")
    if grads.empty:
        return pd.DataFrame(columns=cols)
    last = int(grads["step"].max())
    n = min(buckets, last)
    edges = np.linspace(0, last, n + 1)
    # Step s (1-based) lies in bucket b when edges[b] < s <= edges[b + 1].
    bucket = np.clip(np.searchsorted(edges, grads["step"].to_numpy(), side="left") - 1, 0, n - 1)
    df = grads.assign(bucket=bucket)
    rows = []
    for (series, cat, b), g in df.groupby(["series", "category", "bucket"], sort=False):
        v = g["grad"].to_numpy(dtype=np.float64)
        lo, hi = int(np.floor(edges[b])) + 1, int(np.floor(edges[b + 1]))
        q1, med, q3 = np.quantile(v, [0.25, 0.5, 0.75])
        rows.append(
            {
                "series": series,
                "category": cat,
                "bucket": int(b),
                "step_lo": lo,
                "step_hi": hi,
                "step_mid": (lo + hi) / 2,
                "count": int(v.size),
                "mean": float(v.mean()),
                "median": float(med),
                "q1": float(q1),
                "q3": float(q3),
            }
        )
    out = pd.DataFrame(rows, columns=cols)
    order = {c: i for i, c in enumerate(_category_order(out["category"]))}
    return out.sort_values(
        ["series", "category", "bucket"], key=lambda s: s.map(order) if s.name == "category" else s, kind="stable"
    ).reset_index(drop=True)
