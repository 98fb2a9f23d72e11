"""Cut a raster into georeferenced tiles, and write / read a tile index.

The SpaceNet-7 split used by VICReg-SN7 (each 1024 x 1024 scene zero-padded to
1024 and cut into 16 patches of 256 x 256; sanagno/citiies_contrastive_learning,
``vicreg_pure/vicreg/main_vicreg_sn7.py``) is one call:
``tile_raster(scene, size=256, stride=256, pad="zero", out_dir=...)``.

The index is a GeoJSON FeatureCollection (one Polygon footprint per tile, with
the CRS named in the pre-RFC-7946 ``crs`` member because footprints stay in the
raster's CRS) or a CSV; both store the pixel window and the full affine
transform, so they round-trip exactly (``read_tile_index(p) == tiles``).
Reading checks what an edit could break: footprints and bounds must match the
transforms, one CRS per index, and that CRS must fit the coordinates (degrees
within [-360, 360] x [-90, 90]; a projected CRS's coordinates must map to
longitudes and latitudes near its EPSG area of use and give pixels of at least
a millimetre).

Writing goes through ``geofm/_atomic.py``: tiles are written into a
temporary folder inside ``out_dir`` and moved into place only once all are
complete; the index is written to a temporary file and renamed. Existing
tiles of the same source are never mixed with new ones: they are refused, or
all replaced with ``overwrite=True``.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import numpy as np

from geofm._atomic import (
    atomic_output,
    check_output,
    commit,
    create_temp_dir,
    remove_path,
    remove_stale_temps,
    same_file,
)
from geofm.errors import ShapeError
from geofm.geo._progress import progress_bar
from geofm.geo._rio import (
    PathLike,
    import_rasterio,
    loaded_rasterio,
    require_georeferencing,
    window_transform,
)
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
_INDEX_SUFFIXES = (".geojson", ".json", ".csv")
_WKT2_BBOX = re.compile(r"BBOX\[([-+0-9.eE]+),([-+0-9.eE]+),([-+0-9.eE]+),([-+0-9.eE]+)\]")
# How far (degrees) coordinates may lie outside a projected CRS's EPSG area of use
# (UTM zones are routinely used a few degrees beyond their 6 degrees, e.g. one zone per city).
_AREA_MARGIN_DEG = 10.0
_MIN_PIXEL_METRES = 1e-3  # smaller "pixels" in a metric CRS are degrees under a wrong label


def _index_suffix(path: Path, *, writing: bool) -> str:
    suffix = path.suffix.lower()
    if suffix not in _INDEX_SUFFIXES:
        raise ValueError(
            f"Unknown tile index format {path.suffix!r} for '{path}'. "
            f"Use a .geojson, .json or .csv file{' name' if writing else ''}."
        )
    return suffix


def _tile_name_pattern(stem: str) -> re.Pattern[str]:
    """File names tile_raster gives the tiles of a source with this stem."""
    return re.compile(rf"^{re.escape(stem)}_r[0-9]+_c[0-9]+\.tif$")


def _crs_to_text(crs: Any, *, urn: bool) -> str:
    epsg = crs.to_epsg()
    if epsg is None:
        return str(crs.to_wkt())
    return f"urn:ogc:def:crs:EPSG::{epsg}" if urn else f"EPSG:{epsg}"


def _crs_from_text(text: str) -> Any:
    rasterio = loaded_rasterio()
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


def _check_stored(
    tile: Tile, what: str, got: Sequence[Any], expected: Sequence[Any], path: PathLike
) -> None:
    """Refuse an index row whose stored ``bounds`` / ``footprint`` is not the tile's own."""
    want = np.asarray(expected, dtype=float)
    have = np.asarray(got, dtype=float)
    scale = max(1.0, float(np.abs(want).max()))
    if have.shape != want.shape or not np.allclose(have, want, rtol=0, atol=1e-9 * scale):
        raise ValueError(
            f"Tile {tile.index} in index '{path}' has {what} {have.tolist()} that "
            f"{'do' if what == 'bounds' else 'does'} not match its transform and window "
            f"(expected {want.tolist()}). The index was "
            "edited or written in another CRS; regenerate it with write_tile_index."
        )


def _crs_name(crs: Any) -> str:
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg is not None else "its custom CRS"


def _area_of_use(crs: Any) -> tuple[float, float, float, float] | None:
    """``(south, west, north, east)`` in degrees from the CRS's WKT2 ``BBOX``, if it has one."""
    match = _WKT2_BBOX.search(crs.to_wkt(version="WKT2_2019"))
    if match is None:
        return None
    south, west, north, east = (float(v) for v in match.groups())
    return south, west, north, east


def _lon_within(lon: float, west: float, east: float, margin: float) -> bool:
    """Whether ``lon`` lies on the arc from ``west`` east to ``east``, widened by ``margin``."""
    span = (east - west) % 360.0 or (360.0 if east != west else 0.0)
    if span + 2 * margin >= 360.0:
        return True
    return (lon - (west - margin)) % 360.0 <= span + 2 * margin


def _check_crs_fits(crs: Any, tiles: Sequence[Tile], path: PathLike) -> None:
    """Raise if the index's CRS cannot be the CRS its coordinates are written in."""
    rasterio = loaded_rasterio()
    envelopes = np.array([t.bounds for t in tiles], dtype=float)  # (n, 4)
    left, bottom = envelopes[:, 0].min(), envelopes[:, 1].min()
    right, top = envelopes[:, 2].max(), envelopes[:, 3].max()
    box = f"({left:.10g}, {bottom:.10g}, {right:.10g}, {top:.10g})"
    fix = (
        "The CRS stored in the index contradicts its coordinates (an edited or mislabelled "
        "index); correct the CRS or regenerate the index with write_tile_index."
    )
    if crs.is_geographic:
        # Rasters past the antimeridian (e.g. 0-360 grids) are legitimate: x in [-360, 360].
        if left < -360.0 or right > 360.0 or bottom < -90.0 - 1e-9 or top > 90.0 + 1e-9:
            raise ValueError(
                f"Tile index '{path}' says its coordinates are in {_crs_name(crs)} (degrees), "
                f"but its tiles' bounds {box} are not longitudes and latitudes (expected x in "
                f"[-360, 360] and y in [-90, 90]). {fix}"
            )
        return
    metres = float(crs.linear_units_factor[1])
    pixel = min(
        min(math.hypot(t.transform.a, t.transform.d), math.hypot(t.transform.b, t.transform.e))
        for t in tiles
    )
    if pixel * metres < _MIN_PIXEL_METRES:
        raise ValueError(
            f"Tile index '{path}' says its coordinates are in {_crs_name(crs)} "
            f"({crs.linear_units}), but its pixels are {pixel * metres:.3g} m wide, which looks "
            f"like degrees (bounds {box}). {fix}"
        )
    xs = [left, right, left, right, (left + right) / 2]
    ys = [bottom, bottom, top, top, (bottom + top) / 2]
    try:
        lons, lats = rasterio.warp.transform(crs, "EPSG:4326", xs, ys)
    except Exception as err:  # PROJ refuses coordinates outside the projection's domain
        raise ValueError(
            f"Tile index '{path}': its tiles' bounds {box} are not valid coordinates of "
            f"{_crs_name(crs)} ({err}). {fix}"
        ) from err
    points = np.array([lons, lats], dtype=float)
    if not np.isfinite(points).all() or np.abs(points[1]).max() > 90.0:
        raise ValueError(
            f"Tile index '{path}': its tiles' bounds {box} are outside the domain of "
            f"{_crs_name(crs)}. {fix}"
        )
    area = _area_of_use(crs)
    if area is None:
        return
    south, west, north, east = area
    m = _AREA_MARGIN_DEG
    outside = [
        (float(lon), float(lat))
        for lon, lat in zip(lons, lats, strict=True)
        if not (south - m <= lat <= north + m and _lon_within(float(lon), west, east, m))
    ]
    if outside:
        lon, lat = outside[0]
        raise ValueError(
            f"Tile index '{path}' says its coordinates are in {_crs_name(crs)}, whose area of "
            f"use is lon [{west:g}, {east:g}], lat [{south:g}, {north:g}], but its tiles' bounds "
            f"{box} lie at lon {lon:.4g}, lat {lat:.4g}, more than {m:g} degrees outside. {fix}"
        )


def _write_tile_file(src: Any, tile: Tile, band_indices: Sequence[int], path: Path) -> None:
    rasterio = loaded_rasterio()
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
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array)
        for i, band in enumerate(band_indices, start=1):
            if src.descriptions[band - 1]:
                dst.set_band_description(i, src.descriptions[band - 1])
        valid = mask.all(axis=0)
        if not valid.all():
            # Padding and nodata are recorded as a mask band, never only as a value.
            dst.write_mask(valid.astype(np.uint8) * 255)


def write_tile_index(tiles: Sequence[Tile], path: PathLike, *, overwrite: bool = False) -> Path:
    """Write tiles to a GeoJSON (``.geojson``/``.json``) or CSV (``.csv``) index.

    Footprints stay in the tiles' CRS, which is stored explicitly (GeoJSON:
    the ``crs`` member, CSV: a ``crs`` column). Tile file paths are stored
    relative to the index's folder. The file is written atomically (temporary
    file, ``fsync``, rename; see ``geofm/_atomic.py``).

    Args:
        tiles: Tiles sharing one CRS, e.g. from :func:`tile_raster`.
        path: Index file to write; the suffix picks the format.
        overwrite: Replace ``path`` if it exists.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: If ``tiles`` is empty, mixes CRSs, has no CRS, the suffix
            is not ``.geojson``, ``.json`` or ``.csv``, or ``path`` is one of the
            tile files.
        FileExistsError: If ``path`` exists and ``overwrite`` is false (also when
            it is created by another writer while this one writes).
        FileNotFoundError: If ``path``'s folder does not exist.

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
    suffix = _index_suffix(out, writing=True)
    crs = _single_crs(tiles)
    tile_files = [t.path for t in tiles if t.path is not None]
    check_output(out, inputs=tile_files, overwrite=overwrite, caller="write_tile_index")
    base = out.parent.resolve()
    if suffix == ".csv":
        with (
            atomic_output(out, overwrite=overwrite, caller="write_tile_index") as tmp,
            tmp.open("w", newline="") as f,
        ):
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
    with atomic_output(out, overwrite=overwrite, caller="write_tile_index") as tmp:
        tmp.write_text(json.dumps(collection))
    return out


def read_tile_index(path: PathLike) -> list[Tile]:
    """Read an index written by :func:`write_tile_index` (or :func:`tile_raster`).

    Args:
        path: ``.geojson``/``.json`` or ``.csv`` index.

    Returns:
        The tiles, in file order, equal to the ones written.

    Raises:
        ValueError: If the suffix is unknown, the GeoJSON has no ``crs`` member
            (geofm never guesses a CRS), a footprint or bounds disagree with
            their transform and window, a CSV mixes CRSs, or the CRS contradicts
            the coordinates (e.g. metres labelled EPSG:4326, degrees labelled
            UTM, or points far outside the CRS's area of use).

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
    suffix = _index_suffix(src, writing=False)
    base = src.parent
    tiles: list[Tile] = []
    if suffix == ".csv":
        crs_texts: dict[str, Any] = {}
        with src.open(newline="") as f:
            for row in csv.DictReader(f):
                text = row["crs"]
                if text not in crs_texts:
                    crs_texts[text] = _crs_from_text(text)
                if len(crs_texts) > 1:
                    raise ValueError(
                        f"Tile index '{src}' mixes CRSs in its crs column "
                        f"({', '.join(sorted(crs_texts))}); an index has one CRS. The index was "
                        "edited; regenerate it with write_tile_index (one index per CRS)."
                    )
                tile = Tile(
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
                    crs=crs_texts[text],
                    path=_absolute_path(row["path"], base),
                )
                stored = [float(row[k]) for k in ("left", "bottom", "right", "top")]
                _check_stored(tile, "bounds", stored, tile.bounds, src)
                tiles.append(tile)
        if tiles:
            _check_crs_fits(tiles[0].crs, tiles, src)
        return tiles
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
        _check_stored(
            tile, "a footprint", feature["geometry"]["coordinates"][0], tile.footprint, src
        )
        if "bounds" in p:
            _check_stored(tile, "bounds", p["bounds"], tile.bounds, src)
        tiles.append(tile)
    if tiles:
        _check_crs_fits(crs, tiles, src)
    return tiles


def tile_raster(
    src: PathLike,
    *,
    size: int,
    stride: int | None = None,
    pad: TilePadding = "zero",
    out_dir: PathLike | None = None,
    index_path: PathLike | None = None,
    overwrite: bool = False,
    progress: bool = False,
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

    Written tiles never mix with an earlier run's: if ``out_dir`` already holds
    tiles of this source (files ``<stem>_r<row>_c<col>.tif``), the call is
    refused before anything is written, unless ``overwrite=True``, which
    replaces them all (also those this grid no longer has). The new tiles are
    written into a temporary folder inside ``out_dir`` and moved into place only
    when all are complete, so a failed or killed run adds no tile (the next run
    removes the temporary folder of a dead process). Other files in ``out_dir``
    are left alone.

    Args:
        src: Georeferenced raster.
        size: Tile edge, in pixels.
        stride: Step between tile origins, in pixels; defaults to ``size`` (no overlap).
        pad: Edge handling, see above.
        out_dir: If given, every tile is written there as a deflate-compressed
            GeoTIFF ``<stem>_r<row>_c<col>.tif`` with its own transform, the
            source's CRS, nodata and band descriptions, and a mask band where
            pixels are invalid; :attr:`Tile.path` points to it. Created if missing.
        index_path: If given, the tiles are also written to this index
            (``.geojson``, ``.json`` or ``.csv``, see :func:`write_tile_index`);
            its suffix and folder are checked before anything is written.
        overwrite: Replace existing tiles of this source in ``out_dir`` and an
            existing ``index_path``.
        progress: Show a tqdm progress bar over the tiles written to
            ``out_dir`` (total: the number of tiles), if tqdm is installed;
            without tqdm a log line (once per process) says why there is none.
            Nothing is shown without ``out_dir``, where no tile is written.

    Returns:
        The tiles, row-major, with their pixel windows in ``src``, transforms and CRS.

    Raises:
        MissingDependencyError: If rasterio is not installed.
        ValueError: If ``size``/``stride`` are not positive, ``src`` has no CRS
            or no geotransform, an index suffix is unknown, or a tile or the
            index would be ``src`` itself.
        ShapeError: If ``pad="drop"`` and the raster is smaller than ``size``.
        FileExistsError: If ``out_dir`` holds tiles of ``src`` or ``index_path``
            exists, and ``overwrite`` is false.
        FileNotFoundError: If ``index_path``'s folder does not exist.

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
    index = None if index_path is None else Path(index_path)
    if index is not None:
        _index_suffix(index, writing=True)
    folder = None if out_dir is None else Path(out_dir).resolve()
    if folder is not None and folder.exists() and not folder.is_dir():
        raise NotADirectoryError(
            f"out_dir '{folder}' of geofm.geo.tile_raster is a file, not a folder. "
            "Pass a folder (it is created if missing)."
        )
    stem = Path(src).stem
    with rasterio.open(src) as dataset:
        require_georeferencing(dataset, src, "tile_raster")
        rows = tile_offsets(dataset.height, size, step, pad)
        cols = tile_offsets(dataset.width, size, step, pad)
        if not rows or not cols:
            raise ShapeError(
                f"Raster '{src}' ({dataset.height} x {dataset.width} pixels) is smaller than "
                f"one tile of {size} and pad='drop' keeps no tile. "
                "Use pad='zero' or a smaller size."
            )
        tiles = [
            Tile(
                index=i * len(cols) + j,
                grid_row=i,
                grid_col=j,
                window=PixelWindow(row_off, col_off, size, size),
                transform=window_transform(dataset.transform, row_off, col_off),
                crs=dataset.crs,
                path=None if folder is None else folder / f"{stem}_r{i:03d}_c{j:03d}.tif",
            )
            for i, row_off in enumerate(rows)
            for j, col_off in enumerate(cols)
        ]
        if folder is not None:
            _check_tile_folder(folder, stem, tiles, src, overwrite=overwrite)
        # An index inside an out_dir this run creates (the CLI's default) cannot exist yet.
        index_in_new_folder = (
            index is not None
            and folder is not None
            and not folder.exists()
            and index.parent.resolve() == folder
        )
        if index is not None and not index_in_new_folder:
            tile_files = [t.path for t in tiles if t.path is not None]
            check_output(
                index, inputs=[src, *tile_files], overwrite=overwrite, caller="tile_raster"
            )
        if folder is not None:
            _write_tiles(dataset, tiles, folder, stem, overwrite=overwrite, progress=progress)
    if index is not None:
        write_tile_index(tiles, index, overwrite=overwrite)
    return tiles


def _existing_tiles(folder: Path, stem: str) -> list[Path]:
    if not folder.is_dir():
        return []
    pattern = _tile_name_pattern(stem)
    return sorted(p for p in folder.iterdir() if pattern.match(p.name))


def _check_tile_folder(
    folder: Path, stem: str, tiles: Sequence[Tile], src: PathLike, *, overwrite: bool
) -> None:
    """Refuse, before writing, tiles that would be ``src`` or mix with an earlier run's."""
    for tile in tiles:
        assert tile.path is not None  # tile_raster sets every path when out_dir is given
        if same_file(tile.path, src):
            raise ValueError(
                f"Tile file '{tile.path}' of geofm.geo.tile_raster is its input '{src}'; "
                "writing it would destroy the input. Choose another out_dir."
            )
    existing = _existing_tiles(folder, stem)
    if existing and not overwrite:
        shown = ", ".join(p.name for p in existing[:3]) + (", ..." if len(existing) > 3 else "")
        raise FileExistsError(
            f"Folder '{folder}' already holds {len(existing)} tiles of '{stem}' ({shown}). "
            "Pass overwrite=True to replace them all (tiles of an earlier grid included), "
            "or choose another out_dir."
        )


def _write_tiles(
    dataset: Any,
    tiles: Sequence[Tile],
    folder: Path,
    stem: str,
    *,
    overwrite: bool,
    progress: bool,
) -> None:
    """Write all tiles into a temporary folder in ``folder``, then move them into place."""
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(folder)
    staging = create_temp_dir(folder / f"{stem}_tiles")
    band_indices = list(range(1, dataset.count + 1))
    moved: list[Path] = []
    bar = (
        progress_bar(len(tiles), unit="tile", desc="tile_raster", caller="tile_raster")
        if progress
        else None
    )
    try:
        for tile in tiles:
            assert tile.path is not None  # tile_raster sets every path when out_dir is given
            _write_tile_file(dataset, tile, band_indices, staging / tile.path.name)
            if bar is not None:
                bar.update(1)
        if overwrite:  # the earlier run's tiles that this grid does not rewrite
            keep = {t.path for t in tiles}
            for old in _existing_tiles(folder, stem):
                if old not in keep:
                    old.unlink()
        for tile in tiles:
            assert tile.path is not None
            commit(staging / tile.path.name, tile.path, overwrite=overwrite, caller="tile_raster")
            moved.append(tile.path)
    except BaseException:
        if not overwrite:  # another writer raced us: take back what this run moved in
            for path in moved:
                remove_path(path)
        remove_path(staging)
        if created:
            with contextlib.suppress(OSError):  # only if this run left it empty
                folder.rmdir()
        raise
    finally:
        if bar is not None:
            bar.close()
    remove_path(staging)


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
