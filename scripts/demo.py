"""Build the embedded demo run (encode, mine, train the adapter, score candidates) for the app.

Example:
    python scripts/demo.py --dataset squad
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
    from rrra_core.workflows.demo import DemoConfig

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(p, DemoConfig)
    return p


def main(argv: list[str] | None = None) -> int:
    from rrra_core.runtime.cli import setup_logging
    from rrra_core.runtime.config import config_from_args
    from rrra_core.workflows.demo import DemoConfig, build_demo_run

    args = build_parser().parse_args(argv)
    setup_logging()
    metrics = build_demo_run(config_from_args(DemoConfig, args))
    after, train = metrics.get("after") or {}, metrics.get("train") or {}
    print(json.dumps({"val_macro_f1": after.get("macro_f1"), "pairs": train.get("pairs")}))
    return 0


if __name__ == "__main__":
    from rrra_core.runtime.cli import run_main

    sys.exit(run_main(main))
