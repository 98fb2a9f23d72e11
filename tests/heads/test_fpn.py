from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import FeaturePyramidNetwork

from geofm.errors import ShapeError
from geofm.heads import (
    FPN,
    FPNSegmentationHead,
    SatlasUpsample,
    SimpleClassificationHead,
    SimpleSegmentationHead,
)

from ._helpers import assert_all_params_get_finite_grads

SWIN_B_CHANNELS = [128, 256, 512, 1024]


def _maps(channels: list[int], size: int = 16, n: int = 2) -> list[torch.Tensor]:
    return [torch.randn(n, c, size // 2**i, size // 2**i) for i, c in enumerate(channels)]


def _satlas_fpn_checkpoint() -> tuple[dict[str, torch.Tensor], FeaturePyramidNetwork]:
    """A state dict laid out like a SatlasPretrain SwinB checkpoint's FPN (out 128)."""
    reference = FeaturePyramidNetwork(in_channels_list=SWIN_B_CHANNELS, out_channels=128)
    for p in reference.parameters():  # non-trivial biases too
        nn.init.normal_(p, std=0.05)
    ckpt = {f"intermediates.0.fpn.{k}": v for k, v in reference.state_dict().items()}
    ckpt["backbone.backbone.features.0.0.weight"] = torch.zeros(128, 3, 4, 4)
    return ckpt, reference


def test_fpn_output_shapes() -> None:
    fpn = FPN([4, 8, 16], out_channels=6)
    outs = fpn(_maps([4, 8, 16]))
    assert [tuple(o.shape) for o in outs] == [(2, 6, 16, 16), (2, 6, 8, 8), (2, 6, 4, 4)]


def test_fpn_matches_torchvision_with_same_weights() -> None:
    channels = [4, 8, 16, 32]
    reference = FeaturePyramidNetwork(channels, 8)
    fpn = FPN(channels, out_channels=8)
    fpn.load_state_dict(reference.state_dict(), strict=True)
    feats = _maps(channels, size=20)  # odd sizes on the coarse levels
    feats[1] = torch.randn(2, 8, 11, 9)
    expected = reference(OrderedDict((f"f{i}", f) for i, f in enumerate(feats)))
    for got, want in zip(fpn(feats), expected.values(), strict=True):
        torch.testing.assert_close(got, want)


def test_fpn_with_norm_matches_torchvision_layout() -> None:
    reference = FeaturePyramidNetwork([4, 8], 6, norm_layer=nn.BatchNorm2d).eval()
    fpn = FPN([4, 8], out_channels=6, norm_layer=nn.BatchNorm2d).eval()
    assert set(fpn.state_dict()) == set(reference.state_dict())
    fpn.load_state_dict(reference.state_dict(), strict=True)
    feats = _maps([4, 8])
    want = reference(OrderedDict(a=feats[0], b=feats[1]))
    for got, w in zip(fpn(feats), want.values(), strict=True):
        torch.testing.assert_close(got, w)


def test_fpn_initialisation_follows_torchvision() -> None:
    fpn = FPN([4, 8], out_channels=6)
    for m in fpn.modules():
        if isinstance(m, nn.Conv2d):
            assert m.bias is not None
            assert torch.count_nonzero(m.bias) == 0
            bound = (6.0 / ((1 + 1) * m.weight[0].numel())) ** 0.5  # kaiming_uniform_(a=1)
            assert m.weight.abs().max() <= bound


def test_satlas_fpn_checkpoint_loads_strictly_after_prefix_strip() -> None:
    ckpt, reference = _satlas_fpn_checkpoint()
    prefix = "intermediates.0.fpn."
    state = {k[len(prefix) :]: v for k, v in ckpt.items() if k.startswith(prefix)}
    assert "inner_blocks.3.0.weight" in state
    assert "layer_blocks.0.0.bias" in state
    fpn = FPN(SWIN_B_CHANNELS, out_channels=128)
    result = fpn.load_state_dict(state, strict=True)
    assert not result.missing_keys
    assert not result.unexpected_keys
    feats = _maps(SWIN_B_CHANNELS, size=8, n=1)
    expected = reference(OrderedDict((f"feat{i}", f) for i, f in enumerate(feats)))
    for got, want in zip(fpn(feats), expected.values(), strict=True):
        torch.testing.assert_close(got, want)


def test_satlas_upsample_key_layout() -> None:
    # SatlasPretrain Upsample on the FPN (128 ch, stride 4): layers.{0,1} =
    # Conv2d(128, 128, 3) -> ReLU -> ConvTranspose2d(128, 128, 4, 2, 1) -> ReLU.
    expected: dict[str, tuple[int, ...]] = {}
    for i in range(2):
        expected[f"layers.{i}.0.weight"] = (128, 128, 3, 3)
        expected[f"layers.{i}.0.bias"] = (128,)
        expected[f"layers.{i}.2.weight"] = (128, 128, 4, 4)
        expected[f"layers.{i}.2.bias"] = (128,)
    up = SatlasUpsample(128, reduction=4)
    assert {k: tuple(v.shape) for k, v in up.state_dict().items()} == expected


def test_satlas_upsample_reaches_input_resolution() -> None:
    up = SatlasUpsample(6, reduction=8)
    feats = [torch.randn(2, 6, 3, 5), torch.randn(2, 6, 2, 3)]
    outs = up(feats)
    assert outs[0].shape == (2, 6, 24, 40)
    assert outs[1] is feats[0]
    assert outs[2] is feats[1]
    assert_all_params_get_finite_grads(up, outs[0])


def test_satlas_upsample_rejects_non_power_of_two() -> None:
    with pytest.raises(ValueError, match="power of two"):
        SatlasUpsample(4, reduction=6)


def test_fpn_segmentation_head_coarsest_equals_manual_convs() -> None:
    head = FPNSegmentationHead(8, num_classes=5, hidden_channels=6)
    feats = _maps([8, 8, 8])
    hidden = F.relu(F.conv2d(feats[-1], head.conv.weight, head.conv.bias, padding=1))
    want = F.conv2d(hidden, head.classifier.weight, head.classifier.bias)
    got = head(feats)
    assert got.shape == (2, 5, 4, 4)
    torch.testing.assert_close(got, want)


def test_fpn_segmentation_head_ml4earth_widths() -> None:
    head = FPNSegmentationHead(256, num_classes=5)
    assert tuple(head.conv.weight.shape) == (128, 256, 3, 3)
    assert tuple(head.classifier.weight.shape) == (5, 128, 1, 1)


def test_fpn_segmentation_head_sum_fuses_all_levels() -> None:
    head = FPNSegmentationHead(4, num_classes=3, fuse="sum")
    feats = _maps([4, 4, 4])
    out = head(feats)
    assert out.shape == (2, 3, 16, 16)
    # The coarsest level must influence the fused logits.
    feats2 = [feats[0], feats[1], feats[2] + 1.0]
    assert not torch.allclose(head(feats2), out)
    assert_all_params_get_finite_grads(head, out)


def test_fpn_segmentation_head_rejects_wrong_channels() -> None:
    with pytest.raises(ShapeError, match=r"expected \(N, 8, H, W\)"):
        FPNSegmentationHead(8, num_classes=2)([torch.randn(1, 4, 4, 4)])


def test_fpn_rejects_wrong_number_of_maps() -> None:
    with pytest.raises(ShapeError, match="expects 2 feature maps, got 1"):
        FPN([4, 8], out_channels=4)([torch.randn(1, 4, 8, 8)])


def test_fpn_rejects_empty_in_channels() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        FPN([], out_channels=4)


def test_fpn_gradients() -> None:
    fpn = FPN([4, 8, 16], out_channels=4)
    outs = fpn(_maps([4, 8, 16]))
    assert_all_params_get_finite_grads(fpn, sum(o.sum() for o in outs))


def test_simple_segmentation_head_matches_satlas_layout() -> None:
    head = SimpleSegmentationHead(6, num_classes=3)
    assert sorted(head.state_dict()) == [
        "layers.0.0.bias",
        "layers.0.0.weight",
        "layers.1.bias",
        "layers.1.weight",
    ]
    out = head([torch.randn(2, 6, 8, 8)])
    assert out.shape == (2, 3, 8, 8)
    assert_all_params_get_finite_grads(head, out)


def test_simple_classification_head_uses_global_max_pool() -> None:
    head = SimpleClassificationHead(6, num_classes=4)
    x = torch.randn(2, 6, 5, 5)
    conv = head.layers[0][0]  # type: ignore[index]
    hidden = F.relu(conv(x)).amax(dim=(2, 3))
    torch.testing.assert_close(head([x]), head.extra(hidden))
    assert sorted(head.state_dict())[:2] == ["extra.bias", "extra.weight"]
    assert_all_params_get_finite_grads(head, head([x]))
