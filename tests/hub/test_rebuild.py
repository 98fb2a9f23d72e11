"""save_pretrained -> from_pretrained round trips, hub loading offline, push_to_hub's upload."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

import geofm
from geofm.errors import UnknownNameError, WeightsError
from geofm.heads import FCNHead, SegmentationModel
from geofm.hub import (
    ModuleSpec,
    build_segmentation_model,
    from_pretrained,
    rebuild,
    save_pretrained,
)
from geofm.lora import LoRAConfig, apply_lora, get_lora_config, merge_lora, unmerge_lora

from .conftest import OfflineHub


def _vit(**kwargs: Any) -> geofm.Backbone:
    return geofm.create_backbone(
        "vit_small_patch16", depth=1, img_size=32, in_chans=4, out_indices=[0], **kwargs
    ).eval()


def _perturb_lora(model: torch.nn.Module) -> None:
    """LoRA B starts at zero; give every adapter weight a value so it changes the output."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn_like(p) * 0.1)


def _same_outputs(a: torch.nn.Module, b: torch.nn.Module, x: torch.Tensor) -> None:
    out_a, out_b = a(x), b(x)
    if isinstance(out_a, list):
        for p, q in zip(out_a, out_b, strict=True):
            assert torch.equal(p, q)
    else:
        assert torch.equal(out_a, out_b)


def test_backbone_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    model = _vit()
    folder = save_pretrained(model, tmp_path / "m")
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    config = json.loads((folder / "config.json").read_text())
    assert config["library"] == "geofm" and config["format"] == 2
    assert config["model"] == {
        "backbone": {
            "name": "vit_small_patch16",
            "kwargs": {"depth": 1, "img_size": 32, "in_chans": 4, "out_indices": [0]},
            "weights": None,
        }
    }
    assert config["input_spec"] == geofm.InputSpec.unknown(4, multiple=16).to_dict()
    assert load_file(folder / "model.safetensors").keys() == model.state_dict().keys()
    again = from_pretrained(folder)
    assert isinstance(again, geofm.Backbone) and not again.training
    x = torch.randn(2, 4, 32, 32)
    _same_outputs(model, again, x)
    assert torch.equal(model.embed(x), again.embed(x))


def test_lora_backbone_round_trip_restores_config_and_adapters(tmp_path: Path) -> None:
    model = apply_lora(_vit(), LoRAConfig(rank=2, alpha=4.0, targets=("qkv", "fc1")))
    _perturb_lora(model)
    save_pretrained(model, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model"]["lora"]["rank"] == 2
    again = from_pretrained(tmp_path)
    assert isinstance(again, geofm.Backbone)
    assert get_lora_config(again) == LoRAConfig(rank=2, alpha=4.0, targets=("qkv", "fc1"))
    x = torch.randn(1, 4, 32, 32)
    assert torch.equal(model.embed(x), again.embed(x))
    assert not torch.equal(model.embed(x), _vit().embed(x))


def test_merged_lora_round_trips_and_unmerges_to_the_original(tmp_path: Path) -> None:
    model = apply_lora(_vit(), LoRAConfig(rank=2, targets=("qkv",)))
    _perturb_lora(model)
    x = torch.randn(2, 4, 32, 48)
    unmerged_out = model.embed(x)
    base = {k: v.clone() for k, v in model.state_dict().items() if "lora_" not in k}
    merge_lora(model)
    save_pretrained(model, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["merged_lora"] == {"model.blocks.0.attn.qkv": "default"}
    again = from_pretrained(tmp_path)
    torch.testing.assert_close(again.embed(x), model.embed(x), rtol=0, atol=0)
    unmerge_lora(again)  # the saved base weight holds the update once: unmerging recovers W0
    torch.testing.assert_close(again.embed(x), unmerged_out, rtol=1e-5, atol=1e-5)
    for key, value in again.state_dict().items():
        if key in base:
            torch.testing.assert_close(value, base[key], rtol=1e-5, atol=1e-6)


def test_segmentation_model_round_trip_with_lora_in_the_backbone(tmp_path: Path) -> None:
    backbone = geofm.create_backbone("resnet18", in_chans=5)
    apply_lora(backbone, LoRAConfig(rank=2, targets=("layer4.*.conv2",)))
    _perturb_lora(backbone)
    channels = [f.channels for f in backbone.feature_info]
    model = build_segmentation_model(
        backbone,
        neck=ModuleSpec("FPN", {"in_channels": channels, "out_channels": 16}),
        head=ModuleSpec("FPNSegmentationHead", {"in_channels": 16, "num_classes": 3}),
    ).eval()
    save_pretrained(model, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    root = config["model"]
    assert root["module"] == "SegmentationModel"
    assert root["args"]["neck"]["@module"]["module"] == "FPN"
    assert root["args"]["backbone"]["@module"]["lora"]["targets"] == ["layer4.*.conv2"]
    again = from_pretrained(tmp_path)
    assert isinstance(again, SegmentationModel)
    x = torch.randn(2, 5, 64, 64)
    out = again(x)
    assert out.shape == (2, 3, 64, 64) and torch.equal(out, model(x))


def test_model_card_records_architecture_weights_and_licence(
    tmp_path: Path, offline_hub: OfflineHub
) -> None:
    import timm

    spec = geofm.hub.get_weights("dinov2_vit_small_patch14.lvd142m")
    path = offline_hub.snapshot_path(spec.repo_id or "", "model.safetensors", spec.revision)
    src = timm.create_model("vit_small_patch14_dinov2", num_classes=0, depth=1)
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    offline_hub.commit(path)
    model = geofm.create_backbone("dinov2_vit_small_patch14", pretrained=True, depth=1)
    save_pretrained(model, tmp_path)
    card = (tmp_path / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: geofm\nlicense: apache-2.0\n")
    assert '"name": "dinov2_vit_small_patch14"' in card
    assert "catalog entry `dinov2_vit_small_patch14.lvd142m`" in card
    assert "bands: 3 of rgb: red, green, blue" in card  # the input spec of the weights
    assert "raw / 255" in card
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model"]["backbone"]["weights"] == "dinov2_vit_small_patch14.lvd142m"
    assert config["model"]["backbone"]["kwargs"]["pretrained_bands"] == "rgb"
    assert config["input_spec"]["multiple"] == 14
    assert config["input_spec"]["mean"] == [0.485, 0.456, 0.406]
    again = from_pretrained(tmp_path)  # rebuilt without fetching the catalog weights again
    assert isinstance(again, geofm.Backbone)
    assert again.config is not None and again.config.weights == spec.name
    assert again.input_spec == model.input_spec
    x = torch.randn(1, 3, 28, 28)
    assert torch.equal(model.eval().embed(x), again.embed(x))


def test_from_pretrained_reads_a_hub_repo_through_the_offline_cache(
    tmp_path: Path, offline_hub: OfflineHub
) -> None:
    model = geofm.create_backbone("resnet18", out_indices=[3]).eval()
    save_pretrained(model, tmp_path / "saved")
    for name in ("config.json", "model.safetensors"):
        path = offline_hub.snapshot_path("org/my-model", name, None)
        path.write_bytes((tmp_path / "saved" / name).read_bytes())
        offline_hub.commit(path)
    again = from_pretrained("org/my-model")
    x = torch.randn(1, 3, 32, 32)
    _same_outputs(model, again, x)
    with pytest.raises(WeightsError, match="could not be fetched from the hub") as info:
        from_pretrained("org/not-cached")
    assert "\n" not in str(info.value)


def test_push_to_hub_uploads_exactly_the_saved_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub

    calls: dict[str, Any] = {}

    class FakeApi:
        def __init__(self, token: str | None = None) -> None:
            calls["token"] = token

        def create_repo(self, **kwargs: Any) -> None:
            calls["create_repo"] = kwargs

        def upload_folder(self, **kwargs: Any) -> str:
            folder = Path(kwargs["folder_path"])
            calls["upload"] = kwargs
            calls["files"] = {p.name: p.read_bytes() for p in folder.iterdir()}
            return "https://huggingface.co/org/m/commit/abc"

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    model = geofm.create_backbone("resnet18", in_chans=2)
    url = rebuild.push_to_hub(model, "org/m", token="t0k", private=True)
    assert url == "https://huggingface.co/org/m/commit/abc"
    assert calls["token"] == "t0k"
    assert calls["create_repo"] == {"repo_id": "org/m", "private": True, "exist_ok": True}
    assert calls["upload"]["repo_id"] == "org/m" and calls["upload"]["revision"] is None
    save_pretrained(model, tmp_path)
    assert sorted(calls["files"]) == ["README.md", "config.json", "model.safetensors"]
    assert calls["files"]["config.json"] == (tmp_path / "config.json").read_bytes()
    uploaded = tmp_path / "uploaded.safetensors"
    uploaded.write_bytes(calls["files"]["model.safetensors"])
    for key, value in load_file(uploaded).items():
        assert torch.equal(value, model.state_dict()[key])


# --- errors ------------------------------------------------------------------------------
class _Unregistered(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(512, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


def test_models_geofm_cannot_rebuild_are_refused_naming_the_class_and_the_call(
    tmp_path: Path,
) -> None:
    from geofm.heads import PooledModel

    model = PooledModel(geofm.create_backbone("resnet18"), _Unregistered())
    with pytest.raises(WeightsError, match=r"test_rebuild\._Unregistered.*register_module"):
        save_pretrained(model, tmp_path)
    assert not (tmp_path / "config.json").exists()
    backbone = geofm.create_backbone("resnet18", out_indices=[3])
    backbone.config = None
    with pytest.raises(WeightsError, match="not built by geofm.create_backbone"):
        save_pretrained(backbone, tmp_path)
    with pytest.raises(WeightsError, match="torch.nn.modules.rnn.LSTM"):
        save_pretrained(torch.nn.LSTM(2, 2), tmp_path)


def test_a_part_changed_after_construction_is_refused(tmp_path: Path) -> None:
    model = SegmentationModel(
        geofm.create_backbone("resnet18", out_indices=[3]), None, FCNHead(512, num_classes=2)
    )
    model.head.conv = torch.nn.Conv2d(512, 7, 1)  # type: ignore[assignment]
    with pytest.raises(WeightsError, match="would differ"):
        save_pretrained(model, tmp_path)


def test_arguments_that_are_not_json_are_refused_and_sensors_are_saved_by_name(
    tmp_path: Path,
) -> None:
    from geofm.sensors import Sensor, get_sensor

    model = geofm.create_backbone("resnet18", bands=get_sensor("sentinel2_l2a"))
    save_pretrained(model, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model"]["backbone"]["kwargs"]["bands"] == "sentinel2_l2a"
    assert from_pretrained(tmp_path).in_chans == 12
    odd = Sensor("my_sensor", bands=("a", "b"), wavelengths=(500.0, 600.0))
    with pytest.raises(WeightsError, match="sensor record .my_sensor. is neither a registered"):
        save_pretrained(geofm.create_backbone("resnet18", bands=odd), tmp_path / "x")


def test_from_pretrained_rejects_foreign_or_incomplete_folders(tmp_path: Path) -> None:
    save_pretrained(geofm.create_backbone("resnet18"), tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(WeightsError, match="has no model.safetensors"):
        from_pretrained(tmp_path)
    save_pretrained(geofm.create_backbone("resnet18"), tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(WeightsError, match="not a geofm config"):
        from_pretrained(tmp_path)


def test_from_pretrained_is_strict_about_the_tensors(tmp_path: Path) -> None:
    save_pretrained(geofm.create_backbone("resnet18"), tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["model"]["backbone"]["kwargs"]["in_chans"] = 4
    config["input_spec"] = None
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match="Strict loading failed.*shape-mismatched"):
        from_pretrained(tmp_path)


def test_only_geofm_heads_classes_can_be_named() -> None:
    with pytest.raises(UnknownNameError, match="Unknown neck/head class 'os.system'"):
        ModuleSpec("os.system", {}).build()
    with pytest.raises(UnknownNameError, match="Expected one of geofm.heads"):
        ModuleSpec("SegmentationModel", {}).build()


@pytest.mark.parametrize(
    ("head", "kwargs"),
    [
        ("ClassificationHead", {"in_features": 512, "num_classes": 4}),
        ("RegressionHead", {"in_features": 512, "out_features": 2}),
    ],
)
def test_pooled_model_round_trip_gives_identical_outputs(
    tmp_path: Path, head: str, kwargs: dict[str, int]
) -> None:
    from geofm.heads import PooledModel
    from geofm.hub import build_pooled_model

    backbone = geofm.create_backbone("resnet18", in_chans=4)
    model = build_pooled_model(backbone, head=ModuleSpec(head, kwargs)).eval()
    apply_lora(model, LoRAConfig(rank=2, targets=("model.layer4.0.conv1",)))
    save_pretrained(model, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model"]["module"] == "PooledModel"
    assert config["model"]["args"]["head"]["@module"]["module"] == head
    assert config["model"]["lora"]["rank"] == 2
    again = from_pretrained(tmp_path)
    assert isinstance(again, PooledModel)
    x = torch.randn(2, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x), rtol=0, atol=0)
