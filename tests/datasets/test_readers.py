"""Dataset readers on tiny fake layouts written into tmp_path."""

from __future__ import annotations

import csv
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
