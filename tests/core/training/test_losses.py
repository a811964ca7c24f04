from __future__ import annotations

import torch
import torch.nn.functional as F

from rrra_core.training.losses import info_nce, negative_gradient_magnitudes


def _unit(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1)


def test_info_nce_matches_cross_entropy_over_scaled_scores() -> None:
    torch.manual_seed(0)
    q, d = _unit(torch.randn(4, 8)), _unit(torch.randn(6, 8))
    targets = torch.tensor([0, 1, 2, 3])
    expected = F.cross_entropy(q @ d.T / 0.05, targets)
    assert torch.allclose(info_nce(q, d, targets, 0.05), expected)


def test_masked_documents_are_not_negatives() -> None:
    torch.manual_seed(1)
    q, d = _unit(torch.randn(2, 8)), _unit(torch.randn(3, 8))
    targets = torch.tensor([0, 1])
    mask = torch.tensor([[False, False, True], [False, False, False]])  # doc 2 is another positive of query 0
    loss = info_nce(q, d, targets, 0.1, mask)
    s = q @ d.T / 0.1
    row0 = F.cross_entropy(s[0:1, :2], targets[0:1])
    row1 = F.cross_entropy(s[1:2], targets[1:2])
    assert torch.allclose(loss, (row0 + row1) / 2)
    # The target itself is never masked, even if flagged.
    assert torch.isfinite(info_nce(q, d, targets, 0.1, torch.ones(2, 3, dtype=torch.bool)))


def test_gradient_magnitude_is_p_over_tau() -> None:
    torch.manual_seed(2)
    scores = torch.randn(1, 5, requires_grad=True)
    tau = 0.05
    loss = F.cross_entropy(scores / tau, torch.tensor([0]))
    loss.backward()
    mags = negative_gradient_magnitudes(scores.detach(), torch.tensor([0]), tau)
    assert torch.allclose(mags[0, 1:], scores.grad[0, 1:], atol=1e-5)
    assert mags[0, 0] == 0


def test_info_nce_is_computed_in_fp32_under_bf16_autocast() -> None:
    # Cosines 0.003 apart, as a positive and its hardest negative often are: bf16 logits
    # (steps of 0.06 near 1/tau = 20) would round them together.
    g = torch.Generator().manual_seed(0)
    q = F.normalize(torch.randn(8, 64, generator=g), dim=-1)
    d = F.normalize(q + 0.05 * torch.randn(8, 64, generator=g), dim=-1)
    d = torch.cat([d, F.normalize(d + 0.002 * torch.randn(8, 64, generator=g), dim=-1)])
    targets = torch.arange(8)
    exact = info_nce(q, d, targets, 0.05)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = info_nce(q, d, targets, 0.05)
        naive = F.cross_entropy((q @ d.T / 0.05).float(), targets)  # what the loss did before
    assert mixed.dtype == torch.float32
    assert torch.allclose(mixed, exact, atol=1e-6)
    assert not torch.allclose(naive, exact, atol=1e-3)  # the rounding is real, so the test can tell
