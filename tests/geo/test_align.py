from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from rasterio.crs import CRS
from rasterio.transform import Affine, from_origin

from geofm.geo import PixelWindow, Tile, align_target, tile_raster

WriteRaster = Callable[..., Path]


@pytest.fixture
def image_tiles(write_raster: WriteRaster) -> list[Tile]:
    # 80 x 80 pixels of 1 m at UTM 18N, cut into 16 tiles of 20 m.
    image = write_raster(
        np.zeros((1, 80, 80), np.uint8), "img.tif", transform=from_origin(500000, 4000000, 1, 1)
    )
    return tile_raster(image, size=20)


@pytest.fixture
def lights() -> np.ndarray:
    # A 10 m target on the same origin: each tile covers exactly 2 x 2 of its pixels.
    values = np.random.default_rng(0).uniform(-1, 5, (8, 8))
    values[0, 0] = -0.5  # a negative radiance, as VIIRS has
    return values


def _expected(values: np.ndarray, reduce: str) -> np.ndarray:
    # Straightforward per-tile reduction over the aligned 2 x 2 blocks.
    blocks: np.ndarray = (
        np.maximum(values, 0).reshape(4, 2, 4, 2).transpose(0, 2, 1, 3).reshape(16, 4)
    )
    if reduce == "sum":
        return np.asarray(blocks.sum(axis=1))
    if reduce == "mean":
        return np.asarray(blocks.mean(axis=1))
    return np.asarray((blocks > 0).sum(axis=1), dtype=float)


@pytest.mark.parametrize("reduce", ["sum", "mean", "nonzero"])
@pytest.mark.parametrize("resampling", ["nearest", "bilinear"])
def test_aligned_grid_gives_the_direct_reduction(
    write_raster: WriteRaster,
    image_tiles: list[Tile],
    lights: np.ndarray,
    reduce: str,
    resampling: str,
) -> None:
    target = write_raster(
        lights[None].astype(np.float64), "viirs.tif", transform=from_origin(500000, 4000000, 10, 10)
    )
    got = align_target(image_tiles, target, reduce=reduce, resampling=resampling)  # type: ignore[arg-type]
    np.testing.assert_allclose(got, _expected(lights, reduce), rtol=1e-9, atol=1e-9)


def test_negatives_are_kept_when_asked(
    write_raster: WriteRaster, image_tiles: list[Tile], lights: np.ndarray
) -> None:
    target = write_raster(lights[None], "viirs.tif", transform=from_origin(500000, 4000000, 10, 10))
    got = align_target(image_tiles, target, clip_negative=False, resampling="nearest")
    expected = lights.reshape(4, 2, 4, 2).sum(axis=(1, 3)).ravel()
    np.testing.assert_allclose(got, expected)
    assert got[0] < align_target(image_tiles, target, resampling="nearest")[0]


def test_nodata_is_ignored_and_empty_footprints_are_nan(
    write_raster: WriteRaster, image_tiles: list[Tile], lights: np.ndarray
) -> None:
    values = lights.copy()
    values[0:2, 0:2] = -999.0  # the whole first tile
    values[2, 2] = -999.0  # one of the four pixels of tile 5
    target = write_raster(
        values[None], "viirs.tif", transform=from_origin(500000, 4000000, 10, 10), nodata=-999.0
    )
    got = align_target(image_tiles, target, reduce="mean", resampling="nearest")
    assert np.isnan(got[0])
    assert got[5] == pytest.approx(np.maximum([values[2, 3], values[3, 2], values[3, 3]], 0).mean())


def test_tiles_outside_the_target_are_nan(write_raster: WriteRaster, lights: np.ndarray) -> None:
    target = write_raster(lights[None], "viirs.tif", transform=from_origin(500000, 4000000, 10, 10))
    far = Tile(
        0, 0, 0, PixelWindow(0, 0, 20, 20), from_origin(700000, 4000000, 1, 1), CRS.from_epsg(32618)
    )
    assert np.isnan(align_target([far], target)[0])


def test_lonlat_target_like_viirs(write_raster: WriteRaster) -> None:
    # EcoVision: a global EPSG:4326 VIIRS grid (15 arc-seconds) over UTM tiles of ~200 m.
    viirs = write_raster(
        np.full((1, 240, 240), 7.0, np.float32),
        "viirs.tif",
        crs="EPSG:4326",
        transform=from_origin(-115.5, 36.5, 1 / 240, 1 / 240),
    )
    # Las Vegas tiles in UTM 11N (EPSG:32611), 200 m on a side, some smaller than one target pixel.
    x0, y0 = 666000.0, 4006000.0
    tiles = [
        Tile(
            i,
            0,
            i,
            PixelWindow(0, 0, 650, 650),
            Affine(0.3, 0, x0 + 300 * i, 0, -0.3, y0),
            CRS.from_epsg(32611),
        )
        for i in range(5)
    ]
    assert np.allclose(align_target(tiles, viirs, reduce="mean"), 7.0)
    counts = align_target(tiles, viirs, reduce="nonzero")
    assert (counts >= 1).all() and (
        counts <= 2
    ).all()  # ~1 VIIRS pixel per tile, as EcoVision notes


def test_rotated_tile_takes_centres_inside_its_footprint(write_raster: WriteRaster) -> None:
    values = np.arange(100, dtype=np.float64).reshape(1, 10, 10)
    target = write_raster(values, "t.tif", transform=from_origin(0, 100, 10, 10))
    # A 20 x 20 m square turned 45 degrees around the centre of pixel (row 5, col 5) = (55, 45).
    half = 10 / np.sqrt(2)
    rotated = Affine(half, half, 55 - 2 * half, half, -half, 45) @ Affine.scale(1 / 2)
    tile = Tile(0, 0, 0, PixelWindow(0, 0, 4, 4), rotated, CRS.from_epsg(32618))
    centre = rotated @ (2, 2)
    assert centre == pytest.approx((55.0, 45.0))
    # The diamond of half-diagonal 14.1 m holds the centres of pixel (5, 5) and its 4 neighbours.
    got = align_target([tile], target, reduce="sum", resampling="nearest")
    assert got[0] == pytest.approx(
        values[0, 5, 5] + values[0, 4, 5] + values[0, 6, 5] + values[0, 5, 4] + values[0, 5, 6]
    )


def test_errors(write_raster: WriteRaster, image_tiles: list[Tile]) -> None:
    target = write_raster(np.ones((1, 4, 4), np.float32), "t.tif")
    with pytest.raises(ValueError, match="Unknown reduce 'median'"):
        align_target(image_tiles, target, reduce="median")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"band=2 is out of range .* has 1 bands"):
        align_target(image_tiles, target, band=2)
    no_crs = write_raster(np.ones((1, 4, 4), np.float32), "n.tif", crs=None)
    with pytest.raises(ValueError, match="has no CRS, but geofm.geo.align_target needs"):
        align_target(image_tiles, no_crs)
    bare = Tile(3, 0, 0, PixelWindow(0, 0, 2, 2), Affine.identity(), None)
    with pytest.raises(ValueError, match="Tile 3 has no CRS"):
        align_target([bare], target)
