"""The prepared GPU check (scripts/gpu_check.sh) stays runnable: its CPU dry run passes every step.

A session lent a GPU gets one short try at it, so a flag renamed in a driver must
fail here, not there. The dry run uses the tiny BERT for speed; on the GPU the
script builds MiniLM's shape.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from rrra_core.runtime.paths import REPO_ROOT

STEPS = [
    "01_phase1",
    "02_phase2",
    "03_phase3",
    "04_evaluate",
    "05_torchrun_cuda",
    "06_torchrun_gloo",
    "07_bench",
    "08_bench",
    "09_bench",
]


@pytest.mark.slow
def test_the_gpu_check_dry_runs_every_step_on_cpu(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {
        **os.environ,
        "PY": sys.executable,
        "DEVICE": "cpu",
        "QUICK": "1",
        "SHAPE": str(tiny_model_dir),
        "OUT": str(out),
    }
    done = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "gpu_check.sh")],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    summary = (out / "summary.txt").read_text()
    steps = dict(re.findall(r"^(\S+) rc=(\d+)", summary, re.MULTILINE))
    assert steps == dict.fromkeys(STEPS, "0"), summary + done.stderr[-3000:]
    assert done.returncode == 0, done.stderr[-3000:]
    with tarfile.open(out / "gpu_check.tar.gz") as tar:
        names = set(tar.getnames())
    # What a GPU session would read: every step's log, the three speed results, the runs' metrics.
    assert {f"work/{s}.log" for s in STEPS} <= names
    assert {
        "work/speed_encode.json",
        "work/speed_latency.json",
        "work/speed_train.json",
        "work/gpu-p3.metrics.json",
    } <= names
