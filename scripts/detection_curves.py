"""Recompute false-negative detection, with ROC and PR curve points, from a finished benchmark's run folders.

Benchmarks written before the results carried curve points keep every phase-2
run folder (``predictions.parquet``). The planted false negatives are rebuilt
from the results file's config and seed (``experiments.seed_truth``), so no
training is repeated: seconds instead of hours. The recomputed AUROC, AP, P@50
and P@100 are checked against the source file; a mismatch stops the command.

Example:
    python scripts/detection_curves.py results/rrra_cranfield.json --out results/rrra_cranfield_detection_curves
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CHECKED = ("AUROC", "AP", "P@50", "P@100", "candidates", "false_negatives")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("result", help="benchmark result JSON file (scripts/benchmark.py)")
    p.add_argument("--out", required=True, help="results file stem (writes <stem>.json and <stem>.md)")
    p.add_argument(
        "--tolerance", type=float, default=1e-9, help="largest allowed |recomputed - source| of any checked metric"
    )
    return p


def recompute_seed(cfg: Any, seed: dict[str, Any], source: str) -> dict[str, Any]:
    """Detection metrics and curves of one seed from its phase-2 run folders."""
    import pandas as pd

    from rrra_core.runtime.errors import DataError
    from rrra_core.runtime.run_config import read_run_config
    from rrra_core.runtime.runs import open_run
    from rrra_core.workflows.benchmark import seed_truth, variant_detection

    # Files from keyed benchmarks name every phase-2 run; older ones name phase 1, and phase 2 sits beside it.
    phase2_ids = (seed.get("runs") or {}).get("phase2") or {}
    phase1 = (seed.get("runs") or {}).get("phase1")
    if not phase2_ids and (not phase1 or not phase1.endswith("-phase1")):
        raise DataError(source, f"seed {seed.get('seed')}: no phase-1 run id to find its phase-2 runs by")
    tag = (phase1 or "")[: -len("-phase1")]
    _, _, truth = seed_truth(cfg, seed["seed"])
    planted = sum(len(v) for v in truth.values())
    if planted != seed.get("planted"):
        raise DataError(
            source,
            f"seed {seed['seed']}: rebuilt {planted} planted false negatives, the file says {seed.get('planted')}",
        )
    detection: dict[str, Any] = {}
    curves: dict[str, Any] = {}
    runs: dict[str, str] = {}
    for variant in dict.fromkeys(("full", *cfg.variants)):
        run = open_run(phase2_ids.get(variant) or f"{tag}-phase2-{variant.replace(' ', '_')}")
        scheme = (read_run_config(run).phase.get("labels") or {}).get("scheme", cfg.label_scheme)
        det, cur, _ = variant_detection(pd.read_parquet(run.file("predictions.parquet")), truth, variant, scheme)
        detection.update(det)
        curves.update(cur)
        runs[variant] = run.id
    return {"seed": seed["seed"], "planted": planted, "runs": runs, "detection": detection, "detection_curves": curves}


def compare(source: list[dict[str, Any]], redone: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (seed, score, metric): the source's value, the recomputed one and their difference."""
    rows = []
    for old, new in zip(source, redone):
        for score, vals in new["detection"].items():
            for metric in CHECKED:
                a, b = old["detection"].get(score, {}).get(metric), vals.get(metric)
                diff = float("nan") if a is None or b is None else abs(float(a) - float(b))
                rows.append(
                    {
                        "seed": new["seed"],
                        "score": score,
                        "metric": metric,
                        "source": a,
                        "recomputed": b,
                        "abs_diff": diff,
                    }
                )
    return rows


def main(argv: list[str] | None = None) -> int:
    from rrra_core.runtime.cli import setup_logging
    from rrra_core.runtime.config import config_from_dict
    from rrra_core.runtime.errors import DataError
    from rrra_core.runtime.runs import cpu_model, write_json_atomic
    from rrra_core.workflows.benchmark import BenchmarkConfig, aggregate

    args = build_parser().parse_args(argv)
    setup_logging()
    t0 = time.perf_counter()
    try:
        src = json.loads(Path(args.result).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(args.result, f"cannot read result file ({err})") from None
    if not isinstance(src, dict) or "config" not in src or "seeds" not in src:
        raise DataError(args.result, "not a benchmark result file (no 'config' or 'seeds')")
    cfg = config_from_dict(BenchmarkConfig, src["config"], source=args.result)
    seeds = [recompute_seed(cfg, s, args.result) for s in src["seeds"]]
    check = compare(src["seeds"], seeds)
    worst = max((r["abs_diff"] for r in check if not math.isnan(r["abs_diff"])), default=float("nan"))
    missing = [f"seed {r['seed']} {r['score']} {r['metric']}" for r in check if math.isnan(r["abs_diff"])]
    raw = argv if argv is not None else sys.argv[1:]
    result = {
        "command": "python scripts/detection_curves.py " + shlex.join(raw),
        "source": {"file": args.result, "command": src.get("command")},
        "machine": {"cpu": cpu_model(), "cpu_count": os.cpu_count()},
        "config": src["config"],
        "seeds": seeds,
        "summary": aggregate(seeds),
        "check": {
            "max_abs_diff": worst,
            "tolerance": args.tolerance,
            "unmatched": missing,
            "matches": not missing and worst <= args.tolerance,
            "rows": check,
        },
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }
    stem = Path(args.out)
    stem.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(stem.with_suffix(".json"), result)
    stem.with_suffix(".md").write_text(render_markdown(result), encoding="utf-8")
    print(stem.with_suffix(".md").read_text(encoding="utf-8"))
    if not result["check"]["matches"]:
        raise DataError(
            args.result,
            f"recomputed detection differs from the file (max |diff| {worst:.3g}; unmatched: {len(missing)})",
        )
    return 0


def _fmt(cell: dict[str, Any] | None) -> str:
    if not cell or not cell.get("n"):
        return "–"
    return f"{cell['mean']:.3f} ± {cell['std']:.3f}" if cell["n"] > 1 else f"{cell['mean']:.3f}"


def _cell(text: str) -> str:
    # "P(FN|neg)" would otherwise split a Markdown table cell in two.
    return text.replace("|", "\\|")


def render_markdown(r: dict[str, Any]) -> str:
    cfg, chk = r["config"], r["check"]
    m = r["machine"]
    from rrra_core.negatives.fn_detection import MAX_CURVE_POINTS

    lines = [
        f"# False-negative detection curves: {cfg['dataset']}",
        "",
        f"Command: `{r['command']}`",
        "",
        f"Source: `{r['source']['file']}`, written by `{r['source']['command']}`.",
        "",
        f"Machine: {m['cpu']}, {m['cpu_count']} CPUs. Wall time {r['wall_seconds']:.1f} s "
        "(reading and scoring; Python start-up not counted). No model was trained or run:"
        " the planted false negatives were rebuilt from the source's config and seed, and each phase-2 run's"
        " `predictions.parquet` was scored again.",
        "",
        "## Check against the source file",
        "",
        (
            "The recomputed AUROC, AP, P@50, P@100 and candidate counts match the source file for every seed and score"
            if chk["matches"]
            else "**The recomputation does NOT match the source file**"
        )
        + (
            f" (largest |difference| {chk['max_abs_diff']:.2g}, {len(chk['rows'])} values compared, "
            f"tolerance {chk['tolerance']:g})."
        ),
        "",
        "| seed | score | AUROC (source) | AUROC (recomputed) | AP (source) | AP (recomputed) |",
        "|---|---|---|---|---|---|",
    ]
    by = {(row["seed"], row["score"], row["metric"]): row for row in chk["rows"]}
    for s in r["seeds"]:
        for score in s["detection"]:
            au, ap = by[(s["seed"], score, "AUROC")], by[(s["seed"], score, "AP")]
            num = lambda v: "–" if v is None else f"{v:.6f}"  # noqa: E731
            cells = [num(au["source"]), num(au["recomputed"]), num(ap["source"]), num(ap["recomputed"])]
            lines.append(f"| {s['seed']} | {_cell(score)} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Detection (mean ± std over seeds)",
        "",
        "| score | AUROC | AP | P@50 | P@100 |",
        "|---|---|---|---|---|",
    ]
    for score, vals in r["summary"]["detection"].items():
        cells = [_fmt(vals.get(metric)) for metric in ("AUROC", "AP", "P@50", "P@100")]
        lines.append(f"| {_cell(score)} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"The JSON file holds the ROC (fpr, tpr) and precision-recall points of every score and seed,"
        f" thinned evenly along each curve's length to at most {MAX_CURVE_POINTS} points; the app's"
        " *Ablations & baselines* page draws them.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    from rrra_core.runtime.cli import run_main

    sys.exit(run_main(main))
