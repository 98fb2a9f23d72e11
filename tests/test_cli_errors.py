"""The command line's user errors: one line on stderr, ``geofm <command>: error: ...``, exit 1."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import geofm
from geofm.cli import build_parser, main
from geofm.data import sample_raster


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from geofm.heads import FCNHead, SegmentationModel

    folder = tmp_path_factory.mktemp("model")
    backbone = geofm.create_backbone("resnet18", out_indices=[3])
    SegmentationModel(backbone, None, FCNHead(512, num_classes=2)).save_pretrained(folder)
    return folder


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"geofm {argv[0]}: error: "), err
    return err


def test_missing_and_non_raster_input(
    saved_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _error(capsys, ["predict", str(saved_model), "nope.tif", str(tmp_path / "o.tif")])
    assert "input raster nope.tif does not exist" in err
    text = tmp_path / "notes.tif"
    text.write_text("not a raster")
    err = _error(capsys, ["predict", str(saved_model), str(text), str(tmp_path / "o.tif")])
    assert "notes.tif" in err
    assert not (tmp_path / "o.tif").exists()


def test_output_folder_missing_or_unwritable(
    saved_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = str(sample_raster())
    err = _error(capsys, ["predict", str(saved_model), src, str(tmp_path / "no" / "o.tif")])
    assert "does not exist; create it first" in err
    if os.geteuid() == 0:
        pytest.skip("root can write into read-only folders")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    err = _error(capsys, ["predict", str(saved_model), src, str(locked / "o.tif")])
    assert "is not writable" in err


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("cuda", "no CUDA GPU is available here; use --device cpu"),
        ("gpu0", "is not a device name"),
        ("meta", "runs on cpu, cuda or mps"),
    ],
)
def test_unavailable_or_unknown_device(
    saved_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], device: str, message: str
) -> None:
    import torch

    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    argv = ["predict", str(saved_model), str(sample_raster()), str(tmp_path / "o.tif")]
    assert message in _error(capsys, [*argv, "--device", device])


@pytest.mark.parametrize(
    ("bands", "message"),
    [
        ("1,,2", "--bands has an empty entry"),
        ("1,red", "--bands mixes indices and names"),
        ("1,9,2", r"Band indices [9] are out of range"),
    ],
)
def test_malformed_bands(
    saved_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], bands: str, message: str
) -> None:
    argv = ["predict", str(saved_model), str(sample_raster()), str(tmp_path / "o.tif")]
    assert message in _error(capsys, [*argv, "--bands", bands])


def test_tampered_config_and_existing_output_use_cli_words(
    saved_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(saved_model, broken)
    config = json.loads((broken / "config.json").read_text())
    config["model"]["args"]["backbone"]["@module"]["backbone"]["kwargs"]["img_size"] = 10**9
    (broken / "config.json").write_text(json.dumps(config))
    argv = ["predict", str(broken), str(sample_raster()), str(tmp_path / "o.tif")]
    assert "img_size = 1000000000 is out of range" in _error(capsys, argv)
    (tmp_path / "exists.tif").write_bytes(b"keep me")
    argv = ["predict", str(saved_model), str(sample_raster()), str(tmp_path / "exists.tif")]
    err = _error(capsys, argv)
    assert "--overwrite" in err and "overwrite=True" not in err
    assert (tmp_path / "exists.tif").read_bytes() == b"keep me"


def test_info_describes_a_raster(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(sample_raster())]) == 0
    out = capsys.readouterr().out
    assert "size        224 x 224 pixels, 3 bands" in out
    assert "crs         EPSG:32618" in out
    assert "dtype       uint8" in out
    sensors = next(line for line in out.splitlines() if line.startswith("sensors"))
    assert "rgb," in sensors.split()  # a 3-band catalog sensor matches


def test_help_documents_every_positional_argument() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    for name, sub in subparsers.choices.items():  # type: ignore[attr-defined]
        for action in sub._actions:
            if not action.option_strings and action.dest != "help":
                assert action.help, f"geofm {name} {action.dest} has no help"


def test_predict_many_scenes_into_a_folder_and_resume(
    saved_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    scenes = tmp_path / "scenes"
    scenes.mkdir()
    for name in ("a.tif", "b.tif"):
        shutil.copy(sample_raster(), scenes / name)
    argv = [
        "predict",
        str(saved_model),
        str(scenes / "*.tif"),
        str(tmp_path / "maps") + "/",
        "--no-progress",
        "--tile",
        "128",
    ]
    assert main(argv) == 0
    assert "2 maps in" in capsys.readouterr().out
    first = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "maps").glob("*.tif")}
    assert sorted(first) == ["a.tif", "b.tif"]
    assert main(argv) == 0  # a rerun redoes nothing
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "maps").glob("*.tif")} == first


@pytest.mark.parametrize("link", ["same", "symlink", "hardlink"])
def test_an_output_that_is_the_input_is_refused_and_the_input_kept(
    link: str, saved_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "scene.tif"
    src.write_bytes(sample_raster().read_bytes())
    before = src.read_bytes()
    out = src
    if link == "symlink":
        out = tmp_path / "alias.tif"
        out.symlink_to(src)
    elif link == "hardlink":
        out = tmp_path / "alias.tif"
        os.link(src, out)
    for extra in ([], ["--overwrite"]):
        err = _error(capsys, ["predict", str(saved_model), str(src), str(out), *extra])
        assert "writing it would destroy the input" in err, err
        assert "geofm.geo" not in err  # command-line words, not the library function's name
        assert src.read_bytes() == before  # the user's scene is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["scene.tif"] + ([] if link == "same" else ["alias.tif"])
    )
