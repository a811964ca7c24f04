"""A new project's first run: a phase-2 run on any BEIR folder with the chosen encoder and split."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from rrra_core.data import dataset_folder
from rrra_core.runtime.errors import ConfigError, DataError
from rrra_core.runtime.run_config import parse_run_config
from rrra_core.runtime.runs import open_run
from rrra_core.workflows.project import ProjectConfig, build_project_run, pool_depths, project_run_id


def test_run_id_and_pool_depths() -> None:
    assert project_run_id(ProjectConfig(dataset="/data/My Set")) == "project-My-Set"
    assert project_run_id(ProjectConfig(dataset="/x", run_id="mine")) == "mine"
    assert pool_depths(100, 10_000) == (100, (100, 300))
    k, (lo, hi) = pool_depths(100, 82)  # ADI: wrong positives must come from ranks the corpus has
    assert k < lo < hi <= 82 or (k == lo and lo < hi <= 82)
    with pytest.raises(ConfigError):
        pool_depths(10, 2)


def test_a_missing_split_or_model_fails_before_any_run_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no split 'train'.*available splits: test"):
        build_project_run(ProjectConfig(dataset="adi", train_split="train"))
    with pytest.raises(ConfigError, match="model folder"):
        build_project_run(ProjectConfig(dataset="adi", train_split="test", model=str(tmp_path / "none")))
    from rrra_core.runtime.paths import runs_dir

    assert not runs_dir().exists() or not any(runs_dir().iterdir())


def test_builds_a_scored_run_on_a_copied_folder(tmp_path: Path, tiny_model_dir: Path) -> None:
    folder = tmp_path / "my data"
    shutil.copytree(dataset_folder("adi"), folder)
    cfg = ProjectConfig(
        dataset=str(folder), model=str(tiny_model_dir), train_split="test", max_train_queries=12, epochs=1, top_k=20
    )
    metrics = build_project_run(cfg)
    run = open_run("project-my-data")
    saved = parse_run_config(run.read_json("config.json"))
    assert (saved.dataset, saved.train_split) == (str(folder.resolve()), "test")
    preds = pd.read_parquet(run.file("predictions.parquet"))
    assert preds["query_id"].nunique() == 12 and "p_fn_given_neg" in preds
    assert metrics.get("phase") == 2 or "after" in metrics
    assert run.read_json("progress.json")["status"] == "done"
