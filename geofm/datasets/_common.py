"""Shared pieces of the dataset readers: a local-folder base class and raster reading.

Readers never download: a directory that is missing or does not have the
expected layout raises :class:`~geofm.errors.DatasetNotFoundError`, whose
message describes the layout that was expected (torchgeo's
``DatasetNotFoundError`` idea). A private module with public names.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset

from geofm.errors import DatasetNotFoundError
from geofm.geo import import_rasterio

__all__ = ["LocalDataset", "read_array"]

PathLike = str | os.PathLike[str]


class LocalDataset(Dataset[dict[str, torch.Tensor]]):
    """Base of the readers of a dataset in a local folder: the root check and layout errors.

    Subclasses name the expected folder layout, shown in every error, as a
    class keyword (``class MyReader(LocalDataset, layout="..."):``) and call
    ``super().__init__(root)`` first.

    Args:
        root: Dataset root folder.

    Raises:
        DatasetNotFoundError: If ``root`` is not a directory.

    Example:
        >>> class Toy(LocalDataset, layout="  <root>/a.txt"):
        ...     pass
        >>> Toy("/nonexistent")
        Traceback (most recent call last):
        ...
        geofm.errors.DatasetNotFoundError: Toy: dataset directory '/nonexistent' does not exist. ...
    """

    layout: ClassVar[str] = ""

    def __init_subclass__(cls, *, layout: str = "", **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if layout:
            cls.layout = layout

    def __init__(self, root: PathLike) -> None:
        super().__init__()
        path = Path(os.fspath(root)).expanduser()
        if not path.is_dir():
            raise DatasetNotFoundError(
                f"{type(self).__name__}: dataset directory {str(path)!r} does not exist. geofm "
                "never downloads data; download it yourself and pass its root folder, laid out "
                f"as:\n{self.layout}"
            )
        self.root = path

    def layout_error(self, problem: str) -> DatasetNotFoundError:
        """The error for a root that exists but does not have the expected layout.

        Args:
            problem: What is wrong, e.g. ``"split file val.txt missing"``.

        Returns:
            The error, to raise.
        """
        return DatasetNotFoundError(
            f"{type(self).__name__}: {problem} under {str(self.root)!r}. "
            f"Expected the layout:\n{self.layout}"
        )

    def read_split(self, split_file: Path, *templates: str) -> list[str]:
        """Names listed in ``split_file`` (one per line), checking each listed file exists.

        Args:
            split_file: Text file with one name per line.
            templates: Paths relative to the root that must exist for each name,
                with ``{}`` standing for the name (e.g. ``"output/{}.jpg"``).

        Returns:
            The names, in file order.

        Raises:
            DatasetNotFoundError: If the split file is missing or empty, or a file is missing.
        """
        if not split_file.is_file():
            raise self.layout_error(f"split file {split_file.name} missing")
        names = [n.strip() for n in split_file.read_text().splitlines() if n.strip()]
        if not names:
            raise self.layout_error(f"{split_file.name} is empty")
        missing = [t.format(n) for t in templates for n in names]
        missing = [m for m in missing if not (self.root / m).is_file()]
        if missing:
            raise self.layout_error(
                f"{len(missing)} files listed in {split_file.name} missing (e.g. {missing[0]!r})"
            )
        return names


def read_array(path: PathLike, *, reader: str, bands: Sequence[int] | None = None) -> np.ndarray:
    """Read the bands of a raster file as ``(C, H, W)`` through :func:`geofm.geo.import_rasterio`.

    Args:
        path: Any file GDAL reads (GeoTIFF, JPEG, PNG, ...).
        reader: Name of the calling dataset, for the missing-dependency message.
        bands: 1-based bands to read; ``None`` reads all.

    Returns:
        The pixels in the file's dtype.
    """
    rasterio = import_rasterio(reader, package="geofm.datasets")
    with rasterio.open(path) as src:
        data: np.ndarray = src.read(None if bands is None else list(bands))
    return data
