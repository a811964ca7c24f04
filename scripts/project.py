"""Compute a run's embedding map (UMAP) for one query's neighbourhood or the global sample.

Writes runs/<run-id>/projections/<scope>.parquet and <scope>.json, and follows
its progress in <scope>.progress.json (or --progress), which the app's
Embedding map page reads while this runs in the background. With
--with-global, a query's map is followed by the run's global map when that is
missing or made from older predictions: the same process, so UMAP's numba
code compiles once. Compiled code is cached in $NUMBA_CACHE_DIR (default
<home>/.rrra/numba-cache), so later processes skip the compile.

Examples:
    python scripts/project.py --run demo-squad --global
    python scripts/project.py --run runs/<run-id> --query=<query-id> --top-k 50
    python scripts/project.py --run demo-squad --query=<query-id> --with-global
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rrra_core.runtime.runs import Run

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def build_parser() -> argparse.ArgumentParser:
    from rrra_core.analysis.projection import ProjectionConfig
    from rrra_core.runtime.config import add_config_arguments

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--run",
        required=True,
        help="run id (under $RRRA_HOME/runs) or run folder with predictions.parquet and adapter/",
    )
    scope = p.add_mutually_exclusive_group(required=True)
    scope.add_argument("--query", help="map this query's neighbourhood (write --query=ID if the id starts with '-')")
    scope.add_argument(
        "--global", dest="global_scope", action="store_true", help="map the global sample of queries and documents"
    )
    p.add_argument("--progress", help="progress JSON to write (default: beside the projection)")
    p.add_argument(
        "--with-global",
        action="store_true",
        help="after a --query map, also lay out the run's global map if it is missing or stale (same process)",
    )
    add_config_arguments(p, ProjectionConfig)
    return p


def _global_needed(run: Run) -> bool:
    """Whether the run's global map is missing or was made from other predictions than the run's current ones."""
    from rrra_core.analysis.projection import Scope, load_projection, predictions_digest

    proj = load_projection(run, Scope())
    pred = run.file("predictions.parquet")
    return proj is None or proj.meta.get("predictions_sha256") != predictions_digest(pred)


def main(argv: list[str] | None = None) -> int:
    import os

    from rrra_core.analysis.projection import numba_cache_dir

    # Before umap (numba) is imported: numba reads its cache folder once, at import.
    os.environ.setdefault("NUMBA_CACHE_DIR", str(numba_cache_dir()))
    from rrra_core.analysis.projection import ProjectionConfig, Scope, compute_projection, projection_paths
    from rrra_core.runtime.cli import setup_logging
    from rrra_core.runtime.config import config_from_args
    from rrra_core.runtime.runs import open_run, write_json_atomic

    args = build_parser().parse_args(argv)
    setup_logging()
    cfg = config_from_args(ProjectionConfig, args)
    run = open_run(args.run)
    scope = Scope(query_id=None if args.global_scope else args.query)
    progress_path = Path(args.progress) if args.progress else projection_paths(run, scope)[2]
    progress_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()

    def report(stage: str, fraction: float, status: str = "running") -> None:
        write_json_atomic(
            progress_path,
            {
                "run": run.id,
                "scope": scope.key,
                "stage": stage,
                "fraction": round(fraction, 4),
                "status": status,
                "started_at": started,
                "updated_at": time.time(),
            },
        )

    try:
        proj = compute_projection(run, scope, cfg, progress=report)
        if args.with_global and not scope.is_global and _global_needed(run):
            # The query's map is saved (the page draws it now); this job's bar goes on with the global one.
            compute_projection(run, Scope(), cfg, progress=lambda stage, f: report(f"global map: {stage}", f))
    except Exception as err:
        report(f"failed: {err}".splitlines()[0], 0.0, status="failed")
        raise
    report("done", 1.0, status="done")
    print(
        json.dumps(
            {
                "run": run.id,
                "scope": scope.key,
                "points": proj.meta["points"],
                "method": proj.meta["method"],
                "seconds": proj.meta["seconds"],
            }
        )
    )
    return 0


if __name__ == "__main__":
    from rrra_core.runtime.cli import run_main

    sys.exit(run_main(main))
