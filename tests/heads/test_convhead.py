from __future__ import annotations

import pytest
import torch
from torch import nn

from geofm.errors import ShapeError
from geofm.heads import ConvHead, FCNHead

from ._helpers import assert_all_params_get_finite_grads


def test_conv_head_spectral_earth_layout_for_patch4() -> None:
    head = ConvHead(384, num_classes=14, num_stages=2)
    kinds = [type(m).__name__ for m in head.layers]
    assert kinds == ["Upsample", "Conv2d", "BatchNorm2d", "ReLU", "Upsample", "Conv2d"]
    convs = [m for m in head.layers if isinstance(m, nn.Conv2d)]
    assert [tuple(c.weight.shape) for c in convs] == [(128, 384, 3, 3), (14, 128, 3, 3)]


def test_conv_head_filters_halve_per_stage() -> None:
    head = ConvHead(32, num_classes=3, num_stages=4, base_channels=16)
    convs = [m for m in head.layers if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 8, 4, 3]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in head.layers) == 3


def test_conv_head_upsamples_by_two_per_stage() -> None:
    head = ConvHead(8, num_classes=3, num_stages=3, base_channels=8)
    out = head([torch.randn(2, 8, 3, 5)])
    assert out.shape == (2, 3, 24, 40)
    assert_all_params_get_finite_grads(head, out)


def test_conv_head_uses_last_map() -> None:
    head = ConvHead(8, num_classes=3).eval()
    x = torch.randn(1, 8, 4, 4)
    torch.testing.assert_close(head([torch.randn(1, 4, 8, 8), x]), head([x]))


def test_conv_head_rejects_zero_stages() -> None:
    with pytest.raises(ValueError, match="num_stages >= 1"):
        ConvHead(8, num_classes=2, num_stages=0)


def test_conv_head_rejects_wrong_channels() -> None:
    with pytest.raises(ShapeError, match=r"\(N, 8, H, W\)"):
        ConvHead(8, num_classes=2)([torch.randn(1, 6, 4, 4)])


def test_fcn_head_spectral_earth_layout() -> None:
    head = FCNHead(2048, num_classes=14)
    conv1, bn, _, conv2 = head.layers
    assert isinstance(conv1, nn.Conv2d)
    assert isinstance(conv2, nn.Conv2d)
    assert tuple(conv1.weight.shape) == (256, 2048, 3, 3)
    assert conv1.bias is None
    assert isinstance(bn, nn.BatchNorm2d)
    assert tuple(conv2.weight.shape) == (14, 256, 1, 1)


def test_fcn_head_keeps_resolution_and_trains() -> None:
    head = FCNHead(16, num_classes=4, hidden_channels=5)
    out = head([torch.randn(2, 16, 9, 7)])
    assert out.shape == (2, 4, 9, 7)
    assert_all_params_get_finite_grads(head, out)


def test_fcn_head_rejects_empty_features() -> None:
    with pytest.raises(ShapeError, match="no feature maps"):
        FCNHead(16, num_classes=4)([])
