"""The benchmark's Markdown is a pure rendering of its JSON: every committed result re-renders byte for byte."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rrra_core.runtime.paths import REPO_ROOT
from rrra_core.workflows.benchmark_report import render_markdown

RESULTS = sorted(
    p for p in (REPO_ROOT / "results").glob("rrra_*.json") if not p.stem.endswith(("detection_curves", "rerank_sweep"))
)


@pytest.mark.parametrize("result", RESULTS, ids=lambda p: p.stem)
def test_committed_results_render_identically(result: Path) -> None:
    import json

    assert render_markdown(json.loads(result.read_text(encoding="utf-8"))) == result.with_suffix(".md").read_text(
        encoding="utf-8"
    )


def test_render_flag_rewrites_the_markdown_only(tmp_path: Path) -> None:
    src = REPO_ROOT / "results" / "rrra_quick.json"
    shutil.copy(src, tmp_path / "r.json")
    (tmp_path / "r.md").write_text("stale", encoding="utf-8")
    out = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "benchmark.py"), "--render", str(tmp_path / "r.json")],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "r.md").read_text(encoding="utf-8") == src.with_suffix(".md").read_text(encoding="utf-8")
    assert (tmp_path / "r.json").read_bytes() == src.read_bytes()


def test_render_of_a_damaged_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    out = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "benchmark.py"), "--render", str(tmp_path / "bad.json")],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert out.returncode == 2 and out.stderr.strip().startswith("error:") and len(out.stderr.strip().splitlines()) == 1


def test_a_partial_result_says_it_is_incomplete_and_how_to_resume() -> None:
    import json

    full = json.loads((REPO_ROOT / "results" / "rrra_quick.json").read_text(encoding="utf-8"))
    seed = {**full["seeds"][0], "complete": False, "hitl": [], "gradients": {}}
    partial = {**full, "complete": False, "seeds": [seed]}
    md = render_markdown(partial)
    assert f"**Incomplete**: seed {seed['seed']} stopped part-way" in md
    assert f"0 of {len(full['config']['seeds'])} planned seeds finished" in md
    assert "The same command resumes it" in md
    assert "Incomplete" not in render_markdown(full)  # files written before the flag existed stay as they were


def test_merging_seed_files_keeps_every_sampler_and_says_what_it_merged(tmp_path: Path) -> None:
    import json

    src = json.loads((REPO_ROOT / "results" / "rrra_quick.json").read_text(encoding="utf-8"))
    one = {**src, "config": {**src["config"], "samplers": ["uniform", "rrra"]}}
    two = {
        **src,
        "config": {**src["config"], "samplers": ["simans"]},
        "seeds": [{**src["seeds"][0], "seed": 7}],
        "complete": False,  # a killed run's file
    }
    (tmp_path / "a.json").write_text(json.dumps(one), encoding="utf-8")
    (tmp_path / "b.json").write_text(json.dumps(two), encoding="utf-8")
    out = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "benchmark.py"), "--merge", "a.json", "b.json", "--out", "m"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    merged = json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))
    assert [s["seed"] for s in merged["seeds"]] == [s["seed"] for s in src["seeds"]] + [7]
    assert merged["config"]["samplers"] == ["uniform", "rrra", "simans"]
    assert merged["complete"] is False
    md = (tmp_path / "m.md").read_text(encoding="utf-8")
    assert "Merged from 2 result files" in md and "**Incomplete**" in md


def test_full_rrra_s_rerank_choice_is_shown_per_seed_with_its_dev_evidence() -> None:
    import json

    full = json.loads((REPO_ROOT / "results" / "rrra_quick.json").read_text(encoding="utf-8"))
    seed = full["seeds"][0]
    methods = {
        **seed["methods"],
        "RRRA resampling only": {**seed["methods"]["RRRA resampling only"], "nDCG@10": 0.50},
        "RRRA (resampling + reranking)": {**seed["methods"]["RRRA (resampling + reranking)"], "nDCG@10": 0.52},
    }
    choice = {
        "on": True,
        "signal": "qa",
        "lambda_rr": 2.0,
        "n_dev": 40,
        "best": "qa:2",
        "p_value": 0.004,
        "level": 0.01,
        "dev": {"off": {"mean": 0.4, "delta": 0.0}, "qa:2": {"mean": 0.43, "delta": 0.03}},
    }
    chosen = {**seed, "methods": methods, "rerank_choice": {"bench-x-s0-phase3-rrra-abc": choice}}
    md = render_markdown({**full, "seeds": [chosen]})
    assert "| 0 | `bench-x-s0-phase3-rrra-abc` | 40 | **qa:2** | qa:2: +0.0300, 0.004 | 0.01 | +0.0200 |" in md
    assert "chosen per seed on its dev split" not in render_markdown(full)  # runs made before choices: no section
