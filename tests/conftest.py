"""Shared fixtures: a tiny random BERT (built in code, no download) and an isolated RRRA_HOME.

The tiny model is built once per session and copied into each test that wants
to modify it, so unit tests take milliseconds per encode instead of seconds.
"""

from __future__ import annotations

import os as _os
import shutil
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test writes runs and caches into its own folder, never the checkout."""
    home = tmp_path_factory.mktemp("rrra_home")
    monkeypatch.setenv("RRRA_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def tiny_model_dir_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from rrra_core.retrieval.encoder import BiEncoder, default_model_dir

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    model = BertModel(config)
    # The tokenizer is MiniLM's own vocabulary file, read locally (no download).
    tokenizer = BertTokenizerFast.from_pretrained(str(default_model_dir()), local_files_only=True)
    folder = tmp_path_factory.mktemp("tiny_bert")
    BiEncoder(model, tokenizer).save(folder, max_seq_length=128)
    return folder


@pytest.fixture()
def tiny_model_dir(tiny_model_dir_session: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny model folder."""
    dst = tmp_path / "tiny_model"
    shutil.copytree(tiny_model_dir_session, dst)
    return dst


# Never reach a model hub from tests, even by accident.
_os.environ.setdefault("HF_HUB_OFFLINE", "1")
_os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
