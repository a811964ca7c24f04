"""One config.json schema for every run, one reader; run folders from before it still open, resume and reproduce.

The ``fixtures/format1_*.json`` files are config.json files exactly as the
phase drivers wrote them before the schema (commit a9b4053's
``phase1_config_dict``, ``phase2_config_dict`` and ``phase3_config_dict``
through ``create_run``; only the environment section is trimmed).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rrra_core.adapter import AdapterFitConfig, LabelConfig
from rrra_core.negatives.mining import MiningConfig
from rrra_core.retrieval.encoder import EncoderConfig
from rrra_core.runtime.errors import ConfigError
from rrra_core.runtime.run_config import CONFIG_FORMAT, parse_run_config, read_run_config, resume_run
from rrra_core.runtime.runs import create_run
from rrra_core.training.phase1 import Phase1Config, phase1_config_dict
from rrra_core.training.phase2 import Phase2Config, phase2_config_dict
from rrra_core.training.phase3 import Phase3Config, phase3_config_dict

FIXTURES = Path(__file__).parent / "fixtures"


def _old_run(root: Path, kind: str, run_id: str = "old") -> Path:
    folder = root / run_id
    folder.mkdir(parents=True)
    shutil.copy(FIXTURES / f"format1_{kind}.json", folder / "config.json")
    return folder


def test_every_phase_writes_the_same_sections(tmp_path: Path) -> None:
    enc = EncoderConfig(doc_max_length=77)
    p1 = Phase1Config(dataset="adi", train_split="test", eval_split="test", epochs=3)
    p2 = Phase2Config(dataset="squad", hidden=8, labels=LabelConfig(mu=0.2), fit=AdapterFitConfig(epochs=4))
    p3 = Phase3Config(dataset="cranfield", eval_split="", sampler="simans")
    configs = {
        "phase1": phase1_config_dict(enc, p1, MiningConfig(top_k=50)),
        "phase2": phase2_config_dict(enc, p2),
        "phase3": phase3_config_dict(enc, p3, "runs/x/adapter"),
    }
    for kind, settings in configs.items():
        saved = json.loads(create_run(kind, settings, run_id=kind, root=tmp_path).file("config.json").read_text())
        assert list(saved)[:5] == ["kind", "format", "encoder", "data", "phase"] and "environment" in saved
        assert saved["format"] == CONFIG_FORMAT and saved["encoder"]["doc_max_length"] == 77
        assert "dataset" not in saved["phase"] and "train_split" not in saved["phase"]
    p1_saved = read_run_config(tmp_path / "phase1")
    assert p1_saved.data == {"dataset": "adi", "train_split": "test", "eval_split": "test"}
    assert p1_saved.phase_config(Phase1Config) == p1 and p1_saved.section("mining", MiningConfig).top_k == 50
    p2_saved = read_run_config(tmp_path / "phase2")
    assert (p2_saved.dataset, p2_saved.splits) == ("squad", ("train",))  # phase 2 has no evaluation split
    assert p2_saved.phase["labels"]["mu"] == 0.2 and p2_saved.phase_config(Phase2Config) == p2
    p3_saved = read_run_config(tmp_path / "phase3")
    assert (p3_saved.dataset, p3_saved.eval_split, p3_saved.splits) == ("cranfield", None, ("train",))
    assert p3_saved.phase_config(Phase3Config) == p3 and p3_saved.sections["adapter_init"] == "runs/x/adapter"
    assert p3_saved.encoder_config(EncoderConfig) == enc and not p3_saved.legacy


def test_a_phase1_run_from_before_the_schema_opens_and_rebuilds(tmp_path: Path) -> None:
    cfg = read_run_config(_old_run(tmp_path, "phase1"))
    assert cfg.legacy and cfg.kind == "phase1"
    assert (cfg.dataset, cfg.train_split, cfg.eval_split) == ("scifact", "train", "test")
    p1 = cfg.phase_config(Phase1Config)
    assert (p1.dataset, p1.epochs, p1.max_train_queries) == ("scifact", 2, 200)
    assert cfg.section("mining", MiningConfig).top_k == 50
    assert cfg.encoder_config(EncoderConfig).doc_max_length == 128
    assert set(cfg.as_dict()) >= {"kind", "format", "encoder", "data", "phase", "mining", "environment"}


def test_a_phase2_run_from_before_the_schema_opens_and_rebuilds(tmp_path: Path) -> None:
    cfg = read_run_config(_old_run(tmp_path, "phase2"))
    assert cfg.legacy and (cfg.dataset, cfg.train_split, cfg.eval_split) == ("squad", "train", None)
    p2 = cfg.phase_config(Phase2Config)
    assert (p2.hidden, p2.max_train_queries, p2.labels.mu, p2.fit.epochs, p2.fit.seed) == (64, 800, 0.25, 5, 3)
    assert p2.labels.fp_rank_range == (100, 300)
    # A retrain's record rides along as its own section.
    assert cfg.sections["retrain"]["base_run"] == "demo-squad"


def test_a_phase3_run_from_before_the_schema_opens_and_rebuilds(tmp_path: Path) -> None:
    cfg = read_run_config(_old_run(tmp_path, "phase3"))
    assert cfg.legacy and (cfg.dataset, cfg.eval_split) == ("cranfield", "test")
    p3 = cfg.phase_config(Phase3Config)
    assert (p3.sampler, p3.lambda_rr) == ("simans", 0.5)
    assert cfg.sections["adapter_init"] == "runs/p2/adapter" and cfg.encoder_config(EncoderConfig).model == "runs/p1"


def test_resume_reopens_old_and_new_runs_and_checks_the_kind(tmp_path: Path) -> None:
    _old_run(tmp_path, "phase3", "old-p3")
    run, cfg = resume_run("old-p3", "phase3", root=tmp_path)
    assert run.id == "old-p3" and cfg.phase_config(Phase3Config).sampler == "simans"
    with pytest.raises(ConfigError, match="is a 'phase3' run, not a phase1 run"):
        resume_run("old-p3", "phase1", root=tmp_path)
    create_run("phase2", {"encoder": {}}, run_id="bare", root=tmp_path)
    _, bare = resume_run("bare", "phase2", root=tmp_path)
    with pytest.raises(ConfigError, match="missing section 'phase'"):
        bare.phase_config(Phase2Config)


def test_the_reader_refuses_broken_files_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        read_run_config(tmp_path / "nothing.json")
    (tmp_path / "bad.json").write_text("{oops", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid JSON"):
        read_run_config(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="expected a JSON object"):
        parse_run_config([1, 2])
    with pytest.raises(ConfigError, match="unknown setting"):
        parse_run_config({"kind": "phase1", "phase": {"epoch": 3}}).phase_config(Phase1Config)


def test_an_evaluation_run_names_its_data_like_the_phases() -> None:
    cfg = parse_run_config({"kind": "evaluation", "data": {"dataset": "adi", "eval_split": "test"}, "of_run": "b"})
    assert (cfg.dataset, cfg.eval_split, cfg.sections["of_run"]) == ("adi", "test", "b") and not cfg.legacy
