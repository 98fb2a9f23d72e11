from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torchvision.models.feature_extraction import create_feature_extractor
from torchvision.ops import FeaturePyramidNetwork

import geofm
from geofm.backbones.swin import is_satlas_checkpoint, satlas_fpn
from geofm.heads import FPN
from geofm.weights import load_weights

SATLAS_NODES = {"features.1": "s1", "features.3": "s2", "features.5": "s3", "features.7": "s4"}
# The nodes the ML4Earth 2024 team's config.yaml passes to create_feature_extractor.
ML4EARTH_NODES = {"features.0.0": "s1", "features.2": "s2", "features.4": "s3", "features.6": "s4"}


TINY = (1, 1, 1, 1)


@pytest.fixture(scope="module")
def torchvision_swin() -> torch.nn.Module:
    """torchvision's ``swin_v2_b`` configuration with one block per stage (fast)."""
    from torchvision.models.swin_transformer import (
        PatchMergingV2,
        SwinTransformer,
        SwinTransformerBlockV2,
    )

    torch.manual_seed(0)
    return SwinTransformer(
        patch_size=[4, 4], embed_dim=128, depths=list(TINY), num_heads=[4, 8, 16, 32],
        window_size=[8, 8], stochastic_depth_prob=0.5, block=SwinTransformerBlockV2,
        downsample_layer=PatchMergingV2,
    ).eval()  # fmt: skip


@pytest.fixture(scope="module")
def satlas_file(
    torchvision_swin: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A raw SatlasPretrain-layout file: backbone, FPN (out 128) and a segmentation head."""
    torch.manual_seed(1)
    fpn = FeaturePyramidNetwork([128, 256, 512, 1024], 128)
    state = {
        f"backbone.backbone.{k}": v.contiguous() for k, v in torchvision_swin.state_dict().items()
    }
    state |= {f"intermediates.0.fpn.{k}": v.contiguous() for k, v in fpn.state_dict().items()}
    state["intermediates.1.layers.0.0.weight"] = torch.randn(128, 128, 3, 3)  # Satlas Upsample
    state["heads.0.layers.0.0.weight"] = torch.randn(128, 128, 3, 3)
    state["heads.0.layers.0.0.bias"] = torch.randn(128)
    path = tmp_path_factory.mktemp("satlas") / "sentinel2_swinb_si_rgb.safetensors"
    save_file(state, str(path))
    torch.save(fpn.state_dict(), path.with_suffix(".fpn.pt"))
    return path


def test_satlas_checkpoint_loads_strictly_and_matches_torchvision_features(
    torchvision_swin: torch.nn.Module, satlas_file: Path
) -> None:
    ours = geofm.create_backbone("tv_swin_v2_b", depths=TINY, pretrained=satlas_file).eval()
    report = ours.load_report
    assert report is not None and report.ok
    assert any("raw SatlasPretrain" in note for note in report.adapted)
    ignored = sorted(k.split(" ")[0] for k in report.ignored)
    # The FPN, the upsampling module and the head of the raw file, and torchvision's classifier.
    assert "head.weight" in ignored and "head.bias" in ignored
    assert "heads.0.layers.0.0.bias" in ignored
    assert "intermediates.1.layers.0.0.weight" in ignored
    assert sum(k.startswith("intermediates.0.fpn.") for k in ignored) == 16

    extractor = create_feature_extractor(torchvision_swin, return_nodes=SATLAS_NODES)
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        ref = extractor(x)
        maps = ours(x)
    assert [tuple(m.shape) for m in maps] == [
        (2, 128, 16, 24), (2, 256, 8, 12), (2, 512, 4, 6), (2, 1024, 2, 3),
    ]  # fmt: skip
    for m, key in zip(maps, ["s1", "s2", "s3", "s4"], strict=True):
        assert torch.equal(m, ref[key].permute(0, 3, 1, 2))


def test_ml4earth_taps_match_create_feature_extractor_on_its_nodes(
    torchvision_swin: torch.nn.Module, satlas_file: Path
) -> None:
    ours = geofm.create_backbone(
        "tv_swin_v2_b", depths=TINY, pretrained=satlas_file, taps="ml4earth"
    ).eval()
    assert [f.module for f in ours.feature_info] == list(ML4EARTH_NODES)
    extractor = create_feature_extractor(torchvision_swin, return_nodes=ML4EARTH_NODES)
    x = torch.randn(2, 3, 96, 64)
    with torch.no_grad():
        ref = extractor(x)
        maps = ours(x)
    # features.0.0 is the patch-embedding conv (NCHW already); the merges are channels-last.
    assert torch.equal(maps[0], ref["s1"])
    for m, key in zip(maps[1:], ["s2", "s3", "s4"], strict=True):
        assert torch.equal(m, ref[key].permute(0, 3, 1, 2))
    assert [tuple(m.shape) for m in maps] == [
        (2, 128, 24, 16), (2, 256, 12, 8), (2, 512, 6, 4), (2, 1024, 3, 2),
    ]  # fmt: skip
    # Not the Satlas taps: stage 4's blocks change the last map.
    satlas = geofm.create_backbone("tv_swin_v2_b", depths=TINY, pretrained=satlas_file).eval()
    with torch.no_grad():
        assert not torch.allclose(satlas(x)[-1], maps[-1])


def test_ml4earth_taps_subset_and_stage_four_blocks_unused() -> None:
    model = geofm.create_backbone(
        "tv_swin_v2_b", depths=(1, 1, 1, 1), taps="ml4earth", out_indices=[1, 3]
    )
    maps = model(torch.randn(2, 3, 64, 32))
    assert [tuple(m.shape) for m in maps] == [(2, 256, 8, 4), (2, 1024, 2, 1)]
    sum(m.sum() for m in maps).backward()
    assert all(p.grad is None for p in model.features[7].parameters())
    assert all(p.grad is not None for p in model.features[6].parameters())
    with pytest.raises(ValueError, match="taps must be one of 'satlas', 'ml4earth', got 'tv'"):
        geofm.create_backbone("tv_swin_v2_b", depths=(1, 1, 1, 1), taps="tv")


def test_satlas_fpn_keys_load_into_geofm_fpn(satlas_file: Path) -> None:
    fpn = FPN([128, 256, 512, 1024], out_channels=128)
    report = load_weights(fpn, satlas_file, converter=satlas_fpn)
    assert report.ok
    reference = FeaturePyramidNetwork([128, 256, 512, 1024], 128)
    reference.load_state_dict(torch.load(satlas_file.with_suffix(".fpn.pt")))
    feats = [torch.randn(2, 128 * 2**i, 16 // 2**i, 12 // 2**i) for i in range(4)]
    with torch.no_grad():
        ours = fpn(feats)
        ref = reference({str(i): f for i, f in enumerate(feats)})
    for a, b in zip(ours, ref.values(), strict=True):
        torch.testing.assert_close(a, b)


def test_satlas_layout_detection() -> None:
    w = torch.zeros(1)
    assert is_satlas_checkpoint({"backbone.backbone.features.0.0.weight": w})
    assert is_satlas_checkpoint({"backbone.layer1.weight": w, "heads.0.x": w})  # Satlas ResNet
    assert not is_satlas_checkpoint({"backbone.features.0.0.weight": w})  # a wrapped torchvision
    assert not is_satlas_checkpoint({"features.0.0.weight": w, "head.weight": w})


def test_satlas_multispectral_stem_has_nine_bands(tmp_path: Path) -> None:
    ms = geofm.create_backbone("tv_swin_v2_b", in_chans=9, depths=(1, 1, 1, 1))
    assert ms.features[0][0].weight.shape == (128, 9, 4, 4)
    state = {f"backbone.backbone.{k}": v for k, v in ms.state_dict().items()}
    save_file(state, str(tmp_path / "ms.safetensors"))
    again = geofm.create_backbone(
        "tv_swin_v2_b", in_chans=9, depths=(1, 1, 1, 1), pretrained=tmp_path / "ms.safetensors"
    )
    assert again.load_report is not None and again.load_report.ok
    assert again.adaptation_report is None


def test_timm_swinv2_stage_layout() -> None:
    model = geofm.create_backbone("swinv2_base_window8", depths=(1, 1, 1, 1)).eval()
    with torch.no_grad():
        maps = model(torch.randn(1, 3, 96, 64))
    assert [tuple(m.shape) for m in maps] == [
        (1, 128, 24, 16), (1, 256, 12, 8), (1, 512, 6, 4), (1, 1024, 3, 2),
    ]  # fmt: skip
    assert [f.reduction for f in model.feature_info] == [4, 8, 16, 32]


def test_depths_validation() -> None:
    with pytest.raises(ValueError, match="4 positive block counts"):
        geofm.create_backbone("tv_swin_v2_b", depths=(1, 1, 1))
