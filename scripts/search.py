"""Search a collection with a trained encoder and rerank the top-k with its adapter.

Queries come from the arguments, or one per line on standard input. Prints one
JSON line per query with the hits (final rank, retriever rank and cosine, the
adapter's P(rel)).

Example:
    python scripts/search.py --dataset squad --adapter runs/demo-squad "who ruled cyprus in 1191"
    python scripts/search.py --dataset cranfield --model runs/<phase3> --adapter runs/<phase3> < questions.txt
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

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("queries", nargs="*", help="query texts; none = read one per line from standard input")
    p.add_argument("--dataset", default="squad", help="embedded dataset name or a BEIR folder whose corpus is searched")
    p.add_argument(
        "--adapter",
        help="rerank with this RRRA adapter folder (or a run folder holding adapter/); none = retriever only",
    )
    p.add_argument("--k", type=int, default=10, help="hits to print per query")
    p.add_argument(
        "--rerank-k", type=int, default=100, help="how many of the retriever's top documents the adapter reranks"
    )
    p.add_argument("--lambda-rr", type=float, default=1.0, help="rerank strength; 0 keeps the retriever's order")
    p.add_argument("--index-kind", default="auto", help="auto, flat, ivf or hnsw")
    add_config_arguments(p, EncoderConfig)
    return p


def main(argv: list[str] | None = None) -> int:
    from rrra_core.adapter import adapter_folder
    from rrra_core.data import dataset_folder, load_corpus, resolve_data_file
    from rrra_core.retrieval.encoder import EncoderConfig
    from rrra_core.retrieval.search import Searcher
    from rrra_core.runtime.cli import check_run_inputs, setup_logging
    from rrra_core.runtime.config import config_from_args

    args = build_parser().parse_args(argv)
    setup_logging()
    cfg = config_from_args(EncoderConfig, args)
    check_run_inputs(
        cfg.model, args.dataset, (), query_max_length=cfg.query_max_length, doc_max_length=cfg.doc_max_length
    )
    if args.adapter:
        adapter_folder(args.adapter)  # a wrong path fails before minutes of encoding
    corpus = load_corpus(resolve_data_file(dataset_folder(args.dataset), "corpus"))
    searcher = Searcher.build(
        corpus,
        cfg,
        adapter=args.adapter,
        index_kind=args.index_kind,
        rerank_k=args.rerank_k,
        lambda_rr=args.lambda_rr,
        progress="encoding corpus",
    )
    queries = args.queries or (line.strip() for line in sys.stdin)
    for text in queries:
        if not text:
            continue
        hits = searcher.search(text, k=args.k)
        print(json.dumps({"query": text, "hits": [h.__dict__ for h in hits]}, ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    from rrra_core.runtime.cli import run_main

    sys.exit(run_main(main))
