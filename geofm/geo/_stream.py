"""The streaming pipeline behind :func:`geofm.geo.predict_raster` (private).

Reader thread -> model on the calling thread -> writer thread, one row band of
tiles at a time; see ``geofm/geo/predict.py`` for the design and references.
"""

from __future__ import annotations

import logging
import queue
import threading
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, closing, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import torch
from torch import nn

from geofm.geo._rio import GEOTIFF_BLOCK, PathLike, loaded_rasterio
from geofm.geo._window import PixelWindow, read_window

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Sequence

__all__ = [
    "CLASS_NODATA",
    "BlendMode",
    "OutputMode",
    "Plan",
    "Precision",
    "RowSink",
    "check_precision",
    "coverage",
    "forward_context",
    "gdal_cache_bytes",
    "run_bands",
    "window_1d",
]

logger = logging.getLogger("geofm.geo.predict")

BlendMode = Literal["cosine", "linear", "none"]
"""Weighting of overlapping tile outputs in :func:`geofm.geo.predict_raster`."""
OutputMode = Literal["class", "probability", "regression"]
"""What :func:`geofm.geo.predict_raster` writes."""
Precision = Literal["bf16", "fp16", "fp32"]
"""Forward-pass precision of :func:`geofm.geo.predict_raster` (``torch.autocast`` below fp32)."""

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_FLOAT32_MAX = float(np.finfo(np.float32).max)

CLASS_NODATA = 255
_PREFETCH_BATCHES = 2
_POLL_S = 0.1  # how often a waiting thread checks whether the other one stopped
# GDAL's block cache defaults to 5% of RAM and would end up holding most of the
# scene; the reader only needs the blocks of about one row band (see gdal_cache_bytes).
_GDAL_CACHE_MIN, _GDAL_CACHE_MAX = 8 * 2**20, 512 * 2**20


def window_1d(size: int, overlap: int, blend: BlendMode) -> np.ndarray:
    """Blending weights along one tile axis: 1 inside, ramps over ``overlap`` pixels at both ends.

    Ramp weights are strictly positive and, for tiles ``size - overlap`` apart,
    the two ramps sum to 1 (``sin^2 + cos^2`` for ``"cosine"``).
    """
    weights = np.ones(size, dtype=np.float64)
    if blend == "none" or overlap == 0:
        return weights
    t = (np.arange(overlap, dtype=np.float64) + 0.5) / overlap  # pixel centres in (0, 1)
    ramp = np.sin(0.5 * np.pi * t) ** 2 if blend == "cosine" else t
    weights[:overlap] = ramp
    weights[size - overlap :] = ramp[::-1]
    return weights


def check_precision(precision: str, device: torch.device) -> None:
    """Raise unless ``precision`` is known and ``torch.autocast`` supports it on ``device``.

    torch disables an unsupported autocast with only a warning; here that is an
    error, so a run never silently computes in another precision than asked.
    """
    if precision not in get_args(Precision):
        raise ValueError(
            f"Unknown precision {precision!r}. Expected one of: {', '.join(get_args(Precision))}."
        )
    if precision == "fp32":
        return
    if not torch.amp.is_autocast_available(device.type):
        raise ValueError(
            f"precision={precision!r} needs torch.autocast, which device type {device.type!r} "
            "does not support. Use precision='fp32'."
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with torch.autocast(device_type=device.type, dtype=_AUTOCAST_DTYPES[precision]):
                pass
        except RuntimeError as err:
            raise ValueError(
                f"precision={precision!r} is not supported on {str(device)!r}: {err} "
                "Use precision='fp32' (or 'bf16'/'fp16', whichever the device supports)."
            ) from err
    disabled = [str(w.message) for w in caught if "autocast" in str(w.message).lower()]
    if disabled:
        raise ValueError(
            f"precision={precision!r} is not supported on {str(device)!r} ({disabled[0]}). "
            "Use precision='fp32'."
        )


def forward_context(device: torch.device, precision: Precision) -> AbstractContextManager[Any]:
    """``torch.autocast`` to ``precision`` on ``device``'s type (nothing for ``"fp32"``)."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=_AUTOCAST_DTYPES[precision])


def _check_float32_range(
    strip: np.ndarray, path: PathLike, band_indices: Sequence[int], row_off: int
) -> None:
    """Raise if a (valid) value of a wider float ``strip`` would become inf in float32."""
    if strip.dtype.itemsize <= 4 or not np.issubdtype(strip.dtype, np.floating):
        return
    too_big = np.abs(strip) > _FLOAT32_MAX  # (C, tile, Wp); invalid pixels are 0 already
    if too_big.any():
        c, r, col = (int(i) for i in np.argwhere(too_big)[0])
        raise ValueError(
            f"Raster '{path}' band {band_indices[c]} holds {float(strip[c, r, col]):.4g} at "
            f"row {row_off + r}, column {col}, beyond the float32 range (+-3.4e38) in which "
            "predict_raster feeds the model: it would reach the model as inf. Rescale the "
            "raster (e.g. to other units) or mark such values as nodata."
        )


def _argmax0(values: np.ndarray) -> np.ndarray:
    """``values.argmax(axis=0)`` as uint8 (first maximum wins), faster for few channels."""
    best = values[0].copy()  # (n, W)
    index = np.zeros(best.shape, dtype=np.uint8)
    for k in range(1, len(values)):
        better = values[k] > best
        index[better] = k
        np.maximum(best, values[k], out=best)
    return index


def gdal_cache_bytes(dataset: Any, tile: int) -> int:
    """GDAL block cache for reading row bands: the band's rows plus one block row, +25%."""
    block_rows = dataset.block_shapes[0][0]
    itemsize = max(np.dtype(d).itemsize for d in dataset.dtypes)
    needed = (tile + block_rows) * dataset.width * dataset.count * itemsize * 5 // 4
    return int(min(max(needed, _GDAL_CACHE_MIN), _GDAL_CACHE_MAX))


def coverage(length: int, offsets: Sequence[int], weights: np.ndarray) -> np.ndarray:
    """Summed 1-D window weights of all tiles at ``offsets``, per pixel."""
    total = np.zeros(max(length, offsets[-1] + weights.size), dtype=np.float64)
    for start in offsets:
        total[start : start + weights.size] += weights
    return total


@dataclass(frozen=True)
class Plan:
    """Tile grid of one prediction: row bands of tiles, ``tile - overlap`` apart."""

    height: int
    width: int
    tile: int
    row_offsets: list[int]
    col_offsets: list[int]
    window: np.ndarray  # (tile,) 1-D blending weights
    gdal_cache_bytes: int

    @property
    def padded_width(self) -> int:
        return max(self.width, self.tile)

    def flush_stop(self, band: int) -> int:
        """First row still open after ``band``: earlier rows are final once it is accumulated."""
        if band + 1 < len(self.row_offsets):
            return self.row_offsets[band + 1]
        return self.height

    def first_touching(self, band: int) -> int:
        """First band whose tiles reach rows at or below ``row_offsets[band]`` (halo start)."""
        start = self.row_offsets[band]
        return next(k for k, oy in enumerate(self.row_offsets) if oy + self.tile > start)


@dataclass
class _Batch:
    band: int
    cols: list[int]  # column offsets of the tiles, in pixels
    data: np.ndarray  # (n, C, tile, tile), invalid pixels set to 0


@dataclass
class _BandEnd:
    band: int
    valid: np.ndarray  # (tile, padded_width) bool: all selected source bands valid


def _read_bands(
    path: PathLike,
    band_indices: Sequence[int],
    plan: Plan,
    bands: range,
    batch_size: int,
    sink: queue.Queue[Any],
    stop: threading.Event,
) -> None:
    """Reader thread: queue ``_Batch``/``_BandEnd`` items for ``bands``, then ``None``/an error."""

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                sink.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    try:
        rasterio = loaded_rasterio()
        cache = plan.gdal_cache_bytes
        with rasterio.Env(GDAL_CACHEMAX=cache), rasterio.open(path) as src:
            for band in bands:
                window = PixelWindow(plan.row_offsets[band], 0, plan.tile, plan.padded_width)
                strip, mask = read_window(src, window, band_indices)  # (C, tile, Wp) each
                valid = np.asarray(mask.all(axis=0))  # (tile, Wp)
                strip[:, ~valid] = 0
                _check_float32_range(strip, path, band_indices, plan.row_offsets[band])
                keep = [ox for ox in plan.col_offsets if valid[:, ox : ox + plan.tile].any()]
                for i in range(0, len(keep), batch_size):
                    cols = keep[i : i + batch_size]
                    # Cast here, off the forward's thread: numpy's cast is also far
                    # cheaper than torch's uint8 -> float32 on CPU.
                    data = np.empty(
                        (len(cols), len(band_indices), plan.tile, plan.tile), np.float32
                    )
                    for k, ox in enumerate(cols):
                        data[k] = strip[:, :, ox : ox + plan.tile]  # (C, T, T)
                    if not put(_Batch(band, cols, data)):
                        return
                if not put(_BandEnd(band, valid)):
                    return
        put(None)
    except BaseException as err:  # handed to the consumer, which re-raises it
        put(err)


def _iterate(
    path: PathLike, band_indices: Sequence[int], plan: Plan, bands: range, batch_size: int
) -> Generator[_Batch | _BandEnd, None, None]:
    """Yield the reader thread's items; stop and join it however the consumer exits.

    A reader that ends without its final ``None`` or an error (a bug, not a
    failed read: those are handed over) raises ``RuntimeError`` here instead
    of leaving the consumer waiting forever.
    """
    items: queue.Queue[Any] = queue.Queue(maxsize=_PREFETCH_BATCHES)
    stop = threading.Event()
    reader = threading.Thread(
        target=_read_bands,
        args=(path, band_indices, plan, bands, batch_size, items, stop),
        name="geofm-predict-reader",
        daemon=True,
    )
    reader.start()
    try:
        while True:
            try:
                item = items.get(timeout=_POLL_S)
            except queue.Empty:
                if reader.is_alive():
                    continue
                try:  # its last item may have come in just before it ended
                    item = items.get_nowait()
                except queue.Empty:
                    raise RuntimeError(
                        "predict_raster's reader thread ended without finishing its row bands "
                        "or reporting an error."
                    ) from None
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()  # the reader stops within _POLL_S of its current read
        reader.join()


class RowSink:
    """Write row strips in order, buffered to whole GeoTIFF block rows."""

    def __init__(self, dataset: Any) -> None:
        self._dataset = dataset
        self._pending: list[np.ndarray] = []
        self._row = 0

    def write(self, rows: np.ndarray) -> None:
        """Append ``rows`` of shape ``(bands, n, width)`` below the rows written so far."""
        self._pending.append(rows)
        buffered = sum(p.shape[1] for p in self._pending)
        if buffered >= GEOTIFF_BLOCK:
            self._flush((buffered // GEOTIFF_BLOCK) * GEOTIFF_BLOCK)

    def close(self) -> None:
        """Write whatever is still buffered."""
        buffered = sum(p.shape[1] for p in self._pending)
        if buffered:
            self._flush(buffered)

    def _flush(self, n: int) -> None:
        rasterio = loaded_rasterio()
        block = np.concatenate(self._pending, axis=1)  # (bands, buffered, width)
        window = rasterio.windows.Window(0, self._row, block.shape[2], n)
        self._dataset.write(block[:, :n], window=window)
        self._row += n
        self._pending = [block[:, n:]] if block.shape[1] > n else []


class _Accumulator:
    """Weighted sums of tile outputs for the rows of one row band, double-buffered.

    While the writer thread turns band ``j``'s finished rows into output, band
    ``j + 1`` accumulates into the other buffer (its overlap rows copied over).
    Sums are ``float64`` for probability/regression outputs, so that an identity
    model round-trips ``float32`` values exactly, and ``float32`` for class
    outputs, where only the argmax matters.
    """

    def __init__(self, plan: Plan, channels: int, output: OutputMode) -> None:
        self._plan = plan
        self._output = output
        dtype = np.float32 if output == "class" else np.float64
        shape = (channels, plan.tile, plan.padded_width)
        self._buffers = (np.zeros(shape, dtype=dtype), np.zeros(shape, dtype=dtype))
        self._current = 0
        self._window2d = np.outer(plan.window, plan.window).astype(dtype)  # (T, T)
        self._weighted = np.empty((channels, plan.tile, plan.tile), dtype=dtype)
        self._row_cover = coverage(plan.height, plan.row_offsets, plan.window)
        self._col_cover = coverage(plan.width, plan.col_offsets, plan.window)
        self._top = plan.row_offsets[0]
        self.nonfinite_pixels = 0  # output pixels made nodata because the model gave NaN/inf

    def start_band(self, band: int) -> None:
        """Switch buffers to ``band``'s first row, carrying the overlap rows over.

        The caller guarantees no pending write still reads the other buffer.
        """
        shift = self._plan.row_offsets[band] - self._top
        if shift > 0:
            old, new = self._buffers[self._current], self._buffers[1 - self._current]
            new[:] = 0.0
            if shift < self._plan.tile:
                new[:, : self._plan.tile - shift] = old[:, shift:]
            self._current = 1 - self._current
        self._top = self._plan.row_offsets[band]

    def add(self, outputs: np.ndarray, cols: Sequence[int]) -> None:
        """Add tile outputs ``(n, K, T, T)`` whose tiles start at columns ``cols``."""
        tile = self._plan.tile
        sums = self._buffers[self._current]
        for out, ox in zip(outputs, cols, strict=True):
            np.multiply(out, self._window2d, out=self._weighted)  # (K, T, T)
            sums[:, :, ox : ox + tile] += self._weighted

    def finished_rows(self, stop: int, valid: np.ndarray) -> Callable[[], np.ndarray]:
        """Return a job computing the final rows ``[top, stop)`` from the current buffer.

        The job gives ``(1, n, width)`` uint8 class ids or ``(K, n, width)``
        float32 values, nodata where ``valid`` is false and where the model's
        outputs were NaN or infinite (class: any channel; values: per value, also
        where a finite sum overflows float32); it may run in another thread
        while the next band accumulates into the other buffer.
        """
        n, width, top = stop - self._top, self._plan.width, self._top
        sums = self._buffers[self._current][:, :n, :width]  # (K, n, W)
        ok = valid[:n, :width]
        output = self._output
        cover_rows, cover_cols = self._row_cover[top:stop], self._col_cover[:width]

        def job() -> np.ndarray:
            if output == "class":
                # Dividing by the positive cover changes no sign and no argmax.
                classes = (sums[0] >= 0).astype(np.uint8) if len(sums) == 1 else _argmax0(sums)
                finite = np.isfinite(sums).all(axis=0)  # (n, W): NaN/inf has no argmax
                self.nonfinite_pixels += int(np.count_nonzero(ok & ~finite))
                classes[~(ok & finite)] = CLASS_NODATA
                return classes[None]  # (1, n, W)
            with np.errstate(over="ignore", invalid="ignore"):
                values = (sums / np.outer(cover_rows, cover_cols)).astype(np.float32)
            finite = np.isfinite(values)  # (K, n, W)
            self.nonfinite_pixels += int(np.count_nonzero(ok & ~finite.all(axis=0)))
            values[~finite] = np.nan
            values[:, ~ok] = np.nan
            return values

        return job


def _write_rows(sink: RowSink, job: Callable[[], np.ndarray]) -> None:
    sink.write(job())


def run_bands(
    model: nn.Module,
    src: PathLike,
    band_indices: Sequence[int],
    plan: Plan,
    bands: range,
    flush_from: int,
    batch_size: int,
    device: torch.device,
    output: OutputMode,
    channels: int,
    sink: RowSink,
    progress: Any,
    precision: Precision = "fp32",
    channels_last: bool = False,
) -> None:
    """Predict ``bands`` and write the rows of bands ``>= flush_from`` to ``sink``.

    Three stages overlap: the reader thread reads and batches, this thread runs
    the model and accumulates, a writer thread finishes rows and writes them.
    The forward pass runs under :func:`forward_context` (``precision``), on
    ``channels_last`` input if asked; outputs are cast to float32 before the
    blending, which stays float32/float64.
    """
    acc = _Accumulator(plan, channels, output)
    current = -1
    pending: Future[None] | None = None
    items = _iterate(src, band_indices, plan, bands, batch_size)
    with (
        closing(items),  # stops the reader thread at once if the model raises
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="geofm-predict-writer") as writer,
    ):
        for item in items:
            if item.band != current:
                acc.start_band(item.band)
                current = item.band
            if isinstance(item, _BandEnd):
                if item.band >= flush_from:
                    if pending is not None:
                        pending.result()  # frees the other buffer; re-raises write errors
                    job = acc.finished_rows(plan.flush_stop(item.band), item.valid)
                    pending = writer.submit(_write_rows, sink, job)
                if progress is not None:
                    progress.update(len(plan.col_offsets))
                continue
            x = torch.from_numpy(item.data).to(device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.inference_mode():
                with forward_context(device, precision):
                    y = model(x)
                y = y.float()  # softmax, blending and accumulation stay in float32 or wider
                if output == "probability":
                    y = y.sigmoid() if channels == 1 else y.softmax(dim=1)
            acc.add(y.cpu().numpy(), item.cols)
        if pending is not None:
            pending.result()
    if acc.nonfinite_pixels:
        logger.warning(
            "predict_raster: the model gave NaN or infinite outputs for %d valid pixels; "
            "they are written as nodata.",
            acc.nonfinite_pixels,
        )
