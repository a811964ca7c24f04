"""Batch encoding of many texts, with an on-disk cache.

Encoding is the expensive step on a CPU (MiniLM: ~16 docs/s at 256 tokens on
2 cores), so texts are sorted by length before batching (short batches pad
less), run under ``torch.inference_mode``, and the result is cached on disk
keyed by (model weights, role, max length, exact ids and texts). The same
corpus is never encoded twice by the same model.
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .encoder import BiEncoder
from .paths import cache_dir

__all__ = ["EncodeStats", "encode_texts", "cached_encode", "texts_digest"]

log = logging.getLogger(__name__)


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
) -> np.ndarray:
    """Embed ``texts`` with one tower; returns float32 (N, H), rows in input order.

    ``callback(done, total)`` is called after each batch (the app's progress bars use it).
    """
    n = len(texts)
    out = np.zeros((n, encoder.dim), dtype=np.float32)
    if n == 0:
        return out
    tok = encoder.tokenizer
    # Tokenise once without padding to learn lengths; then pad per batch.
    encoded = tok(list(texts), truncation=True, max_length=max_length, padding=False)
    lengths = np.fromiter((len(ids) for ids in encoded["input_ids"]), dtype=np.int64, count=n)
    order = np.argsort(-lengths, kind="stable")  # longest first: a memory blow-up shows at once
    was_training = encoder.training
    encoder.eval()
    desc = progress if isinstance(progress, str) else f"encoding {role}s"
    bar = tqdm(total=n, desc=desc, unit=role, disable=not progress, mininterval=1.0)
    try:
        with torch.inference_mode():
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                features = [{k: encoded[k][i] for k in encoded.keys()} for i in idx]
                batch = tok.pad(features, padding=True, return_tensors="pt")
                emb = encoder(batch, role)  # (b, H)
                out[idx] = emb.detach().float().cpu().numpy()
                bar.update(len(idx))
                if callback is not None:
                    callback(min(start + batch_size, n), n)
    finally:
        bar.close()
        if was_training:
            encoder.train()
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
) -> np.ndarray:
    """Like :func:`encode_texts`, but reuse a previous result for the same model and texts.

    A model whose weights may have changed since loading (``fingerprint()`` is
    ``None``) is never cached. ``refresh`` re-encodes and overwrites the entry
    (benchmarks use it to time encoding honestly).
    """
    stats = stats if stats is not None else EncodeStats()
    fp = encoder.fingerprint()
    if fp is None:
        t0 = time.perf_counter()
        emb = encode_texts(encoder, texts, role, max_length, batch_size, progress, callback)
        stats.count, stats.seconds, stats.cached = len(texts), time.perf_counter() - t0, False
        return emb
    key_src = {"model": fp, "role": role, "max_length": max_length, "texts": texts_digest(ids, texts), "pooling": "mean-l2"}
    key = hashlib.sha256(json.dumps(key_src, sort_keys=True).encode()).hexdigest()[:32]
    folder = Path(cache_root) if cache_root is not None else cache_dir() / "embeddings"
    entry = folder / key
    emb_path = entry / "embeddings.npy"
    if emb_path.is_file() and not refresh:
        emb = np.load(emb_path, mmap_mode=None)
        if emb.shape == (len(ids), encoder.dim):
            log.info("embedding cache hit: %d %ss from %s", len(ids), role, entry)
            stats.count, stats.seconds, stats.cached = len(ids), 0.0, True
            return emb
        log.warning("ignoring damaged embedding cache entry %s", entry)
    t0 = time.perf_counter()
    emb = encode_texts(encoder, texts, role, max_length, batch_size, progress, callback)
    stats.count, stats.seconds, stats.cached = len(texts), time.perf_counter() - t0, False
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
