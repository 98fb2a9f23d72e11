"""Align a coarse target raster (e.g. VIIRS night lights) to image tiles.

EcoVision-LoRA builds its regression target this way: the VIIRS VNL v2 annual
composite is reprojected to the tiles' UTM zone with bilinear resampling, each
tile's bounding box selects a window of it, negative radiances are clipped to
0, and the window's sum (``lights_sum``, the target), mean and count of
non-zero pixels are stored (bayramos/Ecovision-LoRA,
``notebooks/1a_shanghai_pipeline.ipynb`` cell 12, ``1b_vegas_pipeline.ipynb``
cell 11).

geofm's definition, exact and documented: per tile CRS, the part of the target
covering the tiles is warped once (with ``resampling``) onto a grid in that
CRS at the target's own resolution; a tile then takes the warped pixels whose
centres fall inside its footprint (rotated footprints included) or, when it
is smaller than one target pixel and holds no centre, the pixel under its
centre. Invalid target pixels (nodata, mask, NaN) are ignored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

from geofm.geo._rio import (
    PathLike,
    Resampling,
    import_rasterio,
    loaded_rasterio,
    require_crs,
    resampling_enum,
    window_transform,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from rasterio.transform import Affine

    from geofm.geo.tiling import Tile

__all__ = ["TargetReduce", "align_target"]

TargetReduce = Literal["sum", "mean", "nonzero"]

_REDUCERS: dict[str, Callable[[np.ndarray], float]] = {
    "sum": lambda v: float(v.sum()),
    "mean": lambda v: float(v.mean()),
    "nonzero": lambda v: float(np.count_nonzero(v > 0)),
}


def _envelope(
    points: Sequence[tuple[float, float]],
) -> tuple[float, float, float, float]:
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return (min(xs), min(ys), max(xs), max(ys))


def _pixel_range(
    transform: Affine, bounds: tuple[float, float, float, float], margin: int
) -> tuple[int, int, int, int]:
    """Rows/cols ``(r0, r1, c0, c1)`` of grid pixels touching ``bounds``, plus ``margin``."""
    left, bottom, right, top = bounds
    inverse = ~transform
    uv = [inverse @ p for p in ((left, bottom), (left, top), (right, bottom), (right, top))]
    c0, r0, c1, r1 = _envelope(uv)
    return (
        int(np.floor(r0)) - margin,
        int(np.ceil(r1)) + margin,
        int(np.floor(c0)) - margin,
        int(np.ceil(c1)) + margin,
    )


def _warp_region(
    target: Any, band: int, crs: Any, bounds: tuple[float, float, float, float], method: Any
) -> tuple[np.ndarray, Affine] | None:
    """Warp the part of ``target`` covering ``bounds`` (in ``crs``) to ``crs``; invalid = NaN."""
    rasterio = loaded_rasterio()
    region = rasterio.warp.transform_bounds(crs, target.crs, *bounds, densify_pts=21)
    # A margin of 2 source pixels keeps the bilinear/cubic kernels complete at the edges.
    r0, r1, c0, c1 = _pixel_range(target.transform, region, margin=2)
    r0, c0 = max(r0, 0), max(c0, 0)
    r1, c1 = min(r1, target.height), min(c1, target.width)
    if r0 >= r1 or c0 >= c1:
        return None
    window = rasterio.windows.Window(c0, r0, c1 - c0, r1 - r0)
    source = target.read(band, window=window).astype(np.float64)
    source[target.read_masks(band, window=window) == 0] = np.nan
    src_transform = window_transform(target.transform, r0, c0)
    corners = [src_transform @ c for c in ((0, 0), (c1 - c0, 0), (0, r1 - r0), (c1 - c0, r1 - r0))]
    dst_transform, width, height = rasterio.warp.calculate_default_transform(
        target.crs, crs, c1 - c0, r1 - r0, *_envelope(corners)
    )
    warped = np.full((height, width), np.nan)
    rasterio.warp.reproject(
        source,
        warped,
        src_transform=src_transform,
        src_crs=target.crs,
        src_nodata=np.nan,
        dst_transform=dst_transform,
        dst_crs=crs,
        dst_nodata=np.nan,
        resampling=method,
    )
    return warped, dst_transform


def _tile_values(warped: np.ndarray, grid: Affine, tile: Tile) -> np.ndarray:
    """Warped pixels whose centres lie in the tile footprint (or the one under its centre)."""
    r0, r1, c0, c1 = _pixel_range(grid, tile.bounds, margin=1)
    r0, c0 = max(r0, 0), max(c0, 0)
    r1, c1 = min(r1, warped.shape[0]), min(c1, warped.shape[1])
    if r0 < r1 and c0 < c1:
        rows, cols = np.mgrid[r0:r1, c0:c1]  # (h, w) each
        xs, ys = grid @ (cols + 0.5, rows + 0.5)
        u, v = ~tile.transform @ (xs, ys)  # tile pixel coordinates of the centres
        inside = (u >= 0) & (u < tile.window.width) & (v >= 0) & (v < tile.window.height)
        if inside.any():
            values: np.ndarray = warped[r0:r1, c0:c1][inside]
            return values
    centre = tile.transform @ (tile.window.width / 2, tile.window.height / 2)
    col, row = (int(np.floor(c)) for c in ~grid @ centre)
    if 0 <= row < warped.shape[0] and 0 <= col < warped.shape[1]:
        return warped[row : row + 1, col]
    return np.empty(0)


def align_target(
    tiles: Sequence[Tile],
    target: PathLike,
    *,
    reduce: TargetReduce = "sum",
    clip_negative: bool = True,
    resampling: Resampling = "bilinear",
    band: int = 1,
) -> np.ndarray:
    """Reduce a target raster over every tile's footprint (EcoVision's night-light target).

    See the module docstring for the exact pixel selection. Values are taken
    after warping to the tiles' CRS, then (by default) negatives are clipped
    to 0 as EcoVision does for VIIRS (its radiances can be slightly negative),
    then reduced.

    Args:
        tiles: Tiles with CRS and transform, e.g. from :func:`~geofm.geo.tile_raster`
            or :func:`~geofm.geo.read_tile_index`; several CRSs are allowed.
        target: Georeferenced raster, any CRS (e.g. the global EPSG:4326 VIIRS composite).
        reduce: ``"sum"`` (EcoVision's ``lights_sum`` target), ``"mean"`` or
            ``"nonzero"`` (count of pixels > 0 after clipping, its ``lights_nonzero``).
        clip_negative: Clip negative values to 0 before reducing (EcoVision: yes).
            Pass ``False`` to keep them.
        resampling: Resampling used to warp the target (EcoVision: ``"bilinear"``).
        band: 1-based band of ``target`` to use.

    Returns:
        ``float64`` array with one value per tile, in order; NaN where the
        footprint has no valid target pixel.

    Shape:
        - Output: ``(len(tiles),)``.

    Raises:
        MissingDependencyError: If rasterio is not installed.
        ValueError: If ``reduce`` or ``resampling`` is unknown, ``band`` is out of
            range, or the target or a tile has no CRS.

    Example:
        >>> import tempfile, pathlib, rasterio
        >>> from rasterio.transform import from_origin
        >>> from geofm.geo import tile_raster
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> grid = dict(driver="GTiff", count=1, crs="EPSG:32618")
        >>> with rasterio.open(folder / "img.tif", "w", width=8, height=8, dtype="uint8",
        ...                    transform=from_origin(500000, 4000000, 10, 10), **grid) as d:
        ...     d.write(np.zeros((1, 8, 8), np.uint8))
        >>> with rasterio.open(folder / "lights.tif", "w", width=2, height=2, dtype="float32",
        ...                    transform=from_origin(500000, 4000000, 40, 40), **grid) as d:
        ...     d.write(np.array([[[1, 2], [3, -4]]], np.float32))
        >>> tiles = tile_raster(folder / "img.tif", size=4)
        >>> align_target(tiles, folder / "lights.tif", reduce="sum", resampling="nearest")
        array([1., 2., 3., 0.])
    """
    rasterio = import_rasterio("align_target")
    if reduce not in get_args(TargetReduce):
        raise ValueError(
            f"Unknown reduce {reduce!r}. Expected one of: {', '.join(get_args(TargetReduce))}."
        )
    method = resampling_enum(resampling, "align_target")
    result = np.full(len(tiles), np.nan)
    groups: dict[str, list[int]] = {}
    for i, tile in enumerate(tiles):
        if tile.crs is None:
            raise ValueError(
                f"Tile {tile.index} has no CRS, so its footprint cannot be matched to the "
                "target. Tile a georeferenced raster."
            )
        groups.setdefault(tile.crs.to_wkt(), []).append(i)
    with rasterio.open(target) as dataset:
        require_crs(dataset, target, "align_target")
        if not 1 <= band <= dataset.count:
            raise ValueError(
                f"band={band} is out of range for '{target}', which has {dataset.count} bands. "
                f"Pass a 1-based index in 1..{dataset.count}."
            )
        for members in groups.values():
            crs = tiles[members[0]].crs
            bounds = _envelope([tuple(p) for i in members for p in tiles[i].footprint])  # type: ignore[misc]
            region = _warp_region(dataset, band, crs, bounds, method)
            if region is None:
                continue
            warped, grid = region
            for i in members:
                values = _tile_values(warped, grid, tiles[i])
                values = values[~np.isnan(values)]
                if values.size == 0:
                    continue
                if clip_negative:
                    values = np.maximum(values, 0.0)
                result[i] = _REDUCERS[reduce](values)
    return result
