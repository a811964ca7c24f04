from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rrra_core.adapter import adapter_loss, class_weights, norm_loss, segment_alpha


def brute_force_norm_loss(a: torch.Tensor, q: torch.Tensor, c: torch.Tensor, steps: int = 5001) -> torch.Tensor:
    alphas = torch.linspace(0, 1, steps, dtype=torch.float64)[:, None, None]  # (S, 1, 1)
    points = alphas * q + (1 - alphas) * c  # (S, N, d)
    return ((a - points) ** 2).sum(-1).min(dim=0).values.mean()


def test_closed_form_matches_grid_search():
    g = torch.Generator().manual_seed(0)
    q, c = torch.randn(64, 16, generator=g, dtype=torch.float64), torch.randn(64, 16, generator=g, dtype=torch.float64)
    a = torch.randn(64, 16, generator=g, dtype=torch.float64)
    a[:16] = c[:16] + 1.5 * (q[:16] - c[:16])  # beyond q: alpha* clamps to 1
    a[16:32] = c[16:32] - 0.5 * (q[16:32] - c[16:32])  # behind c: alpha* clamps to 0
    assert norm_loss(a, q, c).item() == pytest.approx(brute_force_norm_loss(a, q, c).item(), rel=1e-5)
    assert torch.all(segment_alpha(a[:16], q[:16], c[:16]) == 1.0)
    assert torch.all(segment_alpha(a[16:32], q[16:32], c[16:32]) == 0.0)


def test_points_on_the_segment_cost_nothing_and_q_equal_c_is_safe():
    g = torch.Generator().manual_seed(1)
    q, c = F.normalize(torch.randn(10, 8, generator=g), dim=-1), F.normalize(torch.randn(10, 8, generator=g), dim=-1)
    alpha = torch.rand(10, 1, generator=g)
    assert norm_loss(alpha * q + (1 - alpha) * c, q, c).item() == pytest.approx(0.0, abs=1e-10)
    a = torch.randn(10, 8, generator=g)
    loss = norm_loss(a, c, c)  # one-point segment: the distance to c
    assert torch.isfinite(loss) and loss.item() == pytest.approx(((a - c) ** 2).sum(-1).mean().item(), rel=1e-6)


def test_norm_loss_broadcasts_query_over_candidates():
    g = torch.Generator().manual_seed(2)
    q, c, a = torch.randn(3, 8, generator=g), torch.randn(3, 5, 8, generator=g), torch.randn(3, 5, 8, generator=g)
    flat = norm_loss(a.reshape(15, 8), q.repeat_interleave(5, dim=0), c.reshape(15, 8))
    assert norm_loss(a, q, c).item() == pytest.approx(flat.item(), rel=1e-6)


def test_class_weights_are_inverse_frequency_and_clipped():
    w = class_weights([100, 50, 25, 25])
    assert np.allclose(w * [100, 50, 25, 25], w[0] * 100)  # w_k proportional to 1 / n_k
    assert np.dot(w, [100, 50, 25, 25]) / 200 == pytest.approx(1.0)  # weighted mean 1 before clipping bites
    assert np.allclose(class_weights([10, 10, 10, 10]), 1.0)
    clipped = class_weights([10_000, 10, 1, 100], clip=10.0)
    assert clipped.max() == pytest.approx(10.0) and clipped.min() >= 0.1 - 1e-7
    assert clipped[1] == pytest.approx(10.0) and clipped[2] == pytest.approx(10.0)  # rare classes hit the cap
    assert class_weights([90, 0, 10, 0])[[1, 3]].tolist() == [0.0, 0.0]  # absent classes weigh nothing


def test_adapter_loss_switches():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(12, 4, generator=g, requires_grad=True)
    targets = torch.tensor([0, 1, 2, 3] * 3)
    q, c = torch.randn(12, 8, generator=g), torch.randn(12, 8, generator=g)
    a = c + 0.3 * torch.randn(12, 8, generator=g)
    total, parts = adapter_loss(logits, targets, a, q, c, weights=None, lambda_norm=2.0)
    assert parts["ce"] == pytest.approx(F.cross_entropy(logits, targets).item())
    assert parts["norm"] == pytest.approx(norm_loss(a, q, c).item())
    assert total.item() == pytest.approx(parts["ce"] + 2.0 * parts["norm"], rel=1e-6)
    total0, parts0 = adapter_loss(logits, targets, a, q, c, weights=None, lambda_norm=0.0)
    assert total0.item() == pytest.approx(parts0["ce"]) and parts0["norm"] > 0  # still logged
    w = torch.tensor([1.0, 5.0, 1.0, 0.2])
    _, weighted = adapter_loss(logits, targets, a, q, c, weights=w, lambda_norm=0.0)
    assert weighted["ce"] == pytest.approx(F.cross_entropy(logits, targets, weight=w).item())
    total.backward()
    assert logits.grad is not None
