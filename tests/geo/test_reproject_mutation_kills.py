"""Tests of geofm.geo.reproject written against the survivors of its mutation run (issue 21).

They pin the UTM band limits and error messages, the point that picks the zone (the
raster's centre), the ``+lon_wrap`` of rasters crossing 180, and the written output: exact
values over several 256-row blocks, the tiled deflate layout, band descriptions, the mask
band and the grid a ``resolution`` gives.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np
import pytest
import rasterio
import rasterio.vrt
from rasterio.crs import CRS
from rasterio.enums import MaskFlags
from rasterio.transform import Affine, from_origin

from geofm.errors import MissingDependencyError
from geofm.geo import reproject_to_utm, utm_crs_for, utm_epsg_for
from geofm.geo.reproject import _centre_lonlat, _wrapped_source_crs

from .conftest import WriteRaster, error_message

UTM = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0)


# ---- utm_epsg_for ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lon", "lat", "epsg"),
    [(0.0, -80.0, 32731), (0.0, 84.0, 32631), (-174.0, 5.0, 32602), (-174.001, -5.0, 32701)],
)
def test_utm_band_limits_are_included(lon: float, lat: float, epsg: int) -> None:
    assert utm_epsg_for(lon, lat) == epsg


@pytest.mark.parametrize("lat", [-80.001, 84.001])
def test_just_past_the_utm_band_is_refused(lat: float) -> None:
    assert error_message(ValueError, lambda: utm_epsg_for(3.0, lat)) == (
        f"Point (lon=3.0, lat={lat}) is outside UTM coverage (lat in [-80, 84]). "
        "Use a polar stereographic CRS instead (UPS, EPSG:32661 / EPSG:32761)."
    )


@pytest.mark.parametrize(
    ("lon", "lat"), [(math.nan, 10.0), (10.0, math.nan), (math.inf, 10.0), (10.0, -math.inf)]
)
def test_non_finite_coordinates_are_refused(lon: float, lat: float) -> None:
    assert error_message(ValueError, lambda: utm_epsg_for(lon, lat)) == (
        f"Point (lon={lon}, lat={lat}) is not a finite longitude/latitude."
    )


def test_longitude_message() -> None:
    assert error_message(ValueError, lambda: utm_epsg_for(181.0, 10.0)) == (
        "Longitude 181.0 is outside [-180, 180] (point lon=181.0, lat=10.0). If it comes from a "
        "0-360 grid, wrap it first: lon = (lon + 180) % 360 - 180 gives -179 here. If lon and "
        "lat are swapped, swap them back."
    )


# ---- the zone comes from the raster's centre ---------------------------------------------------


def _dataset(transform: Affine, width: int, height: int, crs: str = "EPSG:4326") -> Any:
    return SimpleNamespace(
        transform=transform, width=width, height=height, crs=CRS.from_user_input(crs)
    )


def test_centre_lonlat_is_the_centre_of_the_raster() -> None:
    # 116.0 .. 124.2 E, 31.0 .. 29.0 N (not square): centre 120.1 E, 30.0 N.
    lon, lat = _centre_lonlat(_dataset(from_origin(116.0, 31.0, 0.1, 0.1), 82, 20))
    assert (lon, lat) == pytest.approx((120.1, 30.0), abs=1e-9)
    # UTM 18N, centre at x = 500100, y = 3998500.
    lon, lat = _centre_lonlat(_dataset(UTM, 20, 300, "EPSG:32618"))
    expected = rasterio.warp.transform("EPSG:32618", "EPSG:4326", [500100.0], [3998500.0])
    assert (lon, lat) == pytest.approx((expected[0][0], expected[1][0]), abs=1e-9)


@pytest.mark.parametrize(
    ("west", "expected"),
    [
        (179.0, 180.0),
        (179.5, -179.5),
        (181.0, -178.0),
        (-181.5, 179.5),
        (-183.0, 178.0),
        (170.0, 171.0),
    ],
)
def test_centre_longitude_is_wrapped_only_past_180(west: float, expected: float) -> None:
    lon, _ = _centre_lonlat(_dataset(from_origin(west, 10.0, 0.1, 0.1), 20, 10))
    assert lon == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(
    ("transform", "width", "height", "epsg"),
    [
        (from_origin(116.0, 31.0, 0.1, 0.1), 82, 10, 32651),  # west edge in zone 50
        (from_origin(120.5, 2.6, 0.1, 0.1), 10, 56, 32751),  # centre just south of the equator
    ],
)
def test_reprojection_uses_the_zone_of_the_centre(
    tmp_path: Path, write_raster: WriteRaster, transform: Affine, width: int, height: int, epsg: int
) -> None:
    src = write_raster(
        np.ones((1, height, width), np.float32), crs="EPSG:4326", transform=transform
    )
    with rasterio.open(reproject_to_utm(src, tmp_path / "o.tif", resampling="nearest")) as r:
        assert r.crs.to_epsg() == epsg


# ---- +lon_wrap for rasters crossing the antimeridian ------------------------------------------


@pytest.mark.parametrize(
    ("transform", "width", "crs"),
    [
        (from_origin(-180.0, 90.0, 1.0, 1.0), 360, "EPSG:4326"),  # exactly [-180, 180]
        (from_origin(170.0, 10.0, 0.5, 0.5), 20, "EPSG:4326"),  # ends at 180
        (from_origin(-180.0, 10.0, 0.5, 0.5), 20, "EPSG:4326"),  # starts at -180
        (UTM, 20, "EPSG:32618"),  # projected
    ],
)
def test_no_lon_wrap_within_180(transform: Affine, width: int, crs: str) -> None:
    assert _wrapped_source_crs(_dataset(transform, width, 10, crs)) is None


@pytest.mark.parametrize(
    ("west", "width", "centre"),
    [(179.0, 4, "180.0"), (-181.0, 4, "-180.0"), (178.5, 4, "179.5"), (-180.5, 1, "-180.25")],
)
def test_lon_wrap_is_the_centre_of_the_raster(west: float, width: int, centre: str) -> None:
    crs = _wrapped_source_crs(_dataset(from_origin(west, 10.0, 0.5, 0.5), width, 3))
    assert crs is not None and crs.is_geographic
    assert f"+lon_wrap={centre} " in crs.to_proj4() + " "


# ---- the written output ----------------------------------------------------------------------


def test_same_crs_output_is_the_source_over_several_blocks(
    tmp_path: Path, write_raster: WriteRaster
) -> None:
    # 300 rows: two 256-row blocks, the second one partial.
    values = np.random.default_rng(0).random((2, 300, 20)).astype(np.float32)
    src = write_raster(values, descriptions=("red", ""))
    out = reproject_to_utm(src, tmp_path / "o.tif", resampling="nearest")
    assert out == tmp_path / "o.tif"
    with rasterio.open(out) as r:
        assert r.crs.to_epsg() == 32618 and r.transform == UTM
        assert (r.count, r.height, r.width, r.dtypes) == (2, 300, 20, ("float32", "float32"))
        assert r.profile["tiled"] and r.block_shapes == [(256, 256)] * 2
        assert r.profile["compress"] == "deflate"
        assert r.descriptions == ("red", None)
        assert r.nodata is None
        np.testing.assert_array_equal(r.read(), values)
        np.testing.assert_array_equal(r.read_masks(1), np.full((300, 20), 255, np.uint8))


def test_nodata_output_over_several_blocks(tmp_path: Path, write_raster: WriteRaster) -> None:
    values = np.random.default_rng(1).integers(1, 200, (1, 300, 20)).astype(np.int16)
    values[0, 280:, 5] = -7
    src = write_raster(values, nodata=-7, descriptions=("",))
    with rasterio.open(reproject_to_utm(src, tmp_path / "o.tif", resampling="nearest")) as r:
        assert (r.nodata, r.dtypes, r.descriptions) == (-7, ("int16",), (None,))
        np.testing.assert_array_equal(r.read(), values)
        assert r.mask_flag_enums == ([MaskFlags.nodata],)
        np.testing.assert_array_equal(r.read_masks(1), np.where(values[0] == -7, 0, 255))


@pytest.mark.parametrize(
    ("resolution", "width", "height"),
    [(25.0, 8, 120), (30.0, 7, 100), (150.0, 2, 20), (5000.0, 1, 1)],
)
def test_resolution_gives_a_grid_from_the_same_corner(
    tmp_path: Path, write_raster: WriteRaster, resolution: float, width: int, height: int
) -> None:
    # The source covers 200 m x 3000 m from (500000, 4000000); pixel (r, c) holds 100 r + c.
    values = (np.arange(300)[:, None] * 100 + np.arange(20)).astype(np.float32)[None]
    src = write_raster(values)
    out = reproject_to_utm(src, tmp_path / "o.tif", resolution=resolution, resampling="nearest")
    with rasterio.open(out) as r:
        assert (r.width, r.height) == (width, height)
        assert r.transform == from_origin(500000.0, 4000000.0, resolution, resolution)
        got, valid = r.read(1), r.read_masks(1) > 0
    # Nearest: each output pixel holds the source pixel under its centre (where there is one).
    rows = ((np.arange(height) + 0.5) * resolution // 10).astype(int)
    cols = ((np.arange(width) + 0.5) * resolution // 10).astype(int)
    inside = (rows[:, None] < 300) & (cols[None, :] < 20)
    np.testing.assert_array_equal(valid, inside)
    np.testing.assert_array_equal(
        got[inside], values[0][np.minimum(rows, 299)][:, np.minimum(cols, 19)][inside]
    )


@pytest.mark.parametrize("resolution", [0.0, -5.0, math.nan])
def test_resolution_must_be_positive(
    tmp_path: Path, write_raster: WriteRaster, resolution: float
) -> None:
    src = write_raster(np.ones((1, 4, 4), np.float32))
    assert error_message(
        ValueError, lambda: reproject_to_utm(src, tmp_path / "o.tif", resolution=resolution)
    ) == (f"resolution must be > 0 metres, got {resolution}.")
    assert not (tmp_path / "o.tif").exists()


def test_sum_resampling_is_passed_to_the_warper(tmp_path: Path, write_raster: WriteRaster) -> None:
    # 2 x 2 source pixels of 10 m summed into one 20 m pixel.
    values = np.arange(1, 17, dtype=np.float32).reshape(1, 4, 4)
    src = write_raster(values)
    out = reproject_to_utm(src, tmp_path / "o.tif", resolution=20.0, resampling="sum")
    with rasterio.open(out) as r:
        np.testing.assert_allclose(
            r.read(1), values[0].reshape(2, 2, 2, 2).sum(axis=(1, 3)), rtol=1e-6
        )


def test_lon_wrap_of_a_rotated_raster_uses_all_four_corners() -> None:
    # Rows step 0.25 degrees east: the corners lie at 179, 179.5, 180 and 180.5 E.
    rotated = Affine(0.5, 0.25, 179.0, 0.0, -0.5, 10.0)
    crs = _wrapped_source_crs(_dataset(rotated, 1, 4))
    assert crs is not None and "+lon_wrap=179.75 " in crs.to_proj4() + " "


def test_without_rasterio_the_public_functions_name_themselves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "rasterio", None)  # import rasterio raises ImportError
    for name, call in (
        ("utm_crs_for", lambda: utm_crs_for(10.0, 10.0)),
        ("reproject_to_utm", lambda: reproject_to_utm(tmp_path / "a.tif", tmp_path / "b.tif")),
    ):
        assert error_message(MissingDependencyError, call) == (
            f"rasterio is required for geofm.geo.{name}. Install it with: pip install rasterio."
        )


@pytest.mark.parametrize("lon", [-180.5, 180.5])
def test_longitudes_just_past_180_are_refused(lon: float) -> None:
    assert error_message(ValueError, lambda: utm_epsg_for(lon, 0.0)).startswith(
        f"Longitude {lon} is outside [-180, 180] (point lon={lon}, lat=0.0)."
    )


def test_reproject_errors_name_the_function_and_the_source(
    tmp_path: Path, write_raster: WriteRaster
) -> None:
    src = write_raster(np.ones((1, 4, 4), np.float32))
    bad: Any = "lanczos9"
    message = error_message(
        ValueError, lambda: reproject_to_utm(src, tmp_path / "o.tif", resampling=bad)
    )
    assert message.startswith("Unknown resampling 'lanczos9' for geofm.geo.reproject_to_utm.")
    (tmp_path / "o.tif").write_bytes(b"old")
    assert error_message(FileExistsError, lambda: reproject_to_utm(src, tmp_path / "o.tif")) == (
        f"Output '{tmp_path / 'o.tif'}' of geofm.geo.reproject_to_utm already exists. "
        "Pass overwrite=True to replace it."
    )
    bare = write_raster(np.ones((1, 4, 4), np.float32), "bare.tif", crs=None)
    assert error_message(ValueError, lambda: reproject_to_utm(bare, tmp_path / "b.tif")).startswith(
        f"Raster '{bare}' has no CRS, but geofm.geo.reproject_to_utm needs a georeferenced source"
    )


def test_a_resolution_below_one_metre_is_allowed(tmp_path: Path, write_raster: WriteRaster) -> None:
    values = np.arange(1, 5, dtype=np.float32).reshape(1, 2, 2)
    src = write_raster(values)
    out = reproject_to_utm(src, tmp_path / "o.tif", resolution=0.5, resampling="nearest")
    with rasterio.open(out) as r:
        assert (r.width, r.height, r.res) == (40, 40, (0.5, 0.5))
        np.testing.assert_array_equal(r.read(1), np.kron(values[0], np.ones((20, 20))))


class _RecordingVRT(rasterio.vrt.WarpedVRT):  # type: ignore[misc]
    """A WarpedVRT that records the band indexes and window of every read."""

    reads: ClassVar[list[tuple[Any, Any]]] = []

    def read(self, indexes: Any = None, **kwargs: Any) -> Any:
        window = kwargs.get("window")
        _RecordingVRT.reads.append((indexes, None if window is None else tuple(window.flatten())))
        return super().read(indexes, **kwargs)


def test_output_is_read_and_masked_block_row_by_block_row(
    tmp_path: Path, write_raster: WriteRaster, monkeypatch: pytest.MonkeyPatch
) -> None:
    # UTM 18N near its east edge, warped into zone 19: the output grid is turned against
    # the source, so its corners lie outside the source and are masked, in both blocks.
    values = np.random.default_rng(2).integers(1, 200, (1, 300, 40)).astype(np.uint8)
    src = write_raster(values, transform=from_origin(750000, 4000000, 10, 10))
    monkeypatch.setattr(rasterio.vrt, "WarpedVRT", _RecordingVRT)
    monkeypatch.setattr(_RecordingVRT, "reads", [])
    out = reproject_to_utm(src, tmp_path / "o.tif", dst_crs="EPSG:32619", resampling="nearest")
    with rasterio.open(out) as r:
        width, height = r.width, r.height
        data, mask = r.read(1), r.read_masks(1)
    assert height > 256
    rows = [(0, 256), (256, height - 256)]
    assert _RecordingVRT.reads == [
        item for row, h in rows for item in (([1], (0, row, width, h)), (2, (0, row, width, h)))
    ]
    # Inside the source every value is >= 1, outside the warper gives 0: the mask says which.
    np.testing.assert_array_equal(mask == 0, data == 0)
    assert (mask[:256] == 0).any() and (mask[256:] == 0).any() and (mask[256:] == 255).any()


def test_an_output_created_by_another_writer_meanwhile_is_kept(
    tmp_path: Path, write_raster: WriteRaster, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = write_raster(np.ones((1, 4, 4), np.float32))
    dst = tmp_path / "o.tif"

    class Racing(rasterio.vrt.WarpedVRT):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if not dst.exists():
                dst.write_bytes(b"the other writer's")

    monkeypatch.setattr(rasterio.vrt, "WarpedVRT", Racing)
    assert error_message(FileExistsError, lambda: reproject_to_utm(src, dst)) == (
        f"Output '{dst}' of geofm.geo.reproject_to_utm was created by another writer while this "
        "run was writing it; it was left as it is and this run's result was discarded. "
        "Pass overwrite=True to replace it."
    )
    assert dst.read_bytes() == b"the other writer's"
