"""Build a reviewable phase-2 run from a large BEIR folder in bounded-memory chunks, resumable after a kill.

Encodes the corpus and the training queries chunk by chunk, builds a FAISS index,
mines each query's top-K, fits the adapter on a subsample of the training
queries, scores every candidate into predictions.parquet, builds the run store
and the review queue's features (rrra_core/workflows/scale_build.py). Run the
same command again after a kill: finished chunks are kept. Each stage's seconds
and peak RSS go into the run's metrics.json (train.scale_build).

Examples:
    python scripts/make_scale_collection.py --docs 20000 --queries 5000 --out /data/scale-20k
    python scripts/build_scale.py --dataset /data/scale-20k
    python scripts/build_scale.py --dataset /data/scale-300k --fit-queries 10000 --run-id scale-300k
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def build_parser() -> argparse.ArgumentParser:
    from rrra_core.runtime.config import add_config_arguments
    from rrra_core.workflows.scale_build import ScaleBuildConfig

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(p, ScaleBuildConfig)
    return p


def main(argv: list[str] | None = None) -> int:
    from rrra_core.runtime.cli import setup_logging
    from rrra_core.runtime.config import config_from_args
    from rrra_core.workflows.scale_build import ScaleBuildConfig, build_scale_run, scale_run_id

    args = build_parser().parse_args(argv)
    setup_logging()
    cfg = config_from_args(ScaleBuildConfig, args)
    metrics = build_scale_run(cfg)
    scale = metrics["train"]["scale_build"]
    seconds = {name: rec["seconds"] for name, rec in scale["stages"].items()}
    print(json.dumps({"run": scale_run_id(cfg), "candidates": scale["candidates"], "peak_rss_gb": scale["peak_rss_gb"],
                      "seconds": seconds}))  # fmt: skip
    return 0


if __name__ == "__main__":
    from rrra_core.runtime.cli import run_main

    sys.exit(run_main(main))
