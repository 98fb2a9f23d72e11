from __future__ import annotations

import pytest
import torch
from torch import nn

from geofm.errors import ShapeError
from geofm.heads import RegressionHead

from ._helpers import assert_all_params_get_finite_grads


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


def test_regression_head_rejects_wrong_width() -> None:
    with pytest.raises(ShapeError, match=r"\(N, 8\) embeddings"):
        RegressionHead(8, 1)(torch.randn(2, 7))
