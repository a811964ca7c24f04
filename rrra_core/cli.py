"""Shared plumbing for the command-line drivers in ``scripts/``.

The one rule: a user's mistake prints ``error: <one line>`` and exits 2; only
genuine bugs show a traceback.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from .errors import UserError

__all__ = ["run_main", "setup_logging"]


def setup_logging(verbose: bool = False) -> None:
    """Plain, timestamped log lines on stderr (called from ``main``, never at import)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def run_main(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """Call ``main(argv)`` and turn user errors into a one-line message and exit code 2."""
    try:
        return int(main(argv) or 0)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
