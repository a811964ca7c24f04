"""The encode-options summary: the fastest option that keeps quality, and the build setting that selects it."""

from __future__ import annotations

from typing import Any

from rrra_core.speed.encode_options import render_encode_options, summarize_options


def _row(speed: float, cosine: float, delta: float | None, admissible: bool) -> dict[str, Any]:
    return {
        "seconds": 1.0,
        "docs_per_s": 10.0 * speed,
        "throughput_vs_st": speed,
        "per_round_vs_st": {"p50": speed, "min": speed * 0.9, "max": speed * 1.1},
        "cosine_to_fp32": {"mean": cosine, "min": cosine - 0.002},
        "quality": {} if delta is None else {"ndcg@10": 0.64 + delta, "delta_vs_fp32": delta},
        "admissible": admissible,
    }


ROWS = {
    "st-fp32": _row(1.0, 1.0, None, False),
    "fp32": _row(1.3, 1.0, 0.0, True),
    "bf16": _row(1.9, 0.99998, -0.001, True),
    "int8": _row(2.6, 0.983, None, False),  # too lossy, however fast
    "onnx-int8": _row(2.4, 0.994, 0.002, True),  # qualifies, but the build cannot select it
    "2x1:bf16": _row(3.1, 0.99998, -0.001, True),  # the build's only under torchrun
}


def test_summary_names_fastest_qualifying_build_option_and_fastest_of_all() -> None:
    sm = summarize_options(ROWS)
    assert sm["best_option"] == "bf16" and sm["build_setting"].startswith("precision bf16")
    assert sm["encode_speedup_vs_st"] == 1.9 and not sm["aim_2x_met"]
    assert sm["ndcg10_delta_vs_fp32"] == -0.001
    assert sm["best_option_of_all"] == "2x1:bf16" and sm["best_of_all_speedup_vs_st"] == 3.1
    assert sm["best_under_torchrun"] == "2x1:bf16"
    assert "torchrun --nproc_per_node 2" in sm["best_under_torchrun_setting"]


def test_markdown_lists_every_option_with_its_verdict() -> None:
    result = {
        "command": "python scripts/bench_encode_options.py",
        "started": "2026-01-01T00:00:00",
        "wall_seconds": 1.0,
        "load": {"before": [1.0, 1.0, 1.0], "after": [1.0, 1.0, 1.0]},
        "machine": {
            "cpu": "cpu",
            "cpu_vendor": "v",
            "cpu_family_model": [6, 1],
            "cpu_count": 2,
            "torch_threads": 2,
            "device": "cpu",
            "peak_gflops_estimate": {"fp32": 1.0, "bf16": 2.0, "basis": "b", "ghz": 2.0},
        },
        "settings": {
            "texts": "t",
            "max_length": 128,
            "mean_tokens": 120.0,
            "truncated_share": 0.9,
            "batch_size": 64,
            "threads": 2,
            "chunk": 64,
            "passes": 2,
            "quality": "q",
            "bars": {"min_cosine": 0.99, "max_ndcg_change": 0.005},
        },
        "options": ROWS,
        "skipped": {"onnx-fp32": "not installed: onnxruntime"},
        "summary": summarize_options(ROWS),
    }
    md = render_encode_options(result)
    assert md.startswith("# Encoding options") and "Command: `python scripts/bench_encode_options.py`" in md
    assert "| int8 | 26.0 | 2.60x" in md and md.count("| yes |") == 4 and "| baseline |" in md
    assert "| onnx-fp32 | not run: not installed: onnxruntime" in md
    assert "`bf16` (precision bf16" in md and "Where a driver runs under torchrun" in md
