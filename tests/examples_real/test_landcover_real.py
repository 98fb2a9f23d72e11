"""examples/landcover_swin_fpn.py on LandCover.ai's two layouts, built from real files.

``split.py`` of LandCover.ai writes ungeoreferenced ``output/<name>.jpg`` chips,
``output/<name>_m.png`` masks and ``{train,val,test}.txt``. That layout is built
here from the real EnMAP Potsdam tiles (RGB from bands 43, 28, 10; the real
6-class labels mapped to LandCover.ai's 5 classes), upsampled 2x to 64 px.

The downloaded layout, ``images/<scene>.tif`` + ``masks/<scene>.tif`` GeoTIFFs, is
built from two real SpaceNet scenes with their real labels: Las Vegas (1300 x 1300
px, EPSG:4326, 11-bit image, road mask -> road) and an Atlanta window (640 x 640 px,
EPSG:32616, pan, 43 building footprints -> building). The masks declare nodata 255 on
their top 8 rows (unlabelled pixels, -100 in the chips).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from example_loader import load

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
POTSDAM = REAL / "enmap_potsdam"
LANDSAT = REAL / "rasterio_landsat7" / "RGB.byte.tif"
SPACENET = REAL / "solaris_spacenet"
pytestmark = pytest.mark.skipif(not POTSDAM.is_dir(), reason="real EnMAP Potsdam tiles absent")

# Potsdam labels 0 background, 1 roof, 2 pavement, 3 low vegetation, 4 tree, 5 soil, 6 water
# -> LandCover.ai 0 background, 1 building, 2 woodland, 3 water, 4 road.
TO_LANDCOVER_AI = np.array([0, 1, 4, 0, 2, 0, 3], dtype=np.uint8)

landcover = load("landcover_swin_fpn")


@pytest.fixture(scope="module")
def chips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import rasterio
    from PIL import Image

    root = tmp_path_factory.mktemp("landcover_ai")
    (root / "output").mkdir()
    for source, split in (("train", "train"), ("validation", "val"), ("test", "test")):
        names = []
        with (POTSDAM / f"{source}_files.csv").open(newline="") as f:
            for row in csv.DictReader(f):
                with rasterio.open(POTSDAM / row["image"]) as src:
                    rgb = src.read([44, 29, 11]).astype(np.float64)  # (3, 32, 32) raw DN
                with rasterio.open(POTSDAM / row["mask"]) as src:
                    labels = src.read(1).astype(np.int64)  # float32 on disk
                rgb = np.clip(rgb / 10000 * 3 * 255, 0, 255).astype(np.uint8)
                rgb = rgb.repeat(2, axis=1).repeat(2, axis=2)  # (3, 64, 64)
                mask = TO_LANDCOVER_AI[labels].repeat(2, axis=0).repeat(2, axis=1)  # (64, 64)
                name = Path(row["image"]).stem
                Image.fromarray(rgb.transpose(1, 2, 0)).save(root / "output" / f"{name}.jpg")
                Image.fromarray(mask).save(root / "output" / f"{name}_m.png")
                names.append(name)
        (root / f"{split}.txt").write_text("\n".join(names) + "\n")
    return root


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``images/`` + ``masks/`` GeoTIFFs of two real scenes (no split files)."""
    import rasterio
    from rasterio import features

    root = tmp_path_factory.mktemp("landcover_scenes")
    (root / "images").mkdir()
    (root / "masks").mkdir()

    def write(name: str, image: np.ndarray, mask: np.ndarray, crs: Any, transform: Any) -> None:
        mask[:8] = 255  # unlabelled
        for folder, data, nodata in (("images", image, None), ("masks", mask[None], 255)):
            with rasterio.open(
                root / folder / f"{name}.tif",
                "w",
                driver="GTiff",
                width=data.shape[2],
                height=data.shape[1],
                count=data.shape[0],
                dtype="uint8",
                crs=crs,
                transform=transform,
                nodata=nodata,
            ) as dst:
                dst.write(data)

    vegas = SPACENET / "vegas_sn3_roads"
    with rasterio.open(vegas / "road_mask_input.tif") as src:
        grey = np.clip(src.read(1) / 2047 * 255, 0, 255).astype(np.uint8)  # 11-bit DN
        crs, transform = src.crs, src.transform
    with rasterio.open(vegas / "sample_road_raster_mask.tif") as src:
        roads = np.where(src.read(1) > 0, 4, 0).astype(np.uint8)  # LandCover.ai road
    write("vegas", np.repeat(grey[None], 3, axis=0), roads, crs, transform)

    atlanta = SPACENET / "atlanta_sn4_pan"
    with rasterio.open(atlanta / "sample_geotiff.tif") as src:
        window = rasterio.windows.Window(0, 0, 640, 640)
        pan = src.read(1, window=window).astype(np.float64)
        crs, transform = src.crs, src.window_transform(window)
    grey = np.clip(pan / np.percentile(pan, 99) * 255, 0, 255).astype(np.uint8)
    polygons = json.loads((atlanta / "geotiff_labels.geojson").read_text())["features"]
    buildings = features.rasterize(
        [(f["geometry"], 1) for f in polygons], out_shape=(640, 640), transform=transform
    ).astype(np.uint8)  # LandCover.ai building
    assert buildings.any()
    write("atlanta", np.repeat(grey[None], 3, axis=0), buildings, crs, transform)
    return root


def split_files(scenes: Path, tmp_path: Path, train: str, val: str) -> Path:
    """A layout root holding ``scenes``' images and masks and the given split files."""
    root = tmp_path / "landcover"
    root.mkdir()
    for folder in ("images", "masks"):
        (root / folder).symlink_to(scenes / folder, target_is_directory=True)
    (root / "train.txt").write_text(train)
    (root / "val.txt").write_text(val)
    return root


@pytest.fixture(scope="module")
def satlas_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A raw SatlasPretrain-layout file for depths (1, 1, 1, 1): backbone + FPN + head keys."""
    import geofm
    from geofm.heads import FPN

    torch.manual_seed(3)
    backbone = geofm.create_backbone("tv_swin_v2_b", depths=(1, 1, 1, 1))
    state = {f"backbone.backbone.{k}": v for k, v in backbone.state_dict().items()}
    fpn = FPN([128, 256, 512, 1024], out_channels=128)
    state |= {f"intermediates.0.fpn.{k}": v for k, v in fpn.state_dict().items()}
    state["heads.0.layers.1.0.weight"] = torch.randn(5, 128, 3, 3)
    path = tmp_path_factory.mktemp("satlas") / "sentinel2_swinb_si_rgb.pth"
    torch.save(state, path)
    return path


def tiny(tmp: Path, **changes: Any) -> Any:
    fields = {"image_size": 32, "batch_size": 4, "epochs": 2, "steps_per_epoch": 2}
    return landcover.Config(output_dir=str(tmp), **(fields | changes))


def test_chip_layout_trains_writes_metrics_and_skips_the_map(
    chips: Path, satlas_weights: Path, tmp_path: Path
) -> None:
    cfg = tiny(tmp_path, data_dir=str(chips), weights=str(satlas_weights))
    result = landcover.main(cfg)
    assert json.loads((tmp_path / "metrics.json").read_text()) == result
    assert result["map"] is None
    assert "no georeference" in result["map_skipped"]
    assert (tmp_path / "landcover.png").stat().st_size > 0
    assert len(result["history"]) == 2

    # Independent check of the reported metrics: torchmetrics on the reloaded model's
    # predictions of the validation chips resized to 32 px (the source's ValTestTransform).
    from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

    from geofm.datasets import LandCoverAI
    from geofm.hub import from_pretrained

    model = from_pretrained(result["model"])
    assert model.backbone.taps == "ml4earth"
    mean = torch.tensor(landcover.LANDCOVER_AI_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(landcover.LANDCOVER_AI_STD).view(1, 3, 1, 1)
    val = LandCoverAI(chips, split="val")
    images = torch.stack([val[i]["image"] for i in range(len(val))]) / 255
    masks = torch.stack([val[i]["mask"] for i in range(len(val))])
    images = F.interpolate(images, size=(32, 32), mode="bilinear", antialias=True)
    masks = F.interpolate(masks[:, None].float(), size=(32, 32), mode="nearest")[:, 0].long()
    with torch.no_grad():
        preds = model((images - mean) / std).argmax(1)
    macro = MulticlassAccuracy(num_classes=5, average="macro")(preds, masks)
    micro = MulticlassAccuracy(num_classes=5, average="micro")(preds, masks)
    iou = MulticlassJaccardIndex(num_classes=5, average="macro")(preds, masks)
    assert result["val_accuracy_macro"] == pytest.approx(float(macro), abs=1e-6)
    assert result["val_accuracy_micro"] == pytest.approx(float(micro), abs=1e-6)
    assert result["val_iou"] == pytest.approx(float(iou), abs=1e-6)


@pytest.mark.skipif(not SPACENET.is_dir(), reason="real SpaceNet scenes absent")
def test_geotiff_scenes_train_from_raster_chips_and_map_the_validation_scene(
    scenes: Path, tmp_path: Path
) -> None:
    import rasterio

    from geofm.datasets import RasterChipDataset

    # Whole scene for training (9 chips: offsets 0, 512 and 788 on each axis), and
    # split.py's chip 0 of Atlanta (its only whole 512 px tile) for validation.
    root = split_files(scenes, tmp_path, "vegas\n", "atlanta_0\n")
    train, val, scene = landcover.load_data(landcover.Config(data_dir=str(root)), tmp_path)
    assert isinstance(train.dataset, RasterChipDataset) and val.dataset is train.dataset
    chips = train.dataset
    assert [chips.window(k)[1:] for k in train.indices] == [
        (r, c) for r in (0, 512, 788) for c in (0, 512, 788)
    ]
    assert [chips.window(k) for k in val.indices] == [(root / "images" / "atlanta.tif", 0, 0)]
    assert scene == root / "images" / "atlanta.tif"
    sample = val[0]
    with rasterio.open(root / "images" / "atlanta.tif") as src:
        image = src.read(window=rasterio.windows.Window(0, 0, 512, 512))
    with rasterio.open(root / "masks" / "atlanta.tif") as src:
        mask = src.read(1, window=rasterio.windows.Window(0, 0, 512, 512))
    assert torch.equal(sample["image"], torch.from_numpy(image).float())  # [0, 255] as stored
    expected = torch.from_numpy(mask).long()
    expected[:8] = -100  # the mask's nodata: skipped by the loss, the counts and the metrics
    assert torch.equal(sample["mask"], expected)

    result = landcover.main(tiny(tmp_path / "run", data_dir=str(root)))
    assert len(result["history"]) == 2 and 0.0 <= result["val_iou"] <= 1.0
    with rasterio.open(result["map"]) as out, rasterio.open(scene) as src:
        assert out.crs == src.crs and out.transform == src.transform
        assert out.shape == (640, 640)
        assert set(np.unique(out.read(1)).tolist()) - {out.nodata} <= set(range(5))

    # --layout chips reads split.py's jpg chips, which this root does not have.
    from geofm.errors import DatasetNotFoundError

    with pytest.raises(DatasetNotFoundError, match="output/vegas.jpg"):
        landcover.load_data(landcover.Config(data_dir=str(root), layout="chips"), tmp_path)


@pytest.mark.skipif(not SPACENET.is_dir(), reason="real SpaceNet scenes absent")
def test_scene_split_files_name_split_py_chips_or_scenes(scenes: Path, tmp_path: Path) -> None:
    # split.py numbers Vegas' tiles row by row over ceil(1300 / 512) = 3 columns:
    # 4 = row 1, column 1; 2 and 5-8 are partial tiles it never writes.
    root = split_files(scenes, tmp_path, "vegas_0\nvegas_1\nvegas_3\n\natlanta\n", "vegas_4\n")
    train, val, _ = landcover.load_scenes(root)
    windows = [(path.stem, r, c) for path, r, c in map(train.dataset.window, train.indices)]
    assert windows == [
        ("vegas", 0, 0),
        ("vegas", 0, 512),
        ("vegas", 512, 0),
        *[("atlanta", r, c) for r in (0, 128) for c in (0, 128)],
    ]
    assert [val.dataset.window(k)[1:] for k in val.indices] == [(512, 512)]
    for val_text, message in (("vegas_2\n", "'vegas_2'"), ("\n", "<empty file>")):
        (root / "val.txt").write_text(val_text)
        with pytest.raises(ValueError, match=f"val.txt names .*chips .*{message}"):
            landcover.load_scenes(root)
    (root / "val.txt").unlink()
    with pytest.raises(FileNotFoundError, match="val.txt is missing"):
        landcover.load_scenes(root)
    (root / "masks").unlink()
    with pytest.raises(FileNotFoundError, match="2 of 2 scenes have no mask"):
        landcover.load_scenes(root)


@pytest.mark.skipif(not LANDSAT.is_file(), reason="real Landsat GeoTIFF absent")
def test_map_scene_geotiff_is_mapped(chips: Path, tmp_path: Path) -> None:
    import rasterio
    from rasterio.windows import Window

    scene = tmp_path / "scene.tif"
    with rasterio.open(LANDSAT) as src:
        window = Window(300, 300, 96, 64)
        profile = src.profile | {
            "width": 96, "height": 64, "transform": src.window_transform(window)
        }  # fmt: skip
        with rasterio.open(scene, "w", **profile) as dst:
            dst.write(src.read(window=window))
    cfg = tiny(tmp_path / "run", data_dir=str(chips), epochs=1, map_scene=str(scene))
    result = landcover.main(cfg)
    with rasterio.open(result["map"]) as out, rasterio.open(scene) as src:
        assert out.crs == src.crs and out.transform == src.transform
        assert out.shape == (64, 96)
        values = set(np.unique(out.read(1)).tolist())
        assert values - {out.nodata} and values - {out.nodata} <= set(range(5))


def test_source_training_augmentation_and_validation_resize() -> None:
    from geofm.transforms import ColorJitter, RandomResizedCrop, RandomRotation

    aug = landcover.train_augmentation(landcover.Config(image_size=64))
    flip, rotation, crop, jitter = aug.transforms
    assert flip.p == 0.5
    assert isinstance(rotation, RandomRotation)
    assert (rotation.degrees, rotation.p, rotation.mask_fill) == ((-15.0, 15.0), 0.5, 0)
    assert isinstance(crop, RandomResizedCrop)
    assert (crop.size, crop.scale, crop.ratio) == ((64, 64), (0.66, 1.0), (0.75, 1.33))
    assert isinstance(jitter, ColorJitter)
    assert jitter.brightness == jitter.contrast == jitter.saturation == (0.8, 1.2)
    assert jitter.hue == (-0.2, 0.2)
    # Joint image + mask: the mask stays integer labels of the input, at the crop size.
    gen = torch.Generator().manual_seed(0)
    mask = torch.randint(0, 5, (3, 96, 128))
    out = aug({"image": torch.rand(3, 3, 96, 128), "mask": mask}, generator=gen)
    assert out["image"].shape == (3, 3, 64, 64) and out["mask"].shape == (3, 64, 64)
    assert set(out["mask"].unique().tolist()) <= set(range(5))
    image, small = landcover.resize_for_validation(torch.rand(2, 3, 96, 128), mask[:2], 32)
    assert image.shape == (2, 3, 32, 32) and small.dtype == torch.long
    assert torch.equal(small, mask[:2, ::3, ::4])  # nearest: every 3rd row, 4th column


def test_missing_matplotlib_fails_before_training(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        landcover.main(tiny(tmp_path))
    assert not (tmp_path / "metrics.json").exists()


def test_a_failing_map_step_leaves_the_metrics_and_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_map(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise OSError("disk full while writing the map")

    monkeypatch.setattr(landcover, "write_map", broken_map)
    with pytest.raises(OSError, match="disk full"):
        landcover.main(tiny(tmp_path, train_chips=4, chip_size=64))
    metrics = json.loads((tmp_path / "metrics.json").read_text())  # written before the map
    assert metrics["map"] is None and 0.0 <= metrics["val_iou"] <= 1.0
    assert (tmp_path / "model" / "config.json").is_file()  # the trained model is kept too
