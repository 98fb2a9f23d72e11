from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from rasterio.crs import CRS
from rasterio.transform import Affine

from geofm.errors import ShapeError
from geofm.geo import (
    PixelWindow,
    Tile,
    read_raster,
    read_tile_index,
    tile_raster,
    write_tile_index,
)
from geofm.geo._window import tile_offsets

WriteRaster = Callable[..., Path]

# Albers Equal Area (CONUS) without an EPSG code, like solaris' custom-projection sample.
ALBERS_WKT = (
    'PROJCS["Albers",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],'
    'PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],PROJECTION["Albers_Conic_Equal_Area"],'
    'PARAMETER["latitude_of_center",23],PARAMETER["longitude_of_center",-96],'
    'PARAMETER["standard_parallel_1",29.5],PARAMETER["standard_parallel_2",45.5],'
    'PARAMETER["false_easting",0],PARAMETER["false_northing",0],UNIT["metre",1]]'
)


@pytest.mark.parametrize(
    ("length", "pad", "expected"),
    [
        (1024, "zero", [0, 256, 512, 768]),
        (1000, "zero", [0, 256, 512, 768]),
        (1000, "drop", [0, 256, 512]),
        (1000, "shift", [0, 256, 512, 744]),
        (100, "zero", [0]),
        (100, "shift", [0]),
        (100, "drop", []),
        (256, "drop", [0]),
    ],
)
def testtile_offsets(length: int, pad: str, expected: list[int]) -> None:
    assert tile_offsets(length, 256, 256, pad) == expected  # type: ignore[arg-type]


def test_sn7_split_is_one_call(tmp_path: Path, write_raster: WriteRaster) -> None:
    # VICReg-SN7: a 1024 x 1024 scene -> 16 patches of 256 x 256.
    scene = np.random.default_rng(0).integers(0, 255, (3, 1024, 1024)).astype(np.uint8)
    tiles = tile_raster(write_raster(scene), size=256, stride=256, out_dir=tmp_path / "t")
    assert len(tiles) == 16
    assert [(t.grid_row, t.grid_col) for t in tiles[:5]] == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0)]
    for t in tiles:
        assert t.path is not None
        data = read_raster(t.path)
        w = t.window
        np.testing.assert_array_equal(
            data.array, scene[:, w.row_off : w.row_stop, w.col_off : w.col_stop]
        )
        assert data.mask.all()
        assert data.profile.transform == t.transform


def test_zero_padding_of_a_short_scene(
    tmp_path: Path, write_raster: WriteRaster, utm_transform: Affine
) -> None:
    # SN7 scenes that are not exactly 1024 are zero-padded to it.
    scene = np.full((3, 1000, 1000), 9, dtype=np.uint8)
    tiles = tile_raster(write_raster(scene), size=256, pad="zero", out_dir=tmp_path / "t")
    assert len(tiles) == 16
    corner = tiles[-1]
    assert corner.window == PixelWindow(768, 768, 256, 256)
    assert corner.transform == utm_transform @ Affine.translation(768, 768)
    assert corner.path is not None
    data = read_raster(corner.path)
    assert data.array.shape == (3, 256, 256)
    assert data.mask[:, :232, :232].all()
    assert not data.mask[:, 232:, :].any() and not data.mask[:, :, 232:].any()
    assert (data.array[:, 232:, :] == 0).all()


def test_tile_georeferencing_matches_the_source(
    write_raster: WriteRaster, utm_transform: Affine
) -> None:
    tiles = tile_raster(
        write_raster(np.zeros((1, 50, 70), np.uint8)), size=20, stride=15, pad="shift"
    )
    for t in tiles:
        # Pixel (0, 0) of a tile lies where the source's pixel (row_off, col_off) does.
        assert t.transform @ (0, 0) == utm_transform @ (t.window.col_off, t.window.row_off)
        assert t.crs.to_epsg() == 32618
    assert max(t.window.col_stop for t in tiles) == 70
    assert max(t.window.row_stop for t in tiles) == 50
    left, bottom, right, top = tiles[0].bounds
    assert (left, top, right - left, top - bottom) == (500000.0, 4000000.0, 200.0, 200.0)


@pytest.mark.parametrize("suffix", [".geojson", ".csv"])
def test_index_round_trips(tmp_path: Path, write_raster: WriteRaster, suffix: str) -> None:
    src = write_raster(np.ones((2, 40, 30), np.float32), nodata=-1.0)
    index = tmp_path / f"tiles{suffix}"
    tiles = tile_raster(src, size=16, stride=12, out_dir=tmp_path / "tiles", index_path=index)
    back = read_tile_index(index)
    assert back == tiles
    assert all(t.path is not None and t.path.exists() for t in back)


def test_geojson_index_names_the_crs_and_footprints(
    tmp_path: Path, write_raster: WriteRaster
) -> None:
    index = tmp_path / "tiles.geojson"
    tiles = tile_raster(write_raster(np.ones((1, 20, 20), np.uint8)), size=10, index_path=index)
    collection = json.loads(index.read_text())
    assert collection["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::32618"
    feature = collection["features"][1]
    assert feature["geometry"]["coordinates"][0] == tiles[1].footprint
    assert feature["properties"]["bounds"] == list(tiles[1].bounds)


def test_index_round_trips_a_crs_without_epsg_and_a_rotation(tmp_path: Path) -> None:
    rotated = Affine(8.0, 6.0, -1000000.0, 6.0, -8.0, 2000000.0)
    tile = Tile(0, 0, 0, PixelWindow(0, 0, 4, 4), rotated, CRS.from_wkt(ALBERS_WKT))
    for name in ("i.geojson", "i.csv"):
        assert read_tile_index(write_tile_index([tile], tmp_path / name)) == [tile]
    # The footprint of a rotated tile is the rotated square, not its envelope.
    assert tile.footprint[1] == [-1000000.0 + 32.0, 2000000.0 + 24.0]


def test_geojson_without_crs_is_refused(tmp_path: Path, write_raster: WriteRaster) -> None:
    index = tmp_path / "tiles.geojson"
    tile_raster(write_raster(np.ones((1, 20, 20), np.uint8)), size=10, index_path=index)
    collection = json.loads(index.read_text())
    del collection["crs"]
    index.write_text(json.dumps(collection))
    with pytest.raises(ValueError, match="has no 'crs' member"):
        read_tile_index(index)


def test_footprint_in_another_crs_is_refused(tmp_path: Path, write_raster: WriteRaster) -> None:
    # solaris' trap: coordinates in one CRS, metadata claiming another.
    index = tmp_path / "tiles.geojson"
    tile_raster(write_raster(np.ones((1, 20, 20), np.uint8)), size=10, index_path=index)
    collection = json.loads(index.read_text())
    collection["features"][0]["geometry"]["coordinates"][0] = [
        [-75.0, 36.1],
        [-74.9, 36.1],
        [-74.9, 36.0],
        [-75.0, 36.0],
        [-75.0, 36.1],
    ]
    index.write_text(json.dumps(collection))
    with pytest.raises(ValueError, match="Tile 0 .* does not match its transform"):
        read_tile_index(index)


def test_index_errors(tmp_path: Path) -> None:
    a = Tile(0, 0, 0, PixelWindow(0, 0, 2, 2), Affine.identity(), CRS.from_epsg(32618))
    b = Tile(1, 0, 1, PixelWindow(0, 2, 2, 2), Affine.identity(), CRS.from_epsg(32619))
    with pytest.raises(ValueError, match="must share a CRS"):
        write_tile_index([a, b], tmp_path / "i.csv")
    with pytest.raises(ValueError, match="got no tiles"):
        write_tile_index([], tmp_path / "i.csv")
    with pytest.raises(ValueError, match=r"Unknown tile index format '\.txt'"):
        write_tile_index([a], tmp_path / "i.txt")
    with pytest.raises(ValueError, match=r"Unknown tile index format '\.txt'"):
        read_tile_index(tmp_path / "i.txt")


def test_source_without_crs_is_an_error(write_raster: WriteRaster) -> None:
    src = write_raster(np.ones((1, 8, 8), np.uint8), crs=None)
    with pytest.raises(ValueError, match="has no CRS, but geofm.geo.tile_raster needs"):
        tile_raster(src, size=4)


def test_argument_errors(write_raster: WriteRaster) -> None:
    src = write_raster(np.ones((1, 8, 8), np.uint8))
    with pytest.raises(ShapeError, match=r"\(8 x 8 pixels\) is smaller than one tile of 16"):
        tile_raster(src, size=16, pad="drop")
    with pytest.raises(ValueError, match="size >= 1 and stride >= 1, got size=4, stride=0"):
        tile_raster(src, size=4, stride=0)
    with pytest.raises(ValueError, match="Unknown pad 'reflect'"):
        tile_raster(src, size=4, pad="reflect")  # type: ignore[arg-type]


def test_nodata_survives_in_written_tiles(tmp_path: Path, write_raster: WriteRaster) -> None:
    scene = np.full((1, 12, 12), 5, dtype=np.int16)
    scene[0, :3, :3] = -9999
    tiles = tile_raster(
        write_raster(scene, nodata=-9999), size=8, pad="zero", out_dir=tmp_path / "t"
    )
    assert tiles[0].path is not None
    first = read_raster(tiles[0].path)
    assert first.profile.nodata == -9999
    assert not first.mask[0, :3, :3].any() and first.mask[0, 3:, 3:].all()
