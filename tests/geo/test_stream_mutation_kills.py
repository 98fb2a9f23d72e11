"""The streaming pipeline behind predict_raster: values a plausible wrong version gets wrong.

Written against the mutants ``nox -s mutation -- geofm/geo/_stream.py`` left.
The helpers are checked on their own, against values worked out by hand (the
blending ramps, the GDAL cache size, the tile cover, the row-band plan, the
block-buffered writer, the accumulator's final rows); the pipeline through
``predict_raster`` on rasters whose values tell each stage's mistakes apart.
"""

from __future__ import annotations

import math
import queue
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from geofm.geo import _stream
from geofm.geo._rio import GEOTIFF_BLOCK
from geofm.geo._stream import (
    CLASS_NODATA,
    Plan,
    RowSink,
    _Accumulator,
    _argmax0,
    _check_float32_range,
    _iterate,
    _read_bands,
    check_precision,
    coverage,
    forward_context,
    gdal_cache_bytes,
    run_bands,
    window_1d,
)
from geofm.geo.tiling import tile_offsets

from .conftest import error_message


def _plan(height: int, width: int, tile: int, rows: list[int], cols: list[int]) -> Plan:
    return Plan(
        height=height,
        width=width,
        tile=tile,
        row_offsets=rows,
        col_offsets=cols,
        window=np.ones(tile),
        gdal_cache_bytes=0,
    )


# --- window_1d ---------------------------------------------------------------------------


@pytest.mark.parametrize("blend", ["cosine", "linear"])
def test_window_ramps_hold_the_pixel_centre_values(blend: str) -> None:
    # overlap 3: pixel centres t = 1/6, 3/6, 5/6 of the ramp.
    t = np.array([1 / 6, 3 / 6, 5 / 6])
    ramp = np.sin(np.pi / 2 * t) ** 2 if blend == "cosine" else t
    weights = window_1d(8, 3, blend)  # type: ignore[arg-type]
    assert weights.dtype == np.float64
    np.testing.assert_allclose(weights, [*ramp, 1.0, 1.0, *ramp[::-1]], rtol=0, atol=1e-15)


def test_window_ramps_differ_between_cosine_and_linear() -> None:
    cosine, linear = window_1d(10, 4, "cosine"), window_1d(10, 4, "linear")
    # Below the midpoint sin^2 is below the straight line; above it, above it.
    assert cosine[0] < linear[0] and cosine[3] > linear[3]


def test_a_one_pixel_overlap_is_a_half_weight_at_both_ends() -> None:
    np.testing.assert_allclose(window_1d(4, 1, "cosine"), [0.5, 1.0, 1.0, 0.5], atol=1e-15)
    np.testing.assert_array_equal(window_1d(4, 1, "linear"), [0.5, 1.0, 1.0, 0.5])


@pytest.mark.parametrize(("overlap", "blend"), [(0, "cosine"), (0, "linear"), (3, "none")])
def test_window_is_flat_without_overlap_or_blending(overlap: int, blend: str) -> None:
    weights = window_1d(6, overlap, blend)  # type: ignore[arg-type]
    assert weights.dtype == np.float64
    np.testing.assert_array_equal(weights, np.ones(6))


# --- check_precision / forward_context ---------------------------------------------------


def test_unknown_precision_names_every_choice() -> None:
    message = error_message(ValueError, lambda: check_precision("fp64", torch.device("cpu")))
    assert message == "Unknown precision 'fp64'. Expected one of: bf16, fp16, fp32."


def test_fp32_is_accepted_on_a_device_without_autocast() -> None:
    assert check_precision("fp32", torch.device("meta")) is None


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_needs_autocast_on_the_device(precision: str) -> None:
    message = error_message(ValueError, lambda: check_precision(precision, torch.device("meta")))
    assert message == (
        f"precision={precision!r} needs torch.autocast, which device type 'meta' does not "
        "support. Use precision='fp32'."
    )


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_is_accepted_on_the_cpu(precision: str) -> None:
    assert check_precision(precision, torch.device("cpu")) is None


def test_an_autocast_that_raises_becomes_a_value_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(**kwargs: Any) -> Any:
        raise RuntimeError("no such dtype here.")

    monkeypatch.setattr(torch, "autocast", refuse)
    message = error_message(ValueError, lambda: check_precision("bf16", torch.device("cpu")))
    assert message == (
        "precision='bf16' is not supported on 'cpu': no such dtype here. Use precision='fp32' "
        "(or 'bf16'/'fp16', whichever the device supports)."
    )


def test_an_autocast_that_only_warns_becomes_a_value_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[dict[str, Any]] = []

    @contextmanager
    def disabled(**kwargs: Any) -> Any:
        seen.append(kwargs)
        warnings.warn("unrelated warning", UserWarning, stacklevel=1)
        warnings.warn("In CPU autocast, but the target dtype is not supported.", stacklevel=1)
        yield

    monkeypatch.setattr(torch, "autocast", disabled)
    message = error_message(ValueError, lambda: check_precision("fp16", torch.device("cpu")))
    assert message == (
        "precision='fp16' is not supported on 'cpu' (In CPU autocast, but the target dtype is "
        "not supported.). Use precision='fp32'."
    )
    assert seen == [{"device_type": "cpu", "dtype": torch.float16}]


def test_a_warning_seen_before_is_still_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    # The "once" filter of a warning already shown must not hide it from the check.
    @contextmanager
    def disabled(**kwargs: Any) -> Any:
        warnings.warn("autocast disabled", UserWarning, stacklevel=1)
        yield

    monkeypatch.setattr(torch, "autocast", disabled)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(2):
            message = error_message(
                ValueError, lambda: check_precision("bf16", torch.device("cpu"))
            )
            assert "(autocast disabled)" in message


def test_an_unrelated_warning_does_not_refuse_the_precision(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    @contextmanager
    def chatty(**kwargs: Any) -> Any:
        warnings.warn("something else entirely", UserWarning, stacklevel=1)
        yield

    monkeypatch.setattr(torch, "autocast", chatty)
    assert check_precision("bf16", torch.device("cpu")) is None


@pytest.mark.parametrize(
    ("precision", "dtype"), [("bf16", torch.bfloat16), ("fp16", torch.float16)]
)
def test_forward_context_autocasts_to_the_precision(precision: str, dtype: torch.dtype) -> None:
    with forward_context(torch.device("cpu"), precision):  # type: ignore[arg-type]
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == dtype
        y = torch.nn.functional.linear(torch.ones(2, 3), torch.ones(4, 3))
    assert y.dtype == dtype


def test_forward_context_leaves_fp32_alone() -> None:
    with forward_context(torch.device("cpu"), "fp32"):
        assert not torch.is_autocast_enabled("cpu")
        y = torch.nn.functional.linear(torch.ones(2, 3), torch.ones(4, 3))
    assert y.dtype == torch.float32


# --- _check_float32_range ----------------------------------------------------------------


def test_a_value_beyond_float32_is_named_with_its_band_and_place() -> None:
    strip = np.zeros((2, 3, 5), dtype=np.float64)
    strip[1, 2, 4] = -1e39
    strip[1, 2, 3] = 5e39  # the first of the two in row order
    message = error_message(
        ValueError, lambda: _check_float32_range(strip, Path("a.tif"), [4, 7], 10)
    )
    assert message == (
        "Raster 'a.tif' band 7 holds 5e+39 at row 12, column 3, beyond the float32 range "
        "(+-3.4e38) in which predict_raster feeds the model: it would reach the model as inf. "
        "Rescale the raster (e.g. to other units) or mark such values as nodata."
    )


def test_negative_values_beyond_float32_are_refused_too() -> None:
    strip = np.zeros((1, 2, 2), dtype=np.float64)
    strip[0, 1, 0] = -1e39
    message = error_message(ValueError, lambda: _check_float32_range(strip, "b.tif", [3], 0))
    assert "band 3 holds -1e+39 at row 1, column 0" in message


def test_the_float32_maximum_itself_passes() -> None:
    biggest = float(np.finfo(np.float32).max)
    strip = np.array([[[biggest, -biggest]]], dtype=np.float64)
    assert _check_float32_range(strip, "c.tif", [1], 0) is None
    strip[0, 0, 1] = np.nextafter(-biggest, -np.inf)
    with pytest.raises(ValueError, match="column 1"):
        _check_float32_range(strip, "c.tif", [1], 0)


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.uint64, np.float16])
def test_narrow_or_integer_strips_are_not_checked(dtype: type) -> None:
    strip = np.full((1, 1, 2), np.iinfo(np.int64).max if dtype == np.int64 else 1, dtype=dtype)
    if dtype == np.uint64:
        strip[:] = np.iinfo(np.uint64).max
    assert _check_float32_range(strip, "d.tif", [1], 0) is None


# --- _argmax0 -----------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 2, 3, 5])
def test_argmax0_matches_numpy_with_ties_to_the_first(channels: int) -> None:
    rng = np.random.default_rng(channels)
    values = rng.integers(0, 3, size=(channels, 4, 6)).astype(np.float32)  # many ties
    index = _argmax0(values)
    assert index.dtype == np.uint8 and index.shape == (4, 6)
    np.testing.assert_array_equal(index, values.argmax(axis=0))


def test_argmax0_does_not_change_its_input() -> None:
    values = np.array([[[1.0, 5.0]], [[3.0, 2.0]], [[4.0, 0.0]]], dtype=np.float32)
    before = values.copy()
    np.testing.assert_array_equal(_argmax0(values), [[2, 0]])
    np.testing.assert_array_equal(values, before)


# --- gdal_cache_bytes ---------------------------------------------------------------------


class _Dataset:
    def __init__(self, block_rows: int, width: int, dtypes: list[str]) -> None:
        # Only the first band's block height counts (other bands' differ here on purpose).
        self.block_shapes = [(block_rows, 99)] + [(block_rows + 5, 98)] * (len(dtypes) - 1)
        self.width = width
        self.count = len(dtypes)
        self.dtypes = dtypes


def test_gdal_cache_holds_a_row_band_and_a_block_row_plus_a_quarter() -> None:
    # (tile 1000 + block 24 rows) * width 2000 * 3 bands * 4 bytes (widest type) * 5/4
    dataset = _Dataset(24, 2000, ["uint8", "float32", "int16"])
    assert gdal_cache_bytes(dataset, 1000) == 1024 * 2000 * 3 * 4 * 5 // 4 == 30_720_000


def test_gdal_cache_rounds_down_the_quarter() -> None:
    # (8000 + 1) * 2001 * 1 * 1 = 16_010_001 bytes; * 5 = 80_050_005; // 4 = 20_012_501
    assert gdal_cache_bytes(_Dataset(1, 2001, ["uint8"]), 8000) == 20_012_501


def test_gdal_cache_has_a_floor_and_a_ceiling() -> None:
    assert gdal_cache_bytes(_Dataset(1, 10, ["uint8"]), 10) == 8 * 2**20
    assert gdal_cache_bytes(_Dataset(256, 100_000, ["float64"] * 4), 4096) == 512 * 2**20
    small = _Dataset(256, 4096, ["uint8"] * 2)  # (256 + 256) * 4096 * 2 * 5 // 4 = 5 MiB
    assert gdal_cache_bytes(small, 256) == 8 * 2**20
    wide = _Dataset(256, 8192, ["uint16"])  # (768 + 256) * 8192 * 2 * 5 // 4 = 20 MiB
    assert gdal_cache_bytes(wide, 768) == 20 * 2**20


# --- coverage and the plan ---------------------------------------------------------------


def test_coverage_sums_the_tiles_windows_per_pixel() -> None:
    weights = np.array([0.25, 1.0, 1.0, 0.5])
    total = coverage(7, [0, 3], weights)
    np.testing.assert_array_equal(total, [0.25, 1.0, 1.0, 0.75, 1.0, 1.0, 0.5])


def test_coverage_reaches_past_a_short_axis() -> None:
    # A tile longer than the axis (padded): the cover is as long as the tile.
    np.testing.assert_array_equal(coverage(2, [0], np.array([1.0, 2.0, 3.0])), [1.0, 2.0, 3.0])


def test_plan_pads_only_narrow_rasters() -> None:
    assert _plan(10, 30, 8, [0], [0]).padded_width == 30
    assert _plan(10, 5, 8, [0], [0]).padded_width == 8
    assert _plan(10, 8, 8, [0], [0]).padded_width == 8


def test_flush_stop_is_the_next_band_start_then_the_height() -> None:
    plan = _plan(20, 8, 8, [0, 6, 12], [0])
    assert [plan.flush_stop(b) for b in range(3)] == [6, 12, 20]


def test_first_touching_finds_the_first_band_reaching_the_band_start() -> None:
    # Tiles of 8 rows at 0, 3, 6, 9, 12: band 3 starts at row 9; band 1 (3..10)
    # reaches row 9, band 0 (0..7) does not.
    plan = _plan(20, 8, 8, [0, 3, 6, 9, 12], [0])
    assert [plan.first_touching(b) for b in range(5)] == [0, 0, 0, 1, 2]
    # A band ending exactly at the start row does not touch it.
    assert _plan(16, 8, 8, [0, 8], [0]).first_touching(1) == 1


# --- RowSink ------------------------------------------------------------------------------


class _Recorder:
    def __init__(self) -> None:
        self.writes: list[tuple[tuple[int, int, int, int], np.ndarray]] = []

    def write(self, block: np.ndarray, window: Any) -> None:
        box = (window.col_off, window.row_off, window.width, window.height)
        self.writes.append((box, block.copy()))


def _rows(start: int, n: int, width: int = 3) -> np.ndarray:
    return np.broadcast_to(np.arange(start, start + n)[None, :, None], (2, n, width)).copy()


def test_row_sink_writes_whole_block_rows_and_the_rest_on_close() -> None:
    dataset = _Recorder()
    sink = RowSink(dataset)
    sink.write(_rows(0, 200))
    assert dataset.writes == []  # 200 < one block row
    sink.write(_rows(200, 400))  # 600 rows buffered: two block rows out, 88 kept
    assert [box for box, _ in dataset.writes] == [(0, 0, 3, 2 * GEOTIFF_BLOCK)]
    sink.write(_rows(600, 168))  # 88 + 168 = exactly one block row: written at once
    assert [box for box, _ in dataset.writes] == [(0, 0, 3, 512), (0, 512, 3, 256)]
    sink.write(_rows(768, 5))
    sink.close()
    boxes = [box for box, _ in dataset.writes]
    assert boxes == [(0, 0, 3, 512), (0, 512, 3, 256), (0, 768, 3, 5)]
    written = np.concatenate([block for _, block in dataset.writes], axis=1)
    np.testing.assert_array_equal(written, _rows(0, 773))


def test_row_sink_close_with_nothing_buffered_writes_nothing() -> None:
    dataset = _Recorder()
    sink = RowSink(dataset)
    sink.write(_rows(0, GEOTIFF_BLOCK))
    sink.close()
    assert [box for box, _ in dataset.writes] == [(0, 0, 3, GEOTIFF_BLOCK)]


# --- _Accumulator -------------------------------------------------------------------------


def test_one_channel_class_output_is_its_sign_with_zero_as_class_one() -> None:
    plan = _plan(2, 4, 2, [0], [0, 2])
    acc = _Accumulator(plan, 1, "class")
    acc.start_band(0)
    logits = np.array([[[[-1.0, 0.0], [2.0, -0.0]]], [[[0.5, -3.0], [np.nan, 1.0]]]])
    acc.add(logits.astype(np.float32), [0, 2])
    valid = np.ones((2, 4), dtype=bool)
    valid[1, 0] = False
    classes = acc.finished_rows(2, valid)()
    assert classes.dtype == np.uint8 and classes.shape == (1, 2, 4)
    np.testing.assert_array_equal(classes[0], [[0, 1, 1, 0], [CLASS_NODATA, 1, CLASS_NODATA, 1]])
    assert acc.nonfinite_pixels == 1  # the NaN; the invalid pixel is not counted


def test_class_output_of_several_channels_is_the_first_maximum() -> None:
    plan = _plan(1, 2, 2, [0], [0])
    acc = _Accumulator(plan, 3, "class")
    acc.start_band(0)
    out = np.zeros((1, 3, 2, 2), dtype=np.float32)
    out[0, :, 0, 0] = [1.0, 3.0, 3.0]  # tie: first wins
    out[0, :, 0, 1] = [0.0, np.inf, 1.0]  # inf has no argmax: nodata
    acc.add(out, [0])
    classes = acc.finished_rows(1, np.ones((2, 2), dtype=bool))()
    np.testing.assert_array_equal(classes, [[[1, CLASS_NODATA]]])
    assert acc.nonfinite_pixels == 1


def test_values_are_divided_by_the_summed_weights() -> None:
    plan = Plan(
        height=2,
        width=3,
        tile=2,
        row_offsets=[0],
        col_offsets=[0, 1],
        window=np.array([0.25, 1.0]),
        gdal_cache_bytes=0,
    )
    acc = _Accumulator(plan, 1, "regression")
    acc.start_band(0)
    first = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    second = np.array([[[[10.0, 20.0], [30.0, 40.0]]]])
    acc.add(np.concatenate([first, second]), [0, 1])
    values = acc.finished_rows(2, np.ones((2, 3), dtype=bool))()
    w2 = np.outer([0.25, 1.0], [0.25, 1.0])
    row_cover, col_cover = np.array([0.25, 1.0]), np.array([0.25, 1.25, 1.0])
    expected = np.zeros((2, 3))
    expected[:, 0:2] += w2 * first[0, 0]
    expected[:, 1:3] += w2 * second[0, 0]
    expected /= np.outer(row_cover, col_cover)
    assert values.dtype == np.float32 and values.shape == (1, 2, 3)
    np.testing.assert_allclose(values[0], expected, rtol=1e-7)


def test_value_outputs_mark_nonfinite_and_invalid_pixels_nan_per_value() -> None:
    plan = _plan(1, 3, 1, [0], [0, 1, 2])
    acc = _Accumulator(plan, 2, "probability")
    acc.start_band(0)
    out = np.array(
        [[[[1.0]], [[2.0]]], [[[np.nan]], [[3.0]]], [[[4.0]], [[1e300]]]], dtype=np.float64
    )  # (3 tiles, 2 channels, 1, 1); 1e300 overflows float32
    acc.add(out, [0, 1, 2])
    valid = np.array([[True, True, True]])
    values = acc.finished_rows(1, valid)()
    expected = np.array([[[1.0, np.nan, 4.0]], [[2.0, 3.0, np.nan]]], dtype=np.float32)
    np.testing.assert_array_equal(values, expected)
    assert acc.nonfinite_pixels == 2
    invalid = _Accumulator(plan, 2, "probability")
    invalid.start_band(0)
    invalid.add(out[:1], [0])
    masked = invalid.finished_rows(1, np.array([[False, True, True]]))()
    assert np.isnan(masked[:, 0, 0]).all() and invalid.nonfinite_pixels == 0


def test_start_band_carries_the_overlap_rows_into_a_cleared_buffer() -> None:
    plan = _plan(7, 1, 4, [0, 3], [0])
    acc = _Accumulator(plan, 1, "regression")
    acc.start_band(0)
    acc.add(np.arange(1.0, 5.0).reshape(1, 1, 4, 1), [0])  # rows 0..3 hold 1, 2, 3, 4
    first = acc.finished_rows(3, np.ones((4, 1), dtype=bool))()
    np.testing.assert_array_equal(first[0, :, 0], [1.0, 2.0, 3.0])
    acc.start_band(1)  # rows 3..6: row 3 carried over, the rest cleared
    acc.add(np.full((1, 1, 4, 1), 10.0), [0])
    second = acc.finished_rows(7, np.ones((4, 1), dtype=bool))()
    # Row 3 is covered by both tiles (cover 2); rows 4..6 by the second only.
    np.testing.assert_array_equal(second[0, :, 0], [7.0, 10.0, 10.0, 10.0])
    acc.start_band(1)  # the same band again: nothing moves
    assert acc.finished_rows(7, np.ones((4, 1), dtype=bool))()[0, 0, 0] == 7.0


def test_a_band_further_than_a_tile_starts_from_zero() -> None:
    plan = _plan(12, 1, 4, [0, 8], [0])
    acc = _Accumulator(plan, 1, "regression")
    acc.start_band(0)
    acc.add(np.full((1, 1, 4, 1), 5.0), [0])
    acc.start_band(1)
    acc.add(np.full((1, 1, 4, 1), 2.0), [0])
    np.testing.assert_array_equal(
        acc.finished_rows(12, np.ones((4, 1), dtype=bool))()[0, :, 0], [2.0] * 4
    )


def test_accumulator_sums_in_float32_for_classes_and_float64_for_values() -> None:
    plan = _plan(1, 1, 1, [0], [0])
    value = np.array([[[[1.0 + 2.0**-40]]]])  # representable in float64 only
    acc = _Accumulator(plan, 1, "regression")
    acc.start_band(0)
    acc.add(value, [0])
    assert acc.finished_rows(1, np.ones((1, 1), dtype=bool))().dtype == np.float32
    assert acc._buffers[0].dtype == np.float64 and acc._buffers[0][0, 0, 0] == value.item()
    classes = _Accumulator(plan, 1, "class")
    assert [b.dtype for b in classes._buffers] == [np.float32, np.float32]
    assert classes._window2d.dtype == np.float32 and classes._weighted.dtype == np.float32
    assert [b.dtype for b in acc._buffers] == [np.float64, np.float64]
    assert acc._weighted.dtype == np.float64
    assert math.isclose(float(acc._window2d.sum()), 1.0)


# --- the reader thread and its consumer ---------------------------------------------------


def _reader_plan(height: int, width: int, tile: int, stride: int) -> Plan:
    return Plan(
        height=height,
        width=width,
        tile=tile,
        row_offsets=tile_offsets(height, tile, stride, "shift"),
        col_offsets=tile_offsets(width, tile, stride, "shift"),
        window=np.ones(tile),
        gdal_cache_bytes=8 * 2**20,
    )


def test_the_reader_batches_the_tiles_with_valid_pixels_band_by_band(
    write_raster: Any,
) -> None:
    values = np.arange(2 * 12 * 20, dtype=np.float32).reshape(2, 12, 20)
    values[:, 0:8, 4:12] = -1.0  # the second tile of the first row band: all nodata
    src = write_raster(values, nodata=-1.0)
    plan = _reader_plan(12, 20, 8, 4)  # rows 0, 4; columns 0, 4, 8, 12
    items = list(_iterate(src, [2, 1], plan, range(2), 2))
    kinds = [(type(i).__name__, i.band, getattr(i, "cols", None)) for i in items]
    assert kinds == [
        ("_Batch", 0, [0, 8]),
        ("_Batch", 0, [12]),
        ("_BandEnd", 0, None),
        ("_Batch", 1, [0, 4]),
        ("_Batch", 1, [8, 12]),
        ("_BandEnd", 1, None),
    ]
    first = items[0]
    assert first.data.dtype == np.float32 and first.data.shape == (2, 2, 8, 8)
    expected = values[[1, 0], 0:8, 8:16].copy()  # bands 2, 1; the tile at column 8
    expected[expected == -1.0] = 0.0  # invalid pixels are 0
    np.testing.assert_array_equal(first.data[1], expected)
    second = values[[1, 0], 4:12, 0:8]
    np.testing.assert_array_equal(items[3].data[0], np.where(second == -1.0, 0.0, second))
    valid = items[2].valid
    assert valid.shape == (8, 20) and not valid[0:8, 4:12].any() and valid[:, 12:].all()


def test_only_the_bands_asked_for_are_read(write_raster: Any) -> None:
    src = write_raster(np.ones((1, 12, 8), dtype=np.uint8))
    plan = _reader_plan(12, 8, 8, 4)  # row bands at 0 and 4
    items = list(_iterate(src, [1], plan, range(1, 2), 8))
    assert [(type(i).__name__, i.band) for i in items] == [("_Batch", 1), ("_BandEnd", 1)]


def test_a_narrow_raster_is_read_padded_to_one_tile(write_raster: Any) -> None:
    src = write_raster(np.full((1, 8, 5), 7, dtype=np.uint8))
    plan = _reader_plan(8, 5, 8, 4)
    batch, end = list(_iterate(src, [1], plan, range(1), 4))
    assert batch.data.shape == (1, 1, 8, 8)
    np.testing.assert_array_equal(batch.data[0, 0, :, :5], 7)
    np.testing.assert_array_equal(batch.data[0, 0, :, 5:], 0)
    assert end.valid.shape == (8, 8) and end.valid[:, :5].all() and not end.valid[:, 5:].any()


def test_a_read_error_reaches_the_consumer(tmp_path: Path) -> None:
    missing = tmp_path / "gone.tif"
    with pytest.raises(Exception, match="gone.tif"):
        list(_iterate(missing, [1], _reader_plan(8, 8, 8, 4), range(1), 1))


def test_a_value_beyond_float32_stops_the_reader_with_its_place(write_raster: Any) -> None:
    values = np.zeros((1, 8, 8), dtype=np.float64)
    values[0, 6, 3] = 1e300
    src = write_raster(values)
    message = error_message(
        ValueError, lambda: list(_iterate(src, [1], _reader_plan(8, 8, 8, 4), range(1), 1))
    )
    assert message.startswith(f"Raster '{src}' band 1 holds 1e+300 at row 6, column 3, beyond")


def test_a_reader_that_ends_without_its_sentinel_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def quits(*args: Any) -> None:
        sink = args[5]
        sink.put("only item")

    monkeypatch.setattr(_stream, "_read_bands", quits)
    items = _iterate("x.tif", [1], _reader_plan(8, 8, 8, 4), range(1), 1)
    assert next(items) == "only item"
    message = error_message(RuntimeError, lambda: next(items))
    assert message == (
        "predict_raster's reader thread ended without finishing its row bands or reporting "
        "an error."
    )


def test_a_slow_reader_is_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(*args: Any) -> None:
        sink = args[5]
        time.sleep(3 * _stream._POLL_S)
        sink.put("late")
        sink.put(None)

    monkeypatch.setattr(_stream, "_read_bands", slow)
    assert list(_iterate("x.tif", [1], _reader_plan(8, 8, 8, 4), range(1), 1)) == ["late"]


def test_a_consumer_leaving_early_stops_the_reader(write_raster: Any) -> None:
    src = write_raster(np.ones((1, 64, 64), dtype=np.uint8))
    items = _iterate(src, [1], _reader_plan(64, 64, 8, 4), range(15), 1)  # 15 x 15 batches
    next(items)
    items.close()
    assert not [t for t in threading.enumerate() if t.name == "geofm-predict-reader"]


def test_a_slow_consumer_gets_every_item(write_raster: Any) -> None:
    src = write_raster(np.ones((1, 32, 8), dtype=np.uint8))
    plan = _reader_plan(32, 8, 8, 4)  # 7 row bands of one tile: 14 items and the end
    items = []
    for item in _iterate(src, [1], plan, range(7), 1):
        if len(items) < 3:  # the reader finds the queue full for longer than one wait
            time.sleep(3 * _stream._POLL_S)
        items.append(item)
    assert [i.band for i in items] == [b for b in range(7) for _ in range(2)]


def test_the_reader_is_a_named_daemon_thread(write_raster: Any) -> None:
    src = write_raster(np.ones((1, 8, 8), dtype=np.uint8))
    items = _iterate(src, [1], _reader_plan(8, 8, 8, 4), range(1), 1)
    next(items)
    [reader] = [t for t in threading.enumerate() if t.name == "geofm-predict-reader"]
    assert reader.daemon is True  # never keeps the interpreter alive
    items.close()
    assert not reader.is_alive()


def test_a_consumer_leaving_early_stops_the_reads(
    write_raster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[int] = []
    real = _stream.read_window

    def counted(src: Any, window: Any, bands: Any) -> Any:
        reads.append(window.row_off)
        return real(src, window, bands)

    monkeypatch.setattr(_stream, "read_window", counted)
    src = write_raster(np.ones((1, 64, 8), dtype=np.uint8))
    items = _iterate(src, [1], _reader_plan(64, 8, 8, 4), range(15), 1)
    next(items)
    time.sleep(3 * _stream._POLL_S)  # the reader fills the queue and waits for room
    items.close()  # returns: the waiting reader sees stop
    # The queue holds two items: at most a few bands are read before the reader sees stop.
    assert 1 <= len(reads) <= 4


def test_a_stopped_reader_puts_nothing_more() -> None:

    sink: queue.Queue[Any] = queue.Queue(maxsize=1)
    stop = threading.Event()
    stop.set()
    _read_bands("missing.tif", [1], _reader_plan(8, 8, 8, 4), range(1), 1, sink, stop)
    assert sink.empty()  # not even the error of the missing file


# --- run_bands on its own -----------------------------------------------------------------


class _Sees(torch.nn.Module):
    """Doubles its first channel; records what its input looked like."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[torch.dtype, bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((x.dtype, x.is_contiguous(), torch.is_autocast_enabled("cpu")))
        return 2 * x[:, :1]


class _RowRecorder:
    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []
        self.threads: list[str] = []

    def write(self, rows: np.ndarray) -> None:
        self.rows.append(rows)
        self.threads.append(threading.current_thread().name)


class _Progress:
    def __init__(self) -> None:
        self.steps: list[int] = []

    def update(self, n: int) -> None:
        self.steps.append(n)


def test_run_bands_from_a_later_band_writes_its_rows_in_fp32_by_default(
    write_raster: Any,
) -> None:
    values = np.arange(2 * 28 * 20, dtype=np.float32).reshape(2, 28, 20)
    src = write_raster(values)
    plan = _reader_plan(28, 20, 8, 4)  # row bands at 0, 4, ..., 20; columns 0, 4, 8, 12
    sink, progress, model = _RowRecorder(), _Progress(), _Sees()
    # Bands 1.. are predicted (band 1 is where this share starts; nothing before it).
    run_bands(
        model, src, [1, 2], plan, range(1, 6), 2, 3, torch.device("cpu"), "regression", 1, sink,
        progress,
    )  # fmt: skip
    written = np.concatenate(sink.rows, axis=1)  # rows of bands 2.. : from row 8 on
    assert written.shape == (1, 20, 20)
    np.testing.assert_allclose(written[0], 2 * values[0, 8:], rtol=1e-6)
    assert {t.rsplit("_", 1)[0] for t in sink.threads} == {"geofm-predict-writer"}
    assert progress.steps == [4] * 5  # one step of all column tiles per band
    assert set(model.seen) == {(torch.float32, True, False)}
    assert [len(rows[0]) for rows in sink.rows] == [4, 4, 4, 8]  # each band's final rows


def test_nonfinite_pixels_are_counted_over_all_bands() -> None:
    plan = _plan(2, 1, 1, [0, 1], [0])
    acc = _Accumulator(plan, 1, "regression")
    for band in (0, 1):
        acc.start_band(band)
        acc.add(np.full((1, 1, 1, 1), np.nan), [0])
        acc.finished_rows(band + 1, np.ones((1, 1), dtype=bool))()
    assert acc.nonfinite_pixels == 2


def test_an_overflow_to_float32_is_nodata_without_a_numpy_warning() -> None:
    plan = _plan(1, 1, 1, [0], [0])
    acc = _Accumulator(plan, 1, "regression")
    acc.start_band(0)
    acc.add(np.full((1, 1, 1, 1), 1e300), [0])
    job = acc.finished_rows(1, np.ones((1, 1), dtype=bool))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(job()).all()


def _run(model: torch.nn.Module, src: Path, output: str, channels: int, sink: Any) -> None:
    plan = _reader_plan(8, 8, 8, 4)
    bands = list(range(1, channels + 1))  # an identity model: as many outputs as bands
    cpu = torch.device("cpu")
    run_bands(model, src, bands, plan, range(1), 0, 1, cpu, output, channels, sink, None)  # type: ignore[arg-type]


def test_one_probability_channel_is_a_sigmoid(write_raster: Any) -> None:
    values = np.linspace(-3, 3, 64, dtype=np.float32).reshape(1, 8, 8)
    sink = _RowRecorder()
    _run(torch.nn.Identity(), write_raster(values), "probability", 1, sink)
    np.testing.assert_allclose(
        sink.rows[0][0], torch.sigmoid(torch.from_numpy(values[0])), rtol=1e-6
    )


def test_two_probability_channels_are_a_softmax(write_raster: Any) -> None:
    values = np.linspace(-3, 3, 128, dtype=np.float32).reshape(2, 8, 8)
    sink = _RowRecorder()
    _run(torch.nn.Identity(), write_raster(values), "probability", 2, sink)
    expected = torch.softmax(torch.from_numpy(values), dim=0).numpy()
    np.testing.assert_allclose(sink.rows[0], expected, rtol=1e-6)


def test_a_failing_last_write_is_raised(write_raster: Any) -> None:
    class Full:
        def write(self, rows: np.ndarray) -> None:
            raise OSError("disk full")

    with pytest.raises(OSError, match="^disk full$"):
        _run(
            torch.nn.Identity(),
            write_raster(np.ones((1, 8, 8), np.float32)),
            "regression",
            1,
            Full(),
        )


def test_nonfinite_model_outputs_are_reported_once(
    write_raster: Any, caplog: pytest.LogCaptureFixture
) -> None:
    class HalfNan(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = x.clone()
            y[..., :3, :] = float("nan")
            return y

    with caplog.at_level("WARNING", logger="geofm.geo.predict"):
        _run(
            HalfNan(), write_raster(np.ones((1, 8, 8), np.float32)), "regression", 1, _RowRecorder()
        )
    assert caplog.messages == [
        "predict_raster: the model gave NaN or infinite outputs for 24 valid pixels; they are "
        "written as nodata."
    ]
