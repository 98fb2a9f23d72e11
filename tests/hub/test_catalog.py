"""Every catalog entry resolves offline and loads a random file in its original layout."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
import timm
import torch
import torchvision
from safetensors.torch import save_file
from torch import nn

import geofm
from geofm.errors import UnknownNameError, WeightsError
from geofm.heads import FPN
from geofm.hub import get_weights, list_weights
from geofm.hub.info import describe_weights, format_weights_table
from geofm.sensors import get_sensor, list_sensors
from geofm.weights import catalog
from geofm.weights.catalog import WEIGHTS, WeightsSpec, resolve_weights
from geofm.weights.convert import get_converter
from geofm.weights.load import file_sha256

from .conftest import OfflineHub

StateDict = dict[str, torch.Tensor]
Original = tuple[StateDict, dict[str, Any], Callable[[geofm.Backbone], None]]


def _no_check(model: geofm.Backbone) -> None:
    return None


def _ref(model: nn.Module) -> nn.Module:
    """The reference model in eval mode; its random init differs from the geofm model's own."""
    return model.eval()


# --- original layouts -------------------------------------------------------------------
def _dinov2(size: str) -> Original:
    ref = _ref(
        timm.create_model(
            f"vit_{size}_patch14_dinov2", num_classes=0, depth=1, dynamic_img_size=True
        )
    )

    def check(model: geofm.Backbone) -> None:
        x = torch.randn(2, 3, 28, 42)  # H != W: a transposed position grid would show
        torch.testing.assert_close(model.embed(x), cast(Any, ref).forward_features(x)[:, 0])

    return dict(ref.state_dict()), {"depth": 1}, check


@functools.cache
def _tv_swin(in_chans: int) -> nn.Module:
    from torchvision.models.swin_transformer import (
        PatchMergingV2,
        SwinTransformer,
        SwinTransformerBlockV2,
    )

    tv = SwinTransformer(
        patch_size=[4, 4],
        embed_dim=128,
        depths=[1, 1, 1, 1],
        num_heads=[4, 8, 16, 32],
        window_size=[8, 8],
        block=SwinTransformerBlockV2,
        downsample_layer=PatchMergingV2,
    )
    if in_chans != 3:
        tv.features[0][0] = nn.Conv2d(in_chans, 128, kernel_size=4, stride=4)
    return _ref(tv)


def _swin_check(tv: nn.Module) -> Callable[[geofm.Backbone], None]:
    def check(model: geofm.Backbone) -> None:
        x = torch.randn(2, model.in_chans, 32, 64)
        want = tv.norm(tv.features(x)).mean(dim=(1, 2))  # type: ignore[operator]
        torch.testing.assert_close(model.embed(x), want)

    return check


def _satlas(in_chans: int) -> Original:
    tv = _tv_swin(in_chans)
    sd = {f"backbone.backbone.{k}": v for k, v in tv.state_dict().items()}
    fpn = FPN([128, 256, 512, 1024], out_channels=128)
    sd |= {f"intermediates.0.fpn.{k}": v for k, v in fpn.state_dict().items()}
    sd |= {"intermediates.1.layers.0.0.weight": torch.randn(128, 128, 3, 3)}
    sd |= {"heads.0.layers.0.0.weight": torch.randn(8, 128, 3, 3)}
    return sd, {"depths": (1, 1, 1, 1)}, _swin_check(tv)


def _satlas_torchgeo(in_chans: int) -> Original:
    tv = _tv_swin(in_chans)
    return dict(tv.state_dict()), {"depths": (1, 1, 1, 1)}, _swin_check(tv)


@functools.cache
def _timm_resnet50_ref(in_chans: int) -> nn.Module:
    return _ref(timm.create_model("resnet50", in_chans=in_chans))


@functools.cache
def _spec_ref(backbone: str) -> geofm.Backbone:
    kwargs: dict[str, Any] = {} if backbone == "spec_resnet50" else {"depth": 1}
    return geofm.create_backbone(backbone, **kwargs).eval()


def _timm_resnet50(in_chans: int) -> Original:
    ref = cast(Any, _timm_resnet50_ref(in_chans))

    def check(model: geofm.Backbone) -> None:
        x = torch.randn(2, in_chans, 32, 64)
        torch.testing.assert_close(
            model.embed(x), ref.forward_head(ref.forward_features(x), pre_logits=True)
        )

    return dict(ref.state_dict()), {}, check


def _vicreg() -> Original:
    tv = _ref(torchvision.models.resnet50())
    sd = {k: v for k, v in tv.state_dict().items() if not k.startswith("fc.")}

    def check(model: geofm.Backbone) -> None:
        x = torch.randn(2, 3, 32, 64)
        tv.fc = nn.Identity()
        torch.testing.assert_close(model.embed(x), tv(x))

    return sd, {}, check


def _ssl4eo_vit() -> Original:
    ref = _ref(timm.create_model("vit_small_patch16_224", in_chans=13, num_classes=0, depth=1))

    def check(model: geofm.Backbone) -> None:
        x = torch.randn(2, 13, 32, 48)
        ref.set_input_size(img_size=(32, 48))  # type: ignore[operator]
        want = ref.forward_features(x)[:, 0]  # type: ignore[operator]
        torch.testing.assert_close(model.embed(x), want)

    return dict(ref.state_dict()), {"depth": 1}, check


def _spectral_earth(name: str) -> Original:
    backbone = name.split(".")[0]
    kwargs: dict[str, Any] = {} if backbone == "spec_resnet50" else {"depth": 1}
    ref = _spec_ref(backbone)
    # SpectralEarth's own names: geofm's Spec-ViT holds the adapter as ``stem`` and the ViT as
    # ``model`` (Spec-RN50 keeps ``spectral_adapter`` / ``resnet``).
    plain = {
        k.replace("stem.", "spectral_adapter.", 1).replace("model.", "vit_core.", 1)
        if k.startswith(("stem.", "model."))
        else k: v
        for k, v in ref.state_dict().items()
    }
    if name.endswith("moco"):  # Lightning MoCo: query backbone, momentum copy, projection head
        sd = {f"backbone.{k}": v for k, v in plain.items()}
        sd |= {f"backbone_momentum.{k}": v.clone() for k, v in plain.items()}
        sd |= {"projection_head.layers.0.weight": torch.randn(16, 8)}
    elif name.endswith("dino"):  # student / teacher backbones and heads
        sd = {f"student_backbone.{k}": v for k, v in plain.items()}
        sd |= {f"teacher_backbone.{k}": torch.zeros_like(v) for k, v in plain.items()}
        sd |= {"student_head.last_layer.weight": torch.randn(4, 4)}
    else:  # MAE wrapper: adapter and patch projection aliased under vit_core.patch_embed
        sd = {}
        for k, v in plain.items():
            if k.startswith("spectral_adapter."):
                sd["vit_core.patch_embed." + k] = v
            elif k.startswith("vit_core.patch_embed.proj."):
                sd[k.replace("patch_embed.", "patch_embed.original_patch_embed.")] = v
            else:
                sd[k] = v
        sd |= {"decoder.decoder_pred.weight": torch.randn(4, 4), "mask_token": torch.zeros(1, 1, 4)}

    def check(model: geofm.Backbone) -> None:
        x = torch.randn(2, 202, 16, 32)
        torch.testing.assert_close(model.embed(x), ref.embed(x))

    return sd, kwargs, check


def _skysense() -> Original:
    """SkySense-O visual keys as they sit in skysense_clip.pth's ``model`` dict (nested by _place).

    Expanded views of one random row per tensor keep the file tiny at the real widths.
    """
    from geofm.backbones.skysense import SkySenseOVisualEncoder

    with torch.device("meta"):
        shapes = {
            k: v.shape for k, v in SkySenseOVisualEncoder(depths=(1, 1, 1, 1)).state_dict().items()
        }
    visual = {k: torch.randn(s[-1]).expand(s) for k, s in shapes.items()}
    sd = {f"backbone_gep.{k}": v for k, v in visual.items()}
    sd["backbone_gep.stages.3.blocks.0.attn.w_msa.relative_position_index"] = torch.zeros(256, 256)

    def check(model: geofm.Backbone) -> None:
        own = model.state_dict()
        for key in ("patch_embed.projection.weight", "stages.3.blocks.0.attn.w_msa.qkv.weight"):
            torch.testing.assert_close(own[key], visual[key].contiguous())

    return sd, {"depths": (1, 1, 1, 1)}, check


def _dofa(size: str) -> Original:
    """torchgeo's DOFA layout: the encoder keys without ``model.`` (no final norm, no head).

    tests/backbones/test_dofa.py lists every key and shape of that layout explicitly; geofm
    holds DOFA's generator under timm's ``patch_embed.proj``, so its own keys map back by
    dropping ``model.`` and ``proj.``. Expanded views of one random row per tensor keep the
    file tiny at the real widths.
    """
    with torch.device("meta"):
        shapes = {
            k.removeprefix("model.").replace("patch_embed.proj.", "patch_embed."): v.shape
            for k, v in geofm.create_backbone(f"dofa_vit_{size}_patch16", depth=1)
            .state_dict()
            .items()
        }
    sd = {k: torch.randn(s[-1]).expand(s) for k, s in shapes.items()}

    def check(model: geofm.Backbone) -> None:
        own = model.state_dict()
        for key, mine in (
            ("patch_embed.weight_generator.fc_weight.weight",
             "model.patch_embed.proj.weight_generator.fc_weight.weight"),
            ("blocks.0.attn.qkv.weight", "model.blocks.0.attn.qkv.weight"),
        ):  # fmt: skip
            torch.testing.assert_close(own[mine], sd[key].contiguous())

    return sd, {"depth": 1}, check


def _original(spec: WeightsSpec) -> Original:
    name = spec.name
    if name.startswith("dinov2_"):
        return _dinov2(name.split("_")[2])
    if name.startswith("tv_swin_v2_b."):
        chans = spec.in_chans or 3
        return _satlas_torchgeo(chans) if name.endswith("_torchgeo") else _satlas(chans)
    if name.startswith("resnet50.sentinel2"):
        return _timm_resnet50(13)
    if name == "resnet50.imagenet_vicreg":
        return _vicreg()
    if name == "vit_small_patch16.sentinel2_all_moco":
        return _ssl4eo_vit()
    if name.startswith("spec_"):
        return _spectral_earth(name)
    if name.startswith("skysense_o_swinv2_huge."):
        return _skysense()
    if name.startswith("dofa_vit_"):
        return _dofa(name.split("_")[2])
    raise AssertionError(f"test has no original layout for {name}; add one")


def _write(state: StateDict, path: Path) -> None:
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    elif path.suffix == ".ckpt":  # Lightning checkpoint container
        torch.save({"state_dict": state, "epoch": 3}, path)
    else:
        torch.save(state, path)


def _place(spec: WeightsSpec, state: StateDict, hub: OfflineHub) -> Path:
    """Write ``state`` where the catalog looks: the hub cache, or geofm's folder if not on a hub."""
    if spec.repo_id is not None and spec.filename is not None:
        path = hub.snapshot_path(spec.repo_id, spec.filename, spec.revision)
        if spec.converter == "skysense_o_visual":  # skysense_clip.pth: clip / model / teacher
            clip = {"vision_projection": torch.zeros(()).expand(2816, 1024)}
            teacher = {k: torch.zeros(()).expand(v.shape) for k, v in state.items()}
            torch.save({"clip": clip, "model": state, "teacher": teacher}, path)
        else:
            _write(state, path)
        hub.commit(path)
        return path
    path = hub.local_path(spec.name, spec.filename or "checkpoint.ckpt")
    _write(state, path)
    return path


LOADABLE = [n for n in list_weights() if get_weights(n).unsupported_reason is None]
# Output parity with the upstream architecture, once per layout family (the rest of the
# entries share the layout; strict loading already checks every key and shape).
PARITY = {
    "dinov2_vit_small_patch14.lvd142m",
    "tv_swin_v2_b.sentinel2_si_ms_satlas",
    "tv_swin_v2_b.aerial_si_satlas_torchgeo",
    "resnet50.sentinel2_all_moco",
    "resnet50.imagenet_vicreg",
    "vit_small_patch16.sentinel2_all_moco",
    "spec_resnet50.enmap_dino",
    "spec_vit_small_patch4.enmap_mae",
    "spec_vit_small_patch4.enmap_moco",
    "skysense_o_swinv2_huge.skysense_clip",  # loaded values (no upstream model installable)
    "dofa_vit_base_patch16.dofa_mae",  # loaded values; output parity in test_dofa.py
}
UNSUPPORTED = [n for n in list_weights() if get_weights(n).unsupported_reason is not None]


# --- metadata ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", list_weights())
def test_entry_metadata_is_consistent(name: str) -> None:
    spec = get_weights(name)
    assert spec.backbone in geofm.list_backbones(), f"{name}: backbone not registered"
    assert spec.license and spec.citation
    assert spec.repo_id is not None or spec.url is not None
    if spec.revision is not None:
        assert len(spec.revision) == 40 and int(spec.revision, 16) >= 0
    if spec.sensor is not None:
        assert spec.sensor in list_sensors()
        if spec.in_chans is not None:
            assert get_sensor(spec.sensor).num_bands == spec.in_chans
    if spec.sha256 is not None and spec.filename is not None and spec.repo_id is not None:
        # torchvision-style names end in -<sha256 prefix>.<ext>
        assert Path(spec.filename).stem.endswith("-" + spec.sha256)


def test_every_backbone_has_at_most_one_default() -> None:
    defaults: dict[str, list[str]] = {}
    for name in list_weights():
        spec = get_weights(name)
        if spec.default:
            defaults.setdefault(spec.backbone, []).append(name)
    assert all(len(v) == 1 for v in defaults.values()), defaults


def test_required_families_are_in_the_catalog() -> None:
    names = set(list_weights())
    for size in ("small", "base", "large", "giant"):
        assert f"dinov2_vit_{size}_patch14.lvd142m" in names
    for tag in ("sentinel2_si_rgb_satlas", "sentinel2_si_ms_satlas", "aerial_si_satlas"):
        assert f"tv_swin_v2_b.{tag}" in names
    assert get_weights("tv_swin_v2_b.sentinel2_si_ms_satlas").in_chans == 9
    assert {"spec_resnet50.enmap_moco", "spec_vit_small_patch4.enmap_moco"} <= names
    assert {"resnet50.sentinel2_all_moco", "dofa_vit_base_patch16.dofa_mae"} <= names


# --- loading each entry through the catalog, offline ------------------------------------
@pytest.mark.parametrize("name", LOADABLE)
def test_entry_loads_original_layout_strictly(
    name: str, offline_hub: OfflineHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    spec = get_weights(name)
    state, kwargs, check = _original(spec)
    path = _place(spec, state, offline_hub)
    if spec.sha256 is not None:  # the random file cannot have the published hash: use its own
        monkeypatch.setitem(
            WEIGHTS._items, name, dataclasses.replace(spec, sha256=file_sha256(path)[:10])
        )
    model = geofm.create_backbone(spec.backbone, pretrained=spec.tag, **kwargs).eval()
    report = model.load_report
    assert report is not None and report.ok
    if spec.in_chans is not None:
        assert model.in_chans == spec.in_chans
    assert model.config is not None and model.config.weights == name
    if name in PARITY:
        check(model)
    if spec.converter == "satlas_backbone":
        assert any(k.startswith("intermediates.0.fpn.") for k in report.ignored)
        assert any(k.startswith("heads.0.") for k in report.ignored)


def test_no_entry_is_reference_only() -> None:
    assert UNSUPPORTED == []


def test_hash_mismatch_through_the_catalog_is_an_error(offline_hub: OfflineHub) -> None:
    spec = get_weights("resnet50.sentinel2_all_moco")
    state, _, _ = _timm_resnet50(13)
    _place(spec, state, offline_hub)
    with pytest.raises(WeightsError, match=f"sha256 mismatch.*expected {spec.sha256}, got"):
        geofm.create_backbone("resnet50", pretrained="sentinel2_all_moco")


@pytest.mark.parametrize(("length", "index"), [(64, 63), (64, 31), (10, 9)])
def test_catalog_hash_differing_only_in_one_late_digit_is_an_error(
    offline_hub: OfflineHub, monkeypatch: pytest.MonkeyPatch, length: int, index: int
) -> None:
    name = "resnet50.sentinel2_all_moco"
    spec = get_weights(name)
    state, _, _ = _timm_resnet50(13)
    real = file_sha256(_place(spec, state, offline_hub))[:length]
    wrong = real[:index] + ("0" if real[index] != "0" else "1") + real[index + 1 :]
    monkeypatch.setitem(WEIGHTS._items, name, dataclasses.replace(spec, sha256=wrong))
    with pytest.raises(WeightsError, match=f"sha256 mismatch.*expected {wrong}, got {real}"):
        geofm.create_backbone("resnet50", pretrained="sentinel2_all_moco")
    monkeypatch.setitem(WEIGHTS._items, name, dataclasses.replace(spec, sha256=real))
    model = geofm.create_backbone("resnet50", pretrained="sentinel2_all_moco")
    assert model.load_report is not None and model.load_report.ok


def test_missing_hub_file_offline_names_the_fetch_command(offline_hub: OfflineHub) -> None:
    with pytest.raises(WeightsError) as info:
        geofm.create_backbone("dinov2_vit_small_patch14", pretrained=True, depth=1)
    message = str(info.value)
    assert "\n" not in message
    assert "HF_HUB_OFFLINE=1" in message
    assert (
        "hf download timm/vit_small_patch14_dinov2.lvd142m model.safetensors --revision" in message
    )
    assert str(offline_hub.weights_dir / "dinov2_vit_small_patch14.lvd142m") in message


def test_non_hub_weights_give_manual_download_steps(offline_hub: OfflineHub) -> None:
    with pytest.raises(WeightsError) as info:
        geofm.create_backbone("spec_vit_small_patch4", pretrained="enmap_mae", depth=1)
    message = str(info.value)
    assert "\n" not in message
    assert "not hosted on a hub" in message
    assert "https://syncandshare.desy.de/index.php/s/Po5bTPipz6EEHx3" in message
    assert str(offline_hub.weights_dir / "spec_vit_small_patch4.enmap_mae") in message
    assert "pretrained='path/to/file'" in message


def test_two_checkpoints_in_a_manual_folder_are_ambiguous(offline_hub: OfflineHub) -> None:
    for name in ("a.pth", "b.pth"):
        torch.save({"w": torch.zeros(1)}, offline_hub.local_path("spec_resnet50.enmap_moco", name))
    with pytest.raises(WeightsError, match=r"several checkpoint files \(a.pth, b.pth\)"):
        resolve_weights("spec_resnet50.enmap_moco")


def test_local_folder_comes_before_the_hub_cache(offline_hub: OfflineHub) -> None:
    spec = get_weights("dinov2_vit_small_patch14.lvd142m")
    local = offline_hub.local_path(spec.name, "model.safetensors")
    save_file({"w": torch.zeros(1)}, str(local))
    cached = offline_hub.snapshot_path(spec.repo_id or "", "model.safetensors", spec.revision)
    save_file({"w": torch.ones(1)}, str(cached))
    assert resolve_weights(spec).path == local


def test_resolve_with_an_explicit_path_keeps_converter_and_hash(tmp_path: Path) -> None:
    path = tmp_path / "se.pth"
    torch.save({"w": torch.zeros(1)}, path)
    resolved = resolve_weights("spec_resnet50.enmap_dino", path=path)
    assert resolved.path == path and resolved.converter is get_converter("spectral_earth")
    hashed = resolve_weights("resnet50.sentinel2_all_moco", path=path)
    assert hashed.path == path and hashed.converter is None
    assert hashed.sha256 == get_weights("resnet50.sentinel2_all_moco").sha256 == "df8b932e"
    with pytest.raises(WeightsError, match="is not a file"):
        resolve_weights("spec_resnet50.enmap_dino", path=tmp_path / "missing.pth")


def test_unknown_tag_and_bad_pretrained_type() -> None:
    with pytest.raises(
        UnknownNameError, match="Registered for it: dinov2_vit_small_patch14.lvd142m"
    ):
        geofm.create_backbone("dinov2_vit_small_patch14", pretrained="nope", depth=1)
    with pytest.raises(TypeError, match="pretrained must be False, True"):
        catalog.resolve_pretrained("resnet18", 3)  # type: ignore[arg-type]


def test_register_weights_validates_the_record() -> None:
    with pytest.raises(ValueError, match="must read '<backbone>.<tag>'"):
        catalog.register_weights(WeightsSpec(name="notag", repo_id="o/r"))
    with pytest.raises(ValueError, match="prefix of at least 8 hex digits"):
        catalog.register_weights(WeightsSpec(name="x.y", repo_id="o/r", sha256="abc"))
    with pytest.raises(ValueError, match="neither repo_id nor url"):
        catalog.register_weights(WeightsSpec(name="x.y"))
    with pytest.raises(UnknownNameError, match="Unknown converter 'satlas'"):
        catalog.register_weights(WeightsSpec(name="x.y", repo_id="o/r", converter="satlas"))


# --- CLI helpers ------------------------------------------------------------------------
def test_weights_table_lists_sensor_licence_and_hash_status() -> None:
    lines = format_weights_table().splitlines()
    assert lines[0].split() == ["name", "sensor", "bands", "licence", "hash", "source"]
    assert len(lines) == len(list_weights()) + 1
    row = next(line for line in lines if line.startswith("resnet50.sentinel2_all_moco "))
    assert row.split()[1:5] == ["ssl4eo_s12_sentinel2_l1c", "13", "CC-BY-4.0", "prefix"]
    row = next(line for line in lines if line.startswith("dofa_vit_base_patch16.dofa_mae "))
    assert "reference only" not in row
    row = next(line for line in lines if line.startswith("spec_resnet50.enmap_moco "))
    assert row.split()[3:5] == ["unknown", "-"] and "manual download" in row


def test_describe_weights_shows_every_field() -> None:
    text = describe_weights("tv_swin_v2_b.sentinel2_si_ms_satlas")
    assert "converter: satlas_backbone" in text
    assert "sensor:    satlas_sentinel2_ms: TCI_B04" in text
    assert "hash:      unknown (not verified)" in text
    assert "licence:   ODC-BY" in text
    with pytest.raises(UnknownNameError, match="Did you mean"):
        describe_weights("tv_swin_v2_b.sentinel2_si_ms_satla")
