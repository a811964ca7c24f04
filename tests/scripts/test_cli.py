"""The command line: --help for every driver, and one-line errors (never a traceback) for user mistakes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rrra_core.runtime.paths import REPO_ROOT

SCRIPTS = [
    "evaluate",
    "index",
    "mine",
    "train_phase1",
    "train_phase2",
    "train_phase3",
    "train",  # the old names, aliases of the three above
    "train_adapter",
    "train_rrra",
    "benchmark",
    "bench_core",
    "demo",
    "retrain",
    "project",
    "per_query",
    "detection_curves",
    "bench_app",
    "annotations",
    "search",
    "bench_speed",
    "bench_review",
    "refit_queue",
    "make_review_runs",
    "sweep_rerank",
    "fair_defaults",
    "make_scale_collection",
    "build_scale",
]


def _run(script: str, *args: str, env_home: Path) -> subprocess.CompletedProcess[str]:
    import os

    env = {**os.environ, "RRRA_HOME": str(env_home), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / f"{script}.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=REPO_ROOT,
    )


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_driver_has_help(script: str, isolated_home: Path) -> None:
    out = _run(script, "--help", env_home=isolated_home)
    assert out.returncode == 0, out.stderr
    assert "usage:" in out.stdout


def _assert_one_line_error(out: subprocess.CompletedProcess[str], needle: str) -> None:
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], out.stderr


def test_unknown_dataset(isolated_home: Path) -> None:
    _assert_one_line_error(_run("evaluate", "--dataset", "nope", env_home=isolated_home), "unknown dataset 'nope'")


def test_malformed_corpus_names_file_and_line(isolated_home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text('{"_id": "d1", "text": "ok"}\n{"_id": "d2", "text": \n', encoding="utf-8")
    (folder / "queries.jsonl").write_text('{"_id": "q1", "text": "x"}\n', encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n", encoding="utf-8")
    _assert_one_line_error(_run("evaluate", "--dataset", str(folder), env_home=isolated_home), "corpus.jsonl:2")


def test_bad_setting(isolated_home: Path) -> None:
    _assert_one_line_error(
        _run("train_phase1", "--dataset", "adi", "--epochs", "zero", env_home=isolated_home), "epochs"
    )
    _assert_one_line_error(
        _run("evaluate", "--dataset", "adi", "--model", str(isolated_home / "missing"), env_home=isolated_home),
        "not found",
    )


def test_resume_of_unknown_run(isolated_home: Path) -> None:
    _assert_one_line_error(_run("train_phase1", "--resume", "no-such-run", env_home=isolated_home), "not found")
    _assert_one_line_error(_run("train_phase2", "--config", "no-such.json", env_home=isolated_home), "not found")


def test_mine_writes_tevatron_without_positives(isolated_home: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    from rrra_core.data import load_dataset, read_tevatron

    out_file = tmp_path / "negs.jsonl"
    out = _run(
        "mine",
        "--dataset",
        "adi",
        "--split",
        "test",
        "--model",
        str(tiny_model_dir),
        "--out",
        str(out_file),
        "--sampler",
        "simans",
        "--n-neg",
        "3",
        "--top-k",
        "30",
        env_home=isolated_home,
    )
    assert out.returncode == 0, out.stderr
    qrels = load_dataset("adi", "test").qrels
    examples = read_tevatron(out_file)
    assert len(examples) == len(qrels)
    for ex in examples:
        assert len(ex.negatives) == 3
        assert all(p.docid not in qrels[ex.query_id] and p.score is not None for p in ex.negatives)
        assert [p.score for p in ex.negatives] == sorted((p.score for p in ex.negatives), reverse=True)


def test_index_and_evaluate_round_trip(isolated_home: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    from rrra_core.retrieval.evaluation import read_trec_run
    from rrra_core.retrieval.index import DenseIndex

    out = _run(
        "index",
        "--dataset",
        "adi",
        "--model",
        str(tiny_model_dir),
        "--out",
        str(tmp_path / "idx"),
        env_home=isolated_home,
    )
    assert out.returncode == 0, out.stderr
    assert len(DenseIndex.load(tmp_path / "idx")) == 82
    out = _run(
        "evaluate",
        "--dataset",
        "adi",
        "--model",
        str(tiny_model_dir),
        "--trec-out",
        str(tmp_path / "adi.run"),
        "--k",
        "10",
        env_home=isolated_home,
    )
    assert out.returncode == 0, out.stderr
    run = read_trec_run(tmp_path / "adi.run")
    assert len(run) == 35 and all(len(docs) == 10 for docs in run.values())


def test_rrra_sampler_without_adapter_is_a_one_line_error(isolated_home: Path, tiny_model_dir: Path) -> None:
    out = _run(
        "train_phase3",
        "--dataset",
        "adi",
        "--train-split",
        "test",
        "--eval-split",
        "",
        "--model",
        str(tiny_model_dir),
        env_home=isolated_home,
    )
    _assert_one_line_error(out, "needs a trained adapter")


def test_not_an_adapter_folder(isolated_home: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    out = _run(
        "train_rrra",
        "--dataset",
        "adi",
        "--model",
        str(tiny_model_dir),
        "--adapter",
        str(tmp_path),
        env_home=isolated_home,
    )
    _assert_one_line_error(out, "not an adapter folder")


def test_resume_checks_the_run_kind(isolated_home: Path) -> None:
    from rrra_core.runtime.runs import create_run

    create_run("phase2", {"encoder": {}}, run_id="an-adapter-run", root=isolated_home / "runs")
    _assert_one_line_error(
        _run("train_phase1", "--resume", "an-adapter-run", env_home=isolated_home), "not a phase1 run"
    )
    _assert_one_line_error(_run("train_rrra", "--resume", "an-adapter-run", env_home=isolated_home), "not a phase3 run")
    _assert_one_line_error(
        _run("train_phase2", "--resume", "an-adapter-run", env_home=isolated_home), "missing section"
    )


def test_search_prints_hits_and_refuses_a_missing_adapter(isolated_home: Path, tiny_model_dir: Path) -> None:
    import json

    _assert_one_line_error(
        _run("search", "--dataset", "adi", "--adapter", str(isolated_home / "nope"), "x", env_home=isolated_home),
        "not an adapter folder",
    )
    out = _run(
        "search",
        "--dataset",
        "adi",
        "--model",
        str(tiny_model_dir),
        "--k",
        "3",
        "--doc-max-length",
        "32",
        "information retrieval",
        env_home=isolated_home,
    )
    assert out.returncode == 0, out.stderr
    line = json.loads(out.stdout.strip().splitlines()[-1])
    assert line["query"] == "information retrieval"
    assert [h["rank"] for h in line["hits"]] == [1, 2, 3]
    assert all(h["p_rel"] is None for h in line["hits"])  # no adapter: the retriever's order


@pytest.mark.parametrize(
    ("script", "args", "needle"),
    [
        ("train_phase1", ("--dataset", "nope"), "unknown dataset 'nope'"),
        (
            "train_phase1",
            ("--dataset", "adi", "--train-split", "dev"),
            "no split 'dev' in this dataset; available splits: test",
        ),
        ("train_phase1", ("--dataset", "adi", "--train-split", "test", "--eval-split", "dev"), "no split 'dev'"),
        (
            "train_phase1",
            ("--dataset", "adi", "--train-split", "test", "--hard-negatives", "/no/such/negatives.jsonl"),
            "hard-negatives file not found",
        ),
        ("train", ("--dataset", "nope"), "unknown dataset 'nope'"),
        ("train_phase2", ("--dataset", "adi", "--train-split", "dev"), "no split 'dev'"),
        (
            "train_phase2",
            ("--dataset", "adi", "--train-split", "test", "--model", "/no/such/model"),
            "model folder '/no/such/model' not found",
        ),
        ("train_adapter", ("--dataset", "adi", "--train-split", "dev"), "no split 'dev'"),
        ("train_phase3", ("--dataset", "nope", "--sampler", "uniform"), "unknown dataset 'nope'"),
        ("train_phase3", ("--dataset", "adi", "--train-split", "test", "--eval-split", ""), "needs a trained adapter"),
        ("train_rrra", ("--dataset", "adi", "--train-split", "test", "--eval-split", ""), "needs a trained adapter"),
    ],
)
def test_a_mistyped_input_is_refused_before_any_run_folder_exists(
    isolated_home: Path, script: str, args: tuple[str, ...], needle: str
) -> None:
    _assert_one_line_error(_run(script, *args, env_home=isolated_home), needle)
    runs = isolated_home / "runs"
    assert not runs.exists() or not any(runs.iterdir())  # nothing half-made in the user's run list
