"""tile_raster's progress bar: a tqdm bar over the tiles written, silent unless asked."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from geofm.cli import main
from geofm.geo import _progress, tile_raster, tiling

from .conftest import FakeTqdm

WriteRaster = Callable[..., Path]


def test_progress_bar_counts_every_tile_and_closes(
    tmp_path: Path, write_raster: WriteRaster, fake_tqdm: list[FakeTqdm]
) -> None:
    src = write_raster(np.ones((2, 50, 70), np.uint8))
    tiles = tile_raster(src, size=20, stride=15, out_dir=tmp_path / "t", progress=True)
    assert len(tiles) == 3 * 5
    [bar] = fake_tqdm
    assert (bar.total, bar.count, bar.closed) == (len(tiles), len(tiles), True)
    assert (bar.unit, bar.desc) == ("tile", "tile_raster")


def test_no_bar_by_default_or_without_out_dir(
    tmp_path: Path, write_raster: WriteRaster, fake_tqdm: list[FakeTqdm]
) -> None:
    src = write_raster(np.ones((1, 40, 40), np.uint8))
    assert len(tile_raster(src, size=20, out_dir=tmp_path / "t")) == 4
    assert len(tile_raster(src, size=20, progress=True)) == 4  # nothing written, nothing shown
    assert fake_tqdm == []


def test_bar_is_closed_when_writing_fails(
    tmp_path: Path,
    write_raster: WriteRaster,
    fake_tqdm: list[FakeTqdm],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    written: list[Path] = []
    real_write = tiling._write_tile_file

    def fail_on_the_third(src: Any, tile: Any, bands: Any, path: Path) -> None:
        if len(written) == 2:
            raise OSError("disk full")
        real_write(src, tile, bands, path)
        written.append(path)

    monkeypatch.setattr(tiling, "_write_tile_file", fail_on_the_third)
    src = write_raster(np.ones((1, 40, 40), np.uint8))
    with pytest.raises(OSError, match="disk full"):
        tile_raster(src, size=20, out_dir=tmp_path / "t", progress=True)
    [bar] = fake_tqdm
    assert (bar.total, bar.count, bar.closed) == (4, 2, True)
    assert not (tmp_path / "t").exists()  # the failed run left nothing behind


def test_without_tqdm_it_says_so_once(
    tmp_path: Path,
    write_raster: WriteRaster,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # import raises ImportError
    monkeypatch.setattr(_progress, "_EXPLAINED", set())
    src = write_raster(np.ones((1, 40, 40), np.uint8))
    with caplog.at_level(logging.INFO, logger="geofm.geo"):
        tile_raster(src, size=20, out_dir=tmp_path / "a", progress=True)
        tiles = tile_raster(src, size=20, out_dir=tmp_path / "b", progress=True)
    assert len(tiles) == 4 and all(t.path is not None and t.path.is_file() for t in tiles)
    said = [r.getMessage() for r in caplog.records if "tqdm" in r.getMessage()]
    assert said == ["tqdm is not installed, so tile_raster shows no progress bar."]


@pytest.mark.parametrize(("flags", "bars"), [((), 1), (("--no-progress",), 0)])
def test_cli_tile_shows_the_bar_unless_no_progress(
    tmp_path: Path,
    write_raster: WriteRaster,
    fake_tqdm: list[FakeTqdm],
    capsys: pytest.CaptureFixture[str],
    flags: tuple[str, ...],
    bars: int,
) -> None:
    src = write_raster(np.ones((1, 40, 40), np.uint8))
    assert main(["tile", str(src), str(tmp_path / "t"), "--size", "20", *flags]) == 0
    assert "4 tiles" in capsys.readouterr().out
    assert [(b.total, b.count, b.closed) for b in fake_tqdm] == [(4, 4, True)] * bars


def test_predict_raster_uses_the_same_bar(
    tmp_path: Path, write_raster: WriteRaster, fake_tqdm: list[FakeTqdm]
) -> None:
    from torch import nn

    from geofm.geo import predict_raster

    src = write_raster(np.ones((1, 40, 40), np.float32))
    model = nn.Conv2d(1, 2, 1).eval()
    predict_raster(model, src, tmp_path / "map.tif", tile=16, overlap=0, progress=True)
    [bar] = fake_tqdm
    assert (bar.unit, bar.desc, bar.closed) == ("tile", "predict_raster", True)
    assert bar.count == bar.total > 0
