"""Resumable checkpoints without pickle: safetensors for tensors, JSON for the rest.

Layout of ``<run>/checkpoint/``: ``model.safetensors`` (the module's
state dict), ``optimizer.safetensors`` (AdamW moments, flattened) and
``state.json`` (step, epoch, best metric, optimizer param groups, anything the
loop wants back). The folder is written beside the old one and swapped in by
rename, so a kill during saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from rrra_core.runtime.errors import DataError

__all__ = ["save_checkpoint", "load_checkpoint", "has_checkpoint"]

_DIR = "checkpoint"


def has_checkpoint(run_dir: str | os.PathLike[str]) -> bool:
    return (Path(run_dir) / _DIR / "state.json").is_file()


def _flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for pid, state in sd["state"].items():
        for name, value in state.items():
            t = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"{pid}.{name}"] = t.detach().cpu().contiguous()
    return tensors, sd["param_groups"]


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], groups: list[dict[str, Any]]) -> dict[str, Any]:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    return {"state": state, "param_groups": groups}


def save_checkpoint(
    run_dir: str | os.PathLike[str],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    scaler: torch.amp.GradScaler | None = None,
) -> None:
    """Atomically replace ``<run>/checkpoint`` with the current training state.

    ``scaler`` (fp16 training) keeps its loss scale: a few numbers, stored in
    ``state.json``, so a resumed run does not restart at 65536 and skip steps
    backing off again.
    """
    if scaler is not None and scaler.is_enabled():
        state = {**state, "grad_scaler": scaler.state_dict()}
    run_dir = Path(run_dir)
    tmp = run_dir / (_DIR + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    # clone(): tied weights share storage, which safetensors refuses to save twice.
    model_sd = {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}
    save_file(model_sd, str(tmp / "model.safetensors"))
    opt_tensors, groups = _flatten_optimizer(optimizer)
    save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
    (tmp / "state.json").write_text(json.dumps({**state, "param_groups": groups}, indent=2) + "\n", encoding="utf-8")
    final = run_dir / _DIR
    old = run_dir / (_DIR + ".old")
    prev = run_dir / PREVIOUS
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    # The last two are kept: if the newest is ever damaged (a disk fault, a copy cut short),
    # the one before it still resumes the run.
    if old.exists():
        shutil.rmtree(prev, ignore_errors=True)
        os.replace(old, prev)


def _regroup(saved: dict[str, Any], legacy_params: Sequence[nn.Parameter], optimizer: torch.optim.Optimizer) -> dict:
    """A saved optimizer state laid out for ``optimizer``'s groups.

    A checkpoint numbers parameters 0..N-1 across its own groups, in the order
    ``legacy_params`` lists them; each of ``optimizer``'s parameters takes its
    saved moments from its position there. The groups' settings are
    ``optimizer``'s own.
    """
    old_index = {id(p): i for i, p in enumerate(legacy_params)}
    state: dict[int, Any] = {}
    groups = []
    new_id = 0
    for group in optimizer.param_groups:
        ids = []
        for p in group["params"]:
            i = old_index.get(id(p))
            if i is not None and i in saved["state"]:
                state[new_id] = saved["state"][i]
            ids.append(new_id)
            new_id += 1
        groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": ids})
    return {"state": state, "param_groups": groups}


#: The checkpoint before the newest, kept so that a damaged newest one still leaves a way to resume.
PREVIOUS = _DIR + ".prev"


def _damaged(path: Path, run_dir: Path, why: str) -> DataError:
    prev = run_dir / PREVIOUS
    if prev.is_dir() and path.parent.name != PREVIOUS:
        hint = f"the previous checkpoint is kept: `mv {prev} {run_dir / _DIR}` resumes from it"
    else:
        hint = "no earlier checkpoint is kept: start the run again under a new id"
    return DataError(path, f"damaged checkpoint file ({why}); {hint}")


def _read(path: Path, read: Any, run_dir: Path) -> Any:
    """``read(path)``, with a damaged or missing file turned into a one-line DataError naming it."""
    try:
        return read(path)
    except (OSError, ValueError, UnicodeDecodeError, SafetensorError) as err:  # JSONDecodeError is a ValueError
        raise _damaged(path, run_dir, str(err).splitlines()[0] if str(err) else type(err).__name__) from None


def load_checkpoint(
    run_dir: str | os.PathLike[str],
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    scaler: torch.amp.GradScaler | None = None,
    legacy_params: Sequence[nn.Parameter] | None = None,
) -> dict[str, Any]:
    """Restore model (and optimizer, and the fp16 loss scaler) in place; returns the saved loop state.

    ``legacy_params``: when the checkpoint's optimizer groups do not match
    ``optimizer``'s (a run saved before every phase grouped parameters by the
    ``dim()`` rule), its moments are mapped by parameter, taking the saved
    order to be ``legacy_params``.
    """
    run_dir = Path(run_dir)
    folder = run_dir / _DIR
    if not (folder / "state.json").is_file() and (run_dir / (_DIR + ".old") / "state.json").is_file():
        folder = run_dir / (_DIR + ".old")  # killed between the two renames
    state = _read(folder / "state.json", lambda p: json.loads(p.read_text(encoding="utf-8")), run_dir)
    device = next(model.parameters()).device
    weights = _read(folder / "model.safetensors", lambda p: load_file(str(p), device=str(device)), run_dir)
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:  # tensors of other names or shapes: not this run's checkpoint
        raise _damaged(folder / "model.safetensors", run_dir, str(err).splitlines()[0]) from None
    groups = state.pop("param_groups")
    scaler_state = state.pop("grad_scaler", None)
    if scaler is not None and scaler_state:
        scaler.load_state_dict(scaler_state)
    if optimizer is not None:
        # Load on CPU: load_state_dict moves moments to the params and keeps "step" where torch wants it.
        tensors = _read(folder / "optimizer.safetensors", lambda p: load_file(str(p), device="cpu"), run_dir)
        saved = _unflatten_optimizer(tensors, groups)
        sizes = [len(g["params"]) for g in optimizer.param_groups]
        if legacy_params is not None and [len(g["params"]) for g in groups] != sizes:
            saved = _regroup(saved, legacy_params, optimizer)
        optimizer.load_state_dict(saved)
    return state
