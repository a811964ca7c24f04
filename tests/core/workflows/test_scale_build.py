"""The streamed phase-2 build: a run the store and the review queue read, and a kill -9 that changes nothing.

A tiny collection (600 documents, 120 training queries) and the tiny random
encoder, cut into many small chunks so that every stage has several. The kill
test starts the driver as a process, waits on its ``progress.json`` until a
chunked stage is partway, kills it with SIGKILL, does it again in a later stage,
lets a third process finish, and compares every output with an uninterrupted build.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from rrra_core.data.scale_collection import ScaleCollectionConfig, write_scale_collection

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "scripts" / "build_scale.py"
COLUMNS = ["query_id", "doc_id", "rank", "score", "label", "p_TP", "p_FN", "p_FP", "p_TN",
           "p_fn_given_neg", "p_fp_given_pos", "p_rel", "qa", "ca"]  # fmt: skip


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("scale") / "coll"
    write_scale_collection(ScaleCollectionConfig(docs=600, queries=120, seed=0, out=str(out)))
    return out


def _argv(collection: Path, model: Path, run_id: str) -> list[str]:
    return ["--dataset", str(collection), "--model", str(model), "--run-id", run_id, "--doc-chunk", "50",
            "--query-chunk", "20", "--fit-queries", "60", "--epochs", "2", "--index-kind", "ivf"]  # fmt: skip


def _start(home: Path, argv: list[str]) -> subprocess.Popen:
    env = {**os.environ, "RRRA_HOME": str(home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.fixture(scope="module")
def built(collection: Path, tiny_model_dir_session: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted build, in its own process."""
    home = tmp_path_factory.mktemp("home_whole")
    proc = _start(home, _argv(collection, tiny_model_dir_session, "whole"))
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    assert json.loads(out.strip().splitlines()[-1])["candidates"] == 120 * 100
    return home / "runs" / "whole"


def test_the_build_is_a_run_the_store_and_the_review_queue_read(built: Path) -> None:
    from rrra_core.analysis.run_reader import open_store
    from rrra_core.review.features import lexical_features
    from rrra_core.review.refit import refit_run, store_frame
    from rrra_core.runtime.run_config import read_run_config

    cfg = read_run_config(built)
    assert cfg.kind == "phase2" and cfg.train_split == "train" and Path(cfg.dataset).name == "coll"
    table = pq.read_table(built / "predictions.parquet")
    assert table.column_names == COLUMNS and table.num_rows == 120 * 100
    assert pq.ParquetFile(built / "predictions.parquet").metadata.num_row_groups == 6  # one per query chunk
    frame = table.to_pandas()
    assert (frame.groupby("query_id")["rank"].agg(list).map(lambda r: r == list(range(100)))).all()
    assert frame.groupby("query_id")["score"].apply(lambda s: s.is_monotonic_decreasing).all()
    assert frame["label"].sum() > 30  # more positives in the top 100 than chance (20), even with a random encoder

    store = open_store(built)
    assert store.n_rows == 12_000 and len(store.query_ids) == 120
    first = store.candidates(store.query_ids[0])
    assert list(first["rank"]) == list(range(100))
    # The review queue reads the features the build wrote (no rebuild), and they are what a whole-run build gives.
    negs = store.negative_rows(np.asarray(store.adapter_order[:3]))
    verdicts = {(r.query_id, r.doc_id): i == 0 for i, r in enumerate(negs.itertuples())}
    result = refit_run(built, verdicts)
    assert result.version.model["feature_cache"] == "read"
    sf = store_frame(built)
    from rrra_core.data import load_dataset

    data = load_dataset(cfg.dataset, "train")
    ids = pd.DataFrame({"query_id": np.asarray(sf.query_ids, dtype=object), "doc_id": np.asarray(sf.doc_ids)})
    ids["positives"] = ids["query_id"].map({q: sorted(v) for q, v in data.qrels.items()})
    whole = lexical_features(ids, {d: (x.title, x.text) for d, x in data.corpus.items()}, data.queries)
    pd.testing.assert_frame_equal(sf.frame[list(whole.columns)].reset_index(drop=True), whole)

    metrics = json.loads((built / "metrics.json").read_text())
    scale = metrics["train"]["scale_build"]
    assert scale["fit_queries"] == 60 and scale["candidates"] == 12_000
    assert all(rec["done"] and rec["peak_rss_gb"] > 0 for rec in scale["stages"].values())
    assert len(scale["stages"]) == 8
    assert json.loads((built / "progress.json").read_text())["status"] == "done"


def _main(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """The driver's ``main`` in this process, as ``python scripts/build_scale.py`` runs it: (exit code, stderr)."""
    from rrra_core.runtime.cli import run_main

    sys.path.insert(0, str(SCRIPT.parent))
    import build_scale

    code = run_main(build_scale.main, argv)
    return code, capsys.readouterr().err.strip()


def test_a_taken_run_id_is_refused_in_one_line(
    built: Path, collection: Path, tiny_model_dir_session: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("RRRA_HOME", str(built.parent.parent))
    before = (built / "predictions.parquet").stat().st_mtime_ns
    code, err = _main(_argv(collection, tiny_model_dir_session, "whole"), capsys)
    assert code == 2 and err.splitlines()[-1].startswith("error:") and "already built" in err
    code, err = _main([*_argv(collection, tiny_model_dir_session, "whole"), "--top-k", "50"], capsys)
    assert code == 2 and "taken by a run with other settings" in err.splitlines()[-1]
    assert (built / "predictions.parquet").stat().st_mtime_ns == before


def test_bad_input_is_a_one_line_error(tmp_path: Path, tiny_model_dir_session: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    code, err = _main(["--dataset", str(tmp_path / "empty"), "--model", str(tiny_model_dir_session)], capsys)
    assert code == 2 and err.splitlines()[-1].startswith("error:") and "corpus" in err.splitlines()[-1]
    code, err = _main(["--dataset", str(tmp_path / "empty"), "--doc-chunk", "0"], capsys)
    assert code == 2 and "doc_chunk must be at least 1" in err.splitlines()[-1]
    assert not (tmp_path / "runs").exists()


def _kill_partway(proc: subprocess.Popen, progress: Path, stages: tuple[str, ...]) -> str:
    """SIGKILL ``proc`` as soon as its progress shows one of ``stages`` with some, not all, chunks done."""
    while proc.poll() is None:
        try:
            rec = json.loads(progress.read_text())
        except (OSError, ValueError):
            rec = {}
        if rec.get("stage") in stages and 0 < (rec.get("step") or 0) < (rec.get("total_steps") or 0):
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return f"{rec['stage']} {rec['step']}/{rec['total_steps']}"
        time.sleep(0.002)
    raise AssertionError(f"the build ended before a partway stage among {stages}: {proc.stderr.read()[-1500:]}")


def _same_outputs(a: Path, b: Path) -> None:
    assert pq.read_table(a / "predictions.parquet").equals(pq.read_table(b / "predictions.parquet"))
    from safetensors.numpy import load_file

    # Tensors, not bytes: safetensors writes its header's metadata in a per-process hash order.
    weights = [load_file(p / "adapter" / "adapter.safetensors") for p in (a, b)]
    assert weights[0].keys() == weights[1].keys()
    assert all(np.array_equal(weights[0][k], weights[1][k]) for k in weights[0])
    for f in sorted(p.name for p in (a / "reader").glob("*.npy")):
        assert np.array_equal(np.load(a / "reader" / f), np.load(b / "reader" / f)), f
    lex = [pq.read_table(p / "review_features.parquet").drop_columns(["key"]) for p in (a, b)]
    assert lex[0].equals(lex[1])


@pytest.mark.slow
def test_a_build_killed_twice_with_sigkill_resumes_to_the_same_outputs(
    built: Path, collection: Path, tiny_model_dir_session: Path, tmp_path: Path
) -> None:
    argv = _argv(collection, tiny_model_dir_session, "killed")
    progress = tmp_path / "runs" / "killed" / "progress.json"
    first = _kill_partway(_start(tmp_path, argv), progress, ("encoding the corpus",))
    second = _kill_partway(_start(tmp_path, argv), progress, ("scoring candidates", "review features", "mining top-K"))
    assert first.startswith("encoding the corpus")
    stages = json.loads((tmp_path / "runs" / "killed" / "scale" / "stages.json").read_text())
    assert stages["encoding the corpus"]["done"] and not all(r["done"] for r in stages.values())
    last = _start(tmp_path, argv)
    _, err = last.communicate(timeout=300)
    assert last.returncode == 0, f"after kills at {first} and {second}: {err[-2000:]}"
    run = tmp_path / "runs" / "killed"
    stages = json.loads((run / "scale" / "stages.json").read_text())
    assert stages["encoding the corpus"]["restarts"] == 1 and stages["encoding the corpus"]["chunks_resumed"] > 0
    _same_outputs(built, run)


def test_the_review_benchmark_runs_on_a_scale_build(built: Path, tmp_path: Path) -> None:
    """bench_review.py's ``scale`` collection: the folder its run names, the truth in its answers/."""
    out = tmp_path / "review_scale"
    argv = ["scale", "--predictions", str(built / "predictions.parquet"), "--split", "dev", "--seeds", "0",
            "--orders", "closeness", "bandit", "--budgets", "25", "50",
            "--no-calibration", "--out", str(out)]  # fmt: skip
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_review.py"), *argv], capture_output=True, text=True, cwd=REPO
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.with_suffix(".json").read_text())
    closeness = result["results"]["closeness/0"]
    assert closeness["false_negatives"] > 0 and closeness["found"]["50"] > 0  # near-duplicates of the positive
    assert set(result["results"]) == {"closeness/0", "bandit/0"}
    nothing = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_review.py"), "scale"], capture_output=True, text=True, cwd=REPO
    )
    assert nothing.returncode != 0 and "give --predictions" in nothing.stderr
