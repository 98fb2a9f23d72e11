from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from lightly.loss import VICRegLoss as LightlyVICRegLoss

from geofm.errors import ShapeError
from geofm.losses import VICRegLoss, covariance_loss, variance_loss


def _paper_vicreg(z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
    """The formula of the paper / reference code, written out term by term."""
    n, d = z_a.shape
    invariance = ((z_a - z_b) ** 2).sum() / (n * d)
    variance = torch.zeros((), dtype=z_a.dtype)
    covariance = torch.zeros((), dtype=z_a.dtype)
    for z in (z_a, z_b):
        centred = z - z.mean(dim=0, keepdim=True)
        cov = centred.T @ centred / (n - 1)
        std = torch.sqrt(torch.diagonal(cov) + 1e-4)
        variance = variance + torch.clamp(1 - std, min=0).mean() / 2
        off_diagonal = cov - torch.diag(torch.diagonal(cov))
        covariance = covariance + (off_diagonal**2).sum() / d
    return 25 * invariance + 25 * variance + 1 * covariance


def _pair(n: int, d: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    z_a = torch.randn(n, d, dtype=dtype)
    z_b = 0.5 * z_a + torch.randn(n, d, dtype=dtype)
    return z_a.requires_grad_(), z_b.requires_grad_()


@pytest.mark.parametrize(("n", "d"), [(6, 32), (32, 6)])
def test_matches_lightly_and_paper_formula(n: int, d: int) -> None:
    z_a, z_b = _pair(n, d)
    ours = VICRegLoss()(z_a, z_b)
    (grad_a, grad_b) = torch.autograd.grad(ours, (z_a, z_b))
    theirs = LightlyVICRegLoss()(z_a, z_b)
    (ref_a, ref_b) = torch.autograd.grad(theirs, (z_a, z_b))
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(grad_a, ref_a)
    torch.testing.assert_close(grad_b, ref_b)
    torch.testing.assert_close(ours, _paper_vicreg(z_a, z_b))


@pytest.mark.parametrize(("n", "d"), [(5, 40), (40, 5), (8, 8)])
def test_gram_and_direct_covariance_agree(n: int, d: int) -> None:
    z_a, z_b = _pair(n, d)
    gram = VICRegLoss(covariance_method="gram")(z_a, z_b)
    grads_gram = torch.autograd.grad(gram, (z_a, z_b))
    direct = VICRegLoss(covariance_method="direct")(z_a, z_b)
    grads_direct = torch.autograd.grad(direct, (z_a, z_b))
    torch.testing.assert_close(gram, direct)
    for g, h in zip(grads_gram, grads_direct, strict=True):
        torch.testing.assert_close(g, h)


def test_gram_is_accurate_in_float32_at_benchmark_shape_ratio() -> None:
    z_a, z_b = _pair(16, 512, dtype=torch.float32)
    ours = VICRegLoss(covariance_method="gram")(z_a, z_b)
    reference = _paper_vicreg(z_a.double(), z_b.double())
    torch.testing.assert_close(ours.double(), reference, rtol=1e-5, atol=0)


def test_terms_are_the_unweighted_components() -> None:
    z_a, z_b = _pair(6, 10)
    loss_fn = VICRegLoss(invariance_weight=2.0, variance_weight=3.0, covariance_weight=5.0)
    terms = loss_fn.terms(z_a, z_b)
    torch.testing.assert_close(terms.invariance, torch.nn.functional.mse_loss(z_a, z_b))
    torch.testing.assert_close(terms.variance, (variance_loss(z_a) + variance_loss(z_b)) / 2)
    torch.testing.assert_close(terms.covariance, covariance_loss(z_a) + covariance_loss(z_b))
    expected = 2 * terms.invariance + 3 * terms.variance + 5 * terms.covariance
    torch.testing.assert_close(loss_fn(z_a, z_b), expected)


def test_is_symmetric_in_the_two_views() -> None:
    z_a, z_b = _pair(6, 10)
    torch.testing.assert_close(VICRegLoss()(z_a, z_b), VICRegLoss()(z_b, z_a))


def test_shape_and_finite_gradients() -> None:
    z_a, z_b = _pair(2, 32, dtype=torch.float32)
    loss = VICRegLoss()(z_a, z_b)
    loss.backward()
    assert loss.shape == ()
    assert z_a.grad is not None and torch.isfinite(z_a.grad).all()
    assert z_b.grad is not None and torch.isfinite(z_b.grad).all()


def test_constant_embeddings_give_finite_loss_and_gradients() -> None:
    z_a = torch.ones(4, 8, requires_grad=True)
    z_b = torch.ones(4, 8, requires_grad=True)
    loss = VICRegLoss()(z_a, z_b)
    loss.backward()
    # variance term: relu(1 - sqrt(0 + 1e-4)) = 0.99 per branch; other terms 0
    torch.testing.assert_close(loss, torch.tensor(25 * 0.99))
    assert z_a.grad is not None and torch.isfinite(z_a.grad).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_are_computed_in_float32(dtype: torch.dtype) -> None:
    z_a, z_b = (z.detach().to(dtype).requires_grad_() for z in _pair(6, 40, torch.float32))
    loss = VICRegLoss()(z_a, z_b)
    loss.backward()
    assert loss.dtype == torch.float32
    assert z_a.grad is not None and z_a.grad.dtype == dtype
    reference = VICRegLoss()(z_a.detach().float(), z_b.detach().float())
    torch.testing.assert_close(loss, reference)


def test_autocast_does_not_lower_precision() -> None:
    z_a, z_b = (z.detach().float() for z in _pair(6, 40))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = VICRegLoss()(z_a, z_b)
    torch.testing.assert_close(loss, VICRegLoss()(z_a, z_b))


def test_batch_of_one_raises() -> None:
    with pytest.raises(ShapeError, match="undefined for this input: it needs at least 2 samples"):
        VICRegLoss()(torch.randn(1, 8), torch.randn(1, 8))


def test_variance_and_covariance_terms_match_the_written_out_formula() -> None:
    z = torch.randn(7, 4, dtype=torch.float64) * torch.tensor([0.3, 2.0, 0.8, 1.5])
    z[:, 1] += 0.7 * z[:, 0]  # correlated features: a non-zero covariance term
    centred = z - z.mean(dim=0)
    cov = centred.T @ centred / 6
    std = torch.sqrt(torch.diagonal(cov) + 1e-4)
    torch.testing.assert_close(variance_loss(z), torch.clamp(1 - std, min=0).mean())
    off = cov - torch.diag(torch.diagonal(cov))
    for method in ("auto", "gram", "direct"):
        torch.testing.assert_close(covariance_loss(z, method=method), (off**2).sum() / 4)


@pytest.mark.parametrize("term", [variance_loss, covariance_loss])
def test_single_branch_terms_reject_one_sample_and_non_2d(
    term: Callable[..., torch.Tensor],
) -> None:
    with pytest.raises(ShapeError, match="at least 2 samples"):
        term(torch.randn(1, 5))
    with pytest.raises(ShapeError, match=r"shape \(N, D\), got shape \(3, 2, 5\)"):
        term(torch.randn(3, 2, 5))


def test_rejects_mismatched_or_non_2d_inputs() -> None:
    with pytest.raises(ShapeError, match="same shape"):
        VICRegLoss()(torch.randn(4, 8), torch.randn(4, 9))
    with pytest.raises(ShapeError, match=r"shape \(N, D\)"):
        VICRegLoss()(torch.randn(4, 2, 8), torch.randn(4, 2, 8))


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="eps=0.0; expected a finite eps > 0"):
        VICRegLoss(eps=0.0)
    with pytest.raises(ValueError, match="method='fast'"):
        covariance_loss(torch.randn(3, 2), method="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="covariance_method='fast'"):
        VICRegLoss(covariance_method="fast")  # type: ignore[arg-type]


@pytest.mark.parametrize("method", ["gram", "direct"])
def test_gradients_pass_gradcheck(method: str) -> None:
    z_a, z_b = _pair(4, 7)
    loss_fn = VICRegLoss(covariance_method=method)  # type: ignore[arg-type]
    assert torch.autograd.gradcheck(loss_fn, (z_a, z_b))


def test_gram_path_second_derivatives_pass_gradgradcheck() -> None:
    z_a, z_b = _pair(3, 5)
    assert torch.autograd.gradgradcheck(VICRegLoss(covariance_method="gram"), (z_a, z_b))
