"""Every command-line driver refuses bad input the same way: exit 2, one ``error:`` line, no new folder.

Each case runs the driver's ``main`` in this process through ``run_main`` (what
``python scripts/<name>.py`` does) with ``$RRRA_HOME`` isolated, and compares
the home's files before and after: a refused command leaves nothing behind
(no half-made run folder in the user's run list).

Placeholders in a case's arguments are made before the files are listed
(:data:`PLACEHOLDERS`): ``<tmp>`` is the test's folder, the others a damaged
model, a collection with an empty file, or a run folder that takes an id.

The last cases are damage rather than a mistake (issue 25, items 5 and 9): a
damaged annotation store or a cut-short parquet file is refused the same way,
and a damaged store is left exactly as it was.
"""

from __future__ import annotations

import gzip
import importlib
import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from rrra_core.data import dataset_folder
from rrra_core.runtime.cli import run_main
from rrra_core.runtime.runs import create_run
from tests.db.test_db_cli import write_damaged_store

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))

ADI = ["--dataset", "adi", "--train-split", "test"]  # new_project on the smallest embedded collection
LONG_DOCS = ["--doc-max-length", "600"]  # past the model's 512 positions
TASKS = ["export", "--dataset", "adi", "--split", "test", "--format", "label-studio", "--out", "<tmp>/t.json",
         "--predictions", "<tmp>/run/predictions.parquet"]  # fmt: skip

CASES = [
    ("train_phase1", ["--lr", "inf"], "finite"),
    ("train_phase1", ["--lr", "nan"], "finite"),
    ("train_phase1", ["--max-train-queries", "0"], "max_train_queries"),
    ("train_phase1", ["--checkpoint-every", "-1"], "checkpoint_every"),
    ("train_phase1", ["--doc-max-length", "600"], "positions"),
    ("train_phase1", ["--dataset", "no-such-dataset"], "no-such-dataset"),
    ("train_phase1", ["--model", "/no/such/model"], "not found"),
    ("train_phase1", ["--batch-size", "1"], "batch_size"),
    ("train_phase2", ["--max-train-queries", "0"], "max_train_queries"),
    ("train_phase2", ["--query-max-length", "513"], "positions"),
    ("train_phase2", ["--lr", "inf"], "finite"),
    ("train_phase3", ["--lr", "-1"], "lr must be positive"),
    ("train_phase3", ["--max-steps", "0"], "max_steps"),
    ("train_phase3", ["--sampler", "bogus"], "sampler"),
    ("train_phase3", ["--checkpoint-every", "-5"], "checkpoint_every"),
    ("retrain", ["--base-run", "nope", "--run-id", "x"], "nope"),
    ("retrain", ["--base-run", "nope", "--run-id", "x", "--policy", "loudest"], "policy"),
    ("retrain", ["--base-run", "nope", "--run-id", "x", "--p3-lr", "inf"], "finite"),
    ("bench_hitl", ["--hide-fraction", "1.5", "--out", "<tmp>/h"], "hide_fraction"),
    ("bench_hitl", ["--budgets", "0", "--out", "<tmp>/h"], "budgets"),
    ("bench_hitl", ["--render", "--out", "<tmp>/h"], "no part file"),
    ("benchmark", ["--preset", "fair-cranfield", "--trials", "9", "--out", "<tmp>/f"], "trials"),
    ("benchmark", ["--preset", "fair-cranfield", "--methods", "uniform,bm42", "--out", "<tmp>/f"], "unknown method"),
    ("benchmark", ["--preset", "fair-cranfield", "--dev-fraction", "1.5", "--out", "<tmp>/f"], "dev_fraction"),
    ("benchmark", ["--preset", "fair-cranfield", "--render", "--out", "<tmp>/f"], "no part file"),
    ("evaluate", ["--dataset", "no-such-dataset"], "no-such-dataset"),
    ("annotations", ["import", "--dataset", "adi", "--format", "qrels", "--annotator", "a", "/no/such.tsv"], "such"),
    # Issue 27 item 7: a task export's choice is checked before any candidate is read or any store built.
    ("annotations", [*TASKS, "--threshold", "1.5"], "threshold must be in [0, 1]"),
    ("annotations", [*TASKS, "--order", "best"], "invalid choice: 'best'"),
    ("annotations", [*TASKS, "--select", "everything"], "invalid choice: 'everything'"),
    ("refit_queue", ["--run", "no-such-run"], "no-such-run"),
    ("per_query", ["--run", "no-such-run"], "no-such-run"),
    # Item 3: a taken run id. Two collections whose folder names reduce to the same id never build into one run.
    ("new_project", ["--dataset", "<other collection, same id>", "--train-split", "test"], "taken"),
    ("new_project", [*ADI, "--run-id", "<taken>"], "taken"),
    # Item 4: a retrain never writes into a run it did not make, its own base least of all.
    ("retrain", ["--base-run", "<base>", "--run-id", "base"], "names the base run"),
    ("retrain", ["--base-run", "<base>", "--run-id", "<taken>"], "taken"),
    # Item 7: every driver with length flags checks them against the model before it encodes anything.
    ("evaluate", ["--dataset", "adi", *LONG_DOCS], "positions"),
    ("evaluate", ["--dataset", "adi", "--query-max-length", "513"], "positions"),
    ("new_project", [*ADI, *LONG_DOCS], "positions"),
    ("index", ["--dataset", "adi", "--out", "<tmp>/index", *LONG_DOCS], "positions"),
    ("mine", ["--dataset", "adi", "--split", "test", "--out", "<tmp>/n.jsonl", *LONG_DOCS], "positions"),
    ("search", ["--dataset", "adi", *LONG_DOCS, "a query"], "positions"),
    ("bench_speed", ["encode", "--dataset", "adi", "--out", "<tmp>/speed", *LONG_DOCS], "positions"),
    # Item 8: the model and the settings are checked before a run folder is made.
    ("new_project", [*ADI, "--model", "<damaged model>"], "damaged model weights"),
    ("new_project", [*ADI, "--model", "<tmp>"], "no config.json"),
    ("new_project", [*ADI, "--model", "<tmp>/none"], "not found"),
    ("new_project", [*ADI, "--top-k", "0"], "top_k"),
    # Item 10: an empty corpus or queries file is named, not the first qrels line that points into it.
    ("new_project", ["--dataset", "<empty corpus>", "--train-split", "test"], "corpus.jsonl.gz: no documents"),
    ("evaluate", ["--dataset", "<empty queries>", "--split", "test"], "queries.jsonl.gz: no queries"),
]


def _empty(tmp: Path, name: str) -> str:
    """A copy of ADI whose ``name`` file holds nothing."""
    folder = tmp / f"adi-empty-{name.split('.')[0]}"
    shutil.copytree(dataset_folder("adi"), folder)
    (folder / name).write_bytes(gzip.compress(b""))
    return str(folder)


def _damaged_model(tmp: Path, tiny: Path) -> str:
    """The tiny model with its weights cut short, as an interrupted copy leaves them."""
    folder = tmp / "damaged"
    shutil.copytree(tiny, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:4096])
    return str(folder)


def _same_id_collection(tmp: Path) -> str:
    """ADI under a non-ASCII folder name whose run id (``project-Donn-es``) a run of another collection holds."""
    for name in ("Données", "Donnèes"):
        shutil.copytree(dataset_folder("adi"), tmp / name)
    create_run("phase2", {"data": {"dataset": str(tmp / "Données"), "train_split": "test"}}, run_id="project-Donn-es")
    return str(tmp / "Donnèes")


def _base_run() -> str:
    """A phase-2 run a retrain can start from (its settings only: the refusals come before anything is read)."""
    from rrra_core.retrieval.encoder import EncoderConfig
    from rrra_core.training.phase2 import Phase2Config, phase2_config_dict

    cfg = Phase2Config(dataset="adi", train_split="test", max_train_queries=20)
    return create_run("phase2", phase2_config_dict(EncoderConfig(), cfg), run_id="base").id


PLACEHOLDERS: dict[str, Callable[[Path, pytest.FixtureRequest], str]] = {
    "<empty corpus>": lambda tmp, _: _empty(tmp, "corpus.jsonl.gz"),
    "<empty queries>": lambda tmp, _: _empty(tmp, "queries.jsonl.gz"),
    "<damaged model>": lambda tmp, req: _damaged_model(tmp, req.getfixturevalue("tiny_model_dir_session")),
    "<other collection, same id>": lambda tmp, _: _same_id_collection(tmp),
    "<taken>": lambda tmp, _: create_run("phase1", {"data": {"dataset": "adi"}}, run_id="taken").id,
    "<base>": lambda tmp, _: _base_run(),
}


def _prepare(arg: str, tmp: Path, request: pytest.FixtureRequest) -> str:
    make = PLACEHOLDERS.get(arg)
    return make(tmp, request) if make else arg.replace("<tmp>", str(tmp))


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.exists() else set()


@pytest.mark.parametrize(("script", "argv", "needle"), CASES, ids=[f"{c[0]}:{' '.join(c[1])}" for c in CASES])
def test_bad_input_is_one_error_line_exit_2_and_no_new_folder(
    script: str,
    argv: list[str],
    needle: str,
    isolated_home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    request: pytest.FixtureRequest,
) -> None:
    module = importlib.import_module(script)
    argv = [_prepare(a, tmp_path, request) for a in argv]
    before = _files(isolated_home) | _files(tmp_path)
    try:
        code = run_main(module.main, argv)
    except SystemExit as exc:  # argparse's own refusals (an unknown choice) exit 2 too
        code = exc.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert code == 2, err
    assert len(lines) == 1 and needle.lower() in lines[0].lower(), err
    assert "Traceback" not in err
    assert (_files(isolated_home) | _files(tmp_path)) - before <= {".rrra", ".rrra/annotations.sqlite"}, (
        "a refused command left files behind"
    )


# --- damage: a damaged store, a cut-short predictions file -----------------------------------------------

STORE_RUN_ID = "base"


def _file_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _refused(script: str, argv: list[str], capsys: pytest.CaptureFixture) -> str:
    """Run ``script``'s main; assert exit 2 and one ``error:`` line without a traceback; return that line."""
    module = importlib.import_module(script)
    try:
        code = run_main(module.main, argv)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _phase2_run(home: Path) -> Path:
    """A phase-2 run folder on the embedded ADI, as far as the drivers read it before they open the store."""
    run = home / "runs" / STORE_RUN_ID
    run.mkdir(parents=True)
    config = {
        "kind": "phase2",
        "format": 2,
        "encoder": {"model": "unused"},
        "data": {"dataset": "adi", "train_split": "test", "eval_split": "test"},
        "phase": {"subsample_seed": 0},
    }
    (run / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return run


@pytest.mark.parametrize(
    ("script", "argv"),
    [
        ("refit_queue", ["--run", STORE_RUN_ID]),
        ("retrain", ["--base-run", STORE_RUN_ID, "--run-id", "new-round"]),
        ("annotations", ["upgrade"]),
        ("annotations", ["import", "--dataset", "adi", "--format", "qrels", "--annotator", "bob", "<qrels>"]),
    ],
    ids=["refit_queue", "retrain", "annotations-upgrade", "annotations-import"],
)
def test_a_damaged_store_is_refused_before_anything_is_read_or_written(
    script: str, argv: list[str], isolated_home: Path, capsys: pytest.CaptureFixture
) -> None:
    store = isolated_home / ".rrra" / "annotations.sqlite"  # the default store: no --db
    store.parent.mkdir(parents=True)
    qrels = write_damaged_store(store)
    _phase2_run(isolated_home)
    before = _file_bytes(isolated_home)
    line = _refused(script, [a.replace("<qrels>", str(qrels)) for a in argv], capsys)
    assert "is damaged" in line and f"sqlite3 {store} .recover" in line, line
    assert _file_bytes(isolated_home) == before, "a refused command changed or left files"


def test_refit_queue_names_a_damaged_predictions_file(isolated_home: Path, capsys: pytest.CaptureFixture) -> None:
    run = _phase2_run(isolated_home)
    predictions = run / "predictions.parquet"
    pd.DataFrame({"query_id": ["1"] * 50, "doc_id": [str(i) for i in range(50)]}).to_parquet(predictions)
    predictions.write_bytes(predictions.read_bytes()[:200])  # a copy cut short
    before = _file_bytes(isolated_home)
    line = _refused("refit_queue", ["--run", STORE_RUN_ID], capsys)
    assert f"{predictions}: damaged: not a readable parquet file" in line, line
    after = _file_bytes(isolated_home)
    assert {k: v for k, v in after.items() if not k.startswith(".rrra/")} == before, "the run folder changed"


def test_a_task_export_names_a_damaged_predictions_file(isolated_home: Path, capsys: pytest.CaptureFixture) -> None:
    """The run's store is built from the predictions on first export: a damaged file is one line, and neither a
    store nor the out file is left behind."""
    run = _phase2_run(isolated_home)
    predictions = run / "predictions.parquet"
    pd.DataFrame({"query_id": ["1"] * 50, "doc_id": [str(i) for i in range(50)]}).to_parquet(predictions)
    predictions.write_bytes(predictions.read_bytes()[:200])  # a copy cut short
    out = isolated_home / "tasks.json"
    before = _file_bytes(isolated_home)
    argv = ["export", "--dataset", "adi", "--split", "test", "--format", "argilla", "--out", str(out)]
    line = _refused("annotations", [*argv, "--predictions", str(predictions)], capsys)
    assert f"{predictions}: damaged: not a readable parquet file" in line, line
    after = _file_bytes(isolated_home)
    assert {k: v for k, v in after.items() if not k.startswith(".rrra/")} == before, "the run folder changed"
