"""A run's ``config.json``: one schema for every kind of run, one writer, one reader.

Every training run saves its settings in the same shape::

    {"kind": "phase1" | "phase2" | "phase3",
     "format": 2,
     "encoder": {...EncoderConfig},
     "data": {"dataset": ..., "train_split": ..., "eval_split": ...},
     "phase": {...the phase's config, less the data fields},
     ...sections a phase adds ("mining" for phase 1, "adapter_init" for phase 3,
        "retrain" for a retrain job's runs),
     "environment": {...}}

so anything that wants to know which dataset a run used reads ``data``,
whatever the run's kind. :func:`run_config_dict` writes it (``create_run``
adds the kind and the environment); :func:`read_run_config` is the one reader,
and :meth:`RunConfig.phase_config` rebuilds the phase's typed config.

Run folders made before this schema (format 1) kept each phase's settings
under its own names: ``train`` (+ ``mining``) for phase 1; ``adapter``,
``labels`` and ``phase2`` for phase 2; ``phase3`` (+ ``adapter_init``) for
phase 3, with the dataset inside those sections. The reader upgrades them in
memory, so old runs still open, resume and serve as ``--config``; nothing on
disk is rewritten.

Nothing here imports torch or the training code: the app reads configs too.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from rrra_core.runtime.config import config_from_dict, config_to_dict
from rrra_core.runtime.errors import ConfigError
from rrra_core.runtime.runs import Run, open_run

__all__ = [
    "CONFIG_FILE",
    "CONFIG_FORMAT",
    "DATA_FIELDS",
    "RunConfig",
    "run_config_dict",
    "parse_run_config",
    "read_run_config",
    "resume_run",
]

T = TypeVar("T")

CONFIG_FILE = "config.json"
CONFIG_FORMAT = 2
#: The settings that say which data a run used; the ``data`` section holds them.
DATA_FIELDS = ("dataset", "train_split", "eval_split")
# Sections every config has; anything else is a phase's own extra section.
_CORE = ("kind", "format", "encoder", "data", "phase", "environment")
# Format 1: where each kind kept its phase settings.
_LEGACY_PHASE = {"phase1": "train", "phase2": "adapter", "phase3": "phase3"}


def run_config_dict(encoder: Any, phase: Any, **sections: Any) -> dict[str, Any]:
    """The settings of a run's ``config.json`` (``create_run`` adds ``kind`` and ``environment``).

    ``encoder`` and ``phase`` are config dataclasses; the phase's data fields
    (:data:`DATA_FIELDS`) go to the ``data`` section. Extra ``sections`` are
    saved as given (dataclasses as their dicts).
    """
    settings = config_to_dict(phase)
    data = {k: settings.pop(k) for k in DATA_FIELDS if k in settings}
    extra = {k: config_to_dict(v) if dataclasses.is_dataclass(v) else v for k, v in sections.items()}
    return {"format": CONFIG_FORMAT, "encoder": config_to_dict(encoder), "data": data, "phase": settings, **extra}


@dataclass(frozen=True)
class RunConfig:
    """A run's saved settings in the current schema, whatever format its file had."""

    kind: str | None
    encoder: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    phase: dict[str, Any] = field(default_factory=dict)
    sections: dict[str, Any] = field(default_factory=dict)  # mining, adapter_init, retrain, ...
    environment: dict[str, Any] = field(default_factory=dict)
    source: str = CONFIG_FILE
    legacy: bool = False  # read from a format-1 file and upgraded in memory

    @property
    def dataset(self) -> str | None:
        value = self.data.get("dataset")
        return str(value) if value else None

    @property
    def train_split(self) -> str | None:
        return self.data.get("train_split") or None

    @property
    def eval_split(self) -> str | None:
        return self.data.get("eval_split") or None

    @property
    def splits(self) -> tuple[str, ...]:
        """The splits the run read (training first), without empty ones."""
        return tuple(s for s in (self.train_split, self.eval_split) if s)

    def as_dict(self) -> dict[str, Any]:
        """The config in the current schema, as ``config.json`` would hold it now."""
        out: dict[str, Any] = {"kind": self.kind, "format": CONFIG_FORMAT, "encoder": self.encoder}
        out.update(data=self.data, phase=self.phase, **self.sections, environment=self.environment)
        return out

    def require(self, *names: str) -> None:
        """Refuse a config without these sections (``encoder``, ``phase`` or an extra one)."""
        for name in names:
            present = getattr(self, name) if name in ("encoder", "data", "phase") else name in self.sections
            if not present:
                raise ConfigError(f"{self.source}: missing section {name!r}")

    def phase_settings(self, cls: type) -> dict[str, Any]:
        """The phase settings as a dict for ``cls``: the data fields ``cls`` has, merged back in."""
        names = {f.name for f in dataclasses.fields(cls)}
        return {**{k: v for k, v in self.data.items() if k in names}, **self.phase}

    def phase_config(self, cls: type[T]) -> T:
        """The typed phase config (``Phase1Config``, ``Phase2Config``, ``Phase3Config``)."""
        self.require("phase")
        return config_from_dict(cls, self.phase_settings(cls), source=self.source)

    def encoder_config(self, cls: type[T]) -> T:
        """The typed encoder config (pass ``EncoderConfig``)."""
        self.require("encoder")
        return config_from_dict(cls, self.encoder, source=self.source)

    def section(self, name: str, cls: type[T]) -> T:
        """An extra section as a typed config (e.g. ``("mining", MiningConfig)``); defaults if absent."""
        value = self.sections.get(name)
        return config_from_dict(cls, value if isinstance(value, dict) else {}, source=self.source)


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _upgrade(raw: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """A format-1 config as a format-2 dict; (the dict, whether it was upgraded)."""
    if raw.get("format") == CONFIG_FORMAT or "phase" in raw or "data" in raw:
        return dict(raw), False
    out = dict(raw)
    kind = raw.get("kind")
    name = _LEGACY_PHASE.get(str(kind)) or next((n for n in ("train", "adapter", "phase3") if n in raw), None)
    phase = _dict(out.pop(name, None)) if name else {}
    if name == "adapter":  # phase 2: the label and fit settings become the phase's nested parts
        for part, old in (("labels", "labels"), ("fit", "phase2")):
            if isinstance(raw.get(old), Mapping):
                phase[part] = _dict(out.pop(old))
    data = {k: phase.pop(k) for k in DATA_FIELDS if k in phase}
    if not (name or data):
        return out, False  # nothing to upgrade (a config with no phase section at all)
    out.update(format=CONFIG_FORMAT, data=data, phase=phase)
    return out, True


def parse_run_config(raw: Any, source: str = CONFIG_FILE) -> RunConfig:
    """A :class:`RunConfig` from a loaded ``config.json`` (either format); a non-object is a one-line error."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: expected a JSON object")
    cfg, legacy = _upgrade(raw)
    kind = cfg.get("kind")
    return RunConfig(
        kind=str(kind) if kind is not None else None,
        encoder=_dict(cfg.get("encoder")),
        data=_dict(cfg.get("data")),
        phase=_dict(cfg.get("phase")),
        sections={k: v for k, v in cfg.items() if k not in _CORE},
        environment=_dict(cfg.get("environment")),
        source=source,
        legacy=legacy,
    )


def read_run_config(run_or_path: Run | str | os.PathLike[str]) -> RunConfig:
    """The one reader of a run's ``config.json``: a :class:`Run`, a run folder, or a config file.

    A missing or broken file is a one-line :class:`ConfigError`.
    """
    if isinstance(run_or_path, Run):
        path = run_or_path.file(CONFIG_FILE)
    else:
        path = Path(run_or_path)
        if path.is_dir():
            path = path / CONFIG_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid JSON ({err})") from None
    return parse_run_config(raw, source=str(path))


def resume_run(
    path_or_id: str | os.PathLike[str], kind: str, root: str | os.PathLike[str] | None = None
) -> tuple[Run, RunConfig]:
    """Reopen a run of ``kind`` to continue it; refuses a run of another kind."""
    run = open_run(path_or_id, root=root)
    cfg = read_run_config(run)
    if cfg.kind != kind:
        raise ConfigError(f"{run.path} is a {cfg.kind!r} run, not a {kind} run")
    return run, cfg
