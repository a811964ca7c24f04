"""Learning-rate schedule: linear warmup, then linear decay to zero."""

from __future__ import annotations

__all__ = ["lr_at"]


def lr_at(step: int, total_steps: int, warmup_steps: int, base_lr: float) -> float:
    """Learning rate for optimizer step ``step`` (0-based)."""
    if total_steps <= 0:
        return base_lr
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    remaining = max(total_steps - warmup_steps, 1)
    return base_lr * max(0.0, (total_steps - step) / remaining)
