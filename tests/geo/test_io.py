from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine
from rasterio.windows import Window

from geofm.errors import ShapeError
from geofm.geo import PixelWindow, RasterData, read_raster

WriteRaster = Callable[..., Path]


def test_import_geofm_geo_does_not_import_rasterio() -> None:
    code = "import sys, geofm.geo; print('rasterio' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_read_full_raster_returns_values_mask_and_profile(
    write_raster: WriteRaster, utm_transform: Affine
) -> None:
    array = np.arange(2 * 5 * 7, dtype=np.uint16).reshape(2, 5, 7)
    path = write_raster(array, descriptions=("red", "nir"))
    data = read_raster(path)
    assert isinstance(data, RasterData)
    np.testing.assert_array_equal(data.array, array)
    assert data.mask.shape == (2, 5, 7) and data.mask.all()
    p = data.profile
    assert p.crs.to_epsg() == 32618
    assert p.transform == utm_transform
    assert p.nodata is None
    assert p.band_descriptions == ("red", "nir")
    assert p.band_indices == (1, 2) and p.count == 2
    assert (p.dtype, p.height, p.width) == ("uint16", 5, 7)
    assert p.res == (10.0, 10.0)


def test_nodata_is_a_mask_not_a_value(write_raster: WriteRaster) -> None:
    array = np.array([[[0, 5, 9], [7, 0, 3]]], dtype=np.uint8)
    data = read_raster(write_raster(array, nodata=0))
    np.testing.assert_array_equal(data.mask[0], array[0] != 0)
    assert data.profile.nodata == 0.0
    assert data.masked().sum() == 24


def test_nan_pixels_are_invalid(write_raster: WriteRaster) -> None:
    array = np.array([[[1.0, np.nan], [2.0, 3.0]]], dtype=np.float32)
    data = read_raster(write_raster(array))
    np.testing.assert_array_equal(data.mask[0], [[True, False], [True, True]])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_infinite_pixels_are_invalid_like_nan(write_raster: WriteRaster, dtype: str) -> None:
    values = np.arange(24, dtype=dtype).reshape(2, 3, 4)
    values[0, 1, 2], values[1, 2, 3], values[1, 0, 0] = np.inf, -np.inf, np.nan
    data = read_raster(write_raster(values))
    expected = np.isfinite(values)
    np.testing.assert_array_equal(data.mask, expected)
    assert data.masked().sum() == values[expected].sum()


def test_window_and_band_selection(write_raster: WriteRaster, utm_transform: Affine) -> None:
    array = np.random.default_rng(0).integers(0, 99, (3, 10, 12)).astype(np.int16)
    path = write_raster(array, descriptions=("a", "b", "c"))
    data = read_raster(path, window=PixelWindow(2, 3, 4, 5), bands=[3, 1])
    np.testing.assert_array_equal(data.array, array[[2, 0], 2:6, 3:8])
    assert data.profile.band_descriptions == ("c", "a")
    # The window's transform puts its first pixel where the source's (row 2, col 3) is.
    assert data.profile.transform @ (0, 0) == utm_transform @ (3, 2)
    # rasterio's Window works too.
    same = read_raster(path, window=Window(3, 2, 5, 4), bands=[3, 1])
    np.testing.assert_array_equal(same.array, data.array)


def test_window_past_the_edge_is_zero_padded_and_invalid(write_raster: WriteRaster) -> None:
    array = np.full((1, 4, 4), 7, dtype=np.uint8)
    data = read_raster(write_raster(array), window=PixelWindow(-1, 2, 3, 4))
    expected_mask = np.zeros((3, 4), dtype=bool)
    expected_mask[1:3, 0:2] = True
    np.testing.assert_array_equal(data.mask[0], expected_mask)
    np.testing.assert_array_equal(data.array[0], np.where(expected_mask, 7, 0))
    outside = read_raster(write_raster(array, "b.tif"), window=PixelWindow(10, 10, 2, 2))
    assert not outside.mask.any() and not outside.array.any()


def test_rotated_transform_is_kept(write_raster: WriteRaster) -> None:
    rotated = Affine(8.0, 6.0, 500000.0, 6.0, -8.0, 4000000.0)  # 10 m pixels, rotated
    path = write_raster(np.ones((1, 6, 6), np.float32), transform=rotated)
    data = read_raster(path, window=PixelWindow(1, 2, 3, 3))
    assert data.profile.transform @ (0, 0) == pytest.approx(rotated @ (2, 1))
    assert data.profile.res == pytest.approx((10.0, 10.0))


def test_real_rgb_byte_nodata_collar(rgb_byte: Path) -> None:
    data = read_raster(rgb_byte)
    assert data.array.shape == (3, 718, 791)
    assert data.profile.crs.to_epsg() == 32618
    with rasterio.open(rgb_byte) as src:
        expected = src.read_masks() != 0
    np.testing.assert_array_equal(data.mask, expected)
    assert 0.2 < 1 - data.mask.mean() < 0.5  # the collar is about a third of the scene


def test_bad_band_index_raises(write_raster: WriteRaster) -> None:
    path = write_raster(np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(ShapeError, match=r"Band indices \[3\] are out of range .* has 2 bands"):
        read_raster(path, bands=[1, 3])
    with pytest.raises(ValueError, match="bands is empty"):
        read_raster(path, bands=[])


def test_fractional_window_raises(write_raster: WriteRaster) -> None:
    path = write_raster(np.zeros((1, 3, 3), np.uint8))
    with pytest.raises(ValueError, match=r"whole number of pixels, got 0.5"):
        read_raster(path, window=Window(0.5, 0, 1, 1))


def test_empty_window_raises() -> None:
    with pytest.raises(ValueError, match="height and width >= 1, got height=0"):
        PixelWindow(0, 0, 0, 3)


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(rasterio.errors.RasterioIOError):
        read_raster(tmp_path / "nope.tif")
