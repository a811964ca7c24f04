"""Versioned review-queue models in a run folder: ``runs/<id>/review/v0001/``, ``latest.json``, a refit lock.

A refit (``scripts/refit_queue.py``) writes one version folder::

    runs/<id>/review/
        v0001/model.json        version, created_at, seconds, verdict count and hash, learner config,
                                fallback note, coefficients (JSON, never pickle)
        v0001/scores.parquet    query_id, doc_id, score (and the model's P(FN) when fitted); a run with a
                                store (``<run>/reader/``) writes each row's place there (``row``) for the ids
        v0001/verdicts.parquet  query_id, doc_id, verdict: the verdicts the version learnt from
        latest.json             {"version": 1, "path": "v0001"}: the newest complete version
        refit.lock              held while a refit runs

A version is written into a hidden temporary folder and renamed into place in
one step, and ``latest.json`` is replaced atomically after that, so a reader
(the Review queue page) sees either the previous version or the complete new
one, never half of one. Two refits never race: :func:`refit_lock` holds an
exclusive lock on ``refit.lock`` for the whole refit.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from rrra_core.runtime.errors import DataError, UserError
from rrra_core.runtime.runs import write_json_atomic

__all__ = [
    "REVIEW_DIR",
    "LATEST_FILE",
    "LOCK_FILE",
    "MODEL_FILE",
    "SCORES_FILE",
    "VERDICTS_FILE",
    "RefitBusy",
    "QueueVersion",
    "review_dir",
    "version_name",
    "parse_version",
    "list_versions",
    "next_version",
    "verdicts_hash",
    "write_version",
    "read_latest",
    "usable_latest",
    "read_scores",
    "read_score_rows",
    "read_verdicts",
    "prune_versions",
    "refit_lock",
]

REVIEW_DIR = "review"
LATEST_FILE = "latest.json"
LOCK_FILE = "refit.lock"
MODEL_FILE = "model.json"
SCORES_FILE = "scores.parquet"
VERDICTS_FILE = "verdicts.parquet"
_VERSION = re.compile(r"^v(\d{4,})$")
_REFIT_HINT = "the next refit writes a new version (scripts/refit_queue.py)"


class RefitBusy(UserError):
    """Another refit of the same run holds the lock."""


@dataclass(frozen=True)
class QueueVersion:
    """One written version: its number, folder and ``model.json``."""

    number: int
    path: Path
    model: dict[str, Any]

    @property
    def name(self) -> str:
        return version_name(self.number)

    @property
    def n_verdicts(self) -> int:
        return int(self.model.get("n_verdicts", 0))


def review_dir(run_dir: str | os.PathLike[str]) -> Path:
    """Where a run's queue versions live."""
    return Path(run_dir) / REVIEW_DIR


def version_name(number: int) -> str:
    """``v0001`` for 1; refuses numbers below 1."""
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise ValueError(f"a version number is a positive integer, got {number!r}")
    return f"v{number:04d}"


def parse_version(name: str) -> int | None:
    """1 for ``v0001``; ``None`` for anything that is not a version folder name."""
    m = _VERSION.match(name)
    return int(m.group(1)) if m and int(m.group(1)) > 0 else None


def list_versions(folder: str | os.PathLike[str]) -> list[int]:
    """The complete version numbers in a review folder, ascending (temporary folders are not versions)."""
    root = Path(folder)
    if not root.is_dir():
        return []
    found = (parse_version(p.name) for p in root.iterdir() if p.is_dir() and (p / MODEL_FILE).is_file())
    return sorted(n for n in found if n is not None)


def next_version(folder: str | os.PathLike[str]) -> int:
    """One past the highest version in ``folder`` (1 when there is none)."""
    return max(list_versions(folder), default=0) + 1


def verdicts_hash(pairs: Iterable[tuple[str, str, bool]]) -> str:
    """A short hash of a set of (query, doc, verdict) triples, the same whatever their order."""
    h = hashlib.sha256()
    for q, d, v in sorted((str(q), str(d), bool(v)) for q, d, v in pairs):
        h.update(f"{q}\t{d}\t{int(v)}\n".encode())
    return h.hexdigest()[:16]


def write_version(
    folder: str | os.PathLike[str], model: dict[str, Any], scores: pd.DataFrame, verdicts: pd.DataFrame
) -> QueueVersion:
    """Write the next version (model.json, scores, verdicts), then point ``latest.json`` at it.

    ``scores`` needs ``score`` and ``query_id``, ``doc_id`` or the rows' places in the run's store
    (``row``); ``verdicts`` needs
    ``query_id``, ``doc_id``, ``verdict``. ``model`` gains ``version`` and
    ``path``. Call it under :func:`refit_lock`: the number is chosen here.
    """
    keyed = ("row",) if "row" in scores.columns else ("query_id", "doc_id")
    for frame, cols, what in ((scores, (*keyed, "score"), "scores"),
                              (verdicts, ("query_id", "doc_id", "verdict"), "verdicts")):  # fmt: skip
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise ValueError(f"{what} frame lacks column(s) {', '.join(missing)}")
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    number = next_version(root)
    name = version_name(number)
    model = {"version": number, "path": name, **{k: v for k, v in model.items() if k not in ("version", "path")}}
    tmp = root / f".{name}.{secrets.token_hex(4)}.tmp"
    tmp.mkdir()
    try:
        scores.to_parquet(tmp / SCORES_FILE, index=False)
        verdicts.to_parquet(tmp / VERDICTS_FILE, index=False)
        (tmp / MODEL_FILE).write_text(json.dumps(model, indent=2) + "\n", encoding="utf-8")
        os.rename(tmp, root / name)  # fails, instead of merging, if the name is taken
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    write_json_atomic(root / LATEST_FILE, {"version": number, "path": name})
    return QueueVersion(number, root / name, model)


def read_latest(folder: str | os.PathLike[str]) -> QueueVersion | None:
    """The version ``latest.json`` points at, or ``None`` when there is none yet.

    A pointer to a missing folder, or an unreadable pointer or model file, is a
    one-line :class:`DataError`.
    """
    root = Path(folder)
    pointer = root / LATEST_FILE
    if not pointer.is_file():
        return None
    try:
        info = json.loads(pointer.read_text(encoding="utf-8"))
        number = int(info["version"])
        version_name(number)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise DataError(pointer, f"not a queue-version pointer ({type(err).__name__})") from None
    return _read_version(root, number, pointer)


def _read_version(root: Path, number: int, pointer: Path | None = None) -> QueueVersion:
    path = root / version_name(number)
    try:
        model = json.loads((path / MODEL_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        where = pointer or path / MODEL_FILE
        raise DataError(where, "points at a version folder that does not exist" if pointer else "missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(path / MODEL_FILE, f"damaged: not valid JSON ({type(err).__name__}); {_REFIT_HINT}") from None
    if not isinstance(model, dict):
        raise DataError(path / MODEL_FILE, f"damaged: not a queue model; {_REFIT_HINT}")
    return QueueVersion(number, path, model)


def usable_latest(folder: str | os.PathLike[str]) -> tuple[QueueVersion | None, list[str]]:
    """The newest version whose files all read, from the one ``latest.json`` names back; and why any was skipped.

    A damaged version (a file cut short, a disk fault) gives way to the one
    before it, so the queue keeps the order learnt so far until the next
    refit writes a new version. Each skipped version adds its one-line reason
    naming the file; ``(None, reasons)`` when no version reads.
    """
    root = Path(folder)
    skipped: list[str] = []
    try:
        latest = read_latest(root)
    except DataError as err:
        skipped.append(str(err))
        latest = None
    if latest is None and not skipped:
        return None, []
    newest = latest.number if latest is not None else max(list_versions(root), default=0)
    for number in sorted((n for n in list_versions(root) if n <= newest), reverse=True):
        try:
            version = _read_version(root, number)
            _check_parquet(version.path / SCORES_FILE)  # the footer only: at 10M rows a frame costs a minute
            _check_parquet(version.path / VERDICTS_FILE)
        except DataError as err:
            skipped.append(str(err))
            continue
        return version, skipped
    return None, skipped


def _check_parquet(path: Path) -> None:
    """The ``DataError`` :func:`_read_parquet` raises for a missing or unreadable file, without making the frame."""
    import pyarrow.parquet as pq

    try:
        # the footer, not the data: a file cut short (a crash mid-write, a full disk) has none, and reading
        # every row of a 10M-row version to find that out cost seconds at each refit
        meta = pq.ParquetFile(path).metadata
        if meta.num_rows and not meta.num_row_groups:
            raise ValueError("rows but no row groups")
    except FileNotFoundError:
        raise DataError(path, f"missing; {_REFIT_HINT}") from None
    except Exception as err:  # noqa: BLE001 - pyarrow raises many kinds for a damaged file
        raise DataError(path, f"damaged: not a readable parquet file ({type(err).__name__}); {_REFIT_HINT}") from None


def _read_parquet(path: Path, ids: bool = True) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except FileNotFoundError:
        raise DataError(path, f"missing; {_REFIT_HINT}") from None
    except Exception as err:  # noqa: BLE001 - pyarrow raises many kinds for a damaged file
        raise DataError(path, f"damaged: not a readable parquet file ({type(err).__name__}); {_REFIT_HINT}") from None
    return frame.astype({"query_id": str, "doc_id": str}) if ids else frame


def read_scores(version: QueueVersion | str | os.PathLike[str]) -> pd.DataFrame:
    """A version's scores (given the version or its folder), with string ids; a damaged file is a ``DataError``."""
    path = version.path if isinstance(version, QueueVersion) else Path(version)
    frame = _read_parquet(path / SCORES_FILE, ids=False)
    if "query_id" in frame.columns or "row" not in frame.columns:
        return frame.astype({"query_id": str, "doc_id": str})
    from rrra_core.analysis.run_reader import open_store  # the ids of a store-keyed version: from the run's store

    try:
        ids = open_store(path.parent.parent).rows_at(frame["row"].to_numpy())[["query_id", "doc_id"]]
    except Exception as err:  # noqa: BLE001 - a store that does not read
        raise DataError(path / SCORES_FILE, f"its ids are in the run's store, which does not read: {err}") from None
    return pd.concat([ids.astype(str).reset_index(drop=True), frame.drop(columns="row")], axis=1)


def read_score_rows(
    version: QueueVersion | str | os.PathLike[str], columns: tuple[str, ...] = ("score", "proba")
) -> pd.DataFrame:
    """A version's scores for the live queue: only ``row`` and ``columns`` (those it has) when the refit wrote
    each row's place in the run's store (ids as strings otherwise, as :func:`read_scores`)."""
    import pyarrow.parquet as pq

    path = (version.path if isinstance(version, QueueVersion) else Path(version)) / SCORES_FILE
    try:
        names = pq.read_schema(path).names
    except FileNotFoundError:
        raise DataError(path, f"missing; {_REFIT_HINT}") from None
    except Exception as err:  # noqa: BLE001 - pyarrow raises many kinds for a damaged file
        raise DataError(path, f"damaged: not a readable parquet file ({type(err).__name__}); {_REFIT_HINT}") from None
    if "row" not in names:
        return _read_parquet(path)
    try:
        return pd.read_parquet(path, columns=[c for c in ("row", *columns) if c in names])
    except Exception as err:  # noqa: BLE001
        raise DataError(path, f"damaged: not a readable parquet file ({type(err).__name__}); {_REFIT_HINT}") from None


def read_verdicts(version: QueueVersion | str | os.PathLike[str]) -> pd.DataFrame:
    """The (query_id, doc_id, verdict) rows a version learnt from (given the version or its folder)."""
    path = version.path if isinstance(version, QueueVersion) else Path(version)
    return _read_parquet(path / VERDICTS_FILE)


def prune_versions(folder: str | os.PathLike[str], keep: int) -> list[int]:
    """Delete all but the newest ``keep`` versions (never the one ``latest.json`` names); returns those deleted.

    A reader holds the latest version's scores in memory once read, so only
    versions no pointer names are removed.
    """
    if keep < 1:
        raise ValueError(f"keep at least one version, got {keep}")
    root = Path(folder)
    latest = read_latest(root)
    old = [n for n in list_versions(root)[:-keep] if latest is None or n != latest.number]
    for n in old:
        shutil.rmtree(root / version_name(n), ignore_errors=True)
    return old


@contextlib.contextmanager
def refit_lock(folder: str | os.PathLike[str], wait: float = 0.0, poll: float = 0.2) -> Iterator[Path]:
    """Hold ``refit.lock`` exclusively; wait up to ``wait`` seconds for another refit, then raise :class:`RefitBusy`.

    An OS-level lock (``flock``) is released when its process dies, so a killed
    refit never leaves the run locked. The lock file records the holder's pid.
    """
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = path.read_text(encoding="utf-8").strip() or "?"
                    raise RefitBusy(
                        f"another refit of this run is running (pid {holder}, lock {path}); "
                        "wait for it to finish or pass --wait SECONDS"
                    ) from None
                time.sleep(poll)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the lock
