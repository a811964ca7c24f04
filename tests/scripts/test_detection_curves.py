"""Detection curves: the benchmark stores them; scripts/detection_curves.py recomputes them exactly from run folders.

One tiny benchmark (random tiny BERT, ADI, 2 seeds, two adapter variants, about
15 s) is run through the real ``scripts/benchmark.py`` once per session; its
run folders are what the recomputation reads.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from rrra_core.negatives.fn_detection import MAX_CURVE_POINTS
from rrra_core.runtime.paths import REPO_ROOT

TINY_BENCH_ARGS = (
    "--preset",
    "quick",
    "--seeds",
    "0,1",
    "--variants",
    "full,no residual",
    "--samplers",
    "uniform,rrra",
    "--hitl",
    "0,5",
    "--p2-epochs",
    "2",
)


@dataclass(frozen=True)
class TinyBench:
    home: Path  # RRRA_HOME holding the benchmark's run folders
    results: Path  # folder with rrra_tiny.json/.md
    json: Path


def _script(name: str, args: list[str], home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "RRRA_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / name), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=REPO_ROOT,
    )


def run_tiny_benchmark(model: Path, base: Path) -> TinyBench:
    """The quick benchmark with the tiny model: real result files and run folders in seconds.

    Shared with the app test.
    """
    home, results = base / "home", base / "results"
    out = _script("benchmark.py", [*TINY_BENCH_ARGS, "--model", str(model), "--out", str(results / "rrra_tiny")], home)
    assert out.returncode == 0, out.stderr[-3000:]
    return TinyBench(home=home, results=results, json=results / "rrra_tiny.json")


@pytest.fixture(scope="session")
def tiny_bench(tiny_model_dir_session: Path, tmp_path_factory: pytest.TempPathFactory) -> TinyBench:
    return run_tiny_benchmark(tiny_model_dir_session, tmp_path_factory.mktemp("tiny_bench"))


def test_benchmark_stores_thinned_roc_and_pr_points_for_every_score(tiny_bench: TinyBench) -> None:
    result = json.loads(tiny_bench.json.read_text())
    assert [s["seed"] for s in result["seeds"]] == [0, 1]
    for seed in result["seeds"]:
        curves = seed["detection_curves"]
        assert (
            set(curves)
            == set(seed["detection"])
            == {
                "retriever score",
                "SimANS score",
                "margin score",
                "adapter P(FN|neg) (full)",
                "adapter P(FN|neg) (no residual)",
            }
        )
        for c in curves.values():
            fpr, tpr = c["roc"]["fpr"], c["roc"]["tpr"]
            assert 2 <= len(fpr) == len(tpr) <= MAX_CURVE_POINTS
            assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
            assert fpr == sorted(fpr) and tpr == sorted(tpr)
            recall, precision = c["pr"]["recall"], c["pr"]["precision"]
            assert recall[0] == 1.0 and all(0.0 <= v <= 1.0 for v in recall + precision)
            assert precision[0] == pytest.approx(
                c["prevalence"], abs=1e-5
            )  # flag everything: precision is the base rate
    # The curves are per seed only: the mean ± std summary stays numbers.
    assert "detection_curves" not in result["summary"]


def test_recomputation_matches_the_benchmark_exactly_and_writes_both_files(
    tiny_bench: TinyBench, tmp_path: Path
) -> None:
    stem = tmp_path / "tiny_curves"
    out = _script("detection_curves.py", [str(tiny_bench.json), "--out", str(stem)], tiny_bench.home)
    assert out.returncode == 0, out.stderr[-3000:]
    redone = json.loads(stem.with_suffix(".json").read_text())
    source = json.loads(tiny_bench.json.read_text())
    assert redone["check"]["matches"] is True and redone["check"]["max_abs_diff"] == 0.0
    assert redone["command"] == f"python scripts/detection_curves.py {tiny_bench.json} --out {stem}"
    assert redone["source"]["command"] == source["command"]
    for old, new in zip(source["seeds"], redone["seeds"]):
        assert new["detection"] == old["detection"]
        assert new["detection_curves"] == old["detection_curves"]
        assert new["runs"]["no residual"] == old["runs"]["phase2"]["no residual"]
        assert f"-s{old['seed']}-phase2-no_residual-" in new["runs"]["no residual"]  # keyed: name, then settings hash
    md = stem.with_suffix(".md").read_text()
    assert md.startswith("# False-negative detection curves: adi") and redone["command"] in md
    assert "match the source file for every seed and score" in md
    assert "P(FN\\|neg)" in md  # a pipe inside a table cell is escaped


def test_a_file_that_disagrees_with_its_runs_is_reported_in_one_line(tiny_bench: TinyBench, tmp_path: Path) -> None:
    tampered = json.loads(tiny_bench.json.read_text())
    tampered["seeds"][1]["detection"]["adapter P(FN|neg) (full)"]["AUROC"] += 0.01
    path = tmp_path / "tampered.json"
    path.write_text(json.dumps(tampered))
    out = _script("detection_curves.py", [str(path), "--out", str(tmp_path / "t")], tiny_bench.home)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith(f"error: {path}: recomputed detection differs from the file")
    assert "does NOT match" in (tmp_path / "t.md").read_text()  # the evidence is still written


def test_missing_run_folders_and_non_benchmark_files_are_user_errors(tiny_bench: TinyBench, tmp_path: Path) -> None:
    empty_home = tmp_path / "empty_home"
    out = _script("detection_curves.py", [str(tiny_bench.json), "--out", str(tmp_path / "x")], empty_home)
    assert out.returncode == 2 and "not found" in out.stderr and "Traceback" not in out.stderr
    sweep = tmp_path / "sweep.json"
    sweep.write_text(json.dumps({"command": "python scripts/sweep_rerank.py", "rows": []}))
    out = _script("detection_curves.py", [str(sweep), "--out", str(tmp_path / "y")], tiny_bench.home)
    assert out.returncode == 2 and "not a benchmark result file" in out.stderr and "Traceback" not in out.stderr
    shutil.rmtree(empty_home, ignore_errors=True)
