"""Which setting of each knob to ship as the default: the one that loses least on every collection's dev split.

Reads the tuning seed's part file of each fair comparison under ``--parts`` (one sub-folder per collection,
as ``scripts/benchmark.py --preset fair-<dataset>`` writes them) and ranks every trial setting by its mean
dev nDCG@10 shortfall from each collection's best (``rrra_core.analysis.defaults``). The test split plays no
part. Rows marked "default" are today's ``Phase3Config`` values, so the table says whether they still follow
the tuning.

Example:
    python scripts/fair_defaults.py --out results/fair_defaults
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--parts", help="folder with one part-file folder per collection (default: the repository's results/fair_parts)"
    )
    p.add_argument("--out", required=True, help="results file stem (writes <stem>.md and <stem>.json)")
    return p


def _tunings(parts_root: Path) -> dict[str, dict]:
    """``{collection: tuning}`` from each collection's finished tuning seed."""
    from rrra_core.runtime.errors import DataError
    from rrra_core.workflows.fair import read_parts

    folders = sorted(f for f in parts_root.iterdir() if f.is_dir()) if parts_root.is_dir() else []
    tunings = {}
    for folder in folders:
        seed0 = [p for p in read_parts(folder) if p["seed"] == p["config"]["tune_seed"] and p.get("finished")]
        if not seed0:
            raise DataError(folder, "no finished tuning seed here: run the fair preset's tuning seed first")
        tunings[folder.name] = seed0[0]["tuning"]
    if not tunings:
        raise DataError(parts_root, "no fair-comparison part folders here (results/fair_parts/<dataset>/s0.json)")
    return tunings


def main(argv: list[str] | None = None) -> int:
    from dataclasses import asdict

    from rrra_core.analysis.defaults import dev_shortfalls
    from rrra_core.runtime.paths import REPO_ROOT
    from rrra_core.runtime.runs import write_json_atomic
    from rrra_core.training.phase3 import Phase3Config
    from rrra_core.workflows.fair import FULL, METHOD_NAMES, RERANK_ONLY

    args = build_parser().parse_args(argv)
    tunings = _tunings(Path(args.parts) if args.parts else REPO_ROOT / "results" / "fair_parts")
    ranked = dev_shortfalls(tunings)
    shipped = asdict(Phase3Config())
    names = {**METHOD_NAMES, "rerank_only": RERANK_ONLY, "full_rerank": f"{FULL}: its rerank"}
    command = "python scripts/fair_defaults.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    lines = [
        "# Defaults from dev tuning across collections",
        "",
        f"Made by: `{command}`",
        "",
        f"Collections: {', '.join(tunings)} (each one's tuning seed, dev nDCG@10; the test split plays no part).",
        "Shortfall: the dev gap to the collection's best setting of that method; settings are ranked by the mean.",
        "A knob methods share has one default, the full system's: `top_k` is uniform top-K's K and RRRA's pool",
        "depth (RRRA's row sets it); `lambda_rr` and `rerank_signal` serve full RRRA and its reranking-only",
        "ablation (full RRRA's row sets them).",
        "",
        f"| method | settings | mean shortfall | {' | '.join(tunings)} | default |",
        "|---" * (4 + len(tunings)) + "|",
    ]
    for method, rows in ranked.items():
        for r in rows:
            is_default = all(shipped.get(k) == v for k, v in r.settings.items())
            settings = ", ".join(f"{k}={v}" for k, v in r.settings.items())
            per = " | ".join(f"{r.per_collection[c]:.4f}" for c in tunings)
            lines.append(
                f"| {names.get(method, method)} | {settings} | {r.mean:.4f} | {per} | {'✓' if is_default else ''} |"
            )
    stem = Path(args.out)
    stem.parent.mkdir(parents=True, exist_ok=True)
    data = {m: [{"settings": r.settings, "mean": r.mean, **r.per_collection} for r in rs] for m, rs in ranked.items()}
    write_json_atomic(stem.with_suffix(".json"), {"command": command, "collections": list(tunings), "methods": data})
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    from rrra_core.runtime.cli import run_main

    sys.exit(run_main(main))
