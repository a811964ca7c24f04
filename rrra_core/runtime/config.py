"""Typed configuration: dataclasses with help text, loadable from JSON or flags.

Every run saves its config next to its artifacts, so ``config.json`` in a run
folder is enough to reproduce it. The helpers here turn any config dataclass
into ``argparse`` flags (help comes from ``field(metadata={"help": ...})``) and
back, and validate types on load so a typo in a JSON file is a one-line error
instead of a crash deep inside training.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from rrra_core.runtime.errors import ConfigError

__all__ = [
    "opt",
    "section",
    "add_config_arguments",
    "config_from_args",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "save_config",
]

T = TypeVar("T")


def opt(default: Any, help: str, **kwargs: Any) -> Any:  # noqa: A002 - mirrors argparse
    """A dataclass field with help text (shown by ``--help``)."""
    return dataclasses.field(default=default, metadata={"help": help, **kwargs})


def section(cls: type, help: str, prefix: str = "") -> Any:  # noqa: A002 - mirrors opt
    """A nested config part (a dataclass field holding another config dataclass).

    Saved as a nested JSON object; on the command line its fields become flags
    of their own, named with ``prefix`` (``section(LabelConfig, ..., prefix="label_")``
    gives ``--label-mu``).
    """
    return dataclasses.field(default_factory=cls, metadata={"help": help, "section": True, "prefix": prefix})


def _is_section(f: dataclasses.Field) -> bool:
    return bool(f.metadata.get("section"))


def _base_type(tp: Any) -> tuple[Any, bool]:
    """Strip ``X | None`` to ``(X, True)``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _coerce(name: str, tp: Any, value: Any) -> Any:
    base, optional = _base_type(tp)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"setting {name!r} must not be empty")
    try:
        if base is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in {"true", "1", "yes", "false", "0", "no"}:
                return value.lower() in {"true", "1", "yes"}
            raise ValueError
        if base is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if base is float:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if not math.isfinite(number):  # inf or nan as a setting only ever ruins a run (e.g. --lr inf)
                raise ConfigError(f"setting {name!r} must be a finite number, got {value!r}")
            return number
        if base is str:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError
            return str(value)
        if typing.get_origin(base) in (tuple, list):
            (item_tp, *_) = typing.get_args(base) or (str,)
            if isinstance(value, str):
                value = [v for v in value.split(",") if v.strip()]
            return tuple(_coerce(name, item_tp, v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"setting {name!r} expects {getattr(base, '__name__', base)}, got {value!r}") from None
    return value


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def config_from_dict(cls: type[T], data: dict[str, Any], *, source: str = "config") -> T:
    """Build ``cls`` from a plain dict, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a JSON object")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{source}: unknown setting(s) {', '.join(unknown)} for {cls.__name__}")
    hints = _hints(cls)
    parts = {f.name for f in dataclasses.fields(cls) if _is_section(f)}
    kwargs = {
        k: (_part(hints[k], v, f"{source}: {k}") if k in parts else _coerce(k, hints[k], v)) for k, v in data.items()
    }
    return cls(**kwargs)


def _part(cls: type, value: Any, source: str) -> Any:
    """A nested config part from its JSON object (or an already built instance)."""
    return value if isinstance(value, cls) else config_from_dict(cls, value, source=source)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """JSON-ready dict of a config (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def save_config(cfg: Any, path: str | Path) -> None:
    """Write ``cfg`` as indented JSON."""
    Path(path).write_text(json.dumps(config_to_dict(cfg), indent=2, sort_keys=True) + "\n", encoding="utf-8")


def load_config(cls: type[T], path: str | Path) -> T:
    """Read a config JSON file written by :func:`save_config` (or by hand)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{p}: not valid JSON ({err})") from None
    return config_from_dict(cls, data, source=str(p))


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, *, prefix: str = "") -> None:
    """Add one ``--flag`` per field of ``cls``; defaults stay ``None`` so a config file can fill them."""
    group = parser.add_argument_group(cls.__name__)
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if _is_section(f):
            add_config_arguments(parser, hints[f.name], prefix=prefix + f.metadata["prefix"])
            continue
        flag = "--" + (prefix + f.name).replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else None
        help_text = f.metadata.get("help", "")
        if "choices" in f.metadata:
            help_text += f" (one of: {', '.join(map(str, f.metadata['choices']))})"
        help_text += f" [default: {default}]"
        base, _ = _base_type(hints[f.name])
        metavar = "BOOL" if base is bool else None
        # argparse %-formats help strings; a literal % in our text must be doubled.
        group.add_argument(flag, dest=prefix + f.name, default=None, help=help_text.replace("%", "%%"), metavar=metavar)


def config_from_args(
    cls: type[T], args: argparse.Namespace, *, prefix: str = "", base: dict[str, Any] | None = None
) -> T:
    """Config from parsed flags layered over ``base`` (e.g. a loaded config file)."""
    data = dict(base or {})
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if _is_section(f):
            part = data.get(f.name)
            part = config_to_dict(part) if dataclasses.is_dataclass(part) else part
            data[f.name] = config_from_args(hints[f.name], args, prefix=prefix + f.metadata["prefix"], base=part)
            continue
        value = getattr(args, prefix + f.name, None)
        if value is not None:
            data[f.name] = value
    return config_from_dict(cls, data, source="command line")
