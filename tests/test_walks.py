"""The paths a user walks, end to end: create -> train -> save -> reload -> predict -> read back.

Each saved model goes through ``geofm predict`` (the command line, in process) and the
written GeoTIFF is compared with the map the training script wrote itself.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from example_loader import load

import geofm
from geofm.cli import main
from geofm.data import sample_raster


def _agreement(a: Path, b: Path) -> float:
    with rasterio.open(a) as x, rasterio.open(b) as y:
        first, second = x.read(1), y.read(1)
        assert x.transform == y.transform and x.crs == y.crs
    valid = (first != 255) & (second != 255)
    assert valid.mean() > 0.5
    return float((first[valid] == second[valid]).mean())


def _predict_cli(model_dir: Path, dst: Path, *extra: str) -> None:
    argv = ["predict", str(model_dir), str(sample_raster()), str(dst), "--no-progress", *extra]
    assert main(argv) == 0


@pytest.mark.xdist_group("walks")
def test_demo_model_through_geofm_predict_reproduces_the_demo_map(tmp_path: Path) -> None:
    from geofm.demo import run_demo

    result = run_demo(tmp_path, steps=4, batch_size=4, plot=False)
    _predict_cli(tmp_path / "model", tmp_path / "cli.tif")
    assert _agreement(Path(result["outputs"]["map"]), tmp_path / "cli.tif") >= 0.999
    # Without the saved input spec the same model sees raw values and the map changes.
    _predict_cli(tmp_path / "model", tmp_path / "raw.tif", "--no-input-spec")
    assert _agreement(Path(result["outputs"]["map"]), tmp_path / "raw.tif") < 0.999


@pytest.mark.xdist_group("walks")
def test_quickstart_model_through_geofm_predict_reproduces_its_map(tmp_path: Path) -> None:
    quickstart = load("quickstart")
    quickstart.main(quickstart.Config(steps=3, batch_size=4, output_dir=str(tmp_path)))
    _predict_cli(tmp_path / "model", tmp_path / "cli.tif")
    assert _agreement(tmp_path / "map.tif", tmp_path / "cli.tif") >= 0.999


@pytest.mark.xdist_group("walks")
def test_landcover_example_model_through_geofm_predict_reproduces_its_map(tmp_path: Path) -> None:
    landcover = load("landcover_swin_fpn")
    cfg = landcover.Config(
        epochs=1, steps_per_epoch=2, train_chips=4, chip_size=128, output_dir=str(tmp_path)
    )
    result = landcover.main(cfg)
    example_map, scene = Path(result["map"]), Path(result["map_scene"])
    assert scene == tmp_path / "scene" / "image.tif"  # the synthetic scene, kept beside the model
    argv = [
        "predict", str(tmp_path / "model"), str(scene), str(tmp_path / "cli.tif"), "--no-progress",
        "--tile", str(max(64, cfg.image_size)), "--overlap", str(max(64, cfg.image_size) // 4),
    ]  # fmt: skip
    assert main(argv) == 0
    assert _agreement(example_map, tmp_path / "cli.tif") >= 0.999
    # The saved spec carries the example's normalisation: without it the map changes.
    assert main([*argv[:3], str(tmp_path / "raw.tif"), *argv[4:], "--no-input-spec"]) == 0
    assert _agreement(example_map, tmp_path / "raw.tif") < 0.999


@pytest.mark.xdist_group("walks")
def test_dinov2_segmentation_predicts_with_the_default_tile(tmp_path: Path) -> None:
    from geofm.heads import FCNHead, SegmentationModel
    from geofm.hub import save_pretrained

    backbone = geofm.create_backbone("dinov2_vit_small_patch14", depth=1, img_size=56)
    assert backbone.input_spec.multiple == 14
    model = SegmentationModel(backbone, None, FCNHead(384, num_classes=2, hidden_channels=8)).eval()
    save_pretrained(model, tmp_path / "model")
    # 224 x 224 scene; the default tile is 256 rounded down to 252 = 18 x 14.
    _predict_cli(tmp_path / "model", tmp_path / "map.tif")
    with rasterio.open(tmp_path / "map.tif") as out:
        assert (out.width, out.height) == (224, 224)
        assert set(np.unique(out.read(1))) <= {0, 1, 255}
    assert (
        main(
            [
                "predict",
                str(tmp_path / "model"),
                str(sample_raster()),
                str(tmp_path / "bad.tif"),
                "--tile",
                "256",
            ]
        )
        == 1
    )
    assert not (tmp_path / "bad.tif").exists()


def test_saved_spec_prepares_raw_values_exactly_as_in_training(tmp_path: Path) -> None:
    """The map written from raw values equals argmax of the model on prepared values."""
    from geofm.geo import predict_raster, read_raster
    from geofm.heads import FCNHead, SegmentationModel
    from geofm.hub import from_pretrained, save_pretrained

    backbone = geofm.create_backbone("resnet18", in_chans=3, out_indices=[2])
    backbone.input_spec = geofm.InputSpec(
        num_bands=3, mean=(60.0, 70.0, 80.0), std=(20.0, 25.0, 30.0), multiple=32
    )
    model = SegmentationModel(backbone, None, FCNHead(256, num_classes=3, hidden_channels=8)).eval()
    save_pretrained(model, tmp_path / "m")
    again = from_pretrained(tmp_path / "m")
    dst = predict_raster(again, sample_raster(), tmp_path / "map.tif", tile=224, overlap=0)
    raster = read_raster(sample_raster())
    x = backbone.input_spec.prepare(torch.from_numpy(raster.array.astype(np.float32)))[None]
    with torch.no_grad():
        expected = model(x).argmax(dim=1)[0].numpy()
    written = read_raster(dst).array[0]
    valid = raster.mask.all(axis=0)
    assert (written[valid] == expected[valid]).all()
