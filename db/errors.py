"""The store's one error type for bad input.

A subclass of :class:`~rrra_core.runtime.errors.UserError`, so the command line prints
its one-line message (and exits 2) and the app can show it as is, while a bug
in our own code still shows a traceback.
"""

from __future__ import annotations

from rrra_core.runtime.errors import UserError

__all__ = ["AnnotationError"]


class AnnotationError(UserError):
    """A judgment, dataset or policy the store refuses; nothing was written."""
