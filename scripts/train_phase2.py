"""Phase 2: train the RRRA adapter on frozen embeddings of an encoder (a phase-1 run or 'minilm').

Writes runs/<run-id>/ with adapter/ (config JSON + safetensors), metrics.json
(four-class F1 on held-out queries) and predictions.parquet (the adapter's view
of every training query's top-K candidates: what the app's review queue shows).

Examples:
    python scripts/train_phase2.py --dataset cranfield --model runs/<phase1-run>
    python scripts/train_phase2.py --dataset squad --label-scheme outcome --epochs 10
    python scripts/train_phase2.py --config runs/<id>/config.json --run-id again   # reproduce a run
    python scripts/train_phase2.py --resume runs/<id>                              # continue a killed run
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def build_parser() -> argparse.ArgumentParser:
    from rrra_core.retrieval.encoder import EncoderConfig
    from rrra_core.runtime.config import add_config_arguments
    from rrra_core.training.phase2 import Phase2Config

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="a run's config.json (any phase-2 run, old or new); flags override it")
    p.add_argument("--resume", help="continue the run in this folder from its checkpoint, with its saved config")
    p.add_argument("--run-id", help="name of the new run folder (default: time-stamped)")
    p.add_argument("--runs-dir", help="where run folders go (default: $RRRA_HOME/runs)")
    add_config_arguments(p, EncoderConfig)
    add_config_arguments(p, Phase2Config)  # with its parts: --label-* and the fit's flags
    return p


def main(argv: list[str] | None = None) -> int:
    from rrra_core.retrieval.encoder import EncoderConfig
    from rrra_core.runtime.cli import check_run_inputs, setup_logging
    from rrra_core.runtime.config import config_from_args
    from rrra_core.runtime.run_config import read_run_config, resume_run
    from rrra_core.runtime.runs import create_run
    from rrra_core.training.phase2 import Phase2Config, phase2_config_dict, train_phase2

    args = build_parser().parse_args(argv)
    setup_logging()
    if args.resume:
        run, saved = resume_run(args.resume, "phase2", root=args.runs_dir)
        enc, cfg = saved.encoder_config(EncoderConfig), saved.phase_config(Phase2Config)
    else:
        base = read_run_config(args.config) if args.config else None
        enc = config_from_args(EncoderConfig, args, base=base.encoder if base else None)
        cfg = config_from_args(Phase2Config, args, base=base.phase_settings(Phase2Config) if base else None)
        check_run_inputs(
            enc.model,
            cfg.dataset,
            (cfg.train_split,),
            query_max_length=enc.query_max_length,
            doc_max_length=enc.doc_max_length,
        )
        run = create_run("phase2", phase2_config_dict(enc, cfg), run_id=args.run_id, root=args.runs_dir)
    print(f"run folder: {run.path}", file=sys.stderr)
    metrics = train_phase2(run, enc, cfg)
    summary = {"run": str(run.path), "after": metrics["after"], "class_counts": metrics["train"]["class_counts"]}
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    from rrra_core.runtime.cli import run_main

    sys.exit(run_main(main))
