"""Speed benchmarks: encoding throughput, query latency, index scale, training steps.

Each part writes ``<out>/speed_<part>.json`` and ``.md`` (default ``results/``),
headed by the command that made them, the CPU and the load average before and
after. Comparisons run both sides in the same process, alternating, and are
reported as ratios, because the machine may be shared.

Parts:
    encode   our encode_texts (fp32 and --precision) against sentence-transformers' encode,
             same model, texts, max length and batch size; GFLOP/s against the CPU's peak
    latency  one query at a time: encode, search, adapter rerank of the top k; p50/p95,
             the rerank's share, and a cross-encoder rerank of the same documents
    index    synthetic clustered vectors plus the demo corpus: exact, IVF and HNSW build
             time, memory, queries/s and recall@10 against exact
    train    phase-1 and phase-3 training steps (the real train_phase1/train_phase3 loops)
             at the same batch: seconds per step and peak memory
    all      the four in turn

Examples:
    python scripts/bench_speed.py encode
    python scripts/bench_speed.py latency --device cuda
    python scripts/bench_speed.py index --index-n 1000000
    python scripts/bench_speed.py train --train-steps 5 --train-rounds 2
"""

from __future__ import annotations

import argparse
import shlex
import sys
from functools import partial
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PARTS = ("encode", "latency", "index", "train")
DEFAULT_ADAPTER = "runs/demo-squad/adapter"  # rrra_core.speed.timed_adapter.DEFAULT_ADAPTER (not imported: torch)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("part", choices=(*PARTS, "all"), help="which benchmark to run")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (FAISS indexes stay on the CPU)")
    p.add_argument("--model", default="minilm", help="encoder folder or 'minilm'")
    p.add_argument("--dataset", default="squad", help="embedded dataset for real texts and queries")
    p.add_argument("--out", default=None, help="folder for the results files (default: results/)")
    p.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: torch's choice). 1 keeps ratios honest on a busy machine: "
        "no parallel region waits for a descheduled thread",
    )
    p.add_argument(
        "--render-only",
        action="store_true",
        help="measure nothing: rewrite the Markdown from the JSON already in --out "
        "(e.g. after editing a speed_<part>.notes.md)",
    )
    _encode_arguments(p.add_argument_group("encode"))
    _latency_arguments(p.add_argument_group("latency"))
    _index_arguments(p.add_argument_group("index"))
    _train_arguments(p.add_argument_group("train"))
    return p


def _encode_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--encode-docs", type=int, default=1000, help="passages to encode (a fixed random sample of the corpus)"
    )
    g.add_argument("--encode-lengths", type=_ints, default=[128, 256], help="max lengths, comma-separated")
    g.add_argument("--encode-batch-size", type=int, default=64, help="batch size for both encoders")
    g.add_argument(
        "--encode-chunk", type=int, default=250, help="texts per alternation round (each side encodes each chunk once)"
    )
    g.add_argument(
        "--precision",
        default="auto",
        choices=("fp32", "bf16", "auto"),
        help="our fast side's precision (fp32 is always measured too)",
    )


def _latency_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--latency-queries", type=int, default=300, help="timed queries")
    g.add_argument("--latency-warmup", type=int, default=10, help="untimed queries first")
    g.add_argument("--latency-k", type=int, default=100, help="documents retrieved and reranked per query")
    g.add_argument(
        "--latency-precision", default="fp32", choices=("fp32", "bf16", "auto"), help="query-encoding precision"
    )
    g.add_argument(
        "--latency-threads",
        type=_ints,
        default=None,
        help="torch thread settings to alternate (default: 1 and the current count)",
    )
    g.add_argument(
        "--ce-queries",
        type=int,
        default=4,
        help="queries also reranked by the cross-encoder (each costs seconds on a CPU)",
    )
    g.add_argument(
        "--adapter",
        default=DEFAULT_ADAPTER,
        help="trained adapter folder; without one an untrained adapter of the same shape is timed",
    )
    g.add_argument("--query-max-length", type=int, default=48, help="query max length (latency, train)")
    g.add_argument("--doc-max-length", type=int, default=128, help="document max length (latency, index, train)")


def _index_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--index-n", type=int, default=1_000_000, help="synthetic vectors (the demo corpus is appended)")
    g.add_argument("--index-clusters", type=int, default=2000, help="Gaussian clusters in the synthetic data")
    g.add_argument("--index-spread", type=float, default=0.04, help="per-coordinate noise around a cluster centre")
    g.add_argument("--index-queries", type=int, default=400, help="synthetic queries (near data points)")
    g.add_argument(
        "--index-real-queries",
        type=int,
        default=100,
        help="real test queries of --dataset, searched over the same index",
    )
    g.add_argument(
        "--index-single", type=int, default=50, help="queries also searched one at a time, for single-query latency"
    )
    g.add_argument("--ivf-nlist", type=int, default=4096, help="IVF lists")
    g.add_argument("--ivf-train-per-list", type=int, default=40, help="k-means training points per list")
    g.add_argument("--nprobe", type=_ints, default=[8, 16, 32, 64, 128], help="IVF nprobe values to sweep")
    g.add_argument("--hnsw-m", type=int, default=32, help="HNSW neighbours per node")
    g.add_argument("--hnsw-ef-construction", type=int, default=40, help="HNSW build beam (the project's default)")
    g.add_argument(
        "--ef-search", type=_ints, default=[32, 64, 128, 256, 512, 1024], help="HNSW efSearch values to sweep"
    )
    g.add_argument("--threads", type=int, default=None, help="FAISS threads (default: all cores)")


def _train_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--train-batch-size", type=int, default=32, help="queries per step, every variant")
    g.add_argument("--train-steps", type=int, default=5, help="measured steps per variant per round")
    g.add_argument("--train-rounds", type=int, default=2, help="rounds; the variants alternate within each")
    g.add_argument("--train-warmup", type=int, default=1, help="untimed first steps of each run")
    g.add_argument(
        "--train-queries", type=int, default=800, help="training queries (a fixed subsample of the train split)"
    )


def _command(argv: list[str] | None) -> str:
    args = sys.argv[1:] if argv is None else argv
    return "python scripts/bench_speed.py" + (" " + shlex.join(args) if args else "")


# Each part's module is imported only when that part runs: they pull in torch, sentence-transformers, FAISS.
def _encode(args: argparse.Namespace, device: Any) -> dict[str, Any]:
    from rrra_core.speed.encode import EncodeBench, bench_encode

    cfg = EncodeBench(
        model=args.model,
        dataset=args.dataset,
        docs=args.encode_docs,
        lengths=tuple(args.encode_lengths),
        batch_size=args.encode_batch_size,
        chunk=args.encode_chunk,
        precision=args.precision,
    )
    return bench_encode(cfg, device)


def _latency(args: argparse.Namespace, device: Any) -> dict[str, Any]:
    from rrra_core.speed.latency import LatencyBench, bench_latency

    cfg = LatencyBench(
        model=args.model,
        dataset=args.dataset,
        queries=args.latency_queries,
        warmup=args.latency_warmup,
        k=args.latency_k,
        precision=args.latency_precision,
        threads=tuple(args.latency_threads) if args.latency_threads else None,
        ce_queries=args.ce_queries,
        adapter=args.adapter,
        query_max_length=args.query_max_length,
        doc_max_length=args.doc_max_length,
    )
    return bench_latency(cfg, device)


def _index(args: argparse.Namespace, device: Any) -> dict[str, Any]:
    from rrra_core.speed.index_scale import IndexBench, bench_index

    cfg = IndexBench(
        model=args.model,
        dataset=args.dataset,
        n=args.index_n,
        clusters=args.index_clusters,
        spread=args.index_spread,
        queries=args.index_queries,
        real_queries=args.index_real_queries,
        single=args.index_single,
        ivf_nlist=args.ivf_nlist,
        ivf_train_per_list=args.ivf_train_per_list,
        nprobe=tuple(args.nprobe),
        hnsw_m=args.hnsw_m,
        hnsw_ef_construction=args.hnsw_ef_construction,
        ef_search=tuple(args.ef_search),
        threads=args.threads,
        query_max_length=args.query_max_length,
        doc_max_length=args.doc_max_length,
    )
    return bench_index(cfg, device)


def _train(args: argparse.Namespace, device: Any) -> dict[str, Any]:
    from rrra_core.speed.train_step import TrainBench, bench_train

    cfg = TrainBench(
        model=args.model,
        dataset=args.dataset,
        batch_size=args.train_batch_size,
        steps=args.train_steps,
        rounds=args.train_rounds,
        warmup=args.train_warmup,
        queries=args.train_queries,
        adapter=args.adapter,
        query_max_length=args.query_max_length,
        doc_max_length=args.doc_max_length,
    )
    return bench_train(cfg, device)


BENCHES = {"encode": _encode, "latency": _latency, "index": _index, "train": _train}


def main(argv: list[str] | None = None) -> int:
    from rrra_core.runtime.cli import check_run_inputs, setup_logging
    from rrra_core.runtime.device import resolve_device
    from rrra_core.runtime.paths import REPO_ROOT
    from rrra_core.speed import attach_notes, measure_part, read_result, render, write_result

    args = build_parser().parse_args(argv)
    setup_logging()
    if not args.render_only:
        check_run_inputs(
            args.model, args.dataset, (), query_max_length=args.query_max_length, doc_max_length=args.doc_max_length
        )
    device = resolve_device(args.device)
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    out_dir = Path(args.out) if args.out else REPO_ROOT / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    command = _command(argv)
    for part in PARTS if args.part == "all" else (args.part,):
        stem = out_dir / f"speed_{part}"
        if args.render_only:
            result = read_result(stem)
        else:
            result = measure_part(part, command, device, partial(BENCHES[part], args, device))
        # Hand-written analysis (limits, what was tried) lives beside the numbers and is appended on every rendering.
        attach_notes(result, out_dir / f"speed_{part}.notes.md")
        write_result(stem, result, render(result))
    return 0


if __name__ == "__main__":
    from rrra_core.runtime.cli import run_main

    sys.exit(run_main(main))
