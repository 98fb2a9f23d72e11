"""Cut a raster into georeferenced tiles, and write / read a tile index.

The SpaceNet-7 split used by VICReg-SN7 (each 1024 x 1024 scene zero-padded to
1024 and cut into 16 patches of 256 x 256; sanagno/citiies_contrastive_learning,
``vicreg_pure/vicreg/main_vicreg_sn7.py``) is one call:
``tile_raster(scene, size=256, stride=256, pad="zero", out_dir=...)``.

The index is a GeoJSON FeatureCollection (one Polygon footprint per tile, with
the CRS named in the pre-RFC-7946 ``crs`` member because footprints stay in the
raster's CRS) or a CSV; both store the pixel window and the full affine
transform, so they round-trip exactly (``read_tile_index(p) == tiles``).
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import numpy as np

from geofm.errors import ShapeError
from geofm.geo._rio import PathLike, import_rasterio, require_crs, window_transform
from geofm.geo._window import PixelWindow, TilePadding, read_window, tile_offsets

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rasterio.transform import Affine

__all__ = ["Tile", "TilePadding", "read_tile_index", "tile_raster", "write_tile_index"]

_CSV_FIELDS = (
    "index",
    "grid_row",
    "grid_col",
    "row_off",
    "col_off",
    "height",
    "width",
    "a",
    "b",
    "c",
    "d",
    "e",
    "f",
    "left",
    "bottom",
    "right",
    "top",
    "crs",
    "path",
)


def _crs_to_text(crs: Any, *, urn: bool) -> str:
    epsg = crs.to_epsg()
    if epsg is None:
        return str(crs.to_wkt())
    return f"urn:ogc:def:crs:EPSG::{epsg}" if urn else f"EPSG:{epsg}"


def _crs_from_text(text: str) -> Any:
    rasterio = import_rasterio("read_tile_index")
    return rasterio.crs.CRS.from_user_input(text)


def _single_crs(tiles: Sequence[Tile]) -> Any:
    if not tiles:
        raise ValueError("write_tile_index got no tiles. Pass at least one Tile.")
    crs = tiles[0].crs
    if crs is None:
        raise ValueError("Tiles have no CRS; an index needs one. Tile a georeferenced raster.")
    others = {str(t.crs) for t in tiles if t.crs != crs}
    if others:
        raise ValueError(
            f"All tiles of one index must share a CRS; got {crs} and {sorted(others)}. "
            "Write one index per CRS."
        )
    return crs


def _relative_path(path: Path | None, base: Path) -> str:
    return "" if path is None else Path(os.path.relpath(path, base)).as_posix()


def _absolute_path(text: str, base: Path) -> Path | None:
    return None if not text else Path(os.path.normpath(base.resolve() / text))


def _check_footprint(tile: Tile, ring: Sequence[Sequence[float]], path: PathLike) -> None:
    expected = np.asarray(tile.footprint, dtype=float)
    got = np.asarray(ring, dtype=float)
    scale = max(1.0, float(np.abs(expected).max()))
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=0, atol=1e-9 * scale):
        raise ValueError(
            f"Tile {tile.index} in index '{path}' has a footprint {got.tolist()} that does not "
            f"match its transform and window (expected {expected.tolist()}). The index was "
            "edited or written in another CRS; regenerate it with write_tile_index."
        )


def _write_tile_file(src: Any, tile: Tile, band_indices: Sequence[int]) -> None:
    rasterio = import_rasterio("tile_raster")
    assert tile.path is not None  # set by tile_raster before calling
    array, mask = read_window(src, tile.window, band_indices)
    profile = {
        "driver": "GTiff",
        "height": tile.window.height,
        "width": tile.window.width,
        "count": len(band_indices),
        "dtype": array.dtype,
        "crs": tile.crs,
        "transform": tile.transform,
        "nodata": src.nodata,
        "compress": "deflate",
    }
    with rasterio.open(tile.path, "w", **profile) as dst:
        dst.write(array)
        for i, band in enumerate(band_indices, start=1):
            if src.descriptions[band - 1]:
                dst.set_band_description(i, src.descriptions[band - 1])
        valid = mask.all(axis=0)
        if not valid.all():
            # Padding and nodata are recorded as a mask band, never only as a value.
            dst.write_mask(valid.astype(np.uint8) * 255)


def write_tile_index(tiles: Sequence[Tile], path: PathLike) -> Path:
    """Write tiles to a GeoJSON (``.geojson``/``.json``) or CSV (``.csv``) index.

    Footprints stay in the tiles' CRS, which is stored explicitly (GeoJSON:
    the ``crs`` member, CSV: a ``crs`` column). Tile file paths are stored
    relative to the index's folder.

    Args:
        tiles: Tiles sharing one CRS, e.g. from :func:`tile_raster`.
        path: Index file to write; the suffix picks the format.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: If ``tiles`` is empty, mixes CRSs, has no CRS, or the suffix
            is not ``.geojson``, ``.json`` or ``.csv``.

    Example:
        >>> import tempfile, pathlib
        >>> from rasterio.crs import CRS
        >>> from rasterio.transform import Affine
        >>> tile = Tile(index=0, grid_row=0, grid_col=0, window=PixelWindow(0, 0, 2, 2),
        ...             transform=Affine(10, 0, 500000, 0, -10, 0), crs=CRS.from_epsg(32618))
        >>> p = write_tile_index([tile], pathlib.Path(tempfile.mkdtemp()) / "index.csv")
        >>> read_tile_index(p) == [tile]
        True
    """
    out = Path(path)
    suffix = out.suffix.lower()
    if suffix not in {".geojson", ".json", ".csv"}:
        raise ValueError(
            f"Unknown tile index format {out.suffix!r} for '{out}'. "
            "Use a .geojson, .json or .csv file name."
        )
    crs = _single_crs(tiles)
    base = out.parent.resolve()
    if suffix == ".csv":
        with out.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(_CSV_FIELDS)
            for t in tiles:
                w = t.window
                writer.writerow(
                    [t.index, t.grid_row, t.grid_col, w.row_off, w.col_off, w.height, w.width]
                    + [repr(float(v)) for v in t.transform[:6]]
                    + [repr(v) for v in t.bounds]
                    + [_crs_to_text(crs, urn=False), _relative_path(t.path, base)]
                )
        return out
    features = []
    for t in tiles:
        w = t.window
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [t.footprint]},
                "properties": {
                    "index": t.index,
                    "grid_row": t.grid_row,
                    "grid_col": t.grid_col,
                    "row_off": w.row_off,
                    "col_off": w.col_off,
                    "height": w.height,
                    "width": w.width,
                    "transform": [float(v) for v in t.transform[:6]],
                    "bounds": list(t.bounds),
                    "path": _relative_path(t.path, base) or None,
                },
            }
        )
    collection = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": _crs_to_text(crs, urn=True)}},
        "features": features,
    }
    out.write_text(json.dumps(collection))
    return out


def read_tile_index(path: PathLike) -> list[Tile]:
    """Read an index written by :func:`write_tile_index` (or :func:`tile_raster`).

    Args:
        path: ``.geojson``/``.json`` or ``.csv`` index.

    Returns:
        The tiles, in file order, equal to the ones written.

    Raises:
        ValueError: If the suffix is unknown, the GeoJSON has no ``crs`` member
            (geofm never guesses a CRS), or a footprint disagrees with its
            transform and window.

    Example:
        >>> import tempfile, pathlib
        >>> from geofm.data import sample_raster
        >>> index = pathlib.Path(tempfile.mkdtemp()) / "tiles.csv"
        >>> tiles = tile_raster(sample_raster(), size=112, index_path=index)  # 2 x 2 tiles
        >>> read_tile_index(index) == tiles, read_tile_index(index)[3].window
        (True, PixelWindow(row_off=112, col_off=112, height=112, width=112))
    """
    affine = import_rasterio("read_tile_index").transform.Affine
    src = Path(path)
    suffix = src.suffix.lower()
    base = src.parent
    tiles: list[Tile] = []
    if suffix == ".csv":
        with src.open(newline="") as f:
            for row in csv.DictReader(f):
                tiles.append(
                    Tile(
                        index=int(row["index"]),
                        grid_row=int(row["grid_row"]),
                        grid_col=int(row["grid_col"]),
                        window=PixelWindow(
                            int(row["row_off"]),
                            int(row["col_off"]),
                            int(row["height"]),
                            int(row["width"]),
                        ),
                        transform=affine(*(float(row[k]) for k in "abcdef")),
                        crs=_crs_from_text(row["crs"]),
                        path=_absolute_path(row["path"], base),
                    )
                )
        return tiles
    if suffix not in {".geojson", ".json"}:
        raise ValueError(
            f"Unknown tile index format {src.suffix!r} for '{src}'. "
            "Use a .geojson, .json or .csv file."
        )
    collection = json.loads(src.read_text())
    crs_member = collection.get("crs")
    if not crs_member:
        raise ValueError(
            f"Tile index '{src}' has no 'crs' member, so its footprints' CRS is unknown. "
            "geofm does not assume EPSG:4326; write the index with write_tile_index."
        )
    crs = _crs_from_text(crs_member["properties"]["name"])
    for feature in collection["features"]:
        p = feature["properties"]
        tile = Tile(
            index=int(p["index"]),
            grid_row=int(p["grid_row"]),
            grid_col=int(p["grid_col"]),
            window=PixelWindow(
                int(p["row_off"]), int(p["col_off"]), int(p["height"]), int(p["width"])
            ),
            transform=affine(*(float(v) for v in p["transform"])),
            crs=crs,
            path=_absolute_path(p["path"] or "", base),
        )
        _check_footprint(tile, feature["geometry"]["coordinates"][0], src)
        tiles.append(tile)
    return tiles


def tile_raster(
    src: PathLike,
    *,
    size: int,
    stride: int | None = None,
    pad: TilePadding = "zero",
    out_dir: PathLike | None = None,
    index_path: PathLike | None = None,
) -> list[Tile]:
    """Cut a raster into a grid of georeferenced tiles (and optionally write them).

    Tiles start every ``stride`` pixels from the top-left corner, row-major.
    ``pad`` decides what happens where the grid does not fit the raster:

    - ``"zero"``: edge tiles keep ``size`` and extend past the raster; the part
      outside is zeros, marked invalid in the written tile's mask band
      (VICReg-SN7's zero padding).
    - ``"drop"``: only tiles that lie fully inside the raster are kept.
    - ``"shift"``: the last tile of each axis is moved back to end at the edge,
      so no tile is padded (it overlaps its neighbour more).

    A raster smaller than ``size`` gives one padded tile (``"zero"``,
    ``"shift"``) or an error (``"drop"``).

    Args:
        src: Georeferenced raster.
        size: Tile edge, in pixels.
        stride: Step between tile origins, in pixels; defaults to ``size`` (no overlap).
        pad: Edge handling, see above.
        out_dir: If given, every tile is written there as a deflate-compressed
            GeoTIFF ``<stem>_r<row>_c<col>.tif`` with its own transform, the
            source's CRS, nodata and band descriptions, and a mask band where
            pixels are invalid; :attr:`Tile.path` points to it.
        index_path: If given, the tiles are also written to this index
            (``.geojson``, ``.json`` or ``.csv``, see :func:`write_tile_index`).

    Returns:
        The tiles, row-major, with their pixel windows in ``src``, transforms and CRS.

    Raises:
        MissingDependencyError: If rasterio is not installed.
        ValueError: If ``size``/``stride`` are not positive, ``src`` has no CRS,
            or an index suffix is unknown.
        ShapeError: If ``pad="drop"`` and the raster is smaller than ``size``.

    Example:
        >>> import tempfile, pathlib
        >>> from geofm.data import sample_raster  # 224 x 224 pixels
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> tiles = tile_raster(sample_raster(), size=64, stride=64, pad="zero",
        ...                     out_dir=folder / "tiles", index_path=folder / "tiles.geojson")
        >>> len(tiles), tiles[-1].window  # the last row and column of tiles is padded
        (16, PixelWindow(row_off=192, col_off=192, height=64, width=64))
        >>> read_tile_index(folder / "tiles.geojson") == tiles
        True
    """
    rasterio = import_rasterio("tile_raster")
    step = size if stride is None else stride
    if size < 1 or step < 1:
        raise ValueError(
            f"tile_raster needs size >= 1 and stride >= 1, got size={size}, stride={stride}."
        )
    if pad not in get_args(TilePadding):
        raise ValueError(
            f"Unknown pad {pad!r}. Expected one of: {', '.join(get_args(TilePadding))}."
        )
    folder = None if out_dir is None else Path(out_dir).resolve()
    with rasterio.open(src) as dataset:
        require_crs(dataset, src, "tile_raster")
        rows = tile_offsets(dataset.height, size, step, pad)
        cols = tile_offsets(dataset.width, size, step, pad)
        if not rows or not cols:
            raise ShapeError(
                f"Raster '{src}' ({dataset.height} x {dataset.width} pixels) is smaller than "
                f"one tile of {size} and pad='drop' keeps no tile. "
                "Use pad='zero' or a smaller size."
            )
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        band_indices = list(range(1, dataset.count + 1))
        tiles: list[Tile] = []
        for i, row_off in enumerate(rows):
            for j, col_off in enumerate(cols):
                window = PixelWindow(row_off, col_off, size, size)
                path = (
                    None if folder is None else folder / f"{Path(src).stem}_r{i:03d}_c{j:03d}.tif"
                )
                tile = Tile(
                    index=len(tiles),
                    grid_row=i,
                    grid_col=j,
                    window=window,
                    transform=window_transform(dataset.transform, row_off, col_off),
                    crs=dataset.crs,
                    path=path,
                )
                if path is not None:
                    _write_tile_file(dataset, tile, band_indices)
                tiles.append(tile)
    if index_path is not None:
        write_tile_index(tiles, index_path)
    return tiles


@dataclass(frozen=True)
class Tile:
    """One georeferenced tile of a raster.

    Args:
        index: Running number, row-major from 0.
        grid_row: Row of the tile in the tile grid.
        grid_col: Column of the tile in the tile grid.
        window: Pixels of the source raster the tile covers (may extend past
            its edges when padded).
        transform: Affine map from the tile's (col, row) pixel corners to CRS
            coordinates (rotation terms kept).
        crs: The source raster's ``rasterio.crs.CRS``.
        path: The written tile file, or ``None`` if tiles were not written.

    Example:
        >>> from rasterio.transform import Affine
        >>> t = Tile(index=0, grid_row=0, grid_col=0, window=PixelWindow(0, 0, 2, 3),
        ...          transform=Affine(10, 0, 100, 0, -10, 50), crs=None)
        >>> t.bounds
        (100.0, 30.0, 130.0, 50.0)
    """

    index: int
    grid_row: int
    grid_col: int
    window: PixelWindow
    transform: Affine
    crs: Any
    path: Path | None = None

    @property
    def footprint(self) -> list[list[float]]:
        """Closed ring of the tile's corner coordinates (5 ``[x, y]`` points, CRS units)."""
        w, h = self.window.width, self.window.height
        corners = [(0, 0), (w, 0), (w, h), (0, h), (0, 0)]
        return [[float(v) for v in self.transform @ c] for c in corners]

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """Axis-aligned envelope ``(left, bottom, right, top)`` of the footprint, CRS units."""
        xs = [p[0] for p in self.footprint]
        ys = [p[1] for p in self.footprint]
        return (min(xs), min(ys), max(xs), max(ys))
