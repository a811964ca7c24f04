"""Encode a corpus (cached) and save a FAISS index with its doc-id mapping.

Example:
    python scripts/index.py --dataset scifact --out indexes/scifact-minilm --index-kind flat
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
    p.add_argument("--dataset", default="scifact", help="embedded dataset name or a BEIR folder")
    p.add_argument("--out", required=True, help="folder to write index.faiss, doc_ids.txt and index.json into")
    p.add_argument("--index-kind", default="auto", help="auto, flat, ivf or hnsw")
    p.add_argument("--embeddings-out", help="also save the vectors as embeddings.npy + ids.txt in this folder")
    add_config_arguments(p, EncoderConfig)
    return p


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    from rrra_core.data import dataset_folder, load_corpus, resolve_data_file
    from rrra_core.retrieval.dense import encode_corpus
    from rrra_core.retrieval.encoder import BiEncoder, EncoderConfig
    from rrra_core.retrieval.index import DenseIndex
    from rrra_core.runtime.cli import check_run_inputs, setup_logging
    from rrra_core.runtime.config import config_from_args
    from rrra_core.runtime.device import resolve_device

    args = build_parser().parse_args(argv)
    setup_logging()
    cfg = config_from_args(EncoderConfig, args)
    check_run_inputs(
        cfg.model, args.dataset, (), query_max_length=cfg.query_max_length, doc_max_length=cfg.doc_max_length
    )
    corpus = load_corpus(resolve_data_file(dataset_folder(args.dataset), "corpus"))
    encoder = BiEncoder.from_pretrained(cfg.model, shared=cfg.shared).to(resolve_device(cfg.device))
    emb = encode_corpus(encoder, corpus, cfg)
    index = DenseIndex.build(emb.vectors, emb.ids, kind=args.index_kind)
    index.save(args.out)
    if args.embeddings_out:
        folder = Path(args.embeddings_out)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "embeddings.npy", emb.vectors)
        (folder / "ids.txt").write_text("".join(i + "\n" for i in emb.ids), encoding="utf-8")
    print(
        json.dumps(
            {
                "docs": len(emb.ids),
                "dim": int(emb.vectors.shape[1]),
                "index": args.out,
                "docs_per_s": None if emb.stats.cached else round(emb.stats.per_second, 2),
                "cached": emb.stats.cached,
            }
        )
    )
    return 0


if __name__ == "__main__":
    from rrra_core.runtime.cli import run_main

    sys.exit(run_main(main))
