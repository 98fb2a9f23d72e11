from __future__ import annotations

import pytest
import torch
from torch import nn

from geofm.errors import ShapeError
from geofm.heads import LayerNorm2d, ViTFeaturePyramid

from ._helpers import assert_all_params_get_finite_grads


def test_layer_norm_2d_equals_layer_norm_over_channels() -> None:
    norm = LayerNorm2d(6)
    nn.init.normal_(norm.weight)
    nn.init.normal_(norm.bias)
    reference = nn.LayerNorm(6, eps=1e-6)
    reference.load_state_dict(norm.state_dict())
    x = torch.randn(2, 6, 3, 4)
    torch.testing.assert_close(norm(x), reference(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))


def test_simple_pyramid_from_one_map() -> None:
    neck = ViTFeaturePyramid(16, out_channels=8)
    outs = neck([torch.randn(2, 16, 4, 6)])
    assert [tuple(o.shape) for o in outs] == [
        (2, 8, 16, 24),
        (2, 8, 8, 12),
        (2, 8, 4, 6),
        (2, 8, 2, 3),
    ]
    assert neck.out_channels == (8, 8, 8, 8)
    assert neck.reductions(16) == [4, 8, 16, 32]
    assert_all_params_get_finite_grads(neck, sum(o.sum() for o in outs))


def test_pyramid_without_projection_follows_vitdet_widths() -> None:
    neck = ViTFeaturePyramid(16, out_channels=None)
    assert neck.out_channels == (4, 8, 16, 16)
    outs = neck([torch.randn(1, 16, 4, 4)])
    assert [o.shape[1] for o in outs] == [4, 8, 16, 16]
    torch.testing.assert_close(outs[3], torch.nn.functional.max_pool2d(outs[2], 2))


def test_pyramid_uses_one_map_per_scale_when_given() -> None:
    neck = ViTFeaturePyramid(8, scales=(2.0, 1.0), out_channels=None)
    a, b = torch.randn(1, 8, 4, 4), torch.randn(1, 8, 4, 4)
    outs = neck([a, b])
    torch.testing.assert_close(outs[1], b)
    assert outs[0].shape == (1, 4, 8, 8)


def test_pyramid_rejects_unknown_scale() -> None:
    with pytest.raises(ValueError, match="subset of"):
        ViTFeaturePyramid(8, scales=(3.0,))


def test_pyramid_rejects_channels_not_divisible_by_four() -> None:
    with pytest.raises(ValueError, match="divisible by 4"):
        ViTFeaturePyramid(6)


def test_pyramid_rejects_wrong_number_of_maps() -> None:
    neck = ViTFeaturePyramid(8)
    with pytest.raises(ShapeError, match="expects 1 or 4 maps"):
        neck([torch.randn(1, 8, 4, 4)] * 2)


def test_pyramid_rejects_wrong_channels() -> None:
    with pytest.raises(ShapeError, match=r"\(N, 8, h, w\)"):
        ViTFeaturePyramid(8)([torch.randn(1, 4, 4, 4)])
