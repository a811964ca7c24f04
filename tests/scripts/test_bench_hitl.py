"""The human-in-the-loop benchmark's quick variant, end to end with the tiny encoder (CI runs it)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import bench_hitl  # noqa: E402


@pytest.mark.parametrize("seeds", [[0]])
def test_quick_variant_runs_resumes_and_renders(tiny_model_dir: Path, tmp_path: Path, seeds: list[int]) -> None:
    stem = tmp_path / "hitl_quick"
    args = ["--quick", "--model", str(tiny_model_dir), "--out", str(stem), "--seeds", *map(str, seeds)]
    assert bench_hitl.main(args) == 0
    part = json.loads(bench_hitl.part_path(stem, 0).read_text())
    names = set(part["points"])
    assert names == {"lower", "upper", "learnt-n5", "retriever-n5", "learnt-n10", "retriever-n10"}
    # The oracle's verdicts come from the hidden truth: the upper bound restores every hidden positive.
    assert part["points"]["upper"]["found"] == part["hidden_positives"] > 0
    assert part["points"]["lower"]["found"] == 0
    learnt = part["sessions"]["learnt"]
    assert len(learnt) == 10 and part["points"]["learnt-n10"]["found"] == sum(t for _, _, t in learnt)
    for p in part["points"].values():
        assert set(p["metrics"]) == {"rerank", "no_rerank"}
        assert len(p["per_query"]["rerank"]) > 0

    # A rerun finds every point done and retrains nothing.
    before = bench_hitl.part_path(stem, 0).stat().st_mtime_ns
    assert bench_hitl.main(args) == 0
    assert bench_hitl.part_path(stem, 0).stat().st_mtime_ns == before

    assert bench_hitl.main([*args, "--render"]) == 0
    out = json.loads(stem.with_suffix(".json").read_text())
    summary = out["summary"]
    assert set(summary["recovered_at"]) == {"5", "10"}
    assert summary["upper"] is not None and summary["lower"] is not None
    assert out["command"].startswith("python scripts/bench_hitl.py --render")
    tests = {(t["control"], t["treatment"]): t for t in out["result"]["tests"]}
    assert ("lower", "upper") in tests and tests[("lower", "upper")]["queries"] > 1
    md = stem.with_suffix(".md").read_text()
    assert "| upper |" in md and "Paired tests" in md
