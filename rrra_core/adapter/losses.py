"""Adapter losses as pure functions of tensors: class-weighted cross-entropy plus L_norm.

``L_adapter = CE_w(logits, targets) + lambda_norm * L_norm(a, q, c)``. Each
ablation is one argument: ``weights=None`` drops the class-ratio weighting and
``lambda_norm=0`` drops ``L_norm`` (phase 3 always passes 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["norm_loss", "segment_alpha", "class_weights", "adapter_loss"]

EPS = 1e-12


def segment_alpha(a: torch.Tensor, q: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """alpha* = clamp(((a - c).(q - c)) / |q - c|^2, 0, 1): where ``a`` projects on the segment c -> q, (...).

    A pair with q == c has a one-point segment; alpha* is then 0 (the point c).
    """
    qc = q - c  # (..., d)
    denom = (qc * qc).sum(-1)  # (...)
    alpha = ((a - c) * qc).sum(-1) / denom.clamp_min(EPS)  # (...)
    return torch.where(denom > EPS, alpha, torch.zeros_like(alpha)).clamp(0.0, 1.0)


def norm_loss(a: torch.Tensor, q: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """L_norm: mean over pairs of min over alpha in [0, 1] of |a - (alpha q + (1 - alpha) c)|^2.

    a, c: (..., d); q: broadcastable to them (e.g. (B, 1, d) against (B, K, d)).
    Uses the closed form :func:`segment_alpha`; by the envelope theorem the
    gradient through alpha* vanishes, so no detach is needed.
    """
    q = q.expand_as(c) if q.dim() == c.dim() else q.unsqueeze(-2).expand_as(c)
    alpha = segment_alpha(a, q, c).unsqueeze(-1)  # (..., 1)
    nearest = c + alpha * (q - c)  # (..., d)
    return ((a - nearest) ** 2).sum(-1).mean()


def class_weights(counts: Sequence[int] | np.ndarray, clip: float = 10.0) -> np.ndarray:
    """Inverse-frequency class weights over CLASSES, clipped to [1/clip, clip].

    For a class with n_k > 0 of N pairs and m classes present,
    ``w_k = N / (m * n_k)`` (scikit-learn's "balanced"): the weighted mean weight
    over the pool, sum_k n_k w_k / N, is exactly 1, so a balanced pool gets all
    ones. Clipping then bounds how hard a rare class pulls (after clipping the
    mean is only near 1). A class with no pairs gets weight 0: it contributes
    nothing either way, and 0 says so plainly in logs. ``clip`` must be >= 1.
    """
    n = np.asarray(counts, dtype=np.float64)
    if clip < 1.0:
        raise ValueError(f"clip must be >= 1, got {clip}")
    present = n > 0
    w = np.zeros_like(n)
    if present.any():
        w[present] = n.sum() / (present.sum() * n[present])
        w[present] = np.clip(w[present], 1.0 / clip, clip)
    return w.astype(np.float32)


def adapter_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    a: torch.Tensor,
    q: torch.Tensor,
    c: torch.Tensor,
    weights: torch.Tensor | None = None,
    lambda_norm: float = 1.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Phase-2 loss: weighted cross-entropy + lambda_norm * L_norm; returns (total, parts).

    logits: (N, 4); targets: (N,) class indices; a, c: (N, d); q: (N, d);
    weights: (4,) per-class weights or None (no class-ratio weighting). With
    weights, cross-entropy is torch's weighted mean sum_i w_yi l_i / sum_i w_yi,
    so the batch's class mix, not the weights' scale, sets its size. ``parts``
    holds plain floats for logging: ce, norm (always computed), total.
    """
    ce = F.cross_entropy(logits, targets, weight=weights)
    if lambda_norm:
        norm = norm_loss(a, q, c)
        total = ce + lambda_norm * norm
    else:
        with torch.no_grad():
            norm = norm_loss(a, q, c)
        total = ce
    return total, {"ce": float(ce.detach()), "norm": float(norm.detach()), "total": float(total.detach())}
