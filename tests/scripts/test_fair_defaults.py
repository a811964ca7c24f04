"""scripts/fair_defaults.py: the cross-collection default table from the fair comparison's tuning seeds."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from rrra_core.runtime.errors import DataError
from rrra_core.runtime.paths import REPO_ROOT


def main(argv: list[str]) -> int:
    spec = importlib.util.spec_from_file_location("fair_defaults", REPO_ROOT / "scripts" / "fair_defaults.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


def _part(folder: Path, seed: int, scores: dict[float, float], finished: bool = True) -> None:
    tuning = {
        "margin": {
            str(i): {"settings": {"relative_margin": m}, "dev": {"nDCG@10": v}}
            for i, (m, v) in enumerate(scores.items())
        }
    }
    folder.mkdir(parents=True, exist_ok=True)
    part = {"seed": seed, "config": {"tune_seed": 0}, "tuning": tuning, "test": {}, "finished": finished}
    (folder / f"s{seed}.json").write_text(json.dumps(part))


def test_the_table_ranks_settings_by_mean_dev_shortfall_and_marks_the_shipped_default(tmp_path: Path) -> None:
    _part(tmp_path / "parts" / "a", 0, {0.0: 0.50, 0.3: 0.52})
    _part(tmp_path / "parts" / "b", 0, {0.0: 0.40, 0.3: 0.30})
    _part(tmp_path / "parts" / "b", 1, {0.0: 0.0, 0.3: 1.0})  # not the tuning seed: never read
    assert main(["--parts", str(tmp_path / "parts"), "--out", str(tmp_path / "defaults")]) == 0
    md = (tmp_path / "defaults.md").read_text()
    assert md.startswith("# Defaults from dev tuning") and "python scripts/fair_defaults.py --parts" in md
    rows = [line for line in md.splitlines() if line.startswith("| margin filter")]
    # 0.0 loses 0.02 on a, 0.3 loses 0.10 on b: 0.0 (today's Phase3Config default) ranks first.
    assert rows[0].startswith("| margin filter | relative_margin=0.0 | 0.0100 | 0.0200 | 0.0000 | ✓")
    assert rows[1].startswith("| margin filter | relative_margin=0.3 | 0.0500 |") and rows[1].endswith("|  |")
    data = json.loads((tmp_path / "defaults.json").read_text())
    assert data["collections"] == ["a", "b"] and data["methods"]["margin"][0]["mean"] == pytest.approx(0.01)


def test_a_collection_without_a_finished_tuning_seed_is_a_one_line_error(tmp_path: Path) -> None:
    _part(tmp_path / "parts" / "a", 0, {0.0: 0.5}, finished=False)
    with pytest.raises(DataError, match="no finished tuning seed"):
        main(["--parts", str(tmp_path / "parts"), "--out", str(tmp_path / "d")])
    with pytest.raises(DataError, match="no fair-comparison part folders"):
        main(["--parts", str(tmp_path / "nothing"), "--out", str(tmp_path / "d")])
