"""Encoding throughput: our ``encode_texts`` against sentence-transformers' ``encode``.

Same model, texts, max length and batch size on every side: sentence-transformers,
ours in fp32, and ours at the fast precision when that is not fp32. The sides
alternate in rotating order over chunks of texts, each side encoding every chunk
once, so drift in the machine's load hits all of them alike and the ratios are
same-process numbers. Work is counted as useful FLOPs (real tokens only, so two
sides that pad differently are credited alike) and set against the CPU's
nominal peak and a GEMM ceiling measured in the same process.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from rrra_core.data import doc_text, load_dataset
from rrra_core.retrieval.encoder import BiEncoder, resolve_model_dir
from rrra_core.retrieval.encoding import encode_texts, native_bf16, resolve_precision
from rrra_core.speed.measure import (
    alternating_orders,
    cpu_info,
    cpu_peak_gflops,
    encoder_flops,
    gemm_gflops,
    load_average,
    summarize,
    time_call,
)

__all__ = ["EncodeBench", "bench_encode", "computed_tokens"]

ST = "sentence-transformers"


@dataclass(frozen=True)
class EncodeBench:
    """What the encode benchmark runs (``bench_speed.py encode`` flags in brackets)."""

    model: str = "minilm"  # encoder folder or "minilm" [--model]
    dataset: str = "squad"  # its test split's corpus supplies the passages [--dataset]
    docs: int = 1000  # passages, a fixed random sample (seed 0) [--encode-docs]
    lengths: tuple[int, ...] = (128, 256)  # max lengths, each measured in turn [--encode-lengths]
    batch_size: int = 64  # for every side [--encode-batch-size]
    chunk: int = 250  # texts per alternation round [--encode-chunk]
    precision: str = "auto"  # our fast side: fp32, bf16 or auto; fp32 is always measured too [--precision]


class _Sides:
    """The encoders under test, called by side name: "sentence-transformers", "ours fp32", "ours bf16"."""

    def __init__(self, cfg: EncodeBench, device: Any) -> None:
        self.encoder = BiEncoder.from_pretrained(cfg.model).to(device)
        self.st = SentenceTransformer(str(resolve_model_dir(cfg.model)), device=str(device))
        self.fast = resolve_precision(cfg.precision, device)
        self.names = [ST, "ours fp32"] + ([f"ours {self.fast}"] if self.fast != "fp32" else [])
        self.batch_size = cfg.batch_size

    def shape(self) -> tuple[int, int, int]:
        """Hidden size, layers and feed-forward size, for the FLOP count."""
        c = self.encoder.query_model.config
        return int(c.hidden_size), int(c.num_hidden_layers), int(c.intermediate_size)

    def encode(self, side: str, texts: list[str], max_length: int) -> np.ndarray:
        if side == ST:
            self.st.max_seq_length = max_length
            return self.st.encode(
                texts,
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        precision = side.split()[-1]
        return encode_texts(
            self.encoder, texts, "doc", max_length, self.batch_size, progress=False, precision=precision
        )


def _sample_passages(dataset: str, n: int) -> list[str]:
    data = load_dataset(dataset, "test")
    ids = sorted(data.corpus)
    pick = np.random.default_rng(0).choice(len(ids), size=min(n, len(ids)), replace=False)
    return [doc_text(data.corpus[ids[i]]) for i in pick]


def _gemm_ceiling(device: Any) -> dict[str, float]:
    return {p: round(gemm_gflops(p, device=str(device)), 1) for p in ("fp32", "bf16")}


def _machine_peak(device: Any) -> dict[str, Any]:
    """The nominal CPU peak over the cores torch may use (none on a GPU)."""
    info = cpu_info()
    return cpu_peak_gflops(info, cores=min(torch.get_num_threads(), info["cores"] or 1)) if str(device) == "cpu" else {}


def computed_tokens(lengths: np.ndarray, char_lengths: list[int], chunks: list[list[int]], bs: int) -> tuple[int, int]:
    """Tokens computed, padding included, when each chunk is cut into batches of ``bs``: ours, sentence-transformers'.

    Each call pads a batch to its longest text. Ours sorts a call's texts by token
    count; sentence-transformers sorts them by character count, which puts texts of
    unlike token counts side by side.
    """
    ours = theirs = 0
    for rows in chunks:
        srt = np.sort(lengths[rows])[::-1]
        ours += sum(int(srt[i]) * len(srt[i : i + bs]) for i in range(0, len(srt), bs))
        by_chars = lengths[rows][np.argsort([-char_lengths[i] for i in rows], kind="stable")]
        theirs += sum(int(by_chars[i : i + bs].max()) * len(by_chars[i : i + bs]) for i in range(0, len(by_chars), bs))
    return ours, theirs


def _time_sides(
    sides: _Sides, texts: list[str], chunks: list[list[int]], max_length: int, device: Any
) -> tuple[dict[str, float], dict[str, list[float]], dict[str, np.ndarray]]:
    """Seconds per side over all chunks, per-chunk speed ratios against sentence-transformers, and the vectors."""
    names = sides.names
    for side in names:  # warm-up: kernel choice, weight casts, allocator
        sides.encode(side, texts[: sides.batch_size], max_length)
    seconds = {s: 0.0 for s in names}
    chunk_ratio: dict[str, list[float]] = {s: [] for s in names[1:]}
    emb = {s: np.zeros((len(texts), sides.encoder.dim), dtype=np.float32) for s in names}
    for order, rows in zip(alternating_orders(names, len(chunks)), chunks):
        chunk = [texts[i] for i in rows]
        took = {}
        for side in order:
            took[side], vecs = time_call(partial(sides.encode, side, chunk, max_length), device)
            emb[side][rows] = vecs
            seconds[side] += took[side]
        for side in names[1:]:
            chunk_ratio[side].append(took[ST] / took[side])
    return seconds, chunk_ratio, emb


def _side_rows(
    seconds: dict[str, float], lengths: np.ndarray, flops: float, gemm: dict[str, float], device: Any
) -> dict[str, dict[str, Any]]:
    peak = _machine_peak(device)
    rows = {}
    for side, s in seconds.items():
        gflops = flops / s / 1e9
        prec = "bf16" if side.endswith("bf16") else "fp32"
        rows[side] = {
            "seconds": round(s, 2),
            "docs_per_s": round(len(lengths) / s, 2),
            "tokens_per_s": round(float(lengths.sum()) / s, 1),
            "gflops": round(gflops, 1),
            "pct_of_nominal_peak": round(100 * gflops / peak[prec], 1) if peak.get(prec) else None,
            "pct_of_gemm_ceiling": round(100 * gflops / gemm[prec], 1),
        }
    return rows


def _bench_length(
    sides: _Sides, texts: list[str], max_length: int, cfg: EncodeBench, gemm: dict[str, float], device: Any
) -> dict[str, Any]:
    """Every side on every text at one max length: speed, padding, and how far the vectors agree."""
    tokenized = sides.encoder.tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    lengths = np.array([len(x) for x in tokenized])
    chunks = [list(range(s, min(s + cfg.chunk, len(texts)))) for s in range(0, len(texts), cfg.chunk)]
    seconds, chunk_ratio, emb = _time_sides(sides, texts, chunks, max_length, device)
    padded, padded_st = computed_tokens(lengths, [len(t) for t in texts], chunks, cfg.batch_size)
    flops = encoder_flops(lengths, *sides.shape())
    rows = _side_rows(seconds, lengths, flops, gemm, device)
    cos_st = (emb["ours fp32"] * emb[ST]).sum(axis=1)
    entry: dict[str, Any] = {
        "max_length": max_length,
        "docs": len(texts),
        "tokens": int(lengths.sum()),
        "mean_tokens": round(float(lengths.mean()), 1),
        "truncated_share": round(float((lengths >= max_length).mean()), 3),
        "padding_efficiency": round(float(lengths.sum()) / padded, 3),
        "padding_efficiency_st": round(float(lengths.sum()) / padded_st, 3),
        "gflop": round(flops / 1e9, 1),
        "sides": rows,
        "ratios": {
            side: {"throughput_vs_st": round(seconds[ST] / seconds[side], 3), "per_chunk": summarize(chunk_ratio[side])}
            for side in sides.names[1:]
        },
        "cosine_ours_fp32_vs_st": {"min": round(float(cos_st.min()), 6), "mean": round(float(cos_st.mean()), 6)},
        "load_after": load_average(),
    }
    if sides.fast != "fp32":
        cos = (emb["ours fp32"] * emb[f"ours {sides.fast}"]).sum(axis=1)
        entry[f"cosine_ours_{sides.fast}_vs_fp32"] = {
            "min": round(float(cos.min()), 6),
            "mean": round(float(cos.mean()), 6),
            "within_1e-2": bool(cos.min() >= 1 - 1e-2),
        }
    speeds = ", ".join(f"{k} {v['docs_per_s']} docs/s" for k, v in rows.items())
    print(f"encode max_length {max_length}: {speeds}", file=sys.stderr)
    return entry


def bench_encode(cfg: EncodeBench, device: Any) -> dict[str, Any]:
    """Our encode_texts (fp32 and the fast precision) against SentenceTransformer.encode, alternating per chunk."""
    texts = _sample_passages(cfg.dataset, cfg.docs)
    sides = _Sides(cfg, device)
    gemm_before = _gemm_ceiling(device)
    per_length = [_bench_length(sides, texts, n, cfg, gemm_before, device) for n in cfg.lengths]
    gemm_after = _gemm_ceiling(device)
    best_side, fast = sides.names[-1], sides.fast
    worst = min(e["ratios"][best_side]["throughput_vs_st"] for e in per_length)
    return {
        "settings": {
            "model": cfg.model,
            "dataset": f"{cfg.dataset} corpus (test split's), {len(texts)} passages, fixed random sample (seed 0), "
            "title + ' ' + text",
            "batch_size": cfg.batch_size,
            "chunk": cfg.chunk,
            "precision_arg": cfg.precision,
            "fast_precision": fast,
            "native_bf16": native_bf16(torch.device(device)),
            "flops_model": "encoder_flops: 2 x layers x (4H^2 + 2HF + 2TH) per token, real tokens only; "
            f"H, layers, F = {sides.shape()}",
            "sentence_transformers": "SentenceTransformer.encode(normalize_embeddings=True), "
            "max_seq_length set per length, fp32",
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
