"""Tests of geofm.geo.align written against the survivors of its mutation run (issue 21).

They pin the pixel selection of ``align_target`` at its edges: a pixel centre on a tile's
left or top edge is in, one on its right or bottom edge is out; a tile holding no centre
takes the pixel under its own centre; tiles at or just past the target's edges; several
CRSs in one call; and the band and argument checks with their messages.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rasterio.crs import CRS
from rasterio.transform import Affine, from_origin

from geofm.errors import MissingDependencyError
from geofm.geo import PixelWindow, Tile, align_target

from .conftest import WriteRaster, error_message

UTM18 = CRS.from_epsg(32618)
# An 8 x 8 target of 10 m pixels from (500000, 4000000); pixel (r, c) holds 10 * r + c + 1.
VALUES = (np.arange(64, dtype=np.float64).reshape(8, 8) // 8 * 10 + np.arange(8) + 1)[None]


@pytest.fixture
def target(write_raster: WriteRaster) -> Path:
    return write_raster(VALUES, "target.tif", transform=from_origin(500000, 4000000, 10, 10))


def _tile(x0: float, y0: float, size: int, pixel: float = 1.0, crs: CRS = UTM18) -> Tile:
    return Tile(0, 0, 0, PixelWindow(0, 0, size, size), from_origin(x0, y0, pixel, pixel), crs)


@pytest.mark.parametrize("resampling", ["nearest", "bilinear"])
def test_centres_on_the_left_and_top_edges_are_in_and_on_the_right_and_bottom_out(
    target: Path, resampling: str
) -> None:
    # A 20 m tile from the centre of target pixel (1, 2): centres at u, v = 0 and 10 are
    # in, those at u, v = 20 (the right and bottom edges) are out.
    tile = _tile(500025, 3999985, 20)
    got = align_target([tile], target, reduce="sum", resampling=resampling)  # type: ignore[arg-type]
    assert got[0] == pytest.approx(VALUES[0, 1:3, 2:4].sum())
    mean = align_target([tile], target, reduce="mean", resampling=resampling)  # type: ignore[arg-type]
    assert mean[0] == pytest.approx(VALUES[0, 1:3, 2:4].mean())


@pytest.mark.parametrize(
    ("x0", "y0", "row", "col"),
    [
        (500033, 3999967, 3, 3),  # inside pixel (3, 3)
        (500000.5, 3999999.5, 0, 0),  # the first pixel
        (500076, 3999924, 7, 7),  # the last pixel
        (500018, 3999942, 6, 2),  # straddling a pixel corner: its centre (500020, 3999940)
    ],
)
def test_a_tile_holding_no_centre_takes_the_pixel_under_its_centre(
    target: Path, x0: float, y0: float, row: int, col: int
) -> None:
    tile = _tile(x0, y0, 4)  # 4 m: holds no pixel centre
    for reduce in ("sum", "mean"):
        got = align_target([tile], target, reduce=reduce, resampling="nearest")  # type: ignore[arg-type]
        assert got[0] == VALUES[0, row, col]


@pytest.mark.parametrize(
    ("x0", "y0"),
    [
        (500081, 3999961),  # its centre just past the right edge, within the read margin
        (500031, 3999918),  # its centre just past the bottom edge
        (500020, 4000030),  # north of the target, overlapping its columns
        (500100, 3999960),  # two pixels east of it, overlapping its rows
    ],
)
def test_tiles_just_outside_the_target_are_nan(target: Path, x0: float, y0: float) -> None:
    got = align_target([_tile(x0, y0, 4)], target, resampling="nearest")
    assert got.shape == (1,) and np.isnan(got[0])


def test_tiles_in_two_crss_are_grouped_by_crs(write_raster: WriteRaster) -> None:
    # A lon/lat target over the border of UTM zones 17 and 18 (78 W).
    target = write_raster(
        np.full((1, 60, 60), 3.0, np.float32),
        "ll.tif",
        crs="EPSG:4326",
        transform=from_origin(-78.3, 36.3, 0.01, 0.01),
    )
    east = _tile(238000, 3988000, 100, 10.0)  # zone 18 at 77.9 W
    west = _tile(761000, 3988000, 100, 10.0, CRS.from_epsg(32617))  # zone 17 at 78.1 W
    outside = _tile(500000, 4500000, 10, 10.0)  # zone 18, far north of the target
    got = align_target([east, west, outside], target, reduce="mean", resampling="nearest")
    assert got[:2] == pytest.approx([3.0, 3.0]) and np.isnan(got[2])


def test_band_and_reduce_checks(write_raster: WriteRaster) -> None:
    values = np.stack([np.full((8, 8), 1.0), np.full((8, 8), 2.0)])
    target = write_raster(values, "two.tif", transform=from_origin(500000, 4000000, 10, 10))
    tile = _tile(500000, 4000000, 20)
    assert align_target([tile], target, band=2, reduce="mean")[0] == 2.0
    assert align_target([tile], target, band=1, reduce="mean")[0] == 1.0
    for band in (0, 3):
        assert error_message(
            ValueError, lambda band=band: align_target([tile], target, band=band)
        ) == (
            f"band={band} is out of range for '{target}', which has 2 bands. "
            "Pass a 1-based index in 1..2."
        )
    assert error_message(ValueError, lambda: align_target([tile], target, reduce="max")) == (  # type: ignore[arg-type]
        "Unknown reduce 'max'. Expected one of: sum, mean, nonzero."
    )
    bare = Tile(4, 0, 0, PixelWindow(0, 0, 2, 2), Affine.identity(), None)
    assert error_message(ValueError, lambda: align_target([tile, bare], target)) == (
        "Tile 4 has no CRS, so its footprint cannot be matched to the target. "
        "Tile a georeferenced raster."
    )


def test_clipping_and_nonzero(write_raster: WriteRaster) -> None:
    values = np.array([[[-2.0, 0.5], [0.0, 3.0]]])
    target = write_raster(values, "t.tif", transform=from_origin(500000, 4000000, 10, 10))
    tile = _tile(500000, 4000000, 20)
    assert align_target([tile], target, resampling="nearest")[0] == 3.5
    assert align_target([tile], target, clip_negative=False, resampling="nearest")[0] == 1.5
    assert align_target([tile], target, reduce="mean", resampling="nearest")[0] == 0.875
    assert align_target([tile], target, reduce="nonzero", resampling="nearest")[0] == 2.0
    got = align_target([tile], target, reduce="nonzero", clip_negative=False, resampling="nearest")
    assert got[0] == 2.0


# ---- second round: survivors of the first mutation run --------------------------------------


@pytest.fixture
def tall(write_raster: WriteRaster) -> Path:
    """An 8 x 2 target (taller than wide) of 10 m pixels holding 10 * r + c + 1."""
    return write_raster(
        VALUES[:, :, :2], "tall.tif", transform=from_origin(500000, 4000000, 10, 10)
    )


def test_a_tall_tile_on_a_tall_target_takes_all_its_rows(tall: Path) -> None:
    tile = Tile(0, 0, 0, PixelWindow(0, 0, 60, 20), from_origin(500000, 4000000, 1, 1), UTM18)
    got = align_target([tile], tall, resampling="nearest")
    assert got[0] == VALUES[0, :6, :2].sum()


def test_a_small_tile_low_on_a_tall_target_takes_its_pixel(tall: Path) -> None:
    tile = _tile(500013, 3999933, 4)  # inside pixel (6, 1), holding no centre
    assert align_target([tile], tall, resampling="nearest")[0] == VALUES[0, 6, 1]


def test_an_integer_target_with_nodata(write_raster: WriteRaster) -> None:
    values = np.arange(1, 65, dtype=np.uint8).reshape(1, 8, 8)
    values[0, 4, 5] = 255
    target = write_raster(
        values, "int.tif", transform=from_origin(500000, 4000000, 10, 10), nodata=255
    )
    tile = _tile(500040, 3999960, 20)  # pixels (4..5, 4..5)
    got = align_target([tile], target, reduce="sum", resampling="nearest")
    assert got[0] == float(values[0, 4, 4]) + float(values[0, 5, 4]) + float(values[0, 5, 5])


def test_a_tile_inside_the_target_away_from_its_origin(target: Path) -> None:
    tile = _tile(500050, 3999950, 20)  # pixels (5..6, 5..6)
    for resampling in ("nearest", "bilinear"):
        got = align_target([tile], target, resampling=resampling)  # type: ignore[arg-type]
        assert got[0] == pytest.approx(VALUES[0, 5:7, 5:7].sum())


def test_bilinear_spreads_a_bright_pixel_that_nearest_keeps_sharp(
    write_raster: WriteRaster,
) -> None:
    # One bright pixel of a lon/lat target, warped into UTM: bilinear blurs it over more pixels.
    values = np.zeros((1, 20, 20), np.float32)
    values[0, 10, 10] = 100.0
    target = write_raster(
        values, "ll.tif", crs="EPSG:4326", transform=from_origin(-75.01, 36.01, 0.001, 0.001)
    )
    tile = _tile(499100, 3985000, 1800, 1.0)  # covers the whole target
    nearest = align_target([tile], target, reduce="nonzero", resampling="nearest")[0]
    bilinear = align_target([tile], target, reduce="nonzero", resampling="bilinear")[0]
    assert 0 < nearest < bilinear


@pytest.mark.parametrize("turn", [1.0, -1.0])
def test_a_rotated_target_is_warped_onto_its_whole_envelope(
    write_raster: WriteRaster, turn: float
) -> None:
    # An 8 x 8 target of 10 m pixels turned 30 degrees one way or the other. GDAL's grid for
    # it has pixels of about 13.7 m (the 109 m envelope's diagonal over that of 8 x 8 pixels),
    # so a 60 m tile around the target's centre holds 4 x 4 of their centres.
    cos, sin = np.cos(np.pi / 6), np.sin(np.pi / 6)
    turned = Affine(10 * cos, turn * 10 * sin, 500000, turn * 10 * sin, -10 * cos, 4000000)
    target = write_raster(np.full((1, 8, 8), 2.0), "rot.tif", transform=turned)
    x, y = turned @ (4, 4)
    tile = Tile(0, 0, 0, PixelWindow(0, 0, 60, 60), from_origin(x - 30, y + 30, 1, 1), UTM18)
    assert align_target([tile], target, reduce="nonzero", resampling="nearest")[0] == 16
    assert align_target([tile], target, reduce="mean", resampling="nearest")[0] == 2.0


def test_align_target_errors_name_the_function_and_the_target(
    target: Path, write_raster: WriteRaster, monkeypatch: pytest.MonkeyPatch
) -> None:
    tile = _tile(500000, 4000000, 20)
    bad: Any = "lanczos9"
    assert error_message(
        ValueError, lambda: align_target([tile], target, resampling=bad)
    ).startswith("Unknown resampling 'lanczos9' for geofm.geo.align_target.")
    bare = write_raster(np.ones((1, 4, 4), np.float32), "bare.tif", crs=None)
    assert error_message(ValueError, lambda: align_target([tile], bare)).startswith(
        f"Raster '{bare}' has no CRS, but geofm.geo.align_target needs a georeferenced source"
    )
    monkeypatch.setitem(sys.modules, "rasterio", None)  # import rasterio raises ImportError
    assert error_message(MissingDependencyError, lambda: align_target([tile], target)) == (
        "rasterio is required for geofm.geo.align_target. Install it with: pip install rasterio."
    )


def test_a_crs_group_without_overlap_does_not_stop_the_others(target: Path) -> None:
    far = _tile(500000, 4000000, 20, crs=CRS.from_epsg(32617))  # zone 17: 600 km west
    near = _tile(500000, 4000000, 20)
    got = align_target([far, near], target, resampling="nearest")
    assert np.isnan(got[0]) and got[1] == VALUES[0, :2, :2].sum()


@pytest.mark.parametrize("resampling", ["bilinear", "cubic"])
def test_nodata_does_not_leak_into_its_neighbours(
    write_raster: WriteRaster, resampling: str
) -> None:
    values = VALUES.copy()
    values[0, 2, 2] = -999.0
    target = write_raster(
        values, "nd.tif", transform=from_origin(500000, 4000000, 10, 10), nodata=-999.0
    )
    tile = _tile(500010, 3999990, 40)  # pixels (1..4, 1..4), (2, 2) among them
    got = align_target([tile], target, reduce="sum", resampling=resampling)  # type: ignore[arg-type]
    assert got[0] == pytest.approx(VALUES[0, 1:5, 1:5].sum() - VALUES[0, 2, 2])
