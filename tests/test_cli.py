from __future__ import annotations

from pathlib import Path

import pytest

from geofm import __version__
from geofm.cli import main


def test_list_backbones_with_a_glob(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "tv_*"]) == 0
    assert capsys.readouterr().out.split() == ["tv_swin_v2_b"]


def test_list_sensors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--sensors", "sentinel2_l*"]) == 0
    assert capsys.readouterr().out.split() == ["sentinel2_l1c", "sentinel2_l2a"]


def test_info_describes_a_backbone_and_a_sensor(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "resnet50"]) == 0
    out = capsys.readouterr().out
    assert "family    resnet" in out
    assert "out_indices" in out
    assert main(["info", "sentinel2_l2a"]) == 0
    assert "B8A" in capsys.readouterr().out


def test_info_on_an_unknown_name_suggests_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "resnet5"]) == 1
    err = capsys.readouterr().err
    assert (
        err.startswith("geofm info: error: 'resnet5' is neither") and "Did you mean resnet50" in err
    )


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"geofm {__version__}"


def test_list_weights_prints_the_catalog_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--weights", "dinov2_vit_small*"]) == 0
    out = capsys.readouterr().out
    assert "dinov2_vit_small_patch14" in out


def test_info_describes_weights(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "resnet50.imagenet_vicreg"]) == 0
    out = capsys.readouterr().out
    assert "c843e76524" in out
    assert "backbone:  resnet50" in out


def test_tile_writes_tiles_and_an_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from geofm.data import sample_raster
    from geofm.geo import read_tile_index

    out = tmp_path / "tiles"
    assert main(["tile", str(sample_raster()), str(out), "--size", "112"]) == 0
    assert "4 tiles" in capsys.readouterr().out
    index = read_tile_index(out / "index.geojson")
    assert len(index) == 4


def test_predict_writes_a_georeferenced_class_map(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import rasterio

    import geofm
    from geofm.data import sample_raster
    from geofm.hub import ModuleSpec, build_segmentation_model, save_pretrained

    backbone = geofm.create_backbone("resnet18", out_indices=[3])
    model = build_segmentation_model(
        backbone, head=ModuleSpec("FCNHead", {"in_channels": 512, "num_classes": 3})
    )
    save_pretrained(model.eval(), tmp_path / "model")
    dst = tmp_path / "map.tif"
    args = ["predict", str(tmp_path / "model"), str(sample_raster()), str(dst)]
    assert main([*args, "--tile", "64", "--overlap", "16", "--no-progress"]) == 0
    with rasterio.open(dst) as out, rasterio.open(sample_raster()) as src:
        assert out.crs == src.crs
        assert out.transform == src.transform
        assert out.dtypes[0] == "uint8"
        classes = out.read(1, masked=True)
        assert int(classes.max()) < 3
        # A pixel that is nodata in any source band is nodata in the map.
        invalid = (src.read_masks() == 0).any(axis=0)
        assert invalid.sum() > 0
        assert (classes.mask == invalid).all()
    # A second run refuses to overwrite and says so.
    assert main([*args, "--tile", "64", "--no-progress"]) == 1
    assert "geofm predict:" in capsys.readouterr().err
