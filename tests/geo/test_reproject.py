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


@pytest.mark.parametrize(("lon", "lat"), [(0.0, 85.0), (0.0, -81.0)])
def test_points_past_the_utm_latitudes_get_a_polar_hint(lon: float, lat: float) -> None:
    with pytest.raises(ValueError, match=r"outside UTM coverage .* polar stereographic"):
        utm_epsg_for(lon, lat)


@pytest.mark.parametrize(("lon", "wrapped"), [(181.0, "-179"), (350.5, "-9.5"), (-190.0, "170")])
def test_longitudes_outside_180_get_a_wrapping_hint(lon: float, wrapped: str) -> None:
    with pytest.raises(ValueError, match=rf"Longitude {lon} is outside \[-180, 180\]") as info:
        utm_epsg_for(lon, 10.0)
    message = str(info.value)
    assert "0-360" in message and f"gives {wrapped} here" in message
    assert "polar" not in message


def test_non_finite_points_raise() -> None:
    with pytest.raises(ValueError, match="not a finite longitude/latitude"):
        utm_epsg_for(float("nan"), 10.0)


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


def _two_sided(write_raster: WriteRaster, west: float, name: str) -> tuple[Path, np.ndarray]:
    """A lon/lat raster 2 degrees wide from ``west``: 1.0 west of its middle, 2.0 east of it."""
    values = np.ones((1, 80, 200), np.float32)
    values[0, :, 100:] = 2.0
    return write_raster(
        values, name, crs="EPSG:4326", transform=from_origin(west, -16.0, 0.01, 0.01)
    ), values


@pytest.mark.parametrize(
    ("west", "epsg"),
    [
        (179.0, 32760),  # Fiji written past 180 E: both halves must survive
        (-181.0, 32701),  # the same place written past 180 W
        (178.5, 32760),  # a quarter of it past 180 E
        (199.0, 32704),  # a 0-360 grid past 180 (lon 199-201 = 161-159 W: zone 4)
    ],
)
def test_antimeridian_crossing_rasters_keep_both_sides(
    tmp_path: Path, write_raster: WriteRaster, west: float, epsg: int
) -> None:
    src, values = _two_sided(write_raster, west, f"am{west}.tif")
    out = reproject_to_utm(src, tmp_path / f"u{west}.tif", resampling="sum")
    with rasterio.open(out) as r:
        assert r.crs.to_epsg() == epsg
        total = float(r.read(1, masked=True).sum())
    assert total == pytest.approx(float(values.sum()), rel=5e-3)  # dropping a side loses >= 1/4
    near = reproject_to_utm(src, tmp_path / f"n{west}.tif", resampling="nearest")
    with rasterio.open(near) as r:
        data, valid = r.read(1), r.read_masks(1) != 0
    ones, twos = int((data[valid] == 1).sum()), int((data[valid] == 2).sum())
    assert ones > 0 and twos > 0 and 0.9 < ones / twos < 1.1


def test_a_raster_with_a_crs_but_no_geotransform_is_refused(
    tmp_path: Path, write_raster: WriteRaster
) -> None:
    src = write_raster(np.ones((1, 8, 8), np.float32), "ng.tif", transform=Affine.identity())
    with pytest.raises(ValueError, match="has a CRS .* but no geotransform"):
        reproject_to_utm(src, tmp_path / "x.tif")
    assert not (tmp_path / "x.tif").exists()


def test_overwrite_replaces_and_no_overwrite_keeps(
    tmp_path: Path, write_raster: WriteRaster
) -> None:
    src = _lonlat_raster(write_raster, np.ones((1, 6, 8), np.float32))
    dst = tmp_path / "o.tif"
    dst.write_bytes(b"old")
    with pytest.raises(FileExistsError, match="Pass overwrite=True"):
        reproject_to_utm(src, dst)
    assert dst.read_bytes() == b"old"
    reproject_to_utm(src, dst, overwrite=True)
    with rasterio.open(dst) as r:
        assert r.crs.to_epsg() == 32651
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []
