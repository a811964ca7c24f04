"""RRRA benchmark: baselines, full RRRA and ablations, with false-negative detection and the human-in-the-loop curve.

Presets (flags override any field):
    cranfield  planted false negatives (30% of each training query's positives hidden), 3 seeds, HITL curve
    scifact    realistic setting: nothing hidden, 1 seed
    squad      the paper's open-QA setting: gold paragraph only; answer-bearing same-article paragraphs are the real FNs
    quick      ADI smoke run (train = test split), a few minutes on 2 cores

Examples:
    python scripts/benchmark.py --preset cranfield
    python scripts/benchmark.py --preset quick --out /tmp/quick
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import shlex
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PRESETS: dict[str, dict] = {
    "cranfield": {
        "dataset": "cranfield",
        "hide_fraction": 0.3,
        "truth": "planted",
        "seeds": (0, 1, 2),
        "hitl": (0, 50, 200),
    },
    "scifact": {
        "dataset": "scifact",
        "hide_fraction": 0.0,
        "truth": "none",
        "seeds": (0,),
        "variants": ("full",),
        "samplers": ("uniform", "simans", "rrra"),
        "max_train_queries": 400,
    },
    "squad": {
        "dataset": "squad",
        "hide_fraction": 0.0,
        "truth": "answers",
        "seeds": (0,),
        "variants": ("full",),
        "samplers": ("uniform", "simans", "rrra"),
        "max_train_queries": 800,
    },
    "quick": {
        "dataset": "adi",
        "train_split": "test",
        "test_split": "test",
        "seeds": (0,),
        "query_max_length": 32,
        "doc_max_length": 64,
        "batch_size": 16,
        "top_k": 30,
        "p2_epochs": 3,
        "hitl": (0, 10),
        "variants": ("full", "no residual", "no L_norm", "no ratio", "no init", "random head", "outcome labels"),
    },
}


def build_parser() -> argparse.ArgumentParser:
    from rrra_core.runtime.config import add_config_arguments
    from rrra_core.workflows.benchmark import BenchmarkConfig

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="cranfield", choices=sorted(PRESETS), help="starting settings")
    p.add_argument("--quick", action="store_true", help="same as --preset quick: a few-minute smoke run on ADI")
    p.add_argument("--out", help="results file stem (default: results/rrra_<preset>)")
    p.add_argument(
        "--merge",
        nargs="+",
        metavar="JSON",
        help="instead of running, combine per-seed result files (e.g. seeds run as parallel processes) into one table",
    )
    add_config_arguments(p, BenchmarkConfig)
    return p


def main(argv: list[str] | None = None) -> int:
    from rrra_core.runtime.cli import setup_logging
    from rrra_core.runtime.config import config_from_args
    from rrra_core.runtime.paths import REPO_ROOT
    from rrra_core.runtime.runs import cpu_model, write_json_atomic
    from rrra_core.workflows.benchmark import BenchmarkConfig, run_benchmark

    args = build_parser().parse_args(argv)
    setup_logging()
    if args.merge:
        return merge(args.merge, args.out, argv if argv is not None else sys.argv[1:])
    if args.quick:
        args.preset = "quick"
    cfg = config_from_args(BenchmarkConfig, args, base=dict(PRESETS[args.preset]))
    stem = Path(args.out) if args.out else REPO_ROOT / "results" / f"rrra_{args.preset}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    raw = argv if argv is not None else sys.argv[1:]
    command = "python scripts/benchmark.py" + (" " + shlex.join(raw) if raw else "")
    tag = f"bench-{args.preset}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    t0 = time.perf_counter()
    import os

    import torch

    header = {
        "command": command,
        "preset": args.preset,
        "machine": {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()},
    }

    def save(result: dict) -> None:
        full = {**header, **result, "wall_seconds": round(time.perf_counter() - t0, 1)}
        write_json_atomic(stem.with_suffix(".json"), full)
        stem.with_suffix(".md").write_text(render_markdown(full), encoding="utf-8")

    result = run_benchmark(cfg, tag, on_seed=save)
    save(result)
    print(stem.with_suffix(".md").read_text(encoding="utf-8"))
    return 0


def merge(paths: list[str], out: str | None, raw_argv: list[str]) -> int:
    """Combine result files of the same benchmark run seed by seed in separate processes."""
    from rrra_core.runtime.errors import DataError
    from rrra_core.runtime.runs import write_json_atomic
    from rrra_core.workflows.benchmark import aggregate

    parts = []
    for p in paths:
        try:
            parts.append(json.loads(Path(p).read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as err:
            raise DataError(p, f"cannot read result file ({err})") from None
    first = parts[0]
    seeds = sorted((s for part in parts for s in part["seeds"]), key=lambda s: s["seed"])
    command = (
        first["command"]
        if len(parts) == 1
        else "python scripts/benchmark.py "
        + shlex.join(raw_argv)
        + "  (merging: "
        + "; ".join(p["command"] for p in parts)
        + ")"
    )
    result = {
        "command": command,
        "preset": first["preset"],
        "machine": first["machine"],
        "config": {**first["config"], "seeds": [s["seed"] for s in seeds]},
        "seeds": seeds,
        "summary": aggregate(seeds),
        "wall_seconds": max(p["wall_seconds"] for p in parts),
        **({"parallel_processes": len(parts)} if len(parts) > 1 else {}),
    }
    stem = Path(out) if out else Path(paths[0]).with_name(f"rrra_{first['preset']}")
    write_json_atomic(stem.with_suffix(".json"), result)
    stem.with_suffix(".md").write_text(render_markdown(result), encoding="utf-8")
    print(render_markdown(result))
    return 0


def _fmt(cell: dict | None, digits: int = 3) -> str:
    if not cell or cell.get("n", 0) == 0 or (isinstance(cell.get("mean"), float) and math.isnan(cell["mean"])):
        return "–"
    if cell["n"] > 1:
        return f"{cell['mean']:.{digits}f} ± {cell['std']:.{digits}f}"
    return f"{cell['mean']:.{digits}f}"


def _cell(text: str) -> str:
    """A Markdown table cell: a literal ``|`` (as in P(FN|neg)) would split the cell."""
    return str(text).replace("|", "\\|")


def render_markdown(r: dict) -> str:
    cfg, summary, seeds = r["config"], r["summary"], r["seeds"]
    m = r["machine"]
    lines = [
        f"# RRRA benchmark: {cfg['dataset']} ({r['preset']})",
        "",
        f"Command: `{r['command']}`",
        "",
        f"Seeds run: {', '.join(str(s['seed']) for s in seeds)} (planned: {', '.join(map(str, cfg['seeds']))}). Machine: {m['cpu']}, {m['cpu_count']} CPUs, {m['torch_threads']} torch thread(s) per process. Wall time {r['wall_seconds'] / 60:.1f} min"
        " (per seed: " + ", ".join(f"{s['seconds'] / 60:.1f}" for s in seeds) + " min).",
        "",
        *(
            [
                f"The seeds ran as {r['parallel_processes']} parallel processes on the same CPUs (torch threads per process: {m['torch_threads']}); wall time is the slowest one's.",
                "",
            ]
            if r.get("parallel_processes")
            else []
        ),
        "Settings: " + ", ".join(f"{k}={v}" for k, v in cfg.items()) + ".",
        "",
        f"Training queries: {seeds[0]['train_queries']}; false negatives in the truth set (seed {seeds[0]['seed']}): {seeds[0]['planted']}.",
        "",
        "## Test retrieval (mean ± std over seeds)",
        "",
    ]
    methods = summary["methods"]
    keys = [
        k
        for k in (
            "R@1",
            "R@5",
            "R@10",
            "R@50",
            "R@100",
            "nDCG@10",
            "RR@10",
            "AnswerRecall@1",
            "AnswerRecall@5",
            "AnswerRecall@20",
            "AnswerRecall@100",
        )
        if any(k in v for v in methods.values())
    ]
    lines += ["| method | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, vals in methods.items():
        lines.append(f"| {_cell(name)} | " + " | ".join(_fmt(vals.get(k)) for k in keys) + " |")
    baselines = [
        n
        for n in methods
        if n in ("BM25", "zero-shot", "phase 1 (in-batch)", "uniform top-K", "SimANS", "margin filter")
    ]
    rrra = methods.get("RRRA (resampling + reranking)")
    if rrra and baselines:
        lines.append("")
        dense = [n for n in baselines if n != "BM25"]
        for metric in ("nDCG@10", "R@1"):
            for pool, what in ((baselines, "baseline"), (dense, "dense baseline (same encoder)")):
                best = max(pool, key=lambda n: methods[n].get(metric, {}).get("mean", float("-inf")))
                diff = rrra[metric]["mean"] - methods[best][metric]["mean"]
                verdict = "beats" if diff > 0 else "does NOT beat"
                lines.append(f"- {metric}: full RRRA {verdict} the best {what} ({best}) by {diff:+.4f}.")
    if summary["detection"]:
        lines += [
            "",
            "## False-negative detection among mined hard negatives (phase-1 encoder, top-K)",
            "",
            "| score | AUROC | AP | P@50 | P@100 |",
            "|---|---|---|---|---|",
        ]
        for name, vals in summary["detection"].items():
            lines.append(
                f"| {_cell(name)} | {_fmt(vals.get('AUROC'))} | {_fmt(vals.get('AP'))} | {_fmt(vals.get('P@50'))} | {_fmt(vals.get('P@100'))} |"
            )
        d0 = seeds[0]["detection"].get("adapter P(FN|neg) (full)", {})
        lines.append("")
        lines.append(
            f"Candidates judged (seed {seeds[0]['seed']}): {d0.get('candidates', '–')} labelled negatives, of which {d0.get('false_negatives', '–')} are true false negatives."
        )
    if summary["adapter_f1"]:
        names = list(summary["adapter_f1"])
        cols = [
            k
            for k in ("F1 TP", "F1 FN", "F1 FP", "F1 TN", "macro_f1")
            if any(k in summary["adapter_f1"][n] for n in names)
        ]
        lines += [
            "",
            "## Adapter four-class F1 on held-out training queries (label-conditioned, synthetic labels)",
            "",
            "| adapter | " + " | ".join(cols) + " |",
            "|---" * (len(cols) + 1) + "|",
        ]
        for n in names:
            lines.append(f"| {_cell(n)} | " + " | ".join(_fmt(summary["adapter_f1"][n].get(k)) for k in cols) + " |")
    if seeds[0].get("hitl"):
        lines += [
            "",
            f"## Human in the loop (seed {seeds[0]['seed']}): a reviewer labels the top N of the adapter's queue, labels are merged, RRRA retrains",
            "",
            "| N reviewed | false negatives found | nDCG@10 | R@1 | R@10 | R@100 |",
            "|---|---|---|---|---|---|",
        ]
        for row in seeds[0]["hitl"]:
            lines.append(
                f"| {row['N']} | {row['found']} | {row['nDCG@10']:.4f} | {row['R@1']:.4f} | {row['R@10']:.4f} | {row['R@100']:.4f} |"
            )
    grads = seeds[0].get("gradients") or {}
    if grads:
        lines += [
            "",
            f"## Gradient magnitude p_j/τ of sampled hard negatives (seed {seeds[0]['seed']})",
            "",
            "| sampler | category | count | mean | median | p90 |",
            "|---|---|---|---|---|---|",
        ]
        for sampler, cats in grads.items():
            for cat, v in cats.items():
                lines.append(
                    f"| {sampler} | {cat} | {v['count']} | {v['mean']:.3f} | {v['median']:.3f} | {v['p90']:.3f} |"
                )
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    from rrra_core.runtime.cli import run_main

    sys.exit(run_main(main))
