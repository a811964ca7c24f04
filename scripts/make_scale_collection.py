"""Write a training collection of any size from the bundled corpora, with its known false negatives.

A BEIR folder (corpus.jsonl, queries.jsonl, qrels/train.tsv, a small qrels/test.tsv)
plus answers/<split>_has_answer.tsv.gz, the relevant documents the qrels leave out,
and collection.json with the settings and counts (rrra_core/data/scale_collection.py
says how it is made). Offline, deterministic per seed; the full size takes about
10 s on 2 CPU cores.

Examples:
    python scripts/make_scale_collection.py --docs 300000 --queries 100000 --seed 0 --out /data/scale-300k
    python scripts/make_scale_collection.py --docs 20000 --queries 5000 --out /tmp/scale-20k
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def build_parser() -> argparse.ArgumentParser:
    from rrra_core.data.scale_collection import ScaleCollectionConfig
    from rrra_core.runtime.config import add_config_arguments

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(p, ScaleCollectionConfig)
    return p


def main(argv: list[str] | None = None) -> int:
    from rrra_core.data.scale_collection import ScaleCollectionConfig, write_scale_collection
    from rrra_core.runtime.cli import setup_logging
    from rrra_core.runtime.config import config_from_args

    args = build_parser().parse_args(argv)
    setup_logging()
    cfg = config_from_args(ScaleCollectionConfig, args)
    info = write_scale_collection(cfg)
    print(json.dumps({"out": str(Path(cfg.out).expanduser()), **info["counts"], "seconds": info["seconds"]}))
    return 0


if __name__ == "__main__":
    from rrra_core.runtime.cli import run_main

    sys.exit(run_main(main))
