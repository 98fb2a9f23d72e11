from __future__ import annotations

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
    assert main(["info", "resnet5"]) == 2
    assert "Did you mean resnet50" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"geofm {__version__}"


def test_demo_runs_on_the_embedded_scene(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--backbone", "resnet18"]) == 0
    out = capsys.readouterr().out
    assert "EPSG:32618" in out
    assert "(1, 512, 7, 7)" in out


def test_list_weights_prints_the_catalog_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--weights", "dinov2_vit_small*"]) == 0
    out = capsys.readouterr().out
    assert "dinov2_vit_small_patch14" in out


def test_info_describes_weights(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "resnet50.imagenet_vicreg"]) == 0
    out = capsys.readouterr().out
    assert "c843e76524" in out
    assert "backbone:  resnet50" in out
