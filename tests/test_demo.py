"""geofm.demo.run_demo: trains, saves, reloads and writes a georeferenced map."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from geofm.cli import main
from geofm.demo import run_demo


def test_run_demo_writes_metrics_map_plot_and_a_reloadable_model(tmp_path: Path) -> None:
    import rasterio

    result = run_demo(tmp_path, steps=25)
    assert result["reload_max_abs_diff"] == 0.0
    assert result["val_miou"] > result["majority_baseline_miou"] + 0.1
    assert json.loads((tmp_path / "metrics.json").read_text())["val_miou"] == result["val_miou"]
    with rasterio.open(result["outputs"]["map"]) as src:
        assert src.crs.to_epsg() == 32618
        assert (src.width, src.height) == (224, 224)
        assert set(src.read(1).ravel().tolist()) <= {0, 1, 2, 255}
    assert Path(result["outputs"]["plot"]).stat().st_size > 0


def test_run_demo_trains_on_raster_chip_dataset_windows_of_the_upper_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The training batches are RasterChipDataset samples: seeded windows of the training rows."""
    import numpy as np
    import torch

    from geofm.data import sample_raster
    from geofm.datasets import RasterChipDataset
    from geofm.demo import _reference_labels
    from geofm.geo import read_raster

    seen: list[tuple[tuple[Path, int, int], dict[str, torch.Tensor], bool]] = []
    read = RasterChipDataset.__getitems__  # what the DataLoader calls, a batch at a time

    def spy(self: RasterChipDataset, indices: list[int]) -> list[dict[str, torch.Tensor]]:
        samples = read(self, indices)
        for index, sample in zip(indices, samples, strict=True):
            seen.append((self.window(index), sample, self.normalize))
        return samples

    monkeypatch.setattr(RasterChipDataset, "__getitems__", spy)
    run_demo(tmp_path, steps=2, batch_size=3, crop=64, plot=False)
    assert len(seen) == 2 * 3
    raster = read_raster(sample_raster())
    labels = _reference_labels(raster.array, np.asarray(raster.mask.all(axis=0)))
    for (path, row, col), sample, normalized in seen:
        assert Path(path) == Path(sample_raster()) and normalized
        assert 0 <= row <= 224 - 64 - 64 and 0 <= col <= 224 - 64  # never the 64 val rows
        assert sample["image"].shape == (3, 64, 64)
        expected = torch.from_numpy(labels[row : row + 64, col : col + 64])
        assert torch.equal(sample["mask"], expected)  # the reference labels, 255 kept
    assert len({window for window, _, _ in seen}) == 6  # seeded, distinct windows


def test_run_demo_rejects_a_crop_that_is_not_a_multiple_of_32(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        run_demo(tmp_path, steps=1, crop=50)


def test_cli_demo_prints_where_the_outputs_went(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--output-dir", str(tmp_path), "--steps", "2"]) == 0
    out = capsys.readouterr().out
    assert "validation mean IoU" in out
    assert str(tmp_path / "landcover_map.tif") in out


def test_run_demo_without_matplotlib_fails_before_training_and_names_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    from geofm.errors import MissingDependencyError

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "matplotlib" else real_find_spec(name, *a),
    )
    with pytest.raises(MissingDependencyError, match=r"geofm\[examples\].*--no-plot"):
        run_demo(tmp_path / "out", steps=1)
    assert not (tmp_path / "out").exists()  # nothing was trained or written


def test_cli_demo_no_plot_skips_the_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--output-dir", str(tmp_path), "--steps", "1", "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["metrics", "map", "model"]
    assert not (tmp_path / "demo.png").exists()
    assert (tmp_path / "landcover_map.tif").is_file()
