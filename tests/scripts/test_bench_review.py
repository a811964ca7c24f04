"""scripts/bench_review.py --quick: runs in seconds, writes headed results files, and resumes from them."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

from rrra_core.runtime.paths import REPO_ROOT


def _driver() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_review", REPO_ROOT / "scripts" / "bench_review.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_run_writes_summary_and_resumes(tmp_path: Path) -> None:
    driver = _driver()
    out = tmp_path / "review_quick"
    argv = ["quick", "--out", str(out), "--seeds", "0", "1"]
    driver.main(argv)
    data = json.loads(out.with_suffix(".json").read_text())
    summary = data["summary"]
    assert set(summary["found"]) == set(driver.ORDERS)
    assert summary["found"]["learnt"] > summary["found"]["random"]
    assert len(data["results"]) == 2 * len(driver.ORDERS)
    md = out.with_suffix(".md").read_text()
    assert md.startswith("`python scripts/bench_review.py quick --out")
    # Calibration before (0) and after the refits, per seed, from a replay of the learnt session.
    cal = data["calibration"]
    assert cal["budgets"] == [0, 100] and set(cal["seeds"]) == {"0", "1"}
    assert all(c["same_session"] for c in cal["seeds"].values())
    assert cal["ece"]["pool/adapter"]["0"] is not None and cal["ece"]["pool/learnt"]["0"] is None
    assert "## Calibration before and after the refits" in md
    # A rerun with the same settings finds every (order, seed) done and reruns none of them.
    data["results"]["learnt/0"]["found"]["25"] = -1
    out.with_suffix(".json").write_text(json.dumps(data))
    driver.main(argv)
    assert json.loads(out.with_suffix(".json").read_text())["results"]["learnt/0"]["found"]["25"] == -1


def test_split_is_a_fixed_half() -> None:
    driver = _driver()
    ids = [f"q{i}" for i in range(400)]
    dev = [driver.is_dev(q) for q in ids]
    assert 150 < sum(dev) < 250 and dev == [driver.is_dev(q) for q in ids]
