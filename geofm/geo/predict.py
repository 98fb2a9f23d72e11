"""Whole-scene sliding-window prediction, streamed to a georeferenced GeoTIFF.

Fills the gap users of the anchor libraries report most: torchgeo has no
stitching or georeferenced writer (microsoft/torchgeo issue #30) and
terratorch's tiled inference holds the whole scene in memory (IBM/terratorch
issues #119, #1199). Here a scene of any size flows through three stages, one
row band of tiles at a time:

1. a reader thread reads the band's rows (windowed, GDAL block cache capped),
   casts them to ``float32`` and forms batches, skipping tiles with no valid
   pixel;
2. the calling thread runs the model on each batch; outputs are weighted by a
   smooth window (a Tukey / tapered-cosine window, Harris 1978, "On the use of
   windows for harmonic analysis with the DFT", Proc. IEEE 66(1)) and summed
   into an accumulator one band high (``float64``, ``float32`` for classes);
3. a writer thread normalises the rows no later tile can touch by the summed
   weights, marks nodata where the source is invalid, and writes them to a
   tiled, compressed GeoTIFF in a temporary file beside ``dst``, renamed over
   ``dst`` at the end.

The accumulator is double-buffered (the next band accumulates while the
writer finishes the last), so memory is two bands of tiles: it does not grow
with the scene's height, and only linearly with its width.

Under ``torchrun`` (``torch.distributed`` initialised) the row bands are split
into contiguous ranges, one per rank. A rank also runs the bands just above
its range that overlap it (a halo), so every output pixel sums exactly the
same tile outputs in the same order as in one process, with batches that never
span two bands: the result is bit-identical. Rank 0 writes its rows straight
into the temporary output; the other ranks write theirs to part files beside
it, which rank 0 appends after all ranks finished, then renames. The
destination folder must be visible to every rank (a shared file system for
multi-node runs). A failure on any rank makes every rank raise and leaves no
output.
"""

from __future__ import annotations

import colorsys
import logging
import warnings
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Literal, TypedDict, get_args

import numpy as np
import torch
from torch import nn

from geofm import _dist
from geofm._atomic import check_output, commit, create_temp, remove_path
from geofm.errors import ShapeError
from geofm.geo._progress import progress_bar
from geofm.geo._rio import (
    GEOTIFF_BLOCK,
    TILED_GTIFF,
    PathLike,
    has_geotransform,
    import_rasterio,
    loaded_rasterio,
    require_georeferencing,
    window_transform,
)
from geofm.geo._stream import (
    CLASS_NODATA,
    BlendMode,
    OutputMode,
    Plan,
    Precision,
    RowSink,
    check_precision,
    forward_context,
    gdal_cache_bytes,
    run_bands,
    window_1d,
)
from geofm.geo._window import tile_offsets
from geofm.geo.inputs import PreparedModel, choose_bands, choose_tile, model_input_spec
from geofm.input_spec import InputSpec

__all__ = ["BlendMode", "OutputMode", "PredictOptions", "Precision", "predict_raster"]

logger = logging.getLogger(__name__)


def _rank_range(n: int, rank: int, world: int) -> tuple[int, int]:
    """``(start, stop)`` of ``rank``'s share of ``range(n)`` cut into ``world`` near-equal parts.

    The parts are contiguous and, over all ranks in rank order, cover ``range(n)`` once.
    """
    return round(rank * n / world), round((rank + 1) * n / world)


def _palette(n: int) -> dict[int, tuple[int, int, int]]:
    """Distinct RGB colours for classes ``0..n-1`` (golden-ratio hue steps), nodata black.

    A GeoTIFF colour table holds no alpha: GDAL reads every entry back with
    alpha 255 except the nodata value's, which it makes transparent itself.
    ``colorsys.hsv_to_rgb`` wraps hues past 1, so the hue is not reduced here.
    """
    colours: dict[int, tuple[int, int, int]] = {}
    for k in range(n):
        r, g, b = colorsys.hsv_to_rgb(k * 0.618033988749895, 0.65, 0.95)
        colours[k] = (round(r * 255), round(g * 255), round(b * 255))
    colours[CLASS_NODATA] = (0, 0, 0)
    return colours


def _is_int(value: object) -> bool:
    """Python or NumPy integer, ``bool`` excluded."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_colormap(colormap: Mapping[int, tuple[int, int, int]]) -> None:
    """Raise ``ValueError`` unless every entry maps a class id to three 0..255 integers."""
    for key, rgb in colormap.items():
        values: tuple[object, ...] = tuple(rgb) if isinstance(rgb, (tuple, list)) else ()
        if not (
            _is_int(key)
            and 0 <= key < CLASS_NODATA
            and len(values) == 3
            and all(_is_int(v) and 0 <= v <= 255 for v in values)  # type: ignore[operator]
        ):
            raise ValueError(
                f"colormap must map class ids 0..{CLASS_NODATA - 1} to (r, g, b) integers in "
                f"0..255, got {key!r}: {rgb!r}."
            )


def _resolve_device(model: nn.Module, device: str | torch.device | None) -> torch.device:
    param = next(model.parameters(), None)
    model_device = torch.device("cpu") if param is None else param.device
    if device is None:
        return model_device
    wanted = torch.device(device)
    same_type = wanted.type == model_device.type
    same_index = wanted.index is None or model_device.index is None
    if param is not None and not (same_type and (same_index or wanted == model_device)):
        raise ValueError(
            f"predict_raster got device={str(wanted)!r} but the model's parameters are on "
            f"{str(model_device)!r}. Move the model first: model.to({str(wanted)!r})."
        )
    return wanted


def _probe_channels(
    model: nn.Module,
    in_channels: int,
    tile: int,
    device: torch.device,
    output: OutputMode,
    precision: Precision,
) -> int:
    """Run one zero tile to learn (and check) the model's output channels."""
    with torch.inference_mode(), forward_context(device, precision):
        y = model(torch.zeros(1, in_channels, tile, tile, device=device))
    if not isinstance(y, torch.Tensor) or y.ndim != 4 or tuple(y.shape[-2:]) != (tile, tile):
        got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ShapeError(
            f"predict_raster needs a model mapping (N, {in_channels}, {tile}, {tile}) to "
            f"(N, K, {tile}, {tile}) tensors, got {got}. Wrap the model so it returns "
            "full-resolution logits (e.g. upsample, or pick the tensor from a dict)."
        )
    channels = int(y.shape[1])
    if output == "class" and channels > CLASS_NODATA:
        raise ShapeError(
            f"output='class' writes uint8 ids with {CLASS_NODATA} as nodata, so at most "
            f"{CLASS_NODATA} classes fit; the model gives {channels}. Use output='probability'."
        )
    return channels


def _open_output(
    path: Path, profile: dict[str, Any], output: OutputMode, channels: int, colormap: Any
) -> Any:
    rasterio = loaded_rasterio()
    with warnings.catch_warnings():
        # An ungeoreferenced output (allow_ungeoreferenced=True) is asked for, not an accident.
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        dataset = rasterio.open(path, "w", **profile)
    if output == "class":
        dataset.set_band_description(1, "class")
        dataset.write_colormap(1, colormap)
    else:
        for k in range(channels):
            dataset.set_band_description(k + 1, f"{output}_{k}")
    return dataset


class PredictOptions(TypedDict, total=False):
    """Keyword arguments of :func:`predict_raster` that choose how a scene is predicted.

    What :func:`~geofm.geo.predict_rasters` passes on to every scene (and
    records in its resume markers); see :func:`predict_raster` for each
    argument's meaning and default.

    Example:
        >>> options: PredictOptions = {"tile": 64, "output": "probability"}
        >>> sorted(options)
        ['output', 'tile']
    """

    tile: int | None
    overlap: int
    batch_size: int
    blend: BlendMode
    output: OutputMode
    device: str | torch.device | None
    bands: Sequence[int | str] | None
    input_spec: InputSpec | Literal["model"] | None
    colormap: Mapping[int, tuple[int, int, int]] | None
    precision: Precision
    channels_last: bool
    allow_ungeoreferenced: bool


def predict_raster(
    model: nn.Module,
    src: PathLike,
    dst: PathLike,
    *,
    tile: int | None = None,
    overlap: int = 32,
    batch_size: int = 8,
    blend: BlendMode = "cosine",
    output: OutputMode = "class",
    device: str | torch.device | None = None,
    bands: Sequence[int | str] | None = None,
    input_spec: InputSpec | Literal["model"] | None = "model",
    colormap: Mapping[int, tuple[int, int, int]] | None = None,
    progress: bool = False,
    overwrite: bool = False,
    shard_across_ranks: bool = True,
    precision: Precision = "fp32",
    channels_last: bool = False,
    allow_ungeoreferenced: bool = False,
) -> Path:
    """Predict a whole raster tile by tile and write a georeferenced GeoTIFF.

    Tiles of ``tile`` pixels, ``tile - overlap`` apart, cover the scene; the
    last tile of each axis is shifted back to end at the edge, and a scene
    smaller than a tile is zero-padded (padding is cropped from the output).
    The model sees the source values as ``float32`` (normalise inside the
    model, e.g. ``nn.Sequential(normalize, net)``), with invalid pixels set to 0;
    NaN and infinite source values are invalid, and a wider float source whose
    values overflow ``float32`` is an error rather than ``inf`` fed to the model.
    Outputs of overlapping tiles are blended with weights that ramp smoothly
    over the overlap (``"cosine"``: ``sin^2``, ``"linear"``: a triangle
    ramp, ``"none"``: plain mean), so there are no seams, and an identity
    model reproduces the input exactly.

    The output GeoTIFF has the source's CRS and transform (rotation included),
    256 x 256 tiles and deflate compression:

    - ``output="class"``: one ``uint8`` band with the argmax of the blended
      logits (``logit >= 0`` for a one-channel model) and a colour table;
      nodata ``255``.
    - ``output="probability"``: ``K`` ``float32`` bands of blended softmax
      (sigmoid for ``K == 1``) probabilities; nodata NaN.
    - ``output="regression"``: ``K`` ``float32`` bands of blended raw outputs; nodata NaN.

    A pixel is nodata in the output when any selected source band is invalid
    there, or where the model's outputs are NaN or infinite (never class 0;
    a warning is logged); tiles with no valid pixel are not run.

    Writing is atomic (see ``geofm/_atomic.py``): the file is written to a
    temporary ``.<name>.<host>.<pid>.<token>.geofm-partial`` in ``dst``'s
    folder, flushed, and renamed to ``dst`` only on success, so a crash or a
    kill never leaves a partial ``dst`` (the next run removes such leftovers of
    dead processes). Without ``overwrite``, a ``dst`` created by another writer
    during the run is kept and this run fails. ``dst`` may never be ``src``
    (also through ``..``, a symbolic or a hard link). Memory is bounded by two row
    bands of tiles (one accumulating, one being written), not by the scene.
    Under ``torch.distributed`` the work is sharded across ranks with a
    bit-identical result (see the module docstring); call it on every rank
    with the same arguments.

    Args:
        model: Module in eval mode mapping ``(N, C, tile, tile)`` to
            ``(N, K, tile, tile)`` (logits for class/probability outputs).
        src: Georeferenced source raster.
        dst: Output GeoTIFF path; its folder must exist.
        tile: Tile edge in pixels; default 256 rounded down to a multiple of
            the model's ``input_spec.multiple`` (252 for DINOv2's patch 14). A
            given tile must be such a multiple.
        overlap: Pixels shared by neighbouring tiles, ``0 <= overlap <= tile // 2``.
        batch_size: Tiles per forward pass (batches never span two row bands).
        blend: Weighting of overlapping outputs, see above.
        output: What to write, see above.
        device: Device for the forward pass; defaults to the model's. Must
            match the model's parameters.
        bands: Source bands fed to the model, in order: 1-based indices, or
            names found in the raster's band descriptions (sensor aliases such
            as ``B4``/``B04``/``red`` match). ``None``: the spec's bands by name
            when the raster describes them, else all bands when their count is
            the model's (a logged assumption), else an error.
        input_spec: How to turn stored values into model input: ``"model"``
            (default) uses ``model.input_spec`` when the model has one (value
            scaling, then per-band standardisation, see :class:`~geofm.InputSpec`);
            an :class:`~geofm.InputSpec` overrides it; ``None`` feeds the
            stored values as float32 (normalise inside the model then).
        colormap: RGB colour (three integers in 0..255) per class id
            (0..254) for ``output="class"``; default: the model's
            ``output_spec.colors`` when it has them, else a fixed palette.
            Classes a given ``colormap`` leaves out take the fixed palette.
        progress: Show a tqdm progress bar (rank 0 only) if tqdm is installed.
        overwrite: Replace ``dst`` if it exists.
        shard_across_ranks: When ``torch.distributed`` is initialised, split the
            work across its ranks (all ranks must call with the same arguments).
            ``False`` makes each rank predict the whole raster on its own, e.g.
            one scene per rank.
        precision: ``"fp32"``, or ``"bf16"``/``"fp16"`` to run the forward pass
            under ``torch.autocast`` on the device's type; outputs are cast to
            float32 before softmax, blending and accumulation.
        channels_last: Feed tiles in ``torch.channels_last`` memory format (faster
            convolutions on many devices; the model itself is not modified, for
            the full effect call ``model.to(memory_format=torch.channels_last)``).
        allow_ungeoreferenced: Accept a source without a CRS or without a
            geotransform (e.g. a plain image); the output then has no CRS and no
            geotransform either. By default such a source is refused.

    Returns:
        ``dst`` as a :class:`~pathlib.Path`.

    Shape:
        - Model input: ``(N, C, tile, tile)`` float32, ``C = len(bands)``.
        - Model output: ``(N, K, tile, tile)``.
        - Written raster: ``(1, H, W)`` uint8 (class) or ``(K, H, W)`` float32.

    Raises:
        MissingDependencyError: If rasterio is not installed.
        ValueError: If ``src`` has no CRS or no geotransform (unless
            ``allow_ungeoreferenced``), complex pixels or values beyond float32,
            ``dst`` is ``src``, an argument (``colormap`` included) is out of
            range or unknown, the model
            is in training mode, ``device`` differs from the model's, or
            ``precision`` is not supported on the device.
        ShapeError: If a band index is out of range or the model's output is
            not ``(N, K, tile, tile)`` (or ``K > 255`` for ``output="class"``).
        FileExistsError: If ``dst`` exists and ``overwrite`` is false, also when
            another writer creates it while this run is writing.

    Example:
        >>> import tempfile, pathlib, rasterio
        >>> from geofm.data import sample_raster  # 224 x 224, 3 bands, with nodata
        >>> dst = pathlib.Path(tempfile.mkdtemp()) / "out.tif"
        >>> out = predict_raster(nn.Identity().eval(), sample_raster(), dst,
        ...                      tile=64, overlap=16, output="regression")
        >>> with rasterio.open(sample_raster()) as a, rasterio.open(out) as b:
        ...     x, y = a.read(masked=True), b.read(masked=True)  # valid pixels only
        ...     bool((x == y).all()), a.transform == b.transform
        (True, True)
    """
    rasterio = import_rasterio("predict_raster")
    spec = model_input_spec(model) if isinstance(input_spec, str) else input_spec
    if isinstance(input_spec, str) and input_spec != "model":
        raise ValueError(f"input_spec must be 'model', an InputSpec or None, got {input_spec!r}.")
    tile = choose_tile(spec, tile)
    if tile < 1 or batch_size < 1:
        raise ValueError(
            f"tile and batch_size must be >= 1, got tile={tile}, batch_size={batch_size}."
        )
    if not 0 <= overlap <= tile // 2:
        raise ValueError(
            f"overlap must be in [0, tile // 2] = [0, {tile // 2}], got {overlap}. "
            "Use a smaller overlap or a larger tile."
        )
    if blend not in get_args(BlendMode):
        raise ValueError(
            f"Unknown blend {blend!r}. Expected one of: {', '.join(get_args(BlendMode))}."
        )
    if output not in get_args(OutputMode):
        raise ValueError(
            f"Unknown output {output!r}. Expected one of: {', '.join(get_args(OutputMode))}."
        )
    if colormap is not None:
        _check_colormap(colormap)
    if model.training:
        raise ValueError(
            "predict_raster got a model in training mode (dropout and batch norm would "
            "use batch statistics). Call model.eval() first."
        )
    if not isinstance(channels_last, bool):
        raise TypeError(f"channels_last must be a bool, got {type(channels_last).__name__}.")
    dst_path = check_output(dst, inputs=[src], overwrite=overwrite, caller="predict_raster")
    run_device = _resolve_device(model, device)
    check_precision(precision, run_device)
    with rasterio.open(src) as dataset:
        georeferenced = dataset.crs is not None and has_geotransform(dataset)
        if not allow_ungeoreferenced:
            require_georeferencing(
                dataset,
                src,
                "predict_raster",
                hint=" To predict an ungeoreferenced image anyway (the output then has no CRS), "
                "pass allow_ungeoreferenced=True.",
            )
        band_indices = choose_bands(spec, list(dataset.descriptions), bands, src)
        dtypes = {dataset.dtypes[i - 1] for i in band_indices}
        if any(np.issubdtype(np.dtype(d), np.complexfloating) for d in dtypes):
            raise ValueError(
                f"Raster '{src}' has complex pixels ({', '.join(sorted(dtypes))}), which a "
                "model cannot take as is. Convert it first (e.g. to amplitude, or to real "
                "and imaginary bands)."
            )
        height, width = dataset.height, dataset.width
        crs, transform = dataset.crs, dataset.transform
        cache_bytes = gdal_cache_bytes(dataset, tile)
    stride = tile - overlap
    plan = Plan(
        height=height,
        width=width,
        tile=tile,
        row_offsets=tile_offsets(height, tile, stride, "shift"),
        col_offsets=tile_offsets(width, tile, stride, "shift"),
        window=window_1d(tile, overlap, blend),
        gdal_cache_bytes=cache_bytes,
    )
    output_spec = getattr(model, "output_spec", None)
    if colormap is None and output_spec is not None and output_spec.colors is not None:
        colormap = dict(enumerate(output_spec.colors))
    if spec is not None:
        model = PreparedModel(model, spec)
    channels = _probe_channels(model, len(band_indices), tile, run_device, output, precision)
    profile: dict[str, Any] = {
        **TILED_GTIFF,
        "width": width,
        "count": 1 if output == "class" else channels,
        "dtype": "uint8" if output == "class" else "float32",
        "nodata": CLASS_NODATA if output == "class" else float("nan"),
        "crs": crs if georeferenced else None,
        "zlevel": 1,  # 20-40x faster than the default level 6 on noisy maps
    }
    palette = _palette(channels if channels > 1 else 2)
    if colormap is not None:
        palette.update(colormap)

    rank, world = (_dist.rank(), _dist.world_size()) if shard_across_ranks else (0, 1)
    n_bands = len(plan.row_offsets)
    start, stop = _rank_range(n_bands, rank, world)
    first_row = plan.row_offsets[start] if start < n_bands else height
    last_row = plan.flush_stop(stop - 1) if stop > start else first_row

    # Rank 0 names the temp file (mode 0o666 less the umask, recognisable name).
    name = str(create_temp(dst_path)) if rank == 0 else ""
    final_tmp = Path(_dist.broadcast_object(name) if world > 1 else name)
    part = final_tmp if rank == 0 else final_tmp.with_name(f"{final_tmp.name}.rank{rank}")

    stack = ExitStack()
    sink: RowSink | None = None
    error: BaseException | None = None
    try:  # phase 1: every rank predicts its row bands into its own file
        if rank == 0 or last_row > first_row:
            part_profile = {
                **profile,
                "height": height if rank == 0 else last_row - first_row,
                "transform": window_transform(transform, 0 if rank == 0 else first_row, 0),
            }
            if rank == 0 and not georeferenced:
                del part_profile["transform"]  # no geotransform at all, not the identity
            opened = _open_output(part, part_profile, output, channels, palette)
            sink = RowSink(stack.enter_context(opened))
        bar = (
            _progress_bar((stop - start) * len(plan.col_offsets))
            if progress and rank == 0
            else None
        )
        if bar is not None:
            stack.callback(bar.close)
        if sink is not None and stop > start:
            run_bands(
                model,
                src,
                band_indices,
                plan,
                range(plan.first_touching(start), stop),
                start,
                batch_size,
                run_device,
                output,
                channels,
                sink,
                bar,
                precision=precision,
                channels_last=channels_last,
            )
        if rank != 0 and sink is not None:
            sink.close()
    except BaseException as err:  # every rank must reach the collective below
        error = err
    if rank != 0 or error is not None:
        stack.close()  # part files are complete (or abandoned) before rank 0 touches them
    all_ok = _dist.all_ranks_ok(error is None) if world > 1 else error is None
    if all_ok and rank == 0:
        try:  # phase 2: rank 0 appends the other ranks' rows, then renames
            assert sink is not None  # rank 0 always opens the output
            for other in range(1, world):
                _append_part(final_tmp, other, sink)
            sink.close()
            stack.close()
            commit(final_tmp, dst_path, overwrite=overwrite, caller="predict_raster")
        except BaseException as err:
            error = err
    stack.close()
    if world > 1 and all_ok:
        all_ok = _dist.all_ranks_ok(error is None)
    if rank == 0:
        remove_path(final_tmp)
        for other in range(1, world):
            remove_path(final_tmp.with_name(f"{final_tmp.name}.rank{other}"))
    _dist.raise_rank_failure(error, all_ok, caller="predict_raster", hint="")
    return dst_path


def _append_part(final_tmp: Path, rank: int, sink: Any) -> None:
    """Rank 0: copy rank ``rank``'s part file, block row by block row, into ``sink``."""
    rasterio = loaded_rasterio()
    part = final_tmp.with_name(f"{final_tmp.name}.rank{rank}")
    if not part.exists():
        return  # that rank had no rows
    with rasterio.open(part) as dataset:
        for row in range(0, dataset.height, GEOTIFF_BLOCK):
            n = min(GEOTIFF_BLOCK, dataset.height - row)
            sink.write(dataset.read(window=rasterio.windows.Window(0, row, dataset.width, n)))


def _progress_bar(total: int) -> Any:
    return progress_bar(total, unit="tile", desc="predict_raster", caller="predict_raster")
