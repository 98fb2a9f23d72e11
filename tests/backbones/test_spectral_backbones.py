"""Tests of the SpectralEarth backbones (geofm.backbones.spectral)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor

import geofm
from geofm.backbones import get_backbone_entry
from geofm.backbones.spectral import SpecBottleneck, SpecResNetBackbone
from geofm.backbones.vit import ViTBackbone
from geofm.spectral import SpectralAdapter

# Parameter counts of SOURCES.md 2.2 / 2.3 (adapter included, no classifier).
EXPECTED_PARAMS = {
    "spec_vit_tiny_patch4": 5.99e6,
    "spec_vit_small_patch4": 22.53e6,
    "spec_vit_base_patch4": 87.47e6,
    "spec_vit_large_patch4": 305.5e6,
    "spec_vit_huge_patch4": 633.7e6,
    "spec_vit_giant_patch4": 1.138e9,
    "spec_resnet50": 24.20e6,
}


def _save(state: dict[str, Tensor], path: Path) -> Path:
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def _spectral_earth_vit(depth: int = 12, num_classes: int = 0) -> tuple[SpectralAdapter, Any]:
    """SpectralEarth's SpecVisionTransformer parts, built directly from timm (the source does)."""
    vit = VisionTransformer(
        img_size=128,
        patch_size=4,
        in_chans=128,
        num_classes=num_classes,
        embed_dim=384,
        depth=depth,
        num_heads=6,
        qkv_bias=True,
        dynamic_img_size=True,  # only interpolates pos_embed at run time; same parameters
    )
    return SpectralAdapter(), vit


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_parameter_counts_match_spectral_earth(name: str) -> None:
    with torch.device("meta"):  # no memory for the billion-parameter giant
        model = get_backbone_entry(name).builder()
    count = sum(p.numel() for p in model.parameters())
    assert count == pytest.approx(EXPECTED_PARAMS[name], rel=5e-3)


def test_exact_counts_of_the_two_pretrained_families() -> None:
    with torch.device("meta"):
        vit_s = get_backbone_entry("spec_vit_small_patch4").builder()
        rn50 = get_backbone_entry("spec_resnet50").builder()
    assert sum(p.numel() for p in vit_s.parameters()) == 22_531_328
    assert sum(p.numel() for p in rn50.parameters()) == 24_146_432 + 56_192


def test_spec_vit_small_loads_spectral_earth_layout_strictly(tmp_path: Path) -> None:
    adapter, vit = _spectral_earth_vit(num_classes=19)  # EnMAP-CORINE head, dropped on load
    state = {f"spectral_adapter.{k}": v for k, v in adapter.state_dict().items()}
    state |= {f"vit_core.{k}": v for k, v in vit.state_dict().items()}
    assert "vit_core.pos_embed" in state and state["vit_core.pos_embed"].shape == (1, 1025, 384)
    path = _save(
        {f"backbone.{k}": v for k, v in state.items()}, tmp_path / "spec_vit_s.safetensors"
    )
    model = geofm.create_backbone("spec_vit_small_patch4", pretrained=path).eval()
    report = model.load_report
    assert report is not None and report.ok
    # Named as the backbone holds them once vit_core. is mapped to model.
    assert {k.split(" ")[0] for k in report.ignored} == {"model.head.weight", "model.head.bias"}
    assert any("backbone." in note for note in report.adapted)
    x = torch.randn(2, 202, 16, 16)
    adapter.eval(), vit.eval()
    with torch.no_grad():
        reference = vit.forward_features(adapter(x))[:, 0]  # CLS after the final norm
        torch.testing.assert_close(model.embed(x), reference)


def test_spec_vit_other_grid_is_resampled(tmp_path: Path) -> None:
    src = geofm.create_backbone("spec_vit_tiny_patch4", depth=1, img_size=64)
    path = _save(src.state_dict(), tmp_path / "grid16.safetensors")
    model = geofm.create_backbone("spec_vit_tiny_patch4", depth=1, pretrained=path)
    assert model.load_report is not None and model.load_report.ok
    assert any("16x16 to a 32x32 grid" in n for n in model.load_report.adapted)


def _dilations(layer: torch.nn.Module) -> set[tuple[int, ...]]:
    blocks: list[Any] = list(layer.children())
    return {tuple(block.conv2.dilation) for block in blocks}


def _reference_bottleneck(block: SpecBottleneck, x: Tensor) -> Tensor:
    """The source's CustomBottleneck written with functional ops (eval-mode BN)."""

    def bn(t: Tensor, m: torch.nn.BatchNorm2d) -> Tensor:
        return F.batch_norm(t, m.running_mean, m.running_var, m.weight, m.bias, False, 0.0, m.eps)

    out = F.relu(bn(F.conv2d(x, block.conv1.weight), block.bn1))
    out = F.relu(bn(F.conv2d(out, block.conv2.weight, stride=2, padding=1), block.bn2))
    out = bn(F.conv2d(out, block.conv3.weight), block.bn3)
    ds_conv, ds_bn = block.downsample[0], block.downsample[1]
    assert isinstance(ds_conv, torch.nn.Conv2d) and isinstance(ds_bn, torch.nn.BatchNorm2d)
    return F.relu(out + bn(F.conv2d(x, ds_conv.weight, stride=2), ds_bn))


def test_spec_resnet50_loads_spectral_earth_layout_strictly(tmp_path: Path) -> None:
    # Build the checkpoint from SOURCES.md 2.8's key list: the custom first block,
    # timm resnet50's other blocks, no stem, plus a classifier that must be dropped.
    timm_sd = timm.create_model("resnet50", pretrained=False).state_dict()
    state: dict[str, Tensor] = {
        f"resnet.{k}": torch.randn_like(v) if v.is_floating_point() else v
        for k, v in timm_sd.items()
        if k.startswith(("layer1.1", "layer1.2", "layer2", "layer3", "layer4"))
    }
    shapes = {"conv1": (256, 128, 1, 1), "conv2": (256, 256, 3, 3), "conv3": (256, 256, 1, 1)}
    for name, shape in shapes.items():
        state[f"resnet.layer1.0.{name}.weight"] = torch.randn(shape) * 0.05
    state["resnet.layer1.0.downsample.0.weight"] = torch.randn(256, 128, 1, 1) * 0.05
    for bn in ("bn1", "bn2", "bn3", "downsample.1"):
        for key in ("weight", "bias", "running_mean", "running_var"):
            state[f"resnet.layer1.0.{bn}.{key}"] = torch.rand(256) + 0.5
        state[f"resnet.layer1.0.{bn}.num_batches_tracked"] = torch.tensor(3)
    state |= {f"spectral_adapter.{k}": v for k, v in SpectralAdapter().state_dict().items()}
    state["resnet.fc.weight"], state["resnet.fc.bias"] = torch.randn(10, 2048), torch.randn(10)
    path = _save(state, tmp_path / "spec_rn50.safetensors")

    model = geofm.create_backbone("spec_resnet50", pretrained=path).eval()
    assert isinstance(model, SpecResNetBackbone)
    assert model.load_report is not None and model.load_report.ok
    assert {k.split(" ")[0] for k in model.load_report.ignored} == {
        "resnet.fc.weight",
        "resnet.fc.bias",
    }
    block = model.resnet.layer1[0]
    assert isinstance(block, SpecBottleneck)
    torch.testing.assert_close(block.conv2.weight, state["resnet.layer1.0.conv2.weight"])
    x = torch.randn(1, 128, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(block(x), _reference_bottleneck(block, x))


def test_spec_resnet50_output_stride_16_and_feature_info() -> None:
    model = geofm.create_backbone("spec_resnet50").eval()
    with torch.no_grad():
        maps = model(torch.randn(1, 202, 32, 32))
    assert [tuple(m.shape[1:]) for m in maps] == [
        (256, 16, 16),
        (512, 8, 8),
        (1024, 4, 4),
        (2048, 2, 2),
    ]
    assert [f.reduction for f in model.feature_info] == [2, 4, 8, 16]
    assert model.size_divisor == 16


def test_spec_resnet50_dilation_follows_the_source_rule() -> None:
    full = geofm.create_backbone(
        "spec_resnet50", replace_stride_with_dilation=(True, True, True, True), out_indices=[-1]
    ).eval()
    assert isinstance(full, SpecResNetBackbone)
    with torch.no_grad():
        assert full(torch.randn(1, 202, 6, 6))[0].shape == (1, 2048, 6, 6)
    assert full.size_divisor == 1
    dilations = [_dilations(layer) for layer in full.resnet.layers()]
    assert dilations == [{(1, 1)}, {(2, 2)}, {(4, 4)}, {(8, 8)}]
    # Dilation starts at 1 and doubles per flagged stage only (SpectralEarth's rule).
    late = geofm.create_backbone(
        "spec_resnet50", replace_stride_with_dilation=(False, False, True, True)
    )
    assert isinstance(late, SpecResNetBackbone)
    assert [f.reduction for f in late.feature_info] == [2, 4, 4, 4]
    assert _dilations(late.resnet.layer3) == {(1, 1)}
    assert _dilations(late.resnet.layer4) == {(2, 2)}


@pytest.mark.parametrize("bands", [235, 198, 150])
def test_spec_vit_accepts_other_hyperspectral_sensors(bands: int) -> None:
    model = geofm.create_backbone("spec_vit_tiny_patch4", depth=1, in_chans=bands).eval()
    assert isinstance(model, ViTBackbone) and isinstance(model.stem, SpectralAdapter)
    with torch.no_grad():
        assert model.embed(torch.randn(1, bands, 8, 8)).shape == (1, 192)
        assert model(torch.randn(1, bands, 12, 8))[0].shape == (1, 192, 3, 2)


def test_spectral_backbones_reject_bad_configurations() -> None:
    with pytest.raises(ValueError, match="at least 75 bands .* got in_chans=13"):
        geofm.create_backbone("spec_vit_tiny_patch4", depth=1, in_chans=13)
    with pytest.raises(ValueError, match="at least 75 bands"):
        geofm.create_backbone("spec_resnet50", in_chans=12)
    with pytest.raises(TypeError, match="unknown keyword argument.*wavelengths"):
        geofm.create_backbone("spec_vit_tiny_patch4", wavelengths="sentinel2_l2a")
    with pytest.raises(ValueError, match="one flag per stage"):
        geofm.create_backbone("spec_resnet50", replace_stride_with_dilation=(True,))
    with pytest.raises(ValueError, match="out of range"):
        geofm.create_backbone("spec_vit_tiny_patch4", depth=2, out_indices=[5])
    model = geofm.create_backbone("spec_vit_tiny_patch4", depth=1)
    with pytest.raises(geofm.errors.ShapeError, match="expected 202 bands, got 150"):
        model(torch.randn(1, 150, 8, 8))


def test_registry_names_and_metadata() -> None:
    names = geofm.list_backbones("spec_*")
    assert names == sorted(EXPECTED_PARAMS)
    entry = get_backbone_entry("spec_vit_small_patch4")
    assert entry.default_in_chans == 202 and entry.pretrained_bands == "enmap_spectral_earth"
