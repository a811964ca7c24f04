from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rrra_core.retrieval.encoder import BiEncoder, EncoderConfig, mean_pool, resolve_model_dir
from rrra_core.retrieval.encoding import encode_texts
from rrra_core.runtime.errors import ConfigError

TEXTS = ["dense retrieval with hard negatives", "a", "false negatives are relevant documents nobody labeled " * 5]


def test_mean_pool_ignores_padding() -> None:
    tokens = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])  # (1, 3, 2)
    mask = torch.tensor([[1, 1, 0]])
    assert torch.allclose(mean_pool(tokens, mask), torch.tensor([[2.0, 3.0]]))


def test_embeddings_are_unit_length(tiny_model_dir: Path) -> None:
    enc = BiEncoder.from_pretrained(tiny_model_dir)
    emb = encode_texts(enc, TEXTS, "doc", 64, progress=False)
    assert emb.shape == (3, 32)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_length_sorted_batches_keep_input_order(tiny_model_dir: Path) -> None:
    enc = BiEncoder.from_pretrained(tiny_model_dir)
    batched = encode_texts(enc, TEXTS, "doc", 64, batch_size=2, progress=False)
    one_by_one = np.stack([encode_texts(enc, [t], "doc", 64, progress=False)[0] for t in TEXTS])
    assert np.allclose(batched, one_by_one, atol=1e-5)


def test_separate_towers_round_trip(tiny_model_dir: Path, tmp_path: Path) -> None:
    enc = BiEncoder.from_pretrained(tiny_model_dir, shared=False)
    assert not enc.shared
    with torch.no_grad():  # make the towers differ, as training would
        next(enc.doc_model.parameters()).add_(0.5)
    q = encode_texts(enc, TEXTS, "query", 64, progress=False)
    d = encode_texts(enc, TEXTS, "doc", 64, progress=False)
    assert not np.allclose(q, d)
    enc.save(tmp_path / "two")
    back = BiEncoder.from_pretrained(tmp_path / "two")
    assert not back.shared
    assert np.allclose(encode_texts(back, TEXTS, "query", 64, progress=False), q, atol=1e-6)
    assert np.allclose(encode_texts(back, TEXTS, "doc", 64, progress=False), d, atol=1e-6)


def test_saved_model_loads_in_sentence_transformers(tiny_model_dir: Path, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    enc = BiEncoder.from_pretrained(tiny_model_dir)
    enc.save(tmp_path / "saved", max_seq_length=64)
    ours = encode_texts(enc, TEXTS, "doc", 64, progress=False)
    st = SentenceTransformer(str(tmp_path / "saved"), device="cpu")
    theirs = st.encode(TEXTS, normalize_embeddings=False)
    assert np.allclose(ours, theirs, atol=1e-5)


def test_fingerprint_tracks_weights(tiny_model_dir: Path) -> None:
    a = BiEncoder.from_pretrained(tiny_model_dir)
    assert a.fingerprint() == BiEncoder.from_pretrained(tiny_model_dir).fingerprint()
    a.train()  # weights may change from here on: caches must not trust them
    assert a.fingerprint() is None


def test_missing_model_folder_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found") as err:
        resolve_model_dir(tmp_path / "nope")
    assert "\n" not in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="not a Hugging Face"):
        resolve_model_dir(tmp_path / "empty")


def test_bundled_minilm_resolves_offline() -> None:
    folder = resolve_model_dir("minilm")
    assert (folder / "model.safetensors").is_file()
    assert (folder / "config.json").is_file()


def test_encoder_config_rejects_bad_lengths() -> None:
    with pytest.raises(ConfigError):
        EncoderConfig(doc_max_length=0)


def test_loaded_encoder_is_in_eval_mode_and_stays_cacheable(tiny_model_dir: Path, tmp_path: Path) -> None:
    from rrra_core.retrieval.encoding import EncodeStats, cached_encode

    enc = BiEncoder.from_pretrained(tiny_model_dir)
    assert not enc.training and not enc.query_model.training  # no dropout at inference
    cached_encode(enc, ["a"], ["x"], "doc", 16, progress=False, cache_root=tmp_path / "c")
    stats = EncodeStats()
    cached_encode(enc, ["a"], ["x"], "doc", 16, progress=False, cache_root=tmp_path / "c", stats=stats)
    assert stats.cached and enc.fingerprint() is not None
