"""Shared pieces of the dataset readers: the missing-dataset error and layout checks.

Readers never download: a directory that is missing or does not have the
expected layout raises :class:`DatasetNotFoundError`, whose message describes
the layout that was expected (torchgeo's ``DatasetNotFoundError`` idea).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from geofm.errors import GeofmError

__all__ = ["DatasetNotFoundError"]

PathLike = str | os.PathLike[str]


class DatasetNotFoundError(GeofmError, FileNotFoundError):
    """A dataset directory is missing or not laid out as the reader expects.

    Subclasses :class:`FileNotFoundError`, so ``except FileNotFoundError`` catches it.

    Example:
        >>> err = DatasetNotFoundError("no such folder")
        >>> isinstance(err, FileNotFoundError)
        True
    """


def require_dir(root: PathLike, *, dataset: str, layout: str) -> Path:
    """Return ``root`` as a Path, or raise a :class:`DatasetNotFoundError` describing ``layout``."""
    path = Path(os.fspath(root)).expanduser()
    if not path.is_dir():
        raise DatasetNotFoundError(
            f"{dataset}: dataset directory {str(path)!r} does not exist. geofm never downloads "
            f"data; download it yourself and pass its root folder, laid out as:\n{layout}"
        )
    return path


def layout_error(dataset: str, root: Path, problem: str, layout: str) -> DatasetNotFoundError:
    """Build the error for a directory that exists but does not have the expected layout."""
    return DatasetNotFoundError(
        f"{dataset}: {problem} under {str(root)!r}. Expected the layout:\n{layout}"
    )


def read_array(path: PathLike, *, reader: str) -> np.ndarray:
    """Read all bands of a raster file as ``(C, H, W)`` with rasterio (imported lazily)."""
    return read_with_profile(path, reader=reader)[0]


def read_with_profile(path: PathLike, *, reader: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Read all bands plus ``crs`` / ``transform`` / ``bounds`` of a raster file."""
    from geofm.geo._rio import import_rasterio

    rasterio = import_rasterio(reader, package="geofm.datasets")
    with rasterio.open(path) as src:
        data: np.ndarray = src.read()
        meta = {"crs": src.crs, "transform": src.transform, "bounds": tuple(src.bounds)}
    return data, meta
