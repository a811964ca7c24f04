"""User-facing errors.

Anything a user can cause (a bad file, an unknown id, a wrong setting) raises a
subclass of :class:`UserError`. Command-line drivers catch exactly this type and
print its one-line message, so a user's mistake never shows a traceback while a
bug in our own code still does.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["UserError", "DataError", "ConfigError", "TrainingDiverged"]


class UserError(Exception):
    """A problem the user can fix; ``str(err)`` is a complete one-line message."""


class DataError(UserError):
    """A malformed or inconsistent input file, located by path and line."""

    def __init__(self, path: str | Path, message: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class ConfigError(UserError):
    """An invalid setting (unknown option, out-of-range value, missing model folder)."""


class TrainingDiverged(UserError):
    """A training step produced a non-finite loss or gradient; nothing from that step was applied or saved."""
