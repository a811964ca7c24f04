"""Phase 2: train the RRRA adapter on frozen embeddings of an encoder (a phase-1 run or 'minilm').

Writes runs/<run-id>/ with adapter/ (config JSON + safetensors), metrics.json
(four-class F1 on held-out queries) and predictions.parquet (the adapter's view
of every training query's top-K candidates: what the app's review queue shows).

Examples:
    python scripts/train_adapter.py --dataset cranfield --model runs/<phase1-run>
    python scripts/train_adapter.py --dataset squad --label-scheme outcome --epochs 10
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def build_parser() -> argparse.ArgumentParser:
    from rrra_core.adapter import LabelConfig, Phase2Config
    from rrra_core.retrieval.encoder import EncoderConfig
    from rrra_core.runtime.config import add_config_arguments
    from rrra_core.training.phase2 import AdapterSwitches

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-id", help="name of the new run folder (default: time-stamped)")
    p.add_argument("--runs-dir", help="where run folders go (default: $RRRA_HOME/runs)")
    add_config_arguments(p, EncoderConfig)
    add_config_arguments(p, AdapterSwitches)
    add_config_arguments(p, LabelConfig, prefix="label_")
    add_config_arguments(p, Phase2Config)
    return p


def main(argv: list[str] | None = None) -> int:
    from rrra_core.adapter import LabelConfig, Phase2Config
    from rrra_core.retrieval.encoder import EncoderConfig
    from rrra_core.runtime.cli import check_run_inputs, setup_logging
    from rrra_core.runtime.config import config_from_args
    from rrra_core.runtime.runs import create_run
    from rrra_core.training.phase2 import AdapterSwitches, phase2_config_dict, train_phase2

    args = build_parser().parse_args(argv)
    setup_logging()
    enc = config_from_args(EncoderConfig, args)
    sw = config_from_args(AdapterSwitches, args)
    labels = config_from_args(LabelConfig, args, prefix="label_")
    p2 = config_from_args(Phase2Config, args)
    check_run_inputs(enc.model, sw.dataset, (sw.train_split,))
    run = create_run("phase2", phase2_config_dict(enc, sw, labels, p2), run_id=args.run_id, root=args.runs_dir)
    print(f"run folder: {run.path}", file=sys.stderr)
    metrics = train_phase2(run, enc, sw, labels, p2)
    print(json.dumps({"run": str(run.path), "val": metrics["val"], "class_counts": metrics["class_counts"]}, indent=2))
    return 0


if __name__ == "__main__":
    from rrra_core.runtime.cli import run_main

    sys.exit(run_main(main))
