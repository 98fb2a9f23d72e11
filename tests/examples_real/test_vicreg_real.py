"""examples/vicreg_sn7.py on a SpaceNet-7 layout built from real 16-bit rasters (../shared/data/real).

Three "AOIs" of two 300 x 300 "monthly mosaics" each, cut from real 11-bit
SpaceNet rasters stored as uint16: Rotterdam SN6 multispectral (``ms1.tif``,
4 bands, float64 integers cast losslessly), Rotterdam SN6 pan (``pan1.tif``) and
Las Vegas SN3 (``road_mask_input.tif``), the single-band ones repeated into 3
bands. The example reads them with ``RasterChipDataset``: one mosaic of each AOI is
held out; the three training mosaics give 16 random 256 px windows each per epoch, the
three held-out ones a 256 px grid of 4 windows each (offsets 0 and 44).
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from example_loader import load

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
SPACENET = REAL / "solaris_spacenet"
SOURCES = {
    "L15_rotterdam_ms": ("Netherlands", SPACENET / "rotterdam_sn6" / "ms1.tif"),
    "L15_rotterdam_pan": ("Netherlands_pan", SPACENET / "rotterdam_sn6" / "pan1.tif"),
    "L15_vegas": ("USA", SPACENET / "vegas_sn3_roads" / "road_mask_input.tif"),
}

pytestmark = pytest.mark.skipif(not SPACENET.exists(), reason=f"{REAL} not available")

vicreg = load("vicreg_sn7")


def write_layout(root: Path, *, nbits: bool) -> Path:
    for aoi, (_, path) in SOURCES.items():
        with rasterio.open(path) as src:
            data = src.read().astype(np.uint16)  # integers up to 2047
            crs, transform = src.crs, src.transform
        if data.shape[0] == 1:
            data = np.repeat(data, 3, axis=0)
        folder = root / "train" / aoi / "images"
        folder.mkdir(parents=True)
        for month, (top, left) in enumerate([(0, 0), (data.shape[1] - 300, data.shape[2] - 300)]):
            crop = data[:, top : top + 300, left : left + 300]
            extra = {"NBITS": 11} if nbits else {}
            with rasterio.open(
                folder / f"global_monthly_2018_0{month + 1}_mosaic_{aoi}.tif",
                "w",
                driver="GTiff",
                width=300,
                height=300,
                count=crop.shape[0],
                dtype="uint16",
                crs=crs,
                transform=transform @ rasterio.Affine.translation(left, top),
                **extra,
            ) as dst:
                dst.write(crop)
    with (root / "countries.csv").open("w", newline="") as handle:
        rows = [[aoi, country] for aoi, (country, _) in SOURCES.items()]
        csv.writer(handle).writerows([["aoi", "country"], *rows])
    return root


def tiny(root: Path, tmp_path: Path, **changes: object) -> object:
    cfg = vicreg.Config(
        data_dir=str(root),
        image_size=32,
        projector="64-64-64",
        batch_size=16,
        pretrain_steps=2,
        warmup_steps=1,
        linear_steps=5,
        finetune_steps=2,
        eval_batch_size=32,
        plot=False,
        output_dir=str(tmp_path),
    )
    return dataclasses.replace(cfg, **changes)


def test_16bit_mosaics_are_scaled_by_their_bit_depth_not_by_255(tmp_path: Path) -> None:
    from geofm.datasets import SpaceNet7Patches

    root = write_layout(tmp_path / "sn7", nbits=True)
    result = vicreg.main(tiny(root, tmp_path / "run"))
    assert result["value_range"] == 2047.0  # NBITS=11
    assert result["num_classes"] == 3
    # Almost no pixel at full scale (the Vegas raster reaches 2047 in a few places) ...
    assert result["input_saturated_fraction"] < 0.01
    # ... where dividing by 255 would saturate 45% of the data pixels (16% of the Rotterdam
    # multispectral, 28% of the pan, 94% of the Vegas raster).
    ds = SpaceNet7Patches(root)
    raw = torch.stack([ds[i]["image"] for i in range(len(ds))])
    data = raw[raw > 0]  # leave out the zero padding
    assert float((data / 255 >= 1).float().mean()) > 0.4
    assert float((data / 2047 >= 1).float().mean()) < 0.01
    # Three classes: top-5 would be 1.0 by construction, so it is left out and said so.
    assert not any(key.endswith("_top5") for key in result)
    assert "3 classes" in result["top5_omitted"]
    assert 0.0 <= result["linear_top1"] <= 1.0


def test_patches_are_chip_windows_of_the_mosaics_scaled_and_labelled(tmp_path: Path) -> None:
    from rasterio.windows import Window

    from geofm.datasets import RasterChipDataset

    root = write_layout(tmp_path / "sn7", nbits=True)
    train, val, num_classes = vicreg.load_data(tiny(root, tmp_path / "run"))
    assert num_classes == 3
    assert isinstance(train.base, RasterChipDataset) and train.base.sampler == "random"
    assert isinstance(val.base, RasterChipDataset) and val.base.sampler == "grid"
    held_out = {img.path for img in val.base.images}
    trained = {img.path for img in train.base.images}
    assert not held_out & trained and len(held_out | trained) == 6
    assert {p.parent.parent.name for p in held_out} == set(SOURCES)  # one month of each AOI
    assert (len(train), len(val)) == (16 * 3, 3 * 2 * 2)
    countries = sorted(country for country, _ in SOURCES.values())
    for ds in (train, val):
        for k in range(0, len(ds), 5):
            path, row, col = ds.base.window(k)
            with rasterio.open(path) as src:
                raw = src.read([1, 2, 3], window=Window(col, row, 256, 256))  # (3, 256, 256)
            sample = ds[k]
            assert torch.equal(sample["image"], (torch.from_numpy(raw).float() / 2047).clamp(0, 1))
            country = SOURCES[path.parent.parent.name][0]
            assert int(sample["label"]) == countries.index(country)
    # The pretraining pairs redraw the windows every epoch.
    first = [train.base.window(k) for k in range(len(train))]
    pairs = vicreg.TwoViews(train, vicreg.sn7_views(32), seed=0)
    pairs.set_epoch(1)
    assert train.base.epoch == 1 and pairs.epoch == 1
    assert [train.base.window(k) for k in range(len(train))] != first
    assert pairs[0][0].shape == (3, 32, 32)


def test_16bit_mosaics_without_a_bit_depth_need_value_range(tmp_path: Path) -> None:
    root = write_layout(tmp_path / "sn7", nbits=False)
    with pytest.raises(ValueError, match="uint16 without an NBITS tag"):
        vicreg.main(tiny(root, tmp_path / "run"))
    assert not (tmp_path / "run" / "backbone").exists()  # stopped before pretraining
    train, _, _ = vicreg.load_data(tiny(root, tmp_path / "run", value_range=2047.0))
    assert train.scale == 2047.0


def test_top5_is_reported_with_more_than_5_classes(tmp_path: Path) -> None:
    cfg = vicreg.Config(
        num_classes=6,
        samples=48,
        scene_size=36,
        pretrain_steps=1,
        batch_size=16,
        linear_steps=2,
        finetune_steps=1,
        plot=False,
        output_dir=str(tmp_path),
    )
    result = vicreg.main(cfg)
    assert "top5_omitted" not in result
    assert result["linear_top5"] >= result["linear_top1"]


def test_missing_matplotlib_is_reported_before_any_work(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import importlib.util

    from geofm.errors import MissingDependencyError

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name)
    )
    with pytest.raises(MissingDependencyError, match="pip install matplotlib.*--no-plot"):
        vicreg.main(vicreg.Config(output_dir=str(tmp_path / "out")))
    assert not (tmp_path / "out").exists()
