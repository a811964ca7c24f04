"""The RRRA adapter: a residual correction of the document embedding plus a 4-class head.

Given a query ``q`` and a candidate document ``c`` (unit vectors of size ``d``
from the frozen bi-encoder), the adapter builds relation features
``z = [q - c ; q * c ; q + c]`` and corrects the document,
``a = c + MLP(z)`` (``a = MLP(z)`` in the no-residual ablation). A likely false
negative should move toward ``q``; everything else should stay near ``c``.

A linear head over ``[q ; a ; q * a ; |q - a|]`` gives logits for the joint
classes ``CLASSES = (TP, FN, FP, TN)``. The head never sees the pair's label:
the app conditions on the label afterwards (:func:`p_fn_given_neg`,
:func:`p_fp_given_pos`). The readings below are pure functions of tensors so the
app, the sampler and the reranker all compute them the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from rrra_core.runtime.config import opt
from rrra_core.runtime.errors import ConfigError

if TYPE_CHECKING:  # for the annotation only; set_class_weights imports numpy itself
    import numpy as np

__all__ = [
    "CLASSES",
    "TP",
    "FN",
    "FP",
    "TN",
    "HEAD_FEATURES",
    "AdapterConfig",
    "AdapterOutput",
    "RRRAAdapter",
    "class_probs",
    "p_fn_given_neg",
    "p_fp_given_pos",
    "p_rel",
    "qa_score",
    "ca_score",
]

CLASSES = ("TP", "FN", "FP", "TN")
TP, FN, FP, TN = range(4)
HEAD_FEATURES = ("qa",)
EPS = 1e-8


@dataclass
class AdapterConfig:
    """Shape of the adapter and its ablation switches (saved as ``adapter_config.json``)."""

    dim: int = opt(384, "embedding size d of the frozen bi-encoder (384 for all-MiniLM-L6-v2)")
    hidden: int | None = opt(None, "hidden width h of the 3d -> h -> d correction MLP; empty = d")
    residual: bool = opt(True, "a = c + MLP(z); false = the no-residual ablation a = MLP(z)")
    zero_init: bool = opt(
        True, "zero the MLP's last layer so a = c at the start; false = the no-initialization ablation"
    )
    head_features: str = opt("qa", "head input: 'qa' = [q; a; q*a; |q-a|]", choices=HEAD_FEATURES)
    dropout: float = opt(0.0, "dropout after the MLP's hidden layer")
    head_init: str = opt(
        "cosine",
        "'cosine': the relevant classes (TP, FN) start scoring head_scale * q.a, "
        "so P(rel) and P(FN|neg) start as the retriever's own ranking and training refines it; "
        "'random': PyTorch's default init",
        choices=("cosine", "random"),
    )
    head_scale: float = opt(20.0, "scale of the cosine head init (1/tau of the contrastive loss)")

    def __post_init__(self) -> None:
        if self.dim < 1:
            raise ConfigError(f"adapter dim must be a positive integer, got {self.dim}")
        if self.hidden is not None and self.hidden < 1:
            raise ConfigError(f"adapter hidden must be a positive integer or empty, got {self.hidden}")
        if self.head_features not in HEAD_FEATURES:
            raise ConfigError(
                f"unknown head_features {self.head_features!r}; expected one of {', '.join(HEAD_FEATURES)}"
            )
        if self.head_init not in ("cosine", "random"):
            raise ConfigError(f"unknown head_init {self.head_init!r}; expected cosine or random")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"adapter dropout must be in [0, 1), got {self.dropout}")

    @property
    def hidden_size(self) -> int:
        return self.hidden or self.dim


class AdapterOutput(NamedTuple):
    a: torch.Tensor  # (..., d) corrected document embedding
    logits: torch.Tensor  # (..., 4) over CLASSES


class RRRAAdapter(nn.Module):
    """``forward(q, c)`` with q (B, d) and c (B, d) or (B, K, d) -> ``AdapterOutput(a, logits)``."""

    def __init__(self, cfg: AdapterConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, h = cfg.dim, cfg.hidden_size
        self.mlp = nn.Sequential(nn.Linear(3 * d, h), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(h, d))
        self.head = nn.Linear(4 * d, len(CLASSES))
        if cfg.head_init == "cosine":
            # Start the head at the retriever's own judgement: the q*a block sums to q.a,
            # so logit(TP) = logit(FN) = scale * cos and the irrelevant classes start at 0.
            # A random head starts as noise on top of a strong signal and, with a few
            # thousand pairs, often never recovers it.
            with torch.no_grad():
                self.head.weight.zero_()
                self.head.bias.zero_()
                self.head.weight[TP, 2 * d : 3 * d] = cfg.head_scale
                self.head.weight[FN, 2 * d : 3 * d] = cfg.head_scale
        if cfg.zero_init:
            # "Initialized from the context encoder": with the last layer at zero, a = c exactly.
            nn.init.zeros_(self.mlp[-1].weight)
            nn.init.zeros_(self.mlp[-1].bias)

        # log of the class weights the head was trained with (0 = unweighted). Weighted
        # cross-entropy learns p_w(k|x) ∝ w_k p(k|x); readings subtract log w_k so the
        # probabilities shown to people stay calibrated to the real class mix.
        self.register_buffer("class_log_weights", torch.zeros(len(CLASSES)))

    def set_class_weights(self, weights: np.ndarray | None) -> None:
        """Record the cross-entropy class weights used in training (None = unweighted)."""
        import numpy as np

        logw = np.zeros(len(CLASSES), dtype=np.float32)
        if weights is not None:
            w = np.asarray(weights, dtype=np.float64)
            logw[w > 0] = np.log(w[w > 0])
        self.class_log_weights.copy_(torch.from_numpy(logw))

    def class_weights(self) -> torch.Tensor:
        """The weights recorded by :meth:`set_class_weights` (ones if unweighted)."""
        return self.class_log_weights.exp()

    def calibrated_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits with the training class weighting undone, for readings."""
        return logits - self.class_log_weights

    @staticmethod
    def _align(q: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Broadcast q (B, d) against c (B, K, d); both come back with c's shape."""
        if q.shape[-1] != c.shape[-1]:
            raise ValueError(f"q and c must share the last dimension, got {tuple(q.shape)} and {tuple(c.shape)}")
        if q.dim() == c.dim() - 1:
            q = q.unsqueeze(-2)  # (B, 1, d)
        q, c = torch.broadcast_tensors(q, c)  # (B, K, d) or (B, d)
        return q, c

    def correct(self, q: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """The corrected document embedding ``a`` (shape of c)."""
        q, c = self._align(q, c)
        z = torch.cat([q - c, q * c, q + c], dim=-1)  # (..., 3d)
        delta = self.mlp(z)  # (..., d)
        return c + delta if self.cfg.residual else delta

    def classify(self, q: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Class logits from the query and the corrected document only (never the label)."""
        q, a = self._align(q, a)
        feats = torch.cat([q, a, q * a, (q - a).abs()], dim=-1)  # (..., 4d)
        return self.head(feats)  # (..., 4)

    def forward(self, q: torch.Tensor, c: torch.Tensor) -> AdapterOutput:
        a = self.correct(q, c)
        return AdapterOutput(a, self.classify(q, a))


def class_probs(logits: torch.Tensor) -> torch.Tensor:
    """Joint class distribution over ``CLASSES``: softmax of the logits, (..., 4)."""
    return torch.softmax(logits, dim=-1)


def p_fn_given_neg(probs: torch.Tensor) -> torch.Tensor:
    """False-negative probability of a labeled negative: P(FN) / (P(FN) + P(TN)), (...)."""
    return probs[..., FN] / (probs[..., FN] + probs[..., TN]).clamp_min(EPS)


def p_fp_given_pos(probs: torch.Tensor) -> torch.Tensor:
    """Wrong-positive probability of a labeled positive: P(FP) / (P(TP) + P(FP)), (...)."""
    return probs[..., FP] / (probs[..., TP] + probs[..., FP]).clamp_min(EPS)


def p_rel(probs: torch.Tensor) -> torch.Tensor:
    """The adapter's relevance estimate P(TP) + P(FN), whatever the label, (...)."""
    return probs[..., TP] + probs[..., FN]


def qa_score(q: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """cos(q, a): relevance after correction, the rerank signal, (...)."""
    q, a = RRRAAdapter._align(q, a)
    return F.cosine_similarity(q, a, dim=-1, eps=EPS)


def ca_score(a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """cos(a, c): how little the adapter moved the document (low = suspected false negative), (...)."""
    return F.cosine_similarity(a, c, dim=-1, eps=EPS)
