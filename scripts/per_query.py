"""Per-query metrics of a finished phase-1 or phase-3 run on its evaluation split, into <run>/per_query.json.

Training writes this file at its final evaluation; runs made before that lack
it. This driver recomputes it with the run's saved model (and, for phase 3,
its adapter reranking), using the settings in the run's config.json. The
Compare runs page starts it in the background.

Examples:
    python scripts/per_query.py --run bench-cranfield-20261128-004222-s0-phase3-rrra
    python scripts/per_query.py --run runs/<phase1-run> --force
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="run id (under the runs folder) or run folder path")
    p.add_argument("--runs-dir", help="where run folders live (default: $RRRA_HOME/runs)")
    p.add_argument("--split", help="qrels split to evaluate (default: the run's eval_split)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="device (default: the run's saved setting)")
    p.add_argument("--force", action="store_true", help="recompute even if the run already has per_query.json")
    return p


def main(argv: list[str] | None = None) -> int:
    from rrra_core.analysis.comparison import PER_QUERY_FILE, evaluate_run
    from rrra_core.runtime.cli import setup_logging
    from rrra_core.runtime.runs import open_run

    args = build_parser().parse_args(argv)
    setup_logging()
    run = open_run(args.run, root=args.runs_dir)
    out = run.file(PER_QUERY_FILE)
    if out.is_file() and not args.force and args.split is None:
        print(f"{out} already exists (pass --force to recompute)", file=sys.stderr)
        return 0
    record = evaluate_run(run, split=args.split, device=args.device)
    run.write_json(PER_QUERY_FILE, record)
    counts = {name: len(queries) for name, queries in record["variants"].items()}
    print(json.dumps({"run": run.id, "file": str(out), "split": record["split"], "queries": counts}, indent=2))
    return 0


if __name__ == "__main__":
    from rrra_core.runtime.cli import run_main

    sys.exit(run_main(main))
