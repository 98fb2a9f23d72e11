"""Converters from original checkpoint layouts (Satlas, SpectralEarth, SkySense-O)."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torchvision.ops import FeaturePyramidNetwork

import geofm
from geofm.backbones.skysense import skysense_o_visual
from geofm.backbones.spectral import spectral_earth
from geofm.backbones.swin import satlas_backbone, satlas_fpn
from geofm.errors import UnknownNameError, WeightsError
from geofm.heads import FPN
from geofm.weights.convert import get_converter, list_converters, register_converter
from geofm.weights.load import LoadReport, load_state_dict_into, load_weights, read_state_dict

StateDict = dict[str, torch.Tensor]


def test_registry_lists_the_converters_and_rejects_unknown_and_duplicate_names() -> None:
    assert {"satlas_backbone", "satlas_fpn", "spectral_earth", "skysense_o_visual"} <= set(
        list_converters()
    )
    assert get_converter("spectral_earth") is spectral_earth
    with pytest.raises(UnknownNameError, match="Did you mean 'satlas_fpn'"):
        get_converter("satlas_fnp")
    with pytest.raises(ValueError, match="already registered"):
        register_converter("satlas_fpn")(satlas_fpn)


# --- Satlas -------------------------------------------------------------------------------
def test_satlas_backbone_strips_every_backbone_prefix_and_reports_the_rest() -> None:
    t = torch.zeros(1)
    sd = {
        "backbone.backbone.features.0.0.weight": t,  # single image Swin
        "backbone.backbone.backbone.norm.weight": t,  # multi image Swin
        "backbone.conv1.weight": t,  # ResNet
        "intermediates.0.fpn.inner_blocks.0.0.weight": t,
        "intermediates.1.layers.0.0.weight": t,
        "heads.0.layers.0.0.weight": t,
    }
    report = LoadReport()
    out = satlas_backbone(sd, report)
    assert sorted(out) == ["conv1.weight", "features.0.0.weight", "norm.weight"]
    assert all(v is t for v in out.values())  # renamed, never copied
    reasons = dict(item.split(" (", 1) for item in report.ignored)
    assert "satlas_fpn" in reasons["intermediates.0.fpn.inner_blocks.0.0.weight"]
    assert reasons["intermediates.1.layers.0.0.weight"].startswith("Satlas upsampling")
    assert reasons["heads.0.layers.0.0.weight"].startswith("task head")


def test_satlas_fpn_loads_into_geofm_fpn_and_matches_torchvision() -> None:
    torch.manual_seed(0)
    channels = [8, 16, 32, 64]
    tv = FeaturePyramidNetwork(channels, out_channels=12).eval()
    sd = {f"intermediates.0.fpn.{k}": v for k, v in tv.state_dict().items()}
    sd["backbone.backbone.norm.weight"] = torch.ones(64)
    fpn = FPN(channels, out_channels=12).eval()
    report = load_weights(fpn, sd, converter=satlas_fpn)
    assert report.ok and report.ignored == [
        "backbone.backbone.norm.weight (not part of the Satlas FPN)"
    ]
    # Batch 2 and H != W: a swapped upsampling size or batch mix-up would show.
    feats = [torch.randn(2, c, 32 // 2**i, 48 // 2**i) for i, c in enumerate(channels)]
    want = tv(OrderedDict((str(i), f) for i, f in enumerate(feats)))
    for got, ref in zip(fpn(feats), want.values(), strict=True):
        torch.testing.assert_close(got, ref)


# --- SpectralEarth ------------------------------------------------------------------------
def _spec_vit() -> geofm.Backbone:
    return geofm.create_backbone("spec_vit_tiny_patch4", depth=1).eval()


def _se_layout(model: torch.nn.Module) -> StateDict:
    """A geofm Spec-ViT's tensors under SpectralEarth's names (``spectral_adapter.``, ``vit_core.``)."""
    renames = (("stem.", "spectral_adapter."), ("model.", "vit_core."))
    out: StateDict = {}
    for k, v in model.state_dict().items():
        for old, new in renames:
            if k.startswith(old):
                k = new + k[len(old) :]
                break
        out[k] = v
    return out


def test_spectral_earth_plain_dict_passes_through_unchanged() -> None:
    plain = _se_layout(_spec_vit())
    report = LoadReport()
    out = spectral_earth(plain, report)
    assert out.keys() == plain.keys() and not report.ignored and not report.adapted


def test_spectral_earth_takes_the_dino_student_not_the_teacher() -> None:
    sd = {
        "student_backbone.vit_core.cls_token": torch.ones(1),
        "teacher_backbone.vit_core.cls_token": torch.zeros(1),
        "student_head.mlp.0.weight": torch.zeros(1),
    }
    report = LoadReport()
    out = spectral_earth(sd, report)
    assert list(out) == ["vit_core.cls_token"] and out["vit_core.cls_token"].item() == 1.0
    assert len(report.ignored) == 2 and "'student_backbone.'" in report.adapted[0]


def test_spectral_earth_moco_ignores_momentum_encoder_head_and_classifier() -> None:
    sd = {
        "backbone.resnet.layer1.0.conv1.weight": torch.ones(1),
        "backbone.resnet.fc.weight": torch.ones(1),
        "backbone_momentum.resnet.layer1.0.conv1.weight": torch.zeros(1),
        "projection_head.layers.0.weight": torch.zeros(1),
    }
    report = LoadReport()
    assert list(spectral_earth(sd, report)) == ["resnet.layer1.0.conv1.weight"]
    assert "backbone.resnet.fc.weight (classifier head; the backbone has none)" in report.ignored
    assert len(report.ignored) == 3


def test_spectral_earth_lightly_mae_encoder_layout_loads_strictly() -> None:
    ref = _spec_vit()
    sd: StateDict = {}
    for k, v in _se_layout(ref).items():
        if k.startswith("spectral_adapter."):
            sd["encoder.vit.patch_embed.spectral_adapter." + k[len("spectral_adapter.") :]] = v
        elif k.startswith("vit_core.patch_embed."):
            rest = k[len("vit_core.patch_embed.") :]
            sd["encoder.vit.patch_embed.original_patch_embed." + rest] = v
        else:
            sd["encoder.vit." + k[len("vit_core.") :]] = v
    sd["decoder.decoder_embed.weight"] = torch.zeros(2, 2)
    model = _spec_vit()
    report = load_weights(model, sd, converter=spectral_earth)
    assert report.ok and report.ignored == [
        "decoder.decoder_embed.weight (not part of the backbone under 'encoder.')"
    ]
    x = torch.randn(2, 202, 8, 12)
    torch.testing.assert_close(model.embed(x), ref.embed(x))


# --- SkySense-O ----------------------------------------------------------------------------
def test_skysense_visual_keys_come_out_of_the_nested_checkpoint(tmp_path: Path) -> None:
    visual = {"backbone_gep.patch_embed.projection.weight": torch.randn(4, 3, 4, 4)}
    ckpt = {
        "clip": {"text.token_embedding.weight": torch.zeros(2, 2)},
        "model": {**visual, "backbone_s1.stem.weight": torch.zeros(1)},
        "teacher": {k: torch.zeros_like(v) for k, v in visual.items()},
    }
    path = tmp_path / "skysense_clip.pth"
    torch.save(ckpt, path)
    report = LoadReport()
    state = read_state_dict(path, notes=report.adapted)
    out = skysense_o_visual(state, report)
    assert list(out) == ["patch_embed.projection.weight"]
    torch.testing.assert_close(out["patch_embed.projection.weight"], visual[next(iter(visual))])
    assert report.ignored == ["backbone_s1.stem.weight (not part of the SkySense-O visual encoder)"]
    assert "took the state dict stored under 'model'" in report.adapted


def test_converter_output_feeds_strict_loading_which_reports_leftovers() -> None:
    model = torch.nn.Linear(2, 2)
    sd = {"backbone.backbone.weight": torch.zeros(2, 2)}
    report = LoadReport()
    with pytest.raises(WeightsError, match="1 missing.*\n  missing: bias"):
        load_state_dict_into(model, satlas_backbone(sd, report), report=report)
