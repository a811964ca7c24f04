"""Run folders: one ``runs/<run-id>/`` per training or evaluation job.

A run folder holds everything needed to understand and reproduce it:
``config.json`` (every setting, plus the command and environment; its schema
and reader are in :mod:`rrra_core.runtime.run_config`), ``metrics.json`` and
``progress.json`` (what a follower such as the app polls; their shapes are in
:mod:`rrra_core.runtime.reports`), ``log.jsonl`` (one line per step), the
model and any mined negatives. Every file is replaced atomically
(:func:`atomic_path`), so a reader never sees half of one.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rrra_core.runtime.errors import ConfigError, DataError
from rrra_core.runtime.paths import REPO_ROOT, runs_dir

__all__ = [
    "Run",
    "create_run",
    "create_or_resume_run",
    "same_settings",
    "open_run",
    "list_runs",
    "environment_info",
    "atomic_path",
    "write_json_atomic",
    "cpu_model",
]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; it replaces ``path`` in one rename when the block ends.

    Readers see the old file or the complete new one, never half of it; if the
    block raises, the temporary file is removed and ``path`` is untouched::

        with atomic_path(run.file("gradients.parquet")) as tmp:
            pq.write_table(table, tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | os.PathLike[str], obj: Any, compact: bool = False) -> None:
    """Write JSON via a temp file + rename, so readers never see half a file.

    ``compact`` drops the indentation: for machine-read files of per-query
    values, where indenting triples the size (16 MB for SQuAD's part files).
    """
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        if compact:
            json.dump(obj, fh, separators=(",", ":"))
        else:
            json.dump(obj, fh, indent=2, sort_keys=False)
        fh.write("\n")


def cpu_model() -> str:
    """The CPU's marketing name, for result headers."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def environment_info() -> dict[str, Any]:
    """Versions and machine facts recorded with every run."""
    import faiss
    import torch
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "faiss": getattr(faiss, "__version__", "?"),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "git_commit": _git_commit(),
        "argv": sys.argv,
    }


@dataclass
class Run:
    """Handle on a run folder."""

    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    def file(self, name: str) -> Path:
        return self.path / name

    def write_json(self, name: str, obj: Any) -> None:
        write_json_atomic(self.path / name, obj)

    def read_json(self, name: str, default: Any = None) -> Any:
        """The JSON file ``name`` of the run, ``default`` if absent; a damaged one is a one-line DataError."""
        p = self.path / name
        if not p.is_file():
            return default
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DataError(p, f"damaged: not valid JSON ({err}); restore it or start the run again") from None

    def log(self, record: dict[str, Any]) -> None:
        """Append one JSON line to ``log.jsonl`` (flushed at once so followers see it)."""
        with open(self.path / "log.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    def read_log(self) -> list[dict[str, Any]]:
        p = self.path / "log.jsonl"
        if not p.is_file():
            return []
        rows = []
        for line in p.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut by a kill: everything before it is good
        return rows


def _new_run_id(kind: str) -> str:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{kind}-{secrets.token_hex(2)}"


def _check_run_id(run_id: str) -> None:
    if not run_id or "/" in run_id or run_id.startswith("."):
        raise ConfigError(f"invalid run id {run_id!r}")


def create_run(
    kind: str, config: dict[str, Any], run_id: str | None = None, root: str | os.PathLike[str] | None = None
) -> Run:
    """Make ``runs/<run-id>/`` and write its ``config.json`` (settings + environment)."""
    root = Path(root) if root is not None else runs_dir()
    run_id = run_id or _new_run_id(kind)
    _check_run_id(run_id)
    path = root / run_id
    if path.exists() and any(path.iterdir()):
        raise ConfigError(f"run folder {path} already exists; pass --resume {path} to continue it")
    path.mkdir(parents=True, exist_ok=True)
    run = Run(path)
    run.write_json("config.json", {"kind": kind, **config, "environment": environment_info()})
    return run


def same_settings(run: Run, kind: str, config: dict[str, Any]) -> bool:
    """Whether ``run``'s ``config.json`` holds exactly ``kind`` and ``config`` (the environment aside).

    The comparison is of the JSON the run saved, so tuples and lists, or a
    setting's order, do not make two equal configs differ.
    """
    saved = run.read_json("config.json")
    if not isinstance(saved, dict):
        return False
    saved = {k: v for k, v in saved.items() if k != "environment"}
    return saved == json.loads(json.dumps({"kind": kind, **config}))


def create_or_resume_run(
    kind: str, config: dict[str, Any], run_id: str, root: str | os.PathLike[str] | None = None
) -> Run:
    """Run ``run_id`` for these settings: a new folder, or the one the same settings left before (a resume).

    A run id names one run. A folder already there with other settings (another
    collection whose folder name reduces to the same id, a retrain handed its
    base run's id) is refused in one line and never written into; otherwise the
    second job would overwrite the first one's files while its ``config.json``
    still named the first. Whether a finished run of the same settings may be
    reused is the caller's to decide.
    """
    root = Path(root) if root is not None else runs_dir()
    _check_run_id(run_id)
    path = root / run_id
    if not (path / "config.json").is_file():
        return create_run(kind, config, run_id=run_id, root=root)
    run = Run(path)
    if not same_settings(run, kind, config):
        raise ConfigError(f"run id {run_id!r} is taken by a run with other settings ({path}); choose another run id")
    return run


def open_run(path_or_id: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> Run:
    """An existing run, by folder path or by id under the runs folder."""
    p = Path(path_or_id)
    if not (p / "config.json").is_file():
        p = (Path(root) if root is not None else runs_dir()) / str(path_or_id)
    if not (p / "config.json").is_file():
        raise ConfigError(f"run {str(path_or_id)!r} not found (no config.json)")
    return Run(p)


def list_runs(root: str | os.PathLike[str] | None = None) -> list[Run]:
    """All runs under the runs folder, newest first."""
    root = Path(root) if root is not None else runs_dir()
    if not root.is_dir():
        return []
    runs = [Run(p) for p in root.iterdir() if (p / "config.json").is_file()]
    return sorted(runs, key=lambda r: r.path.stat().st_mtime, reverse=True)
