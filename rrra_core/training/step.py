"""One optimizer step, shared by the training phases (AMP-aware, with clipping)."""

from __future__ import annotations

from collections.abc import Iterable

import torch

__all__ = ["backward_and_step", "set_lr"]


def set_lr(optimizer: torch.optim.Optimizer, lr_scale: float) -> None:
    """Scale every param group's base learning rate (``initial_lr``) by ``lr_scale``."""
    for group in optimizer.param_groups:
        group["lr"] = group.setdefault("initial_lr", group["lr"]) * lr_scale


def backward_and_step(
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    params: Iterable[torch.nn.Parameter],
    max_grad_norm: float,
    scaler: torch.amp.GradScaler | None = None,
) -> float:
    """Backpropagate, clip, step; returns the pre-clipping gradient norm."""
    optimizer.zero_grad(set_to_none=True)
    params = list(params)
    if scaler is not None:  # fp16 on GPU: scale to avoid underflow, unscale before clipping
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_grad_norm))
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return grad_norm
