"""Measurement helpers for the speed benchmarks (``rrra_core.speed``, run by ``scripts/bench_speed.py``).

Pure functions where possible: percentiles, recall@k over row ids, the FLOP
count of a BERT-style encoder, the CPU's nominal peak, synthetic clustered
vectors, and an alternating schedule for A/B timing. The few that touch the
machine (resident memory, load average, a GEMM ceiling) read ``/proc`` and
``torch`` directly, so the benchmarks need no extra packages.

Memory is resident set size (RSS). On Linux the kernel's high-water mark
(``VmHWM``) can be reset by writing ``5`` to ``/proc/self/clear_refs``, which
gives the exact peak of one block of work; where that is not allowed,
:class:`PeakMemory` samples RSS from a thread instead.
"""

from __future__ import annotations

import ctypes
import gc
import math
import os
import platform
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "percentile",
    "summarize",
    "recall_at_k",
    "encoder_flops_per_token",
    "encoder_flops",
    "cpu_info",
    "cpu_peak_gflops",
    "gemm_gflops",
    "load_average",
    "rss_bytes",
    "release_free_memory",
    "PeakMemory",
    "alternating_orders",
    "centres_from_anchors",
    "gaussian_mixture",
    "queries_near",
    "sync",
    "time_call",
]

_PROC_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


# ----------------------------------------------------------------- statistics
def percentile(values: Sequence[float] | np.ndarray, q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation, as numpy's default; NaN when empty."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {q}")
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return float("nan")
    return float(np.percentile(arr, q))


def summarize(values: Sequence[float] | np.ndarray, scale: float = 1.0, digits: int = 3) -> dict[str, float]:
    """n, mean, p50, p95, min and max of ``values`` times ``scale`` (e.g. 1e3 for seconds -> ms)."""
    arr = np.asarray(values, dtype=np.float64) * scale
    if arr.size == 0:
        return {"n": 0}
    return {
        "n": int(arr.size),
        "mean": round(float(arr.mean()), digits),
        "p50": round(percentile(arr, 50), digits),
        "p95": round(percentile(arr, 95), digits),
        "min": round(float(arr.min()), digits),
        "max": round(float(arr.max()), digits),
    }


def recall_at_k(approx: np.ndarray, exact: np.ndarray, k: int) -> float:
    """Mean share of each query's exact top-``k`` rows that the approximate top-``k`` also found.

    Both are (n_queries, >= k) integer row arrays as FAISS returns them; ``-1``
    (a slot an approximate index could not fill) never matches.
    """
    if k < 1:
        raise ValueError(f"k must be positive, got {k}")
    approx, exact = np.asarray(approx), np.asarray(exact)
    if approx.ndim != 2 or exact.ndim != 2 or approx.shape[0] != exact.shape[0]:
        raise ValueError(f"need two (n, k) arrays with the same n, got {approx.shape} and {exact.shape}")
    if exact.shape[0] == 0:
        return 0.0
    total = 0.0
    for a, e in zip(approx[:, :k], exact[:, :k]):
        truth = set(e[e >= 0].tolist())
        total += len(truth.intersection(a[a >= 0].tolist())) / len(truth) if truth else 1.0
    return total / exact.shape[0]


# --------------------------------------------------------------------- FLOPs
def encoder_flops_per_token(hidden: int, layers: int, intermediate: int, seq_len: int) -> float:
    """Forward FLOPs per token of a BERT encoder at sequence length ``seq_len`` (1 MAC = 2 FLOPs).

    Per layer and token: the Q, K, V and output projections (4 H^2 MACs), the
    feed-forward block (2 H F MACs), and attention scores plus the weighted sum
    over the sequence (2 T H MACs). Embeddings, layer norms, softmax and the
    pooling are left out (under 1%). MiniLM-L6 (H=384, F=1536, 6 layers) at
    T=128: 22.4 MFLOP per token.
    """
    macs = layers * (4 * hidden * hidden + 2 * hidden * intermediate + 2 * seq_len * hidden)
    return 2.0 * macs


def encoder_flops(lengths: Sequence[int] | np.ndarray, hidden: int, layers: int, intermediate: int) -> float:
    """Forward FLOPs to encode texts of the given token lengths, each attending over its own length.

    This is the useful work: padding tokens are not counted, so two encoders
    that pad differently are credited the same FLOPs for the same texts.
    """
    total = 0.0
    for t in np.asarray(lengths, dtype=np.int64).tolist():
        total += t * encoder_flops_per_token(hidden, layers, intermediate, t)
    return total


# ------------------------------------------------------------------ the CPU
def cpu_info() -> dict[str, Any]:
    """Model name, vendor, family/model numbers, flags of interest, core count and nominal clock (Linux)."""
    info: dict[str, Any] = {
        "model": platform.processor() or platform.machine(),
        "vendor": None,
        "family": None,
        "model_number": None,
        "flags": [],
        "cores": os.cpu_count(),
        "mhz": None,
    }
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    first = text.split("\n\n", 1)[0]
    fields = dict((k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in first.splitlines()) if _)
    info["model"] = fields.get("model name", info["model"])
    info["vendor"] = fields.get("vendor_id")
    info["family"] = int(fields["cpu family"]) if fields.get("cpu family", "").isdigit() else None
    info["model_number"] = int(fields["model"]) if fields.get("model", "").isdigit() else None
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    info["flags"] = sorted(
        flags & {"avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile", "bf16", "asimd", "sve"}
    )
    try:
        info["mhz"] = float(fields["cpu MHz"])
    except (KeyError, ValueError):
        pass
    return info


def cpu_peak_gflops(info: dict[str, Any], cores: int | None = None) -> dict[str, Any]:
    """Nominal fp32 and bf16 peak GFLOP/s: cores x nominal GHz x FLOP per cycle per core.

    FLOP per cycle comes from the vector units, by vendor and family: AMD Zen 3/4
    (family 25) have two 256-bit FMA pipes (32 fp32 FLOP/cycle; Zen 4 runs
    AVX-512 on them in two halves) and AVX512-BF16 doubles that for bf16; Zen 5
    (family 26) has 512-bit pipes; Intel AVX-512 server cores are taken to have
    two 512-bit FMA units (some SKUs have one, so half this). AMX is not
    modelled. The nominal clock ignores turbo, so real peaks can be higher; the
    benchmarks also measure a GEMM ceiling on the spot for that reason.
    """
    flags = set(info.get("flags") or [])
    vendor, family = info.get("vendor"), info.get("family")
    if vendor == "AuthenticAMD" and family == 26:
        fp32, basis = 64, "AMD Zen 5: two 512-bit FMA pipes"
    elif vendor == "AuthenticAMD" and family == 25:
        fp32, basis = 32, "AMD Zen 3/4: two 256-bit FMA pipes"
    elif "avx512f" in flags:
        fp32, basis = 64, "AVX-512 with two 512-bit FMA units (assumed)"
    elif "avx2" in flags and "fma" in flags:
        fp32, basis = 32, "AVX2 with two 256-bit FMA units (assumed)"
    else:
        fp32, basis = 8, "no wide FMA detected (rough guess)"
    bf16 = 2 * fp32 if ("avx512_bf16" in flags or "amx_bf16" in flags) else None
    n = cores or info.get("cores") or 1
    ghz = (info.get("mhz") or 0.0) / 1000.0
    if ghz <= 0:
        return {
            "fp32": None,
            "bf16": None,
            "ghz": None,
            "cores": n,
            "flop_per_cycle_fp32": fp32,
            "basis": basis + "; clock unknown",
        }
    return {
        "fp32": round(n * ghz * fp32, 1),
        "bf16": round(n * ghz * bf16, 1) if bf16 else None,
        "ghz": round(ghz, 3),
        "cores": n,
        "flop_per_cycle_fp32": fp32,
        "flop_per_cycle_bf16": bf16,
        "basis": basis,
    }


def gemm_gflops(dtype: str = "fp32", n: int | None = None, repeats: int = 5, device: str = "cpu") -> float:
    """GFLOP/s of an n x n x n matrix product in torch, best of ``repeats``: a practical ceiling right now.

    On a GPU a 1024^3 product is so short that the launch and the
    synchronisation around it would be most of what is timed, so there n
    defaults to 8192 and each repeat times 10 products back to back.
    """
    import torch

    cuda = str(device).startswith("cuda")
    n = n or (8192 if cuda else 1024)
    per_repeat = 10 if cuda else 1
    dt = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device=device, dtype=dt)
    b = torch.randn(n, n, generator=gen).to(device=device, dtype=dt)
    a @ b  # warm-up (kernel selection, page faults)
    best = math.inf
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        for _ in range(per_repeat):
            a @ b
        sync(device)
        best = min(best, (time.perf_counter() - t0) / per_repeat)
    return 2.0 * n**3 / best / 1e9


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (other processes compete for the same cores)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on Unix
        return []


def sync(device: Any) -> None:
    """Wait for queued GPU work, so a wall-clock timer measures it (no-op on CPU)."""
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)  # that device's queue, not only the current one's


# ------------------------------------------------------------------- memory
def _status_kib(key: str) -> int | None:
    try:
        m = re.search(rf"^{key}:\s+(\d+)\s+kB", _PROC_STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(m.group(1)) if m else None


def rss_bytes() -> int | None:
    """This process's resident memory now, in bytes (None where /proc is missing)."""
    kib = _status_kib("VmRSS")
    return kib * 1024 if kib is not None else None


def release_free_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS, so RSS shows live memory."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


@dataclass
class PeakMemory:
    """``with PeakMemory() as m: ...`` records RSS before and the peak RSS during the block.

    ``m.before`` and ``m.peak`` are bytes; ``m.extra`` is ``peak - before``, the
    memory the block needed on top of what was already resident. ``m.method``
    says how the peak was taken: ``"VmHWM"`` (exact, kernel high-water mark) or
    ``"sampled"`` (every ``interval`` seconds, can miss short spikes).
    """

    interval: float = 0.005
    before: int | None = None
    peak: int | None = None
    method: str = ""
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def extra(self) -> int | None:
        return None if self.peak is None or self.before is None else max(0, self.peak - self.before)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            now = rss_bytes()
            if now is not None and (self.peak is None or now > self.peak):
                self.peak = now

    def __enter__(self) -> PeakMemory:
        release_free_memory()
        self.before = rss_bytes()
        try:
            _CLEAR_REFS.write_text("5")  # reset VmHWM to the current RSS
            self.method = "VmHWM"
        except OSError:
            self.method = "sampled"
            self.peak = self.before
            self._stop.clear()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.method == "VmHWM":
            kib = _status_kib("VmHWM")
            self.peak = kib * 1024 if kib is not None else None
        else:
            self._stop.set()
            if self._thread is not None:
                self._thread.join()
            now = rss_bytes()
            if now is not None and (self.peak is None or now > self.peak):
                self.peak = now


# ------------------------------------------------------------ A/B schedules
def alternating_orders(sides: Sequence[str], rounds: int) -> list[list[str]]:
    """One order of ``sides`` per round, rotated each round, so no side always runs first or last.

    Timing A then B then A then B in one process, rather than all A then all B,
    spreads slow drift in machine load (other jobs starting or stopping) over both.
    """
    sides = list(sides)
    if not sides:
        return [[] for _ in range(rounds)]
    return [sides[r % len(sides) :] + sides[: r % len(sides)] for r in range(rounds)]


# -------------------------------------------------------- synthetic vectors
def centres_from_anchors(anchors: np.ndarray, n: int, mix: int = 3, seed: int = 0) -> np.ndarray:
    """``n`` unit cluster centres, each a random convex combination of ``mix`` rows of ``anchors``; float32 (n, dim).

    With real document embeddings as anchors, the centres inherit the real
    geometry: a shared mean direction and topics that shade into each other.
    That matters for graph indexes: around random (mutually orthogonal) centres
    every cluster is an island, a greedy graph walk has no similarity gradient
    to follow between them, and HNSW recall collapses for reasons real
    embeddings do not share.
    """
    if anchors.ndim != 2 or len(anchors) == 0 or n < 0 or mix < 1:
        raise ValueError("need a non-empty (m, dim) anchors array, n >= 0 and mix >= 1")
    rng = np.random.default_rng(seed)
    picks = rng.integers(len(anchors), size=(n, mix))
    weights = rng.dirichlet(np.ones(mix), size=n).astype(np.float32)  # (n, mix)
    centres = np.einsum("nm,nmd->nd", weights, anchors[picks].astype(np.float32))
    return (centres / np.linalg.norm(centres, axis=1, keepdims=True)).astype(np.float32)


def gaussian_mixture(
    n: int,
    dim: int,
    n_clusters: int,
    spread: float,
    seed: int = 0,
    chunk: int = 200_000,
    out: np.ndarray | None = None,
    centres: np.ndarray | None = None,
) -> np.ndarray:
    """``n`` unit vectors in ``dim`` dimensions from ``n_clusters`` Gaussian clusters; float32 (n, dim).

    Centres are ``centres`` (e.g. from :func:`centres_from_anchors`) or random
    unit vectors; each point is its centre plus isotropic noise of standard
    deviation ``spread`` per coordinate, renormalised. Isotropic noise alone
    would make every point nearly equidistant from every other in high
    dimensions, where no approximate index can do well and recall numbers mean
    nothing; clustered data is closer to real embeddings. Generated in chunks
    so the peak memory is the output plus one chunk; ``out`` (float32, at
    least n rows) receives the rows instead of a new array.
    """
    if n < 0 or dim < 1 or n_clusters < 1 or spread < 0:
        raise ValueError("need n >= 0, dim >= 1, n_clusters >= 1 and spread >= 0")
    rng = np.random.default_rng(seed)
    if centres is None:
        centres = rng.standard_normal((n_clusters, dim)).astype(np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    elif centres.shape != (n_clusters, dim):
        raise ValueError(f"centres must have shape {(n_clusters, dim)}, got {centres.shape}")
    centres = np.asarray(centres, dtype=np.float32)
    if out is None:
        out = np.empty((n, dim), dtype=np.float32)
    elif out.dtype != np.float32 or out.ndim != 2 or out.shape[0] < n or out.shape[1] != dim:
        raise ValueError(f"out must be float32 with at least {n} rows of {dim}, got {out.dtype} {out.shape}")
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        block = centres[rng.integers(n_clusters, size=m)]
        block += rng.standard_normal((m, dim), dtype=np.float32) * np.float32(spread)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start : start + m] = block
    return out[:n]


def queries_near(points: np.ndarray, n: int, noise: float, seed: int = 0) -> np.ndarray:
    """``n`` unit query vectors, each a random row of ``points`` plus Gaussian noise, renormalised."""
    rng = np.random.default_rng(seed)
    q = points[rng.choice(points.shape[0], size=n, replace=points.shape[0] < n)].astype(np.float32, copy=True)
    q += rng.standard_normal(q.shape, dtype=np.float32) * np.float32(noise)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return q


def time_call(fn: Callable[[], Any], device: Any = "cpu") -> tuple[float, Any]:
    """Seconds one call of ``fn`` takes (GPU work included) and its result."""
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out
