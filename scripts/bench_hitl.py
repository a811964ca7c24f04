"""The human-in-the-loop benchmark: retrieval quality against the number of reviewed items.

Hides a share of the training positives, lets a simulated oracle reviewer walk
the review queue (learnt order, and retriever order for comparison), merges the
first N verdicts and retrains with the product's retrain job; the lower bound
reviews nothing, the upper bound hides nothing (see rrra_core.workflows.hitl).

Run one process per seed (each resumes from its part file), then render:
    python scripts/bench_hitl.py --seeds 0 &  python scripts/bench_hitl.py --seeds 1 &  ...
    python scripts/bench_hitl.py --render --seeds 0 1 2
The quick variant (CI: a few training queries, two budgets, a handful of steps):
    python scripts/bench_hitl.py --quick --out /tmp/hitl_quick
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REPO = Path(__file__).resolve().parent.parent

#: A few minutes on 2 CPU cores with the real encoder; seconds with a tiny one.
QUICK = {
    "max_train_queries": 12,
    "budgets": (5, 10),
    "compare_at": (5, 10),
    "adapter_epochs": 1,
    "p3_max_steps": 2,
    "p3_batch_size": 4,
    "top_k": 20,
}


def build_parser() -> argparse.ArgumentParser:
    from rrra_core.runtime.config import add_config_arguments
    from rrra_core.workflows.hitl import HitlConfig

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds to run (or render), one part file each")
    p.add_argument("--out", help="output stem (default results/hitl_<dataset>); parts go to <stem>_parts/")
    p.add_argument("--render", action="store_true", help="only merge the seeds' part files into <out>.md/.json")
    p.add_argument("--quick", action="store_true", help="the quick variant (explicit flags win)")
    add_config_arguments(p, HitlConfig)
    return p


def _config(args: argparse.Namespace):  # noqa: ANN202 - HitlConfig, imported lazily
    from rrra_core.runtime.config import config_from_args
    from rrra_core.workflows.hitl import HitlConfig

    if args.quick:
        for key, value in QUICK.items():
            if getattr(args, key, None) is None:
                setattr(args, key, value)
    return config_from_args(HitlConfig, args)


def _stem(args: argparse.Namespace, dataset: str) -> Path:
    return Path(args.out) if args.out else REPO / "results" / f"hitl_{Path(dataset).name}"


def part_path(stem: Path, seed: int) -> Path:
    return stem.parent / f"{stem.name}_parts" / f"s{seed}.json"


# ----------------------------------------------------------------- rendering
def _cell(stat: dict[str, float] | None, digits: int = 4) -> str:
    if not stat:
        return "–"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}" + ("" if stat["n"] > 2 else f" (n={stat['n']})")


def _frac(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f} %"


def _p(x: float | None) -> str:
    return "–" if x is None else (f"{x:.4f}" if x >= 1e-4 else f"{x:.1e}")


def render(out: dict[str, Any]) -> str:
    s, cfg = out["result"], out["config"]
    pts, metrics = s["points"], ("nDCG@10", "R@1", "R@10", "R@100")
    lines = [
        f"# Human in the loop: {cfg['dataset']}, {round(100 * cfg['hide_fraction'])} % of training positives hidden",
        "",
        f"Command: `{out['command']}`",
        "",
        f"Seeds: {', '.join(map(str, s['seeds']))}. Scored ranking: `{s['variant']}` "
        f"on the `{cfg['eval_split']}` split "
        f"({out['test_queries']} queries). Training queries: {out['training_queries']}; hidden positives per seed: "
        f"{', '.join(map(str, out['hidden_positives']))}. Machine: {out['machine']}.",
        "",
        "Each row retrains with the product's retrain job (phase 2, then phase 3 with RRRA sampling, "
        f"{cfg['p3_epochs']} epoch(s), batch {cfg['p3_batch_size']}, lr {cfg['p3_lr']}; adapter "
        f"{cfg['adapter_epochs']} epochs) from the same base: the frozen `{cfg['model']}` and an adapter trained on "
        "the visible labels. *lower*: no review; *upper*: every hidden positive restored (nothing hidden); "
        "N rows: a simulated oracle reviewer answered the first N items of the queue in that order "
        f"(the learnt order refits every {cfg['refit_every']} verdicts, as in the app).",
        "",
        "| point | order | N | false negatives found | " + " | ".join(metrics) + " | recovered |",
        "|---|---|---|---|" + "---|" * len(metrics) + "---|",
    ]
    for name, p in pts.items():
        rec = s["recovered"].get(p["order"] or "", {}).get(str(p["N"])) if p["order"] else None
        rec = {"lower": 0.0, "upper": 1.0}.get(name, rec)
        lines.append(
            f"| {name} | {p['order'] or '–'} | {p['N']} | {p['found']['mean']:.1f} | "
            + " | ".join(_cell(p[m]) for m in metrics)
            + f" | {_frac(rec)} |"
        )
    summ = s["summary"]
    gap = (summ["upper"] - summ["lower"]) if summ["upper"] is not None and summ["lower"] is not None else None
    lines += ["", f"Lost nDCG@10 (upper − lower): {gap:+.4f}." if gap is not None else "", ""]
    lines += [
        "## Paired tests over test queries (per-query nDCG@10 averaged over seeds; ranx, two-sided)",
        "",
        "| control | treatment | queries | Δ nDCG@10 | p (paired t) | p (Fisher randomization) |",
        "|---|---|---|---|---|---|",
    ]
    for t in s["tests"]:
        delta = "–" if t.get("delta") is None else f"{t['delta']:+.4f}"
        lines.append(
            f"| {t['control']} | {t['treatment']} | {t['queries']} | {delta} | {_p(t['p_t'])} | {_p(t['p_fisher'])} |"
        )
    lines += ["", "## Reading", ""] + [f"- {n}" for n in out.get("notes", [])]
    return "\n".join(lines) + "\n"


def notes(result: dict[str, Any], target_n: int = 200) -> list[str]:
    """What the numbers say, in sentences (the target, and whether the gap between the bounds is real)."""
    summ, tests = result["summary"], {(t["control"], t["treatment"]): t for t in result["tests"]}
    out = []
    gap_test = tests.get(("lower", "upper"), {})
    if summ["upper"] is None or summ["lower"] is None:
        return ["the bounds are not finished yet"]
    gap = summ["upper"] - summ["lower"]
    p = gap_test.get("p_t")
    lower_std = result["points"]["lower"]["nDCG@10"]["std"]
    upper_std = result["points"]["upper"]["nDCG@10"]["std"]
    real = gap > 0 and p is not None and p < 0.05
    out.append(
        f"hiding costs {gap:+.4f} nDCG@10 (upper − lower; seed std {lower_std:.4f} / {upper_std:.4f}; paired t "
        f"p = {_p(p)}): "
        + (
            "a measurable loss."
            if real
            else "within noise, so the recovered fractions below are not meaningful on their own."
        )
    )
    rec = summ["recovered_at"]
    reached = [int(n) for n, f in rec.items() if f is not None and f >= 0.5]
    at = rec.get(str(target_n))
    out.append(
        f"{summ['order']} order: recovered {_frac(at)} of the lost nDCG@10 at N = {target_n}; "
        + (
            f"target (≥ 50 % at ≤ {target_n} items) met, first at N = {min(reached)}."
            if reached and min(reached) <= target_n
            else f"target (≥ 50 % at ≤ {target_n} items) NOT met."
        )
    )
    return out


def _machine() -> str:
    import os
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads per process"


def render_files(args: argparse.Namespace, cfg: Any, stem: Path) -> dict[str, Any]:
    from rrra_core.data.beir import load_dataset
    from rrra_core.runtime.config import config_to_dict
    from rrra_core.runtime.errors import ConfigError
    from rrra_core.workflows.hitl import read_part, summarize

    parts = [read_part(part_path(stem, s)) for s in args.seeds]
    missing = [s for s, p in zip(args.seeds, parts, strict=True) if not p]
    if missing:
        raise ConfigError(f"no part file for seed(s) {missing} under {part_path(stem, 0).parent}")
    result = summarize(parts)
    seed_cmds = "; ".join(part.get("command", "") for part in parts)
    out = {
        "command": f"python scripts/bench_hitl.py --render --seeds {' '.join(map(str, args.seeds))}"
        + (f" --out {args.out}" if args.out else "")
        + f"  (parts: {seed_cmds})",
        "config": config_to_dict(cfg),
        "machine": _machine(),
        "training_queries": parts[0]["training_queries"],
        "hidden_positives": [p["hidden_positives"] for p in parts],
        "test_queries": len(load_dataset(cfg.dataset, cfg.eval_split).qrels),
        "wall_seconds_per_seed": [round(sum(pt["seconds"] for pt in p["points"].values()), 1) for p in parts],
        "summary": result["summary"],
        "result": result,
    }
    out["notes"] = notes(result)
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(out, indent=1, default=str))
    stem.with_suffix(".md").write_text(render(out))
    return out


def main(argv: list[str] | None = None) -> int:
    from rrra_core.runtime.cli import setup_logging
    from rrra_core.workflows.hitl import run_seed

    args = build_parser().parse_args(argv)
    setup_logging()
    cfg = _config(args)
    stem = _stem(args, cfg.dataset)
    if args.render:
        out = render_files(args, cfg, stem)
        print(json.dumps(out["summary"], indent=1))
        return 0
    command = "python scripts/bench_hitl.py " + " ".join(sys.argv[1:] if argv is None else argv)
    for seed in args.seeds:
        path = part_path(stem, seed)
        t0 = time.perf_counter()
        part = run_seed(cfg, seed, path, progress=lambda m: print(m, flush=True), command=command)
        print(f"seed {seed}: {len(part['points'])} points in {time.perf_counter() - t0:.0f} s -> {path}")
    return 0


if __name__ == "__main__":
    from rrra_core.runtime.cli import run_main

    sys.exit(run_main(main))
