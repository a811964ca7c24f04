"""Where the project keeps things on disk.

Everything the tool writes lives under one home folder so a user can find,
back up or delete it in one place. ``RRRA_HOME`` moves it (tests point it at a
temporary folder); by default it is the repository checkout itself.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "REPO_ROOT",
    "DEMO_DATA_DIR",
    "DEMO_DATASETS",
    "home_dir",
    "runs_dir",
    "cache_dir",
    "datasets_dir",
    "demo_dataset_dir",
]

_PACKAGE = Path(__file__).resolve().parent.parent  # rrra_core/
REPO_ROOT = _PACKAGE.parent
DEMO_DATA_DIR = _PACKAGE / "demo_data"
#: Embedded collections, shipped gzipped inside the package (see demo_data/README.md for terms).
DEMO_DATASETS = ("squad", "scifact", "cranfield", "adi")


def home_dir() -> Path:
    """The project's data folder: ``$RRRA_HOME`` or the checkout."""
    return Path(os.environ.get("RRRA_HOME", REPO_ROOT)).expanduser().resolve()


def runs_dir() -> Path:
    """Folder holding one sub-folder per run (``runs/<run-id>/``)."""
    return home_dir() / "runs"


def cache_dir() -> Path:
    """Folder for derived, re-creatable data (embedding caches)."""
    return home_dir() / ".rrra" / "cache"


def datasets_dir() -> Path:
    """Folder for datasets people bring through the app (uploads, converted training files), one sub-folder each."""
    return home_dir() / "datasets"


def demo_dataset_dir(name: str) -> Path:
    """Folder of an embedded dataset; raises ``ConfigError`` for an unknown name."""
    from rrra_core.runtime.errors import ConfigError

    if name not in DEMO_DATASETS:
        raise ConfigError(f"unknown demo dataset {name!r}; choose one of {', '.join(DEMO_DATASETS)}")
    return DEMO_DATA_DIR / name
