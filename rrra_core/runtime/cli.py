"""Shared plumbing for the command-line drivers in ``scripts/``.

The one rule: a user's mistake prints ``error: <one line>`` and exits 2; only
genuine bugs show a traceback.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable, Iterable

from rrra_core.runtime.errors import UserError

__all__ = ["run_main", "setup_logging", "check_run_inputs"]


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    # Data warnings (e.g. empty documents) are for users: one line, no source excerpt.
    print(f"warning: {message}", file=sys.stderr)


def setup_logging(verbose: bool = False) -> None:
    """Plain, timestamped log lines on stderr (called from ``main``, never at import)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    warnings.showwarning = _show_warning
    try:  # transformers prints a progress bar per weight file; ours are enough
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass


def check_run_inputs(model: str, dataset: str, splits: Iterable[str], **lengths: int) -> None:
    """Refuse a missing model, dataset or split, or a length the model cannot take, before a driver creates
    its run folder.

    Without this a typo surfaced only after ``create_run``, leaving a run folder
    with a config and nothing else in the user's run list. ``lengths`` are the
    encoder's length settings by name (``doc_max_length=...``).
    """
    from rrra_core.data.beir import check_dataset
    from rrra_core.retrieval.encoder import check_max_lengths

    check_max_lengths(model, **lengths)
    check_dataset(dataset, splits)


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
