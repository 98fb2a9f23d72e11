from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine, from_origin

from geofm.geo import reproject_to_utm, utm_crs_for, utm_epsg_for

WriteRaster = Callable[..., Path]


def _zone_reference(lon: float, lat: float) -> int:
    # Written from the UTM definition: 60 zones of 6 degrees from 180 W; 326xx north, 327xx south.
    zone = 1
    while zone < 60 and lon >= -180 + 6 * zone:
        zone += 1
    return (32600 if lat >= 0 else 32700) + zone


@pytest.mark.parametrize(
    ("lon", "lat", "epsg"),
    [
        (121.47, 31.23, 32651),  # Shanghai (EcoVision)
        (-115.14, 36.17, 32611),  # Las Vegas (EcoVision)
        (-84.39, 33.75, 32616),  # Atlanta (SpaceNet-4 sample, EPSG:32616)
        (13.06, 52.39, 32633),  # Potsdam (EnMAP sample, EPSG:32633)
        (18.42, -33.92, 32734),  # Cape Town, southern hemisphere
        (-43.2, -22.9, 32723),  # Rio de Janeiro
        (-180.0, 10.0, 32601),
        (180.0, 10.0, 32660),  # the antimeridian belongs to zone 60
        (0.0, 0.0, 32631),  # the equator counts as north
    ],
)
def test_utm_zone_of_known_places(lon: float, lat: float, epsg: int) -> None:
    assert utm_epsg_for(lon, lat) == epsg
    assert utm_crs_for(lon, lat).to_epsg() == epsg


def test_utm_zone_matches_definition_on_a_grid() -> None:
    for lon in np.linspace(-180, 179.99, 97):
        for lat in (-79.0, -0.01, 0.0, 45.0, 83.9):
            assert utm_epsg_for(float(lon), lat) == _zone_reference(float(lon), lat)


@pytest.mark.parametrize(("lon", "lat"), [(0.0, 85.0), (0.0, -81.0), (181.0, 0.0)])
def test_points_outside_utm_raise(lon: float, lat: float) -> None:
    with pytest.raises(ValueError, match="outside UTM coverage"):
        utm_epsg_for(lon, lat)


def _lonlat_raster(write_raster: WriteRaster, values: np.ndarray, **kwargs: object) -> Path:
    return write_raster(
        values, "ll.tif", crs="EPSG:4326", transform=from_origin(121.3, 31.3, 0.01, 0.01), **kwargs
    )


def test_reprojection_picks_the_zone_and_keeps_a_conserved_total(
    tmp_path: Path, write_raster: WriteRaster
) -> None:
    values = np.random.default_rng(0).uniform(0, 10, (1, 60, 80)).astype(np.float32)
    src = _lonlat_raster(write_raster, values)
    for resolution in (None, 300.0, 2500.0):  # about 1 pixel, finer, and much coarser
        out = reproject_to_utm(
            src, tmp_path / f"utm{resolution}.tif", resampling="sum", resolution=resolution
        )
        with rasterio.open(out) as r:
            assert r.crs.to_epsg() == 32651
            if resolution is not None:
                assert r.res == (resolution, resolution)
            total = float(r.read(1, masked=True).sum())
        # Only the outer ring of pixels is only partly covered: well under 1% here.
        assert total == pytest.approx(float(values.sum()), rel=5e-3)


def test_bilinear_is_not_conservative_but_sum_is(tmp_path: Path, write_raster: WriteRaster) -> None:
    values = np.ones((1, 60, 80), np.float32)
    src = _lonlat_raster(write_raster, values)
    coarse = reproject_to_utm(src, tmp_path / "b.tif", resampling="bilinear", resolution=2500.0)
    with rasterio.open(coarse) as r:
        assert float(r.read(1, masked=True).sum()) < 0.5 * values.sum()  # ~2500 m vs ~1000 m pixels


def test_nodata_is_kept_and_outside_is_masked(tmp_path: Path, write_raster: WriteRaster) -> None:
    values = np.ones((1, 60, 80), np.float32)
    values[0, :20] = -1
    out = reproject_to_utm(_lonlat_raster(write_raster, values, nodata=-1.0), tmp_path / "a.tif")
    with rasterio.open(out) as r:
        assert r.nodata == -1
        valid = r.read_masks(1) != 0
        data = r.read(1)
    assert np.allclose(data[valid], 1.0)
    assert 0.55 < valid.mean() < 0.7  # two thirds of the source, minus the rotated-grid corners
    # Without a nodata value, the pixels outside the source are marked by a mask band.
    out2 = reproject_to_utm(
        _lonlat_raster(write_raster, np.ones((1, 60, 80), np.uint8)), tmp_path / "b.tif"
    )
    with rasterio.open(out2) as r:
        assert r.nodata is None
        valid = r.read_masks(1) != 0
        assert 0.8 < valid.mean() < 1.0 and (r.read(1)[valid] == 1).all()


def test_rotated_source_is_reprojected(tmp_path: Path, write_raster: WriteRaster) -> None:
    # Like solaris' sar_hh.tif: a rotated affine in UTM 31N, reprojected into its own zone.
    rotated = Affine(8.0, 6.0, 590000.0, 6.0, -8.0, 5750000.0)
    values = np.random.default_rng(1).uniform(1, 2, (1, 50, 50)).astype(np.float32)
    src = write_raster(values, crs="EPSG:32631", transform=rotated)
    out = reproject_to_utm(src, tmp_path / "r.tif", resampling="sum")
    with rasterio.open(out) as r:
        assert r.crs.to_epsg() == 32631
        assert r.transform.b == 0 and r.transform.d == 0  # north-up output
        assert float(r.read(1, masked=True).sum()) == pytest.approx(float(values.sum()), rel=0.02)


def test_explicit_crs_overrides_the_zone(tmp_path: Path, write_raster: WriteRaster) -> None:
    src = _lonlat_raster(write_raster, np.ones((1, 6, 8), np.float32))
    out = reproject_to_utm(src, tmp_path / "o.tif", dst_crs="EPSG:32650")
    with rasterio.open(out) as r:
        assert r.crs.to_epsg() == 32650


def test_errors(tmp_path: Path, write_raster: WriteRaster) -> None:
    no_crs = write_raster(np.ones((1, 4, 4), np.float32), "n.tif", crs=None)
    with pytest.raises(ValueError, match="has no CRS, but geofm.geo.reproject_to_utm needs"):
        reproject_to_utm(no_crs, tmp_path / "x.tif")
    src = _lonlat_raster(write_raster, np.ones((1, 4, 4), np.float32))
    with pytest.raises(ValueError, match="Unknown resampling 'lanczos3'"):
        reproject_to_utm(src, tmp_path / "x.tif", resampling="lanczos3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="resolution must be > 0 metres, got -5"):
        reproject_to_utm(src, tmp_path / "x.tif", resolution=-5)
    (tmp_path / "exists.tif").write_bytes(b"")
    with pytest.raises(FileExistsError, match="Pass overwrite=True"):
        reproject_to_utm(src, tmp_path / "exists.tif")
    with pytest.raises(FileNotFoundError, match="does not exist. Create it first"):
        reproject_to_utm(src, tmp_path / "missing" / "x.tif")
