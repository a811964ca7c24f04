from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from rrra_core.runtime.config import add_config_arguments, config_from_args, config_from_dict, load_config, save_config
from rrra_core.runtime.errors import ConfigError
from rrra_core.training import TrainConfig


def test_flags_override_a_config_file(tmp_path: Path) -> None:
    save_config(TrainConfig(epochs=3, lr=1e-4), tmp_path / "c.json")
    base = load_config(TrainConfig, tmp_path / "c.json")
    p = argparse.ArgumentParser()
    add_config_arguments(p, TrainConfig)
    cfg = config_from_args(TrainConfig, p.parse_args(["--epochs", "5"]), base=base.__dict__)
    assert cfg.epochs == 5 and cfg.lr == 1e-4


def test_unknown_and_mistyped_settings_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match="unknown setting"):
        config_from_dict(TrainConfig, {"epoch": 3})
    with pytest.raises(ConfigError, match="expects int") as err:
        config_from_dict(TrainConfig, {"epochs": "three"})
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="batch_size"):
        config_from_dict(TrainConfig, {"batch_size": 1})


def test_optional_and_bool_values() -> None:
    cfg = config_from_dict(TrainConfig, {"max_steps": None, "epochs": "2"})
    assert cfg.max_steps is None and cfg.epochs == 2
    from rrra_core.retrieval.encoder import EncoderConfig

    assert config_from_dict(EncoderConfig, {"shared": "false"}).shared is False


def test_missing_or_broken_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(TrainConfig, tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{oops", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(TrainConfig, tmp_path / "bad.json")


def test_resume_configs_rebuilds_saved_sections(tmp_path: Path) -> None:
    from rrra_core.negatives.mining import MiningConfig
    from rrra_core.retrieval.encoder import EncoderConfig
    from rrra_core.runtime.runs import create_run, resume_configs
    from rrra_core.training.phase1 import phase1_config_dict

    enc, cfg = EncoderConfig(doc_max_length=77), TrainConfig(epochs=4)
    create_run("phase1", phase1_config_dict(enc, cfg, MiningConfig()), run_id="r", root=tmp_path)
    run, saved = resume_configs("r", "phase1", {"encoder": EncoderConfig, "train": TrainConfig}, root=tmp_path)
    assert saved["encoder"] == enc and saved["train"] == cfg and run.id == "r"
    with pytest.raises(ConfigError, match="missing section"):
        resume_configs("r", "phase1", {"phase3": TrainConfig}, root=tmp_path)
