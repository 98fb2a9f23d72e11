"""geofm.geo.inputs: bands by name, tile sizes the model accepts, the spec applied to tiles."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from geofm import InputSpec
from geofm.errors import ShapeError
from geofm.geo import predict_raster, read_raster
from geofm.geo.inputs import PreparedModel, choose_bands, choose_tile, model_input_spec
from geofm.sensors import ValueScaling

from .conftest import WriteRaster

S2_RGB = InputSpec.from_sensor("sentinel2_l2a", bands=["B04", "B03", "B02"])


def test_bands_are_found_by_name_in_any_order_and_spelling() -> None:
    assert choose_bands(S2_RGB, ["B02", "B03", "B04", "B08"], None, "s.tif") == [3, 2, 1]
    assert choose_bands(S2_RGB, ["B8", "B2", "B4", "B3"], None, "s.tif") == [3, 4, 2]
    assert choose_bands(S2_RGB, ["nir", "blue", "red", "green"], None, "s.tif") == [3, 4, 2]
    # The user's names go through the same aliases.
    assert choose_bands(S2_RGB, ["B02", "B03", "B04"], ["red", "B3", "B02"], "s.tif") == [3, 2, 1]


def test_without_descriptions_the_count_must_match_and_the_assumption_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="geofm.geo.inputs"):
        assert choose_bands(S2_RGB, [None, None, None], None, "s.tif") == [1, 2, 3]
    assert "assuming they are the model's bands in order: B04, B03, B02" in caplog.text
    with pytest.raises(ShapeError, match="has 4 bands but the model expects 3 .*bands="):
        choose_bands(S2_RGB, [None] * 4, None, "s.tif")


def test_user_bands_errors() -> None:
    with pytest.raises(ShapeError, match=r"Band indices \[5\] are out of range .* 1\.\.4"):
        choose_bands(None, [None] * 4, [1, 5], "s.tif")
    with pytest.raises(ValueError, match="all names or all 1-based indices"):
        choose_bands(None, [None] * 4, [1, "B04"], "s.tif")
    with pytest.raises(ShapeError, match="selects 2 bands but the model expects 3"):
        choose_bands(S2_RGB, [None] * 4, [1, 2], "s.tif")
    with pytest.raises(ShapeError, match="'B05' is not among the band descriptions"):
        choose_bands(S2_RGB, ["B02", "B03", "B04"], ["B05", "B03", "B02"], "s.tif")
    assert choose_bands(None, [None] * 4, None, "s.tif") == [1, 2, 3, 4]


def test_tile_defaults_to_a_multiple_and_rejects_others() -> None:
    assert choose_tile(InputSpec.unknown(3, multiple=14), None) == 252
    assert choose_tile(InputSpec.unknown(3, multiple=32), None) == 256
    assert choose_tile(InputSpec.unknown(3, multiple=7, min_size=300), None) == 301
    assert choose_tile(None, None) == 256
    with pytest.raises(ValueError, match="tile=100 .* multiple of 14 .* tile=98 or tile=112"):
        choose_tile(InputSpec.unknown(3, multiple=14), 100)


def test_model_input_spec_ignores_non_specs() -> None:
    model = nn.Identity()
    model.input_spec = "rgb"  # type: ignore[assignment]
    assert model_input_spec(model) is None
    assert model_input_spec(PreparedModel(nn.Identity(), S2_RGB)) is None  # a wrapper has none


def test_predict_raster_selects_by_description_and_applies_the_spec(
    write_raster: WriteRaster, tmp_path: Path
) -> None:
    """A regression 'model' echoing its input shows exactly what predict_raster fed it."""
    rng = np.random.default_rng(0)
    array = rng.integers(0, 10000, size=(4, 40, 56), dtype=np.uint16)  # B02 B03 B04 B08
    src = write_raster(array, descriptions=("B02", "B03", "B04", "B08"))
    spec = InputSpec.from_sensor("sentinel2_l2a", bands=["B08", "B04"]).replace(
        scaling=ValueScaling.uniform(2, divisor=10000.0), mean=(0.5, 0.25), std=(0.2, 0.1)
    )

    class Echo(nn.Module):
        input_spec = spec

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    out = predict_raster(
        Echo().eval(), src, tmp_path / "o.tif", tile=32, overlap=8, output="regression"
    )
    got = read_raster(out).array
    expected = np.stack(
        [(array[3] / 10000.0 - 0.5) / 0.2, (array[2] / 10000.0 - 0.25) / 0.1]
    ).astype(np.float32)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    raw = predict_raster(
        Echo().eval(),
        src,
        tmp_path / "raw.tif",
        tile=32,
        overlap=8,
        output="regression",
        input_spec=None,
        bands=[4, 3],
    )
    np.testing.assert_array_equal(read_raster(raw).array, array[[3, 2]].astype(np.float32))
