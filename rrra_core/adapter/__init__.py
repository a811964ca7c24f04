"""The RRRA adapter: model, losses, training labels, phase-2 fitting, the rerank signal and save/load."""

from __future__ import annotations

from rrra_core.adapter.fit import (
    AdapterFitConfig,
    classification_metrics,
    pair_indices,
    predict_pairs,
    split_queries,
    train_adapter,
)
from rrra_core.adapter.io import adapter_folder, load_adapter, save_adapter
from rrra_core.adapter.labels import (
    SCHEMES,
    SOURCES,
    AdapterPairs,
    LabelConfig,
    apply_human_judgments,
    build_adapter_pairs,
    class_counts,
)
from rrra_core.adapter.losses import adapter_loss, class_weights, norm_loss, segment_alpha
from rrra_core.adapter.model import (
    CLASSES,
    FN,
    FP,
    TN,
    TP,
    AdapterConfig,
    AdapterOutput,
    RRRAAdapter,
    ca_score,
    class_probs,
    p_fn_given_neg,
    p_fp_given_pos,
    p_rel,
    qa_score,
)
from rrra_core.adapter.rerank import RERANK_SIGNALS, adapter_rerank_signal

__all__ = [
    "CLASSES",
    "TP",
    "FN",
    "FP",
    "TN",
    "AdapterConfig",
    "AdapterOutput",
    "RRRAAdapter",
    "class_probs",
    "p_fn_given_neg",
    "p_fp_given_pos",
    "p_rel",
    "qa_score",
    "ca_score",
    "norm_loss",
    "segment_alpha",
    "class_weights",
    "adapter_loss",
    "SCHEMES",
    "SOURCES",
    "LabelConfig",
    "AdapterPairs",
    "build_adapter_pairs",
    "apply_human_judgments",
    "class_counts",
    "AdapterFitConfig",
    "train_adapter",
    "predict_pairs",
    "pair_indices",
    "split_queries",
    "classification_metrics",
    "RERANK_SIGNALS",
    "adapter_rerank_signal",
    "save_adapter",
    "load_adapter",
    "adapter_folder",
]
