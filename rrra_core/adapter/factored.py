"""The adapter for one query against its top-k, with the per-query work done once.

At serving time a query is scored against k candidates. The adapter's first
layer reads ``z = [q - c ; q * c ; q + c]``; splitting its weight by blocks,
``W1 = [Wa | Wb | Wc]``, gives

    W1 z = (Wa + Wc) q  +  (Wc - Wa + Wb diag(q)) c

so the (h, d) matrix in front of ``c`` and the vector ``(Wa + Wc) q + b1`` can
be formed once per query. Each candidate then costs one d x h product in the
first layer instead of three. The head over ``[q ; a ; q * a ; |q - a|]``
factors the same way: its q block is a per-query constant and its a and q*a
blocks merge into one (4, d) matrix. What remains per candidate is the first
layer, the second layer (h -> d) and the |q - a| term; the last two need the
corrected vector ``a`` itself, so about 2 d h multiply-adds per pair is the
floor for the exact adapter (the plain forward costs about 4 d h).

The numbers are the model's own: :meth:`FactoredAdapter.forward` equals
``RRRAAdapter.forward`` up to float rounding (a test checks it). It is an
inference path: dropout is skipped, as in eval mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rrra_core.adapter.model import FN, TP, AdapterOutput, RRRAAdapter

__all__ = ["QueryFactors", "FactoredAdapter"]


@dataclass(frozen=True)
class QueryFactors:
    """The per-query parts of the adapter's forward (see the module docstring)."""

    q: torch.Tensor  # (d,) the query
    first_c: torch.Tensor  # (d, h) transposed (Wc - Wa + Wb diag(q)), applied to candidates
    first_bias: torch.Tensor  # (h,) (Wa + Wc) q + b1
    head_a: torch.Tensor  # (d, 4) transposed head weight for a: H_a + H_qa diag(q)
    head_bias: torch.Tensor  # (4,) H_q q + head bias


class FactoredAdapter:
    """A snapshot of a trained adapter's weights, rearranged for one-query-at-a-time scoring.

    The query-independent blocks are combined and transposed once here, so a
    query's factors cost one fused multiply-add over an (d, h) matrix rather
    than several passes (forming them from the raw weights took as long as
    scoring 100 candidates). Built from the weights as they are: rebuild it
    after the adapter trains further.
    """

    def __init__(self, adapter: RRRAAdapter) -> None:
        d = adapter.cfg.dim
        with torch.inference_mode():
            first, head = adapter.mlp[0], adapter.head
            wa, wb, wc = (first.weight[:, i * d : (i + 1) * d] for i in range(3))  # (h, d) each
            h_q, h_a, h_qa, h_abs = (head.weight[:, i * d : (i + 1) * d] for i in range(4))  # (4, d) each
            self.c_t = (wc - wa).T.contiguous()  # (d, h)
            self.qc_t = wb.T.contiguous()  # (d, h): scaled row-wise by q per query
            self.q_first = (wa + wc).contiguous()  # (h, d)
            self.b1 = first.bias.detach().clone()
            self.act = adapter.mlp[1]
            self.w2_t = adapter.mlp[-1].weight.T.contiguous()  # (h, d)
            self.b2 = adapter.mlp[-1].bias.detach().clone()
            self.h_a_t, self.h_qa_t = h_a.T.contiguous(), h_qa.T.contiguous()  # (d, 4)
            self.h_q, self.h_abs_t, self.hb = h_q.contiguous(), h_abs.T.contiguous(), head.bias.detach().clone()
            self.class_log_weights = adapter.class_log_weights.detach().clone()
        self.residual = adapter.cfg.residual
        self.device = head.weight.device

    def for_query(self, q: torch.Tensor) -> QueryFactors:
        """The per-query parts for one query ``q`` (d,)."""
        with torch.inference_mode():
            return QueryFactors(
                q=q,
                first_c=torch.addcmul(self.c_t, self.qc_t, q[:, None]),  # (d, h)
                first_bias=torch.addmv(self.b1, self.q_first, q),  # (h,)
                head_a=torch.addcmul(self.h_a_t, self.h_qa_t, q[:, None]),  # (d, 4)
                head_bias=torch.addmv(self.hb, self.h_q, q),  # (4,)
            )

    def forward(self, f: QueryFactors, c: torch.Tensor) -> AdapterOutput:
        """``adapter(q, c)`` for candidates c (k, d) of the query ``f`` was formed for."""
        with torch.inference_mode():
            hidden = self.act(torch.addmm(f.first_bias, c, f.first_c))  # (k, h)
            a = torch.addmm(self.b2, hidden, self.w2_t)  # (k, d)
            if self.residual:
                a += c
            logits = torch.addmm(f.head_bias, a, f.head_a)  # (k, 4)
            logits.addmm_((f.q - a).abs_(), self.h_abs_t)
            return AdapterOutput(a, logits)

    def p_rel(self, q: np.ndarray | torch.Tensor, c: np.ndarray | torch.Tensor) -> np.ndarray:
        """Calibrated P(rel) = P(TP) + P(FN) for one query (d,) against candidates (k, d)."""
        qt = torch.as_tensor(q, dtype=torch.float32, device=self.device).reshape(-1)
        ct = torch.as_tensor(c, dtype=torch.float32, device=self.device)
        if ct.dim() != 2 or ct.shape[1] != qt.shape[0]:
            raise ValueError(f"candidates must be (k, {qt.shape[0]}), got {tuple(ct.shape)}")
        out = self.forward(self.for_query(qt), ct)
        with torch.inference_mode():
            probs = torch.softmax(
                out.logits - self.class_log_weights, dim=-1
            )  # (k, 4): training's class weighting undone
            return (probs[:, TP] + probs[:, FN]).cpu().numpy()
