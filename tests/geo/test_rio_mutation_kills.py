"""geofm.geo._rio's georeferencing checks and resampling names: exact messages (mutation kills)."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.transform import Affine

from geofm.errors import MissingDependencyError
from geofm.geo._rio import require_crs, require_georeferencing, resampling_enum

from .conftest import error_message

UTM = CRS.from_epsg(32618)


def dataset(*, crs: CRS | None = UTM, gcps: tuple[list[object], CRS] | tuple[()] = ()) -> object:
    """A stand-in for an open rasterio dataset without a geotransform."""
    return SimpleNamespace(crs=crs, transform=Affine.identity(), gcps=gcps)


def test_missing_crs_message_without_and_with_a_hint() -> None:
    want = (
        "Raster 'a.tif' has no CRS, but geofm.geo.tile_raster needs a georeferenced source (its "
        "output must carry the source's CRS). Assign one first, e.g. "
        "`rio edit-info --crs EPSG:32618 a.tif`."
    )
    assert (
        error_message(ValueError, lambda: require_crs(dataset(crs=None), "a.tif", "tile_raster"))
        == want
    )
    hinted = lambda: require_crs(dataset(crs=None), "a.tif", "tile_raster", hint=" Or pass x.")  # noqa: E731
    assert error_message(ValueError, hinted) == want + " Or pass x."


def test_georeferencing_passes_its_hint_to_the_crs_check() -> None:
    call = lambda: require_georeferencing(  # noqa: E731
        dataset(crs=None), "a.tif", "predict_raster", hint=" Or allow_ungeoreferenced=True."
    )
    assert error_message(ValueError, call).endswith("a.tif`. Or allow_ungeoreferenced=True.")


def test_no_geotransform_and_no_gcps_says_assign_one() -> None:
    message = error_message(ValueError, lambda: require_georeferencing(dataset(), "b.tif", "read"))
    assert message == (
        "Raster 'b.tif' has a CRS (EPSG:32618) but no geotransform, so its pixels have no "
        "position and geofm.geo.read would place them at the identity transform. Assign one "
        "first, e.g. `rio edit-info --transform '[...]'`, or recreate it."
    )


def test_ground_control_points_are_counted_and_warping_suggested() -> None:
    points = [
        GroundControlPoint(row=r, col=c, x=500000.0 + c, y=4e6 - r)
        for r, c in ((0, 0), (0, 9), (9, 0))
    ]
    message = error_message(
        ValueError,
        lambda: require_georeferencing(dataset(gcps=(points, UTM)), "c.tif", "read", hint=" H."),
    )
    assert message.endswith(
        "It has 3 ground control points: warp it onto a grid first, e.g. "
        "`gdalwarp -r bilinear c.tif warped.tif`. H."
    )


def test_unknown_resampling_lists_every_choice() -> None:
    assert error_message(ValueError, lambda: resampling_enum("lanczos", "align_target")) == (
        "Unknown resampling 'lanczos' for geofm.geo.align_target. Expected one of: nearest, "
        "bilinear, cubic, average, mode, min, max, med, sum."
    )
    assert resampling_enum("average", "align_target").name == "average"


def test_resampling_without_rasterio_names_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rasterio", None)
    with pytest.raises(
        MissingDependencyError, match=r"^rasterio is required for geofm\.geo\.align_target\. "
    ):
        resampling_enum("nearest", "align_target")
