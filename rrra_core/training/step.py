"""One optimizer step, shared by the training phases (AMP-aware, with clipping), and its global batch.

Under ``torchrun`` a step's batch is the *global* batch: ``--batch-size`` queries
split into contiguous blocks, one per rank, and each query's documents (its
positive, its hard and random negatives) live on the query's rank.
:func:`embed_global_batch` embeds the local share and gathers the rest, so
every rank holds the whole (B, H) query and (N, H) document matrices in
single-process order and the loss is the single-process loss.

Why the gradient then equals the single-process gradient. Let
``L = (1/B) sum_i l_i(q_i, d_1..d_N)`` be the batch's mean InfoNCE. Rank r
computes the same ``L`` from the gathered embeddings, but only its own rows
(queries Q_r, documents D_r) are connected to its encoder, so its backward
pass yields ``g_r = sum_{x in Q_r u D_r} dL/dx * dx/dtheta``, the part of the
full chain rule that flows through its rows. Every row belongs to exactly one
rank, hence ``sum_r g_r = dL/dtheta``. DDP averages, ``(1/W) sum_r``, so each
rank back-propagates ``W * L``; then the averaged gradient, the clipping norm
and the AdamW step are those of one process with the whole batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from rrra_core.retrieval.encoder import BiEncoder
from rrra_core.runtime import distributed
from rrra_core.runtime.errors import TrainingDiverged

__all__ = ["backward_and_step", "set_lr", "PairEmbedder", "embed_global_batch"]


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
    loss_scale: float = 1.0,
) -> float:
    """Backpropagate ``loss_scale * loss``, clip, step; returns the pre-clipping gradient norm.

    ``loss_scale`` is the world size under DDP (see the module docstring). A
    non-finite loss or gradient raises :class:`TrainingDiverged` *before* the
    optimizer steps, so the weights (and every checkpoint) stay the last good
    ones. Under fp16 loss scaling an overflow is expected and the scaler skips
    that step itself, so only the loss is checked there.
    """
    if not torch.isfinite(loss.detach()).all():
        raise TrainingDiverged(f"the loss is {float(loss.detach().float().mean())}: training diverged and was stopped")
    optimizer.zero_grad(set_to_none=True)
    params = list(params)
    if loss_scale != 1.0:
        loss = loss * loss_scale
    if scaler is not None:  # fp16 on GPU: scale to avoid underflow, unscale before clipping
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_grad_norm))
    if scaler is None and not np.isfinite(grad_norm):
        raise TrainingDiverged(f"the gradient norm is {grad_norm}: training diverged and was stopped")
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return grad_norm


class PairEmbedder(nn.Module):
    """Queries and documents in one ``forward``, so DDP sees one forward per backward."""

    def __init__(self, encoder: BiEncoder, query_max_length: int, doc_max_length: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.query_max_length = query_max_length
        self.doc_max_length = doc_max_length

    def _embed(self, texts: list[str], role: str, max_length: int) -> torch.Tensor:
        if not texts:
            # A rank with nothing to embed (a batch smaller than the world) still runs
            # the tower, on one empty text, and keeps zero rows of it: every parameter
            # then takes part in backward and DDP's all-reduce lines up across ranks.
            return self.encoder.embed([""], role, max_length)[:0]
        return self.encoder.embed(texts, role, max_length)

    def forward(self, queries: list[str], docs: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        q = self._embed(queries, "query", self.query_max_length)  # (b, H)
        d = self._embed(docs, "doc", self.doc_max_length)  # (n, H)
        return q, d


def embed_global_batch(
    embedder: nn.Module, queries: list[str], docs: list[str], doc_rows: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Embed a step's global batch: (B, H) queries, (N, H) documents, and this rank's document indices.

    ``doc_rows[j]`` is the batch row of the query that brought document j; the
    document is embedded on that query's rank. In one process this is just
    ``embedder(queries, docs)``. Across processes every rank returns the same
    matrices in the same order, with gradient only through its own rows.
    """
    if not distributed.is_distributed():
        q, d = embedder(queries, docs)
        return q, d, np.arange(len(docs))
    world, rank = distributed.get_world_size(), distributed.get_rank()
    q_owner = np.empty(len(queries), dtype=np.int64)
    for r in range(world):
        q_owner[distributed.shard(range(len(queries)), rank=r)] = r
    d_owner = q_owner[np.asarray(doc_rows, dtype=np.int64)]
    mine_q, mine_d = np.flatnonzero(q_owner == rank), np.flatnonzero(d_owner == rank)
    q_local, d_local = embedder([queries[i] for i in mine_q], [docs[j] for j in mine_d])
    # One gather per step: each rank sends its queries then its documents.
    counts = [int((q_owner == r).sum() + (d_owner == r).sum()) for r in range(world)]
    gathered = distributed.all_gather_with_grad(torch.cat([q_local, d_local]), counts)  # (B + N, H)
    q_at, d_at = np.empty(len(queries), dtype=np.int64), np.empty(len(docs), dtype=np.int64)
    offset = 0
    for r in range(world):
        qs, ds = np.flatnonzero(q_owner == r), np.flatnonzero(d_owner == r)
        q_at[qs] = offset + np.arange(len(qs))
        d_at[ds] = offset + len(qs) + np.arange(len(ds))
        offset += len(qs) + len(ds)
    device = gathered.device
    return gathered[torch.from_numpy(q_at).to(device)], gathered[torch.from_numpy(d_at).to(device)], mine_d
