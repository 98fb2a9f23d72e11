from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import cache

import pytest
import torch
from torch import Tensor, nn

import geofm
from geofm.backbones import Backbone, get_backbone_entry
from geofm.errors import ShapeError
from geofm.heads import (
    FPN,
    ClassificationHead,
    ConvHead,
    FCNHead,
    FPNSegmentationHead,
    RegressionHead,
    SatlasUpsample,
    SegmentationModel,
    SimpleSegmentationHead,
    UPerNetHead,
    ViTFeaturePyramid,
)

from ._helpers import TinyPyramidBackbone, TinyViTBackbone, assert_all_params_get_finite_grads

NUM_CLASSES = 3
SATLAS_BACKBONE = "tv_swin_v2_b"
_SIZE_RANK = ("tiny", "small", "18", "base", "_b", "50", "large", "huge", "giant")


class SelectLast(nn.Module):
    """Keep only the last feature map (feeds a ViT pyramid from any backbone)."""

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        return features[-1:]


class _Squeeze(nn.Module):
    """1x1 conv applied to every map of a list."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        return [self.conv(f) for f in features]


def _rank(name: str) -> int:
    return next((i for i, key in enumerate(_SIZE_RANK) if key in name), len(_SIZE_RANK))


def _representatives() -> list[str]:
    """The smallest registered name per family, plus Satlas' torchvision Swin layout."""
    groups: dict[str, list[str]] = {}
    for name in geofm.list_backbones():
        groups.setdefault(get_backbone_entry(name).family, []).append(name)
    picks = {min(names, key=lambda n: (_rank(n), n)) for names in groups.values()}
    picks |= {n for n in geofm.list_backbones() if n == SATLAS_BACKBONE}
    return sorted(picks)


def _small_kwargs(name: str) -> dict[str, object]:
    params = inspect.signature(get_backbone_entry(name).builder).parameters
    kwargs: dict[str, object] = {}
    if "depth" in params:
        kwargs["depth"] = 2
    if "depths" in params:
        default = params["depths"].default
        kwargs["depths"] = (1,) * (len(default) if isinstance(default, (tuple, list)) else 4)
    if "img_size" in params:
        kwargs["img_size"] = _input_size(name)
    return kwargs


def _input_size(name: str) -> int:
    return 2 * get_backbone_entry(name).min_input_size


@cache
def _backbone(name: str) -> Backbone:
    torch.manual_seed(0)
    return geofm.create_backbone(name, **_small_kwargs(name))  # type: ignore[arg-type]


def _fpn_head(info: list[int], reductions: list[int]) -> tuple[nn.Module | None, nn.Module]:
    return FPN(info, out_channels=8), FPNSegmentationHead(8, NUM_CLASSES, hidden_channels=8)


def _fpn_sum_head(info: list[int], reductions: list[int]) -> tuple[nn.Module | None, nn.Module]:
    return FPN(info, out_channels=8), FPNSegmentationHead(8, NUM_CLASSES, fuse="sum")


def _satlas_head(info: list[int], reductions: list[int]) -> tuple[nn.Module | None, nn.Module]:
    if reductions[0] & (reductions[0] - 1):
        pytest.skip(
            f"SatlasUpsample needs a power-of-two stride, this backbone has {reductions[0]}"
        )
    neck = nn.Sequential(FPN(info, out_channels=8), SatlasUpsample(8, reduction=reductions[0]))
    return neck, SimpleSegmentationHead(8, NUM_CLASSES)


def _upernet_head(info: list[int], reductions: list[int]) -> tuple[nn.Module | None, nn.Module]:
    return None, UPerNetHead(info, NUM_CLASSES, channels=8)


def _fcn_head(info: list[int], reductions: list[int]) -> tuple[nn.Module | None, nn.Module]:
    return None, FCNHead(info[-1], NUM_CLASSES)


def _conv_head(info: list[int], reductions: list[int]) -> tuple[nn.Module | None, nn.Module]:
    return None, ConvHead(info[-1], NUM_CLASSES, num_stages=2, base_channels=8)


def _pyramid_upernet(info: list[int], reductions: list[int]) -> tuple[nn.Module | None, nn.Module]:
    neck = ViTFeaturePyramid(info[-1], out_channels=None)
    return nn.Sequential(SelectLast(), neck), UPerNetHead(
        list(neck.out_channels), NUM_CLASSES, channels=8
    )


HEADS: dict[str, Callable[[list[int], list[int]], tuple[nn.Module | None, nn.Module]]] = {
    "fpn": _fpn_head,
    "fpn_sum": _fpn_sum_head,
    "satlas": _satlas_head,
    "upernet": _upernet_head,
    "fcn": _fcn_head,
    "convhead": _conv_head,
    "vit_pyramid_upernet": _pyramid_upernet,
}


@pytest.mark.parametrize("head_name", list(HEADS))
@pytest.mark.parametrize("backbone_name", _representatives())
def test_every_head_on_every_registry_family(backbone_name: str, head_name: str) -> None:
    backbone = _backbone(backbone_name)
    channels = [f.channels for f in backbone.feature_info]
    reductions = [f.reduction for f in backbone.feature_info]
    neck, head = HEADS[head_name](channels, reductions)
    model = SegmentationModel(backbone, neck, head)
    size = _input_size(backbone_name)
    x = torch.randn(2, backbone.in_chans, size, size)
    with torch.no_grad():  # gradients are covered below, once per backbone
        logits = model(x)
    assert logits.shape == (2, NUM_CLASSES, size, size)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("backbone_name", _representatives())
def test_gradients_reach_registry_backbone(backbone_name: str) -> None:
    backbone = _backbone(backbone_name)
    channels = [f.channels for f in backbone.feature_info]
    model = SegmentationModel(backbone, FPN(channels, out_channels=8), FPNSegmentationHead(8, 2))
    size = _input_size(backbone_name)
    logits = model(torch.randn(2, backbone.in_chans, size, size))
    logits.sum().backward()
    grads = [p.grad for p in model.head.parameters()] + [
        p.grad for p in backbone.parameters() if p.requires_grad
    ]
    assert all(g is not None and torch.isfinite(g).all() for g in grads[:4])
    assert any(g is not None and g.abs().sum() > 0 for g in grads[4:])


@pytest.mark.parametrize("backbone_name", _representatives())
def test_pooled_heads_on_registry_embeddings(backbone_name: str) -> None:
    backbone = _backbone(backbone_name)
    size = _input_size(backbone_name)
    emb = backbone.embed(torch.randn(2, backbone.in_chans, size, size))
    dim = backbone.embed_dim
    assert ClassificationHead(dim, 5)(emb).shape == (2, 5)
    assert RegressionHead(dim, 1)(emb).shape == (2, 1)


def test_logits_resized_to_non_square_input() -> None:
    backbone = TinyPyramidBackbone()
    model = SegmentationModel(
        backbone,
        FPN([4, 8, 16, 32], out_channels=8),
        FPNSegmentationHead(8, NUM_CLASSES, fuse="sum"),
    )
    out = model(torch.randn(2, 3, 64, 96))
    assert out.shape == (2, NUM_CLASSES, 64, 96)
    assert_all_params_get_finite_grads(model, out)


def test_resize_is_bilinear_upsampling_of_head_output() -> None:
    backbone = TinyViTBackbone()
    head = ConvHead(16, NUM_CLASSES, num_stages=1, base_channels=8).eval()
    model = SegmentationModel(backbone, None, head).eval()
    x = torch.randn(1, 3, 32, 32)
    coarse = head(backbone(x))
    want = nn.functional.interpolate(coarse, size=(32, 32), mode="bilinear", align_corners=False)
    torch.testing.assert_close(model(x), want)


def test_head_at_full_resolution_is_not_resized() -> None:
    backbone = TinyViTBackbone()
    head = ConvHead(16, NUM_CLASSES, num_stages=2).eval()
    model = SegmentationModel(backbone, None, head).eval()
    x = torch.randn(1, 3, 16, 16)
    torch.testing.assert_close(model(x), head(backbone(x)))


def test_rejects_module_without_feature_info() -> None:
    with pytest.raises(TypeError, match="feature_info"):
        SegmentationModel(nn.Conv2d(3, 4, 1), None, FCNHead(4, 2))  # type: ignore[arg-type]


def test_rejects_backbone_returning_a_tensor() -> None:
    class Bad(nn.Module):
        feature_info: tuple[object, ...] = ()

        def forward(self, x: Tensor) -> Tensor:
            return x

    with pytest.raises(ShapeError, match="backbone must return a list"):
        SegmentationModel(Bad(), None, FCNHead(3, 2))(torch.randn(1, 3, 8, 8))  # type: ignore[arg-type]


def test_rejects_head_returning_vectors() -> None:
    model = SegmentationModel(TinyViTBackbone(), None, nn.Sequential())
    with pytest.raises(ShapeError, match=r"\(N, K, h, w\) logits"):
        model(torch.randn(1, 3, 8, 8))


def test_rejects_non_4d_input() -> None:
    model = SegmentationModel(TinyViTBackbone(), None, FCNHead(16, 2))
    with pytest.raises(ShapeError, match=r"\(N, C, H, W\) batch"):
        model(torch.randn(3, 8, 8))
