"""Atomic JSON writes: indented for people, compact for machine-read files; the same values either way."""

from __future__ import annotations

import json
from pathlib import Path

from rrra_core.runtime.runs import write_json_atomic


def test_compact_json_holds_the_same_values_in_less_space(tmp_path: Path) -> None:
    obj = {"per_query": {f"q{i}": i / 7 for i in range(200)}, "seed": 0}
    write_json_atomic(tmp_path / "a.json", obj)
    write_json_atomic(tmp_path / "b.json", obj, compact=True)
    a, b = (tmp_path / "a.json").read_text(), (tmp_path / "b.json").read_text()
    assert json.loads(a) == json.loads(b) == obj
    assert len(b) < 0.8 * len(a) and b.count("\n") == 1
    assert not list(tmp_path.glob("*.tmp*"))  # no temp file left behind
