"""Training chips read straight from the user's GeoTIFFs: grid or random windows, sample dicts.

:class:`RasterChipDataset` cuts one or many image rasters into chips of a fixed
size, with optional labels from label rasters (aligned on the fly when they
lie on another grid) or from vector polygons (GeoJSON, rasterised per chip),
and yields torchgeo-style sample dicts. It is the fast path for what users
otherwise assemble from torchgeo's ``RasterDataset`` + ``IntersectionDataset``
+ ``RandomGeoSampler`` / ``GridGeoSampler``
(https://github.com/microsoft/torchgeo, ``torchgeo/datasets/geo.py`` and
``torchgeo/samplers/single.py``; read for the sample convention, written
independently). The differences that make it fast:

- windows are pixel windows of each file, fixed when the dataset is built
  (grid) or drawn from a seeded generator per index (random), so a sample is
  one windowed ``read`` per raster: no spatial index query, no ``merge``, no
  reprojection of rasters already on the image's grid;
- random windows start on the file's internal block lattice where the blocks
  are no larger than a chip (``align_to_blocks``), so a chip decodes the
  fewest compressed blocks;
- each process (DataLoader worker) opens its own file handles on first use
  and never pickles them, and GDAL's block cache is capped per read, so memory
  per worker stays small and flat.

Deterministic sharding across ranks (``rank`` / ``world_size``, by default
those of an initialised ``torch.distributed`` group) gives every rank a
disjoint share of the windows, the same in every process.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import torch
from torch.utils.data import Dataset

from geofm import _dist
from geofm.geo import import_rasterio
from geofm.geo._rio import require_georeferencing
from geofm.geo.inputs import choose_bands

if TYPE_CHECKING:
    from geofm.input_spec import InputSpec

__all__ = ["ChipSampler", "LabelResampling", "RasterChipDataset", "collate_chips"]

PathLike = str | os.PathLike[str]

#: How windows are laid out: a regular grid, or ``length`` seeded random windows.
ChipSampler = Literal["grid", "random"]

#: Resampling used to align a label raster on another grid (categorical labels).
LabelResampling = Literal["nearest", "mode"]

_CALLER = "RasterChipDataset"

# Set in a DataLoader worker when collate_chips hands a batch over as it was read:
# from then on RasterChipDataset.__getitems__ in this process reads into shared
# memory, which the DataLoader passes to the main process without a copy.
_batches_leave_as_read = False


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    """``(rows, cols)`` from an int or a 2-sequence of positive ints."""
    if isinstance(value, int) and not isinstance(value, bool):
        pair = (value, value)
    elif (
        isinstance(value, Sequence)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        pair = (int(value[0]), int(value[1]))
    else:
        raise TypeError(f"{name} must be an int or a (height, width) pair of ints, got {value!r}.")
    if min(pair) < 1:
        raise ValueError(f"{name} must be >= 1 pixel, got {value!r}.")
    return pair


def _paths(value: PathLike | Sequence[PathLike], name: str) -> list[Path]:
    items = [value] if isinstance(value, (str, os.PathLike)) else list(value)
    if not items:
        raise ValueError(f"{name} must name at least one raster, got an empty list.")
    paths = [Path(os.fspath(p)).expanduser() for p in items]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"{_CALLER}: {name} file '{path}' does not exist.")
    return paths


def _offsets(start: int, stop: int, size: int, stride: int) -> list[int]:
    """Grid offsets in ``[start, stop)`` along one axis; the last window ends at ``stop``."""
    if stop - start < size:
        return []
    regular = list(range(start, stop - size + 1, stride))
    if regular[-1] + size < stop:
        regular.append(stop - size)
    return regular


def _roi(value: object) -> tuple[float, float, float, float]:
    """``(left, bottom, right, top)`` of a region of interest, checked."""
    items = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else []
    if len(items) != 4 or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in items
    ):
        raise ValueError(
            f"roi must be 4 finite numbers (left, bottom, right, top) in the images' CRS, got "
            f"{value!r}."
        )
    left, bottom, right, top = (float(v) for v in items)
    if not (left < right and bottom < top):
        raise ValueError(
            f"roi must have left < right and bottom < top, got (left, bottom, right, top) = "
            f"{value!r}."
        )
    return left, bottom, right, top


def _pixel_region(
    roi: tuple[float, float, float, float] | None, src: Any, path: Path
) -> tuple[int, int, int, int]:
    """``(row0, row1, col0, col1)``: the pixels of ``src`` whose footprint lies inside ``roi``."""
    if roi is None:
        return 0, src.height, 0, src.width
    transform = src.transform
    if transform.b != 0 or transform.d != 0:
        raise ValueError(
            f"roi needs north-up images, but '{path}' has a rotated transform "
            f"{tuple(transform)[:6]}. Leave roi out, or warp the image north-up first."
        )
    left, bottom, right, top = roi
    (c_a, r_a), (c_b, r_b) = ~transform @ (left, top), ~transform @ (right, bottom)
    eps = 1e-6  # pixels: roi edges on pixel edges stay inclusive despite rounding
    row0 = max(0, math.ceil(min(r_a, r_b) - eps))
    row1 = min(src.height, math.floor(max(r_a, r_b) + eps))
    col0 = max(0, math.ceil(min(c_a, c_b) - eps))
    col1 = min(src.width, math.floor(max(c_a, c_b) + eps))
    if row1 <= row0 or col1 <= col0:
        return 0, 0, 0, 0
    return row0, row1, col0, col1


def _same_grid(a: Any, b: Any) -> bool:
    return (
        a.crs == b.crs
        and (a.width, a.height) == (b.width, b.height)
        and a.transform.almost_equals(b.transform)
    )


def _empty(shape: tuple[int, ...], dtype: torch.dtype, *, shared: bool) -> torch.Tensor:
    """An uninitialised contiguous tensor; in shared memory with ``shared``.

    Shared memory is allocated as ``default_collate`` allocates a batch in a
    DataLoader worker: a new shared storage, so nothing is copied into it later.
    """
    if not shared:
        return torch.empty(shape, dtype=dtype)
    layout = torch.empty(shape, dtype=dtype, device="meta")  # strides and sizes, no memory
    nbytes = layout.numel() * layout.element_size()
    storage = torch.UntypedStorage._new_shared(nbytes)  # type: ignore[no-untyped-call]
    return torch.empty(0, dtype=dtype).set_(storage, 0, shape, layout.stride())


def _numpy(tensor: torch.Tensor | None, *row: int) -> np.ndarray | None:
    """``tensor[row]`` (or ``tensor``) as a NumPy view of its memory; ``None`` stays ``None``."""
    return None if tensor is None else tensor[row].numpy()


def _corner_bounds(transform: Any, row: int, col: int, height: int, width: int) -> list[float]:
    """``[left, bottom, right, top]`` of a pixel window (also for rotated transforms)."""
    xs, ys = [], []
    for r, c in ((row, col), (row, col + width), (row + height, col), (row + height, col + width)):
        x, y = transform @ (c, r)
        xs.append(x)
        ys.append(y)
    return [min(xs), min(ys), max(xs), max(ys)]


@dataclass(frozen=True)
class _Image:
    """What the dataset keeps of one image raster (plain data: pickles cheaply)."""

    path: Path
    height: int
    width: int
    crs: str
    transform: tuple[float, float, float, float, float, float]
    bands: tuple[int, ...]
    block: tuple[int, int]  # (rows, cols) of the first chosen band's internal blocks
    floating: bool
    label: Path | None
    label_warped: bool
    label_masked: bool  # the label raster has a nodata value / mask to honour
    region: tuple[int, int, int, int]  # (row0, row1, col0, col1) windows must lie in
    image_label: int | None  # the image's class (image_labels)


@dataclass(frozen=True)
class _Shapes:
    """Vector labels of one image, in its CRS: GeoJSON geometries, burn values, bboxes."""

    geometries: tuple[dict[str, Any], ...]
    values: tuple[int, ...]
    boxes: np.ndarray  # (N, 4) left, bottom, right, top


def _load_features(source: PathLike | Mapping[str, Any]) -> tuple[list[dict[str, Any]], Any]:
    """Features of a GeoJSON FeatureCollection / Feature (file or mapping), and its CRS member."""
    if isinstance(source, Mapping):
        data: Any = source
        where = "vector_labels mapping"
    else:
        path = Path(os.fspath(source)).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{_CALLER}: vector_labels file '{path}' does not exist.")
        where = f"vector_labels file '{path}'"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{_CALLER}: {where} is not valid GeoJSON text: {err}.") from err
    kind = data.get("type") if isinstance(data, Mapping) else None
    if kind == "FeatureCollection" and isinstance(data.get("features"), list):
        features = list(data["features"])
    elif kind == "Feature":
        features = [dict(data)]
    else:
        raise ValueError(
            f"{_CALLER}: {where} must be a GeoJSON FeatureCollection or Feature, got type {kind!r}."
        )
    crs = None
    member = data.get("crs")
    if isinstance(member, Mapping):
        crs = member.get("properties", {}).get("name")
    return features, crs


class RasterChipDataset(Dataset[dict[str, Any]]):
    """Chips of image rasters with optional raster or vector labels, as sample dicts.

    **Windows.** ``sampler="grid"``: windows of ``size`` pixels, ``stride``
    apart, cover every image row by row (the last window of an axis is shifted
    back to end at the edge); the dataset's length is their number.
    ``sampler="random"``: ``length`` windows, window ``i`` drawn from a
    generator seeded with ``(seed, epoch, i)``: an image with probability
    proportional to its number of window positions, then a uniform position.
    With ``align_to_blocks`` a random window starts on the file's block
    lattice on each axis whose block edge is at most the chip edge (a chip of
    a 256 px tiled GeoTIFF then decodes one block per band instead of four; it
    trades sub-block translations for speed: add a random crop or flip
    augmentation if the model needs them). Grid windows start at 0 and are
    aligned whenever ``stride`` is a multiple of the block edge.

    **Region of interest.** With ``roi=(left, bottom, right, top)`` (in the
    images' CRS, which must then be the same for all images; north-up images
    only) every window lies wholly inside it: a grid covers the pixels inside
    ``roi`` (starting at its first whole pixel, the last window of an axis
    shifted back to end at its edge), and random windows are drawn among the
    positions inside it (on the block lattice where it holds one). Images it
    does not cover by a whole chip give no windows. This splits one scene into
    training and validation parts (torchgeo's samplers' ``roi``).

    **Valid pixels.** A pixel is valid when every chosen band is valid there
    (the raster's nodata value or mask, and for float rasters a finite value).
    With ``min_valid > 0`` chips whose valid fraction is below it are skipped:
    grid windows are filtered when the dataset is built (one pass over the
    images' masks on every rank), a random index redraws its window (up to
    ``max_tries`` times). Pixel values are returned as stored (cast to
    float32), invalid ones included.

    **Labels.** ``labels``: one label raster per image, or one for all
    images. A label raster on the image's grid is read window by window; on
    another grid (CRS, resolution or extent) it is warped onto the image's grid
    on the fly with rasterio's ``WarpedVRT`` and ``label_resampling``, or,
    with ``label_resampling=None``, refused with an error. Label pixels where
    the label raster has no data (its nodata value, or outside its extent) are
    ``ignore_index``. ``vector_labels``: GeoJSON polygons (a file, or a
    FeatureCollection mapping) burnt into each chip with
    ``rasterio.features.rasterize``: a feature's ``vector_property`` value
    (default: 1 for every feature), later features over earlier ones, ``0``
    elsewhere. Coordinates are in ``vector_crs``, else the file's ``crs``
    member, else WGS 84 longitude/latitude (RFC 7946). ``image_labels``: one
    integer class per image (e.g. the country of a scene), returned as
    ``label`` with each of its chips (scene classification, self-supervised
    pretraining with a probe); it combines with either kind of mask.

    **Bands.** ``bands`` (1-based indices, or names found in the band
    descriptions) or ``input_spec`` (its band names found in the descriptions,
    through sensor aliases: ``B4``/``B04``/``red``) choose and order the bands,
    by the rules of :func:`geofm.geo.inputs.choose_bands`; with ``normalize``
    the spec's value scaling and standardisation are applied
    (:meth:`geofm.InputSpec.prepare`).

    **Processes and ranks.** File handles are opened on first use in each
    process and never pickled (a DataLoader worker opens its own; a handle
    inherited through ``fork`` is not reused). The windows are split across
    ranks: rank ``r`` of ``W`` gets windows ``r, r + W, r + 2W, ...`` of the
    whole list (grid) or of ``range(length)`` (random), so the ranks together
    see every window exactly once; ``even_shards=True`` drops the last
    ``n mod W`` windows so every rank has the same length (what
    ``DistributedDataParallel`` needs). :meth:`set_epoch` draws new random
    windows (call it before each epoch; with ``persistent_workers=True`` the
    workers keep the epoch they were started with).

    **Batches.** A ``DataLoader`` with a ``batch_size`` reads a whole batch
    through :meth:`__getitems__`, into one image and one mask buffer. With
    ``collate_fn=collate_chips`` those buffers are the batch, not a stacked
    copy of its chips (:func:`collate_chips`; the batches equal
    ``default_collate``'s).

    Args:
        images: Image raster path(s) (any file GDAL reads, georeferenced).
        labels: Label raster path(s): one per image, or one for all.
        vector_labels: GeoJSON file path or FeatureCollection mapping of polygons.
        image_labels: One integer class per image (in the order of ``images``),
            returned as each chip's ``label``.
        size: Chip edge in pixels, or ``(height, width)``.
        stride: Grid step in pixels, or ``(rows, cols)`` (default: ``size``); grid only.
        roi: Region ``(left, bottom, right, top)`` in the images' CRS that
            every window lies inside (default: the whole images).
        sampler: ``"grid"`` or ``"random"``.
        length: Number of random windows over all ranks (random only, required).
        seed: Seed of the random windows.
        min_valid: Smallest fraction of valid pixels a chip needs, in ``[0, 1]``.
        max_tries: Random draws per index before giving up (with ``min_valid``).
        bands: Bands to read (1-based indices or described names).
        input_spec: A model's input spec, to choose bands by name (and to
            ``normalize``).
        normalize: Apply ``input_spec``'s scaling and statistics to ``image``.
        label_band: 1-based band of the label rasters.
        label_resampling: Resampling to align a label raster on another grid,
            or ``None`` to refuse one.
        ignore_index: Label value where the label raster has no data.
        vector_property: Feature property holding the integer class to burn
            (``None``: burn 1).
        vector_crs: CRS of the vector coordinates (anything rasterio's
            ``CRS.from_user_input`` takes), overriding the file's.
        all_touched: Burn every pixel a polygon touches (else pixel centres).
        align_to_blocks: Start random windows on the block lattice (see above).
        rank: This process's rank (default: ``torch.distributed``'s, else 0).
        world_size: Number of ranks (default: ``torch.distributed``'s, else 1).
        even_shards: Give every rank the same number of windows.
        gdal_cache_mb: GDAL block cache while reading a chip, in MiB.

    Sample:
        - ``image``: ``(C, H, W)`` float32, ``C`` the chosen bands, ``(H, W) = size``.
        - ``mask``: ``(H, W)`` int64 (only with labels or vector labels).
        - ``label``: ``()`` int64, the image's class (only with ``image_labels``).
        - ``crs``: the image's CRS as a string (e.g. ``"EPSG:32618"``).
        - ``bounds``: ``(4,)`` float64 ``left, bottom, right, top`` in ``crs``.
        - ``transform``: ``(6,)`` float64 affine ``a, b, c, d, e, f`` of the chip.

    Raises:
        FileNotFoundError: If an image, label or vector file does not exist.
        ValueError: If an argument is out of range or does not fit the sampler,
            an image is ungeoreferenced or smaller than ``size``, images differ
            in band count, the label count fits neither one nor one per image,
            both ``labels`` and ``vector_labels`` are given, a label raster is
            on another grid with ``label_resampling=None``, has no CRS, or does
            not overlap its image, vector labels are not polygons with integer
            values, ``image_labels`` are not one integer per image, ``roi`` is
            not 4 finite numbers with ``left < right`` and ``bottom < top``,
            the images differ in CRS or are rotated with a ``roi``, no window
            fits inside ``roi``, ``rank`` is not in ``[0, world_size)``, or no
            grid window has ``min_valid`` valid pixels.
        TypeError: If ``size`` or ``stride`` is not an int or a pair of ints.
        ShapeError: If ``bands`` or ``input_spec`` do not fit an image's bands.

    Example:
        >>> from geofm.data import sample_raster  # 224 x 224, 3 bands
        >>> ds = RasterChipDataset(sample_raster(), size=(64, 96), stride=64)
        >>> len(ds), sorted(ds[0])
        (12, ['bounds', 'crs', 'image', 'transform'])
        >>> ds[0]["image"].shape, ds[0]["image"].dtype
        (torch.Size([3, 64, 96]), torch.float32)
        >>> rnd = RasterChipDataset(sample_raster(), size=64, sampler="random", length=5, seed=1)
        >>> bool((rnd[3]["image"] == rnd[3]["image"]).all()), len(rnd)
        (True, 5)
        >>> whole = RasterChipDataset(sample_raster(), size=224)[0]["bounds"].tolist()
        >>> left, bottom, right, top = whole
        >>> upper = (left, top - (top - bottom) * 64 / 224, right, top)  # the upper 64 rows
        >>> part = RasterChipDataset(sample_raster(), size=64, roi=upper, image_labels=[2])
        >>> [part.window(k)[1:] for k in range(len(part))], part[0]["label"]
        ([(0, 0), (0, 64), (0, 128), (0, 160)], tensor(2))
    """

    def __init__(
        self,
        images: PathLike | Sequence[PathLike],
        labels: PathLike | Sequence[PathLike] | None = None,
        *,
        vector_labels: PathLike | Mapping[str, Any] | None = None,
        image_labels: Sequence[int] | None = None,
        size: int | tuple[int, int] = 256,
        stride: int | tuple[int, int] | None = None,
        roi: Sequence[float] | None = None,
        sampler: ChipSampler = "grid",
        length: int | None = None,
        seed: int = 0,
        min_valid: float = 0.0,
        max_tries: int = 100,
        bands: Sequence[int | str] | None = None,
        input_spec: InputSpec | None = None,
        normalize: bool = False,
        label_band: int = 1,
        label_resampling: LabelResampling | None = "nearest",
        ignore_index: int = -100,
        vector_property: str | None = None,
        vector_crs: Any = None,
        all_touched: bool = False,
        align_to_blocks: bool = True,
        rank: int | None = None,
        world_size: int | None = None,
        even_shards: bool = False,
        gdal_cache_mb: int = 32,
    ) -> None:
        super().__init__()
        rasterio = import_rasterio(_CALLER, package="geofm.datasets")
        self.size = _pair(size, "size")
        if sampler not in get_args(ChipSampler):
            raise ValueError(
                f"Unknown sampler {sampler!r}. Expected one of: {', '.join(get_args(ChipSampler))}."
            )
        self.sampler: ChipSampler = sampler
        if sampler == "grid":
            if length is not None:
                raise ValueError(
                    f"length={length} applies to sampler='random'; a grid's length is its "
                    "number of windows. Drop length or pass sampler='random'."
                )
            self.stride = self.size if stride is None else _pair(stride, "stride")
        else:
            if stride is not None:
                raise ValueError(
                    f"stride={stride!r} applies to sampler='grid'; random windows have no "
                    "stride. Drop stride or pass sampler='grid'."
                )
            if isinstance(length, bool) or not isinstance(length, int) or length < 1:
                raise ValueError(
                    f"sampler='random' needs length=<number of chips> >= 1, got {length!r}."
                )
            self.stride = self.size
        if not 0.0 <= min_valid <= 1.0:
            raise ValueError(f"min_valid must be a fraction in [0, 1], got {min_valid}.")
        if max_tries < 1:
            raise ValueError(f"max_tries must be >= 1, got {max_tries}.")
        if label_resampling is not None and label_resampling not in get_args(LabelResampling):
            raise ValueError(
                f"Unknown label_resampling {label_resampling!r}. Expected one of: "
                f"{', '.join(get_args(LabelResampling))}, or None to refuse labels on another grid."
            )
        if normalize and input_spec is None:
            raise ValueError("normalize=True needs input_spec=<the model's InputSpec>.")
        if gdal_cache_mb < 1:
            raise ValueError(f"gdal_cache_mb must be >= 1, got {gdal_cache_mb}.")
        if labels is not None and vector_labels is not None:
            raise ValueError(
                "Pass either labels= (label rasters) or vector_labels= (polygons), not both."
            )
        world = _dist.world_size() if world_size is None else world_size
        this_rank = _dist.rank() if rank is None else rank
        if world < 1 or not 0 <= this_rank < world:
            raise ValueError(
                f"rank must be in [0, world_size), got rank={this_rank}, world_size={world}."
            )

        image_paths = _paths(images, "images")
        label_paths: list[Path | None] = [None] * len(image_paths)
        if labels is not None:
            found = _paths(labels, "labels")
            if len(found) not in (1, len(image_paths)):
                raise ValueError(
                    f"Got {len(found)} label rasters for {len(image_paths)} images; pass one "
                    "label raster per image (in the same order) or one for all images."
                )
            label_paths = [
                found[0] if len(found) == 1 else found[k] for k in range(len(image_paths))
            ]
        classes: list[int | None] = [None] * len(image_paths)
        if image_labels is not None:
            classes = list(image_labels)
            if len(classes) != len(image_paths):
                raise ValueError(
                    f"Got {len(classes)} image_labels for {len(image_paths)} images; pass one "
                    "integer class per image, in the same order."
                )
            bad = [c for c in classes if isinstance(c, bool) or not isinstance(c, int)]
            if bad:
                raise ValueError(
                    f"image_labels must be integer classes, got {bad[0]!r}. Map class names "
                    "to integers first."
                )
        self.roi = None if roi is None else _roi(roi)

        self.length = length
        self.seed = seed
        self.epoch = 0
        self.min_valid = float(min_valid)
        self.max_tries = max_tries
        self.input_spec = input_spec
        self.normalize = normalize
        self.label_band = label_band
        self.label_resampling = label_resampling
        self.ignore_index = ignore_index
        self.all_touched = all_touched
        self.align_to_blocks = align_to_blocks
        self.rank, self.world_size, self.even_shards = this_rank, world, even_shards
        self.gdal_cache_bytes = gdal_cache_mb << 20
        self.has_labels = labels is not None or vector_labels is not None

        self.images: list[_Image] = []
        for path, label, image_label in zip(image_paths, label_paths, classes, strict=True):
            self.images.append(self._describe(rasterio, path, label, image_label, bands))
        if self.roi is not None and len({img.crs for img in self.images}) > 1:
            detail = ", ".join(f"{img.path.name}: {img.crs}" for img in self.images)
            raise ValueError(
                f"roi is in the images' CRS, but the images are in different CRSs ({detail}). "
                "Pass images in one CRS, or leave roi out."
            )
        counts = {len(img.bands) for img in self.images}
        if len(counts) > 1:
            detail = ", ".join(f"{img.path.name}: {len(img.bands)}" for img in self.images)
            raise ValueError(
                f"Images give different band counts ({detail}); chips must stack. Pass bands= "
                "or input_spec= to choose the same bands from every image."
            )
        self.shapes: list[_Shapes] | None = None
        if vector_labels is not None:
            self.shapes = self._vector_shapes(rasterio, vector_labels, vector_property, vector_crs)

        self._handles: dict[str, Any] | None = None
        self._pid = -1
        self._windows: list[tuple[int, int, int]] = []  # (image, row, col), grid only
        if sampler == "grid":
            windows = [
                (i, r, c)
                for i, img in enumerate(self.images)
                for r in _offsets(*img.region[:2], self.size[0], self.stride[0])
                for c in _offsets(*img.region[2:], self.size[1], self.stride[1])
            ]
            if not windows:  # only with a roi: without one every image holds a chip
                raise self._no_window_in_roi()
            if self.min_valid > 0:
                windows = [w for w in windows if self._valid_fraction(*w) >= self.min_valid]
                if not windows:
                    raise ValueError(
                        f"No grid window has a valid fraction >= min_valid={self.min_valid}; "
                        "lower min_valid or check the images' nodata."
                    )
            self._windows = self._shard(windows)
            self.close()  # the scan's handles are not needed until the first read
        else:
            # Number of window positions per image (on the block lattice if aligned).
            self._positions = [self._axis_positions(img) for img in self.images]
            counts_f = np.array([len(r) * len(c) for r, c in self._positions], np.float64)
            if counts_f.sum() == 0:
                raise self._no_window_in_roi()
            self._image_weights = counts_f / counts_f.sum()
            self._indices = self._shard(list(range(length or 0)))

    # -- construction helpers ---------------------------------------------------

    def _no_window_in_roi(self) -> ValueError:
        return ValueError(
            f"No {self.size[0]} x {self.size[1]} px window lies inside roi={self.roi} in any "
            f"image ({', '.join(img.path.name for img in self.images)}). Pass a larger roi (in "
            "the images' CRS) or a smaller size."
        )

    def _describe(
        self,
        rasterio: Any,
        path: Path,
        label: Path | None,
        image_label: int | None,
        bands: Sequence[int | str] | None,
    ) -> _Image:
        with rasterio.open(path) as src:
            require_georeferencing(src, path, _CALLER)
            chosen = choose_bands(self.input_spec, list(src.descriptions), bands, path)
            if self.roi is None and (src.height < self.size[0] or src.width < self.size[1]):
                raise ValueError(
                    f"Image '{path}' is {src.height} x {src.width} pixels, smaller than the chip "
                    f"size {self.size[0]} x {self.size[1]}. Use a smaller size."
                )
            floating = any(np.issubdtype(np.dtype(src.dtypes[b - 1]), np.floating) for b in chosen)
            block = tuple(src.block_shapes[chosen[0] - 1])
            warped, masked = False, False
            if label is not None:
                warped, masked = self._check_label(rasterio, src, path, label)
            return _Image(
                path=path,
                height=src.height,
                width=src.width,
                crs=src.crs.to_string(),
                transform=tuple(src.transform)[:6],
                bands=tuple(chosen),
                block=(int(block[0]), int(block[1])),
                floating=floating,
                label=label,
                label_warped=warped,
                label_masked=masked,
                region=_pixel_region(self.roi, src, path),
                image_label=None if image_label is None else int(image_label),
            )

    def _check_label(self, rasterio: Any, src: Any, path: Path, label: Path) -> tuple[bool, bool]:
        """Whether the label raster must be warped, and whether it has a nodata mask."""
        with rasterio.open(label) as lab:
            if not 1 <= self.label_band <= lab.count:
                raise ValueError(
                    f"label_band={self.label_band} is out of range for '{label}', which has "
                    f"{lab.count} band(s) (1-based)."
                )
            flags = lab.mask_flag_enums[self.label_band - 1]
            masked = not (len(flags) == 1 and flags[0] == rasterio.enums.MaskFlags.all_valid)
            if _same_grid(src, lab):
                return False, masked
            grids = (
                f"image '{path}': {src.crs}, {src.height} x {src.width} px, "
                f"{tuple(src.transform)[:6]}; label '{label}': {lab.crs}, "
                f"{lab.height} x {lab.width} px, {tuple(lab.transform)[:6]}"
            )
            if self.label_resampling is None:
                raise ValueError(
                    f"Label raster is on another grid than its image ({grids}). Pass "
                    "label_resampling='nearest' to align it on the fly, or resample it onto "
                    "the image's grid first."
                )
            if lab.crs is None:
                raise ValueError(
                    f"Label raster '{label}' has no CRS, so it cannot be aligned with its image "
                    f"({grids}). Assign its CRS first, e.g. `rio edit-info --crs EPSG:... "
                    f"{label}`."
                )
            left, bottom, right, top = rasterio.warp.transform_bounds(src.crs, lab.crs, *src.bounds)
            lb = lab.bounds
            if left >= lb.right or right <= lb.left or bottom >= lb.top or top <= lb.bottom:
                raise ValueError(
                    f"Label raster does not overlap its image ({grids}). Pair each image with "
                    "the label raster that covers it."
                )
            return True, masked

    def _vector_shapes(
        self,
        rasterio: Any,
        source: PathLike | Mapping[str, Any],
        prop: str | None,
        vector_crs: Any,
    ) -> list[_Shapes]:
        from rasterio import features as rio_features  # a submodule import_rasterio skips

        features, file_crs = _load_features(source)
        crs_in = vector_crs if vector_crs is not None else (file_crs or "EPSG:4326")
        crs = rasterio.crs.CRS.from_user_input(crs_in)
        geometries: list[dict[str, Any]] = []
        values: list[int] = []
        for k, feature in enumerate(features):
            geometry = feature.get("geometry") if isinstance(feature, Mapping) else None
            kind = geometry.get("type") if isinstance(geometry, Mapping) else None
            if kind not in ("Polygon", "MultiPolygon"):
                raise ValueError(
                    f"vector_labels feature {k} has geometry type {kind!r}; expected Polygon or "
                    "MultiPolygon (buffer points and lines into polygons first)."
                )
            value: Any = 1
            if prop is not None:
                props = feature.get("properties") or {}
                if prop not in props:
                    raise ValueError(
                        f"vector_labels feature {k} has no property {prop!r} (it has: "
                        f"{', '.join(sorted(props)) or 'none'}). Pass vector_property= naming "
                        "the class property."
                    )
                value = props[prop]
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(
                    f"vector_labels feature {k} has class value {value!r}; expected an integer."
                )
            geometries.append(dict(geometry))  # type: ignore[arg-type]
            values.append(value)
        shapes = []
        for img in self.images:
            moved = [rasterio.warp.transform_geom(crs, img.crs, g) for g in geometries]
            boxes = np.array(
                [rio_features.bounds(g) for g in moved] or np.empty((0, 4)), np.float64
            ).reshape(-1, 4)
            shapes.append(_Shapes(tuple(moved), tuple(values), boxes))
        return shapes

    def _axis_positions(self, img: _Image) -> tuple[np.ndarray, np.ndarray]:
        """Possible random window starts along rows and columns of one image (in its region)."""
        out = []
        spans = (img.region[:2], img.region[2:])
        for (start, stop), size, block in zip(spans, self.size, img.block, strict=True):
            step = block if self.align_to_blocks and block <= size else 1
            first = -(-start // step) * step  # first lattice position in the region
            if first + size > stop:  # the region holds no aligned window: any start
                first, step = start, 1
            out.append(np.arange(first, stop - size + 1, step, dtype=np.int64))
        return out[0], out[1]

    def _shard(self, items: list[Any]) -> list[Any]:
        if self.even_shards:
            items = items[: len(items) - len(items) % self.world_size]
        return items[self.rank :: self.world_size]

    # -- reading ------------------------------------------------------------------

    def _handle(self, key: str, opener: Any) -> Any:
        if self._handles is None or self._pid != os.getpid():
            self._handles, self._pid = {}, os.getpid()  # never reuse a handle across fork
        handle = self._handles.get(key)
        if handle is None:
            handle = self._handles[key] = opener()
        return handle

    def _image_handle(self, img: _Image) -> Any:
        rasterio = import_rasterio(_CALLER, package="geofm.datasets")
        return self._handle(str(img.path), lambda: rasterio.open(img.path))

    def _label_handle(self, img: _Image) -> Any:
        rasterio = import_rasterio(_CALLER, package="geofm.datasets")
        assert img.label is not None  # only called for images with a label raster
        key = f"{img.label}\0{img.path}" if img.label_warped else str(img.label)

        def opener() -> Any:
            source = rasterio.open(img.label)
            if not img.label_warped:
                return source
            from rasterio.vrt import WarpedVRT

            return WarpedVRT(
                source,
                crs=img.crs,
                transform=rasterio.Affine(*img.transform),
                width=img.width,
                height=img.height,
                resampling=getattr(rasterio.enums.Resampling, str(self.label_resampling)),
                add_alpha=True,  # alpha 0 outside the label's extent and on its nodata
            )

        return self._handle(key, opener)

    def _valid_fraction(self, index: int, row: int, col: int) -> float:
        rasterio = import_rasterio(_CALLER, package="geofm.datasets")
        img = self.images[index]
        window = rasterio.windows.Window(col, row, self.size[1], self.size[0])
        with rasterio.Env(GDAL_CACHEMAX=self.gdal_cache_bytes):
            src = self._image_handle(img)
            valid = (src.read_masks(list(img.bands), window=window) != 0).all(axis=0)
            if img.floating:
                data = src.read(list(img.bands), window=window)
                valid &= np.isfinite(data).all(axis=0)
        return float(valid.mean())

    def _random_window(self, index: int) -> tuple[int, int, int]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        for _ in range(self.max_tries):
            i = int(rng.choice(len(self.images), p=self._image_weights))
            rows, cols = self._positions[i]
            window = (i, int(rows[rng.integers(len(rows))]), int(cols[rng.integers(len(cols))]))
            if self.min_valid == 0 or self._valid_fraction(*window) >= self.min_valid:
                return window
        raise ValueError(
            f"No window with a valid fraction >= min_valid={self.min_valid} in {self.max_tries} "
            f"random draws for index {index}; lower min_valid or raise max_tries."
        )

    def _burn(self, index: int, bounds: list[float], transform: Any) -> np.ndarray:
        from rasterio import features as rio_features

        assert self.shapes is not None  # only called with vector labels
        shapes = self.shapes[index]
        left, bottom, right, top = bounds
        boxes = shapes.boxes
        hit = np.flatnonzero(
            (boxes[:, 0] < right)
            & (boxes[:, 2] > left)
            & (boxes[:, 1] < top)
            & (boxes[:, 3] > bottom)
        )
        if hit.size == 0:
            return np.zeros(self.size, np.int64)
        burnt = rio_features.rasterize(
            [(shapes.geometries[k], shapes.values[k]) for k in hit],
            out_shape=self.size,
            transform=transform,
            fill=0,
            all_touched=self.all_touched,
            dtype="int64",
        )
        return np.asarray(burnt)

    def window(self, index: int) -> tuple[Path, int, int]:
        """The image and pixel offsets of sample ``index``.

        Args:
            index: Sample index in ``[0, len(self))``.

        Returns:
            ``(image path, row offset, column offset)``; the window is :attr:`size`.

        Raises:
            IndexError: If ``index`` is out of range.

        Example:
            >>> from geofm.data import sample_raster
            >>> RasterChipDataset(sample_raster(), size=100).window(3)[1:]  # rows 0, 100, 124
            (100, 0)
        """
        i, row, col = self._locate(index)
        return self.images[i].path, row, col

    def _locate(self, index: int) -> tuple[int, int, int]:
        """``(image, row, col)`` of sample ``index`` (negative indices count from the end)."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"Index {index} is out of range for {len(self)} chips.")
        index %= len(self)
        if self.sampler == "grid":
            return self._windows[index]
        return self._random_window(self._indices[index])

    def __len__(self) -> int:
        return len(self._windows) if self.sampler == "grid" else len(self._indices)

    def _read_into(
        self, rasterio: Any, index: int, image: np.ndarray, mask: np.ndarray | None
    ) -> dict[str, Any]:
        """Read sample ``index`` into ``image`` ``(C, H, W)`` float32 and ``mask`` ``(H, W)`` int64.

        ``mask`` is ``None`` exactly when the dataset has no labels. Returns the
        sample's other keys (``crs``, ``bounds``, ``transform``, ``label``).
        """
        i, row, col = self._locate(index)
        img = self.images[i]
        height, width = self.size
        window = rasterio.windows.Window(col, row, width, height)
        base = rasterio.Affine(*img.transform)
        chip_transform = base @ rasterio.Affine.translation(col, row)
        bounds = _corner_bounds(base, row, col, height, width)
        # GDAL converts the stored type to float32 while it copies out of its block cache.
        self._image_handle(img).read(list(img.bands), window=window, out=image)
        if mask is not None:
            if img.label is not None:
                lab = self._label_handle(img)
                if img.label_warped:
                    data = lab.read([self.label_band, lab.count], window=window)  # (2, H, W)
                    mask[...] = data[0]
                    mask[data[1] == 0] = self.ignore_index
                else:
                    mask[...] = lab.read(self.label_band, window=window)
                    if img.label_masked:
                        nodata = lab.read_masks(self.label_band, window=window) == 0
                        mask[nodata] = self.ignore_index
            else:
                mask[...] = self._burn(i, bounds, chip_transform)
        meta: dict[str, Any] = {
            "crs": img.crs,
            "bounds": torch.tensor(bounds, dtype=torch.float64),
            "transform": torch.tensor(tuple(chip_transform)[:6], dtype=torch.float64),
        }
        if img.image_label is not None:
            meta["label"] = torch.tensor(img.image_label, dtype=torch.int64)
        return meta

    def _buffers(
        self, *batch: int, shared: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Uninitialised ``(*batch, C, H, W)`` float32 images and ``(*batch, H, W)`` int64 masks.

        ``shared``: allocated in shared memory (what a DataLoader worker sends).
        """
        image = _empty((*batch, self.num_bands, *self.size), torch.float32, shared=shared)
        mask = _empty((*batch, *self.size), torch.int64, shared=shared) if self.has_labels else None
        return image, mask

    def _sample(
        self, image: torch.Tensor, mask: torch.Tensor | None, meta: dict[str, Any]
    ) -> dict[str, Any]:
        sample: dict[str, Any] = {"image": image, "crs": meta["crs"]}
        sample["bounds"], sample["transform"] = meta["bounds"], meta["transform"]
        if mask is not None:
            sample["mask"] = mask
        if "label" in meta:
            sample["label"] = meta["label"]
        return sample

    def __getitem__(self, index: int) -> dict[str, Any]:
        rasterio = import_rasterio(_CALLER, package="geofm.datasets")
        image, mask = self._buffers()
        with rasterio.Env(GDAL_CACHEMAX=self.gdal_cache_bytes):
            meta = self._read_into(rasterio, index, image.numpy(), _numpy(mask))
        if self.normalize:
            assert self.input_spec is not None  # checked in __init__
            image = self.input_spec.prepare(image)
        return self._sample(image, mask, meta)

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """Samples ``indices``, read into one image buffer and one mask buffer.

        A ``DataLoader`` with a ``batch_size`` calls this instead of
        ``__getitem__`` once per index. The samples are the same as
        ``[self[i] for i in indices]``, but sample ``k``'s ``image`` and ``mask``
        are row ``k`` of one ``(N, C, H, W)`` and one ``(N, H, W)`` tensor, so
        :func:`collate_chips` batches them without a copy, and GDAL's
        settings are entered once per batch instead of once per chip.

        Args:
            indices: Sample indices (negative ones count from the end).

        Returns:
            One sample dict per index, in order.

        Raises:
            IndexError: If an index is out of range.

        Example:
            >>> from geofm.data import sample_raster
            >>> ds = RasterChipDataset(sample_raster(), size=64)
            >>> samples = ds.__getitems__([0, 2])
            >>> bool((samples[1]["image"] == ds[2]["image"]).all())
            True
            >>> collate_chips(samples)["image"].data_ptr() == samples[0]["image"].data_ptr()
            True
        """
        rasterio = import_rasterio(_CALLER, package="geofm.datasets")
        in_worker = torch.utils.data.get_worker_info() is not None
        images, masks = self._buffers(len(indices), shared=in_worker and _batches_leave_as_read)
        with rasterio.Env(GDAL_CACHEMAX=self.gdal_cache_bytes):
            metas = [
                self._read_into(rasterio, index, images[k].numpy(), _numpy(masks, k))
                for k, index in enumerate(indices)
            ]
        if self.normalize:
            assert self.input_spec is not None  # checked in __init__
            images = self.input_spec.prepare(images)
        return [
            self._sample(images[k], None if masks is None else masks[k], meta)
            for k, meta in enumerate(metas)
        ]

    def set_epoch(self, epoch: int) -> None:
        """Draw other random windows from now on (the generator's seed includes ``epoch``).

        Args:
            epoch: Epoch number; the same epoch gives the same windows.

        Example:
            >>> from geofm.data import sample_raster
            >>> ds = RasterChipDataset(sample_raster(), size=32, sampler="random", length=4)
            >>> first = ds.window(0); ds.set_epoch(1); ds.window(0) != first
            True
        """
        self.epoch = int(epoch)

    def close(self) -> None:
        """Close this process's open file handles (reopened on the next read).

        Example:
            >>> from geofm.data import sample_raster
            >>> ds = RasterChipDataset(sample_raster(), size=64)
            >>> _ = ds[0]; ds.close(); ds[0]["image"].shape[0]
            3
        """
        if self._handles is not None and self._pid == os.getpid():
            for handle in self._handles.values():
                handle.close()
        self._handles = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_handles"], state["_pid"] = None, -1  # handles never travel to another process
        return state

    @property
    def num_bands(self) -> int:
        """Number of bands ``C`` in each chip's ``image``."""
        return len(self.images[0].bands)


def _rows_of_one_tensor(values: list[Any]) -> torch.Tensor | None:
    """The ``(N, ...)`` tensor whose rows ``values`` are, in order, or ``None``.

    That is: every value is a contiguous tensor of one shape, dtype and device,
    all in one storage, value ``k + 1`` starting where value ``k`` ends.
    """
    first = values[0]
    if not isinstance(first, torch.Tensor) or not first.is_contiguous():
        return None
    storage, start, numel = first.untyped_storage(), first.storage_offset(), first.numel()
    for k, value in enumerate(values):
        if not (
            isinstance(value, torch.Tensor)
            and value.shape == first.shape
            and value.dtype == first.dtype
            and value.device == first.device
            and value.is_contiguous()
            and value.untyped_storage().data_ptr() == storage.data_ptr()
            and value.storage_offset() == start + k * numel
        ):
            return None
    return first.as_strided((len(values), *first.shape), (numel, *first.stride()), start)


def collate_chips(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Batch chip samples like ``default_collate``, without copying chips read as one batch.

    The ``collate_fn`` for :class:`RasterChipDataset` in a ``DataLoader``. Its
    :meth:`~RasterChipDataset.__getitems__` reads a batch's chips into one
    image buffer and one mask buffer, and this function returns those buffers
    as the batch's ``image`` and ``mask`` instead of stacking copies of their
    rows (``torch.stack`` of 16 chips of 4 x 256 x 256 float32 copies 16 MiB).
    In a DataLoader worker, once it has done so, the dataset reads that
    worker's later batches straight into shared memory, which carries them to
    the main process without another copy. Everything else is batched by
    ``torch.utils.data.default_collate``: other tensors stacked, strings kept
    as a list. The result equals ``default_collate(samples)``; without a copy,
    the batch shares memory with the samples.

    Args:
        samples: Sample dicts with the same keys (e.g. a ``RasterChipDataset``'s).

    Returns:
        One dict: each key's values batched (``image`` ``(N, C, H, W)``, ``mask``
        ``(N, H, W)``, ``bounds`` ``(N, 4)``, ``crs`` a list of ``N`` strings, ...).

    Raises:
        ValueError: If ``samples`` is empty or the samples have different keys.

    Example:
        >>> from torch.utils.data import DataLoader
        >>> from geofm.data import sample_raster
        >>> ds = RasterChipDataset(sample_raster(), size=64)
        >>> batch = next(iter(DataLoader(ds, batch_size=4, collate_fn=collate_chips)))
        >>> batch["image"].shape, batch["crs"][0]
        (torch.Size([4, 3, 64, 64]), 'EPSG:32618')
    """
    from torch.utils.data import default_collate, get_worker_info

    if len(samples) == 0:
        raise ValueError("collate_chips needs at least one sample, got none.")
    keys = list(samples[0])
    for k, sample in enumerate(samples):
        if set(sample) != set(keys):
            raise ValueError(
                f"collate_chips expected every sample to have the keys {sorted(keys)} of "
                f"sample 0; sample {k} has {sorted(sample)}."
            )
    global _batches_leave_as_read
    batch: dict[str, Any] = {}
    for key in keys:
        values = [sample[key] for sample in samples]
        joined = _rows_of_one_tensor(values)
        if joined is None:
            batch[key] = default_collate(values)
        else:
            batch[key] = joined
            if get_worker_info() is not None:
                _batches_leave_as_read = True
    return batch
