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
    p.add_argument(
        "--report-variant",
        choices=("no_rerank", "rerank"),
        default="no_rerank",
        help="with --render: the ranking the summary reads (the other is reported beside it)",
    )
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


def _sorted_points(s: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    orders = list(s["recovered"])
    key = {"lower": (-2, 0), "upper": (-1, 0)}
    return sorted(
        s["points"].items(),
        key=lambda kv: key.get(kv[0], (orders.index(kv[1]["order"]) if kv[1]["order"] in orders else 99, kv[1]["N"])),
    )


def _points_table(s: dict[str, Any]) -> list[str]:
    """The points with mean ± std over seeds and the recovered share, then the paired tests, for one ranking."""
    metrics = ("nDCG@10", "R@1", "R@10", "R@100")
    lines = [
        "| point | order | N | false negatives found | " + " | ".join(metrics) + " | recovered (mean of seeds) |",
        "|---|---|---|---|" + "---|" * len(metrics) + "---|",
    ]
    for name, p in _sorted_points(s):
        rec = s["recovered"].get(p["order"] or "", {}).get(str(p["N"])) if p["order"] else None
        rec = {"lower": 0.0, "upper": 1.0}.get(name, rec)
        lines.append(
            f"| {name} | {p['order'] or '–'} | {p['N']} | {p['found']['mean']:.1f} | "
            + " | ".join(_cell(p[m]) for m in metrics)
            + f" | {_frac(rec)} |"
        )
    summ = s["summary"]
    if summ["upper"] is not None and summ["lower"] is not None:
        lines += ["", f"Lost nDCG@10 (upper − lower, means over seeds): {summ['upper'] - summ['lower']:+.4f}."]
    lines += [
        "",
        "Paired tests over test queries (per-query nDCG@10 averaged over seeds; ranx, two-sided):",
        "",
        "| control | treatment | queries | Δ nDCG@10 | p (paired t) | p (Fisher randomization) |",
        "|---|---|---|---|---|---|",
    ]
    for t in s["tests"]:
        delta = "–" if t.get("delta") is None else f"{t['delta']:+.4f}"
        lines.append(
            f"| {t['control']} | {t['treatment']} | {t['queries']} | {delta} | {_p(t['p_t'])} | {_p(t['p_fisher'])} |"
        )
    return lines


def render(out: dict[str, Any]) -> str:
    s, cfg = out["result"], out["config"]
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
    ]
    lines += _points_table(s)
    other = out.get("other_variant")
    if other:
        lines += ["", f"## The same points read on the `{other['variant']}` ranking", ""] + _points_table(other)
    lines += ["", "## Reading", ""] + [f"- {n}" for n in out.get("notes", [])]
    return "\n".join(lines) + "\n"


def notes(result: dict[str, Any], other: dict[str, Any] | None = None, target_n: int = 200) -> list[str]:
    """What the numbers say, in sentences: whether hiding hurts measurably, and the target."""
    summ, tests = result["summary"], {(t["control"], t["treatment"]): t for t in result["tests"]}
    if summ["upper"] is None or summ["lower"] is None:
        return ["the bounds are not finished yet"]
    gap = summ["upper"] - summ["lower"]
    p = tests.get(("lower", "upper"), {}).get("p_t")
    seeds = {s: v["upper"] - v["lower"] for s, v in result["per_seed"].items() if "upper" in v and "lower" in v}
    above = sum(d > 0 for d in seeds.values())
    spread = ", ".join(f"{d:+.4f}" for d in seeds.values())
    real = gap > 0 and above == len(seeds) and len(seeds) >= 3
    out = [
        f"`{result['variant']}`: hiding costs {gap:+.4f} nDCG@10 (upper − lower, mean of seeds; per seed {spread}; "
        f"paired t over test queries p = {_p(p)}): "
        + (
            f"the upper bound is above the lower bound in all {len(seeds)} seeds, a measurable loss."
            if real
            else "not consistent across seeds: within noise, so the recovered shares are not meaningful on their own."
        )
    ]
    if other is not None and other["summary"]["upper"] is not None and other["summary"]["lower"] is not None:
        g2 = other["summary"]["upper"] - other["summary"]["lower"]
        out.append(
            f"`{other['variant']}`: upper − lower = {g2:+.4f}"
            + (
                ": hiding does not hurt this ranking measurably (the adapter's rerank adds more noise than the labels "
                "take away), so the summary reads the other ranking."
                if g2 <= 0
                else "."
            )
        )
    rec = summ["recovered_at"]
    reached = [int(n) for n, f in rec.items() if f is not None and f >= 0.5]
    at = rec.get(str(target_n))
    verdict = (
        f"target (≥ 50 % at ≤ {target_n} items) met, first at N = {min(reached)}."
        if reached and min(reached) <= target_n
        else f"target (≥ 50 % at ≤ {target_n} items) NOT met."
    )
    out.append(f"{summ['order']} order: {_frac(at)} of the lost nDCG@10 recovered at N = {target_n}; {verdict}")
    hidden = result["points"]["upper"]["found"]["mean"]
    found = {
        int(p["N"]): p["found"]["mean"] for p in result["points"].values() if p["order"] == summ["order"] and hidden
    }
    if found:
        reach = ", ".join(f"N = {n}: {f:.0f} ({100 * f / hidden:.0f} %)" for n, f in sorted(found.items()))
        noise = max(result["points"][k]["nDCG@10"]["std"] for k in ("lower", "upper"))
        out.append(
            f"hidden positives found by the reviewer, of {hidden:.0f}: {reach}. Were the loss repaired in proportion, "
            f"N = {target_n} would buy back about {100 * found.get(target_n, 0) / hidden:.0f} % of {gap:+.4f}, "
            f"{found.get(target_n, 0) / hidden * gap:+.4f} nDCG@10, against a seed-to-seed std of a single retrain "
            f"of up to {noise:.4f}: this setting cannot show the recovery the target asks for."
        )
    return out


def _machine() -> str:
    import os
    import platform

    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} CPUs"


def render_files(args: argparse.Namespace, cfg: Any, stem: Path) -> dict[str, Any]:
    from rrra_core.data.beir import load_dataset
    from rrra_core.runtime.config import config_to_dict
    from rrra_core.runtime.errors import ConfigError
    from rrra_core.workflows.hitl import read_part, summarize

    parts = [read_part(part_path(stem, s)) for s in args.seeds]
    missing = [s for s, p in zip(args.seeds, parts, strict=True) if not p]
    if missing:
        raise ConfigError(f"no part file for seed(s) {missing} under {part_path(stem, 0).parent}")
    result = summarize(parts, variant=args.report_variant)
    other = summarize(parts, variant="rerank" if args.report_variant == "no_rerank" else "no_rerank")
    seed_cmds = "; ".join(part.get("command", "") for part in parts)
    out = {
        "command": f"python scripts/bench_hitl.py --render --seeds {' '.join(map(str, args.seeds))}"
        + (f" --out {args.out}" if args.out else "")
        + (f" --report-variant {args.report_variant}" if args.report_variant != "no_rerank" else "")
        + f"  (parts: {seed_cmds})",
        "config": config_to_dict(cfg),
        "machine": _machine(),
        "training_queries": parts[0]["training_queries"],
        "hidden_positives": [p["hidden_positives"] for p in parts],
        "test_queries": len(load_dataset(cfg.dataset, cfg.eval_split).qrels),
        "wall_seconds_per_seed": [round(sum(pt["seconds"] for pt in p["points"].values()), 1) for p in parts],
        "summary": result["summary"],
        "result": result,
        "other_variant": other,
    }
    out["notes"] = notes(result, other)
    planned = {"lower", "upper", *(f"{cfg.orders[0]}-n{n}" for n in cfg.budgets)}
    planned |= {f"{o}-n{n}" for o in cfg.orders[1:] for n in cfg.compare_at}
    missing = sorted(planned - set(result["points"]), key=lambda n: (n.split("-n")[0], int(n.split("-n")[-1] or 0)))
    if missing:
        out["notes"].append(
            f"planned but not run (the benchmark was stopped for time; rerunning the same commands resumes it): "
            f"{', '.join(missing)}."
        )
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
    if args.report_variant != "no_rerank":
        raise SystemExit("error: --report-variant applies to --render only")
    for seed in args.seeds:
        path = part_path(stem, seed)
        t0 = time.perf_counter()
        part = run_seed(cfg, seed, path, progress=lambda m: print(m, flush=True), command=command)
        print(f"seed {seed}: {len(part['points'])} points in {time.perf_counter() - t0:.0f} s -> {path}")
    return 0


if __name__ == "__main__":
    from rrra_core.runtime.cli import run_main

    sys.exit(run_main(main))
