"""Build the Cranfield input runs of the review-queue benchmark: one phase-2 run per planting seed.

Each run trains the adapter (MiniLM, frozen, ``mu`` 0.3, top-100, 10 epochs) on
Cranfield's training qrels with ``plant_false_negatives(qrels, 0.3, seed)``
applied, so the hidden positives are false negatives whose truth
``scripts/bench_review.py cranfield`` rebuilds from the same seed. A run that
already has its predictions is kept, so a killed build resumes.

Example (then the benchmark, as its result file's header says):
    python scripts/make_review_runs.py --seeds 0 1 2
    python scripts/bench_review.py cranfield --predictions runs/review-cranfield-s{0,1,2}/predictions.parquet \\
        --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

HIDE_FRACTION = 0.3


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="planting seeds, one run each")
    p.add_argument("--epochs", type=int, default=10, help="adapter epochs")
    p.add_argument("--prefix", default="review-cranfield", help="run ids are <prefix>-s<seed>")
    return p


def build_run(seed: int, epochs: int, prefix: str) -> str:
    """The phase-2 run for one planting seed (kept if it already has its predictions); returns its id."""
    from rrra_core.adapter import AdapterFitConfig, LabelConfig
    from rrra_core.data.beir import load_dataset
    from rrra_core.negatives.fn_detection import plant_false_negatives
    from rrra_core.retrieval.encoder import EncoderConfig
    from rrra_core.runtime.errors import ConfigError
    from rrra_core.runtime.runs import create_run, open_run
    from rrra_core.training.phase2 import Phase2Config, phase2_config_dict, train_phase2

    run_id = f"{prefix}-s{seed}"
    enc = EncoderConfig(model="minilm", query_max_length=48, doc_max_length=128)
    cfg = Phase2Config(
        dataset="cranfield",
        train_split="train",
        labels=LabelConfig(mu=0.3, top_k=100, seed=seed),
        fit=AdapterFitConfig(epochs=epochs, seed=seed),
    )
    try:
        run = open_run(run_id)
    except ConfigError:
        run = create_run("phase2", phase2_config_dict(enc, cfg), run_id=run_id)
    if run.file("predictions.parquet").is_file():
        return run_id
    train = load_dataset("cranfield", "train")
    visible, _hidden = plant_false_negatives(train.qrels, HIDE_FRACTION, seed)
    data = replace(train, qrels=visible, queries={q: train.queries[q] for q in visible})
    train_phase2(run, enc, cfg, train_data=data)
    return run_id


def main(argv: list[str] | None = None) -> int:
    from rrra_core.runtime.cli import setup_logging

    args = build_parser().parse_args(argv)
    setup_logging()
    for seed in args.seeds:
        print(build_run(seed, args.epochs, args.prefix))
    return 0


if __name__ == "__main__":
    from rrra_core.runtime.cli import run_main

    sys.exit(run_main(main))
