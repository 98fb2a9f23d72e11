"""Band and tile choice at their boundaries, with every message in full.

Written against the survivors of ``nox -s mutation -- geofm/geo/inputs.py``: an
undescribed band next to a described one, descriptions in a sensor's other
spelling, a sensor the catalog does not know, the smallest tiles a model
accepts, and the exact text of each error and of the logged assumption.
"""

from __future__ import annotations

import logging

import pytest

from geofm import InputSpec
from geofm.errors import ShapeError
from geofm.geo.inputs import choose_bands, choose_tile

from .conftest import error_message

S2_RGB = InputSpec.from_sensor("sentinel2_l2a", bands=["B04", "B03", "B02"])
S2_RED = InputSpec.from_sensor("sentinel2_l2a", bands=["B04"])


def test_names_skip_undescribed_bands() -> None:
    # Band 1 has no description: it is never a match, and never an error.
    assert choose_bands(S2_RED, [None, "B04"], ["red"], "s.tif") == [2]
    assert choose_bands(S2_RED, ["", "B04"], ["B4"], "s.tif") == [2]


def test_descriptions_are_read_through_the_sensors_aliases() -> None:
    # The raster spells the bands B2/B3/B4, the user asks for "red": both sides
    # go through the sensor catalog.
    assert choose_bands(S2_RGB, ["B2", "B3", "B4"], ["red", "green", "blue"], "s.tif") == [3, 2, 1]


def test_a_sensor_outside_the_catalog_matches_names_as_written() -> None:
    spec = InputSpec(num_bands=2, bands=("swir", "nir"), sensor="my_camera")
    assert choose_bands(spec, ["nir", " swir "], ["swir", "nir"], "s.tif") == [2, 1]


def test_the_logged_assumption_names_the_raster_and_the_bands(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="geofm.geo.inputs"):
        assert choose_bands(S2_RGB, [None] * 3, None, "scene_42.tif") == [1, 2, 3]
    assert caplog.messages == [
        "scene_42.tif does not describe its bands; assuming they are the model's bands in "
        "order: B04, B03, B02. Pass bands= to choose them."
    ]


def test_band_count_errors_in_full() -> None:
    assert error_message(ShapeError, lambda: choose_bands(S2_RGB, [None] * 4, None, "s.tif")) == (
        "s.tif has 4 bands but the model expects 3 (B04, B03, B02). "
        "Pass bands= (names or 1-based indices) to choose them."
    )
    unnamed = InputSpec.unknown(3)
    assert error_message(ShapeError, lambda: choose_bands(unnamed, [None] * 4, None, "s.tif")) == (
        "s.tif has 4 bands but the model expects 3. "
        "Pass bands= (names or 1-based indices) to choose them."
    )


def test_user_band_errors_in_full() -> None:
    assert error_message(ValueError, lambda: choose_bands(None, [None] * 2, [], "s.tif")) == (
        "bands must name at least one band, got an empty list."
    )
    missing = error_message(
        ShapeError, lambda: choose_bands(S2_RED, ["B02", None], ["B05"], "s.tif")
    )
    assert missing == (
        "Band 'B05' is not among the band descriptions of s.tif (B02, None). "
        "Pass 1-based band indices instead, e.g. bands=[3, 2, 1]."
    )


def test_the_smallest_tiles_are_accepted() -> None:
    assert choose_tile(None, 1) == 1
    assert choose_tile(InputSpec.unknown(3, multiple=14, min_size=28), 28) == 28
    assert choose_tile(InputSpec.unknown(3, multiple=1, min_size=5), 5) == 5


def test_tile_errors_in_full() -> None:
    assert error_message(ValueError, lambda: choose_tile(None, 0)) == "tile must be >= 1, got 0."
    spec = InputSpec.unknown(3, multiple=14, min_size=28)
    assert error_message(ValueError, lambda: choose_tile(spec, 14)) == (
        "tile=14 does not suit the model: it needs a multiple of 14 of at least 28 pixels. "
        "Use tile=28 or tile=42 (or leave tile unset)."
    )
