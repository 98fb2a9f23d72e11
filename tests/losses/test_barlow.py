from __future__ import annotations

import pytest
import torch
from lightly.loss import BarlowTwinsLoss as LightlyBarlowTwinsLoss

from geofm.errors import ShapeError
from geofm.losses import BarlowTwinsLoss


def _paper_barlow(z_a: torch.Tensor, z_b: torch.Tensor, lambd: float = 5e-3) -> torch.Tensor:
    """Algorithm 1 of the paper with an explicit double loop over the D x D matrix."""
    n, d = z_a.shape

    def standardize(z: torch.Tensor) -> torch.Tensor:
        mean = z.mean(dim=0)
        var = ((z - mean) ** 2).mean(dim=0)
        return (z - mean) / torch.sqrt(var + 1e-5)

    a, b = standardize(z_a), standardize(z_b)
    loss = torch.zeros((), dtype=z_a.dtype)
    for i in range(d):
        for j in range(d):
            c_ij = (a[:, i] * b[:, j]).sum() / n
            loss = loss + ((1 - c_ij) ** 2 if i == j else lambd * c_ij**2)
    return loss


def _pair(n: int, d: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    z_a = torch.randn(n, d, dtype=dtype)
    z_b = 0.5 * z_a + torch.randn(n, d, dtype=dtype)
    return z_a.requires_grad_(), z_b.requires_grad_()


@pytest.mark.parametrize(("n", "d"), [(6, 12), (12, 6)])
def test_matches_lightly_and_paper_formula(n: int, d: int) -> None:
    z_a, z_b = _pair(n, d)
    ours = BarlowTwinsLoss()(z_a, z_b)
    grads = torch.autograd.grad(ours, (z_a, z_b))
    theirs = LightlyBarlowTwinsLoss(lambda_param=5e-3)(z_a, z_b)
    ref_grads = torch.autograd.grad(theirs, (z_a, z_b))
    torch.testing.assert_close(ours, theirs)
    for g, h in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, h)
    torch.testing.assert_close(ours, _paper_barlow(z_a, z_b))


def test_redundancy_weight_matches_lightly_lambda() -> None:
    z_a, z_b = _pair(6, 10)
    ours = BarlowTwinsLoss(redundancy_weight=0.0051)(z_a, z_b)
    torch.testing.assert_close(ours, LightlyBarlowTwinsLoss(lambda_param=0.0051)(z_a, z_b))


@pytest.mark.parametrize(("n", "d"), [(5, 40), (40, 5), (8, 8)])
def test_gram_and_direct_correlation_agree(n: int, d: int) -> None:
    z_a, z_b = _pair(n, d)
    gram = BarlowTwinsLoss(correlation_method="gram")(z_a, z_b)
    grads_gram = torch.autograd.grad(gram, (z_a, z_b))
    direct = BarlowTwinsLoss(correlation_method="direct")(z_a, z_b)
    grads_direct = torch.autograd.grad(direct, (z_a, z_b))
    torch.testing.assert_close(gram, direct)
    for g, h in zip(grads_gram, grads_direct, strict=True):
        torch.testing.assert_close(g, h)


def test_is_symmetric_in_the_two_views() -> None:
    z_a, z_b = _pair(6, 10)
    torch.testing.assert_close(BarlowTwinsLoss()(z_a, z_b), BarlowTwinsLoss()(z_b, z_a))


def test_identical_views_with_decorrelated_features_give_zero_loss() -> None:
    # QR of centred columns keeps them centred and makes them orthonormal: C is the
    # identity up to the eps of the standardisation, so both terms vanish.
    centred = torch.randn(64, 8, dtype=torch.float64)
    q, _ = torch.linalg.qr(centred - centred.mean(dim=0))
    z = 3.0 * q + 1.0  # any per-feature scale and shift
    assert BarlowTwinsLoss(eps=1e-12)(z, z).item() == pytest.approx(0.0, abs=1e-9)
    # The same features in another order correlate off the diagonal: D * (1 + ...) > 0.
    assert BarlowTwinsLoss(eps=1e-12)(z, z.flip(1)).item() > 1.0


def test_constant_embeddings_give_finite_loss_and_gradients() -> None:
    z_a = torch.ones(4, 8, requires_grad=True)
    z_b = torch.ones(4, 8, requires_grad=True)
    loss = BarlowTwinsLoss()(z_a, z_b)
    loss.backward()
    torch.testing.assert_close(loss, torch.tensor(8.0))  # C = 0: sum_i (1 - 0)^2
    assert z_a.grad is not None and torch.isfinite(z_a.grad).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_are_computed_in_float32(dtype: torch.dtype) -> None:
    z_a, z_b = (z.detach().to(dtype).requires_grad_() for z in _pair(6, 40, torch.float32))
    loss = BarlowTwinsLoss()(z_a, z_b)
    loss.backward()
    assert loss.dtype == torch.float32
    reference = BarlowTwinsLoss()(z_a.detach().float(), z_b.detach().float())
    torch.testing.assert_close(loss, reference)


def test_batch_of_one_raises() -> None:
    with pytest.raises(ShapeError, match="undefined for this input: it needs at least 2 samples"):
        BarlowTwinsLoss()(torch.randn(1, 8), torch.randn(1, 8))


def test_rejects_bad_inputs_and_arguments() -> None:
    with pytest.raises(ShapeError, match="same shape"):
        BarlowTwinsLoss()(torch.randn(4, 8), torch.randn(5, 8))
    with pytest.raises(ShapeError, match=r"z_b of shape \(N, D\)"):
        BarlowTwinsLoss()(torch.randn(4, 8), torch.randn(4, 8, 1))
    with pytest.raises(ValueError, match="eps=-1.0; expected a finite eps > 0"):
        BarlowTwinsLoss(eps=-1.0)
    with pytest.raises(ValueError, match="correlation_method='slow'"):
        BarlowTwinsLoss(correlation_method="slow")  # type: ignore[arg-type]


@pytest.mark.parametrize("method", ["gram", "direct"])
def test_gradients_pass_gradcheck(method: str) -> None:
    z_a, z_b = _pair(4, 7)
    loss_fn = BarlowTwinsLoss(correlation_method=method)  # type: ignore[arg-type]
    assert torch.autograd.gradcheck(loss_fn, (z_a, z_b))


def test_gram_path_second_derivatives_pass_gradgradcheck() -> None:
    z_a, z_b = _pair(3, 5)
    assert torch.autograd.gradgradcheck(BarlowTwinsLoss(correlation_method="gram"), (z_a, z_b))
