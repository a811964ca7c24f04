"""Drivers that open the annotation store or read a run's parquet files refuse damage the way every bad input is
refused (``tests/scripts/test_bad_input.py``): exit 2, one ``error:`` line naming what is damaged, nothing new
on disk, and a damaged store is left exactly as it was.

Each case runs the driver's ``main`` in this process through ``run_main`` with ``$RRRA_HOME`` isolated.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from rrra_core.runtime.cli import run_main
from tests.db.test_db_cli import write_damaged_store

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))

RUN_ID = "base"


def _files(root: Path) -> dict[str, bytes]:
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
    run = home / "runs" / RUN_ID
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
        ("refit_queue", ["--run", RUN_ID]),
        ("retrain", ["--base-run", RUN_ID, "--run-id", "new-round"]),
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
    before = _files(isolated_home)
    line = _refused(script, [a.replace("<qrels>", str(qrels)) for a in argv], capsys)
    assert "is damaged" in line and f"sqlite3 {store} .recover" in line, line
    assert _files(isolated_home) == before, "a refused command changed or left files"


def test_refit_queue_names_a_damaged_predictions_file(isolated_home: Path, capsys: pytest.CaptureFixture) -> None:
    run = _phase2_run(isolated_home)
    predictions = run / "predictions.parquet"
    pd.DataFrame({"query_id": ["1"] * 50, "doc_id": [str(i) for i in range(50)]}).to_parquet(predictions)
    predictions.write_bytes(predictions.read_bytes()[:200])  # a copy cut short
    before = _files(isolated_home)
    line = _refused("refit_queue", ["--run", RUN_ID], capsys)
    assert f"{predictions}: damaged: not a readable parquet file" in line, line
    after = _files(isolated_home)
    assert {k: v for k, v in after.items() if not k.startswith(".rrra/")} == before, "the run folder changed"
