"""Any composition saves: task models from their constructors, LoRA anywhere, user classes.

Also the input/output contract in ``config.json`` and its validation before allocation.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

import geofm
from geofm import InputSpec, OutputSpec
from geofm.errors import WeightsError
from geofm.heads import (
    FPN,
    ClassificationHead,
    FCNHead,
    FPNSegmentationHead,
    PooledModel,
    RegressionHead,
    SegmentationModel,
    UPerNetHead,
    ViTFeaturePyramid,
)
from geofm.hub import from_pretrained, register_module, save_pretrained
from geofm.lora import LoRAConfig, apply_lora, merge_lora


@register_module("TestCompositionGatedHead")
class GatedHead(nn.Module):
    """A user head with a non-module argument and a module argument."""

    def __init__(
        self, inner: nn.Module, gate: float = 0.5, *, labels: tuple[str, ...] = ()
    ) -> None:
        super().__init__()
        self.inner = inner
        self.gate = gate
        self.labels = labels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.inner(x) * self.gate
        return out


def _randomise(model: nn.Module) -> nn.Module:
    """Give every parameter (LoRA B included) a non-trivial value so outputs depend on all."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    return model


def _segmentation_from_constructor() -> nn.Module:
    backbone = geofm.create_backbone("resnet18", in_chans=4)
    channels = backbone.feature_info.channels()
    return SegmentationModel(
        backbone,
        FPN(channels, out_channels=8),
        FPNSegmentationHead(8, num_classes=3, hidden_channels=8),
        output_spec=OutputSpec("segmentation", 3, class_names=("a", "b", "c")),
    )


def _vit_upernet() -> nn.Module:
    backbone = geofm.create_backbone(
        "vit_small_patch16", depth=2, img_size=32, in_chans=4, out_indices=[1]
    )
    neck = ViTFeaturePyramid(384, out_channels=16, scales=(4.0, 2.0, 1.0, 0.5))
    return SegmentationModel(backbone, neck, UPerNetHead([16] * 4, num_classes=2, channels=16))


def _pooled_with_linear() -> nn.Module:
    return PooledModel(geofm.create_backbone("resnet18", in_chans=4), nn.Linear(512, 3))


def _pooled_with_lora_on_the_model() -> nn.Module:
    model = PooledModel(
        geofm.create_backbone("resnet18", in_chans=4), RegressionHead(512, out_features=2)
    )
    return apply_lora(model, LoRAConfig(rank=2, targets=("backbone.model.layer4.0.conv1",)))


def _merged_lora_segmentation() -> nn.Module:
    model = _segmentation_from_constructor()
    apply_lora(model, LoRAConfig(rank=2, targets=("backbone.model.layer4.*.conv2",)))
    return model


def _user_class() -> nn.Module:
    head = GatedHead(
        nn.Sequential(nn.Linear(512, 8), nn.ReLU(), nn.Linear(8, 2)), 0.25, labels=("x", "y")
    )
    return PooledModel(geofm.create_backbone("resnet18", in_chans=4), head)


def _sensor_selection() -> nn.Module:
    from geofm.sensors import get_sensor

    bands = get_sensor("sentinel2_l2a").select(["red", "B3", "b02", "nir"])  # a 4-band record
    backbone = geofm.create_backbone("resnet18", bands=bands)
    return SegmentationModel(backbone, None, FCNHead(512, num_classes=3, hidden_channels=8))


CASES: dict[str, tuple[Callable[[], nn.Module], bool]] = {
    "segmentation_constructor": (_segmentation_from_constructor, False),
    "vit_upernet": (_vit_upernet, False),
    "pooled_linear": (_pooled_with_linear, False),
    "pooled_lora_on_model": (_pooled_with_lora_on_the_model, False),
    "segmentation_lora_merged": (_merged_lora_segmentation, True),
    "user_registered_class": (_user_class, False),
    "sensor_band_selection": (_sensor_selection, False),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_round_trip_gives_identical_outputs(case: str, tmp_path: Path) -> None:
    build, merge = CASES[case]
    model = _randomise(build()).eval()
    if merge:
        merge_lora(model)
    x = torch.randn(2, 4, 32, 64)  # non-square: swapped H/W would show
    with torch.no_grad():
        expected = model(x)
    save_pretrained(model, tmp_path)
    again = from_pretrained(tmp_path)
    assert type(again) is type(model) and not again.training
    with torch.no_grad():
        torch.testing.assert_close(again(x), expected, rtol=0, atol=0)
    assert again.state_dict().keys() == model.state_dict().keys()
    assert getattr(again, "output_spec", None) == getattr(model, "output_spec", None)
    assert again.input_spec == model.input_spec  # type: ignore[union-attr]


def test_user_class_arguments_are_restored(tmp_path: Path) -> None:
    model = _user_class()
    save_pretrained(model, tmp_path)
    again = from_pretrained(tmp_path)
    assert isinstance(again.head, GatedHead)
    assert again.head.gate == 0.25
    assert again.head.labels == ("x", "y")  # tuples stay tuples
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model"]["args"]["head"]["@module"]["module"] == "TestCompositionGatedHead"


def test_input_spec_set_by_the_user_travels_with_the_model(tmp_path: Path) -> None:
    backbone = geofm.create_backbone("resnet18", in_chans=2)
    spec = InputSpec(num_bands=2, mean=(10.0, 20.0), std=(2.0, 4.0), multiple=32)
    backbone.input_spec = spec
    model = PooledModel(backbone, ClassificationHead(512, 3))
    save_pretrained(model, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["input_spec"] == spec.to_dict()
    assert "mean 10, 20; std 2, 4" in (tmp_path / "README.md").read_text()
    again = from_pretrained(tmp_path)
    assert again.input_spec == spec


def test_model_card_is_a_hub_model_card_with_metrics(tmp_path: Path) -> None:
    from huggingface_hub import ModelCard

    save_pretrained(_segmentation_from_constructor(), tmp_path, metrics={"miou": 0.4251})
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.library_name == "geofm"
    assert "resnet18" in card.data.tags and "remote-sensing" in card.data.tags
    assert "| miou | 0.4251 |" in card.text
    assert "Classes: a, b, c." in card.text


def _saved_config(tmp_path: Path) -> dict:  # type: ignore[type-arg]
    save_pretrained(_segmentation_from_constructor(), tmp_path)
    return json.loads((tmp_path / "config.json").read_text())  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda c: c["model"]["args"]["backbone"]["@module"]["backbone"]["kwargs"].update(
                img_size=10**6
            ),
            r"model\.args\.backbone\.backbone\.kwargs\.img_size = 1000000 is out of range",
        ),
        (
            lambda c: c["model"]["args"]["head"]["@module"].update(module="os.system"),
            "unknown module class 'os.system'",
        ),
        (
            lambda c: c["model"]["args"]["backbone"]["@module"]["backbone"].update(name="nope"),
            "unknown backbone 'nope'",
        ),
        (
            lambda c: c["model"]["args"]["head"]["@module"]["args"].update(num_classes=-(10**9)),
            "num_classes = -1000000000 is out of range",
        ),
        (lambda c: c.update(surprise=1), "unknown field"),
        (lambda c: c["input_spec"].update(multiple=10**7), "input_spec: multiple must be"),
        (lambda c: c.update(merged_lora=["x"]), "merged_lora must map"),
    ],
)
def test_config_is_validated_before_anything_is_built(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    edit: Callable[[dict], None],  # type: ignore[type-arg]
    message: str,
) -> None:
    config = _saved_config(tmp_path)
    edit(config)
    (tmp_path / "config.json").write_text(json.dumps(config))
    built: list[str] = []
    monkeypatch.setattr("geofm.hub.rebuild.create_backbone", lambda *a, **k: built.append("x"))
    with pytest.raises(WeightsError, match=message) as info:
        from_pretrained(tmp_path)
    assert str(tmp_path / "config.json") in str(info.value)
    assert built == []  # nothing allocated


def test_deeply_nested_config_is_refused(tmp_path: Path) -> None:
    config = _saved_config(tmp_path)
    node: dict = {"module": "torch.nn.Identity", "args": {}}  # type: ignore[type-arg]
    for _ in range(40):
        node = {"module": "torch.nn.Sequential", "args": {"*args": [{"@module": node}]}}
    config["model"]["args"]["head"] = {"@module": node}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match="nests deeper than 32 levels"):
        from_pretrained(tmp_path)


def test_format_1_folders_still_load(tmp_path: Path) -> None:
    """A folder written by geofm 0.x's format 1 (kind + backbone + neck/head by name)."""
    from safetensors.torch import save_file

    model = _randomise(_segmentation_from_constructor()).eval()
    channels = model.backbone.feature_info.channels()  # type: ignore[union-attr]
    config = {
        "library": "geofm",
        "format": 1,
        "geofm_version": "0.1.0",
        "kind": "segmentation",
        "backbone": {"name": "resnet18", "kwargs": {"in_chans": 4}, "weights": None, "lora": None},
        "neck": {"name": "FPN", "kwargs": {"in_channels": channels, "out_channels": 8}},
        "head": {
            "name": "FPNSegmentationHead",
            "kwargs": {"in_channels": 8, "num_classes": 3, "hidden_channels": 8},
        },
        "lora": None,
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        str(tmp_path / "model.safetensors"),
    )
    again = from_pretrained(tmp_path)
    x = torch.randn(1, 4, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x), rtol=0, atol=0)


def test_several_named_adapters_are_refused_not_half_saved(tmp_path: Path) -> None:
    from geofm.lora import delete_adapter

    model = _pooled_with_lora_on_the_model()
    apply_lora(
        model,
        LoRAConfig(rank=2, targets=("backbone.model.layer4.0.conv1",)),
        adapter_name="second",
    )
    with pytest.raises(WeightsError, match="several named adapters.*delete_adapter"):
        save_pretrained(model, tmp_path)
    assert not (tmp_path / "model.safetensors").exists()
    delete_adapter(model, "second")
    save_pretrained(model, tmp_path)
    assert type(from_pretrained(tmp_path)) is PooledModel


def test_normalize_in_front_of_a_model_saves(tmp_path: Path) -> None:
    from geofm.transforms import Normalize

    norm = Normalize(mean=[10.0, 20.0], std=[2.0, 4.0], divisor=100.0, clip=(0.0, 50.0))
    model = nn.Sequential(
        norm, PooledModel(geofm.create_backbone("resnet18", in_chans=2), nn.Linear(512, 3))
    ).eval()
    save_pretrained(model, tmp_path)
    again = from_pretrained(tmp_path)
    x = torch.rand(2, 2, 32, 64) * 8000
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x), rtol=0, atol=0)


def test_saved_files_get_umask_permissions_and_no_temporary_is_left(tmp_path: Path) -> None:
    import os

    old = os.umask(0o022)
    try:
        save_pretrained(_pooled_with_linear(), tmp_path)
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {"README.md": 0o644, "config.json": 0o644, "model.safetensors": 0o644}


def test_sensors_are_saved_by_catalog_name_and_unknown_records_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from geofm.sensors import Sensor, get_sensor

    whole = geofm.create_backbone("resnet18", bands=get_sensor("sentinel2_l2a"), out_indices=[3])
    save_pretrained(SegmentationModel(whole, None, FCNHead(512, num_classes=2)), tmp_path / "a")
    stored = json.loads((tmp_path / "a" / "config.json").read_text())
    kwargs = stored["model"]["args"]["backbone"]["@module"]["backbone"]["kwargs"]
    assert kwargs["bands"] == "sentinel2_l2a"  # a whole catalog sensor: its name
    picked = _sensor_selection()
    save_pretrained(picked, tmp_path / "b")
    stored = json.loads((tmp_path / "b" / "config.json").read_text())
    kwargs = stored["model"]["args"]["backbone"]["@module"]["backbone"]["kwargs"]
    assert kwargs["bands"] == {
        "@sensor": {"name": "sentinel2_l2a", "bands": ["B04", "B03", "B02", "B08"]}
    }
    again = from_pretrained(tmp_path / "b")
    assert again.backbone.input_spec.bands == ("B04", "B03", "B02", "B08")
    save_pretrained(again, tmp_path / "c")  # a rebuilt model saves again, the same way
    assert json.loads((tmp_path / "c" / "config.json").read_text())["model"] == stored["model"]
    # A record the catalog cannot rebuild is refused at saving, naming the fix.
    custom = Sensor(name="my_camera", bands=("a", "b"), wavelengths=(500.0, 800.0))
    model = SegmentationModel(
        geofm.create_backbone("resnet18", bands=custom), None, FCNHead(512, num_classes=2)
    )
    with pytest.raises(
        WeightsError, match="'my_camera' is neither a registered sensor.*register_sensor"
    ):
        save_pretrained(model, tmp_path / "d")
    assert not (tmp_path / "d" / "config.json").exists()
    # A tampered record is refused before anything is built.
    built: list[str] = []
    monkeypatch.setattr("geofm.hub.rebuild.create_backbone", lambda *a, **k: built.append("x"))
    for record, message in (
        ({"name": "nope", "bands": ["B04"]}, "unknown sensor 'nope'"),
        ({"name": "sentinel2_l2a", "bands": ["B99"]}, "B99"),
        ({"name": "sentinel2_l2a", "bands": []}, "non-empty list"),
        ({"bands": ["B04"]}, "@sensor must be"),
    ):
        kwargs["bands"] = {"@sensor": record}
        (tmp_path / "b" / "config.json").write_text(json.dumps(stored))
        with pytest.raises(WeightsError, match=message):
            from_pretrained(tmp_path / "b")
    assert built == []
