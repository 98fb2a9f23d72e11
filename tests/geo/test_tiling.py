from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


# ---- pad="drop" on a scene the tiles fit exactly (issue 21) -------------------------------


@pytest.mark.parametrize(("stride", "rows", "cols"), [(32, [0, 32, 64], [0, 32]), (16, None, None)])
def test_drop_keeps_the_last_row_and_column_when_tiles_fit_exactly(
    tmp_path: Path,
    write_raster: WriteRaster,
    stride: int,
    rows: list[int] | None,
    cols: list[int] | None,
) -> None:
    # 96 x 64 (H x W): 3 x 2 tiles of 32 fit exactly; an off-by-one loses the last row/column.
    scene = np.random.default_rng(0).integers(0, 255, (2, 96, 64)).astype(np.uint8)
    tiles = tile_raster(
        write_raster(scene), size=32, stride=stride, pad="drop", out_dir=tmp_path / "t"
    )
    rows = rows or list(range(0, 96 - 32 + 1, stride))  # 0, 16, ..., 64
    cols = cols or list(range(0, 64 - 32 + 1, stride))  # 0, 16, 32
    assert len(tiles) == len(rows) * len(cols) > 4
    assert sorted({t.window.row_off for t in tiles}) == rows
    assert sorted({t.window.col_off for t in tiles}) == cols
    last = tiles[-1]
    assert (last.window.row_stop, last.window.col_stop) == (96, 64)
    assert (last.grid_row, last.grid_col) == (len(rows) - 1, len(cols) - 1)
    assert last.path is not None
    data = read_raster(last.path)
    np.testing.assert_array_equal(data.array, scene[:, 64:, 32:])
    assert data.mask.all()  # inside the scene: no padding


# ---- writing tiles into a folder that already holds some (issue 16) -----------------------


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_second_run_into_a_folder_with_tiles_is_refused_and_changes_nothing(
    tmp_path: Path, write_raster: WriteRaster
) -> None:
    src = write_raster(np.random.default_rng(0).integers(0, 9, (1, 40, 40)).astype(np.uint8))
    out, index = tmp_path / "t", tmp_path / "t" / "index.geojson"
    tile_raster(src, size=16, out_dir=out, index_path=index)
    (out / "notes.txt").write_text("mine")
    before = _snapshot(out)
    with pytest.raises(FileExistsError, match=r"already holds 9 tiles of 'src' .*overwrite=True"):
        tile_raster(src, size=20, out_dir=out, index_path=tmp_path / "other.csv")
    assert _snapshot(out) == before and not (tmp_path / "other.csv").exists()
    with pytest.raises(FileExistsError, match="index.geojson' of geofm.geo.tile_raster already"):
        tile_raster(src, size=20, out_dir=tmp_path / "fresh", index_path=index)
    assert not (tmp_path / "fresh").exists()  # checked before anything was written
    assert _snapshot(out) == before


def test_overwrite_replaces_all_tiles_of_the_source_and_keeps_other_files(
    tmp_path: Path, write_raster: WriteRaster
) -> None:
    scene = np.random.default_rng(0).integers(0, 9, (1, 40, 40)).astype(np.uint8)
    src, other = write_raster(scene), write_raster(scene, "other.tif")
    out = tmp_path / "t"
    tile_raster(src, size=10, out_dir=out, index_path=out / "index.csv")  # 4 x 4 tiles
    tile_raster(other, size=20, out_dir=out)  # another scene's tiles in the same folder
    (out / "notes.txt").write_text("mine")
    tiles = tile_raster(src, size=20, out_dir=out, index_path=out / "index.csv", overwrite=True)
    names = sorted(p.name for p in out.iterdir())
    new = sorted(t.path.name for t in tiles if t.path is not None)
    assert new == [
        "src_r000_c000.tif",
        "src_r000_c001.tif",
        "src_r001_c000.tif",
        "src_r001_c001.tif",
    ]
    assert names == sorted([*new, *(f"other_r00{i}_c00{j}.tif" for i in (0, 1) for j in (0, 1)),
                            "index.csv", "notes.txt"])  # fmt: skip
    assert read_tile_index(out / "index.csv") == tiles
    assert read_raster(out / "src_r001_c001.tif").array.shape == (1, 20, 20)  # the new grid's


def test_a_failed_run_adds_no_tile_and_leaves_no_temporary_folder(
    tmp_path: Path, write_raster: WriteRaster, monkeypatch: pytest.MonkeyPatch
) -> None:
    from geofm.geo._window import read_window

    src = write_raster(np.ones((1, 40, 40), np.uint8))
    calls = {"n": 0}

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError("disk went away")
        return read_window(*args, **kwargs)

    monkeypatch.setattr("geofm.geo.tiling.read_window", failing)
    with pytest.raises(OSError, match="disk went away"):
        tile_raster(src, size=10, out_dir=tmp_path / "new")
    assert not (tmp_path / "new").exists()  # created by this run, removed again
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "notes.txt").write_text("mine")
    calls["n"] = 0
    with pytest.raises(OSError, match="disk went away"):
        tile_raster(src, size=10, out_dir=existing)
    assert [p.name for p in existing.iterdir()] == ["notes.txt"]


def test_index_suffix_is_checked_before_anything_is_written(
    tmp_path: Path, write_raster: WriteRaster
) -> None:
    src = write_raster(np.ones((1, 20, 20), np.uint8))
    with pytest.raises(ValueError, match=r"Unknown tile index format '\.txt'"):
        tile_raster(src, size=10, out_dir=tmp_path / "t", index_path=tmp_path / "i.txt")
    with pytest.raises(FileNotFoundError, match="does not exist. Create it first"):
        tile_raster(src, size=10, out_dir=tmp_path / "t", index_path=tmp_path / "no" / "i.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.tif"]


def test_write_tile_index_does_not_overwrite_unless_asked(tmp_path: Path) -> None:
    tile = Tile(0, 0, 0, PixelWindow(0, 0, 2, 2), UTM, CRS.from_epsg(32618))
    index = write_tile_index([tile], tmp_path / "i.csv")
    with pytest.raises(FileExistsError, match="Pass overwrite=True"):
        write_tile_index([tile], index)
    other = Tile(1, 0, 0, PixelWindow(2, 2, 2, 2), UTM, CRS.from_epsg(32618))
    write_tile_index([other], index, overwrite=True)
    assert read_tile_index(index) == [other]


# ---- an index whose CRS contradicts its coordinates is refused (issue 16) ------------------

UTM = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0)


def _edit_csv(path: Path, column: str, value: str, row: int | None = None) -> None:
    import csv

    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    for i, r in enumerate(rows):
        if row is None or i == row:
            r[column] = value
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@pytest.mark.parametrize(
    ("crs", "message"),
    [
        ("EPSG:4326", r"in EPSG:4326 \(degrees\), but its tiles' bounds .* not longitudes"),
        ("EPSG:2154", r"EPSG:2154, whose area of use is .* more than 10 degrees outside"),
    ],
)
@pytest.mark.parametrize("suffix", [".csv", ".geojson"])
def test_a_crs_that_contradicts_the_bounds_is_refused(
    tmp_path: Path, write_raster: WriteRaster, crs: str, message: str, suffix: str
) -> None:
    index = tmp_path / f"i{suffix}"
    tile_raster(write_raster(np.ones((1, 20, 20), np.uint8)), size=10, index_path=index)
    read_tile_index(index)  # the genuine index reads
    if suffix == ".csv":
        _edit_csv(index, "crs", crs)
    else:
        collection = json.loads(index.read_text())
        collection["crs"]["properties"]["name"] = crs
        index.write_text(json.dumps(collection))
    with pytest.raises(ValueError, match=message):
        read_tile_index(index)


def test_degrees_labelled_as_metres_are_refused(tmp_path: Path, write_raster: WriteRaster) -> None:
    src = write_raster(
        np.ones((1, 20, 20), np.uint8),
        crs="EPSG:4326",
        transform=Affine(0.0005, 0, -75, 0, -0.0005, 36),
    )
    index = tmp_path / "i.csv"
    tile_raster(src, size=10, index_path=index)
    _edit_csv(index, "crs", "EPSG:32618")  # -75, 36 is a plausible UTM 18N point: only the
    with pytest.raises(ValueError, match=r"pixels are 0.0005 m wide, which looks like degrees"):
        read_tile_index(index)  # pixel size gives it away


def test_geographic_indexes_past_180_and_custom_crs_are_accepted(tmp_path: Path) -> None:
    for x0 in (179.5, 200.0, -180.5):  # antimeridian and 0-360 grids are legitimate
        tile = Tile(
            0,
            0,
            0,
            PixelWindow(0, 0, 10, 10),
            Affine(0.1, 0, x0, 0, -0.1, -16),
            CRS.from_epsg(4326),
        )
        assert read_tile_index(write_tile_index([tile], tmp_path / f"g{x0}.geojson")) == [tile]
    albers = Tile(
        0, 0, 0, PixelWindow(0, 0, 4, 4), Affine(30, 0, 1e6, 0, -30, 2e6), CRS.from_wkt(ALBERS_WKT)
    )
    assert read_tile_index(write_tile_index([albers], tmp_path / "a.csv")) == [albers]


def test_edited_bounds_and_mixed_crs_in_a_csv_are_refused(
    tmp_path: Path, write_raster: WriteRaster
) -> None:
    index = tmp_path / "i.csv"
    tile_raster(write_raster(np.ones((1, 20, 20), np.uint8)), size=10, index_path=index)
    _edit_csv(index, "left", "499000.0", row=2)
    with pytest.raises(ValueError, match=r"Tile 2 .* has bounds .* do not match its transform"):
        read_tile_index(index)
    tile_raster(
        write_raster(np.ones((1, 20, 20), np.uint8), "b.tif"),
        size=10,
        index_path=tmp_path / "m.csv",
    )
    _edit_csv(tmp_path / "m.csv", "crs", "EPSG:32619", row=3)
    with pytest.raises(
        ValueError, match=r"mixes CRSs in its crs column \(EPSG:32618, EPSG:32619\)"
    ):
        read_tile_index(tmp_path / "m.csv")


def test_edited_geojson_bounds_are_refused(tmp_path: Path, write_raster: WriteRaster) -> None:
    index = tmp_path / "i.geojson"
    tile_raster(write_raster(np.ones((1, 20, 20), np.uint8)), size=10, index_path=index)
    collection = json.loads(index.read_text())
    collection["features"][1]["properties"]["bounds"][3] += 500.0
    index.write_text(json.dumps(collection))
    with pytest.raises(ValueError, match="Tile 1 .* has bounds"):
        read_tile_index(index)


def test_a_raster_with_a_crs_but_no_geotransform_is_refused_before_any_tile(
    tmp_path: Path, write_raster: WriteRaster
) -> None:
    src = write_raster(np.ones((1, 8, 8), np.float32), "ng.tif", transform=Affine.identity())
    with pytest.raises(ValueError, match="has a CRS .* but no geotransform"):
        tile_raster(src, size=4, out_dir=tmp_path / "tiles")
    assert not (tmp_path / "tiles").exists() or not any((tmp_path / "tiles").iterdir())
