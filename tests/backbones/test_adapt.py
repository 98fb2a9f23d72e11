"""Tests of first-layer adaptation (geofm.backbones.adapt) and its use by create_backbone."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest
import torch
from safetensors.torch import save_file
from timm.models._manipulate import adapt_input_conv

import geofm
from geofm.backbones.adapt import adapt_input_weight
from geofm.errors import ShapeError, UnknownNameError
from geofm.sensors import Sensor, get_sensor

BEN6 = ["B04", "B03", "B02", "B08", "B11", "B12"]
GREEN_NM, RED_NM = 559.8, 664.6  # the rgb record's green and red centres


def _kernel(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _one_band(wavelength: float) -> Sensor:
    return Sensor("probe", bands=("probe",), wavelengths=(wavelength,))


# -- band information on both sides -------------------------------------------------


def test_rgb_to_sentinel2_copies_matching_bands_and_takes_the_nearest_outside() -> None:
    w = _kernel(5, 3, 2, 3)
    new, report = adapt_input_weight(
        w,
        target_in_chans=13,
        source_bands=get_sensor("rgb"),
        target_bands=get_sensor("sentinel2_l1c"),
    )
    assert report.copied == {1: 2, 2: 1, 3: 0}  # B02<-blue, B03<-green, B04<-red
    assert torch.equal(new[:, [3, 2, 1]], w)
    # Every other S2 band lies outside the rgb range 492.4-664.6 nm: nearest band.
    assert [c.method for c in report.channels if c.is_new] == ["nearest"] * 10
    assert torch.equal(new[:, 0], w[:, 2])  # B01 (442.7 nm) <- blue
    assert all(torch.equal(new[:, i], w[:, 0]) for i in range(4, 13))  # <- red
    assert report.summary() == "3 copied, 10 nearest by wavelength"


@pytest.mark.parametrize("fraction", [0.25, 0.75])
def test_interpolation_weights_follow_the_distance_to_each_neighbour(fraction: float) -> None:
    # Off the midpoint, so swapping the two weights gives a different kernel.
    w = _kernel(4, 3, 3, 2)
    wavelength = GREEN_NM + fraction * (RED_NM - GREEN_NM)
    new, report = adapt_input_weight(
        w, target_in_chans=1, source_bands=get_sensor("rgb"), target_bands=_one_band(wavelength)
    )
    assert report.channels[0].method == "interpolate"
    want = (1 - fraction) * w[:, 1] + fraction * w[:, 0]  # green, red
    swapped = fraction * w[:, 1] + (1 - fraction) * w[:, 0]
    torch.testing.assert_close(new[:, 0], want)
    assert not torch.allclose(new[:, 0], swapped)


def test_landsat_pan_is_interpolated_between_green_and_red() -> None:
    w = _kernel(3, 3, 1, 1)
    pan = get_sensor("landsat89_oli").select(["B8"])
    new, report = adapt_input_weight(
        w, target_in_chans=1, source_bands=get_sensor("rgb"), target_bands=pan
    )
    t = (589.50 - GREEN_NM) / (RED_NM - GREEN_NM)  # 0.283: pan sits nearer green
    (green, a), (red, b) = report.channels[0].sources
    assert (green, red) == (1, 0) and a == pytest.approx(1 - t) and b == pytest.approx(t)
    torch.testing.assert_close(new[:, 0], (1 - t) * w[:, 1] + t * w[:, 0])


def test_same_identifier_of_another_sensor_is_not_the_same_band() -> None:
    # Landsat "B5" is nir08 (864.7 nm); Sentinel-2 "B05" is red edge (704.1 nm).
    landsat = get_sensor("landsat89_oli")
    w = _kernel(2, 9, 1, 1)
    target = get_sensor("sentinel2_l2a").select(["B05", "B8A", "B04"])
    new, report = adapt_input_weight(
        w, target_in_chans=3, source_bands=landsat, target_bands=target
    )
    assert report.channels[0].method == "interpolate"  # B05 between Landsat red and nir08
    t = (704.1 - 654.59) / (864.67 - 654.59)
    torch.testing.assert_close(new[:, 0], (1 - t) * w[:, 3] + t * w[:, 4])
    assert report.copied == {1: 4, 2: 3}  # B8A <- nir08 (B5), B04 <- red (B4)


def test_a_common_name_shared_by_several_source_bands_goes_by_wavelength() -> None:
    # WorldView-3's single "rededge" (725 nm) against Sentinel-2's three.
    w = _kernel(2, 12, 1, 1)
    target = get_sensor("worldview3_spacenet2_ms").select(["rededge"])
    new, report = adapt_input_weight(
        w, target_in_chans=1, source_bands=get_sensor("sentinel2_l2a"), target_bands=target
    )
    t = (725.0 - 704.1) / (740.5 - 704.1)
    assert report.channels[0].method == "interpolate"
    torch.testing.assert_close(new[:, 0], (1 - t) * w[:, 4] + t * w[:, 5])


@pytest.mark.parametrize(
    ("spellings", "index"),
    [
        (["B4", "B04", "red", "b04", "b4"], 3),
        (["B8A", "B8a", "nir08", "b08a"], 8),
        (["B05", "rededge1", "B5"], 4),
    ],
)
def test_aliases_pick_identical_kernels(spellings: list[str], index: int) -> None:
    w = _kernel(6, 13, 3, 3)
    s2 = get_sensor("sentinel2_l1c")
    picked = [
        adapt_input_weight(w, target_in_chans=1, source_bands=s2, target_bands=[name])[0]
        for name in spellings
    ]
    for kernel in picked:
        assert torch.equal(kernel[:, 0], w[:, index])


def test_landsat_collection2_names_pick_the_catalog_bands() -> None:
    w = _kernel(2, 11, 1, 1)
    new, report = adapt_input_weight(
        w,
        target_in_chans=3,
        source_bands=get_sensor("landsat89_oli_tirs"),
        target_bands=["SR_B4", "ST_B10", "nir08"],
    )
    assert report.copied == {0: 3, 1: 9, 2: 4}
    assert [c.band for c in report.channels] == ["B4", "B10", "B5"]
    assert torch.equal(new, w[:, [3, 9, 4]])


def test_sentinel2_to_bigearthnet_subset_picks_the_right_slices() -> None:
    w = _kernel(4, 13, 3, 3)
    new, report = adapt_input_weight(
        w, target_in_chans=6, source_bands=get_sensor("sentinel2_l1c"), target_bands=BEN6
    )
    assert report.copied == {0: 3, 1: 2, 2: 1, 3: 7, 4: 11, 5: 12}
    assert report.new_channels == ()
    assert torch.equal(new, w[:, [3, 2, 1, 7, 11, 12]])


def test_named_pretrained_bands_are_read_as_bands_of_the_target_sensor() -> None:
    # The file's bands named in Sentinel-2 spelling, the model's bands a sensor record.
    w = _kernel(3, 3, 1, 1)
    new, report = adapt_input_weight(
        w,
        target_in_chans=12,
        source_bands=["B4", "green", "B02"],
        target_bands=get_sensor("sentinel2_l2a"),
    )
    assert report.copied == {1: 2, 2: 1, 3: 0}
    assert torch.equal(new[:, [3, 2, 1]], w)
    assert report.channels[0].method == "nearest"  # B01 below blue
    assert torch.equal(new[:, 0], w[:, 2])
    assert all(c.method == "nearest" for c in report.channels[4:])


def test_bare_names_match_across_spellings_without_a_sensor() -> None:
    w = _kernel(2, 3, 1, 1)
    new, report = adapt_input_weight(
        w, target_in_chans=2, source_bands=["B02", "B03", "B04"], target_bands=["b4", "B2"]
    )
    assert report.copied == {0: 2, 1: 0}
    assert torch.equal(new, w[:, [2, 0]])


@pytest.mark.parametrize(
    ("source", "target", "match"),
    [
        ("sentinel2_l1c", ["B13"], r"'B13' is not a band of sensor 'sentinel2_l1c'\. Did you mean"),
        ("sentinel2_l1c", ["rededge"], "ambiguous .* B05, B06, B07"),
        ("rgb", ["B04"], "not a band of sensor 'rgb'.*select"),
        (["a", "b"], ["z"], "'z' is not among the pretrained bands a, b"),
        (["b", "B"], ["b"], "matches several pretrained bands"),
    ],
)
def test_target_bands_that_match_nothing_raise(
    source: str | list[str], target: list[str], match: str
) -> None:
    info = get_sensor(source) if isinstance(source, str) else source
    w = _kernel(2, len(info.bands) if isinstance(info, Sensor) else len(info), 1, 1)
    with pytest.raises(UnknownNameError, match=match):
        adapt_input_weight(w, target_in_chans=len(target), source_bands=info, target_bands=target)


def test_unknown_pretrained_names_raise() -> None:
    w = _kernel(2, 2, 1, 1)
    with pytest.raises(UnknownNameError, match="source_bands: .*'Bx'"):
        adapt_input_weight(
            w,
            target_in_chans=12,
            source_bands=["B04", "Bx"],
            target_bands=get_sensor("sentinel2_l2a"),
        )


# -- no band information: timm's rule -------------------------------------------------


@pytest.mark.parametrize("in_chans", [1, 2, 4, 5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("source_known", [False, True])
def test_without_band_information_equals_timm(
    in_chans: int, dtype: torch.dtype, source_known: bool
) -> None:
    w = _kernel(7, 3, 3, 5).to(dtype)
    want = adapt_input_conv(in_chans, w.clone())
    source = get_sensor("rgb") if source_known else None
    new, report = adapt_input_weight(w, target_in_chans=in_chans, source_bands=source)
    assert new.dtype == dtype
    assert torch.equal(new, want)
    if in_chans == 1:
        assert report.channels[0].method == "sum" and report.rescale == 1.0
    else:
        assert {c.method for c in report.channels} == {"repeat"}
        assert report.rescale == pytest.approx(3 / in_chans)


def test_without_band_information_a_non_rgb_source_raises_naming_the_arguments() -> None:
    w = _kernel(4, 13, 3, 3)
    with pytest.raises(ShapeError, match=r"13 input channels to 3.*both sides.*pretrained_bands="):
        adapt_input_weight(w, target_in_chans=3)
    with pytest.raises(ShapeError, match=r"the new input \(target_bands\).* bands= "):
        adapt_input_weight(w, target_in_chans=3, source_bands=get_sensor("sentinel2_l1c"))
    with pytest.raises(ShapeError, match=r"the pretrained kernel \(source_bands\)"):
        adapt_input_weight(w, target_in_chans=3, target_bands=get_sensor("rgb"))


def test_same_count_without_band_information_is_unchanged() -> None:
    w = _kernel(2, 4, 1, 1, seed=3)
    new, report = adapt_input_weight(w, target_in_chans=4)
    assert torch.equal(new, w) and report.is_identity


def test_band_list_length_errors() -> None:
    w = _kernel(2, 3, 1, 1)
    with pytest.raises(ShapeError, match="source_bands lists 13 bands but the pretrained kernel"):
        adapt_input_weight(w, target_in_chans=3, source_bands=get_sensor("sentinel2_l1c"))
    with pytest.raises(ShapeError, match="target_bands lists 6 bands but target_in_chans is 5"):
        adapt_input_weight(w, target_in_chans=5, source_bands=get_sensor("rgb"), target_bands=BEN6)
    with pytest.raises(ValueError, match="positive"):
        adapt_input_weight(w, target_in_chans=0)
    with pytest.raises(ShapeError, match=r"\(O, C, \.\.\.\)"):
        adapt_input_weight(torch.zeros(3), target_in_chans=1)


# -- through create_backbone (Backbone.adapt_state_dict) --------------------------------


def _stem(model: torch.nn.Module) -> torch.Tensor:
    """The first-layer kernel of a geofm resnet (timm's ``conv1`` under ``model``)."""
    return cast(torch.Tensor, model.get_parameter("model.conv1.weight"))


def _save(model: torch.nn.Module, path: Path) -> Path:
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def test_create_backbone_aliases_pick_identical_kernels(tmp_path: Path) -> None:
    src = geofm.create_backbone("resnet18", in_chans=13)
    path = _save(src, tmp_path / "s2.safetensors")
    kernels = [
        _stem(
            geofm.create_backbone(
                "resnet18", bands=names, pretrained=path, pretrained_bands="sentinel2_l1c"
            )
        )
        for names in (["B4", "B3", "B2"], ["B04", "B03", "B02"], ["red", "green", "blue"])
    ]
    want = _stem(src)[:, [3, 2, 1]]
    assert all(torch.equal(k, want) for k in kernels)


def test_create_backbone_without_band_information_raises_for_13_to_3(tmp_path: Path) -> None:
    path = _save(geofm.create_backbone("resnet18", in_chans=13), tmp_path / "s2.safetensors")
    with pytest.raises(ShapeError, match=r"pretrained_bands= .*bands="):
        geofm.create_backbone("resnet18", in_chans=3, pretrained=path)


def test_create_backbone_one_channel_from_rgb_equals_timm(tmp_path: Path) -> None:
    src = geofm.create_backbone("resnet18")
    path = _save(src, tmp_path / "rgb.safetensors")
    model = geofm.create_backbone("resnet18", in_chans=1, pretrained=path)
    want = adapt_input_conv(1, _stem(src).detach().clone())
    assert torch.equal(_stem(model), want)
    assert model.load_report is not None
    assert any("3 -> 1" in note and "summed (timm)" in note for note in model.load_report.adapted)


def test_create_backbone_reorders_same_count_bands_by_name(tmp_path: Path) -> None:
    src = geofm.create_backbone("resnet18")
    path = _save(src, tmp_path / "rgb.safetensors")
    model = geofm.create_backbone("resnet18", bands=["blue", "green", "red"], pretrained=path)
    assert torch.equal(_stem(model), _stem(src)[:, [2, 1, 0]])
    same = geofm.create_backbone("resnet18", bands="rgb", pretrained=path)
    assert torch.equal(_stem(same), _stem(src))
    assert same.adaptation_report is None
