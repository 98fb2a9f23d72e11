"""Helpers shared by the ``geofm.geo`` modules (a private module with public names).

rasterio is imported here, inside functions, so that ``import geofm.geo`` stays
cheap and works without it (see DESIGN.md, "layering"): :func:`import_rasterio`
is the one way geofm reaches rasterio (``geofm.datasets`` uses it through
``geofm.geo``); private helpers that only run after a public function imported it
take it from :func:`loaded_rasterio`, without a caller name of their own. Affine
transforms are rasterio's ``rasterio.transform.Affine`` (the ``affine`` package
rasterio depends on), never imported directly. The
missing-dependency message follows microsoft/torchgeo's ``lazy_import`` idea
(https://github.com/microsoft/torchgeo, ``torchgeo/datasets/utils.py``),
written independently.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Literal, get_args

from geofm.errors import MissingDependencyError

if TYPE_CHECKING:
    from types import ModuleType

    from rasterio.transform import Affine

__all__ = [
    "GEOTIFF_BLOCK",
    "TILED_GTIFF",
    "PathLike",
    "Resampling",
    "has_geotransform",
    "import_rasterio",
    "loaded_rasterio",
    "require_crs",
    "require_georeferencing",
    "resampling_enum",
    "window_transform",
]

PathLike = str | os.PathLike[str]

# Tile edge, in pixels, of every GeoTIFF geofm writes (a multiple of 16, as the format requires).
GEOTIFF_BLOCK = 256

#: Creation options of the whole-scene GeoTIFFs geofm writes (predict_raster,
#: reproject_to_utm): tiled in GEOTIFF_BLOCK x GEOTIFF_BLOCK blocks, deflate-compressed,
#: BigTIFF when the output could pass 4 GB. Spread into a rasterio profile.
TILED_GTIFF: dict[str, Any] = {
    "driver": "GTiff",
    "tiled": True,
    "blockxsize": GEOTIFF_BLOCK,
    "blockysize": GEOTIFF_BLOCK,
    "compress": "deflate",
    "BIGTIFF": "IF_SAFER",
}

Resampling = Literal["nearest", "bilinear", "cubic", "average", "mode", "min", "max", "med", "sum"]


def import_rasterio(caller: str, *, package: str = "geofm.geo") -> ModuleType:
    """Import and return rasterio (with its ``warp``, ``windows`` and ``transform`` modules).

    The one place geofm imports rasterio, lazily, so that ``import geofm``
    stays fast; readers in :mod:`geofm.datasets` use it too.

    Args:
        caller: Name of the function that needs rasterio, for the error message.
        package: Package of ``caller``, for the error message.

    Returns:
        The ``rasterio`` module.

    Raises:
        MissingDependencyError: If rasterio is not installed.

    Example:
        >>> rasterio = import_rasterio("read_raster")
        >>> rasterio.transform.from_origin(500000, 4000000, 10, 10).a
        10.0
    """
    try:
        import rasterio
        import rasterio.transform
        import rasterio.warp
        import rasterio.windows
    except ImportError as err:
        raise MissingDependencyError(
            f"rasterio is required for {package}.{caller}. Install it with: pip install rasterio."
        ) from err
    return rasterio  # type: ignore[no-any-return]  # rasterio ships no type stubs


def loaded_rasterio() -> ModuleType:
    """Return rasterio to a private helper that runs only after :func:`import_rasterio`.

    The public function that calls the helper has already imported rasterio (and
    reported a missing install under its own name), so the helper has no caller
    name of its own to give.

    Returns:
        The ``rasterio`` module, with ``warp``, ``windows`` and ``transform`` loaded.

    Example:
        >>> rasterio = import_rasterio("read_raster")
        >>> loaded_rasterio() is rasterio
        True
    """
    import rasterio

    return rasterio  # type: ignore[no-any-return]  # rasterio ships no type stubs


def window_transform(transform: Affine, row_off: float, col_off: float) -> Affine:
    """Transform of a window starting at ``(row_off, col_off)`` of a raster with ``transform``."""
    return transform @ type(transform).translation(col_off, row_off)


def require_crs(dataset: Any, path: PathLike, caller: str, *, hint: str = "") -> None:
    """Raise if an open rasterio dataset carries no CRS (``hint`` is appended to the message)."""
    if dataset.crs is None:
        raise ValueError(
            f"Raster '{path}' has no CRS, but geofm.geo.{caller} needs a georeferenced "
            "source (its output must carry the source's CRS). Assign one first, e.g. "
            f"`rio edit-info --crs EPSG:32618 {path}`.{hint}"
        )


def has_geotransform(dataset: Any) -> bool:
    """Whether an open rasterio dataset has a geotransform (GDAL reports none as the identity)."""
    return not dataset.transform.is_identity


def require_georeferencing(dataset: Any, path: PathLike, caller: str, *, hint: str = "") -> None:
    """Raise if an open rasterio dataset lacks a CRS or a geotransform (``hint`` is appended).

    A file with a CRS but no geotransform (or only ground control points)
    would otherwise be handled with the identity transform: pixel (col, row)
    at CRS coordinates (col, row), silently wrong.
    """
    require_crs(dataset, path, caller, hint=hint)
    if not has_geotransform(dataset):
        gcps = dataset.gcps[0] if dataset.gcps else []
        how = (
            f"It has {len(gcps)} ground control points: warp it onto a grid first, e.g. "
            f"`gdalwarp -r bilinear {path} warped.tif`."
            if gcps
            else "Assign one first, e.g. `rio edit-info --transform '[...]'`, or recreate it."
        )
        raise ValueError(
            f"Raster '{path}' has a CRS ({dataset.crs}) but no geotransform, so its pixels have "
            f"no position and geofm.geo.{caller} would place them at the identity transform. "
            + how
            + hint
        )


def resampling_enum(name: str, caller: str) -> Any:
    """Map a resampling name to rasterio's ``Resampling`` member."""
    rasterio = import_rasterio(caller)
    choices = get_args(Resampling)
    if name not in choices:
        raise ValueError(
            f"Unknown resampling {name!r} for geofm.geo.{caller}. "
            f"Expected one of: {', '.join(choices)}."
        )
    return getattr(rasterio.enums.Resampling, name)
