"""The benchmark's full RRRA reranks by the per-run rule, on dev queries that no phase trained on (issue 29)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rrra_core.retrieval.rerank_choice import RerankChoiceConfig
from rrra_core.workflows.benchmark import BenchmarkConfig, run_seed

FULL = "RRRA (resampling + reranking)"


@pytest.fixture(autouse=True)
def one_thread():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _cfg(model: Path, **changes) -> BenchmarkConfig:
    base = dict(
        dataset="adi",
        train_split="test",
        test_split="test",
        seeds=(0,),
        query_max_length=16,
        doc_max_length=32,
        batch_size=16,
        top_k=20,
        p2_epochs=1,
        samplers=("rrra",),
        variants=("full",),
        model=str(model),
    )
    return BenchmarkConfig(**{**base, **changes})


def test_full_rrra_reranks_as_its_dev_split_chooses(tiny_model_dir: Path) -> None:
    seed = run_seed(_cfg(tiny_model_dir), 0, "bench-rc")
    assert seed["dev_queries"] == 7 and seed["train_queries"] == 28  # ADI's 35 queries, 20 % carved before phase 1
    [choice] = seed["rerank_choice"].values()
    assert choice["rule"].startswith("holm") and choice["n_dev"] == 7
    if not choice["on"]:  # off: full RRRA is the resampled encoder's own ranking
        assert seed["methods"][FULL] == seed["methods"]["RRRA resampling only"]

    fixed = run_seed(_cfg(tiny_model_dir, rerank=RerankChoiceConfig(enabled=False)), 0, "bench-fixed")
    assert fixed["dev_queries"] == 0 and fixed["train_queries"] == 35 and "rerank_choice" not in fixed


def test_a_new_default_level_finds_the_benchmark_s_phases_again() -> None:
    # The benchmark's phases carry a disabled choice: its level changes nothing they do, so not their folder's key.
    from rrra_core.retrieval.encoder import EncoderConfig
    from rrra_core.training.phase2 import Phase2Config, phase2_config_dict
    from rrra_core.workflows.benchmark import _without_disabled_choice

    def key(**rerank) -> dict:  # noqa: ANN003
        return _without_disabled_choice(
            phase2_config_dict(EncoderConfig(), Phase2Config(rerank=RerankChoiceConfig(**rerank)))
        )

    assert key(enabled=False, level=0.01) == key(enabled=False, level=0.02)
    assert "rerank" not in key(enabled=False)["phase"]
    assert key(level=0.01) != key(level=0.02)  # a run that chooses keeps its rule in its key
