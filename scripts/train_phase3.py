"""Phase 3: joint fine-tuning of encoder and adapter with resampled hard negatives (or a baseline sampler).

Examples:
    python scripts/train_phase3.py --model runs/<phase1-run> --adapter runs/<phase2-run>/adapter --dataset cranfield
    python scripts/train_phase3.py --model runs/<phase1-run> --adapter runs/<phase2-run>/adapter --sampler simans
    python scripts/train_phase3.py --config runs/<phase3-run>/config.json --run-id again   # reproduce a run
    python scripts/train_phase3.py --resume runs/<phase3-run>                              # continue a killed run
    torchrun --nproc_per_node 8 scripts/train_phase3.py --model runs/<phase1-run> \
        --adapter runs/<phase2-run>/adapter --batch-size 256
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
    from rrra_core.training.phase3 import Phase3Config

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--adapter", help="adapter folder from phase 2 (required for --sampler rrra and for reranking)")
    p.add_argument("--config", help="a run's config.json (any phase-3 run, old or new); flags override it")
    p.add_argument("--resume", help="continue the phase-3 run in this folder from its checkpoint")
    p.add_argument("--run-id", help="name of the new run folder (default: time-stamped)")
    p.add_argument("--runs-dir", help="where run folders go (default: $RRRA_HOME/runs)")
    add_config_arguments(p, EncoderConfig)
    add_config_arguments(p, Phase3Config)
    return p


def main(argv: list[str] | None = None) -> int:
    from rrra_core.adapter import adapter_folder
    from rrra_core.retrieval.encoder import EncoderConfig
    from rrra_core.runtime import distributed
    from rrra_core.runtime.cli import check_run_inputs, setup_logging
    from rrra_core.runtime.config import config_from_args
    from rrra_core.runtime.errors import ConfigError
    from rrra_core.runtime.run_config import read_run_config, resume_run
    from rrra_core.runtime.runs import create_run
    from rrra_core.training.phase3 import Phase3Config, phase3_config_dict, train_phase3

    args = build_parser().parse_args(argv)
    setup_logging()
    if args.resume:
        run, saved = resume_run(args.resume, "phase3", root=args.runs_dir)
        enc, cfg = saved.encoder_config(EncoderConfig), saved.phase_config(Phase3Config)
        adapter = saved.sections.get("adapter_init")
    else:
        base = read_run_config(args.config) if args.config else None
        enc = config_from_args(EncoderConfig, args, base=base.encoder if base else None)
        cfg = config_from_args(Phase3Config, args, base=base.phase_settings(Phase3Config) if base else None)
        adapter = args.adapter if args.adapter is not None else (base.sections.get("adapter_init") if base else None)
        adapter = str(adapter_folder(adapter)) if adapter is not None else None  # a phase-2 run folder works too
        check_run_inputs(
            enc.model,
            cfg.dataset,
            (cfg.train_split, cfg.eval_split),
            query_max_length=enc.query_max_length,
            doc_max_length=enc.doc_max_length,
        )
        if cfg.sampler == "rrra" and adapter is None:
            raise ConfigError("the rrra sampler needs a trained adapter (phase 2); pass its folder with --adapter")
        run = None
    with distributed.session(enc.device):
        run = distributed.open_run_on_main(
            run,
            lambda: create_run("phase3", phase3_config_dict(enc, cfg, adapter), run_id=args.run_id, root=args.runs_dir),
        )
        metrics = train_phase3(run, enc, cfg, adapter_dir=adapter)
        if distributed.is_main():
            print(json.dumps({"run": str(run.path), **metrics.get("variants", {})}, indent=2))
    return 0


if __name__ == "__main__":
    from rrra_core.runtime.cli import run_main

    sys.exit(run_main(main))
