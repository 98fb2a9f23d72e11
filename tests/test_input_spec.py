"""geofm.InputSpec / OutputSpec: the input contract, its arithmetic and its JSON form."""

from __future__ import annotations

import json

import pytest
import torch

import geofm
from geofm import InputSpec, OutputSpec
from geofm.errors import ShapeError
from geofm.sensors import ValueScaling, get_sensor


def test_prepare_follows_the_written_out_formula_band_by_band() -> None:
    rule = ValueScaling(offset=(100.0, 0.0, 50.0), divisor=(1000.0, 255.0, 10.0), clip=(0.0, 2.0))
    spec = InputSpec(num_bands=3, scaling=rule, mean=(0.1, 0.5, 1.0), std=(0.2, 0.25, 0.5))
    x = torch.rand(2, 3, 5, 7) * 3000  # non-square, batch 2
    expected = torch.empty_like(x)
    for c, (o, d, m, s) in enumerate(
        zip(rule.offset, rule.divisor, spec.mean or (), spec.std or (), strict=True)
    ):
        expected[:, c] = (((x[:, c] - o) / d).clamp(0.0, 2.0) - m) / s
    torch.testing.assert_close(spec.prepare(x), expected)
    torch.testing.assert_close(spec.prepare(x[0]), expected[0])  # (C, H, W) too


def test_prepare_without_scaling_or_statistics_is_a_float_cast() -> None:
    x = torch.randint(0, 1000, (1, 2, 3, 4), dtype=torch.int16)
    out = InputSpec.unknown(2).prepare(x)
    assert out.dtype == torch.float32 and torch.equal(out, x.float())


def test_prepare_rejects_another_band_count() -> None:
    with pytest.raises(ShapeError, match=r"expected \(N, 3, H, W\).*got \(1, 4, 8, 8\)"):
        InputSpec.unknown(3).prepare(torch.zeros(1, 4, 8, 8))


def test_from_sensor_takes_canonical_names_and_the_sensor_statistics() -> None:
    rgb = InputSpec.from_sensor("rgb", multiple=14)
    sensor = get_sensor("rgb")
    assert (rgb.mean, rgb.std, rgb.scaling) == (sensor.mean, sensor.std, sensor.scaling)
    subset = InputSpec.from_sensor("sentinel2_l2a", bands=["nir", "red"])
    assert subset.bands == ("B08", "B04")  # common names resolved to catalog identifiers
    assert subset.wavelengths == (832.8, 664.6)
    assert subset.sensor == "sentinel2_l2a"


@pytest.mark.parametrize(
    "spec",
    [
        InputSpec.unknown(5, multiple=32, min_size=64),
        InputSpec.from_sensor("sentinel2_l2a", bands=["B04", "B03", "B02"], multiple=14),
        InputSpec(
            num_bands=2,
            scaling=ValueScaling(offset=(4000.0, 0.0), divisor=(16320.0, 255.0), clip=(0.0, 1.0)),
            mean=(0.3, 0.4),
            std=(0.1, 0.2),
        ),
        InputSpec(num_bands=2, wavelengths=(490.0, 2200.0)),
    ],
)
def test_json_round_trip_is_exact(spec: InputSpec) -> None:
    assert InputSpec.from_json(spec.to_json()) == spec
    assert InputSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"num_bands": 0}, "num_bands must be an integer in"),
        ({"num_bands": 3, "multiple": 10**6}, "multiple must be an integer in"),
        ({"num_bands": 3, "min_size": -1}, "min_size must be an integer in"),
        ({"num_bands": 2, "mean": [1.0, 2.0], "std": [1.0, 0.0]}, "std must be positive"),
        ({"num_bands": 2, "mean": [1.0, 2.0]}, "both mean and std"),
        ({"num_bands": 2, "bands": ["a"]}, "2 bands but 1 bands"),
        ({"num_bands": 1, "wavelengths": [0.665]}, r"wavelengths must be in nm"),
        ({"num_bands": 1, "mean": ["x"], "std": [1.0]}, "mean must hold finite numbers"),
        ({"num_bands": 1, "colour": 1}, "unknown field"),
        ({"multiple": 2}, "missing field num_bands"),
        ({"num_bands": True}, "num_bands must be an integer"),
    ],
)
def test_from_dict_names_the_bad_field(data: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=message):
        InputSpec.from_dict(data, where="config.json input_spec")


def test_round_size_and_check_size() -> None:
    spec = InputSpec.unknown(3, multiple=14, min_size=56)
    assert [spec.round_size(s) for s in (256, 252, 13, 60)] == [252, 252, 56, 56]
    spec.check_size(56, 70)
    with pytest.raises(ShapeError, match="width 64 .* multiple of 14"):
        spec.check_size(56, 64)
    with pytest.raises(ShapeError, match="height 42 .* at least 56"):
        spec.check_size(42, 56)


def test_band_positions_match_descriptions_through_aliases() -> None:
    spec = InputSpec.from_sensor("sentinel2_l2a", bands=["B04", "B03", "B02"])
    assert spec.band_positions(["B02", "B03", "B04", "B08"]) == [2, 1, 0]
    assert spec.band_positions(["blue", "green", "red"]) == [2, 1, 0]
    assert spec.band_positions(["B02", "B03"]) is None  # red missing
    assert spec.band_positions(["", None, "B04"]) is None
    assert InputSpec.unknown(3).band_positions(["a", "b", "c"]) is None


def test_output_spec_round_trip_and_errors() -> None:
    out = OutputSpec(
        "segmentation", 2, class_names=("land", "water"), colors=((0, 0, 0), (0, 0, 255))
    )
    assert OutputSpec.from_dict(json.loads(json.dumps(out.to_dict()))) == out
    with pytest.raises(ValueError, match="kind must be one of"):
        OutputSpec("detection", 2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="2 outputs but 3 class_names"):
        OutputSpec("classification", 2, class_names=("a", "b", "c"))
    with pytest.raises(ValueError, match=r"colors must be \(r, g, b\)"):
        OutputSpec("segmentation", 1, colors=((0, 0, 256),))


def test_describe_states_what_is_unknown() -> None:
    text = InputSpec.from_sensor("rgb").describe()
    assert "3 of rgb: red, green, blue" in text and "raw / 255" in text
    assert "mean 0.485, 0.456, 0.406" in text


# --- backbones carry a spec ------------------------------------------------------------


def test_backbone_spec_from_bands_and_unknown_without() -> None:
    assert geofm.create_backbone("resnet18", in_chans=4).input_spec == InputSpec.unknown(
        4, multiple=32
    )
    named = geofm.create_backbone("resnet18", bands=["B04", "B03", "B02"])
    assert named.input_spec.bands == ("B04", "B03", "B02")
    sensor = geofm.create_backbone("resnet18", bands="sentinel2_l2a").input_spec
    assert sensor.num_bands == 12 and sensor.sensor == "sentinel2_l2a"
    assert sensor.scaling == get_sensor("sentinel2_l2a").scaling
    waves = geofm.create_backbone("dofa_vit_base_patch16", depth=1, bands=[664.6, 832.8])
    assert waves.input_spec.wavelengths == (664.6, 832.8)
    assert waves.input_spec.multiple == 16


def test_backbone_spec_is_settable_only_with_the_right_band_count() -> None:
    model = geofm.create_backbone("resnet18", in_chans=2)
    with pytest.raises(ShapeError, match="describes 3 bands but the backbone takes 2"):
        model.input_spec = InputSpec.unknown(3)
    with pytest.raises(TypeError, match="must be a geofm.InputSpec"):
        model.input_spec = {"num_bands": 2}  # type: ignore[assignment]


def test_every_catalog_entry_describes_its_checkpoint_band_count() -> None:
    from geofm.backbones import get_backbone_entry
    from geofm.hub import get_weights, list_weights

    for name in list_weights():
        entry = get_weights(name)
        if entry.sensor is None:
            continue
        sensor = get_sensor(entry.sensor)
        arch = get_backbone_entry(entry.backbone)
        expected = entry.in_chans
        if expected is None:
            import inspect

            default = inspect.signature(arch.builder).parameters.get("in_chans")
            expected = default.default if default is not None else 3
        assert sensor.num_bands == expected, name


def test_feature_info_answers_timm_style_queries() -> None:
    import timm

    model = geofm.create_backbone("resnet18", out_indices=[1, 2, 3])
    ref = timm.create_model("resnet18", features_only=True, out_indices=(2, 3, 4))
    assert model.feature_info.channels() == ref.feature_info.channels()
    assert model.feature_info.reduction() == ref.feature_info.reduction()
    assert model.feature_info.channels(1) == 256 and model.feature_info.reduction(-1) == 32


def test_models_have_hub_methods(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from geofm.heads import ClassificationHead, PooledModel, SegmentationModel

    model = PooledModel(geofm.create_backbone("resnet18", in_chans=2), ClassificationHead(512, 3))
    model.save_pretrained(tmp_path)
    again = PooledModel.from_pretrained(tmp_path)
    x = torch.randn(2, 2, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model.eval()(x), rtol=0, atol=0)
    with pytest.raises(TypeError, match="holds a PooledModel, not a SegmentationModel"):
        SegmentationModel.from_pretrained(tmp_path)
