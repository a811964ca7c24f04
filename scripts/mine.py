"""Mine hard negatives for a dataset split and write them as Tevatron JSONL (with retriever scores).

Candidates are the top-K documents from the index with labelled positives
removed; a rank window, a relative-margin filter and SimANS or uniform sampling
narrow them down (see ../shared/docs/RRRA.md, "Baselines").

Example:
    python scripts/mine.py --dataset scifact --split train --out scifact-negatives.jsonl --sampler simans --n-neg 8
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

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="scifact", help="embedded dataset name or a BEIR folder")
    p.add_argument("--split", default="train", help="qrels split whose queries get negatives")
    p.add_argument("--out", required=True, help="Tevatron JSONL to write (.gz allowed)")
    p.add_argument("--format", default="tevatron", choices=("tevatron", "flag"), help="output format")
    p.add_argument("--index-kind", default="auto", help="auto, flat, ivf or hnsw")
    add_config_arguments(p, EncoderConfig)
    add_config_arguments(p, MiningConfig)
    return p


def main(argv: list[str] | None = None) -> int:
    from rrra_core.data import load_dataset, write_flag, write_tevatron
    from rrra_core.negatives.mining import MiningConfig, mine_hard_negatives, mined_examples
    from rrra_core.retrieval.dense import retrieve
    from rrra_core.retrieval.encoder import BiEncoder, EncoderConfig
    from rrra_core.retrieval.evaluation import rank_run
    from rrra_core.runtime.cli import check_run_inputs, setup_logging
    from rrra_core.runtime.config import config_from_args
    from rrra_core.runtime.device import resolve_device

    args = build_parser().parse_args(argv)
    setup_logging()
    enc_cfg = config_from_args(EncoderConfig, args)
    mining = config_from_args(MiningConfig, args)
    check_run_inputs(
        enc_cfg.model,
        args.dataset,
        (args.split,),
        query_max_length=enc_cfg.query_max_length,
        doc_max_length=enc_cfg.doc_max_length,
    )
    data = load_dataset(args.dataset, args.split)
    encoder = BiEncoder.from_pretrained(enc_cfg.model, shared=enc_cfg.shared).to(resolve_device(enc_cfg.device))
    res = retrieve(encoder, data.corpus, data.queries, enc_cfg, k=mining.top_k, index_kind=args.index_kind)
    mined = mine_hard_negatives(rank_run(res.run), data.qrels, None, mining)
    examples = mined_examples(mined, data.queries, data.corpus, data.qrels, res.run)
    (write_tevatron if args.format == "tevatron" else write_flag)(args.out, examples)
    n_neg = sum(len(e.negatives) for e in examples)
    print(json.dumps({"queries": len(examples), "negatives": n_neg, "out": args.out}))
    return 0


if __name__ == "__main__":
    from rrra_core.runtime.cli import run_main

    sys.exit(run_main(main))
