"""Build a new project's first run on any BEIR folder: encode, mine, train the adapter, score candidates.

The New project page starts this as a background job; the run appears in the
app's sidebar once it has scored every candidate.

Examples:
    python scripts/new_project.py --dataset ~/data/my-beir-folder --train-split train
    python scripts/new_project.py --dataset ./nfcorpus --model ~/models/e5-small --max-train-queries 300
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
    from rrra_core.workflows.project import ProjectConfig

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(p, ProjectConfig)
    return p


def main(argv: list[str] | None = None) -> int:
    from rrra_core.runtime.cli import setup_logging
    from rrra_core.runtime.config import config_from_args
    from rrra_core.workflows.project import ProjectConfig, build_project_run, project_run_id

    args = build_parser().parse_args(argv)
    setup_logging()
    cfg = config_from_args(ProjectConfig, args)
    metrics = build_project_run(cfg)
    after, train = metrics.get("after") or {}, metrics.get("train") or {}
    print(json.dumps({"run": project_run_id(cfg), "val_macro_f1": after.get("macro_f1"), "pairs": train.get("pairs")}))
    return 0


if __name__ == "__main__":
    from rrra_core.runtime.cli import run_main

    sys.exit(run_main(main))
