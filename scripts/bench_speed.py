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
import copy
import datetime as dt
import gc
import json
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PARTS = ("encode", "latency", "index", "train")
DEFAULT_ADAPTER = "runs/demo-squad/adapter"
GIB = 1024**3
MIB = 1024**2


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
        help="torch intra-op threads (default: torch's choice). 1 keeps ratios honest on a busy machine: no parallel region waits for a descheduled thread",
    )
    p.add_argument(
        "--render-only",
        action="store_true",
        help="measure nothing: rewrite the Markdown from the JSON already in --out (e.g. after editing a speed_<part>.notes.md)",
    )
    g = p.add_argument_group("encode")
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
    g = p.add_argument_group("latency")
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
    g = p.add_argument_group("index")
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
    g = p.add_argument_group("train")
    g.add_argument("--train-batch-size", type=int, default=32, help="queries per step, every variant")
    g.add_argument("--train-steps", type=int, default=5, help="measured steps per variant per round")
    g.add_argument("--train-rounds", type=int, default=2, help="rounds; the variants alternate within each")
    g.add_argument("--train-warmup", type=int, default=1, help="untimed first steps of each run")
    g.add_argument(
        "--train-queries", type=int, default=800, help="training queries (a fixed subsample of the train split)"
    )
    return p


# ------------------------------------------------------------------ helpers
def _command(argv: list[str] | None) -> str:
    args = sys.argv[1:] if argv is None else argv
    return "python scripts/bench_speed.py" + (" " + shlex.join(args) if args else "")


def _machine(device: Any) -> dict[str, Any]:
    import torch

    from rrra_core.runtime.runs import environment_info
    from rrra_core.speed.measure import cpu_info, cpu_peak_gflops

    info = cpu_info()
    env = environment_info()
    return {
        "cpu": info["model"],
        "cpu_vendor": info["vendor"],
        "cpu_family_model": [info["family"], info["model_number"]],
        "cpu_flags": info["flags"],
        "cpu_count": info["cores"],
        "nominal_mhz": info["mhz"],
        "peak_gflops_estimate": cpu_peak_gflops(info),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "gpu": env["cuda"],
        "versions": {k: env[k] for k in ("python", "torch", "transformers", "faiss")},
        "git_commit": env["git_commit"],
    }


def _header(title: str, r: dict[str, Any]) -> list[str]:
    m = r["machine"]
    peak = m["peak_gflops_estimate"]
    lines = [
        f"# {title}",
        "",
        f"Command: `{r['command']}`",
        "",
        f"Machine: {m['cpu']} ({m['cpu_vendor']} family {m['cpu_family_model'][0]} model {m['cpu_family_model'][1]}), "
        f"{m['cpu_count']} cores, {m['torch_threads']} torch threads, device {m['device']}"
        + (f" ({m['gpu']})" if m.get("gpu") else "")
        + f". Nominal peak {peak['fp32']} GFLOP/s fp32"
        + (f", {peak['bf16']} bf16" if peak.get("bf16") else "")
        + f" ({peak['basis']}, {peak['ghz']} GHz).",
        "",
        f"Load average (1, 5, 15 min) before: {r['load']['before']}, after: {r['load']['after']}. "
        f"The machine is shared: a load above the core count means the timings are slower than on an idle machine, "
        f"and the same-process ratios are the robust numbers. Started {r['started']}, wall time {r['wall_seconds']:.0f} s.",
        "",
    ]
    return lines


def _write(stem: Path, result: dict[str, Any], markdown: str) -> None:
    from rrra_core.runtime.runs import write_json_atomic

    write_json_atomic(stem.with_suffix(".json"), result)
    stem.with_suffix(".md").write_text(markdown, encoding="utf-8")
    print(f"wrote {stem.with_suffix('.md')} and .json", file=sys.stderr)


def _mb(x: float | None) -> str:
    return "n/a" if x is None else f"{x / MIB:,.0f} MiB"


def _fmt(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:,.{digits}f}"


def _load_adapter(folder: str | None, dim: int, device: Any) -> tuple[Any, str]:
    """The trained adapter in ``folder``, or an untrained one of the same shape (timing does not depend on weights)."""
    from rrra_core.adapter import AdapterConfig, RRRAAdapter, load_adapter
    from rrra_core.runtime.paths import REPO_ROOT

    if folder:
        path = Path(folder)
        path = path if path.is_absolute() else REPO_ROOT / path
        if path.is_dir():
            adapter, cfg = load_adapter(path, device=device)
            if cfg.dim == dim:
                return adapter, str(path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path)
    return RRRAAdapter(AdapterConfig(dim=dim)).to(device).eval(), "untrained adapter of the same shape (timing only)"


# ------------------------------------------------------------------- encode
def bench_encode(args: argparse.Namespace, device: Any) -> dict[str, Any]:
    """Our encode_texts (fp32 and the fast precision) against SentenceTransformer.encode, alternating per chunk."""
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    from rrra_core.data import doc_text, load_dataset
    from rrra_core.retrieval.encoder import BiEncoder, resolve_model_dir
    from rrra_core.retrieval.encoding import encode_texts, native_bf16, resolve_precision
    from rrra_core.speed.measure import (
        alternating_orders,
        encoder_flops,
        gemm_gflops,
        load_average,
        summarize,
        time_call,
    )

    data = load_dataset(args.dataset, "test")
    ids = sorted(data.corpus)
    rng = np.random.default_rng(0)
    pick = rng.choice(len(ids), size=min(args.encode_docs, len(ids)), replace=False)
    texts = [doc_text(data.corpus[ids[i]]) for i in pick]

    encoder = BiEncoder.from_pretrained(args.model).to(device)
    cfg = encoder.query_model.config
    shape = (int(cfg.hidden_size), int(cfg.num_hidden_layers), int(cfg.intermediate_size))
    st = SentenceTransformer(str(resolve_model_dir(args.model)), device=str(device))
    fast = resolve_precision(args.precision, device)
    sides = ["sentence-transformers", "ours fp32"] + ([f"ours {fast}"] if fast != "fp32" else [])
    bs = args.encode_batch_size

    def run(side: str, chunk: list[str], max_length: int) -> np.ndarray:
        if side == "sentence-transformers":
            st.max_seq_length = max_length
            return st.encode(
                chunk, batch_size=bs, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
            )
        return encode_texts(encoder, chunk, "doc", max_length, bs, progress=False, precision=side.split()[-1])

    gemm_before = {
        "fp32": round(gemm_gflops("fp32", device=str(device)), 1),
        "bf16": round(gemm_gflops("bf16", device=str(device)), 1),
    }
    per_length = []
    for max_length in args.encode_lengths:
        lengths = np.array(
            [len(x) for x in encoder.tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]
        )
        chunks = [
            list(range(s, min(s + args.encode_chunk, len(texts)))) for s in range(0, len(texts), args.encode_chunk)
        ]
        for side in sides:  # warm-up: kernel choice, weight casts, allocator
            run(side, texts[:bs], max_length)
        seconds = {s: 0.0 for s in sides}
        chunk_ratio: dict[str, list[float]] = {s: [] for s in sides[1:]}
        emb = {s: np.zeros((len(texts), encoder.dim), dtype=np.float32) for s in sides}
        for order, rows in zip(alternating_orders(sides, len(chunks)), chunks):
            chunk = [texts[i] for i in rows]
            took = {}
            for side in order:
                took[side], vecs = time_call(lambda: run(side, chunk, max_length), device)
                emb[side][rows] = vecs
                seconds[side] += took[side]
            for side in sides[1:]:
                chunk_ratio[side].append(took["sentence-transformers"] / took[side])
        # Useful tokens / computed tokens: ours sorts by token count, sentence-transformers by characters.
        padded = padded_st = 0
        for rows in chunks:
            srt = np.sort(lengths[rows])[::-1]
            padded += sum(int(srt[i]) * len(srt[i : i + bs]) for i in range(0, len(srt), bs))
            by_chars = lengths[rows][np.argsort([-len(texts[i]) for i in rows], kind="stable")]
            padded_st += sum(
                int(by_chars[i : i + bs].max()) * len(by_chars[i : i + bs]) for i in range(0, len(by_chars), bs)
            )
        flops = encoder_flops(lengths, *shape)
        peak = _machine_peak(device)
        result_sides = {}
        for side in sides:
            s = seconds[side]
            gflops = flops / s / 1e9
            prec = "bf16" if side.endswith("bf16") else "fp32"
            result_sides[side] = {
                "seconds": round(s, 2),
                "docs_per_s": round(len(texts) / s, 2),
                "tokens_per_s": round(float(lengths.sum()) / s, 1),
                "gflops": round(gflops, 1),
                "pct_of_nominal_peak": round(100 * gflops / peak[prec], 1) if peak.get(prec) else None,
                "pct_of_gemm_ceiling": round(100 * gflops / gemm_before[prec], 1),
            }
        cos_st = (emb["ours fp32"] * emb["sentence-transformers"]).sum(axis=1)
        entry: dict[str, Any] = {
            "max_length": max_length,
            "docs": len(texts),
            "tokens": int(lengths.sum()),
            "mean_tokens": round(float(lengths.mean()), 1),
            "truncated_share": round(float((lengths >= max_length).mean()), 3),
            "padding_efficiency": round(float(lengths.sum()) / padded, 3),
            "padding_efficiency_st": round(float(lengths.sum()) / padded_st, 3),
            "gflop": round(flops / 1e9, 1),
            "sides": result_sides,
            "ratios": {
                side: {
                    "throughput_vs_st": round(seconds["sentence-transformers"] / seconds[side], 3),
                    "per_chunk": summarize(chunk_ratio[side]),
                }
                for side in sides[1:]
            },
            "cosine_ours_fp32_vs_st": {"min": round(float(cos_st.min()), 6), "mean": round(float(cos_st.mean()), 6)},
            "load_after": load_average(),
        }
        if fast != "fp32":
            cos = (emb["ours fp32"] * emb[f"ours {fast}"]).sum(axis=1)
            entry[f"cosine_ours_{fast}_vs_fp32"] = {
                "min": round(float(cos.min()), 6),
                "mean": round(float(cos.mean()), 6),
                "within_1e-2": bool(cos.min() >= 1 - 1e-2),
            }
        per_length.append(entry)
        print(
            f"encode max_length {max_length}: "
            + ", ".join(f"{k} {v['docs_per_s']} docs/s" for k, v in result_sides.items()),
            file=sys.stderr,
        )
    gemm_after = {
        "fp32": round(gemm_gflops("fp32", device=str(device)), 1),
        "bf16": round(gemm_gflops("bf16", device=str(device)), 1),
    }
    best_side = sides[-1]
    worst = min(e["ratios"][best_side]["throughput_vs_st"] for e in per_length)
    return {
        "settings": {
            "model": args.model,
            "dataset": f"{args.dataset} corpus (test split's), {len(texts)} passages, fixed random sample (seed 0), title + ' ' + text",
            "batch_size": bs,
            "chunk": args.encode_chunk,
            "precision_arg": args.precision,
            "fast_precision": fast,
            "native_bf16": native_bf16(torch.device(device)),
            "flops_model": f"encoder_flops: 2 x layers x (4H^2 + 2HF + 2TH) per token, real tokens only; H, layers, F = {shape}",
            "sentence_transformers": "SentenceTransformer.encode(normalize_embeddings=True), max_seq_length set per length, fp32",
        },
        "gemm_ceiling_gflops": {
            "before": gemm_before,
            "after": gemm_after,
            "how": "best of 5 torch 1024^3 matrix products",
        },
        "lengths": per_length,
        "targets": {
            "side": best_side,
            "worst_ratio_vs_st": worst,
            "ratio_at_least_1": worst >= 1.0,
            "stretch_at_least_1_5": worst >= 1.5,
            "cosine_within_1e-2": all(
                e.get(f"cosine_ours_{fast}_vs_fp32", {"within_1e-2": True})["within_1e-2"] for e in per_length
            ),
        },
    }


def _machine_peak(device: Any) -> dict[str, Any]:
    """The nominal CPU peak over the cores torch may use (none on a GPU)."""
    import torch

    from rrra_core.speed.measure import cpu_info, cpu_peak_gflops

    info = cpu_info()
    return cpu_peak_gflops(info, cores=min(torch.get_num_threads(), info["cores"] or 1)) if str(device) == "cpu" else {}


def render_encode(r: dict[str, Any]) -> str:
    s, t = r["settings"], r["targets"]
    lines = _header("Speed: encoding throughput against sentence-transformers", r)
    lines += [
        f"Texts: {s['dataset']}. Batch size {s['batch_size']} on both sides. Sides alternate in rotating order over chunks of "
        f"{s['chunk']} texts (each side encodes every chunk once), so load drift hits all sides alike. Ours sorts each call's texts "
        "by token length and pads per batch; sentence-transformers sorts by character length and pads per batch.",
        "",
        f"Our fast side: precision `{s['precision_arg']}` -> {s['fast_precision']} (native bf16 on this device: {s['native_bf16']}).",
        f"GEMM ceiling measured here (torch 1024^3, best of 5): before {r['gemm_ceiling_gflops']['before']}, after {r['gemm_ceiling_gflops']['after']} GFLOP/s. "
        f"FLOPs: {s['flops_model']}.",
        "",
    ]
    for e in r["lengths"]:
        lines += [
            f"## Max length {e['max_length']}",
            "",
            f"Load average after this length: {e['load_after']}. {e['docs']} passages, {e['tokens']:,} tokens (mean {e['mean_tokens']}, {100 * e['truncated_share']:.0f}% truncated), "
            f"{e['gflop']:,} GFLOP of useful work. Share of computed tokens that are real (not padding): ours {100 * e['padding_efficiency']:.0f}% "
            f"(sorted by token count), sentence-transformers {100 * e['padding_efficiency_st']:.0f}% (sorted by characters).",
            "",
            "| side | seconds | docs/s | tokens/s | GFLOP/s | % nominal peak | % GEMM ceiling | throughput vs sentence-transformers | per-chunk ratio p50 [min, max] |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for side, v in e["sides"].items():
            ratio = e["ratios"].get(side)
            rtxt = "1 (baseline)" if ratio is None else f"**{ratio['throughput_vs_st']:.2f}x**"
            ptxt = (
                ""
                if ratio is None
                else f"{ratio['per_chunk']['p50']:.2f} [{ratio['per_chunk']['min']:.2f}, {ratio['per_chunk']['max']:.2f}]"
            )
            lines.append(
                f"| {side} | {v['seconds']} | {v['docs_per_s']} | {v['tokens_per_s']:,} | {v['gflops']} | {_fmt(v['pct_of_nominal_peak'], 1)} | {v['pct_of_gemm_ceiling']} | {rtxt} | {ptxt} |"
            )
        lines.append("")
        c = e["cosine_ours_fp32_vs_st"]
        lines.append(f"Cosine, ours fp32 vs sentence-transformers: min {c['min']:.6f}, mean {c['mean']:.6f}.")
        for k, v in e.items():
            if k.startswith("cosine_ours_") and k != "cosine_ours_fp32_vs_st":
                lines.append(
                    f"Cosine, ours {k.split('_')[2]} vs ours fp32: min {v['min']:.6f}, mean {v['mean']:.6f} ({'within' if v['within_1e-2'] else 'OUTSIDE'} 1e-2)."
                )
        lines.append("")
    worst = t["worst_ratio_vs_st"]
    verdict = "met" if t["ratio_at_least_1"] else f"MISSED by {1 - worst:.2f}"
    per_len = []
    for e in r["lengths"]:
        x = e["ratios"][t["side"]]["throughput_vs_st"]
        per_len.append(
            f"max length {e['max_length']}: {x:.2f}x"
            + (" (stretch met)" if x >= 1.5 else f" (stretch missed by {1.5 - x:.2f})")
        )
    lines += [
        "## Targets",
        "",
        f"- Throughput ratio vs sentence-transformers >= 1.0 (stretch 1.5), side `{t['side']}`, worst over lengths **{worst:.2f}x** -> {verdict}; "
        + "; ".join(per_len)
        + ".",
        f"- bf16 results within 1e-2 cosine of fp32: {'yes' if t['cosine_within_1e-2'] else 'NO'}.",
        "",
    ]
    lines += r.get("notes_md", [])
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ latency
def bench_latency(args: argparse.Namespace, device: Any) -> dict[str, Any]:
    """Per query: encode, search, adapter rerank of the top k; then a cross-encoder on the same k documents.

    Every query runs once per torch thread setting, the settings alternating in
    rotating order, because on a busy machine small operators can be faster on
    one thread (no waiting at a parallel region's barrier for a thread that
    another process has pushed off its core).
    """
    import numpy as np
    import torch

    from rrra_core.adapter import predict_pairs
    from rrra_core.data import doc_text, load_dataset
    from rrra_core.retrieval.dense import encode_corpus
    from rrra_core.retrieval.encoder import BiEncoder, EncoderConfig
    from rrra_core.retrieval.encoding import resolve_precision
    from rrra_core.retrieval.index import DenseIndex
    from rrra_core.retrieval.rerank import rerank_order
    from rrra_core.retrieval.search import Searcher
    from rrra_core.speed.measure import alternating_orders, load_average, summarize, time_call

    data = load_dataset(args.dataset, "test")
    enc_cfg = EncoderConfig(
        model=args.model, query_max_length=args.query_max_length, doc_max_length=args.doc_max_length, device=str(device)
    )
    encoder = BiEncoder.from_pretrained(args.model).to(device)
    corpus = encode_corpus(encoder, data.corpus, enc_cfg, progress=False)
    index = DenseIndex.build(corpus.vectors, corpus.ids, kind="auto")
    adapter, adapter_src = _load_adapter(args.adapter, encoder.dim, device)
    precision = resolve_precision(args.latency_precision, device)
    k = args.latency_k
    # The product's serving path: rrra_core.retrieval.search.Searcher, its stages timed apart.
    searcher = Searcher(
        encoder,
        index,
        corpus.vectors,
        adapter,
        query_max_length=args.query_max_length,
        rerank_k=k,
        lambda_rr=1.0,
        precision=precision,
    )
    qids = sorted(data.queries)[: args.latency_warmup + args.latency_queries]
    default_threads = torch.get_num_threads()
    settings = [
        f"{t} thread{'s' if t > 1 else ''}" for t in dict.fromkeys(args.latency_threads or [1, default_threads])
    ]

    def use(setting: str) -> None:
        torch.set_num_threads(int(setting.split()[0]))

    def rerank(qv: np.ndarray, cos: np.ndarray, rows: np.ndarray) -> tuple[list[int], np.ndarray]:
        order, p = searcher.rerank(qv, rows, cos)
        return rows[order].tolist(), p

    def rerank_plain(qv: np.ndarray, cos: np.ndarray, rows: np.ndarray) -> tuple[list[int], np.ndarray]:
        # The batch path (phase-2 scoring, evaluation): the adapter's plain forward over every pair.
        pred = predict_pairs(adapter, qv, corpus.vectors[rows], q_index=np.zeros(len(rows), dtype=np.int64))
        return rows[rerank_order(cos[: len(rows)], pred["p_rel"], 1.0)].tolist(), pred["p_rel"]

    times = {s: {"encode": [], "search": [], "rerank": [], "total": [], "rerank_plain": []} for s in settings}
    agreement = {"max_abs_p_rel_diff": 0.0, "same_order": 0, "queries": 0}
    kept: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []
    for n, (q, order) in enumerate(zip(qids, alternating_orders(settings, len(qids)))):
        for setting in order:
            use(setting)
            t_enc, qv = time_call(lambda: searcher.encode(data.queries[q]), device)
            t_search, (found, scores) = time_call(lambda: searcher.retrieve(qv, k), "cpu")
            pair = [
                ("rerank", lambda: rerank(qv, scores, found)),
                ("rerank_plain", lambda: rerank_plain(qv, scores, found)),
            ]
            took, got = {}, {}
            for name, fn in pair if n % 2 == 0 else pair[::-1]:
                took[name], got[name] = time_call(fn, device)
            if n >= args.latency_warmup:
                for key, v in (
                    ("encode", t_enc),
                    ("search", t_search),
                    ("rerank", took["rerank"]),
                    ("total", t_enc + t_search + took["rerank"]),
                    ("rerank_plain", took["rerank_plain"]),
                ):
                    times[setting][key].append(v)
                agreement["max_abs_p_rel_diff"] = max(
                    agreement["max_abs_p_rel_diff"], float(np.abs(got["rerank"][1] - got["rerank_plain"][1]).max())
                )
                agreement["same_order"] += int(got["rerank"][0] == got["rerank_plain"][0])
                agreement["queries"] += 1
        if n >= args.latency_warmup:
            kept.append((q, qv, scores, found))

    load_after_loop = load_average()

    # Cross-encoder: MiniLM's own transformer with a linear head on [CLS], reading (query, passage)
    # pairs; the head is untrained, which does not change its cost.
    backbone = copy.deepcopy(encoder.query_model).eval()
    head = torch.nn.Linear(encoder.dim, 1).to(device).eval()
    tok = encoder.tokenizer
    pair_max = args.query_max_length + args.doc_max_length
    ce_bs = 32

    @torch.inference_mode()
    def cross_encode(query: str, docs: list[str]) -> np.ndarray:
        texts = [doc_text(data.corpus[d]) for d in docs]
        enc = tok([query] * len(texts), texts, truncation="only_second", max_length=pair_max)
        order = np.argsort([-len(x) for x in enc["input_ids"]], kind="stable")
        out = np.zeros(len(texts), dtype=np.float32)
        for s in range(0, len(texts), ce_bs):
            idx = order[s : s + ce_bs]
            batch = tok.pad([{key: enc[key][i] for key in enc.keys()} for i in idx], return_tensors="pt")
            hidden = backbone(**{key: v.to(device) for key, v in batch.items()}).last_hidden_state[:, 0]  # (b, H)
            out[idx] = head(hidden).squeeze(-1).float().cpu().numpy()
        return out

    ce = {s: {"cross-encoder": [], "adapter": []} for s in settings}
    ce_tokens = []
    if kept and args.ce_queries > 0:
        q0, _, _, rows0 = kept[0]
        cross_encode(data.queries[q0], [corpus.ids[r] for r in rows0[:8]])  # warm-up
        for i, (q, qv, cos, rows) in enumerate(kept[: args.ce_queries]):
            docs = [corpus.ids[r] for r in rows]
            for setting in alternating_orders(settings, args.ce_queries)[i]:
                use(setting)
                pair = [
                    ("adapter", lambda: rerank(qv, cos, rows)),
                    ("cross-encoder", lambda: cross_encode(data.queries[q], docs)),
                ]
                for name, fn in pair if i % 2 == 0 else pair[::-1]:
                    ce[setting][name].append(time_call(fn, device)[0])
            ce_tokens.append(
                sum(
                    len(x)
                    for x in tok(
                        [data.queries[q]] * len(docs),
                        [doc_text(data.corpus[d]) for d in docs],
                        truncation="only_second",
                        max_length=pair_max,
                    )["input_ids"]
                )
            )
    torch.set_num_threads(default_threads)
    load_after_ce = load_average()

    per_setting = {}
    for s in settings:
        enc_t, srch_t, rr_t, rp_t = (np.array(times[s][x]) for x in ("encode", "search", "rerank", "rerank_plain"))
        added = rr_t / (enc_t + srch_t)
        added_p = rp_t / (enc_t + srch_t)
        ratio = float(np.median(ce[s]["cross-encoder"]) / np.median(ce[s]["adapter"])) if ce[s]["adapter"] else None
        per_setting[s] = {
            "latency_ms": {key: summarize(v, scale=1e3) for key, v in times[s].items()},
            "rerank_share_of_total": summarize(rr_t / (enc_t + srch_t + rr_t)),
            "rerank_added_to_encode_plus_search": summarize(added),
            "plain_rerank_added_to_encode_plus_search": summarize(added_p),
            "cross_encoder": {
                "queries": len(ce[s]["cross-encoder"]),
                "cross_encoder_ms": summarize(ce[s]["cross-encoder"], scale=1e3),
                "adapter_ms_same_queries": summarize(ce[s]["adapter"], scale=1e3),
                "ratio_median": round(ratio, 1) if ratio else None,
            },
            "targets": {
                "rerank_added_p50": round(float(np.median(added)), 4),
                "rerank_adds_at_most_10pct": bool(np.median(added) <= 0.10),
                "adapter_vs_cross_encoder": round(ratio, 1) if ratio else None,
                "adapter_500x_cheaper": bool(ratio and ratio >= 500),
                "plain_rerank_added_p50": round(float(np.median(added_p)), 4),
            },
        }
    return {
        "settings": {
            "model": args.model,
            "dataset": f"{args.dataset} test: {len(data.corpus)} documents, first {len(qids)} query ids in sorted order ({args.latency_warmup} warm-up)",
            "index": f"DenseIndex kind=auto -> {index.kind}",
            "k": k,
            "query_max_length": args.query_max_length,
            "doc_max_length": args.doc_max_length,
            "query_precision": precision,
            "adapter": adapter_src,
            "rerank": "Searcher.rerank: the factored adapter (rrra_core.adapter.factored.FactoredAdapter.p_rel, P(rel)) + rerank_order, lambda_rr = 1; "
            "rerank_plain: predict_pairs (the plain forward) + rerank_order, timed in the same loop",
            "cross_encoder": f"MiniLM transformer + linear head on [CLS], (query, passage) pairs truncated to {pair_max} tokens, length-sorted batches of {ce_bs}, fp32",
            "encode": "Searcher.encode: encode_texts on one query (tokenise, pad, forward, pool); search: Searcher.retrieve (FAISS top k on one FAISS thread, ties by doc id)",
            "thread_settings": settings,
            "cross_encoder_pair_tokens_per_query_mean": round(float(np.mean(ce_tokens)), 1) if ce_tokens else None,
            "load_after_query_loop": load_after_loop,
            "load_after_cross_encoder": load_after_ce,
        },
        "rerank_agreement": agreement,
        "by_threads": per_setting,
    }


def render_latency(r: dict[str, Any]) -> str:
    s = r["settings"]
    lines = _header("Speed: query latency (encode, search, adapter rerank)", r)
    lines += [
        "Settings: " + "; ".join(f"{k}: {v}" for k, v in s.items()) + ".",
        "",
        "Each query runs alone: encode it, search the index for the top k, rerank those k with the adapter; stages are timed per query. "
        "Every query runs once per torch thread setting, settings alternating in rotating order.",
        "",
    ]
    for name, v in r["by_threads"].items():
        ce, t = v["cross_encoder"], v["targets"]
        lines += [
            f"## {name}",
            "",
            "| stage | p50 ms | p95 ms | mean ms | max ms |",
            "|---|---|---|---|---|",
            *[f"| {k} | {x['p50']} | {x['p95']} | {x['mean']} | {x['max']} |" for k, x in v["latency_ms"].items()],
            "",
            f"Rerank share of the total, per query: p50 {100 * v['rerank_share_of_total']['p50']:.1f}%, p95 {100 * v['rerank_share_of_total']['p95']:.1f}%. "
            f"Rerank time added on top of encode + search: p50 {100 * v['rerank_added_to_encode_plus_search']['p50']:.1f}%, p95 {100 * v['rerank_added_to_encode_plus_search']['p95']:.1f}%. "
            f"The plain forward instead (`rerank_plain` row): p50 {100 * v['plain_rerank_added_to_encode_plus_search']['p50']:.1f}%, p95 {100 * v['plain_rerank_added_to_encode_plus_search']['p95']:.1f}%.",
            "",
        ]
        if ce["queries"]:
            lines += [
                f"Adapter vs cross-encoder on the same {s['k']} documents ({ce['queries']} queries, alternating which runs first; "
                f"the cross-encoder reads {s['cross_encoder_pair_tokens_per_query_mean']:,} tokens per query):",
                "",
                "| reranker | p50 ms | mean ms | max ms |",
                "|---|---|---|---|",
                f"| adapter | {ce['adapter_ms_same_queries']['p50']} | {ce['adapter_ms_same_queries']['mean']} | {ce['adapter_ms_same_queries']['max']} |",
                f"| cross-encoder | {ce['cross_encoder_ms']['p50']:,} | {ce['cross_encoder_ms']['mean']:,} | {ce['cross_encoder_ms']['max']:,} |",
                "",
            ]
        lines += [
            f"Targets ({name}):",
            f"- adapter rerank adds <= 10% to the latency: p50 {100 * t['rerank_added_p50']:.1f}% -> "
            + (
                "met"
                if t["rerank_adds_at_most_10pct"]
                else f"MISSED by {100 * t['rerank_added_p50'] - 10:.1f} percentage points"
            )
            + f" (plain forward: {100 * t['plain_rerank_added_p50']:.1f}%);",
            f"- adapter at least 500x cheaper than a cross-encoder: median ratio {_fmt(t['adapter_vs_cross_encoder'], 0)}x -> "
            + ("met" if t["adapter_500x_cheaper"] else "MISSED")
            + ".",
            "",
        ]
    ag = r["rerank_agreement"]
    lines += [
        "## The factored serving path against the plain forward",
        "",
        "`Searcher.rerank` uses `rrra_core.adapter.factored`: the adapter's first layer and the head's query blocks are formed once per query "
        "(W1 z = (Wa + Wc) q + (Wc - Wa + Wb diag(q)) c), so each document costs about 2 d h multiply-adds instead of 4 d h. "
        "`rerank_plain` is the plain forward (`predict_pairs`), timed in the same loop, alternating which runs first. "
        f"Agreement over {ag['queries']} query runs: max |P(rel) difference| {ag['max_abs_p_rel_diff']:.2e}, identical reranked order in {ag['same_order']}.",
        "",
    ]
    lines += r.get("notes_md", [])
    return "\n".join(lines) + "\n"


# -------------------------------------------------------------------- index
def bench_index(args: argparse.Namespace, device: Any) -> dict[str, Any]:
    """Exact, IVF and HNSW over synthetic clustered vectors plus the demo corpus: build, memory, speed, recall."""
    import faiss
    import numpy as np

    from rrra_core.data import load_dataset
    from rrra_core.retrieval.dense import encode_corpus, encode_queries
    from rrra_core.retrieval.encoder import BiEncoder, EncoderConfig
    from rrra_core.retrieval.index import AUTO_FLAT_MAX, DenseIndex, auto_kind
    from rrra_core.speed.measure import (
        PeakMemory,
        centres_from_anchors,
        gaussian_mixture,
        load_average,
        queries_near,
        recall_at_k,
        release_free_memory,
        rss_bytes,
        summarize,
    )

    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    threads = faiss.omp_get_max_threads()
    data = load_dataset(args.dataset, "test")
    enc_cfg = EncoderConfig(
        model=args.model, query_max_length=args.query_max_length, doc_max_length=args.doc_max_length, device=str(device)
    )
    encoder = BiEncoder.from_pretrained(args.model).to(device)
    demo = encode_corpus(encoder, data.corpus, enc_cfg, progress=False)
    real_qids, real_q = encode_queries(
        encoder, {q: data.queries[q] for q in sorted(data.queries)[: args.index_real_queries]}, enc_cfg
    )
    del encoder
    dim = demo.vectors.shape[1]
    n_syn, n_demo = args.index_n, len(demo.ids)
    n = n_syn + n_demo

    t0 = time.perf_counter()
    x = np.empty((n, dim), dtype=np.float32)
    centres = centres_from_anchors(demo.vectors, args.index_clusters, mix=3, seed=0)
    gaussian_mixture(n_syn, dim, args.index_clusters, args.index_spread, seed=0, out=x, centres=centres)
    x[n_syn:] = demo.vectors
    gen_seconds = time.perf_counter() - t0
    ids = [f"syn-{i}" for i in range(n_syn)] + [f"{args.dataset}-{d}" for d in demo.ids]
    q_syn = queries_near(x[:n_syn], args.index_queries, noise=args.index_spread / 2, seed=1)
    queries = np.vstack([q_syn, real_q]).astype(np.float32)
    n_q = len(queries)
    k = 10

    def rows_of(index: DenseIndex, q: np.ndarray) -> np.ndarray:
        return index.index.search(q, k)[1]  # FAISS rows; the id lookup is timed separately via DenseIndex.search

    def measure(index: DenseIndex, exact: np.ndarray | None) -> tuple[dict[str, Any], np.ndarray]:
        t = time.perf_counter()
        index.search(queries, k)
        batch_s = time.perf_counter() - t
        single = []
        for i in range(min(args.index_single, n_q)):
            t = time.perf_counter()
            index.search(queries[i : i + 1], k)
            single.append(time.perf_counter() - t)
        rows = rows_of(index, queries)
        out = {"queries_per_s_batch": round(n_q / batch_s, 1), "single_query_ms": summarize(single, scale=1e3)}
        if exact is not None:
            out["recall@10"] = round(recall_at_k(rows, exact, k), 4)
            out["recall@10_synthetic"] = round(recall_at_k(rows[: len(q_syn)], exact[: len(q_syn)], k), 4)
            out["recall@10_real"] = (
                round(recall_at_k(rows[len(q_syn) :], exact[len(q_syn) :], k), 4) if len(real_q) else None
            )
        return out, rows

    builds = [
        ("flat", {}),
        (
            "ivf",
            {
                "nlist": min(args.ivf_nlist, n),
                "ivf_train_size": max(min(args.ivf_nlist, n), args.ivf_train_per_list * min(args.ivf_nlist, n)),
            },
        ),
        ("hnsw", {"hnsw_m": args.hnsw_m, "ef_construction": args.hnsw_ef_construction}),
    ]
    rows_out, exact = [], None
    for kind, params in builds:
        release_free_memory()
        before = rss_bytes()
        with PeakMemory() as mem:
            t = time.perf_counter()
            index = DenseIndex.build(x, ids, kind=kind, **params)
            build_s = time.perf_counter() - t
        release_free_memory()
        resident = (rss_bytes() or 0) - (before or 0)
        built_params = dict(index.params)  # the sweep below changes the search knob
        sweep = []
        if kind == "flat":
            res, exact = measure(index, None)
            res.update({"recall@10": 1.0, "recall@10_synthetic": 1.0, "recall@10_real": 1.0 if len(real_q) else None})
            sweep.append({"search": "exact", **res})
        elif kind == "ivf":
            default = index.params["nprobe"]  # what a user gets without tuning
            for nprobe in sorted({*args.nprobe, default}):
                index.set_search_params(nprobe=nprobe)
                res, _ = measure(index, exact)
                sweep.append({"search": f"nprobe={index.params['nprobe']}", **res})
        else:
            for ef in sorted({*args.ef_search, index.params["ef_search"]}):
                index.set_search_params(ef_search=ef)
                res, _ = measure(index, exact)
                sweep.append({"search": f"efSearch={ef}", **res})
        payload = n * dim * 4
        if kind == "ivf":
            payload += n * 8 + index.params["nlist"] * dim * 4
        elif kind == "hnsw":
            payload += n * 2 * args.hnsw_m * 4  # level-0 links; upper levels add ~1/M of that
        rows_out.append(
            {
                "kind": kind,
                "params": built_params | ({"ivf_train_size": params["ivf_train_size"]} if kind == "ivf" else {}),
                "build_s": round(build_s, 1),
                "resident_after_build_bytes": resident,
                "peak_extra_during_build_bytes": mem.extra,
                "payload_bytes_estimate": payload,
                "sweep": sweep,
                "load_after": load_average(),
            }
        )
        print(
            f"index {kind}: build {build_s:.1f} s, "
            + "; ".join(f"{r['search']}: {r['queries_per_s_batch']} q/s, R@10 {r['recall@10']}" for r in sweep),
            file=sys.stderr,
        )
        del index
    # retrieve() builds a fresh index per call: how many queries before an approximate index's
    # longer build is paid back by its faster search (batch throughput)?
    flat = rows_out[0]
    flat_qps = flat["sweep"][0]["queries_per_s_batch"]
    for row in rows_out[1:]:
        for sw in row["sweep"]:
            saved = 1 / flat_qps - 1 / sw["queries_per_s_batch"]
            sw["break_even_queries"] = round((row["build_s"] - flat["build_s"]) / saved) if saved > 0 else None
    return {
        "settings": {
            "vectors": n,
            "synthetic": n_syn,
            "demo_docs": n_demo,
            "dim": dim,
            "synthetic_data": f"{args.index_clusters} Gaussian clusters, per-coordinate sd {args.index_spread}, renormalised; each centre a random convex "
            f"combination of 3 real {args.dataset} document embeddings, so the clusters share the real embeddings' geometry (seed 0)",
            "demo_data": f"{args.dataset} corpus embedded by {args.model} at max length {args.doc_max_length} (embedding cache)",
            "queries": f"{len(q_syn)} synthetic (a random data point + sd {args.index_spread / 2} noise) + {len(real_q)} real {args.dataset} test queries",
            "k": k,
            "faiss_threads": threads,
            "generate_seconds": round(gen_seconds, 1),
            "single_query_latency": f"first {min(args.index_single, n_q)} queries one at a time",
        },
        "auto": {
            "documents": n,
            "kind": auto_kind(n),
            "flat_below": AUTO_FLAT_MAX,
            "demo_corpus_alone": auto_kind(n_demo),
            "above_flat_limit": "ivf, nlist = 4 sqrt(n), k-means on 64 per list, nprobe = nlist / 64",
        },
        "indexes": rows_out,
    }


def _break_even(sweep_row: dict[str, Any]) -> str:
    if "break_even_queries" not in sweep_row:
        return "-"
    n = sweep_row["break_even_queries"]
    return "never" if n is None else f"{n:,}"


def render_index(r: dict[str, Any]) -> str:
    s, a = r["settings"], r["auto"]
    lines = _header(f"Speed: index scale ({s['vectors']:,} vectors x {s['dim']})", r)
    lines += [
        f"Data: {s['synthetic']:,} synthetic vectors ({s['synthetic_data']}) + {s['demo_docs']:,} real documents ({s['demo_data']}); generated in {s['generate_seconds']} s.",
        f"Queries: {s['queries']}; recall@{s['k']} is against the exact (flat) top {s['k']} of the same index. FAISS threads: {s['faiss_threads']}. "
        f"Single-query latency: {s['single_query_latency']}.",
        "",
        f'`kind="auto"` picks **{a["kind"]}** for {a["documents"]:,} documents (exact below {a["flat_below"]:,}, then {a["above_flat_limit"]}; '
        f"the demo corpus alone gets {a['demo_corpus_alone']}). Its row below is the flat one.",
        "",
        "| index | params | build s | resident after build | peak extra during build | payload (estimate) | search | queries/s (batch) | single query p50 ms | recall@10 | synthetic | real | break-even queries vs flat |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r["indexes"]:
        params = ", ".join(f"{k}={v}" for k, v in row["params"].items()) or "-"
        for i, sw in enumerate(row["sweep"]):
            first = i == 0
            lines.append(
                f"| {row['kind'] if first else ''} | {params if first else ''} | {row['build_s'] if first else ''} | "
                f"{_mb(row['resident_after_build_bytes']) if first else ''} | {_mb(row['peak_extra_during_build_bytes']) if first else ''} | "
                f"{_mb(row['payload_bytes_estimate']) if first else ''} | {sw['search']} | {sw['queries_per_s_batch']:,} | {sw['single_query_ms']['p50']} | "
                f"{sw['recall@10']} | {sw['recall@10_synthetic']} | {_fmt(sw['recall@10_real'], 4)} | "
                f"{_break_even(sw)} |"
            )
    lines += [
        "",
        "Memory is resident set size: growth after the build (with freed heap returned to the OS) and the peak above the starting RSS during the build (kernel high-water mark). "
        "The data matrix itself (the input) is resident before every build and not counted. "
        "Load average after each index: "
        + "; ".join(f"{row['kind']} {row['load_after']}" for row in r["indexes"])
        + ". "
        "Break-even: queries one build must answer before the approximate index's longer build is paid back by its faster batch search "
        "(`retrieve()` builds a fresh index per call, so for evaluation and mining the build is part of the cost).",
        "",
    ]
    lines += r.get("notes_md", [])
    return "\n".join(lines) + "\n"


# -------------------------------------------------------------------- train
def bench_train(args: argparse.Namespace, device: Any) -> dict[str, Any]:
    """Seconds per optimizer step of the real phase-1 and phase-3 loops at the same batch, alternating runs."""
    import numpy as np
    import torch

    from rrra_core.adapter import save_adapter
    from rrra_core.data import Dataset, load_dataset
    from rrra_core.negatives.mining import MiningConfig
    from rrra_core.retrieval.encoder import BiEncoder, EncoderConfig
    from rrra_core.runtime.runs import create_run
    from rrra_core.speed.measure import PeakMemory, alternating_orders, load_average, summarize
    from rrra_core.training import TrainConfig, train_phase1
    from rrra_core.training.phase1 import phase1_config_dict
    from rrra_core.training.phase3 import Phase3Config, phase3_config_dict, train_phase3

    full = load_dataset(args.dataset, "train")
    qids = sorted(full.qrels)
    if args.train_queries < len(qids):
        qids = sorted(np.random.default_rng(0).choice(qids, size=args.train_queries, replace=False).tolist())
    train = Dataset(
        name=full.name,
        split=full.split,
        corpus=full.corpus,
        queries={q: full.queries[q] for q in qids},
        qrels={q: full.qrels[q] for q in qids},
    )
    enc_cfg = EncoderConfig(
        model=args.model, query_max_length=args.query_max_length, doc_max_length=args.doc_max_length, device=str(device)
    )
    steps = args.train_warmup + args.train_steps
    dim = BiEncoder.from_pretrained(args.model).dim
    tmp = Path(tempfile.mkdtemp(prefix="bench-train-"))
    adapter, adapter_src = _load_adapter(args.adapter, dim, "cpu")
    adapter_dir = save_adapter(adapter, adapter.cfg, tmp / "adapter")
    common = {
        "max_steps": steps,
        "batch_size": args.train_batch_size,
        "eval_split": "",
        "index_kind": "flat",
        "checkpoint_every": 0,
    }

    def phase1(hard: bool):
        def go(root: Path):
            cfg = TrainConfig(dataset=args.dataset, hard_negatives="mine" if hard else "none", n_hard=1, **common)
            run = create_run("phase1", phase1_config_dict(enc_cfg, cfg, MiningConfig()), root=root)
            train_phase1(run, enc_cfg, cfg, MiningConfig(), train_data=train)
            return run

        return go

    def phase3(n_random: int):
        def go(root: Path):
            cfg = Phase3Config(dataset=args.dataset, sampler="rrra", n_hard=1, n_random=n_random, top_k=100, **common)
            run = create_run("phase3", phase3_config_dict(enc_cfg, cfg, str(adapter_dir)), root=root)
            train_phase3(run, enc_cfg, cfg, adapter_dir=str(adapter_dir), train_data=train)
            return run

        return go

    # names[0..2] are the comparison the target is about: phase 3 at its defaults (one hard negative,
    # the in-batch positives as the random mix) against phase 1 without and with one hard negative.
    # The last adds an extra random corpus negative per query (--n-random 1), a third more documents.
    variants = {
        "phase 1, in-batch negatives": phase1(False),
        "phase 1, 1 mined hard negative": phase1(True),
        "phase 3, RRRA defaults (1 hard; in-batch random)": phase3(0),
        "phase 3, RRRA + 1 extra random negative": phase3(1),
    }
    names = list(variants)
    per: dict[str, dict[str, Any]] = {
        v: {
            "step_s": [],
            "n_docs": [],
            "peak_rss": [],
            "extra_rss": [],
            "gpu_peak": [],
            "load_after": [],
            "round_median": [],
        }
        for v in names
    }
    cuda = str(device).startswith("cuda")
    for r, order in enumerate(alternating_orders(names, args.train_rounds)):
        for name in order:
            if cuda:
                gc.collect()  # the previous variant's tensors must not count towards this one's peak
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            with PeakMemory() as mem:
                run = variants[name](tmp / f"round{r}")
            log = [rec for rec in run.read_log() if "time" in rec]
            shutil.rmtree(run.path, ignore_errors=True)  # a saved model and checkpoint per run: hundreds of MB
            t = np.array([rec["time"] for rec in log])
            durations = np.diff(np.concatenate([[0.0], t]))[args.train_warmup :]
            per[name]["step_s"] += durations.tolist()
            per[name]["round_median"].append(round(float(np.median(durations)), 3))
            per[name]["n_docs"] += [rec["n_docs"] for rec in log[args.train_warmup :]]
            per[name]["peak_rss"].append(mem.peak)
            per[name]["extra_rss"].append(mem.extra)
            per[name]["load_after"].append(load_average())
            if cuda:
                per[name]["gpu_peak"].append(torch.cuda.max_memory_allocated(device))
            print(f"train round {r} {name}: median step {np.median(durations):.2f} s", file=sys.stderr)
    shutil.rmtree(tmp, ignore_errors=True)
    out = {}
    for name in names:
        v = per[name]
        out[name] = {
            "step_seconds": summarize(v["step_s"]),
            "docs_per_step_mean": round(float(np.mean(v["n_docs"])), 1),
            "seconds_per_doc": round(float(np.median(v["step_s"]) / np.mean(v["n_docs"])), 4),
            "peak_rss_bytes": max(x for x in v["peak_rss"] if x is not None) if any(v["peak_rss"]) else None,
            "extra_rss_bytes": max(x for x in v["extra_rss"] if x is not None)
            if any(x is not None for x in v["extra_rss"])
            else None,
            "gpu_peak_bytes": max(v["gpu_peak"]) if v["gpu_peak"] else None,
            "load_after_each_run": v["load_after"],
            "median_per_round": v["round_median"],
        }
    # Other processes only ever add time to a step, so the fastest step of each variant is the
    # estimate least disturbed by them; medians and per-round medians are reported beside it.
    ratios: dict[str, dict[str, Any]] = {}
    for p3 in names[2:]:
        for p1 in names[:2]:
            a, b = out[p3], out[p1]
            ratios[f"{p3} / {p1}"] = {
                "fastest_step": round(a["step_seconds"]["min"] / b["step_seconds"]["min"], 3),
                "median_step": round(a["step_seconds"]["p50"] / b["step_seconds"]["p50"], 3),
                "per_round_median": [round(x / y, 3) for x, y in zip(a["median_per_round"], b["median_per_round"])],
                "per_document_fastest": round(
                    (a["step_seconds"]["min"] / a["docs_per_step_mean"])
                    / (b["step_seconds"]["min"] / b["docs_per_step_mean"]),
                    3,
                ),
            }
    return {
        "settings": {
            "model": args.model,
            "dataset": f"{args.dataset} train, {len(qids)} queries (fixed subsample, seed 0), full corpus",
            "batch_size": args.train_batch_size,
            "query_max_length": args.query_max_length,
            "doc_max_length": args.doc_max_length,
            "steps": f"{args.train_rounds} rounds x ({args.train_warmup} warm-up + {args.train_steps} measured) steps per variant; variants alternate in rotating order",
            "how": "the real train_phase1 / train_phase3 with max_steps, eval off, checkpoints off; step time = difference of the loop's own 'time' log field, "
            "so data sampling, the forward/backward pass, the optimizer and the per-step logging are all included",
            "adapter": adapter_src,
            "memory": "peak RSS of the whole train call (model load, mining from cached vectors, steps) via the kernel high-water mark; extra = peak minus RSS before the call",
        },
        "variants": out,
        "ratios": ratios,
        "targets": {
            "estimator": "ratio of fastest steps",
            "phase3_over_phase1_hard": ratios[f"{names[2]} / {names[1]}"]["fastest_step"],
            "phase3_over_phase1_inbatch": ratios[f"{names[2]} / {names[0]}"]["fastest_step"],
            "at_most_1_5": ratios[f"{names[2]} / {names[1]}"]["fastest_step"] <= 1.5,
            "phase3_extra_random_over_phase1_hard": ratios[f"{names[3]} / {names[1]}"]["fastest_step"],
        },
    }


def render_train(r: dict[str, Any]) -> str:
    s, t = r["settings"], r["targets"]
    lines = _header("Speed: training step throughput and peak memory (phases 1 and 3)", r)
    lines += [
        "Settings: " + "; ".join(f"{k}: {v}" for k, v in s.items()) + ".",
        "",
        "| variant | fastest step s | step p50 s | p95 s | mean s | steps | docs/step | s per doc (p50) | peak RSS | extra RSS |"
        + (" GPU peak |" if any(v["gpu_peak_bytes"] for v in r["variants"].values()) else ""),
        "|---|---|---|---|---|---|---|---|---|---|"
        + ("---|" if any(v["gpu_peak_bytes"] for v in r["variants"].values()) else ""),
    ]
    for name, v in r["variants"].items():
        st = v["step_seconds"]
        gpu = f" {_mb(v['gpu_peak_bytes'])} |" if v["gpu_peak_bytes"] else ""
        lines.append(
            f"| {name} | {st['min']} | {st['p50']} | {st['p95']} | {st['mean']} | {st['n']} | {v['docs_per_step_mean']} | {v['seconds_per_doc']} | {_mb(v['peak_rss_bytes'])} | {_mb(v['extra_rss_bytes'])} |{gpu}"
        )
    lines += [
        "",
        "Load average after each run: "
        + "; ".join(f"{name}: {v['load_after_each_run']}" for name, v in r["variants"].items())
        + ".",
    ]
    lines += [
        "",
        "Other processes only add time to a step, so the fastest step of each variant is the estimate they disturb least; "
        "the target is judged on the ratio of fastest steps, with medians and per-round medians beside it.",
        "",
        "| ratio (phase 3 / phase 1) | fastest step | median step | per-round medians | per document (fastest) |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {k} | **{v['fastest_step']}** | {v['median_step']} | {', '.join(str(x) for x in v['per_round_median'])} | {v['per_document_fastest']} |"
        for k, v in r["ratios"].items()
    ]
    lines += [
        "",
        "## Target",
        "",
        f"- Phase 3 at most 1.5x phase 1 per step at the same batch: {t['phase3_over_phase1_hard']}x against phase 1 with one hard negative -> "
        + (
            "met"
            if t["at_most_1_5"]
            else f"MISSED by {t['phase3_over_phase1_hard'] - 1.5:.2f} ({100 * (t['phase3_over_phase1_hard'] / 1.5 - 1):.0f}% over)"
        )
        + f" (ratio of fastest steps; of median steps: {r['ratios'][list(r['ratios'])[1]]['median_step']}x)"
        + f"; {t['phase3_over_phase1_inbatch']}x against in-batch-only phase 1. "
        f"Phase 3 with an extra random corpus negative per query (a third more documents): {t['phase3_extra_random_over_phase1_hard']}x.",
        "",
    ]
    lines += r.get("notes_md", [])
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------- main
BENCHES = {
    "encode": (bench_encode, render_encode),
    "latency": (bench_latency, render_latency),
    "index": (bench_index, render_index),
    "train": (bench_train, render_train),
}


def main(argv: list[str] | None = None) -> int:
    from rrra_core.runtime.cli import setup_logging
    from rrra_core.runtime.device import resolve_device
    from rrra_core.runtime.paths import REPO_ROOT
    from rrra_core.speed.measure import load_average

    args = build_parser().parse_args(argv)
    setup_logging()
    device = resolve_device(args.device)
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    out_dir = Path(args.out) if args.out else REPO_ROOT / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    command = _command(argv)
    for part in PARTS if args.part == "all" else (args.part,):
        bench, render = BENCHES[part]
        stem = out_dir / f"speed_{part}"
        if args.render_only:
            result = json.loads(stem.with_suffix(".json").read_text(encoding="utf-8"))
        else:
            started = dt.datetime.now().isoformat(timespec="seconds")
            load_before = load_average()
            t0 = time.perf_counter()
            body = bench(args, device)
            result = {
                "command": command,
                "part": part,
                "started": started,
                "wall_seconds": round(time.perf_counter() - t0, 1),
                "load": {"before": load_before, "after": load_average()},
                "machine": _machine(device),
                **body,
            }
        # Hand-written analysis (limits, what was tried) lives beside the numbers and is appended on every rendering.
        notes = out_dir / f"speed_{part}.notes.md"
        result.pop("notes_md", None)
        if notes.is_file():
            result["notes_md"] = ["## Notes", "", *notes.read_text(encoding="utf-8").strip().splitlines(), ""]
        _write(stem, result, render(result))
    return 0


if __name__ == "__main__":
    from rrra_core.runtime.cli import run_main

    sys.exit(run_main(main))
