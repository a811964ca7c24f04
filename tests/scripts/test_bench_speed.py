"""scripts/bench_speed.py: its flags build the benchmarks' settings, --render-only rewrites the Markdown, and
(slow) end to end on tiny sizes with the tiny model every part writes its headed results files."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from rrra_core.runtime.paths import REPO_ROOT

PARTS = ("encode", "latency", "index", "train")


def _driver() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_speed", REPO_ROOT / "scripts" / "bench_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_flag_defaults_are_the_benchmarks_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    from rrra_core.speed.encode import EncodeBench
    from rrra_core.speed.index_scale import IndexBench
    from rrra_core.speed.latency import LatencyBench
    from rrra_core.speed.train_step import TrainBench

    driver = _driver()
    args = driver.build_parser().parse_args(["all"])
    for part, cls in (("encode", EncodeBench), ("latency", LatencyBench), ("index", IndexBench), ("train", TrainBench)):
        monkeypatch.setattr(sys.modules[cls.__module__], f"bench_{part}", lambda cfg, device: {"cfg": cfg})
        built = driver.BENCHES[part](args, "cpu")["cfg"]
        assert built == cls(), part  # a flag's default and the dataclass's default never drift apart


def test_render_only_rewrites_the_markdown_from_the_json_and_the_notes(tmp_path: Path) -> None:
    from rrra_core.speed import render

    for f in (REPO_ROOT / "results").glob("speed_*"):
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "speed_index.notes.md").write_text("A new note.\n", encoding="utf-8")
    assert _driver().main(["all", "--render-only", "--out", str(tmp_path)]) == 0
    for part in PARTS:
        committed = json.loads((REPO_ROOT / "results" / f"speed_{part}.json").read_text(encoding="utf-8"))
        result = json.loads((tmp_path / f"speed_{part}.json").read_text(encoding="utf-8"))
        assert {k: v for k, v in result.items() if k != "notes_md"} == {
            k: v for k, v in committed.items() if k != "notes_md"
        }  # nothing is re-measured
        assert (tmp_path / f"speed_{part}.md").read_text(encoding="utf-8") == render(result)
    assert json.loads((tmp_path / "speed_index.json").read_text())["notes_md"] == ["## Notes", "", "A new note.", ""]


ARGS = [
    "all",
    "--device",
    "cpu",
    "--dataset",
    "cranfield",
    "--query-max-length",
    "16",
    "--doc-max-length",
    "32",
    "--encode-docs",
    "24",
    "--encode-lengths",
    "16,32",
    "--encode-batch-size",
    "8",
    "--encode-chunk",
    "12",
    "--precision",
    "bf16",
    "--latency-queries",
    "6",
    "--latency-warmup",
    "1",
    "--latency-threads",
    "1",
    "--ce-queries",
    "2",
    "--adapter",
    "",
    "--index-n",
    "3000",
    "--index-clusters",
    "20",
    "--index-queries",
    "20",
    "--index-real-queries",
    "5",
    "--index-single",
    "3",
    "--ivf-nlist",
    "16",
    "--nprobe",
    "2,4",
    "--ef-search",
    "16",
    "--hnsw-m",
    "8",
    "--hnsw-ef-construction",
    "16",
    "--train-steps",
    "1",
    "--train-rounds",
    "1",
    "--train-queries",
    "16",
    "--train-batch-size",
    "4",
]


@pytest.mark.slow
def test_every_part_writes_json_and_markdown_headed_by_its_command(
    tiny_model_dir: Path, isolated_home: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    env = {**os.environ, "RRRA_HOME": str(isolated_home), "HF_HUB_OFFLINE": "1"}
    argv = [*ARGS, "--model", str(tiny_model_dir), "--out", str(out)]
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "bench_speed.py"), *argv],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    for part in ("encode", "latency", "index", "train"):
        result = json.loads((out / f"speed_{part}.json").read_text())
        md = (out / f"speed_{part}.md").read_text()
        assert md.startswith("# Speed:")
        assert result["command"].startswith("python scripts/bench_speed.py all --device cpu")
        assert f"Command: `{result['command']}`" in md
        assert len(result["load"]["before"]) == 3 and len(result["load"]["after"]) == 3
        assert result["machine"]["cpu"] and result["machine"]["cpu_count"] >= 1

    enc = json.loads((out / "speed_encode.json").read_text())
    assert [e["max_length"] for e in enc["lengths"]] == [16, 32]
    for e in enc["lengths"]:
        assert set(e["sides"]) == {"sentence-transformers", "ours fp32", "ours bf16"}
        assert e["cosine_ours_fp32_vs_st"]["min"] > 0.999  # the same model and pooling as sentence-transformers
        assert e["cosine_ours_bf16_vs_fp32"]["within_1e-2"]
    assert enc["targets"]["side"] == "ours bf16" and "Targets" in (out / "speed_encode.md").read_text()

    lat = json.loads((out / "speed_latency.json").read_text())
    assert lat["settings"]["adapter"].startswith("untrained")  # no trained adapter given
    one = lat["by_threads"]["1 thread"]
    assert one["latency_ms"]["total"]["n"] == 6 and one["cross_encoder"]["queries"] == 2
    assert lat["rerank_agreement"]["same_order"] == lat["rerank_agreement"]["queries"]

    idx = json.loads((out / "speed_index.json").read_text())
    assert idx["auto"]["kind"] == "flat"  # a few thousand documents: exact
    kinds = {row["kind"]: row for row in idx["indexes"]}
    assert set(kinds) == {"flat", "ivf", "hnsw"}
    assert kinds["flat"]["sweep"][0]["recall@10"] == 1.0
    assert all(0.0 <= sw["recall@10"] <= 1.0 for row in idx["indexes"] for sw in row["sweep"])
    assert idx["settings"]["vectors"] == 3000 + idx["settings"]["demo_docs"]

    train = json.loads((out / "speed_train.json").read_text())
    assert len(train["variants"]) == 4
    assert all(v["step_seconds"]["n"] == 1 for v in train["variants"].values())
    extra = train["variants"]["phase 3, RRRA + 1 extra random negative"]
    assert (
        extra["docs_per_step_mean"] > train["variants"]["phase 1, in-batch negatives"]["docs_per_step_mean"]
    )  # the extra random documents were encoded
