"""Every command-line driver refuses bad input the same way: exit 2, one ``error:`` line, no new folder.

Each case runs the driver's ``main`` in this process through ``run_main`` (what
``python scripts/<name>.py`` does) with ``$RRRA_HOME`` isolated, and compares
the home's files before and after: a refused command leaves nothing behind
(no half-made run folder in the user's run list).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from rrra_core.runtime.cli import run_main

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))

TINY = "<tiny>"  # replaced by the tiny model's folder

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
    ("refit_queue", ["--run", "no-such-run"], "no-such-run"),
    ("per_query", ["--run", "no-such-run"], "no-such-run"),
]


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
) -> None:
    module = importlib.import_module(script)
    argv = [a.replace("<tmp>", str(tmp_path)) for a in argv]
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
