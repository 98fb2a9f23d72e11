"""Tests of geofm.backbones.adapt written against the mutants that test_adapt.py let survive.

They pin the whole :class:`AdaptationReport` (band names, source weights,
rescale, ``summary`` and ``str``) of each path, the wavelength boundaries of the
interpolation (a band exactly at the edge or at a source band), the 5 nm
same-band rule at exactly 5 nm, float32 arithmetic for half kernels and the
full error texts (see reports/mutation.md, ``backbones-adapt``).
"""

from __future__ import annotations

import difflib
import re

import pytest
import torch

from geofm.backbones.adapt import AdaptationReport, ChannelOrigin, adapt_input_weight
from geofm.errors import ShapeError, UnknownNameError
from geofm.sensors import Sensor

SOURCE = Sensor("src", bands=("a", "b", "c"), wavelengths=(500.0, 600.0, 700.0))


def kernel(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(3))


def adapt_to(target: Sensor) -> AdaptationReport:
    _, report = adapt_input_weight(
        kernel(2, 3, 1, 1),
        target_in_chans=target.num_bands,
        source_bands=SOURCE,
        target_bands=target,
    )
    return report


def test_same_identifier_within_exactly_5_nm_is_the_same_band() -> None:
    report = adapt_to(Sensor("t", bands=("b",), wavelengths=(605.0,)))
    assert report.channels == (ChannelOrigin(0, "b", "copy", ((1, 1.0),)),)
    far = adapt_to(Sensor("t", bands=("b",), wavelengths=(625.0,)))
    assert far.channels == (ChannelOrigin(0, "b", "interpolate", ((1, 0.75), (2, 0.25))),)


def test_interpolation_edges_and_a_band_exactly_at_a_source_wavelength() -> None:
    target = Sensor(
        "t", bands=("lo", "mid", "at_b", "hi"), wavelengths=(500.0, 530.0, 600.0, 700.0)
    )
    report = adapt_to(target)
    assert report.channels[0] == ChannelOrigin(0, "lo", "nearest", ((0, 1.0),))
    assert report.channels[1].method == "interpolate"
    assert [i for i, _ in report.channels[1].sources] == [0, 1]
    assert [w for _, w in report.channels[1].sources] == pytest.approx([0.7, 0.3])
    assert report.channels[2] == ChannelOrigin(2, "at_b", "interpolate", ((0, 0.0), (1, 1.0)))
    assert report.channels[3] == ChannelOrigin(3, "hi", "nearest", ((2, 1.0),))
    assert report.rescale == 1.0
    assert report.summary() == "2 interpolated by wavelength, 2 nearest by wavelength"


def test_band_path_report_names_every_channel_and_prints_it() -> None:
    target = Sensor("t", bands=("b", "x"), wavelengths=(600.0, 650.0))
    weight = kernel(2, 3, 1, 1)
    new, report = adapt_input_weight(
        weight, target_in_chans=2, source_bands=SOURCE, target_bands=target
    )
    assert report.channels == (
        ChannelOrigin(0, "b", "copy", ((1, 1.0),)),
        ChannelOrigin(1, "x", "interpolate", ((1, 0.5), (2, 0.5))),
    )
    assert report.summary() == "1 copied, 1 interpolated by wavelength"
    assert str(report) == (
        "input channels 3 -> 2\n  [0] b: copy from 1x1\n  [1] x: interpolate from 1x0.5, 2x0.5"
    )
    torch.testing.assert_close(new[:, 1], 0.5 * weight[:, 1] + 0.5 * weight[:, 2])


def test_named_bands_keep_their_names_in_the_report() -> None:
    _, report = adapt_input_weight(
        kernel(2, 3, 1, 1),
        target_in_chans=2,
        source_bands=["red", "green", "blue"],
        target_bands=["blue", "red"],
    )
    assert report.channels == (
        ChannelOrigin(0, "blue", "copy", ((2, 1.0),)),
        ChannelOrigin(1, "red", "copy", ((0, 1.0),)),
    )


def test_timm_sum_and_repeat_reports_with_target_names() -> None:
    weight = kernel(2, 3, 1, 1)
    one_band = SOURCE.select(["b"])
    new, report = adapt_input_weight(weight, target_in_chans=1, target_bands=one_band)
    assert report.channels == (ChannelOrigin(0, "b", "sum", ((0, 1.0), (1, 1.0), (2, 1.0))),)
    assert report.rescale == 1.0 and report.summary() == "1 summed (timm)"
    assert str(report) == "input channels 3 -> 1\n  [0] b: sum from 0x1, 1x1, 2x1"
    torch.testing.assert_close(new, weight.sum(dim=1, keepdim=True))

    names = ["p", "q", "r", "s", "t"]
    new, report = adapt_input_weight(weight, target_in_chans=5, target_bands=names)
    assert report.channels == tuple(
        ChannelOrigin(i, names[i], "repeat", ((i % 3, 0.6),)) for i in range(5)
    )
    assert report.rescale == 0.6 and report.summary() == "5 repeated (timm)"
    assert str(report).splitlines()[-2:] == [
        "  [4] t: repeat from 1x0.6",
        "  kernel rescaled by 0.6",
    ]
    torch.testing.assert_close(new[:, 4], weight[:, 1] * 0.6)


def test_same_channel_count_with_one_side_unknown_copies_each_channel() -> None:
    weight = kernel(2, 3, 1, 1)
    new, report = adapt_input_weight(weight, target_in_chans=3, source_bands=["r", "g", "b"])
    assert report.channels == tuple(ChannelOrigin(i, None, "copy", ((i, 1.0),)) for i in range(3))
    assert report.rescale == 1.0 and report.is_identity
    assert str(report).splitlines()[1] == "  [0] ?: copy from 0x1"
    assert torch.equal(new, weight)


def test_a_linear_patch_projection_of_two_dimensions_is_adapted() -> None:
    weight = kernel(4, 3)
    new, report = adapt_input_weight(weight, target_in_chans=6)
    torch.testing.assert_close(new, weight.repeat(1, 2) * 0.5)
    assert report.rescale == 0.5


def test_half_kernels_are_combined_in_float32() -> None:
    weight = kernel(64, 3, 3, 3).half()
    target = Sensor("t", bands=("x",), wavelengths=(530.0,))
    new, report = adapt_input_weight(
        weight, target_in_chans=1, source_bands=SOURCE, target_bands=target
    )
    (ca, wa), (cb, wb) = report.channels[0].sources
    expected = torch.zeros(64, 3, 3, dtype=torch.float32)
    expected += wa * weight[:, ca].float()
    expected += wb * weight[:, cb].float()
    assert new.dtype == torch.float16
    assert torch.equal(new[:, 0], expected.half())


@pytest.mark.parametrize(
    ("source", "target", "missing"),
    [
        (None, None, "both sides"),
        (None, ["x"] * 1, "the pretrained kernel (source_bands)"),
        (["a", "b", "c", "d"], None, "the new input (target_bands)"),
    ],
)
def test_timm_rule_error_names_the_side_without_bands(
    source: list[str] | None, target: list[str] | None, missing: str
) -> None:
    weight = kernel(2, 4, 1, 1)
    message = (
        f"Cannot map a pretrained first layer with 4 input channels to 1 channels: the bands of"
        f" {missing} are unknown, and without band information only a 3-channel (RGB) kernel can"
        " be adapted (timm's rule). Pass the bands of both sides: source_bands= / target_bands="
        " here; in create_backbone, pretrained_bands= for the weights file's bands and bands="
        " for the model's bands."
    )
    with pytest.raises(ShapeError, match=f"^{re.escape(message)}$"):
        adapt_input_weight(weight, target_in_chans=1, source_bands=source, target_bands=target)


def test_unknown_name_error_offers_at_most_three_close_names() -> None:
    source = ["band1", "band2", "band3", "band4"]
    close = difflib.get_close_matches("band", source, n=3)  # four are close; three are named
    assert len(close) == 3
    message = (
        "target_bands: band 'band' is not among the pretrained bands band1, band2, band3, band4."
        f" Did you mean {', '.join(map(repr, close))}? Give the bands as sensor records (with"
        " wavelengths) to interpolate new bands."
    )
    with pytest.raises(UnknownNameError, match=f"^{re.escape(message)}$"):
        adapt_input_weight(
            kernel(2, 4, 1, 1), target_in_chans=1, source_bands=source, target_bands=["band"]
        )
    message = (
        "target_bands: band 'zz' is not among the pretrained bands band1, band2, band3, band4."
        " Give the bands as sensor records (with wavelengths) to interpolate new bands."
    )
    with pytest.raises(UnknownNameError, match=f"^{re.escape(message)}$"):
        adapt_input_weight(
            kernel(2, 4, 1, 1), target_in_chans=1, source_bands=source, target_bands=["zz"]
        )
