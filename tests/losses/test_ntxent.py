from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from lightly.loss import NTXentLoss as LightlyNTXentLoss

from geofm.errors import ShapeError
from geofm.losses import NTXentLoss


def _paper_ntxent(z_a: torch.Tensor, z_b: torch.Tensor, tau: float) -> float:
    """SimCLR's l(i, j) averaged over all 2N positive pairs, written as loops."""
    z = F.normalize(torch.cat([z_a, z_b]), dim=1)
    n = z_a.shape[0]
    total = 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        numerator = math.exp(float(z[i] @ z[j]) / tau)
        denominator = sum(math.exp(float(z[i] @ z[k]) / tau) for k in range(2 * n) if k != i)
        total += -math.log(numerator / denominator)
    return total / (2 * n)


@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_matches_lightly_and_paper_formula(temperature: float) -> None:
    z_a = torch.randn(6, 8, dtype=torch.float64, requires_grad=True)
    z_b = torch.randn(6, 8, dtype=torch.float64, requires_grad=True)
    ours = NTXentLoss(temperature=temperature)(z_a, z_b)
    grads = torch.autograd.grad(ours, (z_a, z_b))
    theirs = LightlyNTXentLoss(temperature=temperature)(z_a, z_b)
    ref_grads = torch.autograd.grad(theirs, (z_a, z_b))
    torch.testing.assert_close(ours, theirs)
    for g, h in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, h)
    assert ours.item() == pytest.approx(_paper_ntxent(z_a.detach(), z_b.detach(), temperature))


def test_default_temperature_is_half() -> None:
    z_a, z_b = torch.randn(5, 7, dtype=torch.float64), torch.randn(5, 7, dtype=torch.float64)
    assert NTXentLoss()(z_a, z_b).item() == pytest.approx(_paper_ntxent(z_a, z_b, 0.5))
    assert NTXentLoss()(z_a, z_b).item() != pytest.approx(_paper_ntxent(z_a, z_b, 0.1))


def test_is_symmetric_and_scale_invariant() -> None:
    z_a, z_b = torch.randn(4, 8, dtype=torch.float64), torch.randn(4, 8, dtype=torch.float64)
    loss_fn = NTXentLoss()
    torch.testing.assert_close(loss_fn(z_a, z_b), loss_fn(z_b, z_a))
    torch.testing.assert_close(loss_fn(z_a, z_b), loss_fn(3 * z_a, 0.5 * z_b))


def test_finite_gradients_and_float32_for_half_inputs() -> None:
    z_a = torch.randn(4, 8).bfloat16().requires_grad_()
    loss = NTXentLoss()(z_a, torch.randn(4, 8).bfloat16())
    loss.backward()
    assert loss.dtype == torch.float32
    assert z_a.grad is not None and torch.isfinite(z_a.grad.float()).all()


def test_batch_of_one_has_no_negative_and_raises() -> None:
    z_a = torch.randn(1, 8, requires_grad=True)
    with pytest.raises(ShapeError, match=r"undefined for this input: it needs at least 2 samples"):
        NTXentLoss()(z_a, torch.randn(1, 8))


def test_batch_of_one_per_rank_is_defined_once_gathered(monkeypatch: pytest.MonkeyPatch) -> None:
    # Rank 0 of 2: its one sample's negatives are the other rank's two views.
    z_a, z_b = torch.randn(2, 6, dtype=torch.float64), torch.randn(2, 6, dtype=torch.float64)
    local = F.normalize(torch.cat([z_a[:1], z_b[:1]]), dim=1)
    other = F.normalize(torch.cat([z_a[1:], z_b[1:]]), dim=1)

    def two_rank_gather(both: torch.Tensor) -> torch.Tensor:  # (1, 2D) -> (2, 2D)
        return torch.cat([both, torch.cat([other[:1], other[1:]], dim=1)])

    monkeypatch.setattr("geofm.losses._common.gather", two_rank_gather)
    loss = NTXentLoss(gather_distributed=True)(z_a[:1], z_b[:1])
    # Rows 0 (a of sample 0) and 2 (b of sample 0) of the single-process loss on both samples.
    z = torch.cat([local[:1], other[:1], local[1:], other[1:]])  # a0, a1, b0, b1
    expected = 0.0
    for i, j in ((0, 2), (2, 0)):
        logits = [float(z[i] @ z[k]) / 0.5 for k in range(4) if k != i]
        positive = float(z[i] @ z[j]) / 0.5
        expected -= positive - math.log(sum(math.exp(x) for x in logits))
    assert loss.item() == pytest.approx(expected / 2, rel=1e-10)


def test_rejects_a_non_positive_temperature() -> None:
    with pytest.raises(ValueError, match="temperature=-0.5; expected a finite temperature > 0"):
        NTXentLoss(temperature=-0.5)
    with pytest.raises(ValueError, match="temperature=inf"):
        NTXentLoss(temperature=float("inf"))


def test_rejects_views_of_different_shapes() -> None:
    with pytest.raises(ShapeError, match="same shape"):
        NTXentLoss()(torch.randn(4, 8), torch.randn(4, 7))
