"""Contrastive losses as pure functions of tensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["info_nce", "negative_gradient_magnitudes"]


def info_nce(
    q: torch.Tensor,
    d: torch.Tensor,
    targets: torch.Tensor,
    tau: float,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """InfoNCE over a pool of documents shared by the batch.

    q: (B, H) unit query vectors; d: (N, H) unit document vectors, N >= B
    (in-batch positives first, then any hard negatives); targets: (B,) index of
    each query's positive in ``d``; mask: (B, N) True where a document must not
    count as a negative for that query (another of its labelled positives that
    happens to be in the batch). Training on those as negatives would teach the
    model that a labelled positive is irrelevant.
    """
    # In fp32 even under autocast: bf16 logits of up to 1/tau = 20 are rounded to steps
    # of 0.06-0.12, as large as the gap between a positive and a hard negative. The
    # product is tiny (B x N x H), so precision costs nothing here.
    with torch.autocast(q.device.type, enabled=False):
        scores = q.float() @ d.float().T / tau  # (B, N)
    if mask is not None:
        keep_target = F.one_hot(targets, num_classes=d.shape[0]).bool()  # (B, N)
        scores = scores.masked_fill(mask & ~keep_target, float("-inf"))
    return F.cross_entropy(scores, targets)


def negative_gradient_magnitudes(scores: torch.Tensor, targets: torch.Tensor, tau: float) -> torch.Tensor:
    """|dL/ds_j| = p_j / tau for every candidate j of each row (the positive's entry is set to 0).

    scores: (B, N) raw similarities (not divided by tau). This is the quantity the
    RRRA paper compares across samplers: how hard each negative pushes.
    """
    p = torch.softmax(scores / tau, dim=-1)  # (B, N)
    grad = p / tau
    return grad.scatter(1, targets.unsqueeze(1), 0.0)
