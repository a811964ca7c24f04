"""Shared plumbing for the command-line drivers in ``scripts/``.

The one rule: a user's mistake prints ``error: <one line>`` and exits 2; only
genuine bugs show a traceback.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable, Iterable

from rrra_core.runtime.errors import ConfigError, UserError

__all__ = ["run_main", "setup_logging", "check_run_inputs", "check_model_weights"]


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
    """Refuse a missing model, dataset or split, damaged weights, or a length the model cannot take, before a
    driver creates its run folder or encodes anything.

    Without this a typo surfaced only after ``create_run``, leaving a run folder
    with a config and nothing else in the user's run list, and a document
    longer than the model's positions was a tensor-size traceback minutes in.
    ``lengths`` are the encoder's length settings by name (``doc_max_length=...``).
    """
    from rrra_core.data.beir import check_dataset
    from rrra_core.retrieval.encoder import check_max_lengths

    check_max_lengths(model, **lengths)
    check_model_weights(model)
    check_dataset(dataset, splits)


def check_model_weights(model: str) -> None:
    """Refuse a model folder without weights, or whose safetensors files are damaged (a cut or zeroed header).

    Reads only each file's header, in milliseconds, so a driver can say so in
    one line instead of a safetensors traceback after its run folder is made.
    """
    from safetensors import SafetensorError, safe_open

    from rrra_core.retrieval.encoder import resolve_model_dir

    folder = resolve_model_dir(model)
    tensors = sorted(folder.rglob("*.safetensors"))
    if not tensors and not any(folder.rglob("pytorch_model*.bin")):
        raise ConfigError(f"model folder {folder} holds no weights (model.safetensors or pytorch_model.bin)")
    for path in tensors:
        try:
            with safe_open(str(path), framework="pt"):
                pass
        except (SafetensorError, OSError) as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ConfigError(f"{path}: damaged model weights ({first}); copy the model folder again") from None


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
