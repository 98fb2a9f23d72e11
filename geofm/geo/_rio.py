"""Helpers shared by the ``geofm.geo`` modules (a private module with public names).

rasterio is imported here, inside functions, so that ``import geofm.geo`` stays
cheap and works without it (see DESIGN.md, "layering"): :func:`import_rasterio`
is the one way geofm reaches rasterio (``geofm.datasets`` uses it through
``geofm.geo``). Affine transforms are rasterio's ``rasterio.transform.Affine``
(the ``affine`` package rasterio depends on), never imported directly. The
missing-dependency message follows microsoft/torchgeo's ``lazy_import`` idea
(https://github.com/microsoft/torchgeo, ``torchgeo/datasets/utils.py``),
written independently.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from geofm.errors import MissingDependencyError

if TYPE_CHECKING:
    from types import ModuleType

    from rasterio.transform import Affine

__all__ = [
    "GEOTIFF_BLOCK",
    "PathLike",
    "Resampling",
    "check_dst",
    "import_rasterio",
    "require_crs",
    "resampling_enum",
    "window_transform",
]

PathLike = str | os.PathLike[str]

# Tile edge, in pixels, of every GeoTIFF geofm writes (a multiple of 16, as the format requires).
GEOTIFF_BLOCK = 256

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


def window_transform(transform: Affine, row_off: float, col_off: float) -> Affine:
    """Transform of a window starting at ``(row_off, col_off)`` of a raster with ``transform``."""
    return transform @ type(transform).translation(col_off, row_off)


def require_crs(dataset: Any, path: PathLike, caller: str) -> None:
    """Raise if an open rasterio dataset carries no CRS."""
    if dataset.crs is None:
        raise ValueError(
            f"Raster '{path}' has no CRS, but geofm.geo.{caller} needs a georeferenced "
            "source (its output must carry the source's CRS). Assign one first, e.g. "
            f"`rio edit-info --crs EPSG:32618 {path}`."
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


def check_dst(dst: PathLike, *, overwrite: bool, caller: str) -> Path:
    """Validate an output path: its folder must exist; it may exist only if ``overwrite``."""
    path = Path(dst)
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"Output folder '{path.parent}' of geofm.geo.{caller} does not exist. Create it first."
        )
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"Output '{path}' of geofm.geo.{caller} already exists. "
            "Pass overwrite=True to replace it."
        )
    return path
