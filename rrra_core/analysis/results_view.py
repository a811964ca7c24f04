"""Benchmark result files as tidy tables: what the app's *Ablations & baselines* page draws.

``scripts/benchmark.py`` and ``scripts/detection_curves.py`` write
``results/<name>.json``, each headed by the command that made it. These
functions only read those files and reshape them into pandas frames (one row
per method and metric, per ablation, per detection score, per curve point, per
human-in-the-loop step), so the page never re-derives a number and always shows
what the command produced. A malformed file raises a one-line ``DataError``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from rrra_core.runtime.errors import DataError
from rrra_core.runtime.paths import REPO_ROOT

__all__ = [
    "RESULTS_ENV",
    "results_dir",
    "list_result_files",
    "load_result",
    "result_kind",
    "header",
    "method_table",
    "wide_table",
    "ablation_table",
    "detection_table",
    "curve_points",
    "curves_source",
    "hitl_points",
]

#: Environment variable that points the app at another results folder (the tests use a temporary one).
RESULTS_ENV = "RRRA_RESULTS"

BASELINES = ("BM25", "zero-shot", "phase 1 (in-batch)", "uniform top-K", "SimANS", "margin filter")
ABLATION_PREFIX = "ablation: "
ABLATION_SUFFIX = " (phase 1 + rerank)"
CURVE_AXES = {"ROC": ("fpr", "tpr"), "PR": ("recall", "precision")}


def results_dir() -> Path:
    """The folder of result files: ``$RRRA_RESULTS`` or the checkout's ``results/``.

    Not under RRRA_HOME: results are versioned.
    """
    return Path(os.environ.get(RESULTS_ENV) or REPO_ROOT / "results").expanduser().resolve()


def result_kind(data: Any) -> str | None:
    """``"benchmark"``, ``"detection curves"`` or None for any other JSON (e.g. a rerank sweep)."""
    if not isinstance(data, dict) or not isinstance(data.get("seeds"), list) or "summary" not in data:
        return None
    return "detection curves" if "check" in data and "source" in data else "benchmark"


def list_result_files(folder: str | Path) -> list[Path]:
    """Result files under ``folder`` (sub-folders too), top level first.

    Files that are valid JSON of another kind (a rerank sweep, the core
    benchmark) are left out; unreadable ones stay listed, so choosing one shows
    why it cannot be drawn instead of hiding it.
    """
    root = Path(folder)
    if not root.is_dir():
        return []
    out = []
    for path in sorted(root.rglob("*.json"), key=lambda p: (len(p.relative_to(root).parts), str(p.relative_to(root)))):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            out.append(path)
            continue
        if result_kind(data) is not None:
            out.append(path)
    return out


def _read_json(p: Path) -> Any:
    """A result file's JSON; an unreadable or invalid file is a one-line ``DataError``."""
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except OSError as err:
        raise DataError(p, f"cannot read ({err.strerror or err})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(p, f"not valid JSON ({err})") from None


def load_result(path: str | Path) -> dict[str, Any]:
    """Read one result file and check the parts every table relies on; raises ``DataError`` with the reason."""
    p = Path(path)
    data = _read_json(p)
    kind = result_kind(data)
    if kind is None:
        raise DataError(p, "not a benchmark result file (needs 'seeds' and 'summary'; written by scripts/benchmark.py)")
    if not isinstance(data.get("summary"), dict) or not all(isinstance(s, dict) for s in data["seeds"]):
        raise DataError(p, "'summary' must be an object and 'seeds' a list of objects")
    for section in ("methods", "detection", "adapter_f1"):
        table = data["summary"].get(section, {})
        if not isinstance(table, dict):
            raise DataError(p, f"summary.{section} must be an object")
        for name, cells in table.items():
            if not isinstance(cells, dict):
                raise DataError(p, f"summary.{section}[{name!r}] must be an object of metrics")
            for metric, cell in cells.items():
                if not (isinstance(cell, dict) and "mean" in cell and "std" in cell):
                    raise DataError(p, f"summary.{section}[{name!r}][{metric!r}] must hold 'mean' and 'std'")
    data["_path"] = str(p)
    data["_kind"] = kind
    return data


def header(result: dict[str, Any]) -> dict[str, Any]:
    """The command that wrote the file, the machine in words, wall time, seeds and (for a recomputation) its source."""
    m = result.get("machine") or {}
    parts = [str(m["cpu"])] if m.get("cpu") else []
    if m.get("cpu_count"):
        parts.append(f"{m['cpu_count']} CPUs")
    if m.get("torch_threads"):
        parts.append(f"{m['torch_threads']} torch thread(s) per process")
    if result.get("parallel_processes"):
        parts.append(f"{result['parallel_processes']} parallel processes")
    source = result.get("source") if isinstance(result.get("source"), dict) else None
    check = result.get("check") if isinstance(result.get("check"), dict) else None
    return {
        "command": str(result.get("command") or "(no command recorded)"),
        "machine": ", ".join(parts) or "(not recorded)",
        "wall_seconds": result.get("wall_seconds"),
        "seeds": [s.get("seed") for s in result["seeds"]],
        "dataset": (result.get("config") or {}).get("dataset"),
        "kind": result.get("_kind", result_kind(result)),
        "source_command": source.get("command") if source else None,
        "matches_source": check.get("matches") if check else None,
    }


def _group(method: str) -> str:
    if method.startswith(ABLATION_PREFIX):
        return "ablation"
    if method in BASELINES:
        return "baseline"
    return "RRRA" if method.startswith("RRRA") else "other"


def _cells(table: dict[str, Any], id_name: str) -> pd.DataFrame:
    rows = []
    for name, cells in table.items():
        for metric, cell in cells.items():
            n = int(cell.get("n", 0) or 0)
            # One seed has no spread: NaN, not the 0.0 the file stores,
            # so no chart draws a zero error bar as if measured.
            rows.append(
                {
                    id_name: name,
                    "metric": metric,
                    "mean": _num(cell.get("mean")),
                    "std": _num(cell.get("std")) if n > 1 else math.nan,
                    "n": n,
                }
            )
    return pd.DataFrame(rows, columns=[id_name, "metric", "mean", "std", "n"])


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def method_table(result: dict[str, Any]) -> pd.DataFrame:
    """One row per (method, metric): mean, std, n seeds, and the method's group (baseline, RRRA, ablation)."""
    df = _cells(result["summary"].get("methods", {}), "method")
    df.insert(1, "group", df["method"].map(_group))
    return df


def wide_table(long: pd.DataFrame, id_name: str) -> pd.DataFrame:
    """The results table as people read it: one row per ``id_name``.

    A mean and a std column per metric, file order kept.
    """
    if long.empty:
        return pd.DataFrame(columns=[id_name])
    order = list(dict.fromkeys(long[id_name]))
    metrics = list(dict.fromkeys(long["metric"]))
    mean = long.pivot(index=id_name, columns="metric", values="mean")
    std = long.pivot(index=id_name, columns="metric", values="std")
    out = pd.DataFrame(index=order)
    for m in metrics:
        out[m] = mean[m]
        out[f"{m} std"] = std[m]
    return out.rename_axis(id_name).reset_index()


def _variant(score: str) -> str | None:
    """``"adapter P(FN|neg) (no ratio)"`` → ``"no ratio"``; None for a heuristic score."""
    if score.startswith("adapter ") and score.endswith(")") and " (" in score:
        return score[score.rindex(" (") + 2 : -1]
    return None


def ablation_table(result: dict[str, Any]) -> pd.DataFrame:
    """One row per (adapter variant, measure): detection AUROC/AP, four-class F1 and test retrieval after reranking.

    ``full`` is the unablated adapter ("RRRA reranking only" on the phase-1
    encoder); every other variant changes one design decision.
    """
    s = result["summary"]
    frames = []
    det = _cells(s.get("detection", {}), "score")
    det = det[det["metric"].isin(("AUROC", "AP", "P@100"))].assign(variant=lambda d: d["score"].map(_variant))
    det = det.dropna(subset=["variant"]).assign(measure=lambda d: "detection " + d["metric"])
    frames.append(det)
    f1 = _cells(s.get("adapter_f1", {}), "variant").assign(
        measure=lambda d: d["metric"].str.replace("macro_f1", "F1 macro", regex=False)
    )
    frames.append(f1)
    methods = _cells(s.get("methods", {}), "method")
    rerank = methods[
        methods["method"].str.startswith(ABLATION_PREFIX) | (methods["method"] == "RRRA reranking only")
    ].copy()
    rerank["variant"] = rerank["method"].map(
        lambda m: "full" if m == "RRRA reranking only" else m[len(ABLATION_PREFIX) :].removesuffix(ABLATION_SUFFIX)
    )
    rerank["measure"] = rerank["metric"] + " (rerank)"
    frames.append(rerank)
    cols = ["variant", "measure", "mean", "std", "n"]
    out = (
        pd.concat([f[cols] for f in frames if not f.empty], ignore_index=True)
        if any(not f.empty for f in frames)
        else pd.DataFrame(columns=cols)
    )
    # Only variants that were actually ablated: a file with just "full" has no ablation to show.
    return out if out["variant"].nunique() > 1 else pd.DataFrame(columns=cols)


def detection_table(result: dict[str, Any]) -> pd.DataFrame:
    """One row per (suspicion score, metric): AUROC, AP, P@50, P@100 and counts, mean ± std over seeds."""
    df = _cells(result["summary"].get("detection", {}), "score")
    # Without a false-negative truth (nothing hidden) AUROC is NaN with n = 0 on every seed:
    # nothing to show for that score.
    scored = set(df.loc[(df["metric"] == "AUROC") & (df["n"] > 0), "score"])
    df = df[df["score"].isin(scored)].reset_index(drop=True)
    df.insert(1, "kind", df["score"].map(lambda s: "adapter" if _variant(s) else "heuristic"))
    return df


def curve_points(result: dict[str, Any]) -> pd.DataFrame:
    """One row per curve point: seed, score, curve (ROC or PR), x, y; plus each seed's prevalence (the PR baseline)."""
    path = result.get("_path", "result file")
    rows = []
    for s in result["seeds"]:
        curves = s.get("detection_curves") or {}
        if not isinstance(curves, dict):
            raise DataError(path, f"seed {s.get('seed')}: detection_curves must be an object")
        for score, c in curves.items():
            for curve, (xk, yk) in CURVE_AXES.items():
                pts = (c or {}).get(curve.lower()) if isinstance(c, dict) else None
                if (
                    not isinstance(pts, dict)
                    or not isinstance(pts.get(xk), list)
                    or not isinstance(pts.get(yk), list)
                    or len(pts[xk]) != len(pts[yk])
                ):
                    raise DataError(
                        path,
                        f"seed {s.get('seed')}, {score!r}: {curve} curve needs equal-length {xk!r} and {yk!r} lists",
                    )
                prevalence = _num(c.get("prevalence"))
                rows += [
                    {
                        "seed": s.get("seed"),
                        "score": score,
                        "curve": curve,
                        "x": _num(x),
                        "y": _num(y),
                        "prevalence": prevalence,
                    }
                    for x, y in zip(pts[xk], pts[yk])
                ]
    return pd.DataFrame(rows, columns=["seed", "score", "curve", "x", "y", "prevalence"])


def curves_source(path: str | Path, result: dict[str, Any]) -> Path | None:
    """Where a benchmark file's curve points are: itself, or ``<stem>_detection_curves.json`` recomputed from its runs.

    Benchmarks run before the curves were stored keep them in that companion
    file (``scripts/detection_curves.py``); None when neither has any.
    """
    if any(s.get("detection_curves") for s in result["seeds"]):
        return Path(path)
    companion = Path(path).with_name(Path(path).stem + "_detection_curves.json")
    return companion if companion.is_file() else None


def hitl_points(result: dict[str, Any]) -> pd.DataFrame:
    """The human-in-the-loop curve: one row per (seed, N reviewed).

    Each row has the false negatives found and the test metrics after retraining.
    """
    path = result.get("_path", "result file")
    rows = []
    for s in result["seeds"]:
        for row in s.get("hitl") or []:
            if not isinstance(row, dict) or "N" not in row:
                raise DataError(path, f"seed {s.get('seed')}: each hitl entry needs 'N'")
            rows.append(
                {"seed": s.get("seed"), **{k: (int(v) if k in ("N", "found") else _num(v)) for k, v in row.items()}}
            )
    df = pd.DataFrame(rows)
    return (
        df.sort_values(["seed", "N"], kind="stable").reset_index(drop=True)
        if not df.empty
        else pd.DataFrame(columns=["seed", "N", "found"])
    )


# --------------------------------------------------------------- the human-in-the-loop benchmark
#: What every point of a ``hitl_*.json`` file holds (``scripts/bench_hitl.py``).
HITL_METRICS = ("nDCG@10", "R@1", "R@10", "R@100")


def list_hitl_files(folder: str | Path) -> list[Path]:
    """The human-in-the-loop result files (``hitl_*.json``) at the top of ``folder``."""
    root = Path(folder)
    return sorted(root.glob("hitl_*.json")) if root.is_dir() else []


def load_hitl(path: str | Path) -> dict[str, Any]:
    """Read a ``hitl_*.json`` and check what the curve needs; raises ``DataError`` with the reason."""
    p = Path(path)
    data = _read_json(p)
    summary = data.get("summary") if isinstance(data, dict) else None
    points = (data.get("result") or {}).get("points") if isinstance(data, dict) else None
    if not isinstance(summary, dict) or "recovered_at" not in summary or not isinstance(points, dict):
        raise DataError(p, "not a human-in-the-loop result (needs 'summary.recovered_at' and 'result.points')")
    for name, point in points.items():
        for metric in HITL_METRICS:
            cell = point.get(metric) if isinstance(point, dict) else None
            if not (isinstance(cell, dict) and "mean" in cell and "std" in cell):
                raise DataError(p, f"point {name!r}: {metric!r} must hold 'mean' and 'std'")
    data["_path"] = str(p)
    return data


def hitl_curve(result: dict[str, Any]) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """``(curve, bounds)``: one row per (order, N) with each metric's mean and std over seeds, and the
    lower/upper bound points (``{"lower": {metric: {"mean", "std"}}, "upper": ...}``)."""
    points = result["result"]["points"]
    recovered = result["result"].get("recovered") or {}
    rows, bounds = [], {}
    for name, p in points.items():
        if name in ("lower", "upper"):
            bounds[name] = p
            continue
        row = {"order": p.get("order"), "N": int(p["N"]), "found": _num((p.get("found") or {}).get("mean"))}
        for metric in HITL_METRICS:
            row[metric], row[f"{metric} std"] = _num(p[metric]["mean"]), _num(p[metric]["std"])
            row["seeds"] = int(p[metric].get("n", 0))
        row["recovered"] = _num((recovered.get(p.get("order")) or {}).get(str(p["N"])))
        rows.append(row)
    cols = ["order", "N", "found", *[c for m in HITL_METRICS for c in (m, f"{m} std")], "seeds", "recovered"]
    df = pd.DataFrame(rows, columns=cols)
    return df.sort_values(["order", "N"], kind="stable").reset_index(drop=True), bounds


# ----------------------------------------------------------------- the fair comparison (fair_*.json)
def list_fair_files(folder: str | Path) -> list[Path]:
    """The fair-comparison result files (``fair_*.json``, ``scripts/benchmark.py --preset fair-…``) in ``folder``."""
    root = Path(folder)
    return sorted(root.glob("fair_*.json")) if root.is_dir() else []


def load_fair(path: str | Path) -> dict[str, Any]:
    """Read a ``fair_*.json`` and check what its tables need; raises ``DataError`` with the reason."""
    p = Path(path)
    data = _read_json(p)
    if not isinstance(data, dict) or not isinstance(data.get("methods"), dict) or "tuning" not in data:
        raise DataError(
            p, "not a fair-comparison result (needs 'methods' and 'tuning'; see benchmark.py --preset fair-…)"
        )
    for name, cells in data["methods"].items():
        for metric, cell in (cells or {}).items():
            if not (isinstance(cell, dict) and "mean" in cell and "std" in cell):
                raise DataError(p, f"methods[{name!r}][{metric!r}] must hold 'mean' and 'std'")
    data["_path"] = str(p)
    return data


def tuning_seed_full_rerank(result: Mapping[str, Any]) -> str | None:
    """The tuning seed's own full-RRRA rerank (a trial key or ``off``), as the per-run rule chose it on its dev
    split; None when the result predates per-seed choices (its ``tuning.chosen.full_rerank`` is the key then)."""
    seed = (result.get("tuning") or {}).get("seed")
    return next((c["choice"] for c in result.get("full_rerank_choices") or [] if c.get("seed") == seed), None)


def fair_tables(result: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """``{"methods", "tests", "tuning"}``: the test table (mean, std, n per metric), the paired tests against the
    best baseline, and every dev trial with the one chosen."""
    methods = wide_table(_cells(result["methods"], "method"), "method")
    tests = pd.DataFrame(
        result.get("tests") or [],
        columns=["treatment", "control", "metric", "delta", "p_t", "p_fisher", "queries", "seeds"],
    ).rename(columns={"p_t": "p (paired t)", "p_fisher": "p (Fisher randomization)"})
    chosen = {**((result.get("tuning") or {}).get("chosen") or {})}
    if (own := tuning_seed_full_rerank(result)) is not None:
        chosen["full_rerank"] = own
    rows = [
        {
            "method": method,
            "trial": str(int(key) + 1) if str(key).isdigit() else str(key),
            "settings": (
                "no reranking (λ_RR = 0)"
                if "lambda_rr" in (t.get("settings") or {}) and not t["settings"]["lambda_rr"]
                else ", ".join(f"{k}={v}" for k, v in (t.get("settings") or {}).items())
            ),
            "dev nDCG@10": _num((t.get("dev") or {}).get("nDCG@10")),
            "dev R@1": _num((t.get("dev") or {}).get("R@1")),
            "chosen": chosen.get(method) == key,
        }
        for method, trials in ((result.get("tuning") or {}).get("trials") or {}).items()
        for key, t in trials.items()
    ]
    tuning = pd.DataFrame(rows, columns=["method", "trial", "settings", "dev nDCG@10", "dev R@1", "chosen"])
    return {"methods": methods, "tests": tests, "tuning": tuning}


def target_verdict(result: Mapping[str, Any]) -> str:
    """One sentence: does full RRRA beat the best tuned baseline here, and is it significant?"""
    lines = []
    for key in ("summary", "summary_ar1"):
        s = result.get(key)
        if not s:
            continue
        # Equal at the 4 decimals shown is a tie, not "does NOT beat … by +0.0000"; a loss is a loss.
        sign = "ties" if abs(s["delta"]) < 5e-5 else ("beats" if s["delta"] > 0 else "trails")
        p = s["p_value"]
        if p is None:
            sig = "no test (too few queries)"
        elif p >= 0.05:
            sig = f"not significant (p = {p:.3g})"
        else:
            sig = f"significant (p = {p:.3g})" if s["delta"] > 0 else f"RRRA is significantly worse (p = {p:.3g})"
        lines.append(
            f"On {s['metric']}, full RRRA {sign} the best baseline ({s['best_baseline']}) by "
            f"{s['delta']:+.4f} ({s['rrra']:.4f} vs {s['best_baseline_value']:.4f}, {s['seeds']} seed(s)); {sig}."
        )
    ref = result.get("summary_reference")
    if ref:
        where = "above" if ref["delta"] > 0 else "below"
        lines.append(
            f"Against the strongest untuned reference ({ref['best_baseline']}, {ref['best_baseline_value']:.4f}) "
            f"full RRRA is {where} by {abs(ref['delta']):.4f} on nDCG@10"
            + (f" (p = {ref['p_value']:.3g})." if ref["p_value"] is not None else ".")
        )
    choices = result.get("full_rerank_choices") or []
    if ((result.get("tuning") or {}).get("chosen") or {}).get("full_rerank") == "off" or (
        choices and all(c.get("choice") == "off" for c in choices)
    ):
        lines.append(
            "Dev chose no reranking for full RRRA (no rerank setting beat the retriever's own order on dev), "
            "so full RRRA is its resampled encoder and equals resampling only."
        )
    return " ".join(lines) or "No full-RRRA result yet."
