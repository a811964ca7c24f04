"""Retrain with the annotation store's corrections: merge judgments into the labels, retrain the adapter (and optionally the encoder).

The app's Retrain page launches this as a background job; it works the same
from a terminal. Progress and the outcome go to the store's training_jobs row
named by --run-id, and to the new run folders. Running it again with the same
--run-id resumes what a killed job left (finished phases are kept, phase 3
continues from its checkpoint).

Examples:
    python scripts/retrain.py --base-run demo-squad --run-id demo-squad-r1
    python scripts/retrain.py --base-run demo-squad --run-id demo-squad-r2 --preset full --policy annotator:alice
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def build_parser() -> argparse.ArgumentParser:
    from rrra_core.runtime.config import add_config_arguments
    from rrra_core.workflows.retrain import PRESETS, RetrainConfig

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-id", help="name of the new run (and its job); default: <base>-retrain-<time>")
    p.add_argument(
        "--preset", choices=sorted(PRESETS), help="fill phases, epochs and steps from a preset (explicit flags win)"
    )
    p.add_argument(
        "--db", help="annotation store URL or SQLite path (default: $RRRA_DB_URL or <home>/.rrra/annotations.sqlite)"
    )
    add_config_arguments(p, RetrainConfig)
    return p


def main(argv: list[str] | None = None) -> int:
    from rrra_core.runtime.cli import setup_logging
    from rrra_core.runtime.config import config_from_args, config_to_dict
    from rrra_core.workflows.retrain import PRESETS, RetrainConfig, retrain

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.preset:
        # A preset fills what the command line left unset (unset flags parse as None).
        for key, value in PRESETS[args.preset].items():
            if getattr(args, key, None) is None:
                setattr(args, key, value)
    setup_logging()
    cfg = config_from_args(RetrainConfig, args)
    run_id = args.run_id or f"{cfg.base_run}-retrain-{time.strftime('%Y%m%d-%H%M%S')}"

    def on_term(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # recorded as "cancelled" in the job row

    signal.signal(signal.SIGTERM, on_term)
    summary = retrain(cfg, run_id, db_url=args.db)
    print(json.dumps({"run_id": run_id, "config": config_to_dict(cfg), **summary}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    from rrra_core.runtime.cli import run_main

    sys.exit(run_main(main))
