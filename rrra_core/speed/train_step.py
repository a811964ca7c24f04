"""Training-step cost: phase 3 (the RRRA sampler) against phase 1 at the same batch.

The real ``train_phase1`` / ``train_phase3`` loops run for a few steps with
evaluation and checkpoints off, and a step's time is the difference of the
loop's own ``time`` log field, so data sampling, the forward and backward
passes, the optimizer and the logging all count. The variants alternate in
rotating order over rounds. Other processes only ever add time to a step, so
the fastest step of each variant is the estimate they disturb least; medians
and per-round medians are reported beside it.
"""

from __future__ import annotations

import gc
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rrra_core.adapter import save_adapter
from rrra_core.data import Dataset, load_dataset
from rrra_core.negatives.mining import MiningConfig
from rrra_core.retrieval.encoder import BiEncoder, EncoderConfig
from rrra_core.runtime.runs import Run, create_run
from rrra_core.speed.measure import PeakMemory, alternating_orders, load_average, summarize
from rrra_core.speed.timed_adapter import DEFAULT_ADAPTER, timed_adapter
from rrra_core.training import Phase1Config, train_phase1
from rrra_core.training.phase1 import phase1_config_dict
from rrra_core.training.phase3 import Phase3Config, phase3_config_dict, train_phase3

__all__ = ["TrainBench", "bench_train", "step_ratios"]

# The first three are the comparison the target is about: phase 3 at its defaults (one hard negative,
# the in-batch positives as the random mix) against phase 1 without and with one hard negative.
# The last adds an extra random corpus negative per query (--n-random 1), a third more documents.
VARIANTS = (
    "phase 1, in-batch negatives",
    "phase 1, 1 mined hard negative",
    "phase 3, RRRA defaults (1 hard; in-batch random)",
    "phase 3, RRRA + 1 extra random negative",
)


@dataclass(frozen=True)
class TrainBench:
    """What the training benchmark runs (``bench_speed.py train`` flags in brackets)."""

    model: str = "minilm"  # encoder folder or "minilm" [--model]
    dataset: str = "squad"  # its train split [--dataset]
    batch_size: int = 32  # queries per step, every variant [--train-batch-size]
    steps: int = 5  # measured steps per variant per round [--train-steps]
    rounds: int = 2  # the variants alternate within each [--train-rounds]
    warmup: int = 1  # untimed first steps of each run [--train-warmup]
    queries: int = 800  # training queries, a fixed subsample (seed 0) [--train-queries]
    adapter: str | None = DEFAULT_ADAPTER  # trained adapter folder, else an untrained one [--adapter]
    query_max_length: int = 48  # [--query-max-length]
    doc_max_length: int = 128  # [--doc-max-length]


def _train_subsample(dataset: str, n: int) -> Dataset:
    """The train split with ``n`` of its queries (a fixed subsample, seed 0) and the full corpus."""
    full = load_dataset(dataset, "train")
    qids = sorted(full.qrels)
    if n < len(qids):
        qids = sorted(np.random.default_rng(0).choice(qids, size=n, replace=False).tolist())
    return Dataset(
        name=full.name,
        split=full.split,
        corpus=full.corpus,
        queries={q: full.queries[q] for q in qids},
        qrels={q: full.qrels[q] for q in qids},
    )


def _phase1(enc: EncoderConfig, common: dict[str, Any], train: Dataset, hard: bool, root: Path) -> Run:
    cfg = Phase1Config(hard_negatives="mine" if hard else "none", n_hard=1, **common)
    run = create_run("phase1", phase1_config_dict(enc, cfg, MiningConfig()), root=root)
    train_phase1(run, enc, cfg, MiningConfig(), train_data=train)
    return run


def _phase3(enc: EncoderConfig, common: dict[str, Any], train: Dataset, adapter: str, n_random: int, root: Path) -> Run:
    cfg = Phase3Config(sampler="rrra", n_hard=1, n_random=n_random, top_k=100, **common)
    run = create_run("phase3", phase3_config_dict(enc, cfg, adapter), root=root)
    train_phase3(run, enc, cfg, adapter_dir=adapter, train_data=train)
    return run


def _variants(cfg: TrainBench, device: Any, train: Dataset, adapter_dir: str) -> dict[str, Callable[[Path], Run]]:
    """Each variant as a call that trains a fresh run under the given root and returns it."""
    enc = EncoderConfig(
        model=cfg.model, query_max_length=cfg.query_max_length, doc_max_length=cfg.doc_max_length, device=str(device)
    )
    common = {
        "dataset": cfg.dataset,
        "max_steps": cfg.warmup + cfg.steps,
        "batch_size": cfg.batch_size,
        "eval_split": "",
        "index_kind": "flat",
        "checkpoint_every": 0,
    }
    calls = (
        partial(_phase1, enc, common, train, False),
        partial(_phase1, enc, common, train, True),
        partial(_phase3, enc, common, train, adapter_dir, 0),
        partial(_phase3, enc, common, train, adapter_dir, 1),
    )
    return dict(zip(VARIANTS, calls))


def _timed_run(train: Callable[[Path], Run], root: Path, device: Any, warmup: int) -> dict[str, Any]:
    """Train one run; its step durations after the warm-up, documents per step, and peak memory."""
    cuda = str(device).startswith("cuda")
    if cuda:
        gc.collect()  # the previous variant's tensors must not count towards this one's peak
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    with PeakMemory() as mem:
        run = train(root)
    log = [rec for rec in run.read_log() if "time" in rec]
    shutil.rmtree(run.path, ignore_errors=True)  # a saved model and checkpoint per run: hundreds of MB
    t = np.array([rec["time"] for rec in log])
    return {
        "durations": np.diff(np.concatenate([[0.0], t]))[warmup:],
        "n_docs": [rec["n_docs"] for rec in log[warmup:]],
        "peak_rss": mem.peak,
        "extra_rss": mem.extra,
        "gpu_peak": torch.cuda.max_memory_allocated(device) if cuda else None,
    }


def _time_variants(
    variants: dict[str, Callable[[Path], Run]], cfg: TrainBench, tmp: Path, device: Any
) -> dict[str, dict[str, list]]:
    """Every variant once per round, in rotating order: what each run measured, gathered per variant."""
    keys = ("step_s", "n_docs", "peak_rss", "extra_rss", "gpu_peak", "load_after", "round_median")
    per: dict[str, dict[str, list]] = {v: {k: [] for k in keys} for v in variants}
    for r, order in enumerate(alternating_orders(list(variants), cfg.rounds)):
        for name in order:
            got = _timed_run(variants[name], tmp / f"round{r}", device, cfg.warmup)
            durations, p = got["durations"], per[name]
            p["step_s"] += durations.tolist()
            p["round_median"].append(round(float(np.median(durations)), 3))
            p["n_docs"] += got["n_docs"]
            p["peak_rss"].append(got["peak_rss"])
            p["extra_rss"].append(got["extra_rss"])
            p["load_after"].append(load_average())
            if got["gpu_peak"] is not None:
                p["gpu_peak"].append(got["gpu_peak"])
            print(f"train round {r} {name}: median step {np.median(durations):.2f} s", file=sys.stderr)
    return per


def _variant_summary(v: dict[str, list]) -> dict[str, Any]:
    known_extra = [x for x in v["extra_rss"] if x is not None]
    return {
        "step_seconds": summarize(v["step_s"]),
        "docs_per_step_mean": round(float(np.mean(v["n_docs"])), 1),
        "seconds_per_doc": round(float(np.median(v["step_s"]) / np.mean(v["n_docs"])), 4),
        "peak_rss_bytes": max(x for x in v["peak_rss"] if x is not None) if any(v["peak_rss"]) else None,
        "extra_rss_bytes": max(known_extra) if known_extra else None,
        "gpu_peak_bytes": max(v["gpu_peak"]) if v["gpu_peak"] else None,
        "load_after_each_run": v["load_after"],
        "median_per_round": v["round_median"],
    }


def step_ratios(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Variant ``a`` over variant ``b`` (two variant summaries): fastest step, median step, per round, per document."""
    fast_a, fast_b = a["step_seconds"]["min"], b["step_seconds"]["min"]
    return {
        "fastest_step": round(fast_a / fast_b, 3),
        "median_step": round(a["step_seconds"]["p50"] / b["step_seconds"]["p50"], 3),
        "per_round_median": [round(x / y, 3) for x, y in zip(a["median_per_round"], b["median_per_round"])],
        "per_document_fastest": round((fast_a / a["docs_per_step_mean"]) / (fast_b / b["docs_per_step_mean"]), 3),
    }


def _settings(cfg: TrainBench, n_queries: int, adapter_src: str) -> dict[str, Any]:
    return {
        "model": cfg.model,
        "dataset": f"{cfg.dataset} train, {n_queries} queries (fixed subsample, seed 0), full corpus",
        "batch_size": cfg.batch_size,
        "query_max_length": cfg.query_max_length,
        "doc_max_length": cfg.doc_max_length,
        "steps": f"{cfg.rounds} rounds x ({cfg.warmup} warm-up + {cfg.steps} measured) steps per variant; "
        "variants alternate in rotating order",
        "how": "the real train_phase1 / train_phase3 with max_steps, eval off, checkpoints off; "
        "step time = difference of the loop's own 'time' log field, "
        "so data sampling, the forward/backward pass, the optimizer and the per-step logging are all included",
        "adapter": adapter_src,
        "memory": "peak RSS of the whole train call (model load, mining from cached vectors, steps) "
        "via the kernel high-water mark; extra = peak minus RSS before the call",
    }


def bench_train(cfg: TrainBench, device: Any) -> dict[str, Any]:
    """Seconds per optimizer step of the real phase-1 and phase-3 loops at the same batch, alternating runs."""
    train = _train_subsample(cfg.dataset, cfg.queries)
    dim = BiEncoder.from_pretrained(cfg.model).dim
    tmp = Path(tempfile.mkdtemp(prefix="bench-train-"))
    adapter, adapter_src = timed_adapter(cfg.adapter, dim, "cpu")
    adapter_dir = str(save_adapter(adapter, adapter.cfg, tmp / "adapter"))
    try:
        per = _time_variants(_variants(cfg, device, train, adapter_dir), cfg, tmp, device)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = {name: _variant_summary(per[name]) for name in VARIANTS}
    ratios = {f"{p3} / {p1}": step_ratios(out[p3], out[p1]) for p3 in VARIANTS[2:] for p1 in VARIANTS[:2]}
    in_batch, hard, rrra, extra = VARIANTS
    return {
        "settings": _settings(cfg, len(train.queries), adapter_src),
        "variants": out,
        "ratios": ratios,
        "targets": {
            "estimator": "ratio of fastest steps",
            "phase3_over_phase1_hard": ratios[f"{rrra} / {hard}"]["fastest_step"],
            "phase3_over_phase1_inbatch": ratios[f"{rrra} / {in_batch}"]["fastest_step"],
            "at_most_1_5": ratios[f"{rrra} / {hard}"]["fastest_step"] <= 1.5,
            "phase3_extra_random_over_phase1_hard": ratios[f"{extra} / {hard}"]["fastest_step"],
        },
    }
