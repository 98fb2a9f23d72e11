from __future__ import annotations

import pytest
import torch
from torch import nn

from geofm.errors import ShapeError
from geofm.heads import RegressionHead, RelativeMSELoss, relative_mse_loss

from ._helpers import assert_all_params_get_finite_grads


def _reference_relative_mse(pred: torch.Tensor, target: torch.Tensor) -> float:
    total = 0.0
    for j in range(target.shape[1]):
        mse_model = sum((pred[i, j] - target[i, j]) ** 2 for i in range(len(pred))) / len(pred)
        mse_base = sum(target[i, j] ** 2 for i in range(len(pred))) / len(pred)
        total += float(mse_model / mse_base)
    return total / target.shape[1]


def test_linear_head_shape() -> None:
    head = RegressionHead(8, 1)
    assert isinstance(head.layers[0], nn.Linear)
    assert head(torch.randn(3, 8)).shape == (3, 1)


def test_spectral_earth_head_layout() -> None:
    head = RegressionHead.spectral_earth(16)
    kinds = [type(m).__name__ for m in head.layers]
    assert kinds == [
        "BatchNorm1d",
        "Linear",
        "ReLU",
        "Dropout",
        "Linear",
        "ReLU",
        "Dropout",
        "Linear",
    ]
    assert [m.p for m in head.layers if isinstance(m, nn.Dropout)] == [0.2, 0.2]
    out = head(torch.randn(4, 16))
    assert out.shape == (4, 4)
    assert_all_params_get_finite_grads(head, out)


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


def test_regression_head_rejects_wrong_width() -> None:
    with pytest.raises(ShapeError, match=r"\(N, 8\) embeddings"):
        RegressionHead(8, 1)(torch.randn(2, 7))
