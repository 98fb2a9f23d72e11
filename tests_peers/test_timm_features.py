"""timm's feature-extraction contract, ported to geofm backbones.

Upstream: huggingface/pytorch-image-models @ aa4b5850c1543fa488abf260f18390eda46cf85d
(2026-08-08), ``tests/test_models.py``:

- ``test_model_forward_features``: per model, ``features_only=True``; the
  ``feature_info.channels()`` / ``.reduction()`` lists describe the outputs (same count, at
  least 3 levels, channel count, spatial size ``<= ceil(size / reduction) + 1``, batch size,
  no NaN).
- ``test_model_forward_intermediates``: ``forward_intermediates`` and, when supported,
  equal outputs with gradient checkpointing (``rtol=1e-4, atol=1e-5``).
- ``test_model_default_cfgs``: the parts that apply to a classifier-free backbone
  (unpooled features have ``num_features`` channels, pre-logits have ``head_hidden_size``,
  the first conv named by the config is a state-dict key).
- ``test_model_load_pretrained``: a pretrained model created with ``in_chans=1``;
  ``num_classes=5`` / ``0``.

Adaptations:

- timm parametrises over ``list_models()``; here the geofm families: ``resnet18``,
  ``resnet50``, ``dinov2_vit_small_patch14``, ``vit_small_patch16``, ``swinv2_base_window8``,
  ``tv_swin_v2_b``, ``dofa_vit_base_patch16`` (with ``bands="sentinel2_l2a"``),
  ``spec_vit_tiny_patch4``, ``spec_resnet50``, ``skysense_o_swinv2_huge``. Transformers are
  built shallow (``depth=4``; ``depths=(1, 1, 1, 1)``) to keep the run short; the contract
  does not depend on depth.
- ``create_model(name, features_only=True)`` -> ``create_backbone(name)`` (a geofm backbone
  always returns the feature list); the input is timm's ``TARGET_FFEAT_SIZE`` (96) rounded
  to the family's size multiple (``input_spec.round_size``), batch size 1.
- ``forward_intermediates`` -> ``forward`` (the list of maps), compared with
  ``forward_features``; timm's own ``forward_intermediates`` name is checked separately.
- ``num_features`` -> ``embed_dim``; ``forward_head(pre_logits=True)`` -> ``embed``;
  ``default_cfg['first_conv'] + '.weight'`` -> ``stem_weight_key``.
- ``test_model_load_pretrained``: a local RGB checkpoint of timm's ``resnet18`` (no download),
  loaded with ``in_chans=1``; the stem is compared with ``timm.models.adapt_input_conv``, the
  rule timm applies. ADDED: ``in_chans`` 2, 4 and 13 against the same reference.
- ADDED: ``feature_info`` equals the channels and reductions of the real timm
  ``features_only`` model of the same architecture, and the maps equal timm's own
  (``features_only`` for ResNet, ``forward_intermediates`` for ViT and SwinV2) with the same
  weights.

Intended differences (backbones have no classifier, no ``features_only`` switch, no
``forward_intermediates`` method) are strict ``xfail`` with the reason.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import timm
import torch
from _peers import xfail
from safetensors.torch import save_file
from timm.models import adapt_input_conv

import geofm
from geofm.backbones import Backbone

TARGET_FFEAT_SIZE = 96  # timm's target input size for the feature tests
FAMILIES: dict[str, dict[str, Any]] = {
    "resnet18": {},
    "resnet50": {},
    "dinov2_vit_small_patch14": {"depth": 4},
    "vit_small_patch16": {"depth": 4},
    "swinv2_base_window8": {"depths": (1, 1, 1, 1)},
    "tv_swin_v2_b": {"depths": (1, 1, 1, 1)},
    "dofa_vit_base_patch16": {"depth": 4, "bands": "sentinel2_l2a"},
    "spec_vit_tiny_patch4": {"depth": 4},
    "spec_resnet50": {},
    "skysense_o_swinv2_huge": {"depths": (1, 1, 1, 1)},
}
NO_ADAPTABLE_STEM = {"dofa_vit_base_patch16", "spec_vit_tiny_patch4", "spec_resnet50"}
# geofm family -> (timm model, timm kwargs) for the parity checks
TIMM_TWINS: dict[str, tuple[str, dict[str, Any]]] = {
    "resnet18": ("resnet18", {}),
    "resnet50": ("resnet50", {}),
    "vit_small_patch16": ("vit_small_patch16_224", {"depth": 4, "dynamic_img_size": True}),
    "dinov2_vit_small_patch14": (
        "vit_small_patch14_dinov2",
        {"depth": 4, "dynamic_img_size": True},
    ),
    "swinv2_base_window8": (
        "swinv2_base_window8_256",
        {"depths": (1, 1, 1, 1), "strict_img_size": False, "dynamic_img_size": True},
    ),
}


def build(name: str, **extra: Any) -> Backbone:
    return geofm.create_backbone(name, **{**FAMILIES[name], **extra}).eval()


def input_for(model: Backbone, batch_size: int = 1) -> torch.Tensor:
    size = model.input_spec.round_size(TARGET_FFEAT_SIZE)
    return torch.randn(batch_size, model.in_chans, size, size)


@pytest.fixture(scope="module")
def models() -> dict[str, Backbone]:
    torch.manual_seed(0)
    return {name: build(name) for name in FAMILIES}


# --- test_model_forward_features -----------------------------------------------------------
@pytest.mark.parametrize("model_name", list(FAMILIES))
@pytest.mark.parametrize("batch_size", [1])
def test_model_forward_features(
    models: dict[str, Backbone], model_name: str, batch_size: int
) -> None:
    model = models[model_name]
    expected_channels = model.feature_info.channels()
    expected_reduction = model.feature_info.reduction()
    assert len(expected_channels) >= 3  # every model here has at least 3 feature levels
    x = input_for(model, batch_size)
    with torch.no_grad():
        outputs = model(x)
    assert len(expected_channels) == len(outputs)
    height, width = x.shape[-2:]
    for channels, reduction, out in zip(
        expected_channels, expected_reduction, outputs, strict=True
    ):
        assert out.shape[1] == channels  # always NCHW
        assert out.shape[2] <= math.ceil(height / reduction) + 1
        assert out.shape[3] <= math.ceil(width / reduction) + 1
        assert out.shape[0] == batch_size
        assert not torch.isnan(out).any()


@pytest.mark.parametrize("model_name", ["resnet18", "vit_small_patch16", "swinv2_base_window8"])
def test_model_forward_features_out_indices(model_name: str) -> None:
    # timm's create_model(..., out_indices=(1, 3)) selects those levels
    full = build(model_name)
    picked = build(model_name, out_indices=(1, 3))
    picked.load_state_dict(full.state_dict())
    x = input_for(full)
    with torch.no_grad():
        all_maps, two_maps = full(x), picked(x)
    assert picked.feature_info.channels() == [full.feature_info.channels(i) for i in (1, 3)]
    assert len(two_maps) == 2
    for i, out in zip((1, 3), two_maps, strict=True):
        torch.testing.assert_close(out, all_maps[i])


@pytest.mark.parametrize("model_name", list(TIMM_TWINS))
def test_added_feature_info_matches_timm_features_only(
    models: dict[str, Backbone], model_name: str
) -> None:
    model = models[model_name]
    timm_name, kwargs = TIMM_TWINS[model_name]
    offset = getattr(model, "stage_offset", 0)
    twin = timm.create_model(
        timm_name,
        pretrained=False,
        features_only=True,
        out_indices=tuple(i + offset for i in model.out_indices),
        **kwargs,
    )
    assert model.feature_info.channels() == twin.feature_info.channels()
    assert model.feature_info.reduction() == twin.feature_info.reduction()


@pytest.mark.parametrize("model_name", list(TIMM_TWINS))
def test_added_maps_match_timm_with_same_weights(
    models: dict[str, Backbone], model_name: str
) -> None:
    model = models[model_name]
    timm_name, kwargs = TIMM_TWINS[model_name]
    offset = getattr(model, "stage_offset", 0)
    indices = [i + offset for i in model.out_indices]
    x = input_for(model)
    if model_name.startswith("resnet"):
        twin = timm.create_model(
            timm_name, pretrained=False, features_only=True, out_indices=indices, **kwargs
        )
        twin.load_state_dict(model.model.state_dict())
        with torch.no_grad():
            expected = twin.eval()(x)
    else:
        img_size = model.model.patch_embed.img_size
        twin = timm.create_model(
            timm_name, pretrained=False, num_classes=0, img_size=img_size, **kwargs
        )
        twin.load_state_dict(model.model.state_dict())
        options = {"norm": True} if "vit" in model_name else {}  # geofm's ViT default norm=True
        with torch.no_grad():
            expected = twin.eval().forward_intermediates(
                x, indices=indices, intermediates_only=True, output_fmt="NCHW", **options
            )
    with torch.no_grad():
        actual = model(x)
    assert len(actual) == len(expected)
    for ours, theirs in zip(actual, expected, strict=True):
        torch.testing.assert_close(ours, theirs)


# --- test_model_forward_intermediates ------------------------------------------------------
@xfail(
    "intended difference: a geofm backbone has no forward_intermediates method; forward() "
    "returns the intermediate maps (timm's forward_intermediates(intermediates_only=True))",
    raises=AttributeError,
)
def test_model_forward_intermediates_method() -> None:
    model = build("resnet18")
    model.forward_intermediates(input_for(model))  # type: ignore[operator]


@pytest.mark.parametrize("model_name", list(FAMILIES))
def test_model_forward_intermediates(models: dict[str, Backbone], model_name: str) -> None:
    model = models[model_name]
    x = input_for(model)
    with torch.no_grad():
        output = model(x)
        assert len(output) == len(model.feature_info)
        for out, out_features in zip(output, model.forward_features(x), strict=True):
            torch.testing.assert_close(out, out_features)
    model.set_grad_checkpointing()  # every family supports it
    try:
        output3 = model(x.requires_grad_(True))  # eval mode as upstream; grad on to checkpoint
    finally:
        model.set_grad_checkpointing(False)
    for a, b in zip(output, output3, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5), "Output does not match"


# --- test_model_default_cfgs (the classifier-free parts) -----------------------------------
@pytest.mark.parametrize("model_name", list(FAMILIES))
def test_model_default_cfgs(models: dict[str, Backbone], model_name: str) -> None:
    model = models[model_name]
    assert model.embed_dim > 0  # timm: num_features > 0
    x = input_for(model)
    with torch.no_grad():
        last = model(x)[-1]
        pooled = model.embed(x)
    assert last.shape[1] == model.embed_dim  # unpooled features have num_features channels
    assert pooled.shape == (1, model.embed_dim)  # pre-logits have head_hidden_size
    # timm's default_cfg["first_conv"] names the layer that in_chans adaptation rewrites;
    # geofm's stem_weight_key does the same. Families that take any band set through a
    # wavelength-conditioned or spectral stem have none (they adapt by wavelength instead).
    if model_name in NO_ADAPTABLE_STEM:
        assert model.stem_weight_key == ""
    else:
        assert model.stem_weight_key in model.state_dict()


@xfail(
    "intended difference: backbones carry no classifier, so there is no num_classes, "
    "num_features, default_cfg or reset_classifier (embed_dim, input_spec instead)",
    raises=AttributeError,
)
def test_model_default_cfgs_timm_attributes() -> None:
    model = build("resnet18")
    assert model.num_features == model.embed_dim  # type: ignore[attr-defined]
    assert model.default_cfg["first_conv"] == "conv1"  # type: ignore[attr-defined]


# --- test_model_load_pretrained: in_chans != 3 ---------------------------------------------
@pytest.fixture(scope="module")
def rgb_resnet18_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.Tensor]:
    torch.manual_seed(0)
    reference = timm.create_model("resnet18", pretrained=False, num_classes=0)
    path = tmp_path_factory.mktemp("timm") / "resnet18_rgb.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    return path, reference.conv1.weight.detach().clone()


@pytest.mark.parametrize(
    "in_chans",
    [1, 2, 4, 13],  # upstream: 1; ADDED: 2, 4, 13
)
def test_model_load_pretrained_in_chans(
    rgb_resnet18_file: tuple[Path, torch.Tensor], in_chans: int
) -> None:
    path, rgb_kernel = rgb_resnet18_file
    model = geofm.create_backbone("resnet18", pretrained=path, in_chans=in_chans)
    expected = adapt_input_conv(in_chans, rgb_kernel.clone())
    torch.testing.assert_close(model.state_dict()[model.stem_weight_key], expected)
    with torch.no_grad():
        assert model(torch.randn(1, in_chans, 64, 64))[-1].shape == (1, 512, 2, 2)


@pytest.mark.parametrize("num_classes", [5, 0])
@xfail(
    "intended difference: create_backbone takes no classifier kwargs; num_classes raises "
    "TypeError listing the accepted keywords",
    raises=TypeError,
)
def test_model_load_pretrained_num_classes(
    rgb_resnet18_file: tuple[Path, torch.Tensor], num_classes: int
) -> None:
    path, _ = rgb_resnet18_file
    geofm.create_backbone("resnet18", pretrained=path, in_chans=1, num_classes=num_classes)


@xfail(
    "intended difference: there is no features_only switch; a backbone always returns the "
    "feature maps (TypeError listing the accepted keywords)",
    raises=TypeError,
)
def test_create_with_features_only_kwarg() -> None:
    geofm.create_backbone("resnet18", features_only=True)
