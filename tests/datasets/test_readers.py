"""Dataset readers on tiny fake layouts written into tmp_path."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from rasterio.transform import Affine

from geofm.datasets import (
    BigEarthNetS2,
    EnMAPCorine,
    LandCoverAI,
    SpaceNet2NightLights,
    SpaceNet7Patches,
    SpectralEarth,
)
from geofm.errors import DatasetNotFoundError


def _tif(path: Path, data: np.ndarray, crs: str = "EPSG:32633", driver: str = "GTiff") -> None:
    import rasterio

    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path,
        "w",
        driver=driver,
        width=data.shape[2],
        height=data.shape[1],
        count=data.shape[0],
        dtype=data.dtype.name,
        crs=crs,
        transform=Affine(30, 0, 365000, 0, -30, 5810000),
    ) as dst:
        dst.write(data)


@pytest.mark.parametrize("cls", [SpectralEarth, LandCoverAI, SpaceNet7Patches, BigEarthNetS2])
def test_missing_directory_describes_the_layout(cls: type, tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="does not exist.*laid out as"):
        cls(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="Expected the layout"):
        cls(tmp_path)  # exists but empty


def test_spectral_earth_two_views(tmp_path: Path) -> None:
    for t in range(2):
        _tif(tmp_path / "enmap" / "loc1" / f"t{t}.tif", np.full((202, 8, 8), t, np.int16))
    ds = SpectralEarth(tmp_path, two_views=True)
    s = ds[0]
    assert len(ds) == 1 and s["image1"].shape == (202, 8, 8)
    assert {int(s["image1"][0, 0, 0]), int(s["image2"][0, 0, 0])} == {0, 1}


def test_enmap_corine_maps_codes_to_19_labels(tmp_path: Path) -> None:
    _tif(tmp_path / "enmap" / "a.tif", np.zeros((202, 4, 4), np.int16))
    _tif(tmp_path / "corine" / "a.tif", np.array([[[311, 311], [512, 999]]], np.int16))
    (tmp_path / "splits" / "enmap_corine").mkdir(parents=True)
    (tmp_path / "splits" / "enmap_corine" / "train.txt").write_text("a.tif\n")
    label = EnMAPCorine(tmp_path)[0]["label"]
    assert torch.nonzero(label).ravel().tolist() == [8, 17]  # broad-leaved forest, inland waters


def test_landcover_ai_reads_chip_and_mask(tmp_path: Path) -> None:
    _tif(tmp_path / "output" / "c1.jpg", np.full((3, 8, 8), 100, np.uint8), driver="JPEG")
    _tif(tmp_path / "output" / "c1_m.png", np.full((1, 8, 8), 2, np.uint8), driver="PNG")
    (tmp_path / "train.txt").write_text("c1\n")
    s = LandCoverAI(tmp_path)[0]
    assert s["image"].shape == (3, 8, 8) and int(s["mask"][0, 0]) == 2
    (tmp_path / "val.txt").write_text("missing\n")
    with pytest.raises(DatasetNotFoundError, match="missing"):
        LandCoverAI(tmp_path, split="val")


def test_spacenet7_gives_16_patches_per_mosaic(tmp_path: Path) -> None:
    _tif(tmp_path / "train" / "L15_A" / "images" / "m1.tif", np.ones((4, 300, 300), np.uint8))
    with (tmp_path / "countries.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["aoi", "country"], ["L15_A", "Peru"]])
    ds = SpaceNet7Patches(tmp_path)
    assert len(ds) == 16 and ds.countries == ["Peru"]
    assert ds[0]["image"].shape == (3, 256, 256)
    assert float(ds[1]["image"][:, :, 44:].sum()) == 0.0  # zero-padded past the 300 px mosaic


def test_bigearthnet_reads_tensors_and_labels(tmp_path: Path) -> None:
    (tmp_path / "train_tensors").mkdir()
    torch.save(torch.rand(6, 8, 8), tmp_path / "train_tensors" / "p1.pt")
    with (tmp_path / "train_labels.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["filename", *[f"c{i}" for i in range(19)]], ["p1", 1] + [0] * 18])
    s = BigEarthNetS2(tmp_path)[0]
    assert s["image"].shape == (6, 8, 8) and s["label"].tolist()[:2] == [1.0, 0.0]


def test_spacenet2_nightlights_sums_the_lights_per_tile(tmp_path: Path) -> None:
    from geofm.datasets import write_nightlight_scene
    from geofm.geo import tile_raster

    image, lights = write_nightlight_scene(tmp_path, size=64, gsd=10.0)
    aoi = tmp_path / "AOI_2_Vegas_Train"
    (aoi / "PS-RGB").mkdir(parents=True)
    for t in tile_raster(image, size=32, out_dir=aoi / "PS-RGB"):
        assert t.path is not None
        t.path.rename(aoi / "PS-RGB" / f"SN2_PS-RGB_img{t.index}.tif")
    ds = SpaceNet2NightLights(aoi, lights)
    assert len(ds) == 4
    s = ds[0]
    assert s["image"].shape == (3, 32, 32) and float(s["target"]) > 0
    assert s["buildings"].tolist() == [0.0, 0.0, 0.0]  # no footprint files
    with pytest.raises(DatasetNotFoundError, match="VIIRS"):
        SpaceNet2NightLights(aoi, tmp_path / "none.tif")


REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
ATLANTA = REAL / "solaris_spacenet" / "atlanta_sn4_pan"
needs_real = pytest.mark.skipif(not ATLANTA.exists(), reason=f"{REAL} not available")


def test_spacenet7_reads_only_the_patch_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rasterio
    from rasterio.windows import Window

    mosaic = np.arange(4 * 300 * 300, dtype=np.uint32).reshape(4, 300, 300) % 251
    _tif(tmp_path / "train" / "L15_A" / "images" / "m1.tif", mosaic.astype(np.uint8))
    with (tmp_path / "countries.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["aoi", "country"], ["L15_A", "Peru"]])
    ds = SpaceNet7Patches(tmp_path)
    windows: list[object] = []
    original = rasterio.io.DatasetReader.read

    def spy(self: object, *args: object, **kwargs: object) -> np.ndarray:
        windows.append(kwargs.get("window"))
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", spy)
    patch = ds[5]["image"]  # row 1, column 1 of the 4 x 4 grid: pixels 256..299 of both axes
    assert windows == [Window(256, 256, 44, 44)]
    padded = np.zeros((3, 1024, 1024), np.float32)
    padded[:, :300, :300] = mosaic[:3]
    np.testing.assert_array_equal(patch.numpy(), padded[:, 256:512, 256:512])
    windows.clear()
    assert float(ds[15]["image"].abs().sum()) == 0.0  # past the mosaic: nothing to read
    assert windows == []
    assert ds.value_range == 255.0  # uint8


def test_spacenet7_value_range_comes_from_nbits_or_is_an_error(tmp_path: Path) -> None:
    import rasterio

    folder = tmp_path / "train" / "L15_A" / "images"
    folder.mkdir(parents=True)
    with (tmp_path / "countries.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["aoi", "country"], ["L15_A", "Peru"]])
    profile = {"driver": "GTiff", "width": 8, "height": 8, "count": 3, "dtype": "uint16"}
    with rasterio.open(folder / "m1.tif", "w", nbits=11, **profile) as dst:
        dst.write(np.full((3, 8, 8), 2047, np.uint16))
    assert SpaceNet7Patches(tmp_path).value_range == 2047.0
    with rasterio.open(folder / "m1.tif", "w", **profile) as dst:
        dst.write(np.full((3, 8, 8), 2047, np.uint16))
    with pytest.raises(ValueError, match="m1.tif is uint16 without an NBITS tag"):
        _ = SpaceNet7Patches(tmp_path).value_range


def _atlanta_aoi(root: Path, footprints: dict[str, object] | None) -> Path:
    import shutil

    aoi = root / "AOI_4_Atlanta"
    (aoi / "PS-RGB").mkdir(parents=True)
    shutil.copy(ATLANTA / "sample_geotiff.tif", aoi / "PS-RGB" / "SN4_img1.tif")
    if footprints is not None:
        (aoi / "geojson" / "buildings").mkdir(parents=True)
        (aoi / "geojson" / "buildings" / "buildings_img1.geojson").write_text(
            json.dumps(footprints)
        )
    return aoi


def _lights_over(tile: Path, path: Path, value: float = 2.0) -> Path:
    import rasterio
    import rasterio.warp
    from rasterio.transform import from_origin

    with rasterio.open(tile) as src:
        west, _, _, north = rasterio.warp.transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    with rasterio.open(
        path, "w", driver="GTiff", width=4, height=4, count=1, dtype="float32",
        crs="EPSG:4326", transform=from_origin(west - 0.001, north + 0.001, 0.002, 0.002),
    ) as dst:  # fmt: skip
        dst.write(np.full((1, 4, 4), value, np.float32))
    return path


@needs_real
def test_spacenet2_geojson_crs_member_is_honoured(tmp_path: Path) -> None:
    import rasterio.warp

    labels = json.loads((ATLANTA / "geotiff_labels.geojson").read_text())
    assert labels["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::32616"

    # Reference: shoelace areas in the file's own UTM 16N metres (the tile's UTM zone).
    def area(ring: list[list[float]]) -> float:
        x, y = np.asarray(ring, dtype=np.float64)[:, :2].T
        return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))

    polys = [f["geometry"]["coordinates"] for f in labels["features"]]
    expected = sum(area(p[0]) - sum(area(h) for h in p[1:]) for p in polys)
    aoi = _atlanta_aoi(tmp_path / "declared", labels)
    lights = _lights_over(aoi / "PS-RGB" / "SN4_img1.tif", tmp_path / "lights.tif")
    count, total, mean = SpaceNet2NightLights(aoi, lights)[0]["buildings"].tolist()
    assert count == 43
    assert total == pytest.approx(expected, rel=1e-5)
    assert mean == pytest.approx(expected / 43, rel=1e-5)
    # The same footprints in lon/lat without a crs member (RFC 7946) give the same areas.
    lonlat = json.loads(json.dumps(labels))
    del lonlat["crs"]
    for feature in lonlat["features"]:
        rings = []
        for ring in feature["geometry"]["coordinates"]:
            xs, ys = zip(*[(p[0], p[1]) for p in ring], strict=True)
            lon, lat = rasterio.warp.transform("EPSG:32616", "EPSG:4326", list(xs), list(ys))
            rings.append([list(p) for p in zip(lon, lat, strict=True)])
        feature["geometry"]["coordinates"] = rings
    aoi2 = _atlanta_aoi(tmp_path / "wgs84", lonlat)
    again = SpaceNet2NightLights(aoi2, lights)[0]["buildings"].tolist()
    assert again[1] == pytest.approx(expected, rel=1e-4)


@needs_real
def test_spacenet2_metre_coordinates_without_a_crs_member_are_a_clear_error(
    tmp_path: Path,
) -> None:
    # solaris' Albers labels: metre coordinates and no crs member.
    labels = json.loads(
        (
            REAL / "solaris_spacenet" / "landsat_albers" / "geotiff_custom_proj_labels.geojson"
        ).read_text()
    )
    assert "crs" not in labels
    aoi = _atlanta_aoi(tmp_path, labels)
    lights = _lights_over(aoi / "PS-RGB" / "SN4_img1.tif", tmp_path / "lights.tif")
    ds = SpaceNet2NightLights(aoi, lights)
    with pytest.raises(ValueError, match="outside longitude / latitude range.*'crs' member"):
        ds[0]
    # An unusable crs member is rejected by name.
    bad = {**labels, "crs": {"type": "link", "properties": {"href": "x"}}}
    ds2 = SpaceNet2NightLights(_atlanta_aoi(tmp_path / "bad", bad), lights)
    with pytest.raises(ValueError, match="not a named CRS"):
        ds2[0]


@needs_real
def test_spacenet2_rejects_a_night_light_raster_that_misses_the_tiles(tmp_path: Path) -> None:
    aoi = _atlanta_aoi(tmp_path, None)
    viirs = REAL / "nightlights_rnightlights" / "NL_STP_VIIRS.M_201401_VCMCFG_GADM-2.8-SHPZIP.tif"
    with pytest.raises(ValueError, match=r"no valid pixel under 1 of 1 tiles \(SN4_img1.tif;"):
        SpaceNet2NightLights(aoi, viirs)
    lights = _lights_over(aoi / "PS-RGB" / "SN4_img1.tif", tmp_path / "lights.tif", value=3.0)
    target = float(SpaceNet2NightLights(aoi, lights)[0]["target"])
    # 450 m tile over 0.002 degree (~185 x 222 m) pixels of 3.0: the bilinear-warped sum.
    assert target > 3.0
