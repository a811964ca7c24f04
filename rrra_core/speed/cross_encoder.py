"""A cross-encoder of the bi-encoder's size, the yardstick the adapter rerank is priced against.

The bi-encoder's own transformer reads each (query, passage) pair as one
sequence and a linear head on [CLS] scores it: the standard cross-encoder
shape. The head is untrained, which does not change its cost, so the latency
benchmark can time a cross-encoder rerank of the same documents without a
second model to download.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from rrra_core.retrieval.encoder import BiEncoder

__all__ = ["CROSS_ENCODER_BATCH", "CrossEncoder"]

CROSS_ENCODER_BATCH = 32


class CrossEncoder:
    """Scores (query, passage) pairs with a copy of ``encoder``'s query transformer and a linear head on [CLS]."""

    def __init__(self, encoder: BiEncoder, max_length: int, device: Any, batch_size: int = CROSS_ENCODER_BATCH):
        self.backbone = copy.deepcopy(encoder.query_model).eval()
        self.head = torch.nn.Linear(encoder.dim, 1).to(device).eval()
        self.tokenizer = encoder.tokenizer
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = device

    def _tokenize(self, query: str, passages: list[str]) -> Any:
        return self.tokenizer([query] * len(passages), passages, truncation="only_second", max_length=self.max_length)

    @torch.inference_mode()
    def score(self, query: str, passages: list[str]) -> np.ndarray:
        """One score per passage, computed in length-sorted batches; float32 (len(passages),)."""
        enc = self._tokenize(query, passages)
        order = np.argsort([-len(x) for x in enc["input_ids"]], kind="stable")
        out = np.zeros(len(passages), dtype=np.float32)
        for s in range(0, len(passages), self.batch_size):
            idx = order[s : s + self.batch_size]
            batch = self.tokenizer.pad([{key: enc[key][i] for key in enc.keys()} for i in idx], return_tensors="pt")
            inputs = {key: v.to(self.device) for key, v in batch.items()}
            hidden = self.backbone(**inputs).last_hidden_state[:, 0]  # (b, H)
            out[idx] = self.head(hidden).squeeze(-1).float().cpu().numpy()
        return out

    def pair_tokens(self, query: str, passages: list[str]) -> int:
        """Tokens the cross-encoder reads for these pairs (the work that makes it expensive)."""
        return sum(len(x) for x in self._tokenize(query, passages)["input_ids"])
