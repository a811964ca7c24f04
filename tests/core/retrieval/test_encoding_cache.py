from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import rrra_core.retrieval.encoding as encoding
from rrra_core.retrieval.encoder import BiEncoder
from rrra_core.retrieval.encoding import EncodeStats, cached_encode


@pytest.fixture()
def counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = encoding.encode_texts

    def spy(encoder, texts, *args, **kwargs):  # noqa: ANN001
        calls.append(len(texts))
        return real(encoder, texts, *args, **kwargs)

    monkeypatch.setattr(encoding, "encode_texts", spy)
    return calls


def test_same_corpus_is_never_encoded_twice(tiny_model_dir: Path, tmp_path: Path, counted: list[int]) -> None:
    enc = BiEncoder.from_pretrained(tiny_model_dir)
    ids, texts = ["d1", "d2", "d3"], ["alpha", "beta gamma", "delta"]
    first = cached_encode(enc, ids, texts, "doc", 32, progress=False, cache_root=tmp_path)
    stats = EncodeStats()
    again = cached_encode(
        BiEncoder.from_pretrained(tiny_model_dir),
        ids,
        texts,
        "doc",
        32,
        progress=False,
        cache_root=tmp_path,
        stats=stats,
    )
    assert counted == [3]
    assert stats.cached
    assert np.array_equal(first, again)


@pytest.mark.parametrize(
    "change",
    [
        {"max_length": 16},
        {"texts": ["alpha", "beta gamma", "DELTA"]},
        {"ids": ["d1", "d2", "d4"]},
        {"role": "query"},
    ],
)
def test_cache_key_covers_length_texts_ids_and_role(
    tiny_model_dir: Path, tmp_path: Path, counted: list[int], change: dict
) -> None:
    enc = BiEncoder.from_pretrained(tiny_model_dir)
    base = {"ids": ["d1", "d2", "d3"], "texts": ["alpha", "beta gamma", "delta"], "role": "doc", "max_length": 32}
    cached_encode(
        enc, base["ids"], base["texts"], base["role"], base["max_length"], progress=False, cache_root=tmp_path
    )
    new = {**base, **change}
    cached_encode(enc, new["ids"], new["texts"], new["role"], new["max_length"], progress=False, cache_root=tmp_path)
    assert len(counted) == 2


def test_model_in_training_is_not_cached(tiny_model_dir: Path, tmp_path: Path, counted: list[int]) -> None:
    enc = BiEncoder.from_pretrained(tiny_model_dir)
    enc.train()
    cache = tmp_path / "cache"
    for _ in range(2):
        cached_encode(enc, ["a"], ["x"], "doc", 16, progress=False, cache_root=cache)
    assert counted == [1, 1]
    assert not cache.exists()


def test_changed_weights_on_disk_miss_the_cache(tiny_model_dir: Path, tmp_path: Path, counted: list[int]) -> None:
    import torch

    enc = BiEncoder.from_pretrained(tiny_model_dir)
    cached_encode(enc, ["a"], ["x"], "doc", 16, progress=False, cache_root=tmp_path)
    with torch.no_grad():
        next(enc.query_model.parameters()).add_(1.0)
    enc.save(tiny_model_dir)
    cached_encode(
        BiEncoder.from_pretrained(tiny_model_dir), ["a"], ["x"], "doc", 16, progress=False, cache_root=tmp_path
    )
    assert counted == [1, 1]


def test_encoder_config_precision_reaches_corpus_encoding(tiny_model_dir: Path, counted: list[int]) -> None:
    """``EncoderConfig.precision`` (``--precision``) picks the corpus encoding's precision and its own cache entry."""
    from rrra_core.data.beir import Doc
    from rrra_core.retrieval.dense import encode_corpus
    from rrra_core.retrieval.encoder import EncoderConfig
    from rrra_core.runtime.errors import ConfigError

    corpus = {f"d{i}": Doc(title="", text=t) for i, t in enumerate(["alpha beta", "gamma", "delta epsilon zeta"])}
    enc = BiEncoder.from_pretrained(tiny_model_dir)
    fp32 = encode_corpus(
        enc, corpus, EncoderConfig(model=str(tiny_model_dir), doc_max_length=16), progress=False
    ).vectors
    bf16 = encode_corpus(
        enc, corpus, EncoderConfig(model=str(tiny_model_dir), doc_max_length=16, precision="bf16"), progress=False
    ).vectors
    again = encode_corpus(
        enc, corpus, EncoderConfig(model=str(tiny_model_dir), doc_max_length=16, precision="bf16"), progress=False
    )
    assert counted == [3, 3]  # fp32 and bf16 each encoded once; the second bf16 call is a cache hit
    assert again.stats.cached and np.array_equal(again.vectors, bf16)
    assert not np.array_equal(fp32, bf16)  # really ran in bf16
    assert (np.sum(fp32 * bf16, axis=1) > 1 - 1e-2).all()
    with pytest.raises(ConfigError, match="unknown precision 'fp8'"):
        EncoderConfig(precision="fp8")
