"""The benchmark's --quick mode runs every method end to end on ADI and writes both result files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rrra_core.runtime.paths import REPO_ROOT

pytestmark = pytest.mark.slow


def _run_quick(stem: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "benchmark.py"), "--quick", "--out", str(stem)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=REPO_ROOT,
    )


def test_quick_benchmark_writes_every_table(isolated_home: Path, tmp_path: Path) -> None:
    import os

    stem = tmp_path / "quick"
    env = {**os.environ, "RRRA_HOME": str(isolated_home), "HF_HUB_OFFLINE": "1"}
    out = _run_quick(stem, env)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(stem.with_suffix(".json").read_text())
    md = stem.with_suffix(".md").read_text()
    assert md.startswith("# RRRA benchmark") and "python scripts/benchmark.py --quick" in md
    methods = result["summary"]["methods"]
    for name in (
        "BM25",
        "zero-shot",
        "phase 1 (in-batch)",
        "uniform top-K",
        "SimANS",
        "margin filter",
        "RRRA (resampling + reranking)",
        "RRRA resampling only",
        "RRRA reranking only",
    ):
        assert 0.0 <= methods[name]["nDCG@10"]["mean"] <= 1.0, name
    for ablation in ("no residual", "no L_norm", "no ratio", "no init", "random head", "outcome labels"):
        assert f"ablation: {ablation} (phase 1 + rerank)" in methods
        assert ablation in result["summary"]["adapter_f1"]
    detection = result["summary"]["detection"]
    assert {
        "retriever score",
        "SimANS score",
        "margin score",
        "adapter P(FN|neg) (full)",
        "adapter P(rel) (outcome labels)",
    } <= set(detection)
    seed = result["seeds"][0]
    assert seed["planted"] > 0 and [row["N"] for row in seed["hitl"]] == [0, 10]
    assert set(seed["gradients"]) == {"uniform", "simans", "margin", "rrra"}
    # Full RRRA reranks by the per-run rule, chosen on dev queries no phase trained on (issue 29).
    assert seed["dev_queries"] > 0 and seed["rerank_choice"]
    choices = seed["rerank_choice"].values()
    assert all(c["rule"].startswith("holm") and c["n_dev"] <= seed["dev_queries"] for c in choices)
    assert result["complete"] is True

    # A killed run leaves a partial file; the same command (no --overwrite) resumes it and
    # reuses every finished phase from its keyed run folder instead of training it again.
    runs = sorted(p.name for p in (isolated_home / "runs").iterdir() if p.is_dir())
    assert any(r.startswith("bench-quick-s0-phase1-") for r in runs), runs
    killed = {**result, "complete": False, "seeds": [{**seed, "complete": False, "methods": {}}]}
    stem.with_suffix(".json").write_text(json.dumps(killed))
    again = _run_quick(stem, env)
    assert again.returncode == 0, again.stderr[-3000:]
    resumed = json.loads(stem.with_suffix(".json").read_text())
    assert resumed["complete"] is True
    assert sorted(p.name for p in (isolated_home / "runs").iterdir() if p.is_dir()) == runs
    for name in ("phase 1 (in-batch)", "SimANS", "RRRA (resampling + reranking)"):
        assert resumed["summary"]["methods"][name]["nDCG@10"]["mean"] == pytest.approx(methods[name]["nDCG@10"]["mean"])
    assert resumed["wall_seconds"] > result["wall_seconds"]  # the killed run's time is counted too
    # A finished result is still never replaced without the flag.
    third = _run_quick(stem, env)
    assert third.returncode == 2 and "exists; pass --overwrite" in third.stderr


def test_results_are_named_by_dataset_and_never_overwritten_without_a_flag(
    isolated_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    import benchmark

    from rrra_core.runtime.cli import run_main

    # A preset on its own dataset keeps the preset's name; on another collection, the collection's.
    assert benchmark.result_name("cranfield", "cranfield") == "cranfield"
    assert benchmark.result_name("quick", "adi") == "quick"
    assert benchmark.result_name("cranfield", "/data/my_beir/") == "my_beir"
    existing = tmp_path / "rrra_x"
    existing.with_suffix(".json").write_text("{}")
    assert run_main(benchmark.main, ["--quick", "--out", str(existing)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "exists; pass --overwrite" in err[0]
    assert existing.with_suffix(".json").read_text() == "{}"
