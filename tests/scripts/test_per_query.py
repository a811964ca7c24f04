"""scripts/per_query.py: recomputes a run's per-query results exactly as its training wrote them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rrra_core.analysis.comparison import PER_QUERY_FILE
from rrra_core.runtime.paths import REPO_ROOT
from tests.core.analysis.test_comparison import PHASE1, PHASE2, RRRA, TinyRuns, build_tiny_runs, copy_runs

SCRIPT = str(REPO_ROOT / "scripts" / "per_query.py")


@pytest.fixture(scope="session")
def tiny_runs(tiny_model_dir_session: Path, tmp_path_factory: pytest.TempPathFactory) -> TinyRuns:
    return build_tiny_runs(tmp_path_factory, tiny_model_dir_session)


def _run(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RRRA_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=300, env=env, cwd=REPO_ROOT
    )


def test_help(isolated_home: Path) -> None:
    out = _run("--help", home=isolated_home)
    assert out.returncode == 0 and "usage:" in out.stdout and "--run" in out.stdout


@pytest.mark.parametrize("run_id", [PHASE1, RRRA])
def test_recomputes_the_per_query_file_training_wrote(tiny_runs: TinyRuns, isolated_home: Path, run_id: str) -> None:
    runs = copy_runs(tiny_runs, isolated_home, [run_id])
    written = json.loads((runs / run_id / PER_QUERY_FILE).read_text())
    (runs / run_id / PER_QUERY_FILE).unlink()
    out = _run("--run", run_id, home=isolated_home)
    assert out.returncode == 0, out.stderr[-2000:]
    again = json.loads((runs / run_id / PER_QUERY_FILE).read_text())
    assert again.keys() == written.keys() and again["variants"].keys() == written["variants"].keys()
    for variant, queries in written["variants"].items():
        assert queries.keys() == again["variants"][variant].keys()
        for q, values in queries.items():
            for m, v in values.items():
                assert again["variants"][variant][q][m] == pytest.approx(v, abs=1e-6), (variant, q, m)
    assert json.loads(out.stdout)["queries"] == {v: len(qs) for v, qs in written["variants"].items()}


def test_existing_file_is_kept_unless_forced(tiny_runs: TinyRuns, isolated_home: Path) -> None:
    runs = copy_runs(tiny_runs, isolated_home, [PHASE1])
    path = runs / PHASE1 / PER_QUERY_FILE
    path.write_text(json.dumps({**json.loads(path.read_text()), "marker": 1}))
    out = _run("--run", PHASE1, home=isolated_home)
    assert out.returncode == 0 and "already exists" in out.stderr
    assert json.loads(path.read_text())["marker"] == 1


def _assert_one_line_error(out: subprocess.CompletedProcess[str], needle: str) -> None:
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], out.stderr


def test_user_mistakes_are_one_line_errors(tiny_runs: TinyRuns, isolated_home: Path) -> None:
    _assert_one_line_error(_run("--run", "no-such-run", home=isolated_home), "not found")
    copy_runs(tiny_runs, isolated_home, [PHASE2])
    _assert_one_line_error(_run("--run", PHASE2, home=isolated_home), "phase-1 and phase-3 runs only")
