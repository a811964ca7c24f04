"""A phase-2 run holds its rerank's dev queries out of the adapter's training and records the choice."""

from __future__ import annotations

from pathlib import Path

from rrra_core.adapter import AdapterFitConfig, LabelConfig
from rrra_core.data.beir import load_dataset
from rrra_core.retrieval.encoder import EncoderConfig
from rrra_core.retrieval.rerank_choice import RerankChoiceConfig, dev_queries, read_rerank_choice
from rrra_core.runtime.reports import read_metrics
from rrra_core.runtime.runs import create_run
from rrra_core.training.phase2 import Phase2Config, phase2_config_dict, train_phase2


def _run(model: Path, rerank: RerankChoiceConfig) -> dict:
    enc = EncoderConfig(model=str(model), query_max_length=16, doc_max_length=32, encode_batch_size=32)
    cfg = Phase2Config(
        dataset="adi",
        train_split="test",
        labels=LabelConfig(top_k=30, fp_rank_range=(30, 60)),
        fit=AdapterFitConfig(epochs=1, batch_size=64),
        rerank=rerank,
    )
    run = create_run("phase2", phase2_config_dict(enc, cfg))
    train_phase2(run, enc, cfg)
    return read_metrics(run, "phase2")


def test_phase2_chooses_its_rerank_on_queries_the_adapter_never_trained_on(tiny_model_dir: Path) -> None:
    qids = list(load_dataset("adi", "test").qrels)
    _, dev = dev_queries(qids, RerankChoiceConfig())
    metrics = _run(tiny_model_dir, RerankChoiceConfig())

    choice = read_rerank_choice(metrics)
    assert choice is not None and choice.rule.startswith("holm") and choice.dev_queries == sorted(dev)
    trained = metrics["train"]["queries"]
    assert trained["train"] + trained["val"] == len(qids) - len(dev)  # the fit (and its epoch choice) never saw dev
    assert set(choice.dev) == {"off", "p_rel:1", "p_rel:0.5", "p_rel:0.25", "qa:1", "qa:0.5", "qa:2"}
    # A random tiny encoder earns no significant gain on 7 queries: the rule keeps the retriever's order.
    assert not choice.on and choice.lambda_rr == 0.0 and choice.seconds is not None


def test_phase2_without_the_choice_trains_on_every_query(tiny_model_dir: Path) -> None:
    metrics = _run(tiny_model_dir, RerankChoiceConfig(enabled=False))
    assert metrics["rerank_choice"] is None
    trained = metrics["train"]["queries"]
    assert trained["train"] + trained["val"] == len(load_dataset("adi", "test").qrels)
