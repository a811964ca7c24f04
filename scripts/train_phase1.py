"""Phase 1: contrastive training of the bi-encoder into a run folder (runs/<run-id>/).

Examples:
    python scripts/train_phase1.py --dataset scifact --epochs 1 --batch-size 32
    python scripts/train_phase1.py --config runs/<id>/config.json --run-id again   # reproduce a run
    python scripts/train_phase1.py --resume runs/<id>                              # continue a killed run
    torchrun --nproc_per_node 8 scripts/train_phase1.py --dataset scifact --batch-size 256   # 8 GPUs, global batch 256
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def build_parser() -> argparse.ArgumentParser:
    from rrra_core.negatives.mining import MiningConfig
    from rrra_core.retrieval.encoder import EncoderConfig
    from rrra_core.runtime.config import add_config_arguments
    from rrra_core.training.phase1 import Phase1Config

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="a run's config.json (any phase-1 run, old or new); flags override it")
    p.add_argument("--resume", help="continue the run in this folder from its checkpoint, with its saved config")
    p.add_argument("--run-id", help="name of the new run folder (default: time-stamped)")
    p.add_argument("--runs-dir", help="where run folders go (default: $RRRA_HOME/runs)")
    add_config_arguments(p, EncoderConfig)
    add_config_arguments(p, Phase1Config)
    add_config_arguments(p, MiningConfig, prefix="mine_")
    return p


def main(argv: list[str] | None = None) -> int:
    from rrra_core.negatives.mining import MiningConfig
    from rrra_core.retrieval.encoder import EncoderConfig
    from rrra_core.runtime import distributed
    from rrra_core.runtime.cli import check_run_inputs, setup_logging
    from rrra_core.runtime.config import config_from_args
    from rrra_core.runtime.errors import ConfigError
    from rrra_core.runtime.run_config import read_run_config, resume_run
    from rrra_core.runtime.runs import create_run
    from rrra_core.training.phase1 import Phase1Config, phase1_config_dict, train_phase1

    args = build_parser().parse_args(argv)
    setup_logging()
    if args.resume:
        run, saved = resume_run(args.resume, "phase1", root=args.runs_dir)
        enc, cfg = saved.encoder_config(EncoderConfig), saved.phase_config(Phase1Config)
        mining = saved.section("mining", MiningConfig)
    else:
        base = read_run_config(args.config) if args.config else None
        enc = config_from_args(EncoderConfig, args, base=base.encoder if base else None)
        cfg = config_from_args(Phase1Config, args, base=base.phase_settings(Phase1Config) if base else None)
        mining = config_from_args(
            MiningConfig, args, prefix="mine_", base=base.sections.get("mining") if base else None
        )
        check_run_inputs(
            enc.model,
            cfg.dataset,
            (cfg.train_split, cfg.eval_split),
            query_max_length=enc.query_max_length,
            doc_max_length=enc.doc_max_length,
        )
        if cfg.hard_negatives not in ("none", "mine") and not Path(cfg.hard_negatives).is_file():
            raise ConfigError(f"{cfg.hard_negatives}: hard-negatives file not found (or give 'none' or 'mine')")
        run = None
    with distributed.session(enc.device):
        run = distributed.open_run_on_main(
            run,
            lambda: create_run("phase1", phase1_config_dict(enc, cfg, mining), run_id=args.run_id, root=args.runs_dir),
        )
        metrics = train_phase1(run, enc, cfg, mining)
        if distributed.is_main():
            summary = {"run": str(run.path), "before": metrics.get("before"), "after": metrics.get("after")}
            print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    from rrra_core.runtime.cli import run_main

    sys.exit(run_main(main))
