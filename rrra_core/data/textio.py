"""Low-level text file helpers shared by every loader and writer.

Loaders read files a user supplied, so every failure (missing file, bad bytes,
broken JSON) must become a :class:`~rrra_core.runtime.errors.DataError` that names the
file and line. Writers must never leave a half-written file behind, because a
truncated JSONL file would later load as valid data with examples missing.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import re
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from rrra_core.runtime.errors import DataError

__all__ = [
    "open_text",
    "iter_lines",
    "iter_jsonl",
    "atomic_writer",
    "atomic_write_text",
    "resolve_data_file",
]

_BOM = b"\xef\xbb\xbf"


def _check_file(path: Path) -> None:
    """Raise a ``DataError`` unless ``path`` is an existing regular file."""
    if not path.exists():
        raise DataError(path, "file not found")
    if path.is_dir():
        raise DataError(path, "is a folder, not a file")


def open_text(path: str | Path) -> IO[str]:
    """Open a plain or ``.gz`` file as UTF-8 text for reading.

    Gzip is chosen by the ``.gz`` suffix so shipped, compressed datasets and
    a user's uncompressed files go through the same code.
    """
    p = Path(path)
    _check_file(p)
    if p.suffix == ".gz":
        return gzip.open(p, "rt", encoding="utf-8")
    return open(p, encoding="utf-8")


def _open_binary(path: Path) -> IO[bytes]:
    _check_file(path)
    try:
        if path.suffix == ".gz":
            return gzip.open(path, "rb")
        return open(path, "rb")
    except OSError as err:
        # e.g. no read permission: still the user's to fix, so still a DataError.
        raise DataError(path, f"cannot read file ({err.strerror})") from None


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` from a plain or ``.gz`` text file.

    Lines are numbered from 1 and come without their ``\\n``/``\\r\\n``.
    Bytes are decoded one line at a time so that invalid UTF-8 is reported
    with the line it is on, which a text-mode stream cannot tell us. A UTF-8
    byte order mark at the start of the file is dropped.
    """
    p = Path(path)
    with _open_binary(p) as fh:
        number = 0
        try:
            for raw in fh:
                number += 1
                if number == 1 and raw.startswith(_BOM):
                    raw = raw[len(_BOM) :]
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    bad = raw[err.start]
                    raise DataError(
                        p, f"not valid UTF-8 (byte 0x{bad:02x} at byte {err.start + 1} of the line)", number
                    ) from None
                if line.endswith("\n"):
                    line = line[:-1]
                    if line.endswith("\r"):
                        line = line[:-1]
                yield number, line
        except (gzip.BadGzipFile, zlib.error) as err:
            raise DataError(p, f"not a valid gzip file ({err})") from None
        except EOFError:
            # gzip raises EOFError when the compressed stream was cut short.
            raise DataError(p, f"truncated gzip file (after line {number})") from None


#: A JSON escape of a UTF-16 surrogate: a cheap test before walking the parsed object.
_SURROGATE = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}")


def _has_lone_surrogate(obj: Any) -> bool:
    """Whether any string in ``obj`` holds a surrogate code point (JSON pairs decode to one character)."""
    if isinstance(obj, str):
        return any("\ud800" <= ch <= "\udfff" for ch in obj)
    if isinstance(obj, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in obj.items())
    if isinstance(obj, list):
        return any(_has_lone_surrogate(v) for v in obj)
    return False


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSONL file.

    Every line must hold one JSON object; anything else is a ``DataError``
    naming the line, because a record that is not an object has no fields
    for the caller to check.
    """
    p = Path(path)
    for number, line in iter_lines(p):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(p, f"malformed JSON: {err.msg} (column {err.colno})", number) from None
        except RecursionError:
            raise DataError(p, "malformed JSON: nested too deeply", number) from None
        if not isinstance(obj, dict):
            raise DataError(p, f"expected a JSON object, found {type(obj).__name__}", number)
        if _SURROGATE.search(line) and _has_lone_surrogate(obj):
            # Valid JSON ("\ud800" escapes) but not valid Unicode: the tokenizer would crash much later.
            raise DataError(p, "text holds a lone UTF-16 surrogate (invalid Unicode, e.g. '\\ud800')", number)
        yield number, obj


def _default_mode(target: Path) -> int:
    # mkstemp creates files readable only by their owner; keep the mode an
    # existing target had, else use the usual mode for a new data file.
    try:
        return target.stat().st_mode & 0o777
    except OSError:
        return 0o644


@contextlib.contextmanager
def atomic_writer(path: str | Path) -> Iterator[IO[str]]:
    """Context manager giving a UTF-8 text stream that replaces ``path`` on success.

    Text goes to a temporary file in the same folder (so ``os.replace`` is an
    atomic rename on one file system); it is moved over ``path`` only when the
    ``with`` block ends normally and is deleted if it raises. Readers thus see
    either the old file or the complete new one. A ``.gz`` suffix writes gzip
    (with a fixed timestamp, so equal content gives equal bytes).
    """
    target = Path(path)
    folder = target.parent
    if not folder.is_dir():
        raise DataError(folder, "output folder not found")
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    raw = os.fdopen(fd, "wb")
    gz: gzip.GzipFile | None = None
    text: io.TextIOWrapper | None = None
    try:
        if target.suffix == ".gz":
            gz = gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0)
            text = io.TextIOWrapper(gz, encoding="utf-8", newline="\n")
        else:
            text = io.TextIOWrapper(raw, encoding="utf-8", newline="\n")
        yield text
        text.flush()
        if gz is not None:
            # Closing the GzipFile writes its trailer but leaves ``raw`` open.
            text.detach()
            gz.close()
            text = None
        else:
            text.detach()
            text = None
        raw.flush()
        os.fsync(raw.fileno())
        raw.close()
        os.chmod(tmp, _default_mode(target))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(Exception):
            if text is not None:
                text.detach()
        with contextlib.suppress(Exception):
            if gz is not None:
                gz.close()
        with contextlib.suppress(Exception):
            raw.close()
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_text(path: str | Path, content: str | Iterable[str]) -> None:
    """Write ``content`` to ``path`` atomically (see :func:`atomic_writer`).

    A ``str`` is written as is; any other iterable is taken as lines *without*
    their newline, and each is followed by ``\\n``. Lines are consumed lazily,
    so a generator that fails halfway leaves the target untouched.
    """
    with atomic_writer(path) as fh:
        if isinstance(content, str):
            fh.write(content)
        else:
            for line in content:
                fh.write(line)
                fh.write("\n")


def resolve_data_file(folder: str | Path, stem: str) -> Path:
    """Find ``<stem>.jsonl`` or ``<stem>.jsonl.gz`` in ``folder``.

    Shipped datasets are gzipped while users usually have plain files; both
    being present is an error because it is unclear which one is current.
    """
    base = Path(folder)
    plain = base / f"{stem}.jsonl"
    packed = base / f"{stem}.jsonl.gz"
    if plain.is_file() and packed.is_file():
        raise DataError(base, f"both {plain.name} and {packed.name} exist; keep only one")
    if plain.is_file():
        return plain
    if packed.is_file():
        return packed
    raise DataError(base, f"no {plain.name} or {packed.name} in this folder")
