from __future__ import annotations

import pytest
import torch

import geofm.heads
from geofm.errors import ShapeError
from geofm.losses import RelativeMSELoss, relative_mse_loss


def _reference_relative_mse(pred: torch.Tensor, target: torch.Tensor) -> float:
    total = 0.0
    for j in range(target.shape[1]):
        mse_model = sum((pred[i, j] - target[i, j]) ** 2 for i in range(len(pred))) / len(pred)
        mse_base = sum(target[i, j] ** 2 for i in range(len(pred))) / len(pred)
        total += float(mse_model / mse_base)
    return total / target.shape[1]


def test_relative_mse_matches_formula() -> None:
    pred, target = torch.randn(6, 4), torch.randn(6, 4)
    assert relative_mse_loss(pred, target).item() == pytest.approx(
        _reference_relative_mse(pred, target), rel=1e-5
    )


def test_relative_mse_zero_prediction_scores_one() -> None:
    target = torch.randn(5, 3)
    assert relative_mse_loss(torch.zeros(5, 3), target).item() == pytest.approx(1.0)


def test_relative_mse_with_baseline() -> None:
    target = torch.randn(5, 2) + torch.tensor([3.0, -1.0])
    baseline = target.mean(dim=0)
    loss = RelativeMSELoss(baseline=baseline)
    assert loss(baseline.expand(5, 2), target).item() == pytest.approx(1.0)
    assert loss(target, target).item() == pytest.approx(0.0)


def test_relative_mse_accepts_1d() -> None:
    y = torch.tensor([1.0, -1.0])
    assert relative_mse_loss(torch.zeros(2), y).item() == pytest.approx(1.0)


def test_relative_mse_rejects_shape_mismatch() -> None:
    with pytest.raises(ShapeError, match=r"\(3, 2\) and \(3, 4\)"):
        relative_mse_loss(torch.zeros(3, 2), torch.zeros(3, 4))


def test_relative_mse_rejects_3d_inputs() -> None:
    with pytest.raises(ShapeError, match=r"\(2, 3, 4\) and \(2, 3, 4\)"):
        relative_mse_loss(torch.zeros(2, 3, 4), torch.ones(2, 3, 4))


def test_relative_mse_of_an_empty_batch_raises() -> None:
    with pytest.raises(ShapeError, match="undefined for this input: it needs at least 1 sample"):
        relative_mse_loss(torch.zeros(0, 3), torch.zeros(0, 3))


def test_relative_mse_has_one_home() -> None:
    assert not hasattr(geofm.heads, "RelativeMSELoss")
    assert not hasattr(geofm.heads, "relative_mse_loss")
