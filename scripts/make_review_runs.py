"""Build the input runs of the review-queue benchmark: one phase-2 run per (collection, planting, seed).

Each run trains the adapter (MiniLM, frozen, ``mu`` 0.3, top-100, ``--epochs``)
on the collection's ``--split`` qrels with some positives hidden
(:func:`rrra_core.review.planting.plant`: ``dense`` hides ``round(rate x n)``
of every query's positives, ``sparse`` one positive in a ``rate`` share of the
queries), so the hidden positives are false negatives whose truth
``scripts/bench_review.py`` rebuilds from the same seed. ``--rate 0`` hides
nothing (SQuAD: its false negatives are real, the answer-bearing paragraphs). A
run that already has its predictions is kept, so a killed build resumes; the
encoder's embeddings are cached, so the seeds of one collection encode it once.

Examples (then the benchmark, as its result files' headers say):
    python scripts/make_review_runs.py cranfield --seeds 0 1 2
    python scripts/make_review_runs.py adi --split test --seeds 0 1 2
    python scripts/make_review_runs.py scifact --seeds 0 1 2 --epochs 1
    python scripts/make_review_runs.py cranfield --planting sparse --rate 0.5 --seeds 0 1 2 --epochs 3
    python scripts/make_review_runs.py squad --rate 0 --seeds 0 --epochs 2 --max-queries 1500
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
    p.add_argument("dataset", nargs="?", default="cranfield", help="a dataset name or BEIR folder")
    p.add_argument("--split", default="train", help="the split whose qrels train the adapter")
    p.add_argument("--rate", type=float, default=HIDE_FRACTION, help="share of positives (dense) or queries (sparse)")
    p.add_argument("--planting", choices=("dense", "sparse"), default="dense", help="how positives are hidden")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="planting seeds, one run each")
    p.add_argument("--epochs", type=int, default=10, help="adapter epochs")
    p.add_argument("--max-queries", type=int, default=None, help="train on a seeded draw of this many queries")
    p.add_argument("--prefix", default=None, help="run ids are <prefix>-s<seed> (default: review_run_prefix)")
    return p


def review_run_prefix(dataset: str, planting: str = "dense", rate: float = HIDE_FRACTION) -> str:
    """The default run-id prefix: ``review-<dataset>``, plus the planting when it is not dense at 30 %."""
    name = f"review-{Path(dataset).name}"
    if rate == 0:
        return f"{name}-unplanted"
    if planting == "dense" and rate == HIDE_FRACTION:
        return name
    return f"{name}-{planting}{round(100 * rate)}"


def build_run(
    seed: int,
    epochs: int,
    prefix: str,
    dataset: str = "cranfield",
    split: str = "train",
    rate: float = HIDE_FRACTION,
    planting: str = "dense",
    max_queries: int | None = None,
) -> str:
    """The phase-2 run for one planting seed (kept if it already has its predictions); returns its id."""
    from rrra_core.adapter import AdapterFitConfig, LabelConfig
    from rrra_core.data.beir import load_dataset
    from rrra_core.retrieval.encoder import EncoderConfig
    from rrra_core.review.planting import plant
    from rrra_core.runtime.errors import ConfigError
    from rrra_core.runtime.runs import create_run, open_run
    from rrra_core.training.phase2 import Phase2Config, phase2_config_dict, train_phase2

    run_id = f"{prefix}-s{seed}"
    enc = EncoderConfig(model="minilm", query_max_length=48, doc_max_length=128)
    cfg = Phase2Config(
        dataset=dataset,
        train_split=split,
        max_train_queries=max_queries,
        labels=LabelConfig(mu=0.3, top_k=100, seed=seed),
        fit=AdapterFitConfig(epochs=epochs, seed=seed),
    )
    try:
        run = open_run(run_id)
    except ConfigError:
        run = create_run("phase2", phase2_config_dict(enc, cfg), run_id=run_id)
    if run.file("predictions.parquet").is_file():
        return run_id
    train = load_dataset(dataset, split)
    visible, _hidden = plant(train.qrels, rate, seed, planting) if rate > 0 else (dict(train.qrels), {})
    data = replace(train, qrels=visible, queries={q: train.queries[q] for q in visible})
    train_phase2(run, enc, cfg, train_data=data)
    return run_id


def main(argv: list[str] | None = None) -> int:
    from rrra_core.runtime.cli import setup_logging

    args = build_parser().parse_args(argv)
    setup_logging()
    prefix = args.prefix or review_run_prefix(args.dataset, args.planting, args.rate)
    for seed in args.seeds:
        print(
            build_run(seed, args.epochs, prefix, args.dataset, args.split, args.rate, args.planting, args.max_queries),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    from rrra_core.runtime.cli import run_main

    sys.exit(run_main(main))
