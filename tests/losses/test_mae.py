from __future__ import annotations

import pytest
import torch
from lightly.models import utils as lightly_utils

from geofm.errors import ShapeError
from geofm.losses import MAELoss, normalize_patches


def _lightly_style_mae(
    prediction: torch.Tensor, images: torch.Tensor, idx_mask: torch.Tensor, norm_pix: bool
) -> torch.Tensor:
    """SpectralEarth's training step: lightly patchify + masked gather + nn.MSELoss."""
    patches = lightly_utils.patchify(images, 4)
    target = lightly_utils.get_at_index(patches, idx_mask - 1)  # idx_mask counts the CLS token
    if norm_pix:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1e-6).sqrt()
    x_pred = lightly_utils.get_at_index(prediction, idx_mask - 1)
    loss: torch.Tensor = torch.nn.MSELoss()(x_pred, target)
    return loss


@pytest.mark.parametrize("normalize_targets", [False, True])
def test_matches_spectral_earth_lightly_pipeline(normalize_targets: bool) -> None:
    images = torch.randn(2, 5, 16, 16, dtype=torch.float64)
    _, idx_mask = lightly_utils.random_token_mask(size=(2, 17), mask_ratio=0.75)
    prediction = torch.randn(2, 16, 4 * 4 * 5, dtype=torch.float64, requires_grad=True)
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask.scatter_(1, idx_mask - 1, True)
    target = lightly_utils.patchify(images, 4)
    ours = MAELoss(normalize_targets=normalize_targets)(prediction, target, mask)
    grad = torch.autograd.grad(ours, prediction)[0]
    reference = _lightly_style_mae(prediction, images, idx_mask, normalize_targets)
    ref_grad = torch.autograd.grad(reference, prediction)[0]
    torch.testing.assert_close(ours, reference)
    torch.testing.assert_close(grad, ref_grad)


def test_only_masked_patches_count() -> None:
    prediction = torch.zeros(1, 3, 2)
    target = torch.tensor([[[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]])
    mask = torch.tensor([[False, True, False]])
    assert MAELoss()(prediction, target, mask).item() == pytest.approx(4.0)
    assert MAELoss()(prediction, target, mask.float()).item() == pytest.approx(4.0)


def test_a_mask_with_no_masked_patch_raises() -> None:
    prediction, target = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    with pytest.raises(ValueError, match="undefined for this input: it needs at least 1 masked"):
        MAELoss()(prediction, target, torch.zeros(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask of shape \(2, 3\) with none set"):
        MAELoss(normalize_targets=True)(prediction, target, torch.zeros(2, 3))


def test_empty_batch_raises() -> None:
    with pytest.raises(ValueError, match="at least 1 masked patch"):
        MAELoss()(torch.randn(0, 3, 4), torch.randn(0, 3, 4), torch.ones(0, 3))


def test_normalize_patches_needs_two_values_per_patch() -> None:
    with pytest.raises(ShapeError, match=r"at least 2 values per patch .* \(2, 3, 1\)"):
        normalize_patches(torch.randn(2, 3, 1))


def test_rejects_a_non_positive_eps() -> None:
    with pytest.raises(ValueError, match="eps=0.0; expected a finite eps > 0"):
        MAELoss(eps=0.0)


def test_normalize_patches_per_patch_statistics() -> None:
    patches = torch.randn(2, 3, 7, dtype=torch.float64) * 5 + 2
    normed = normalize_patches(patches, eps=0.0)
    torch.testing.assert_close(normed.mean(dim=-1), torch.zeros(2, 3, dtype=torch.float64))
    torch.testing.assert_close(normed.var(dim=-1), torch.ones(2, 3, dtype=torch.float64))


def test_constant_target_patch_stays_finite() -> None:
    prediction = torch.randn(1, 2, 4, requires_grad=True)
    loss = MAELoss(normalize_targets=True)(prediction, torch.ones(1, 2, 4), torch.ones(1, 2))
    loss.backward()
    assert torch.isfinite(loss) and prediction.grad is not None
    assert torch.isfinite(prediction.grad).all()


def test_half_precision_inputs_are_computed_in_float32() -> None:
    prediction, target = torch.randn(2, 4, 8), torch.randn(2, 4, 8)
    mask = torch.ones(2, 4, dtype=torch.bool)
    loss = MAELoss()(prediction.bfloat16(), target.bfloat16(), mask)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(
        loss, MAELoss()(prediction.bfloat16().float(), target.bfloat16().float(), mask)
    )


def test_rejects_mismatched_shapes() -> None:
    with pytest.raises(ShapeError, match="same shape"):
        MAELoss()(torch.randn(2, 4, 8), torch.randn(2, 4, 9), torch.ones(2, 4))
    with pytest.raises(ShapeError, match=r"mask of shape \(N, L\) = \(2, 4\)"):
        MAELoss()(torch.randn(2, 4, 8), torch.randn(2, 4, 8), torch.ones(2, 5))
