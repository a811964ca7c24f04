"""The speed benchmarks' measurement helpers, and the bf16 encoding switch they measure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rrra_core.retrieval.encoder import BiEncoder
from rrra_core.retrieval.encoding import EncodeStats, cached_encode, encode_texts, native_bf16, resolve_precision
from rrra_core.speed.measure import (
    PeakMemory,
    alternating_orders,
    centres_from_anchors,
    cpu_peak_gflops,
    encoder_flops,
    encoder_flops_per_token,
    gaussian_mixture,
    percentile,
    queries_near,
    recall_at_k,
    rss_bytes,
    summarize,
)


# ----------------------------------------------------------------- statistics
def test_percentile_interpolates_like_numpy_and_rejects_bad_input() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentile(values, 50) == 3.0
    assert percentile(values, 95) == pytest.approx(np.percentile(values, 95))
    assert percentile(list(range(101)), 95) == 95.0
    assert np.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_summarize_scales_seconds_to_milliseconds() -> None:
    s = summarize([0.001, 0.002, 0.003], scale=1e3)
    assert s == {"n": 3, "mean": 2.0, "p50": 2.0, "p95": 2.9, "min": 1.0, "max": 3.0}
    assert summarize([]) == {"n": 0}


def test_recall_at_k_counts_shared_rows_and_never_matches_missing_slots() -> None:
    exact = np.array([[1, 2, 3], [4, 5, 6]])
    approx = np.array([[3, 2, 9], [-1, -1, 4]])
    # Query 0 finds 2 of 3, query 1 finds 1 of 3; -1 (an unfilled slot) matches nothing.
    assert recall_at_k(approx, exact, 3) == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert recall_at_k(approx, exact, 1) == pytest.approx(0.0)
    assert recall_at_k(exact, exact, 3) == 1.0
    with pytest.raises(ValueError):
        recall_at_k(approx, exact[:1], 3)


def test_recall_at_k_is_the_mean_set_overlap_even_when_an_approximate_row_repeats() -> None:
    rng = np.random.default_rng(0)
    exact = np.stack([rng.permutation(50)[:10] for _ in range(20)])
    approx = np.where(rng.random(exact.shape) < 0.3, rng.integers(50, size=exact.shape), exact)  # may repeat a row
    overlap = np.mean([len(set(a.tolist()) & set(e.tolist())) / 10 for a, e in zip(approx, exact)])
    assert recall_at_k(approx, exact, 10) == pytest.approx(overlap)


# --------------------------------------------------------------------- FLOPs
def test_minilm_costs_about_22_mflop_per_token() -> None:
    # all-MiniLM-L6-v2: H=384, 6 layers, F=1536. Projections 4H^2 + FFN 2HF = 1.77M MACs per layer.
    per_token = encoder_flops_per_token(384, 6, 1536, 128)
    assert per_token == 2 * 6 * (4 * 384**2 + 2 * 384 * 1536 + 2 * 128 * 384)
    assert 21e6 < per_token < 23e6
    # Attention grows with the sequence; the rest does not.
    assert encoder_flops_per_token(384, 6, 1536, 256) - per_token == 2 * 6 * 2 * 128 * 384


def test_encoder_flops_credits_each_text_at_its_own_length() -> None:
    shape = (8, 2, 16)
    assert encoder_flops([3, 5], *shape) == 3 * encoder_flops_per_token(*shape, 3) + 5 * encoder_flops_per_token(
        *shape, 5
    )
    assert encoder_flops([], *shape) == 0.0


def test_cpu_peak_is_cores_times_clock_times_flop_per_cycle() -> None:
    zen4 = {
        "vendor": "AuthenticAMD",
        "family": 25,
        "flags": ["avx2", "fma", "avx512f", "avx512_bf16"],
        "cores": 2,
        "mhz": 2600.0,
    }
    peak = cpu_peak_gflops(zen4)
    assert peak["fp32"] == pytest.approx(2 * 2.6 * 32) and peak["bf16"] == pytest.approx(2 * 2.6 * 64)
    intel = {"vendor": "GenuineIntel", "family": 6, "flags": ["avx2", "fma", "avx512f"], "cores": 4, "mhz": 2000.0}
    assert cpu_peak_gflops(intel)["fp32"] == pytest.approx(4 * 2.0 * 64)
    assert cpu_peak_gflops(intel)["bf16"] is None  # no native bf16
    assert cpu_peak_gflops({**zen4, "mhz": None})["fp32"] is None  # unknown clock: no made-up number


# ------------------------------------------------------------ A/B schedules
def test_alternating_orders_rotate_so_every_side_leads_equally_often() -> None:
    orders = alternating_orders(["a", "b", "c"], 6)
    assert all(sorted(o) == ["a", "b", "c"] for o in orders)
    firsts = [o[0] for o in orders]
    assert {s: firsts.count(s) for s in "abc"} == {"a": 2, "b": 2, "c": 2}


# -------------------------------------------------------- synthetic vectors
def test_gaussian_mixture_is_unit_norm_clustered_and_reproducible() -> None:
    x = gaussian_mixture(3000, 64, n_clusters=10, spread=0.05, seed=3, chunk=700)
    assert x.shape == (3000, 64) and x.dtype == np.float32
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(x, gaussian_mixture(3000, 64, n_clusters=10, spread=0.05, seed=3, chunk=700))
    # Clustered: a point's nearest neighbour is far closer than a random other point.
    sims = x[:200] @ x.T
    sims[np.arange(200), np.arange(200)] = -1
    assert np.median(sims.max(axis=1)) > 0.5 > np.median(sims[:, 1000])
    out = np.zeros((3100, 64), dtype=np.float32)
    gaussian_mixture(3000, 64, n_clusters=10, spread=0.05, seed=3, chunk=700, out=out)
    assert np.array_equal(out[:3000], x) and not out[3000:].any()


def test_centres_from_anchors_mix_real_vectors_and_feed_the_mixture() -> None:
    rng = np.random.default_rng(0)
    anchors = rng.standard_normal((40, 16)).astype(np.float32)
    anchors /= np.linalg.norm(anchors, axis=1, keepdims=True)
    c = centres_from_anchors(anchors, 25, mix=3, seed=2)
    assert c.shape == (25, 16) and np.allclose(np.linalg.norm(c, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(c, centres_from_anchors(anchors, 25, mix=3, seed=2))
    # Each centre lies in the span of the anchors it mixes: close to at least one of them.
    assert (c @ anchors.T).max(axis=1).min() > 0.5
    x = gaussian_mixture(500, 16, 25, spread=0.01, seed=0, centres=c)
    assert (x @ c.T).max(axis=1).min() > 0.95
    with pytest.raises(ValueError):
        gaussian_mixture(10, 16, 24, spread=0.01, centres=c)


def test_queries_near_land_next_to_their_source_points() -> None:
    x = gaussian_mixture(2000, 32, n_clusters=50, spread=0.1, seed=0)
    q = queries_near(x, 100, noise=0.01, seed=1)
    assert np.allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    assert (x @ q.T).max(axis=0).min() > 0.95


# ------------------------------------------------------------------- memory
@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads /proc")
def test_peak_memory_sees_an_allocation_freed_inside_the_block() -> None:
    with PeakMemory() as mem:
        block = np.ones(40 * 1024 * 1024 // 8)  # 40 MiB, touched
        del block
    assert mem.method in ("VmHWM", "sampled")
    assert mem.extra is not None and mem.extra >= 30 * 1024 * 1024
    assert rss_bytes() is not None and mem.peak >= mem.before


def test_auto_index_is_exact_up_to_the_measured_scale() -> None:
    from rrra_core.retrieval.index import AUTO_FLAT_MAX, auto_kind

    assert auto_kind(1_002_067) == "flat"  # the index benchmark's corpus: exact is cheaper per retrieve() call
    assert auto_kind(AUTO_FLAT_MAX) == "ivf"
    # a serving index answers query after query from one build: exact search stops paying first
    from rrra_core.retrieval.index import SERVING_FLAT_MAX

    assert auto_kind(SERVING_FLAT_MAX - 1, serving=True) == "flat"
    assert auto_kind(SERVING_FLAT_MAX, serving=True) == "ivf"
    assert auto_kind(SERVING_FLAT_MAX) == "flat"


# ------------------------------------------------ the bf16 encoding switch
def test_resolve_precision() -> None:
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    assert resolve_precision("auto", cpu) == ("bf16" if native_bf16(cpu) else "fp32")
    with pytest.raises(ValueError):
        resolve_precision("fp16", cpu)


def test_bf16_encoding_matches_fp32_within_1e_2_cosine(tiny_model_dir: Path) -> None:
    enc = BiEncoder.from_pretrained(tiny_model_dir)
    texts = ["a short text", "a somewhat longer text about retrieval and encoders " * 3, "x"]
    fp32 = encode_texts(enc, texts, "doc", 64, progress=False)
    bf16 = encode_texts(enc, texts, "doc", 64, progress=False, precision="bf16")
    assert bf16.dtype == np.float32 and np.allclose(np.linalg.norm(bf16, axis=1), 1.0, atol=1e-5)
    assert (fp32 * bf16).sum(axis=1).min() >= 1 - 1e-2
    assert not torch.is_autocast_enabled("cpu")  # the autocast region ends with the call


def test_bf16_vectors_never_reuse_fp32_cache_entries(tiny_model_dir: Path, tmp_path: Path) -> None:
    enc = BiEncoder.from_pretrained(tiny_model_dir)
    ids, texts = ["a", "b"], ["first document", "second document"]
    cache = tmp_path / "cache"
    runs = []
    for precision in ("fp32", "bf16", "fp32", "bf16"):
        stats = EncodeStats()
        vecs = cached_encode(
            enc, ids, texts, "doc", 32, progress=False, cache_root=cache, stats=stats, precision=precision
        )
        runs.append((stats.cached, vecs))
    assert [cached for cached, _ in runs] == [False, False, True, True]
    assert np.array_equal(runs[0][1], runs[2][1]) and np.array_equal(runs[1][1], runs[3][1])
    assert len(list(cache.iterdir())) == 2


@pytest.mark.slow
def test_minilm_bf16_matches_fp32_on_real_passages() -> None:
    from rrra_core.data import doc_text, load_dataset

    corpus = load_dataset("scifact", "test").corpus
    texts = [doc_text(corpus[d]) for d in sorted(corpus)[:16]]
    enc = BiEncoder.from_pretrained("minilm")
    fp32 = encode_texts(enc, texts, "doc", 256, progress=False)
    bf16 = encode_texts(enc, texts, "doc", 256, progress=False, precision="bf16")
    assert (fp32 * bf16).sum(axis=1).min() >= 1 - 1e-2
