"""Run folders named by a hash of their settings, so finished phases are found again instead of retrained.

The benchmarks train the same phase-1 encoder, phase-2 adapter and phase-3
runs again and again: another sampler, another seed, a killed process started
anew. :func:`keyed_run` names each folder ``<prefix>-<hash of its settings>``;
a finished one is reused, a half one resumed from its checkpoints, and a lock
beside it keeps two processes from training it twice. The hash covers every
setting that shapes the result (and :func:`data_key` the exact training labels),
so changed settings never pick up an old folder.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rrra_core.runtime.paths import runs_dir
from rrra_core.runtime.reports import PROGRESS_FILE
from rrra_core.runtime.runs import Run, create_run

__all__ = ["settings_key", "data_key", "locked", "keyed_run"]


def settings_key(config: Mapping[str, Any]) -> str:
    """A short, stable hash of a JSON-able mapping (key order does not matter)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:10]


def data_key(qrels: Mapping[str, Mapping[str, int]]) -> str:
    """The hash of a training set's labels: the same query ids with other labels are another training set."""
    return settings_key({"queries": sorted(qrels), "qrels": qrels})


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive file lock held for the ``with`` block (released when the process dies, too)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextmanager
def keyed_run(prefix: str, kind: str, config: dict[str, Any], root: Path | None = None) -> Iterator[tuple[Run, bool]]:
    """``(run, finished)`` for the run folder ``<prefix>-<hash of config>``, held under a lock.

    A finished folder (``progress.json`` says done) is reused as is; a half one
    is handed back to be resumed (the phases resume from their checkpoints); a
    missing one is created. Once the block has finished the run, its resumable
    checkpoints are dropped (:func:`_drop_checkpoints`).
    """
    root = root or runs_dir()
    run_id = f"{prefix}-{settings_key(config)}"
    with locked(root / f".{run_id}.lock"):
        path = root / run_id
        if (path / "config.json").is_file():
            run = Run(path)
            yield run, _done(run)
        else:
            run = create_run(kind, config, run_id=run_id, root=root)
            yield run, False
        if _done(run):
            _drop_checkpoints(run)


def _done(run: Run) -> bool:
    progress = run.read_json(PROGRESS_FILE) if run.file(PROGRESS_FILE).is_file() else {}
    return progress.get("status") == "done"


# The folders rrra_core.training.checkpoint writes: the last two resumable states, each the model again plus
# its AdamW moments (about 530 MB for MiniLM). They serve a run killed mid-training; a finished run keeps its
# final model and adapter, and a tuning grid of 24 such runs would otherwise hold 13 GB of dead checkpoints.
_CHECKPOINTS = ("checkpoint", "checkpoint.prev")


def _drop_checkpoints(run: Run) -> None:
    for name in _CHECKPOINTS:
        shutil.rmtree(run.path / name, ignore_errors=True)
