"""Evaluate a bi-encoder on a BEIR dataset split (nDCG@10, RR@10, R@k; answer recall for QA sets).

Example:
    python scripts/evaluate.py --dataset scifact --split test --model minilm --trec-out scifact.run
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
    p.add_argument(
        "--dataset", default="scifact", help="embedded dataset (squad, scifact, cranfield, adi) or a BEIR folder"
    )
    p.add_argument("--split", default="test", help="qrels split to evaluate")
    p.add_argument("--k", type=int, default=100, help="retrieval depth")
    p.add_argument("--index-kind", default="auto", help="auto, flat, ivf or hnsw")
    p.add_argument("--trec-out", help="also write the run in TREC format to this file")
    p.add_argument("--json-out", help="also write the metrics as JSON to this file")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the embedding cache")
    p.add_argument(
        "--adapter", help="also rerank the top-k with this RRRA adapter folder (or a run folder holding adapter/)"
    )
    p.add_argument("--lambda-rr", type=float, default=1.0, help="rerank strength; 0 reproduces the retriever's ranking")
    p.add_argument(
        "--rerank-signal",
        default="p_rel",
        choices=("p_rel", "qa"),
        help="adapter signal fused with the retriever score",
    )
    add_config_arguments(p, EncoderConfig)
    return p


def main(argv: list[str] | None = None) -> int:
    from rrra_core.data import load_dataset
    from rrra_core.retrieval.dense import retrieve
    from rrra_core.retrieval.encoder import BiEncoder, EncoderConfig
    from rrra_core.retrieval.evaluation import answer_recall, evaluate, write_trec_run
    from rrra_core.runtime.cli import check_run_inputs, setup_logging
    from rrra_core.runtime.config import config_from_args
    from rrra_core.runtime.device import resolve_device

    args = build_parser().parse_args(argv)
    setup_logging()
    cfg = config_from_args(EncoderConfig, args)
    # A length the model cannot take is one line here, not a tensor-size traceback after the corpus is encoded.
    check_run_inputs(
        cfg.model, args.dataset, (args.split,), query_max_length=cfg.query_max_length, doc_max_length=cfg.doc_max_length
    )
    data = load_dataset(args.dataset, args.split)
    encoder = BiEncoder.from_pretrained(cfg.model, shared=cfg.shared).to(resolve_device(cfg.device))
    res = retrieve(
        encoder, data.corpus, data.queries, cfg, k=args.k, index_kind=args.index_kind, cache=not args.no_cache
    )
    runs = {"retriever": res.run}
    if args.adapter:
        from rrra_core.adapter import adapter_folder, adapter_rerank_signal, load_adapter
        from rrra_core.retrieval.rerank import rerank_run

        adapter, _ = load_adapter(adapter_folder(args.adapter), device=encoder.device)
        signal = adapter_rerank_signal(
            adapter, res.run, res.query_ids, res.query_vectors, res.corpus.ids, res.corpus.vectors, args.rerank_signal
        )
        runs["reranked"] = rerank_run(res.run, signal, args.lambda_rr)
    texts = {d: doc.text for d, doc in data.corpus.items()}
    all_metrics = {}
    for name, run in runs.items():
        m = evaluate(data.qrels, run)
        if data.answers:
            m.update(answer_recall(run, data.answers, texts))
        all_metrics[name] = m
    metrics = all_metrics["retriever"] if len(all_metrics) == 1 else all_metrics
    out = {
        "dataset": data.name,
        "split": data.split,
        "queries": len(data.queries),
        "docs": len(data.corpus),
        "model": cfg.model,
        "metrics": metrics,
    }
    print(json.dumps(out, indent=2))
    if args.trec_out:
        write_trec_run(args.trec_out, runs.get("reranked", res.run))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    from rrra_core.runtime.cli import run_main

    sys.exit(run_main(main))
