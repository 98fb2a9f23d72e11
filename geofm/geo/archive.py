"""Predict an archive of scenes: many rasters, many ranks, resumable.

:func:`predict_rasters` runs :func:`geofm.geo.predict_raster` over many scenes
into one folder. Under ``torchrun`` (``torch.distributed`` initialised) the
scenes are shared out between the ranks, each rank predicting whole scenes on
its own (``shard_across_ranks=False``), balanced by pixel count (largest first,
each to the least loaded rank). A scene larger than an even share of the work
is instead predicted by all ranks together, tile rows sharded as
:func:`~geofm.geo.predict_raster` does for one scene. Either way every output is
byte-identical to a one-process run.

**Resume.** Outputs are written atomically, so an existing output is complete.
Beside each output ``<name>.tif`` a small marker ``<name>.tif.geofm.json``
records a fingerprint of the model (class, every parameter and buffer) and of
the arguments that change the pixels, the source's identity (path, size,
modification time) and the output's identity once it is written. A rerun
predicts only the scenes without a matching complete output:

- no output: predicted;
- an output whose marker matches (same model, same arguments, same source,
  and the output is the file the marker recorded): skipped;
- an output whose marker names another model, other arguments or a changed
  source, an output without a marker, or one modified since it was written:
  an error before any work (pass ``overwrite=True`` to predict those again),
  never a silent skip.

The marker is written (as "pending") before a scene starts and completed after
its output is in place, so a run killed at any moment resumes correctly: a
pending marker whose output has appeared since is completed, one whose output is
still the file it was replacing is predicted again. ``device`` and ``progress``
are not part of the fingerprint.
"""

from __future__ import annotations

import glob
import hashlib
import heapq
import inspect
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from geofm import _dist
from geofm._atomic import atomic_output, same_file
from geofm._version import __version__
from geofm.geo._progress import progress_bar
from geofm.geo._rio import PathLike, import_rasterio
from geofm.geo.predict import PredictOptions, predict_raster
from geofm.input_spec import InputSpec

if TYPE_CHECKING:  # Python 3.10's typing has no Unpack
    from typing_extensions import Unpack

__all__ = ["MARKER_SUFFIX", "predict_rasters"]

logger = logging.getLogger(__name__)

#: Suffix of the marker written beside each output (``<output>.geofm.json``).
MARKER_SUFFIX = ".geofm.json"
_FORMAT = "geofm.predict_rasters/1"


def _expand(sources: PathLike | Sequence[PathLike]) -> list[Path]:
    """Source paths: a glob pattern (sorted matches), one path, or a sequence of paths."""
    if isinstance(sources, str) and glob.has_magic(sources):
        found = sorted(glob.glob(os.path.expanduser(sources), recursive=True))
        paths = [Path(p) for p in found if Path(p).is_file()]
        if not paths:
            raise FileNotFoundError(f"predict_rasters: the pattern {sources!r} matches no file.")
        return paths
    items = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    if not items:
        raise ValueError("predict_rasters got no sources; pass paths or a glob pattern.")
    paths = [Path(os.fspath(p)).expanduser() for p in items]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"predict_rasters: {len(missing)} source(s) do not exist: {', '.join(missing[:5])}."
        )
    return paths


def _identity(path: Path) -> list[int] | None:
    """``[inode, size, mtime_ns]`` of a file, or ``None`` when it does not exist."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return [st.st_ino, st.st_size, st.st_mtime_ns]


def _model_digest(model: nn.Module) -> str:
    """SHA-256 of the model's class and parameters and buffers (names, dtypes, shapes, bytes)."""
    digest = hashlib.sha256(f"{type(model).__module__}.{type(model).__qualname__}".encode())
    for name, value in sorted(model.state_dict().items()):
        if not isinstance(value, torch.Tensor):
            digest.update(f"{name}={value!r}".encode())
            continue
        tensor = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{tensor.dtype}:{tuple(value.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _marker_path(output: Path) -> Path:
    return output.with_name(output.name + MARKER_SUFFIX)


def _read_marker(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == _FORMAT else None


def _write_marker(path: Path, data: Mapping[str, Any]) -> None:
    with atomic_output(path, overwrite=True, caller="predict_rasters") as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")


def _assign(sizes: Sequence[int], world: int) -> list[int]:
    """Rank of each scene: largest first, each to the least loaded rank (ties: lowest rank)."""
    load = [(0, r) for r in range(world)]
    owner = [0] * len(sizes)
    for k in sorted(range(len(sizes)), key=lambda k: (-sizes[k], k)):
        total, rank = heapq.heappop(load)
        owner[k] = rank
        heapq.heappush(load, (total + sizes[k], rank))
    return owner


def _status(
    src: Path, dst: Path, fingerprint: str, overwrite: bool
) -> tuple[Literal["todo", "done", "finish"], str]:
    """What to do with one scene, and why (``finish``: done, marker to complete)."""
    output = _identity(dst)
    if overwrite or output is None:
        return "todo", ""
    marker = _read_marker(_marker_path(dst))
    if marker is None:
        return "todo", "exists without a predict_rasters marker"
    if marker["fingerprint"] != fingerprint:
        return "todo", "was predicted with another model or other arguments"
    if marker["source"] != _source_record(src):
        return "todo", f"was predicted from another version of {src.name} (size or time changed)"
    if marker["output"] == output:
        return "done", ""
    if marker["output"] is None:
        if output == marker["replaces"]:
            return "todo", ""  # a killed overwrite: the old output is still there, redo it
        return "finish", ""  # killed after the output's rename, before the marker's update
    return "todo", "was modified after predict_rasters wrote it"


def _source_record(src: Path) -> dict[str, Any]:
    st = src.stat()
    return {"path": str(src.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _plan(
    sources: list[Path],
    outputs: list[Path],
    fingerprint: str,
    overwrite: bool,
    large_scene_pixels: int | None,
    world: int,
    record: Mapping[str, Any],
) -> dict[str, Any]:
    """Rank 0: which scenes to predict, who predicts them, or the error to raise."""
    todo: list[int] = []
    conflicts: list[str] = []
    for k, (src, dst) in enumerate(zip(sources, outputs, strict=True)):
        status, why = _status(src, dst, fingerprint, overwrite)
        if why:
            conflicts.append(f"'{dst}' {why}")
        elif status == "todo":
            todo.append(k)
        elif status == "finish":
            marker = _read_marker(_marker_path(dst)) or {}
            _write_marker(_marker_path(dst), {**marker, "output": _identity(dst)})
    if conflicts:
        shown = "; ".join(conflicts[:5]) + (
            f"; and {len(conflicts) - 5} more" if len(conflicts) > 5 else ""
        )
        return {
            "conflicts": f"predict_rasters will not reuse {len(conflicts)} existing output(s): "
            f"{shown}. Pass overwrite=True to predict them again, or choose another out_dir."
        }
    rasterio = import_rasterio("predict_rasters")
    pixels = []
    for k in todo:
        with rasterio.open(sources[k]) as dataset:
            pixels.append(dataset.height * dataset.width)
    threshold = large_scene_pixels
    if threshold is None:
        threshold = sum(pixels) // world + 1 if world > 1 else 0
    large = [k for k, n in zip(todo, pixels, strict=True) if world > 1 and n >= threshold > 0]
    small = [(k, n) for k, n in zip(todo, pixels, strict=True) if k not in large]
    owners = _assign([n for _, n in small], world)
    return {
        "large": large,
        "small": [
            [k for (k, _), o in zip(small, owners, strict=True) if o == r] for r in range(world)
        ],
        "record": dict(record),
        "skipped": len(sources) - len(todo),
    }


# predict_raster's defaults of the options predict_rasters passes on (one signature read).
_SCENE_DEFAULTS = {
    name: parameter.default
    for name, parameter in inspect.signature(predict_raster).parameters.items()
    if name in PredictOptions.__annotations__
}


def _predict_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` completed with :func:`predict_raster`'s defaults."""
    unknown = sorted(set(options) - set(_SCENE_DEFAULTS))
    if unknown:
        raise TypeError(
            f"predict_rasters got unexpected keyword arguments {unknown}; expected its own "
            f"or those of predict_raster: {list(_SCENE_DEFAULTS)}."
        )
    return {name: options.get(name, default) for name, default in _SCENE_DEFAULTS.items()}


def predict_rasters(
    model: nn.Module,
    sources: PathLike | Sequence[PathLike],
    out_dir: PathLike,
    *,
    suffix: str = "",
    overwrite: bool = False,
    progress: bool = True,
    large_scene_pixels: int | None = None,
    **options: Unpack[PredictOptions],
) -> list[Path]:
    """Predict many scenes into ``out_dir``, sharded across ranks and resumable.

    Each source ``scene.tif`` becomes ``out_dir/scene<suffix>.tif`` through
    :func:`~geofm.geo.predict_raster` (the keyword arguments from ``tile`` on
    are its own), with a marker ``scene<suffix>.tif.geofm.json`` beside it. A
    rerun skips scenes already predicted with the same model and arguments
    and refuses to reuse any other existing output (see the module docstring
    for the exact rule). Under ``torch.distributed`` call it on every rank
    with the same arguments: scenes are shared out between ranks, and a scene
    with at least ``large_scene_pixels`` pixels is predicted by all ranks
    together (tile rows sharded); ``out_dir`` must be visible to every rank.
    If a scene fails on one rank, the others finish their current scene and
    every rank raises; the finished outputs stay and a rerun resumes.

    Args:
        model: Module in eval mode, as for :func:`~geofm.geo.predict_raster`.
        sources: A glob pattern (``"scenes/*.tif"``, ``**`` recursive, sorted),
            one raster path, or a sequence of paths.
        out_dir: Output folder (created if missing).
        suffix: Added to each source's stem to name its output.
        overwrite: Predict every scene again, replacing existing outputs.
        progress: Show a tqdm progress bar over rank 0's scenes (if tqdm is installed).
        large_scene_pixels: Pixel count from which a scene is predicted by all
            ranks together; ``None``: more than an even share of the pixels left
            to predict (``total // world_size + 1``). Ignored with one process.
        **options: How each scene is predicted: the keyword arguments of
            :func:`~geofm.geo.predict_raster` listed in
            :class:`~geofm.geo.PredictOptions` (``tile``, ``overlap``,
            ``batch_size``, ``blend``, ``output``, ``device``, ``bands``,
            ``input_spec``, ``colormap``, ``precision``, ``channels_last``,
            ``allow_ungeoreferenced``), with its defaults. All but ``device`` are
            recorded in the markers: a rerun with other values refuses to reuse
            the outputs.

    Returns:
        The output path of every source, in source order (on every rank).

    Raises:
        TypeError: If ``options`` holds a name that is not in
            :class:`~geofm.geo.PredictOptions`.
        FileNotFoundError: If a source does not exist or the pattern matches nothing.
        FileExistsError: If an existing output was written by another model,
            other arguments or from a changed source, has no marker, or was
            modified (without ``overwrite``), before any scene is predicted.
        ValueError: If there are no sources, two sources map to the same
            output, an output is a source, ``large_scene_pixels < 1``, the model
            is in training mode, or :func:`~geofm.geo.predict_raster` refuses
            an argument or a scene.
        RuntimeError: On every other rank, when a scene failed on one rank.

    Example:
        >>> import tempfile, pathlib
        >>> from geofm.data import sample_raster
        >>> out = pathlib.Path(tempfile.mkdtemp())
        >>> model = nn.Conv2d(3, 2, 1).eval()
        >>> done = predict_rasters(model, [sample_raster()], out, tile=64, progress=False)
        >>> [p.name for p in done]
        ['landsat7_rgb_224.tif']
        >>> before = done[0].stat().st_mtime_ns
        >>> _ = predict_rasters(model, [sample_raster()], out, tile=64, progress=False)  # resumed
        >>> done[0].stat().st_mtime_ns == before
        True
    """
    paths = _expand(sources)
    if large_scene_pixels is not None and large_scene_pixels < 1:
        raise ValueError(f"large_scene_pixels must be >= 1 or None, got {large_scene_pixels}.")
    if model.training:
        raise ValueError(
            "predict_rasters got a model in training mode (dropout and batch norm would use "
            "batch statistics). Call model.eval() first."
        )
    folder = Path(os.fspath(out_dir)).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    outputs = [folder / f"{p.stem}{suffix}.tif" for p in paths]
    seen: dict[Path, Path] = {}
    for src, dst in zip(paths, outputs, strict=True):
        if dst in seen:
            raise ValueError(
                f"Sources '{seen[dst]}' and '{src}' would both be written to '{dst}'. Rename one, "
                "or predict them into different out_dir folders."
            )
        seen[dst] = src
        if same_file(dst, src):
            raise ValueError(
                f"Output '{dst}' is its source '{src}'. Choose another out_dir or a suffix."
            )
    chosen = _predict_options(options)
    bands, input_spec, colormap = chosen["bands"], chosen["input_spec"], chosen["colormap"]
    arguments = {
        **{name: value for name, value in chosen.items() if name != "device"},
        "bands": None if bands is None else list(bands),
        "input_spec": input_spec.to_dict() if isinstance(input_spec, InputSpec) else input_spec,
        "colormap": None if colormap is None else {str(k): list(v) for k, v in colormap.items()},
    }
    rank, world = _dist.rank(), _dist.world_size()
    plan: dict[str, Any] = {}
    failure: Exception | None = None
    if rank == 0:
        try:
            digest = _model_digest(model)
            fingerprint = hashlib.sha256(
                json.dumps([digest, arguments], sort_keys=True).encode()
            ).hexdigest()
            record = {
                "format": _FORMAT,
                "fingerprint": fingerprint,
                "model": f"{type(model).__module__}.{type(model).__qualname__}",
                "model_sha256": digest,
                "arguments": arguments,
                "geofm_version": __version__,
            }
            plan = _plan(paths, outputs, fingerprint, overwrite, large_scene_pixels, world, record)
        except Exception as err:  # every rank must learn that rank 0 failed
            failure = err
            plan = {"error": f"{type(err).__name__}: {err}"}
    plan = _dist.broadcast_object(plan)
    if failure is not None:
        raise failure
    if "conflicts" in plan:
        raise FileExistsError(plan["conflicts"])
    if "error" in plan:
        raise RuntimeError(f"predict_rasters failed on rank 0: {plan['error']}")
    if rank == 0 and plan["skipped"]:
        logger.info(
            "predict_rasters: %d of %d scenes already predicted, skipped.",
            plan["skipped"],
            len(paths),
        )

    per_scene: dict[str, Any] = {
        **chosen,
        "overwrite": True,  # the plan decided; an existing output here is one to replace
        "progress": False,
    }
    mine: list[int] = list(plan["small"][rank])
    bar = (
        _progress_bar(len(plan["large"]) + len(mine), rank, world)
        if progress and rank == 0
        else None
    )

    def run(k: int, *, together: bool) -> None:
        marker = _marker_path(outputs[k])
        writer = rank == 0 or not together
        if writer:
            pending = {
                **plan["record"],
                "source": _source_record(paths[k]),
                "replaces": _identity(outputs[k]),
                "output": None,
            }
            _write_marker(marker, pending)
        predict_raster(model, paths[k], outputs[k], shard_across_ranks=together, **per_scene)
        if writer:
            _write_marker(marker, {**pending, "output": _identity(outputs[k])})
        if bar is not None:
            bar.update(1)

    error: BaseException | None = None
    try:
        for k in plan["large"]:  # all ranks together: predict_raster raises on every rank
            run(k, together=True)
        try:
            for k in mine:
                run(k, together=False)
        except BaseException as err:  # reach the collective below, then raise
            error = err
        ok = _dist.all_ranks_ok(error is None)
    finally:
        if bar is not None:
            bar.close()
    _dist.raise_rank_failure(
        error, ok, caller="predict_rasters", hint="Finished outputs are kept: rerun to resume."
    )
    return outputs


def _progress_bar(total: int, rank: int, world: int) -> Any:
    desc = "predict_rasters" if world == 1 else f"predict_rasters (rank {rank} of {world})"
    return progress_bar(total, unit="scene", desc=desc, caller="predict_rasters")
