"""RRRA benchmark: baselines, full RRRA and ablations, with false-negative detection and the human-in-the-loop curve.

Presets (flags override any field):
    cranfield  planted false negatives (30% of each training query's positives hidden), 3 seeds, HITL curve
    scifact    realistic setting: nothing hidden, 1 seed
    squad      the paper's open-QA setting: gold paragraph only; answer-bearing same-article paragraphs are the real FNs
    quick      ADI smoke run (train = test split), a few minutes on 2 cores
Every phase is a run folder keyed by its settings (runs/bench-<name>-s<seed>-<phase>-<hash>), and the
result file is rewritten after every scored method: adding a sampler or a seed reuses finished phases,
and the same command resumes a killed benchmark (its result file says "complete": false until done).

Fair presets (rrra_core.workflows.fair): every method tuned equally on a dev split carved from the
training queries, 3 seeds, ranx paired tests against the best baseline; results/fair_<dataset>.{md,json},
one resumable part file per seed under results/fair_parts/<dataset>/:
    fair-cranfield  planted false negatives, all training queries
    fair-scifact    all training claims
    fair-squad      SQuAD open retrieval (answer recall too)

Examples:
    python scripts/benchmark.py --preset fair-cranfield --seeds 0      # tunes on seed 0's dev split
    python scripts/benchmark.py --preset fair-scifact --seeds 0 --workers 2   # two trials at a time (2 cores)
    python scripts/benchmark.py --preset fair-cranfield --seeds 1 --wait 7200   # another process
    python scripts/benchmark.py --preset fair-cranfield --render       # tables from the part files so far
    python scripts/benchmark.py --preset cranfield
    python scripts/benchmark.py --preset quick --out /tmp/quick
"""

from __future__ import annotations

import argparse
import json
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


FAIR_PRESETS: dict[str, dict] = {
    "fair-cranfield": {"dataset": "cranfield", "hide_fraction": 0.3, "truth": "planted"},
    "fair-scifact": {"dataset": "scifact", "hide_fraction": 0.0, "truth": "none"},
    "fair-squad": {"dataset": "squad", "hide_fraction": 0.0, "truth": "answers"},
}


def _fair_parser(preset: str) -> argparse.ArgumentParser:
    from rrra_core.runtime.config import add_config_arguments
    from rrra_core.workflows.fair import FairConfig

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default=preset, choices=sorted(FAIR_PRESETS), help="starting settings")
    p.add_argument("--out", help="results file stem (default: results/fair_<dataset name>)")
    p.add_argument("--render", action="store_true", help="only rewrite the result files from the part files")
    p.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="a non-tuning seed waits this long for the tuning seed's choices (seeds run as parallel processes)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="phase-3 runs trained at once, each in its own process (e.g. one per CPU core); each run keeps its "
        "settings and seed",
    )
    add_config_arguments(p, FairConfig)
    return p


def fair_main(argv: list[str]) -> int:
    """The fair comparison: seeds in this process, part files resumed, result files rewritten as parts change."""
    from rrra_core.runtime.config import config_from_args
    from rrra_core.runtime.errors import ConfigError
    from rrra_core.runtime.paths import REPO_ROOT
    from rrra_core.workflows.fair import FairConfig, read_parts, run_seed
    from rrra_core.workflows.fair_report import write_result

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset")
    preset = pre.parse_known_args(argv)[0].preset
    args = _fair_parser(preset).parse_args(argv)
    cfg = config_from_args(FairConfig, args, base=dict(FAIR_PRESETS[args.preset]))
    name = result_name(args.preset.removeprefix("fair-"), cfg.dataset)
    stem = Path(args.out) if args.out else REPO_ROOT / "results" / f"fair_{name}"
    parts_dir = stem.parent / "fair_parts" / stem.name.removeprefix("fair_")
    command = "python scripts/benchmark.py " + shlex.join(argv)

    last: list[str] = []

    def rewrite(force: bool = False) -> None:
        parts = read_parts(parts_dir) if parts_dir.is_dir() else []
        # The paired tests take a minute on SQuAD's 4,624 queries: the result files are rewritten when a seed
        # finishes (the part files already hold every trial and method as it finishes; --render reads them).
        signature = json.dumps([[p["seed"], p.get("finished", False)] for p in parts])
        if parts and (force or signature not in last):
            write_result(stem, parts, command)
            last[:] = [signature]

    if args.render:
        if not (parts_dir.is_dir() and read_parts(parts_dir)):
            raise ConfigError(f"no part file under {parts_dir}: run a seed first")
        rewrite()
        print(stem.with_suffix(".md").read_text(encoding="utf-8"))
        return 0
    parts_dir.mkdir(parents=True, exist_ok=True)
    for seed in cfg.seeds:
        run_seed(cfg, name, seed, parts_dir, on_save=rewrite, wait_s=args.wait, command=command, workers=args.workers)
    rewrite(force=True)  # whatever changed since the last finished seed (e.g. gradients added to finished parts)
    print(stem.with_suffix(".md").read_text(encoding="utf-8"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from rrra_core.runtime.config import add_config_arguments
    from rrra_core.workflows.benchmark import BenchmarkConfig

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="cranfield", choices=sorted(PRESETS), help="starting settings")
    p.add_argument("--quick", action="store_true", help="same as --preset quick: a few-minute smoke run on ADI")
    p.add_argument(
        "--out", help="results file stem (default: results/rrra_<dataset name>, or rrra_<preset> on its own dataset)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing result file (committed results are kept otherwise)",
    )
    p.add_argument(
        "--render",
        metavar="JSON",
        help="instead of running, re-render a result file's Markdown (<stem>.md) from its JSON, measuring nothing",
    )
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
    from rrra_core.runtime.config import config_from_args, config_to_dict
    from rrra_core.runtime.paths import REPO_ROOT
    from rrra_core.runtime.runs import cpu_model, write_json_atomic
    from rrra_core.workflows.benchmark import BenchmarkConfig, run_benchmark
    from rrra_core.workflows.benchmark_report import render_markdown

    raw = argv if argv is not None else sys.argv[1:]
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset")
    if (pre.parse_known_args(raw)[0].preset or "") in FAIR_PRESETS:
        setup_logging()
        return fair_main(list(raw))
    args = build_parser().parse_args(argv)
    setup_logging()
    if args.merge:
        return merge(args.merge, args.out, argv if argv is not None else sys.argv[1:])
    if args.render:
        return render(args.render)
    if args.quick:
        args.preset = "quick"
    cfg = config_from_args(BenchmarkConfig, args, base=dict(PRESETS[args.preset]))
    name = result_name(args.preset, cfg.dataset)
    stem = Path(args.out) if args.out else REPO_ROOT / "results" / f"rrra_{name}"
    earlier = _resumable(stem.with_suffix(".json"), config_to_dict(cfg), args.overwrite)
    stem.parent.mkdir(parents=True, exist_ok=True)
    raw = argv if argv is not None else sys.argv[1:]
    command = "python scripts/benchmark.py" + (" " + shlex.join(raw) if raw else "")
    # No timestamp: the phases are keyed by their settings under this tag, so a rerun finds them.
    tag = f"bench-{name}"
    # A resumed run's wall time counts the killed run's too.
    t0 = time.perf_counter() - float((earlier or {}).get("wall_seconds", 0.0))
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


def _resumable(path: Path, config: dict, overwrite: bool) -> dict | None:
    """The unfinished result at ``path`` this run continues, or None to start afresh.

    A finished result (or one with other settings) is never replaced without
    ``--overwrite``; an unfinished one with the same settings is what a killed
    benchmark left, and the same command resumes it.
    """
    from rrra_core.runtime.errors import ConfigError

    if not path.exists() or overwrite:
        return None
    try:
        earlier = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        earlier = {}
    if isinstance(earlier, dict) and earlier.get("complete") is False and earlier.get("config") == config:
        return earlier
    raise ConfigError(f"{path} exists; pass --overwrite to replace it, or --out for a new file")


def result_name(preset: str, dataset: str) -> str:
    """The name result files and run folders carry: the preset's on its own dataset, else the dataset's.

    ``--preset cranfield --dataset /data/my_beir`` is a benchmark of ``my_beir``:
    naming it ``cranfield`` would overwrite the committed Cranfield result.
    """
    own = PRESETS.get(preset, {}).get("dataset", preset)
    return preset if dataset == own else Path(str(dataset).rstrip("/\\")).name or preset


def _read_result(path: str) -> dict:
    from rrra_core.runtime.errors import DataError

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(path, f"cannot read result file ({err})") from None


def render(path: str) -> int:
    """Rewrite ``<stem>.md`` from ``<stem>.json`` (a renderer change needs no new measurement)."""
    from rrra_core.workflows.benchmark_report import render_markdown

    md = Path(path).with_suffix(".md")
    md.write_text(render_markdown(_read_result(path)), encoding="utf-8")
    print(md)
    return 0


def merge(paths: list[str], out: str | None, raw_argv: list[str]) -> int:
    """Combine result files of the same benchmark run seed by seed in separate processes."""
    from rrra_core.runtime.runs import write_json_atomic
    from rrra_core.workflows.benchmark import aggregate
    from rrra_core.workflows.benchmark_report import render_markdown

    parts = [_read_result(p) for p in paths]
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
    samplers = list(dict.fromkeys(x for p in parts for x in p["config"].get("samplers", [])))
    result = {
        "command": command,
        "preset": first["preset"],
        "machine": first["machine"],
        "config": {**first["config"], "seeds": [s["seed"] for s in seeds], "samplers": samplers},
        "seeds": seeds,
        "summary": aggregate(seeds),
        # A file a killed run left ("complete": false) keeps the merge marked unfinished.
        "complete": all(p.get("complete", True) for p in parts),
        "wall_seconds": max(p["wall_seconds"] for p in parts),
        **(
            {"merged_from": [{"command": p["command"], "wall_seconds": p["wall_seconds"]} for p in parts]}
            if len(parts) > 1
            else {}
        ),
    }
    name = result_name(first["preset"], first["config"].get("dataset", first["preset"]))
    stem = Path(out) if out else Path(paths[0]).with_name(f"rrra_{name}")
    write_json_atomic(stem.with_suffix(".json"), result)
    stem.with_suffix(".md").write_text(render_markdown(result), encoding="utf-8")
    print(render_markdown(result))
    return 0


if __name__ == "__main__":
    from rrra_core.runtime.cli import run_main

    sys.exit(run_main(main))
