"""Data brought through the app, saved as a checked BEIR folder under ``<home>/datasets/<name>/``.

The names come from a browser, so none is trusted: a dataset name becomes an
ASCII folder name (:func:`dataset_slug`), and an uploaded file's name must be
a plain base name from a short list (:func:`upload_target`), never a path. The
files are written to a ``.staging-*`` folder beside the datasets, checked
there with the loaders (:func:`~rrra_core.data.summary.summarize_dataset`),
and only then renamed into place: a failed check leaves nothing, and a name
that exists is kept unless the caller asks to replace it, in which case the
whole folder is swapped, never mixed with the old one.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tempfile
import time
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path

from rrra_core.data.summary import DatasetSummary, summarize_dataset
from rrra_core.data.training_to_beir import training_file_to_beir
from rrra_core.runtime.errors import DataError, UserError
from rrra_core.runtime.paths import datasets_dir

__all__ = [
    "EXPECTED_UPLOADS",
    "dataset_slug",
    "dataset_target",
    "upload_target",
    "save_uploads",
    "save_training_file",
    "training_file_name",
]

#: What the upload accepts, for messages.
EXPECTED_UPLOADS = "corpus.jsonl[.gz], queries.jsonl[.gz] and <split>.tsv files, or one training .jsonl[.gz] file"
_STAGING = ".staging-"
_ASIDE = ".replaced-"
_MAX_NAME = 80
_STALE_S = 24 * 3600
_SPLIT_TSV = re.compile(r"[A-Za-z0-9_-]+\.tsv")
_TRAINING = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*\.jsonl(\.gz)?")
_BEIR_FILES = ("corpus.jsonl", "corpus.jsonl.gz", "queries.jsonl", "queries.jsonl.gz")


def dataset_slug(text: str) -> str:
    """The folder name a typed dataset name is saved under; ``UserError`` saying why if there is none.

    Accents are dropped (NFKD, then ASCII: ``Café`` → ``Cafe``) and any other
    run of characters but letters, digits, ``_``, ``.`` and ``-`` becomes one
    ``-``; leading dots go, so a name can never be hidden or leave the folder.
    """
    text = text.strip()
    if not text:
        raise UserError("name the dataset: it is saved under that name in <home>/datasets/")
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", ascii_text).strip("-.")[:_MAX_NAME].strip("-.")
    if not slug:
        raise UserError(
            f"the dataset name {text!r} has no ASCII letter or digit to name its folder in <home>/datasets/: "
            "add some (a transliteration, say)"
        )
    return slug


def dataset_target(name: str) -> Path:
    """``<home>/datasets/<slug>``: where :func:`save_uploads` or :func:`save_training_file` would put ``name``."""
    root = datasets_dir().resolve()
    target = root / dataset_slug(name)
    if target.parent != root:  # the slug has no separator; this guards that promise
        raise UserError(f"the dataset name {name!r} does not name a folder inside {root}")
    return target


def upload_target(name: str) -> str:
    """Where an uploaded file goes inside the dataset folder (a relative path), from the name the browser sent.

    Only a plain base name is taken: a name with a folder part (``../x``,
    ``/tmp/x``, ``a\\b``) is refused, not shortened, since no browser sends one.
    ``corpus``/``queries`` JSONL go at the top, ``<split>.tsv`` under
    ``qrels/``, any other ``*.jsonl[.gz]`` is a training file kept under ``source/``.
    """
    if not name or name != os.path.basename(name) or "\\" in name or "\x00" in name or name in (".", ".."):
        raise UserError(f"upload {name!r} refused: a file name may not contain a folder")
    if name in _BEIR_FILES:
        return name
    if _SPLIT_TSV.fullmatch(name):
        return f"qrels/{name}"
    if _TRAINING.fullmatch(name):
        return f"source/{name}"
    raise UserError(f"upload {name!r} refused: expected {EXPECTED_UPLOADS} (names of ASCII letters, digits, _ . -)")


def _plan(names: Sequence[str]) -> dict[str, str]:
    """Each sent name's target, once the set makes one dataset: one training file alone, or BEIR files."""
    if not names:
        raise UserError("choose the files to upload")
    targets = {n: upload_target(n) for n in names}
    if len(targets) < len(names):
        raise UserError("the same file name is uploaded twice: keep one")
    training = [n for n, t in targets.items() if t.startswith("source/")]
    if training and len(names) > 1:
        raise UserError(f"upload {training[0]!r} is a training file: upload it alone, or rename it corpus/queries")
    for stem in ("corpus", "queries"):
        if f"{stem}.jsonl" in targets and f"{stem}.jsonl.gz" in targets:
            raise UserError(f"both {stem}.jsonl and {stem}.jsonl.gz are uploaded: keep one")
    return targets


def save_uploads(files: Sequence[tuple[str, bytes]], name: str, *, replace: bool = False) -> DatasetSummary:
    """Save uploaded ``(file name, bytes)`` as the checked dataset ``name``; its summary, or a one-line ``UserError``.

    Names are checked before anything is written; a training file is converted
    to BEIR files beside it. Nothing is left behind if any step fails.
    """
    targets = _plan([n for n, _ in files])

    def fill(staging: Path) -> None:
        for sent, data in files:
            path = staging / targets[sent]
            if not path.resolve().is_relative_to(staging.resolve()):
                raise UserError(f"upload {sent!r} refused: it would leave the dataset folder")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        training = [t for t in targets.values() if t.startswith("source/")]
        if training:
            training_file_to_beir(staging / training[0], staging)

    return _save(name, fill, replace=replace)


def save_training_file(path: str | Path, name: str = "", *, replace: bool = False) -> DatasetSummary:
    """Convert a Tevatron or FlagEmbedding file on this machine into the checked dataset ``name``.

    ``name`` defaults to the file's stem (``training`` if that has no usable
    characters). The same staging and replace rules as :func:`save_uploads`.
    """
    source = Path(path).expanduser()
    if not str(path).strip() or not source.is_file():
        raise UserError(f"training file {str(path)!r} not found")
    name = name if name.strip() else training_file_name(source)
    return _save(name, lambda staging: training_file_to_beir(source, staging), replace=replace)


def training_file_name(path: str | Path) -> str:
    """The dataset name a training file is saved under when none is typed: its stem, or ``training``."""
    try:
        return dataset_slug(Path(path).name.split(".")[0])
    except UserError:
        return "training"


def _save(name: str, fill: Callable[[Path], object], *, replace: bool) -> DatasetSummary:
    """Stage, fill, check and install ``<home>/datasets/<slug(name)>``; the checked summary of the installed folder."""
    target = dataset_target(name)
    _refuse_existing(target, replace)
    root = target.parent
    root.mkdir(parents=True, exist_ok=True)
    _sweep_stale(root)
    # Inside the datasets folder, so moving it in is a rename on one file system.
    staging = Path(tempfile.mkdtemp(prefix=_STAGING, dir=root))
    staging.chmod(root.stat().st_mode & 0o777)  # a dataset as readable as its neighbours, not mkdtemp's 0700
    try:
        try:
            fill(staging)
            summary = summarize_dataset(staging)
        except UserError as err:
            raise _relative(err, staging) from None
        _install(staging, target, replace)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already once installed
    prefix = f"{staging}{os.sep}"
    notes = [n.replace(prefix, f"{target}{os.sep}") for n in summary.notes]
    return dataclasses.replace(summary, folder=target, notes=notes)


def _refuse_existing(target: Path, replace: bool) -> None:
    if (target.exists() or target.is_symlink()) and not replace:
        raise UserError(
            f"a dataset called {target.name!r} already exists in {target.parent}: "
            "choose another name, or replace it (the whole folder)"
        )


def _install(staging: Path, target: Path, replace: bool) -> None:
    """Rename the checked folder to ``target``; the old one, if replacing, is set aside first and deleted after."""
    _refuse_existing(target, replace)  # again: another session may have saved it while this one checked
    aside = None
    if target.exists() or target.is_symlink():
        aside = Path(tempfile.mkdtemp(prefix=_ASIDE, dir=target.parent))
        aside.rmdir()
        target.rename(aside)
    try:
        staging.rename(target)
    except BaseException:
        if aside is not None:
            aside.rename(target)
        raise
    if aside is not None:
        if aside.is_dir() and not aside.is_symlink():
            shutil.rmtree(aside, ignore_errors=True)
        else:
            aside.unlink(missing_ok=True)


def _relative(err: UserError, staging: Path) -> UserError:
    """The check's error naming the uploaded file (``corpus.jsonl:2: …``), not the staging folder."""
    if isinstance(err, DataError) and Path(err.path).is_relative_to(staging):
        rel = Path(err.path).relative_to(staging)
        return DataError(rel if str(rel) != "." else "the uploaded files", err.message, err.line)
    if str(staging) not in str(err):
        return err
    return UserError(str(err).replace(f"{staging}{os.sep}", "").replace(str(staging), "the uploaded files"))


def _sweep_stale(root: Path) -> None:
    """Drop staging folders a killed session left (older than a day); a live one is minutes old at most."""
    now = time.time()
    for p in root.glob(f"{_STAGING}*"):
        try:
            if p.is_dir() and not p.is_symlink() and now - p.stat().st_mtime > _STALE_S:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass
