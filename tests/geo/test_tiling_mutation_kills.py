"""Tests of geofm.geo.tiling written against the survivors of its mutation run (issue 21).

Each test pins a value, a written file or an error (its type and full message) that a
surviving mutant changed: exact index contents, the boundaries of the CRS checks, the
tolerance of the stored-bounds check, band descriptions, compression and mask bands of
written tiles, and the clean-up after a failed run.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.enums import MaskFlags
from rasterio.transform import Affine

from geofm.errors import MissingDependencyError, ShapeError
from geofm.geo import PixelWindow, Tile, read_tile_index, tile_raster, tiling, write_tile_index
from geofm.geo.tiling import _area_of_use, _lon_within

from .conftest import WriteRaster, error_message

UTM18 = CRS.from_epsg(32618)
WGS84 = CRS.from_epsg(4326)
FIX = (
    "The CRS stored in the index contradicts its coordinates (an edited or mislabelled "
    "index); correct the CRS or regenerate the index with write_tile_index."
)


def _tile(transform: Affine, crs: Any = UTM18, *, size: int = 2, **kwargs: Any) -> Tile:
    fields: dict[str, Any] = {"index": 0, "grid_row": 0, "grid_col": 0}
    fields.update(kwargs)
    return Tile(window=PixelWindow(0, 0, size, size), transform=transform, crs=crs, **fields)


def _refused(tiles: list[Tile], path: Path) -> str:
    """Write ``tiles`` to ``path`` and return the message of the ValueError reading raises."""
    write_tile_index(tiles, path)
    return error_message(ValueError, lambda: read_tile_index(path))


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _set_csv(path: Path, column: str, value: str, row: int = 0) -> None:
    rows = _rows(path)
    rows[row][column] = value
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


# ---- index suffix and CRS of the tiles -----------------------------------------------------


def test_unknown_suffix_messages_for_writing_and_reading(tmp_path: Path) -> None:
    tile = _tile(Affine(10, 0, 500000, 0, -10, 4000000))
    path = tmp_path / "i.txt"
    assert error_message(ValueError, lambda: write_tile_index([tile], path)) == (
        f"Unknown tile index format '.txt' for '{path}'. Use a .geojson, .json or .csv file name."
    )
    assert error_message(ValueError, lambda: read_tile_index(path)) == (
        f"Unknown tile index format '.txt' for '{path}'. Use a .geojson, .json or .csv file."
    )


@pytest.mark.parametrize("name", ["I.CSV", "I.GeoJSON", "i.Json"])
def test_index_suffixes_are_case_insensitive(tmp_path: Path, name: str) -> None:
    tile = _tile(Affine(10, 0, 500000, 0, -10, 4000000))
    assert read_tile_index(write_tile_index([tile], tmp_path / name)) == [tile]
    if name.lower().endswith(".csv"):
        assert (tmp_path / name).read_text().startswith("index,grid_row,grid_col,")
    else:
        assert json.loads((tmp_path / name).read_text())["type"] == "FeatureCollection"


def test_tiles_without_or_with_mixed_crs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^write_tile_index got no tiles\. Pass at least one"):
        write_tile_index([], tmp_path / "i.csv")
    no_crs = _tile(Affine(10, 0, 500000, 0, -10, 4000000), None)
    assert error_message(ValueError, lambda: write_tile_index([no_crs], tmp_path / "i.csv")) == (
        "Tiles have no CRS; an index needs one. Tile a georeferenced raster."
    )
    a = _tile(Affine(10, 0, 500000, 0, -10, 4000000))
    b = _tile(Affine(10, 0, 500020, 0, -10, 4000000), CRS.from_epsg(32619), index=1)
    c = _tile(Affine(10, 0, 500040, 0, -10, 4000000), CRS.from_epsg(32619), index=2)
    assert error_message(ValueError, lambda: write_tile_index([a, b, c], tmp_path / "i.csv")) == (
        "All tiles of one index must share a CRS; got EPSG:32618 and ['EPSG:32619']. "
        "Write one index per CRS."
    )
    assert not (tmp_path / "i.csv").exists()


# ---- exact contents of the written index ---------------------------------------------------


def _three_tiles(tmp_path: Path) -> list[Tile]:
    t = Affine(10, 0, 500040, 0, -10, 3999980)
    return [
        Tile(7, 1, 2, PixelWindow(2, 4, 3, 5), t, UTM18, tmp_path / "t" / "a.tif"),
        Tile(8, 1, 3, PixelWindow(2, 9, 3, 5), t @ Affine.translation(5, 0), UTM18, None),
        Tile(9, 2, 0, PixelWindow(5, 0, 3, 5), t, UTM18, tmp_path / "other" / "b.tif"),
    ]


def test_csv_index_contents(tmp_path: Path) -> None:
    (tmp_path / "idx").mkdir()
    path = write_tile_index(_three_tiles(tmp_path), tmp_path / "idx" / "i.csv")
    assert path == tmp_path / "idx" / "i.csv"
    assert path.read_bytes().decode() == (
        "index,grid_row,grid_col,row_off,col_off,height,width,a,b,c,d,e,f,left,bottom,right,top,"
        "crs,path\r\n"
        "7,1,2,2,4,3,5,10.0,0.0,500040.0,0.0,-10.0,3999980.0,"
        "500040.0,3999950.0,500090.0,3999980.0,EPSG:32618,../t/a.tif\r\n"
        "8,1,3,2,9,3,5,10.0,0.0,500090.0,0.0,-10.0,3999980.0,"
        "500090.0,3999950.0,500140.0,3999980.0,EPSG:32618,\r\n"
        "9,2,0,5,0,3,5,10.0,0.0,500040.0,0.0,-10.0,3999980.0,"
        "500040.0,3999950.0,500090.0,3999980.0,EPSG:32618,../other/b.tif\r\n"
    )
    assert read_tile_index(path) == _three_tiles(tmp_path)


def test_geojson_index_contents(tmp_path: Path) -> None:
    (tmp_path / "idx").mkdir()
    path = write_tile_index(_three_tiles(tmp_path), tmp_path / "idx" / "i.geojson")
    assert path == tmp_path / "idx" / "i.geojson"
    ring = [
        [500040.0, 3999980.0],
        [500090.0, 3999980.0],
        [500090.0, 3999950.0],
        [500040.0, 3999950.0],
        [500040.0, 3999980.0],
    ]

    def feature(index: int, row: int, col: int, window: tuple[int, ...], dx: float, p: Any) -> Any:
        return {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [[[x + dx, y] for x, y in ring]]},
            "properties": {
                "index": index,
                "grid_row": row,
                "grid_col": col,
                "row_off": window[0],
                "col_off": window[1],
                "height": window[2],
                "width": window[3],
                "transform": [10.0, 0.0, 500040.0 + dx, 0.0, -10.0, 3999980.0],
                "bounds": [500040.0 + dx, 3999950.0, 500090.0 + dx, 3999980.0],
                "path": p,
            },
        }

    assert json.loads(path.read_text()) == {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32618"}},
        "features": [
            feature(7, 1, 2, (2, 4, 3, 5), 0.0, "../t/a.tif"),
            feature(8, 1, 3, (2, 9, 3, 5), 50.0, None),
            feature(9, 2, 0, (5, 0, 3, 5), 0.0, "../other/b.tif"),
        ],
    }
    assert read_tile_index(path) == _three_tiles(tmp_path)


@pytest.mark.parametrize("name", ["i.csv", "i.geojson"])
def test_relative_index_path_gives_absolute_tile_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    (tmp_path / "sub").mkdir()
    tile = _tile(Affine(10, 0, 500000, 0, -10, 4000000), path=tmp_path / "sub" / "t" / "x.tif")
    monkeypatch.chdir(tmp_path)
    write_tile_index([tile], Path("sub") / name)
    assert read_tile_index(Path("sub") / name) == [tile]
    monkeypatch.chdir(tmp_path / "sub")
    [back] = read_tile_index(name)
    assert back.path == tmp_path / "sub" / "t" / "x.tif" and back.path.is_absolute()


def test_empty_indexes_read_as_no_tiles(tmp_path: Path) -> None:
    tile = _tile(Affine(10, 0, 500000, 0, -10, 4000000))
    header = write_tile_index([tile], tmp_path / "i.csv").read_text().splitlines()[0]
    (tmp_path / "i.csv").write_text(header + "\n")
    assert read_tile_index(tmp_path / "i.csv") == []
    path = write_tile_index([tile], tmp_path / "i.geojson")
    collection = json.loads(path.read_text())
    collection["features"] = []
    path.write_text(json.dumps(collection))
    assert read_tile_index(path) == []


def test_geojson_with_an_empty_crs_member_is_refused(tmp_path: Path) -> None:
    path = write_tile_index([_tile(Affine(10, 0, 500000, 0, -10, 4000000))], tmp_path / "i.json")
    collection = json.loads(path.read_text())
    collection["crs"] = {}
    path.write_text(json.dumps(collection))
    assert error_message(ValueError, lambda: read_tile_index(path)) == (
        f"Tile index '{path}' has no 'crs' member, so its footprints' CRS is unknown. "
        "geofm does not assume EPSG:4326; write the index with write_tile_index."
    )


def test_mixed_crs_message(tmp_path: Path) -> None:
    a = _tile(Affine(10, 0, 500000, 0, -10, 4000000))
    b = _tile(Affine(10, 0, 500020, 0, -10, 4000000), index=1)
    path = write_tile_index([a, b, a], tmp_path / "i.csv")
    _set_csv(path, "crs", "EPSG:32617", row=1)
    assert error_message(ValueError, lambda: read_tile_index(path)) == (
        f"Tile index '{path}' mixes CRSs in its crs column (EPSG:32617, EPSG:32618); an index "
        "has one CRS. The index was edited; regenerate it with write_tile_index (one index per "
        "CRS)."
    )


# ---- stored bounds and footprints must match the transform --------------------------------


def test_stored_bounds_and_footprint_messages(tmp_path: Path) -> None:
    tile = _tile(Affine(10, 0, 500000, 0, -10, 4000000))
    path = write_tile_index([tile], tmp_path / "i.csv")
    _set_csv(path, "top", "4000100.0")
    assert error_message(ValueError, lambda: read_tile_index(path)) == (
        f"Tile 0 in index '{path}' has bounds [500000.0, 3999980.0, 500020.0, 4000100.0] that "
        "do not match its transform and window (expected [500000.0, 3999980.0, 500020.0, "
        "4000000.0]). The index was edited or written in another CRS; regenerate it with "
        "write_tile_index."
    )
    path = write_tile_index([tile], tmp_path / "i.geojson")
    collection = json.loads(path.read_text())
    del collection["features"][0]["geometry"]["coordinates"][0][-1]  # an open ring
    path.write_text(json.dumps(collection))
    ring = "[500000.0, 4000000.0], [500020.0, 4000000.0], [500020.0, 3999980.0], "
    assert error_message(ValueError, lambda: read_tile_index(path)) == (
        f"Tile 0 in index '{path}' has a footprint [{ring}[500000.0, 3999980.0]] that does not "
        f"match its transform and window (expected [{ring}[500000.0, 3999980.0], "
        "[500000.0, 4000000.0]]). The index was edited or written in another CRS; regenerate "
        "it with write_tile_index."
    )


def test_stored_bounds_tolerance_scales_with_the_coordinates(tmp_path: Path) -> None:
    # UTM: |coordinates| up to 4e6, so the tolerance is 4e6 * 1e-9 = 4 mm.
    tile = _tile(Affine(10, 0, 500000, 0, -10, 4000000))
    path = write_tile_index([tile], tmp_path / "u.csv")
    _set_csv(path, "top", "4000000.003")
    assert read_tile_index(path) == [tile]
    _set_csv(path, "top", "4000000.005")
    with pytest.raises(ValueError, match=r"^Tile 0 in index .* has bounds"):
        read_tile_index(path)
    # Degrees near (0, 0): the tolerance is 1e-9 (the scale is at least 1).
    geo = _tile(Affine(0.1, 0, 0.0, 0, -0.1, 0.5), WGS84)
    path = write_tile_index([geo], tmp_path / "g.csv")
    _set_csv(path, "left", "5e-10")
    assert read_tile_index(path) == [geo]
    _set_csv(path, "left", "1.5e-9")
    with pytest.raises(ValueError, match=r"^Tile 0 in index .* has bounds"):
        read_tile_index(path)


# ---- the CRS must fit the coordinates: geographic ------------------------------------------


def test_geographic_bounds_up_to_the_limits_are_accepted(tmp_path: Path) -> None:
    tiles = [
        _tile(Affine(1, 0, -360, 0, -1, 90), WGS84),  # (-360, 88, -358, 90)
        _tile(Affine(1, 0, 358, 0, -1, -88), WGS84, index=1),  # (358, -90, 360, -88)
    ]
    for name in ("g.csv", "g.geojson"):
        assert read_tile_index(write_tile_index(tiles, tmp_path / name)) == tiles


@pytest.mark.parametrize(
    ("x0", "y0", "box"),
    [
        (-360.5, 0.0, "(-360.5, -1, -359.5, 0)"),
        (359.5, 0.0, "(359.5, -1, 360.5, 0)"),
        (0.0, -89.5, "(0, -90.5, 1, -89.5)"),
        (0.0, 90.5, "(0, 89.5, 1, 90.5)"),
    ],
)
def test_geographic_bounds_past_one_limit_are_refused(
    tmp_path: Path, x0: float, y0: float, box: str
) -> None:
    path = tmp_path / "g.csv"
    message = _refused([_tile(Affine(0.5, 0, x0, 0, -0.5, y0), WGS84)], path)
    assert message == (
        f"Tile index '{path}' says its coordinates are in EPSG:4326 (degrees), but its tiles' "
        f"bounds {box} are not longitudes and latitudes (expected x in [-360, 360] and y in "
        f"[-90, 90]). {FIX}"
    )


# ---- the CRS must fit the coordinates: projected -------------------------------------------


def test_pixel_size_limit_is_one_millimetre_in_the_crs_units(tmp_path: Path) -> None:
    exactly = _tile(Affine(0.001, 0, 500000, 0, -0.001, 4000000))
    assert read_tile_index(write_tile_index([exactly], tmp_path / "mm.csv")) == [exactly]
    # 0.003 US survey feet are 0.91 mm: refused, although 0.003 is more than 1e-3.
    feet = _tile(Affine(0.003, 0, 990000, 0, -0.003, 200000), CRS.from_epsg(2263))
    path = tmp_path / "ft.csv"
    assert _refused([feet], path) == (
        f"Tile index '{path}' says its coordinates are in EPSG:2263 (US survey foot), but its "
        "pixels are 0.000914 m wide, which looks like degrees (bounds (990000, 199999.994, "
        f"990000.006, 200000)). {FIX}"
    )
    # 0.004 US survey feet are 1.2 mm: accepted.
    wide = _tile(Affine(0.004, 0, 990000, 0, -0.004, 200000), CRS.from_epsg(2263))
    assert read_tile_index(write_tile_index([wide], tmp_path / "ft4.csv")) == [wide]


def test_the_smallest_pixel_side_of_any_tile_counts(tmp_path: Path) -> None:
    thin = _tile(Affine(10, 0, 500000, 0, -0.0005, 4000000))  # 10 m x 0.5 mm pixels
    assert "pixels are 0.0005 m wide" in _refused([thin], tmp_path / "thin.csv")
    good = _tile(Affine(10, 0, 500000, 0, -10, 4000000))
    tiny = _tile(Affine(0.0005, 0, 500000, 0, -0.0005, 4000000), index=1)
    for tiles, name in (([good, tiny], "a.csv"), ([tiny, good], "b.csv")):
        assert "pixels are 0.0005 m wide" in _refused(tiles, tmp_path / name)


def test_a_custom_crs_is_named_as_such(tmp_path: Path) -> None:
    albers = CRS.from_wkt(
        'PROJCS["Albers",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,'
        '298.257223563]],PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],'
        'PROJECTION["Albers_Conic_Equal_Area"],PARAMETER["latitude_of_center",23],'
        'PARAMETER["longitude_of_center",-96],PARAMETER["standard_parallel_1",29.5],'
        'PARAMETER["standard_parallel_2",45.5],PARAMETER["false_easting",0],'
        'PARAMETER["false_northing",0],UNIT["metre",1]]'
    )
    assert _area_of_use(albers) is None
    tile = _tile(Affine(0.0001, 0, 1e5, 0, -0.0001, 2e5), albers)
    path = tmp_path / "a.csv"
    assert _refused([tile], path) == (
        f"Tile index '{path}' says its coordinates are in its custom CRS (metre), but its "
        f"pixels are 0.0001 m wide, which looks like degrees (bounds (100000, 199999.9998, "
        f"100000.0002, 200000)). {FIX}"
    )


def test_coordinates_proj_cannot_transform_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "far.csv"
    message = _refused([_tile(Affine(10, 0, 1e9, 0, -10, 4000000))], path)
    assert re.fullmatch(
        rf"Tile index '{re.escape(str(path))}': its tiles' bounds \(1000000000, 3999980, "
        rf"1000000020, 4000000\) are not valid coordinates of EPSG:32618 \(.+\)\. "
        + re.escape(FIX),
        message,
    ), message


def test_coordinates_outside_the_projection_domain_are_refused(tmp_path: Path) -> None:
    # Plate carree in metres: y = 2e7 m maps to a "latitude" of about 180 degrees.
    path = tmp_path / "eqc.csv"
    message = _refused([_tile(Affine(10, 0, 0, 0, -10, 2e7), CRS.from_epsg(32662))], path)
    assert message == (
        f"Tile index '{path}': its tiles' bounds (0, 19999980, 20, 20000000) are outside the "
        f"domain of EPSG:32662. {FIX}"
    )


def test_genuine_projected_indexes_are_accepted(tmp_path: Path) -> None:
    # Lambert-93 over France and UTM 18N off its central meridian: the corners and the
    # centre of the bounds all map into the area of use.
    lambert = _tile(Affine(10, 0, 700000, 0, -10, 6600000), CRS.from_epsg(2154), size=100)
    utm = _tile(Affine(30, 0, 300000, 0, -30, 4500000), size=1000)
    for tile, name in ((lambert, "l.csv"), (utm, "u.geojson")):
        assert read_tile_index(write_tile_index([tile], tmp_path / name)) == [tile]


def test_the_corners_and_centre_are_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Any, ...]] = []
    real = rasterio.warp.transform

    def recording(*args: Any) -> Any:
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(rasterio.warp, "transform", recording)
    tiles = [
        _tile(Affine(10, 0, 500000, 0, -10, 4000000)),
        _tile(Affine(10, 0, 500100, 0, -10, 3999900), size=3, index=1),
    ]
    assert read_tile_index(write_tile_index(tiles, tmp_path / "i.csv")) == tiles
    [(crs, dst, xs, ys)] = calls
    assert (crs, dst) == (UTM18, "EPSG:4326")
    assert xs == [500000, 500130, 500000, 500130, 500065]
    assert ys == [3999870, 3999870, 4000000, 4000000, 3999935]


def _with_points(monkeypatch: pytest.MonkeyPatch, lons: list[float], lats: list[float]) -> None:
    """Make PROJ map the five checked points of the index to these longitudes and latitudes."""
    monkeypatch.setattr(rasterio.warp, "transform", lambda *args: (lons, lats))


# EPSG:32618's area of use: lon [-78, -72], lat [0, 84]; EPSG:2154's: lon [-9.86, 10.38],
# lat [41.15, 51.56]. Points up to 10 degrees outside are accepted.
UTM_TILE = (Affine(10, 0, 500000, 0, -10, 4000000), UTM18)
LAMBERT_TILE = (Affine(10, 0, 700000, 0, -10, 6600000), CRS.from_epsg(2154))
EDGES = [
    (UTM_TILE, -75.0, 0.0 - 10.0),
    (UTM_TILE, -78.0 - 10.0, 40.0),
    (UTM_TILE, -72.0 + 10.0, 40.0),
    (LAMBERT_TILE, 0.0, 41.15 - 10.0),
    (LAMBERT_TILE, 0.0, 51.56 + 10.0),
]


@pytest.mark.parametrize(("tile", "lon", "lat"), EDGES)
def test_points_up_to_ten_degrees_outside_the_area_are_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tile: Any, lon: float, lat: float
) -> None:
    tile = _tile(*tile)
    path = write_tile_index([tile], tmp_path / "i.csv")
    lon0, lat0 = (-75.0, 40.0) if tile.crs == UTM18 else (0.0, 45.0)
    _with_points(monkeypatch, [lon0, lon0, lon, lon0, lon0], [lat0, lat0, lat, lat0, lat0])
    assert read_tile_index(path) == [tile]


@pytest.mark.parametrize(
    ("tile", "lon", "lat", "area"),
    [
        (UTM_TILE, -75.0, -10.5, "lon [-78, -72], lat [0, 84]"),
        (UTM_TILE, -88.5, 40.0, "lon [-78, -72], lat [0, 84]"),
        (UTM_TILE, -61.5, 40.0, "lon [-78, -72], lat [0, 84]"),
        (LAMBERT_TILE, 0.0, 31.1, "lon [-9.86, 10.38], lat [41.15, 51.56]"),
        (LAMBERT_TILE, 0.0, 61.6, "lon [-9.86, 10.38], lat [41.15, 51.56]"),
    ],
)
def test_points_more_than_ten_degrees_outside_the_area_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tile: Any, lon: float, lat: float, area: str
) -> None:
    tile = _tile(*tile)
    path = write_tile_index([tile], tmp_path / "i.csv")
    lon0, lat0 = (-75.0, 40.0) if tile.crs == UTM18 else (0.0, 45.0)
    # Two points outside: the message names the first.
    _with_points(monkeypatch, [lon0, lon0, lon, lon0, 100.0], [lat0, lat0, lat, lat0, lat0])
    message = error_message(ValueError, lambda: read_tile_index(path))
    code = tile.crs.to_epsg()
    box = (
        "(500000, 3999980, 500020, 4000000)"
        if code == 32618
        else "(700000, 6599980, 700020, 6600000)"
    )
    assert message == (
        f"Tile index '{path}' says its coordinates are in EPSG:{code}, whose area of use is "
        f"{area}, but its tiles' bounds {box} lie at lon {lon:.4g}, lat {lat:.4g}, more than "
        f"10 degrees outside. {FIX}"
    )


def test_area_of_use_is_read_from_the_wkt2_bbox() -> None:
    assert _area_of_use(CRS.from_epsg(2154)) == (41.15, -9.86, 51.56, 10.38)
    assert _area_of_use(CRS.from_proj4("+proj=utm +zone=18 +datum=WGS84 +units=m")) is None


@pytest.mark.parametrize(
    ("lon", "west", "east", "margin", "inside"),
    [
        (-88.0, -78.0, -72.0, 10.0, True),
        (-88.5, -78.0, -72.0, 10.0, False),
        (-62.0, -78.0, -72.0, 10.0, True),
        (-61.5, -78.0, -72.0, 10.0, False),
        # an area across the antimeridian: from 170 east to -170
        (180.0, 170.0, -170.0, 0.0, True),
        (-170.5, 170.0, -170.0, 0.0, True),
        (-169.5, 170.0, -170.0, 0.0, False),
        (-165.0, 170.0, -170.0, 10.0, True),
        (0.0, 170.0, -170.0, 10.0, False),
        # the whole world, given as [-180, 180]
        (0.0, -180.0, 180.0, 0.0, True),
        (90.0, -180.0, 180.0, 10.0, True),
        # a single meridian
        (5.0, 5.0, 5.0, 0.0, True),
        (6.0, 5.0, 5.0, 0.0, False),
        (6.0, 5.0, 5.0, 1.0, True),
        (6.5, 5.0, 5.0, 1.0, False),
        # 330 degrees plus twice 14 leaves a 2 degree gap
        (174.0, -170.0, 160.0, 14.0, True),
        (175.0, -170.0, 160.0, 14.0, False),
        (175.0, -170.0, 160.0, 15.0, True),
    ],
)
def test_lon_within(lon: float, west: float, east: float, margin: float, inside: bool) -> None:
    assert _lon_within(lon, west, east, margin) is inside


# ---- written tiles ------------------------------------------------------------------------


def test_written_tiles_keep_descriptions_compression_and_a_mask_only_where_needed(
    tmp_path: Path, write_raster: WriteRaster
) -> None:
    scene = np.arange(3 * 6 * 5, dtype=np.int16).reshape(3, 6, 5) + 1
    scene[0, 1, 1] = -1  # nodata in band 1 only: the pixel is invalid in the tile
    src = write_raster(scene, nodata=-1, descriptions=("red", "", "nir"))
    tiles = tile_raster(src, size=4, out_dir=tmp_path / "t")  # 2 x 2 tiles, 3 padded
    assert [t.index for t in tiles] == [0, 1, 2, 3]
    first, last = tiles[0], tiles[-1]
    assert first.path is not None and last.path is not None
    with rasterio.open(first.path) as r:
        assert r.descriptions == ("red", None, "nir")
        assert r.profile["compress"] == "deflate"
        assert r.count == 3 and r.dtypes == ("int16",) * 3 and r.nodata == -1
        assert r.crs == UTM18 and r.transform == first.transform and r.driver == "GTiff"
        np.testing.assert_array_equal(r.read(), scene[:, :4, :4])
        assert r.mask_flag_enums == ([MaskFlags.per_dataset],) * 3
        expected = np.full((4, 4), 255, np.uint8)
        expected[1, 1] = 0
        np.testing.assert_array_equal(r.read_masks(2), expected)
    with rasterio.open(last.path) as r:
        expected = np.zeros((4, 4), np.uint8)
        expected[:2, :1] = 255  # rows 4-5, column 4 of the 6 x 5 scene
        np.testing.assert_array_equal(r.read_masks(1), expected)
    clean = write_raster(scene[:, :4, :4] * 0 + 3, "clean.tif")
    [whole] = tile_raster(clean, size=4, out_dir=tmp_path / "c")
    assert whole.path is not None
    with rasterio.open(whole.path) as r:
        assert r.mask_flag_enums == ([MaskFlags.all_valid],) * 3
        assert r.descriptions == (None, None, None)


def test_tile_numbering_names_and_unit_size(tmp_path: Path, write_raster: WriteRaster) -> None:
    src = write_raster(np.arange(6, dtype=np.uint8).reshape(1, 3, 2))
    tiles = tile_raster(src, size=1, out_dir=tmp_path / "a" / "b")  # nested, created
    assert [(t.index, t.grid_row, t.grid_col) for t in tiles] == [
        (0, 0, 0),
        (1, 0, 1),
        (2, 1, 0),
        (3, 1, 1),
        (4, 2, 0),
        (5, 2, 1),
    ]
    assert [t.window for t in tiles][-1] == PixelWindow(2, 1, 1, 1)
    assert [t.path.name for t in tiles if t.path is not None][-2:] == [
        "src_r002_c000.tif",
        "src_r002_c001.tif",
    ]
    assert sorted(p.name for p in (tmp_path / "a" / "b").iterdir()) == sorted(
        t.path.name for t in tiles if t.path is not None
    )
    for t in tiles:
        assert t.path is not None
        with rasterio.open(t.path) as r:
            assert int(r.read(1)[0, 0]) == t.index
    # stride defaults to size; a larger stride skips pixels
    assert [(t.window.row_off, t.window.col_off) for t in tile_raster(src, size=1, stride=2)] == [
        (0, 0),
        (2, 0),
    ]


def test_argument_error_messages(tmp_path: Path, write_raster: WriteRaster) -> None:
    src = write_raster(np.ones((1, 8, 8), np.uint8))
    assert error_message(ValueError, lambda: tile_raster(src, size=0)) == (
        "tile_raster needs size >= 1 and stride >= 1, got size=0, stride=None."
    )
    with pytest.raises(ValueError, match=r"^tile_raster needs size >= 1 .* size=0, stride=4\.$"):
        tile_raster(src, size=0, stride=4)
    edge: Any = "edge"
    assert error_message(ValueError, lambda: tile_raster(src, size=4, pad=edge)) == (
        "Unknown pad 'edge'. Expected one of: zero, drop, shift."
    )
    assert error_message(ShapeError, lambda: tile_raster(src, size=9, pad="drop")) == (
        f"Raster '{src}' (8 x 8 pixels) is smaller than one tile of 9 and pad='drop' keeps no "
        "tile. Use pad='zero' or a smaller size."
    )
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert error_message(NotADirectoryError, lambda: tile_raster(src, size=4, out_dir=afile)) == (
        f"out_dir '{afile}' of geofm.geo.tile_raster is a file, not a folder. "
        "Pass a folder (it is created if missing)."
    )


def test_existing_tiles_message_lists_at_most_three(
    tmp_path: Path, write_raster: WriteRaster
) -> None:
    src = write_raster(np.ones((1, 8, 12), np.uint8))
    out = tmp_path / "t"
    tile_raster(src, size=4, out_dir=out)  # 2 x 3 tiles
    assert error_message(FileExistsError, lambda: tile_raster(src, size=4, out_dir=out)) == (
        f"Folder '{out}' already holds 6 tiles of 'src' (src_r000_c000.tif, src_r000_c001.tif, "
        "src_r000_c002.tif, ...). Pass overwrite=True to replace them all (tiles of an earlier "
        "grid included), or choose another out_dir."
    )
    for name in ("src_r001_c000.tif", "src_r001_c001.tif", "src_r001_c002.tif"):
        (out / name).unlink()
    assert error_message(FileExistsError, lambda: tile_raster(src, size=4, out_dir=out)).startswith(
        f"Folder '{out}' already holds 3 tiles of 'src' (src_r000_c000.tif, src_r000_c001.tif, "
        "src_r000_c002.tif). Pass overwrite=True"
    )


@pytest.mark.skipif(not hasattr(Path, "symlink_to"), reason="needs symlinks")
def test_a_tile_that_is_the_source_message(tmp_path: Path, write_raster: WriteRaster) -> None:
    src = write_raster(np.ones((1, 8, 8), np.uint8))
    out = tmp_path / "t"
    out.mkdir()
    (out / "src_r000_c001.tif").symlink_to(src)
    assert error_message(
        ValueError, lambda: tile_raster(src, size=4, out_dir=out, overwrite=True)
    ) == (
        f"Tile file '{out / 'src_r000_c001.tif'}' of geofm.geo.tile_raster is its input "
        f"'{src}'; writing it would destroy the input. Choose another out_dir."
    )


@pytest.mark.parametrize("existing", [False, True])
def test_a_failed_move_takes_back_the_tiles_already_moved(
    tmp_path: Path, write_raster: WriteRaster, monkeypatch: pytest.MonkeyPatch, existing: bool
) -> None:
    src = write_raster(np.ones((1, 8, 8), np.uint8))
    out = tmp_path / "t"
    if existing:
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    real = tiling.commit
    calls = {"n": 0}

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise FileExistsError("raced")
        return real(*args, **kwargs)

    monkeypatch.setattr(tiling, "commit", failing)
    with pytest.raises(FileExistsError, match="raced"):
        tile_raster(src, size=4, out_dir=out)
    assert calls["n"] == 3
    if existing:
        assert [p.name for p in out.iterdir()] == ["notes.txt"]
    else:
        assert not out.exists()


def test_overwrite_removes_the_earlier_grids_extra_tiles_only(
    tmp_path: Path, write_raster: WriteRaster
) -> None:
    src = write_raster(np.ones((1, 8, 8), np.uint8))
    out = tmp_path / "t"
    tile_raster(src, size=2, out_dir=out)  # 4 x 4 tiles
    (out / "src_r009_c009.tif.bak").write_text("not a tile name")
    tiles = tile_raster(src, size=4, out_dir=out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*(t.path.name for t in tiles if t.path is not None), "src_r009_c009.tif.bak"]
    )


# ---- second round: survivors of the first mutation run --------------------------------------


def test_geographic_bounds_within_the_rounding_slack_are_accepted(tmp_path: Path) -> None:
    # Latitudes may pass +-90 by 1e-9 (rounding); south-up and north-up tiles end exactly there.
    south = _tile(Affine(1, 0, 0, 0, 1, -90.0 - 1e-9), WGS84)  # bottom = -90 - 1e-9
    north = _tile(Affine(1, 0, 0, 0, -1, 90.0 + 1e-9), WGS84, index=1)  # top = 90 + 1e-9
    assert south.bounds[1] == -90.0 - 1e-9 and north.bounds[3] == 90.0 + 1e-9
    assert read_tile_index(write_tile_index([south, north], tmp_path / "g.csv")) == [south, north]


def test_a_rotated_pixel_is_as_wide_as_its_column_vector(tmp_path: Path) -> None:
    # Turned 45 degrees: each x and y step is 0.8 mm, but the pixel side is 1.13 mm.
    rotated = _tile(Affine(0.0008, 0.0008, 500000, 0.0008, -0.0008, 4000000))
    assert read_tile_index(write_tile_index([rotated], tmp_path / "r.csv")) == [rotated]


def test_an_index_over_the_south_pole_is_accepted(tmp_path: Path) -> None:
    # Antarctic polar stereographic: the centre of these bounds is the pole, latitude -90.
    pole = _tile(Affine(10, 0, -10, 0, -10, 10), CRS.from_epsg(3031))
    assert read_tile_index(write_tile_index([pole], tmp_path / "p.geojson")) == [pole]


def test_latitudes_just_past_90_are_outside_the_domain(tmp_path: Path) -> None:
    # Plate carree: y = 10074414 m maps to latitude 90.5.
    path = tmp_path / "eqc.csv"
    tile = _tile(Affine(10, 0, 0, 0, -10, 10074434), CRS.from_epsg(32662))
    assert "are outside the domain of EPSG:32662" in _refused([tile], path)


def test_null_bounds_in_a_geojson_index_are_refused_as_a_mismatch(tmp_path: Path) -> None:
    path = write_tile_index([_tile(Affine(10, 0, 500000, 0, -10, 4000000))], tmp_path / "i.json")
    collection = json.loads(path.read_text())
    collection["features"][0]["properties"]["bounds"][0] = None
    path.write_text(json.dumps(collection))
    assert error_message(ValueError, lambda: read_tile_index(path)).startswith(
        f"Tile 0 in index '{path}' has bounds [nan, 3999980.0, 500020.0, 4000000.0] that do not "
    )


def test_a_tile_path_with_line_breaks_round_trips_through_csv(tmp_path: Path) -> None:
    tile = _tile(Affine(10, 0, 500000, 0, -10, 4000000), path=tmp_path / "a\r\nb.tif")
    assert read_tile_index(write_tile_index([tile], tmp_path / "i.csv")) == [tile]


def test_without_rasterio_the_public_functions_name_themselves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "rasterio", None)  # import rasterio raises ImportError
    for name, call in (
        ("read_tile_index", lambda: read_tile_index(tmp_path / "i.csv")),
        ("tile_raster", lambda: tile_raster(tmp_path / "src.tif", size=4)),
    ):
        assert error_message(MissingDependencyError, call) == (
            f"rasterio is required for geofm.geo.{name}. Install it with: pip install rasterio."
        )


def test_write_tile_index_output_checks_name_it(tmp_path: Path) -> None:
    tile = _tile(Affine(10, 0, 500000, 0, -10, 4000000), path=tmp_path / "t.tif")
    path = write_tile_index([tile], tmp_path / "i.csv")
    assert error_message(FileExistsError, lambda: write_tile_index([tile], path)) == (
        f"Output '{path}' of geofm.geo.write_tile_index already exists. "
        "Pass overwrite=True to replace it."
    )
    missing = tmp_path / "no" / "i.csv"
    assert error_message(FileNotFoundError, lambda: write_tile_index([tile], missing)) == (
        f"Output folder '{missing.parent}' of geofm.geo.write_tile_index does not exist. "
        "Create it first."
    )


@pytest.mark.parametrize("suffix", [".csv", ".geojson"])
def test_an_index_created_by_another_writer_meanwhile_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    tile = _tile(Affine(10, 0, 500000, 0, -10, 4000000))
    path = tmp_path / f"i{suffix}"
    module, name = (csv, "writer") if suffix == ".csv" else (json, "dumps")
    real = getattr(module, name)

    def racing(*args: Any, **kwargs: Any) -> Any:
        path.write_text("the other writer's")
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, racing)
    assert error_message(FileExistsError, lambda: write_tile_index([tile], path)) == (
        f"Output '{path}' of geofm.geo.write_tile_index was created by another writer while "
        "this run was writing it; it was left as it is and this run's result was discarded. "
        "Pass overwrite=True to replace it."
    )
    monkeypatch.undo()
    assert path.read_text() == "the other writer's"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_geojson_crs_and_bounds_errors_name_the_index(tmp_path: Path) -> None:
    tile = _tile(Affine(10, 0, 500000, 0, -10, 4000000))
    path = write_tile_index([tile], tmp_path / "i.geojson")
    collection = json.loads(path.read_text())
    collection["crs"]["properties"]["name"] = "EPSG:2154"
    path.write_text(json.dumps(collection))
    assert error_message(ValueError, lambda: read_tile_index(path)).startswith(
        f"Tile index '{path}' says its coordinates are in EPSG:2154, whose area of use is "
    )
    collection["crs"]["properties"]["name"] = "urn:ogc:def:crs:EPSG::32618"
    collection["features"][0]["properties"]["bounds"][2] = 500030.0
    path.write_text(json.dumps(collection))
    assert error_message(ValueError, lambda: read_tile_index(path)) == (
        f"Tile 0 in index '{path}' has bounds [500000.0, 3999980.0, 500030.0, 4000000.0] that "
        "do not match its transform and window (expected [500000.0, 3999980.0, 500020.0, "
        "4000000.0]). The index was edited or written in another CRS; regenerate it with "
        "write_tile_index."
    )


@pytest.mark.parametrize("suffix", [".csv", ".geojson"])
def test_overwrite_replaces_an_index(tmp_path: Path, suffix: str) -> None:
    first = _tile(Affine(10, 0, 500000, 0, -10, 4000000))
    second = _tile(Affine(10, 0, 500020, 0, -10, 4000000), index=1)
    path = write_tile_index([first], tmp_path / f"i{suffix}")
    assert write_tile_index([second], path, overwrite=True) == path
    assert read_tile_index(path) == [second]
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_four_existing_tiles_are_listed_as_three_and_more(
    tmp_path: Path, write_raster: WriteRaster
) -> None:
    src = write_raster(np.ones((1, 8, 8), np.uint8))
    out = tmp_path / "t"
    tile_raster(src, size=4, out_dir=out)  # 2 x 2 tiles
    assert error_message(FileExistsError, lambda: tile_raster(src, size=4, out_dir=out)).startswith(
        f"Folder '{out}' already holds 4 tiles of 'src' (src_r000_c000.tif, src_r000_c001.tif, "
        "src_r001_c000.tif, ...). Pass"
    )


def test_pad_drop_refuses_a_raster_too_small_along_one_axis(write_raster: WriteRaster) -> None:
    src = write_raster(np.ones((1, 8, 20), np.uint8))
    for size in (10, 9):
        assert error_message(
            ShapeError, lambda size=size: tile_raster(src, size=size, pad="drop")
        ) == (
            f"Raster '{src}' (8 x 20 pixels) is smaller than one tile of {size} and pad='drop' "
            "keeps no tile. Use pad='zero' or a smaller size."
        )
    tall = write_raster(np.ones((1, 20, 8), np.uint8), "tall.tif")
    assert "(20 x 8 pixels)" in error_message(
        ShapeError, lambda: tile_raster(tall, size=10, pad="drop")
    )


def test_tile_raster_names_the_index_file_and_the_source_in_errors(
    tmp_path: Path, write_raster: WriteRaster
) -> None:
    src = write_raster(np.ones((1, 8, 8), np.uint8))
    index = tmp_path / "i.txt"
    assert error_message(ValueError, lambda: tile_raster(src, size=4, index_path=index)) == (
        f"Unknown tile index format '.txt' for '{index}'. Use a .geojson, .json or .csv file name."
    )
    bare = write_raster(np.ones((1, 8, 8), np.uint8), "bare.tif", crs=None)
    assert error_message(ValueError, lambda: tile_raster(bare, size=4)).startswith(
        f"Raster '{bare}' has no CRS, but geofm.geo.tile_raster needs a georeferenced source"
    )


def test_a_tile_created_by_another_writer_meanwhile_is_kept(
    tmp_path: Path, write_raster: WriteRaster, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = write_raster(np.ones((1, 8, 8), np.uint8))
    out = tmp_path / "t"
    real = tiling._write_tile_file

    def racing(dataset: Any, tile: Tile, bands: Any, path: Path) -> None:
        real(dataset, tile, bands, path)
        if tile.index == 3:  # the last one staged: another writer takes the first name
            (out / "src_r000_c000.tif").write_text("the other writer's")

    monkeypatch.setattr(tiling, "_write_tile_file", racing)
    assert error_message(FileExistsError, lambda: tile_raster(src, size=4, out_dir=out)) == (
        f"Output '{out / 'src_r000_c000.tif'}' of geofm.geo.tile_raster was created by another "
        "writer while this run was writing it; it was left as it is and this run's result was "
        "discarded. Pass overwrite=True to replace it."
    )
    assert [p.name for p in out.iterdir()] == ["src_r000_c000.tif"]
    assert (out / "src_r000_c000.tif").read_text() == "the other writer's"


def test_a_failed_run_keeps_a_folder_it_created_if_another_file_arrived(
    tmp_path: Path, write_raster: WriteRaster, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = write_raster(np.ones((1, 8, 8), np.uint8))
    out = tmp_path / "new"

    def failing(*args: Any) -> None:
        (out / "arrived.txt").write_text("someone else's")
        raise OSError("disk went away")

    monkeypatch.setattr(tiling, "_write_tile_file", failing)
    assert error_message(OSError, lambda: tile_raster(src, size=4, out_dir=out)) == "disk went away"
    assert [p.name for p in out.iterdir()] == ["arrived.txt"]
