from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from rasterio.transform import Affine
from torch import nn

from geofm.errors import ShapeError
from geofm.geo import BlendMode, OutputMode, predict_raster
from geofm.geo._stream import window_1d

WriteRaster = Callable[..., Path]


def _read(path: Path) -> tuple[np.ndarray, rasterio.profiles.Profile]:
    with rasterio.open(path) as r:
        return r.read(), r.profile


def _conv_net(seed: int = 0, out_channels: int = 4) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, out_channels, 3, padding=1)
    ).eval()


class CountingModel(nn.Module):
    """Identity that counts the tiles it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.tiles = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.tiles += x.shape[0]
        return x


class ActsOnCall(nn.Module):
    """Identity that runs ``action`` on its ``at``-th call (the shape probe is call 1)."""

    def __init__(self, at: int, action: Callable[[], object]) -> None:
        super().__init__()
        self.calls = 0
        self.at = at
        self.action = action

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.at:
            self.action()
        return x


def _boom() -> None:
    raise RuntimeError("boom")


@pytest.mark.parametrize("blend", ["cosine", "linear"])
def test_cosine_window_is_a_partition_of_unity(blend: str) -> None:
    w = window_1d(32, 8, blend)  # type: ignore[arg-type]
    assert (w > 0).all() and (w[8:24] == 1).all()
    np.testing.assert_allclose(w[24:] + w[:8], 1.0)  # the ramps of neighbours 24 px apart


@pytest.mark.parametrize(
    ("height", "width", "dtype"),
    [(83, 71, "uint8"), (64, 64, "float32"), (37, 100, "int16"), (20, 13, "uint16")],
)
def test_identity_reproduces_the_input_exactly(
    tmp_path: Path, write_raster: WriteRaster, height: int, width: int, dtype: str
) -> None:
    # Odd sizes, a raster smaller than a tile (20 x 13) and overlap > 0: no seam, no shift.
    values = np.random.default_rng(0).integers(0, 200, (3, height, width)).astype(dtype)
    src = write_raster(values)
    out = predict_raster(
        nn.Identity().eval(), src, tmp_path / "out.tif", tile=32, overlap=8, output="regression"
    )
    result, profile = _read(out)
    assert result.dtype == np.float32 and result.shape == values.shape
    np.testing.assert_array_equal(result, values.astype(np.float32))
    with rasterio.open(src) as s:
        assert profile["crs"] == s.crs and profile["transform"] == s.transform
    assert profile["tiled"] and profile["compress"] == "deflate"


def test_rotated_transform_and_crs_are_copied(tmp_path: Path, write_raster: WriteRaster) -> None:
    rotated = Affine(8.0, 6.0, 590000.0, 6.0, -8.0, 5750000.0)  # like solaris' sar_hh.tif
    values = np.random.default_rng(0).random((2, 40, 40), dtype=np.float32)
    src = write_raster(values, crs="EPSG:32631", transform=rotated)
    out = predict_raster(
        nn.Identity().eval(), src, tmp_path / "o.tif", tile=16, overlap=4, output="regression"
    )
    result, profile = _read(out)
    assert profile["transform"] == rotated and profile["crs"].to_epsg() == 32631
    np.testing.assert_array_equal(result, values)


@pytest.mark.parametrize("blend", ["cosine", "linear"])
def test_no_seams_with_a_real_convolution(
    tmp_path: Path, write_raster: WriteRaster, blend: BlendMode
) -> None:
    # Tile borders see zero padding; smooth blending keeps the result close to the
    # full-image convolution everywhere, and exact away from the overlaps.
    values = np.random.default_rng(0).random((3, 70, 90), dtype=np.float32)
    net = _conv_net()
    out = predict_raster(
        net,
        write_raster(values),
        tmp_path / "o.tif",
        tile=32,
        overlap=8,
        blend=blend,
        output="regression",
    )
    result, _ = _read(out)
    with torch.no_grad():
        reference = net(torch.from_numpy(values)[None])[0].numpy()
    error = np.abs(result - reference)
    assert error[:, :22, :22].max() < 1e-5  # inside the first tile, before any overlap
    plain = predict_raster(
        net,
        write_raster(values, "b.tif"),
        tmp_path / "u.tif",
        tile=32,
        overlap=8,
        blend="none",
        output="regression",
    )
    seam = np.abs(_read(plain)[0] - reference).max()  # a plain mean keeps half the border error
    assert error.max() < 0.5 * seam
    assert error.max() < 0.1 * np.ptp(reference)


def test_class_output_is_uint8_with_a_colour_table(
    tmp_path: Path, write_raster: WriteRaster
) -> None:
    values = np.random.default_rng(0).random((3, 50, 60), dtype=np.float32)
    net = _conv_net(out_channels=5)
    out = predict_raster(
        net,
        write_raster(values),
        tmp_path / "c.tif",
        tile=32,
        overlap=8,
        colormap={1: (10, 20, 30)},
    )
    with rasterio.open(out) as r:
        classes = r.read(1)
        assert r.dtypes == ("uint8",) and r.count == 1 and r.nodata == 255
        colours = r.colormap(1)
    assert colours[1] == (10, 20, 30, 255) and len({colours[k] for k in range(5)}) == 5
    prob = predict_raster(
        net,
        write_raster(values, "p.tif"),
        tmp_path / "p_out.tif",
        tile=32,
        overlap=8,
        output="probability",
    )
    probabilities, _ = _read(prob)
    assert probabilities.shape == (5, 50, 60)
    np.testing.assert_allclose(probabilities.sum(axis=0), 1.0, atol=1e-5)
    assert (classes == probabilities.argmax(axis=0)).mean() > 0.99  # may differ in overlaps only
    logits = predict_raster(
        net,
        write_raster(values, "l.tif"),
        tmp_path / "l_out.tif",
        tile=32,
        overlap=8,
        output="regression",
    )
    np.testing.assert_array_equal(
        classes, _read(logits)[0].argmax(axis=0)
    )  # argmax of blended logits
    with torch.no_grad():
        full = net(torch.from_numpy(values)[None])[0].numpy().argmax(axis=0)
    np.testing.assert_array_equal(classes[:24, :24], full[:24, :24])  # inside the first tile


def test_one_channel_models_are_thresholded_at_one_half(
    tmp_path: Path, write_raster: WriteRaster
) -> None:
    values = np.linspace(-3, 3, 40 * 40, dtype=np.float32).reshape(1, 40, 40)
    out = predict_raster(
        nn.Identity().eval(), write_raster(values), tmp_path / "c.tif", tile=16, overlap=4
    )
    classes, _ = _read(out)
    np.testing.assert_array_equal(classes[0], (values[0] >= 0).astype(np.uint8))


def test_nodata_is_propagated_and_empty_tiles_are_skipped(
    tmp_path: Path, write_raster: WriteRaster
) -> None:
    values = np.random.default_rng(0).integers(1, 200, (3, 64, 64)).astype(np.uint8)
    values[:, :32, :] = 0  # the top half is nodata
    values[1, 40, 50] = 0  # a single invalid pixel in one band
    src = write_raster(values, nodata=0)
    counting = CountingModel().eval()
    out = predict_raster(
        counting, src, tmp_path / "r.tif", tile=16, overlap=4, batch_size=3, output="regression"
    )
    result, _ = _read(out)
    invalid = (values == 0).any(axis=0)
    assert np.isnan(result[:, invalid]).all()
    np.testing.assert_array_equal(result[:, ~invalid], values[:, ~invalid].astype(np.float32))
    # 5 x 5 tiles (offsets 0, 12, 24, 36, 48); rows 0 and 12 are empty; +1 for the shape probe.
    assert counting.tiles == 3 * 5 + 1
    classes = predict_raster(nn.Identity().eval(), src, tmp_path / "c.tif", tile=16, overlap=4)
    assert (_read(classes)[0][0][invalid] == 255).all()


def test_a_crash_leaves_no_partial_output(tmp_path: Path, write_raster: WriteRaster) -> None:
    src = write_raster(np.ones((3, 64, 64), np.float32))
    dst = tmp_path / "out" / "pred.tif"
    dst.parent.mkdir()
    with pytest.raises(RuntimeError, match="boom"):
        predict_raster(
            ActsOnCall(4, _boom).eval(),
            src,
            dst,
            tile=16,
            overlap=4,
            batch_size=2,
            output="regression",
        )
    assert list(dst.parent.iterdir()) == []
    # An existing output is left untouched by a failed overwrite.
    dst.write_bytes(b"previous")
    with pytest.raises(RuntimeError, match="boom"):
        predict_raster(
            ActsOnCall(9, _boom).eval(),
            src,
            dst,
            tile=16,
            overlap=4,
            batch_size=1,
            output="regression",
            overwrite=True,
        )
    assert dst.read_bytes() == b"previous" and list(dst.parent.iterdir()) == [dst]


def test_argument_errors(tmp_path: Path, write_raster: WriteRaster) -> None:
    src = write_raster(np.ones((3, 20, 20), np.float32))
    model = nn.Identity().eval()
    with pytest.raises(ValueError, match="has no CRS, but geofm.geo.predict_raster needs"):
        predict_raster(
            model, write_raster(np.ones((1, 8, 8), np.uint8), "n.tif", crs=None), tmp_path / "o.tif"
        )
    with pytest.raises(ValueError, match="training mode"):
        predict_raster(nn.Identity(), src, tmp_path / "o.tif")
    with pytest.raises(ValueError, match=r"overlap must be in \[0, tile // 2\] = \[0, 8\], got 9"):
        predict_raster(model, src, tmp_path / "o.tif", tile=16, overlap=9)
    with pytest.raises(ValueError, match="Unknown blend 'gaussian'"):
        predict_raster(model, src, tmp_path / "o.tif", blend="gaussian")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Unknown output 'logits'"):
        predict_raster(model, src, tmp_path / "o.tif", output="logits")  # type: ignore[arg-type]
    with pytest.raises(ShapeError, match=r"to \(N, K, 16, 16\) tensors, got \(1, 3, 8, 8\)"):
        predict_raster(nn.AvgPool2d(2).eval(), src, tmp_path / "o.tif", tile=16, overlap=0)
    with pytest.raises(ShapeError, match="Band indices \\[4\\] are out of range"):
        predict_raster(model, src, tmp_path / "o.tif", bands=[4])
    complex_src = write_raster(np.ones((1, 8, 8), np.complex64), "sar.tif")
    with pytest.raises(ValueError, match="complex pixels"):
        predict_raster(model, complex_src, tmp_path / "o.tif")
    (tmp_path / "taken.tif").write_bytes(b"")
    with pytest.raises(FileExistsError, match="Pass overwrite=True"):
        predict_raster(model, src, tmp_path / "taken.tif")
    with pytest.raises(ValueError, match="device='meta' but the model's parameters are on 'cpu'"):
        predict_raster(_conv_net(), src, tmp_path / "o.tif", device="meta")


def test_band_selection_feeds_the_model_in_order(tmp_path: Path, write_raster: WriteRaster) -> None:
    values = np.random.default_rng(0).random((4, 20, 24), dtype=np.float32)
    out = predict_raster(
        nn.Identity().eval(),
        write_raster(values),
        tmp_path / "o.tif",
        tile=16,
        overlap=4,
        bands=[4, 2],
        output="regression",
    )
    np.testing.assert_array_equal(_read(out)[0], values[[3, 1]])


def test_real_rgb_byte_identity(tmp_path: Path, rgb_byte: Path) -> None:
    out = predict_raster(
        nn.Identity().eval(),
        rgb_byte,
        tmp_path / "o.tif",
        tile=128,
        overlap=32,
        batch_size=16,
        output="regression",
    )
    result, profile = _read(out)
    with rasterio.open(rgb_byte) as src:
        values, valid = src.read(), (src.read_masks() != 0).all(axis=0)
        assert profile["transform"] == src.transform and profile["crs"] == src.crs
    np.testing.assert_array_equal(result[:, valid], values[:, valid].astype(np.float32))
    assert np.isnan(result[:, ~valid]).all()


# ---- two ranks (gloo on CPU) give the same file as one process -------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


Job = tuple[str, str, OutputMode, int]  # source, output, output mode, model channels
SCENE_KW: dict[str, Any] = {"tile": 16, "overlap": 4, "batch_size": 3}


def _join_gloo(rank: int, world: int, port: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=60),  # a rank left waiting fails the test, not hangs it
    )


def _predict(job: Job, dst: str | Path, **kwargs: Any) -> Path:
    src, _, output, channels = job
    model = _conv_net(out_channels=channels)
    return predict_raster(model, src, dst, output=output, **SCENE_KW, **kwargs)


def _race_rank0_rename(src: str, rank: int) -> None:
    """Rank 0's rename fails after every rank predicted (another writer made the output)."""
    raced = Path(src).with_name("raced.tif")
    # Rank 0's model writes the output itself on its first tile, after the shape probe.
    create = partial(raced.write_bytes, b"someone else's output")
    model = ActsOnCall(2, create) if rank == 0 else nn.Identity()
    try:
        predict_raster(model.eval(), src, raced, tile=16, overlap=4, batch_size=1)
    except (FileExistsError, RuntimeError) as err:  # every rank must learn it and raise
        Path(src).with_name(f"race{rank}.txt").write_text(type(err).__name__)


def _assert_like_one_process(jobs: list[Job], tmp_path: Path) -> None:
    """Each job's output is the file one process writes: pixels, profile, colours, bands."""
    for job in jobs:
        dst, output = job[1], job[2]
        single = _predict(job, tmp_path / "single.tif", overwrite=True)
        with rasterio.open(dst) as a, rasterio.open(single) as b:
            np.testing.assert_array_equal(a.read(), b.read())
            assert {k: v for k, v in a.profile.items() if k != "nodata"} == {
                k: v for k, v in b.profile.items() if k != "nodata"
            }
            np.testing.assert_array_equal(a.nodata, b.nodata)  # NaN equals NaN here
            assert [a.block_shapes, a.descriptions] == [b.block_shapes, b.descriptions]
            if output == "class":
                assert a.colormap(1) == b.colormap(1)


def _rank_worker(rank: int, world: int, port: int, jobs: list[Job], failing_src: str) -> None:
    _join_gloo(rank, world, port)
    try:
        for job in jobs:
            _predict(job, job[1])
        # Without sharding, each rank predicts the whole raster on its own.
        _predict(jobs[0], Path(jobs[0][0]).with_name(f"own{rank}.tif"), shard_across_ranks=False)
        # Rank 1's model raises: every rank must raise, and no output may be left.
        model = ActsOnCall(3, _boom) if rank == 1 else nn.Identity()
        failing_dst = Path(failing_src).with_name("failed.tif")
        try:
            predict_raster(model.eval(), failing_src, failing_dst, tile=16, overlap=4, batch_size=1)
        except RuntimeError as err:
            Path(failing_src).with_name(f"error{rank}.txt").write_text(str(err))
        _race_rank0_rename(failing_src, rank)
    finally:
        dist.destroy_process_group()


def test_two_ranks_equal_one_process(tmp_path: Path, write_raster: WriteRaster) -> None:
    rng = np.random.default_rng(0)
    tall = rng.random((3, 101, 45), dtype=np.float32)  # 9 row bands of 16 px tiles, odd sizes
    tall[:, 30:50, 10:40] = np.nan  # a nodata block
    small = rng.random((3, 10, 30), dtype=np.float32)  # one row band: rank 0 gets no rows
    jobs: list[Job] = []
    cases: list[tuple[str, np.ndarray, OutputMode, int]] = [
        ("tall", tall, "probability", 3),
        ("small", small, "class", 4),
        ("tallc", tall, "class", 2),
        # Rank 1's part is taller than one 256-row block: rank 0 appends it block by block.
        ("long", rng.random((3, 530, 20), dtype=np.float32), "regression", 2),
    ]
    for name, values, output, channels in cases:
        src = write_raster(values, f"{name}.tif")
        jobs.append((str(src), str(tmp_path / f"{name}_2ranks.tif"), output, channels))
    failing = write_raster(tall, "failing.tif")
    mp.spawn(  # type: ignore[attr-defined,no-untyped-call]
        _rank_worker, args=(2, _free_port(), jobs, str(failing)), nprocs=2, join=True
    )
    assert (tmp_path / "error1.txt").read_text() == "boom"
    assert (tmp_path / "error0.txt").read_text() == (
        "predict_raster failed on another rank (this is rank 0 of 2); see that rank's error."
    )
    assert not (tmp_path / "failed.tif").exists()
    races = [(tmp_path / f"race{rank}.txt").read_text() for rank in (0, 1)]
    assert races == ["FileExistsError", "RuntimeError"]
    # No temporary or part file is left (checked before the next run would clean up after
    # the exited ranks).
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []
    _assert_like_one_process(jobs, tmp_path)
    expected = _read(tmp_path / "tall_2ranks.tif")[0]
    for rank in (0, 1):
        np.testing.assert_array_equal(_read(tmp_path / f"own{rank}.tif")[0], expected)
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []


def _three_rank_worker(rank: int, port: int, jobs: list[Job], racing_src: str) -> None:
    _join_gloo(rank, 3, port)
    try:
        for job in jobs:
            _predict(job, job[1])
        _race_rank0_rename(racing_src, rank)
    finally:
        dist.destroy_process_group()


def test_three_ranks_with_empty_and_uneven_shares_equal_one_process(
    tmp_path: Path, write_raster: WriteRaster
) -> None:
    rng = np.random.default_rng(1)
    cases: list[tuple[str, np.ndarray, OutputMode, int]] = [
        # One row band: ranks 0 and 2 get none (rank 2: a rank other than 0 without rows).
        ("one", rng.random((3, 10, 30), dtype=np.float32), "class", 3),
        # Four row bands (offsets 0, 12, 24, 36): shares 0..1, 1..3, 3..4; rank 2 starts at
        # the last band, and rank 1 ends before it.
        ("four", rng.random((3, 52, 33), dtype=np.float32), "probability", 2),
        ("nine", rng.random((3, 101, 21), dtype=np.float32), "regression", 2),
    ]
    jobs: list[Job] = []
    for name, values, output, channels in cases:
        src = write_raster(values, f"{name}.tif")
        jobs.append((str(src), str(tmp_path / f"{name}_3ranks.tif"), output, channels))
    racing = write_raster(cases[1][1], "racing.tif")
    mp.spawn(  # type: ignore[attr-defined,no-untyped-call]
        _three_rank_worker, args=(_free_port(), jobs, str(racing)), nprocs=3, join=True
    )
    races = [(tmp_path / f"race{rank}.txt").read_text() for rank in range(3)]
    assert races == ["FileExistsError", "RuntimeError", "RuntimeError"]
    assert (tmp_path / "raced.tif").read_bytes() == b"someone else's output"
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []
    _assert_like_one_process(jobs, tmp_path)


# ---- numeric boundaries: inf in, overflow, NaN/inf out ----------------------------------


def test_inf_in_a_float_raster_is_nodata_like_nan(
    tmp_path: Path, write_raster: WriteRaster
) -> None:
    values = np.random.default_rng(0).random((2, 30, 40), dtype=np.float32)
    values[0, 3, 5], values[1, 20, 33], values[0, 10, 10] = np.inf, -np.inf, np.nan
    out = predict_raster(
        nn.Identity().eval(),
        write_raster(values),
        tmp_path / "o.tif",
        tile=16,
        overlap=4,
        output="regression",
    )
    result, _ = _read(out)
    bad = ~np.isfinite(values).all(axis=0)
    assert bad.sum() == 3 and np.isnan(result[:, bad]).all()
    np.testing.assert_array_equal(result[:, ~bad], values[:, ~bad])  # no inf leaked by blending


def test_float64_values_beyond_float32_are_an_error_not_inf(
    tmp_path: Path, write_raster: WriteRaster
) -> None:
    values = np.random.default_rng(0).random((2, 30, 40))  # float64
    values[1, 22, 31] = -1e39
    with pytest.raises(ValueError, match=r"band 2 holds -1e\+39 at row 22, column 31, beyond"):
        predict_raster(
            nn.Identity().eval(), write_raster(values), tmp_path / "o.tif", tile=16, overlap=4
        )
    assert list(tmp_path.glob("*o.tif*")) == []
    values[1, 22, 31] = 3e38  # still inside float32: fine
    out = predict_raster(
        nn.Identity().eval(),
        write_raster(values, "ok.tif"),
        tmp_path / "ok_out.tif",
        tile=16,
        overlap=4,
        output="regression",
    )
    np.testing.assert_array_equal(_read(out)[0], values.astype(np.float32))


class PoisonModel(nn.Module):
    """Identity, except NaN (all channels) where band 0 > 0.9, +inf in channel 1 where band 0 < 0.05."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.clone()
        y[:, :, :][(x[:, :1] > 0.9).expand_as(x)] = float("nan")
        y[:, 1][x[:, 0] < 0.05] = float("inf")
        return y


def test_nan_and_inf_model_outputs_are_nodata_not_class_0(
    tmp_path: Path, write_raster: WriteRaster, caplog: pytest.LogCaptureFixture
) -> None:
    values = np.random.default_rng(0).random((3, 40, 50), dtype=np.float32)
    src = write_raster(values)
    # overlap=0: every output pixel comes from exactly one tile, so the poison stays put.
    with caplog.at_level("WARNING", logger="geofm.geo.predict"):
        classes = predict_raster(PoisonModel().eval(), src, tmp_path / "c.tif", tile=16, overlap=0)
    result = _read(classes)[0][0]
    poisoned = (values[0] > 0.9) | (values[0] < 0.05)
    assert poisoned.sum() > 100
    assert (result[poisoned] == 255).all()  # nodata, never class 0
    np.testing.assert_array_equal(result[~poisoned], values[:, ~poisoned].argmax(axis=0))
    assert f"NaN or infinite outputs for {int(poisoned.sum())} valid pixels" in caplog.text
    regression = predict_raster(
        PoisonModel().eval(), src, tmp_path / "r.tif", tile=16, overlap=0, output="regression"
    )
    result = _read(regression)[0]
    assert np.isnan(result[:, values[0] > 0.9]).all()
    inf_only = values[0] < 0.05
    assert np.isnan(result[1, inf_only]).all() and not np.isinf(result).any()
    np.testing.assert_array_equal(result[0, inf_only], values[0, inf_only])  # per value


# ---- georeferencing ---------------------------------------------------------------------


def test_crs_without_geotransform_is_refused_unless_opted_in(
    tmp_path: Path, write_raster: WriteRaster
) -> None:
    values = np.random.default_rng(0).random((1, 20, 30), dtype=np.float32)
    src = write_raster(values, "ng.tif", transform=Affine.identity())  # CRS, no geotransform
    with pytest.raises(ValueError, match="has a CRS .* but no geotransform.*allow_ungeoreferenced"):
        predict_raster(nn.Identity().eval(), src, tmp_path / "o.tif", tile=16, overlap=4)
    assert not (tmp_path / "o.tif").exists()
    for source in (src, write_raster(values, "plain.tif", crs=None, transform=Affine.identity())):
        out = predict_raster(
            nn.Identity().eval(),
            source,
            tmp_path / f"o_{source.stem}.tif",
            tile=16,
            overlap=4,
            output="regression",
            allow_ungeoreferenced=True,
        )
        with rasterio.open(out) as r:
            assert r.crs is None and r.transform.is_identity  # no CRS, no geotransform
            np.testing.assert_array_equal(r.read(), values)
    # A georeferenced source keeps its georeferencing with the opt-in too.
    geo = predict_raster(
        nn.Identity().eval(),
        write_raster(values, "geo.tif"),
        tmp_path / "geo_out.tif",
        tile=16,
        overlap=4,
        allow_ungeoreferenced=True,
    )
    assert _read(geo)[1]["crs"].to_epsg() == 32618


# ---- precision and memory format (issue 19) -----------------------------------------------


class DtypeRecorder(nn.Module):
    """A small conv net that records the dtype and memory format its first conv sees/gives."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.first, self.second = nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 4, 3, padding=1)
        self.dtypes: set[torch.dtype] = set()
        self.channels_last: set[bool] = set()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.channels_last.add(
            x.shape[0] > 1 and x.is_contiguous(memory_format=torch.channels_last)
        )
        y = self.first(x)
        self.dtypes.add(y.dtype)
        out: torch.Tensor = self.second(y.relu())
        return out


@pytest.mark.parametrize(
    ("precision", "dtype"), [("bf16", torch.bfloat16), ("fp16", torch.float16)]
)
def test_reduced_precision_agrees_with_fp32(
    tmp_path: Path, write_raster: WriteRaster, precision: str, dtype: torch.dtype
) -> None:
    values = np.random.default_rng(0).random((3, 70, 90), dtype=np.float32)
    src = write_raster(values)
    results = {}
    for name in ("fp32", precision):
        model = DtypeRecorder().eval()
        for output in ("regression", "class"):
            out = predict_raster(
                model,
                src,
                tmp_path / f"{name}_{output}.tif",
                tile=32,
                overlap=8,
                batch_size=4,
                output=output,
                precision=name,  # type: ignore[arg-type]
            )
            results[name, output] = _read(out)[0]
        assert model.dtypes == {torch.float32 if name == "fp32" else dtype}
    low, full = results[precision, "regression"], results["fp32", "regression"]
    assert low.dtype == np.float32  # blended and written in float32
    assert not np.array_equal(low, full)  # it did run in reduced precision
    np.testing.assert_allclose(low, full, atol=0.01 * np.ptp(full))  # bf16: 8 mantissa bits
    agreement = (results[precision, "class"] == results["fp32", "class"]).mean()
    assert agreement >= 0.99, agreement  # issue 19's target on valid pixels


def test_channels_last_feeds_nhwc_and_changes_nothing(
    tmp_path: Path, write_raster: WriteRaster
) -> None:
    values = np.random.default_rng(0).random((3, 50, 40), dtype=np.float32)
    src = write_raster(values)
    model = DtypeRecorder().eval()
    plain = predict_raster(model, src, tmp_path / "a.tif", tile=16, overlap=4, output="regression")
    assert model.channels_last == {False}
    model.channels_last.clear()
    nhwc = predict_raster(
        model,
        src,
        tmp_path / "b.tif",
        tile=16,
        overlap=4,
        output="regression",
        channels_last=True,
    )
    assert True in model.channels_last
    np.testing.assert_allclose(_read(nhwc)[0], _read(plain)[0], rtol=1e-5, atol=1e-6)
    assert next(model.parameters()).is_contiguous()  # the model itself is not converted


def test_precision_errors(tmp_path: Path, write_raster: WriteRaster) -> None:
    src = write_raster(np.ones((3, 20, 20), np.float32))
    with pytest.raises(ValueError, match="Unknown precision 'int8'. Expected one of: bf16, fp16"):
        predict_raster(nn.Identity().eval(), src, tmp_path / "o.tif", precision="int8")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="channels_last must be a bool, got str"):
        predict_raster(nn.Identity().eval(), src, tmp_path / "o.tif", channels_last="yes")  # type: ignore[arg-type]
    assert not (tmp_path / "o.tif").exists()


class _SpecSegmenter(nn.Module):
    """A tiny segmenter that states its input contract (standardised 0-255 values)."""

    def __init__(self) -> None:
        super().__init__()
        from geofm import InputSpec

        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 1))
        self.input_spec = InputSpec(num_bands=3, mean=(90.0, 100.0, 80.0), std=(40.0, 30.0, 50.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]


def test_a_torch_compiled_model_predicts_the_same_map_through_its_input_spec(
    tmp_path: Path, write_raster: WriteRaster
) -> None:
    from geofm.geo.inputs import model_input_spec

    values = np.random.default_rng(1).integers(0, 255, (3, 96, 80)).astype("uint8")
    src = write_raster(values)
    model = _SpecSegmenter().eval()
    compiled = torch.compile(model, dynamic=False)  # what docs/benchmarks.md measures
    assert model_input_spec(compiled) == model.input_spec  # read through the wrapper
    eager = predict_raster(model, src, tmp_path / "eager.tif", tile=64, overlap=16)
    fast = predict_raster(compiled, src, tmp_path / "compiled.tif", tile=64, overlap=16)
    raw = predict_raster(model, src, tmp_path / "raw.tif", tile=64, overlap=16, input_spec=None)
    with rasterio.open(eager) as a, rasterio.open(fast) as b, rasterio.open(raw) as c:
        assert np.array_equal(a.read(), b.read())
        assert not np.array_equal(a.read(), c.read())  # the spec was applied, not skipped
