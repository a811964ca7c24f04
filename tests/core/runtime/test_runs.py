"""Run folders: atomic JSON writes (indented for people, compact for machines), and one run per run id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rrra_core.runtime.errors import ConfigError
from rrra_core.runtime.runs import create_or_resume_run, write_json_atomic


def test_compact_json_holds_the_same_values_in_less_space(tmp_path: Path) -> None:
    obj = {"per_query": {f"q{i}": i / 7 for i in range(200)}, "seed": 0}
    write_json_atomic(tmp_path / "a.json", obj)
    write_json_atomic(tmp_path / "b.json", obj, compact=True)
    a, b = (tmp_path / "a.json").read_text(), (tmp_path / "b.json").read_text()
    assert json.loads(a) == json.loads(b) == obj
    assert len(b) < 0.8 * len(a) and b.count("\n") == 1
    assert not list(tmp_path.glob("*.tmp*"))  # no temp file left behind


def test_a_run_id_is_resumed_only_by_the_same_settings(tmp_path: Path) -> None:
    """Two collections whose folders reduce to one run id never share its folder: the second is refused unchanged."""
    settings = {"data": {"dataset": "/a/data", "train_split": "test"}, "labels": {"fp_rank_range": (30, 60)}}
    run = create_or_resume_run("phase2", settings, "project-data", root=tmp_path)
    run.write_json("progress.json", {"status": "running"})
    # The same settings (tuples saved as lists, keys in any order) resume it.
    same = {"labels": {"fp_rank_range": [30, 60]}, "data": {"train_split": "test", "dataset": "/a/data"}}
    assert create_or_resume_run("phase2", same, "project-data", root=tmp_path).path == run.path
    files = {p: p.read_bytes() for p in run.path.iterdir()}
    other = {**settings, "data": {"dataset": "/b/data", "train_split": "test"}}
    for kind, cfg in (("phase2", other), ("phase3", settings)):
        with pytest.raises(ConfigError, match="run id 'project-data' is taken by a run with other settings"):
            create_or_resume_run(kind, cfg, "project-data", root=tmp_path)
    assert {p: p.read_bytes() for p in run.path.iterdir()} == files
    with pytest.raises(ConfigError, match="invalid run id"):
        create_or_resume_run("phase2", settings, "../escape", root=tmp_path)
