"""The factored serving path gives the adapter's own numbers, for every shape of adapter."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rrra_core.adapter import AdapterConfig, RRRAAdapter, predict_pairs
from rrra_core.adapter.factored import FactoredAdapter

D = 16


def trained_like(cfg: AdapterConfig, seed: int = 0) -> RRRAAdapter:
    """An adapter with every weight random (as after training), and a non-trivial class weighting."""
    torch.manual_seed(seed)
    adapter = RRRAAdapter(cfg)
    with torch.no_grad():
        for p in adapter.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    adapter.set_class_weights(np.array([2.0, 5.0, 3.0, 0.5]))
    return adapter.eval()


def unit(n: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(n, D, generator=torch.Generator().manual_seed(seed)), dim=-1)


@pytest.mark.parametrize(
    "cfg",
    [
        AdapterConfig(dim=D),
        AdapterConfig(dim=D, hidden=7),
        AdapterConfig(dim=D, residual=False),
        AdapterConfig(dim=D, zero_init=False, head_init="random"),
    ],
)
def test_factored_forward_equals_the_plain_forward(cfg: AdapterConfig):
    adapter = trained_like(cfg)
    q, c = unit(1, 1)[0], unit(30, 2)
    with torch.no_grad():
        a_ref, logits_ref = adapter(q.expand(30, D), c)
    fa = FactoredAdapter(adapter)
    a, logits = fa.forward(fa.for_query(q), c)
    assert torch.allclose(a, a_ref, atol=1e-5)
    assert torch.allclose(logits, logits_ref, atol=1e-4)
    # the reading the reranker fuses: the same calibrated P(rel) as the batch path
    ref = predict_pairs(adapter, q[None].numpy(), c.numpy(), q_index=np.zeros(30, dtype=np.int64))["p_rel"]
    got = fa.p_rel(q.numpy(), c.numpy())
    np.testing.assert_allclose(got, ref, atol=1e-5)
    assert np.array_equal(np.argsort(-got, kind="stable")[:5], np.argsort(-ref, kind="stable")[:5])


def test_factors_are_per_query():
    adapter = trained_like(AdapterConfig(dim=D))
    c = unit(4, 3)
    fa = FactoredAdapter(adapter)
    f1, f2 = fa.for_query(unit(1, 4)[0]), fa.for_query(unit(1, 5)[0])
    assert not torch.allclose(fa.forward(f1, c).logits, fa.forward(f2, c).logits)


def test_p_rel_rejects_mismatched_shapes():
    fa = FactoredAdapter(trained_like(AdapterConfig(dim=D)))
    with pytest.raises(ValueError, match=r"candidates must be \(k, 16\)"):
        fa.p_rel(np.zeros(D, dtype=np.float32), np.zeros((3, D + 1), dtype=np.float32))


def test_one_factored_adapter_serves_many_queries():
    adapter = trained_like(AdapterConfig(dim=D, hidden=9))
    fa = FactoredAdapter(adapter)
    c = unit(12, 6)
    for seed in range(7, 10):
        q = unit(1, seed)[0]
        ref = predict_pairs(adapter, q[None].numpy(), c.numpy(), q_index=np.zeros(12, dtype=np.int64))["p_rel"]
        np.testing.assert_allclose(fa.p_rel(q.numpy(), c.numpy()), ref, atol=1e-5)
