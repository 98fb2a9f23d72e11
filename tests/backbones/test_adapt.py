from __future__ import annotations

import pytest
import torch

from geofm.backbones.adapt import adapt_input_weight
from geofm.errors import ShapeError
from geofm.sensors import get_sensor

BEN6 = ["B04", "B03", "B02", "B08", "B11", "B12"]


def test_rgb_to_sentinel2_copies_matching_bands_and_interpolates_others() -> None:
    w = torch.randn(5, 3, 2, 2)
    s2 = get_sensor("sentinel2_l1c")
    new, report = adapt_input_weight(
        w, target_in_chans=13, source_bands=get_sensor("rgb"), target_bands=s2
    )
    assert report.copied == {1: 2, 2: 1, 3: 0}  # B02<-blue, B03<-green, B04<-red
    assert torch.equal(new[:, 3], w[:, 0])
    assert torch.equal(new[:, 2], w[:, 1])
    assert torch.equal(new[:, 1], w[:, 2])
    assert set(report.new_channels) == set(range(13)) - {1, 2, 3}
    # B01 (442.7 nm) lies below blue (492.4 nm): nearest source band.
    assert report.channels[0].method == "nearest"
    assert torch.equal(new[:, 0], w[:, 2])
    # B08 (832.8 nm) lies above red: nearest.
    assert report.channels[7].sources == ((0, 1.0),)
    assert report.rescale == 1.0


def test_interpolation_weights_follow_wavelength_distance() -> None:
    w = torch.randn(2, 3, 1, 1)
    rgb = get_sensor("rgb")
    s2 = get_sensor("sentinel2_l1c").select(["B03"])
    # Put a target band half-way between green (559.8) and red (664.6).
    from geofm.sensors import Sensor

    mid = Sensor("mid", bands=("mid",), wavelengths=((559.8 + 664.6) / 2,))
    new, report = adapt_input_weight(w, target_in_chans=1, source_bands=rgb, target_bands=mid)
    assert report.channels[0].method == "interpolate"
    assert torch.allclose(new[:, 0], 0.5 * w[:, 0] + 0.5 * w[:, 1])
    new, _ = adapt_input_weight(w, target_in_chans=1, source_bands=rgb, target_bands=s2)
    assert torch.equal(new[:, 0], w[:, 1])


def test_sentinel2_to_bigearthnet_subset_picks_the_right_slices() -> None:
    w = torch.randn(4, 13, 3, 3)
    new, report = adapt_input_weight(
        w, target_in_chans=6, source_bands=get_sensor("sentinel2_l1c"), target_bands=BEN6
    )
    assert report.copied == {0: 3, 1: 2, 2: 1, 3: 7, 4: 11, 5: 12}
    assert report.new_channels == ()
    assert torch.equal(new, w[:, [3, 2, 1, 7, 11, 12]])


def test_without_band_information_repeat_and_rescale_preserves_flat_response() -> None:
    w = torch.randn(4, 3, 3, 3)
    new, report = adapt_input_weight(w, target_in_chans=7)
    assert report.rescale == pytest.approx(3 / 7)
    assert all(c.method == "repeat" for c in report.channels)
    x = torch.ones(1, 3, 3, 3)
    y = torch.ones(1, 7, 3, 3)
    a = torch.nn.functional.conv2d(x, w)
    b = torch.nn.functional.conv2d(y, new)
    # Cyclic repeat of 3 -> 7 uses channel 0 three times; the sums differ
    # only by the uneven share, so compare against the explicit formula.
    expected = sum(w[:, i % 3] for i in range(7)) * 3 / 7
    assert torch.allclose(new.sum(1), expected, atol=1e-6)
    assert a.shape == b.shape


def test_names_without_wavelengths_fall_back_to_the_mean() -> None:
    w = torch.randn(2, 2, 1, 1)
    new, report = adapt_input_weight(
        w, target_in_chans=2, source_bands=["a", "b"], target_bands=["b", "z"]
    )
    assert report.copied == {0: 1}
    assert report.channels[1].method == "mean"
    assert torch.allclose(new[:, 1], w.mean(1))


def test_dtype_and_device_are_kept() -> None:
    w = torch.randn(2, 3, 1, 1, dtype=torch.float16)
    new, _ = adapt_input_weight(w, target_in_chans=4)
    assert new.dtype == torch.float16


def test_band_list_length_errors() -> None:
    w = torch.randn(2, 3, 1, 1)
    with pytest.raises(ShapeError, match="source_bands lists 13 bands but the pretrained kernel"):
        adapt_input_weight(w, target_in_chans=3, source_bands=get_sensor("sentinel2_l1c"))
    with pytest.raises(ShapeError, match="target_bands lists 6 bands but target_in_chans is 5"):
        adapt_input_weight(w, target_in_chans=5, source_bands=get_sensor("rgb"), target_bands=BEN6)
    with pytest.raises(ValueError, match="positive"):
        adapt_input_weight(w, target_in_chans=0)
    with pytest.raises(ShapeError, match=r"\(O, C, \.\.\.\)"):
        adapt_input_weight(torch.zeros(3), target_in_chans=1)
