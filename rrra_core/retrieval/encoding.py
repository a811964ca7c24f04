"""Batch encoding of many texts, with an on-disk cache.

Encoding is the expensive step on a CPU (``results/speed_encode.md`` has the
rates), so texts are sorted by length before batching (short batches pad
less), run under ``torch.inference_mode``, and the result is cached on disk
keyed by (model weights, role, max length, exact ids and texts). The same
corpus is never encoded twice by the same model.

``precision="bf16"`` runs the transformer under bfloat16 autocast: faster on
CPUs with AVX512-BF16 or AMX, with vectors very close to fp32 on MiniLM
(``results/speed_encode.md`` measures both). The default stays fp32 so
scores and rankings do not move; ``"auto"`` picks bf16 only where the hardware
computes it natively. bf16 vectors are cached under their own key.

Under ``torchrun`` (see :mod:`rrra_core.runtime.distributed`) both functions are
collective: every rank encodes a share of the batches and the shares are
gathered, so every rank gets the whole array. Only rank 0 touches the cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from rrra_core.retrieval.encoder import PRECISIONS, BiEncoder
from rrra_core.runtime import distributed
from rrra_core.runtime.device import cuda_native_bf16
from rrra_core.runtime.paths import cache_dir

__all__ = [
    "PRECISIONS",
    "EncodeStats",
    "encode_texts",
    "cached_encode",
    "texts_digest",
    "native_bf16",
    "resolve_precision",
    "precision_context",
]

log = logging.getLogger(__name__)


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 in hardware (CUDA with bf16; CPU with AVX512-BF16, AMX or Arm BF16)."""
    if device.type == "cuda":
        return cuda_native_bf16(device)
    if device.type != "cpu":
        return False
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    return bool({"avx512_bf16", "amx_bf16", "bf16"} & set(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """``"fp32"`` or ``"bf16"``; ``"auto"`` is bf16 only where :func:`native_bf16` holds.

    Emulated bf16 is slower than fp32.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def precision_context(precision: str, device: torch.device) -> AbstractContextManager:
    """The autocast context for a resolved precision (a no-op for fp32)."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()


@dataclass
class EncodeStats:
    """What the last encoding cost; benchmarks report docs/s from it."""

    count: int = 0
    seconds: float = 0.0
    cached: bool = False

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float("nan")


def encode_texts(
    encoder: BiEncoder,
    texts: Sequence[str],
    role: str,
    max_length: int,
    batch_size: int = 64,
    progress: bool | str = True,
    callback: Callable[[int, int], None] | None = None,
    precision: str = "fp32",
) -> np.ndarray:
    """Embed ``texts`` with one tower; returns float32 (N, H), rows in input order.

    ``callback(done, total)`` is called after each batch (the app's progress bars use it).
    In a process group each rank encodes every ``world``-th batch and the rows are
    gathered; ``done``/``total`` then count this rank's rows.
    ``precision`` is one of :data:`PRECISIONS` (see the module docstring).
    """
    precision = resolve_precision(precision, encoder.device)
    n = len(texts)
    out = np.zeros((n, encoder.dim), dtype=np.float32)
    if n == 0:
        return out
    tok = encoder.tokenizer
    # Tokenise once without padding to learn lengths; then pad per batch.
    encoded = tok(list(texts), truncation=True, max_length=max_length, padding=False)
    lengths = np.fromiter((len(ids) for ids in encoded["input_ids"]), dtype=np.int64, count=n)
    order = np.argsort(-lengths, kind="stable")  # longest first: a memory blow-up shows at once
    batches = [order[start : start + batch_size] for start in range(0, n, batch_size)]
    # Ranks share out whole batches, strided over the length order so each gets a fair
    # mix of long and short ones; a row is padded exactly as in one process, so its
    # vector is the same bit for bit.
    mine = distributed.shard(batches, strided=True)
    total = sum(len(idx) for idx in mine)
    was_training = encoder.training
    encoder.eval()
    desc = progress if isinstance(progress, str) else f"encoding {role}s"
    bar = tqdm(total=total, desc=desc, unit=role, disable=not progress or not distributed.is_main(), mininterval=1.0)
    done = 0
    try:
        # One autocast region for all batches, so the weights are cast to bf16 once.
        with torch.inference_mode(), precision_context(precision, encoder.device):
            for idx in mine:
                features = [{k: encoded[k][i] for k in encoded.keys()} for i in idx]
                batch = tok.pad(features, padding=True, return_tensors="pt")
                emb = encoder(batch, role)  # (b, H)
                out[idx] = emb.detach().float().cpu().numpy()
                done += len(idx)
                bar.update(len(idx))
                if callback is not None:
                    callback(done, total)
    finally:
        bar.close()
        if was_training:
            encoder.train()
    if distributed.is_distributed():
        local = np.concatenate(mine) if mine else np.zeros(0, dtype=np.int64)
        gathered = distributed.all_gather_array(out[local])  # rank 0's rows, then rank 1's, ...
        rows = [
            idx for r in range(distributed.get_world_size()) for idx in distributed.shard(batches, strided=True, rank=r)
        ]
        out[np.concatenate(rows)] = gathered
    return out


def texts_digest(ids: Sequence[str], texts: Sequence[str]) -> str:
    """Content hash of an (ids, texts) collection, order-sensitive."""
    h = hashlib.sha256()
    for i, t in zip(ids, texts, strict=True):
        h.update(i.encode("utf-8"))
        h.update(b"\x00")
        h.update(t.encode("utf-8"))
        h.update(b"\x01")
    return h.hexdigest()


def cached_encode(
    encoder: BiEncoder,
    ids: Sequence[str],
    texts: Sequence[str],
    role: str,
    max_length: int,
    batch_size: int = 64,
    progress: bool | str = True,
    cache_root: str | os.PathLike[str] | None = None,
    stats: EncodeStats | None = None,
    refresh: bool = False,
    callback: Callable[[int, int], None] | None = None,
    precision: str = "fp32",
) -> np.ndarray:
    """Like :func:`encode_texts`, but reuse a previous result for the same model and texts.

    A model whose weights may have changed since loading (``fingerprint()`` is
    ``None``) is never cached. ``refresh`` re-encodes and overwrites the entry
    (benchmarks use it to time encoding honestly). The precision is part of the
    key, so bf16 vectors never stand in for fp32 ones.
    """
    precision = resolve_precision(precision, encoder.device)
    stats = stats if stats is not None else EncodeStats()
    fp = encoder.fingerprint()
    if fp is None:
        t0 = time.perf_counter()
        emb = encode_texts(encoder, texts, role, max_length, batch_size, progress, callback, precision)
        stats.count, stats.seconds, stats.cached = len(texts), time.perf_counter() - t0, False
        return emb
    key_src = {
        "model": fp,
        "role": role,
        "max_length": max_length,
        "texts": texts_digest(ids, texts),
        "pooling": "mean-l2",
    }
    if precision != "fp32":  # fp32 keys stay as they were, so existing cache entries remain valid
        key_src["precision"] = precision
    key = hashlib.sha256(json.dumps(key_src, sort_keys=True).encode()).hexdigest()[:32]
    folder = Path(cache_root) if cache_root is not None else cache_dir() / "embeddings"
    entry = folder / key
    emb_path = entry / "embeddings.npy"
    emb = None
    if distributed.is_main() and emb_path.is_file() and not refresh:
        emb = np.load(emb_path, mmap_mode=None)
        if emb.shape != (len(ids), encoder.dim):
            log.warning("ignoring damaged embedding cache entry %s", entry)
            emb = None
    # Rank 0's cache decides for everyone, so all ranks take the same (collective) branch.
    if distributed.broadcast_object(emb is not None):
        log.info("embedding cache hit: %d %ss from %s", len(ids), role, entry)
        stats.count, stats.seconds, stats.cached = len(ids), 0.0, True
        return distributed.broadcast_array(emb)
    t0 = time.perf_counter()
    emb = encode_texts(encoder, texts, role, max_length, batch_size, progress, callback, precision)
    stats.count, stats.seconds, stats.cached = len(texts), time.perf_counter() - t0, False
    if not distributed.is_main():
        return emb
    # Write into a temp folder and rename, so a killed process never leaves a half entry.
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder))
    try:
        np.save(tmp / "embeddings.npy", emb)
        (tmp / "ids.txt").write_text("".join(i + "\n" for i in ids), encoding="utf-8")
        meta = {**key_src, "source": encoder.source, "count": len(ids), "dim": encoder.dim, "seconds": stats.seconds}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        if entry.exists():
            shutil.rmtree(entry, ignore_errors=True)
        os.replace(tmp, entry)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return emb
