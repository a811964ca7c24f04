"""The embedded demo: a quick run that gives the app real suspected false negatives to show.

It encodes the demo corpus with the bundled MiniLM (cached), mines each training
query's top-K, trains the adapter (phase 2) on a subsample of the training
questions and scores every candidate. On 2 CPU cores the SQuAD demo takes a few
minutes; later launches find the run folder and skip all of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rrra_core.runtime.config import opt
from rrra_core.runtime.runs import create_run, open_run

__all__ = ["DemoConfig", "demo_run_id", "build_demo_run"]


@dataclass
class DemoConfig:
    """Quick settings for the demo run."""

    dataset: str = opt("squad", "embedded dataset for the demo")
    max_train_queries: int = opt(800, "training questions the adapter learns from")
    top_k: int = opt(100, "candidates scored per question")
    doc_max_length: int = opt(128, "max word pieces per document")
    epochs: int = opt(5, "adapter epochs")
    seed: int = opt(0, "random seed")


def demo_run_id(dataset: str) -> str:
    return f"demo-{dataset}"


def build_demo_run(cfg: DemoConfig) -> dict[str, Any]:
    """Build (or finish) the demo run; returns its metrics."""
    # Imported here, not at the top: the app imports this module to name the demo
    # run, and the app process must never load torch (seconds of start-up on a small CPU).
    from rrra_core.adapter import AdapterFitConfig, LabelConfig
    from rrra_core.retrieval.encoder import EncoderConfig
    from rrra_core.training.phase2 import Phase2Config, phase2_config_dict, train_phase2

    enc = EncoderConfig(model="minilm", query_max_length=48, doc_max_length=cfg.doc_max_length)
    p2 = Phase2Config(
        dataset=cfg.dataset,
        train_split="train",
        max_train_queries=cfg.max_train_queries,
        subsample_seed=cfg.seed,
        labels=LabelConfig(top_k=cfg.top_k, seed=cfg.seed),
        fit=AdapterFitConfig(epochs=cfg.epochs, seed=cfg.seed),
    )
    try:
        run = open_run(demo_run_id(cfg.dataset))
    except Exception:  # noqa: BLE001
        run = create_run("phase2", phase2_config_dict(enc, p2), run_id=demo_run_id(cfg.dataset))
    return train_phase2(run, enc, p2)
