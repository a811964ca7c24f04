"""ruff's lint and format checks over the whole repository (settings in pyproject.toml), as part of the suite.

Running them here keeps CI to the README's one test command.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("args", [["check", "--quiet"], ["format", "--check", "--quiet"]], ids=["lint", "format"])
def test_ruff_is_clean(args: list[str]) -> None:
    out = subprocess.run([sys.executable, "-m", "ruff", *args, "."], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
