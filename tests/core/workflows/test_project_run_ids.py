"""A new project's run id names one run: a second collection under the same id is refused, a killed build resumes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rrra_core.data import dataset_folder
from rrra_core.runtime.errors import ConfigError
from rrra_core.runtime.runs import open_run
from rrra_core.workflows.project import ProjectConfig, build_project_run


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_taken_run_id_is_refused_unless_the_same_settings_resume_it(tmp_path: Path, tiny_model_dir: Path) -> None:
    first, second = tmp_path / "a" / "data", tmp_path / "b" / "data"
    for folder in (first, second):
        shutil.copytree(dataset_folder("adi"), folder)
    settings = dict(model=str(tiny_model_dir), train_split="test", max_train_queries=12, epochs=1, top_k=20)
    build_project_run(ProjectConfig(dataset=str(first), **settings))
    run = open_run("project-data")
    built = _snapshot(run.path)
    # Another collection in a folder of the same name, or the same one built again: one line, the run untouched.
    with pytest.raises(ConfigError, match="run id 'project-data' is taken by a run with other settings"):
        build_project_run(ProjectConfig(dataset=str(second), **settings))
    with pytest.raises(ConfigError, match="already built with these settings"):
        build_project_run(ProjectConfig(dataset=str(first), **settings))
    assert _snapshot(run.path) == built
    # A build killed before it scored the candidates resumes under the same settings.
    run.file("predictions.parquet").unlink()
    run.write_json("progress.json", {"status": "failed"})
    build_project_run(ProjectConfig(dataset=str(first), **settings))
    assert run.file("predictions.parquet").is_file() and run.read_json("progress.json")["status"] == "done"
