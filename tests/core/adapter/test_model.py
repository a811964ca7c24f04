from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from rrra_core.adapter import (
    CLASSES,
    AdapterConfig,
    RRRAAdapter,
    ca_score,
    class_probs,
    load_adapter,
    norm_loss,
    p_fn_given_neg,
    p_fp_given_pos,
    p_rel,
    qa_score,
    save_adapter,
)
from rrra_core.runtime.errors import ConfigError, DataError

D = 8


def unit(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, D, generator=g), dim=-1)


def test_zero_init_starts_at_identity_with_zero_norm_loss():
    torch.manual_seed(0)
    adapter = RRRAAdapter(AdapterConfig(dim=D))
    q, c = unit(5, seed=1), unit(5, seed=2)
    a, logits = adapter(q, c)
    assert torch.equal(a, c)
    assert logits.shape == (5, len(CLASSES))
    assert norm_loss(a, q, c).item() == 0.0
    assert torch.allclose(ca_score(a, c), torch.ones(5))


def test_ablations_move_a_away_from_c():
    torch.manual_seed(0)
    q, c = unit(5, seed=1), unit(5, seed=2)
    no_residual = RRRAAdapter(AdapterConfig(dim=D, residual=False))
    assert not torch.allclose(no_residual(q, c).a, c)  # a = MLP(z) = 0 with zero init, not c
    random_last = RRRAAdapter(AdapterConfig(dim=D, zero_init=False))
    assert not torch.allclose(random_last(q, c).a, c)


def test_query_broadcasts_against_k_candidates():
    torch.manual_seed(0)
    adapter = RRRAAdapter(AdapterConfig(dim=D, hidden=4, zero_init=False))
    q = unit(3, seed=1)  # (B, d)
    c = unit(3, 4, seed=2)  # (B, K, d)
    a, logits = adapter(q, c)
    assert a.shape == (3, 4, D) and logits.shape == (3, 4, 4)
    # Same as scoring each (query, candidate) pair on its own.
    flat_a, flat_logits = adapter(q.repeat_interleave(4, dim=0), c.reshape(12, D))
    assert torch.allclose(a.reshape(12, D), flat_a, atol=1e-6)
    assert torch.allclose(logits.reshape(12, 4), flat_logits, atol=1e-6)
    assert qa_score(q, a).shape == (3, 4)


def test_readings_are_proper_conditionals():
    logits = torch.randn(50, 4, generator=torch.Generator().manual_seed(3)) * 5
    probs = class_probs(logits)
    assert torch.allclose(probs.sum(-1), torch.ones(50))
    p_tn_given_neg = probs[:, 3] / (probs[:, 1] + probs[:, 3])
    assert torch.allclose(p_fn_given_neg(probs) + p_tn_given_neg, torch.ones(50), atol=1e-6)
    p_tp_given_pos = probs[:, 0] / (probs[:, 0] + probs[:, 2])
    assert torch.allclose(p_fp_given_pos(probs) + p_tp_given_pos, torch.ones(50), atol=1e-6)
    assert torch.allclose(p_rel(probs), probs[:, 0] + probs[:, 1])
    # A degenerate distribution (no mass on FN or TN) gives 0, not NaN.
    assert p_fn_given_neg(torch.tensor([[1.0, 0.0, 0.0, 0.0]])).item() == 0.0


def test_qa_and_ca_are_cosines():
    q, a = unit(4, seed=1), unit(4, seed=2) * 3.0
    assert torch.allclose(qa_score(q, a), (q * a).sum(-1) / 3.0, atol=1e-6)
    assert torch.allclose(ca_score(a, a * 0.5), torch.ones(4), atol=1e-6)


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError):
        AdapterConfig(dim=D, head_features="qc")
    with pytest.raises(ConfigError):
        AdapterConfig(dim=0)


def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    cfg = AdapterConfig(dim=D, hidden=6, zero_init=False, residual=False)
    adapter = RRRAAdapter(cfg).eval()
    save_adapter(adapter, cfg, tmp_path / "adapter")
    loaded, loaded_cfg = load_adapter(tmp_path / "adapter")
    assert loaded_cfg == cfg and not loaded.training
    q, c = unit(7, seed=1), unit(7, seed=2)
    a1, l1 = adapter(q, c)
    a2, l2 = loaded(q, c)
    assert torch.equal(a1, a2) and torch.equal(l1, l2)


def test_load_errors_are_one_line_user_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_adapter(tmp_path / "nope")
    folder = tmp_path / "adapter"
    save_adapter(RRRAAdapter(AdapterConfig(dim=D)), AdapterConfig(dim=D), folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(json.dumps({**config, "dim": 16}))
    with pytest.raises(DataError, match="do not match"):
        load_adapter(folder)
    (folder / "adapter.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(DataError, match="safetensors"):
        load_adapter(folder)
    (folder / "adapter.safetensors").unlink()
    with pytest.raises(DataError, match="not found"):
        load_adapter(folder)
