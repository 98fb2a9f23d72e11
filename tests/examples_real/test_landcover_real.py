"""examples/landcover_swin_fpn.py on LandCover.ai's own chip layout, built from real files.

``split.py`` of LandCover.ai writes ungeoreferenced ``output/<name>.jpg`` chips,
``output/<name>_m.png`` masks and ``{train,val,test}.txt``. The layout is built
here from the real EnMAP Potsdam tiles (RGB from bands 43, 28, 10; the real
6-class labels mapped to LandCover.ai's 5 classes), upsampled 2x to 64 px.
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
