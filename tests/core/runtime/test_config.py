from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from rrra_core.runtime.config import add_config_arguments, config_from_args, config_from_dict, load_config, save_config
from rrra_core.runtime.errors import ConfigError
from rrra_core.training.phase1 import Phase1Config


def test_flags_override_a_config_file(tmp_path: Path) -> None:
    save_config(Phase1Config(epochs=3, lr=1e-4), tmp_path / "c.json")
    base = load_config(Phase1Config, tmp_path / "c.json")
    p = argparse.ArgumentParser()
    add_config_arguments(p, Phase1Config)
    cfg = config_from_args(Phase1Config, p.parse_args(["--epochs", "5"]), base=base.__dict__)
    assert cfg.epochs == 5 and cfg.lr == 1e-4


def test_unknown_and_mistyped_settings_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match="unknown setting"):
        config_from_dict(Phase1Config, {"epoch": 3})
    with pytest.raises(ConfigError, match="expects int") as err:
        config_from_dict(Phase1Config, {"epochs": "three"})
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="batch_size"):
        config_from_dict(Phase1Config, {"batch_size": 1})


def test_optional_and_bool_values() -> None:
    cfg = config_from_dict(Phase1Config, {"max_steps": None, "epochs": "2"})
    assert cfg.max_steps is None and cfg.epochs == 2
    from rrra_core.retrieval.encoder import EncoderConfig

    assert config_from_dict(EncoderConfig, {"shared": "false"}).shared is False


def test_missing_or_broken_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(Phase1Config, tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{oops", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(Phase1Config, tmp_path / "bad.json")


def test_a_nested_part_saves_loads_and_takes_prefixed_flags(tmp_path: Path) -> None:
    from rrra_core.adapter import AdapterFitConfig, LabelConfig
    from rrra_core.training.phase2 import Phase2Config

    cfg = Phase2Config(dataset="adi", labels=LabelConfig(mu=0.2), fit=AdapterFitConfig(epochs=2))
    save_config(cfg, tmp_path / "p2.json")
    assert load_config(Phase2Config, tmp_path / "p2.json") == cfg
    p = argparse.ArgumentParser()
    add_config_arguments(p, Phase2Config)
    args = p.parse_args(["--label-mu", "0.5", "--epochs", "7", "--hidden", "8", "--label-fp-rank-range", "10,20"])
    again = config_from_args(Phase2Config, args, base=load_config(Phase2Config, tmp_path / "p2.json").__dict__)
    assert (again.dataset, again.hidden, again.labels.mu, again.fit.epochs) == ("adi", 8, 0.5, 7)
    assert again.labels.fp_rank_range == (10, 20) and again.fit.lr == cfg.fit.lr
    with pytest.raises(ConfigError, match="labels: unknown setting"):
        config_from_dict(Phase2Config, {"labels": {"mue": 0.1}}, source="x.json")
