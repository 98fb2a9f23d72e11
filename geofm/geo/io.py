"""Read rasters into typed arrays with an explicit validity mask.

Windowed reading follows rasterio's window model
(https://rasterio.readthedocs.io/en/stable/topics/windowed-rw.html); the
validity mask is GDAL's mask band (RFC 15, https://gdal.org/development/rfc/rfc15_nodatabitmask.html),
which merges nodata values, internal masks and alpha bands. geofm never hands
back a nodata value as if it were data: every read returns the pixels *and*
a boolean mask, and padding outside the raster is marked invalid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from geofm.geo._rio import PathLike, import_rasterio, window_transform
from geofm.geo._window import PixelWindow, WindowLike, band_indices, read_window

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rasterio.transform import Affine

__all__ = ["PixelWindow", "RasterData", "RasterProfile", "WindowLike", "read_raster"]


def read_raster(
    path: PathLike,
    *,
    window: WindowLike | None = None,
    bands: Sequence[int] | None = None,
) -> RasterData:
    """Read a raster (or a window of it) with its validity mask and georeferencing.

    Nodata is returned as a mask, never as a value: :attr:`RasterData.mask` is
    ``False`` where GDAL's mask band says the pixel is invalid (nodata value,
    internal mask or alpha band), where a floating-point value is NaN or
    infinite, and outside the raster when ``window`` extends past its edges
    (those pixels are 0 in :attr:`RasterData.array`).

    Args:
        path: Any file GDAL can open (GeoTIFF, VRT, ...).
        window: Pixels to read (:class:`PixelWindow` or ``rasterio.windows.Window``
            with whole-pixel values); may extend past the raster. ``None`` reads all.
        bands: 1-based band indices to read, in that order. ``None`` reads all.

    Returns:
        :class:`RasterData` with ``array`` and ``mask`` of shape ``(C, H, W)`` and
        a :class:`RasterProfile` whose transform is that of the window.

    Raises:
        MissingDependencyError: If rasterio is not installed.
        ShapeError: If a band index is out of range.
        ValueError: If a window value is not a whole number of pixels.

    Example:
        >>> import tempfile, pathlib, rasterio
        >>> from rasterio.transform import from_origin
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.tif"
        >>> with rasterio.open(path, "w", driver="GTiff", width=4, height=3, count=1,
        ...                    dtype="uint8", nodata=0, crs="EPSG:32618",
        ...                    transform=from_origin(500000, 4000000, 10, 10)) as dst:
        ...     dst.write(np.arange(12, dtype=np.uint8).reshape(1, 3, 4))
        >>> data = read_raster(path, window=PixelWindow(row_off=0, col_off=0, height=2, width=2))
        >>> data.array.shape, data.mask.sum().item(), data.profile.crs.to_epsg()
        ((1, 2, 2), 3, 32618)
    """
    rasterio = import_rasterio("read_raster")
    with rasterio.open(path) as src:
        indexes = band_indices(bands, src.count, path)
        win = (
            PixelWindow(0, 0, src.height, src.width)
            if window is None
            else PixelWindow.from_window(window)
        )
        array, mask = read_window(src, win, indexes)
        profile = RasterProfile(
            crs=src.crs,
            transform=window_transform(src.transform, win.row_off, win.col_off),
            nodata=None if src.nodata is None else float(src.nodata),
            band_descriptions=tuple(src.descriptions[i - 1] for i in indexes),
            band_indices=tuple(indexes),
            dtype=str(array.dtype),
            height=win.height,
            width=win.width,
        )
    return RasterData(array=array, mask=mask, profile=profile)


@dataclass(frozen=True)
class RasterProfile:
    """Georeferencing and metadata of a read (part of a) raster.

    Args:
        crs: Coordinate reference system (``rasterio.crs.CRS``), or ``None``
            when the file has none.
        transform: Affine map from (col, row) pixel corners of the returned
            array to CRS coordinates (rotation terms kept as in the file).
        nodata: The file's nodata value, for information only: invalid pixels
            are reported by :attr:`RasterData.mask`.
        band_descriptions: One description per returned band (``None`` where the
            file has none).
        band_indices: The 1-based band indices that were read.
        dtype: NumPy dtype name of the pixel values, e.g. ``"uint8"``.
        height: Rows of the returned array.
        width: Columns of the returned array.

    Example:
        >>> from rasterio.transform import Affine
        >>> p = RasterProfile(crs=None, transform=Affine(10, 0, 0, 0, -10, 0), nodata=None,
        ...                   band_descriptions=(None,), band_indices=(1,), dtype="uint8",
        ...                   height=2, width=3)
        >>> p.res
        (10.0, 10.0)
    """

    crs: Any
    transform: Affine
    nodata: float | None
    band_descriptions: tuple[str | None, ...]
    band_indices: tuple[int, ...]
    dtype: str
    height: int
    width: int

    @property
    def count(self) -> int:
        """Number of bands read."""
        return len(self.band_indices)

    @property
    def res(self) -> tuple[float, float]:
        """Pixel size ``(x, y)`` in CRS units, from the transform's column and row vectors."""
        t = self.transform
        return (float(np.hypot(t.a, t.d)), float(np.hypot(t.b, t.e)))


@dataclass(frozen=True)
class RasterData:
    """Pixels of a raster with their validity mask and georeferencing.

    Args:
        array: Pixel values in the file's dtype. Invalid pixels hold whatever the
            file stores there (often the nodata value) or ``0`` outside the raster;
            never use them without :attr:`mask`.
        mask: ``True`` where the pixel holds valid data, per band.
        profile: CRS, transform, nodata and band metadata.

    Shape:
        - array: ``(C, H, W)``.
        - mask: ``(C, H, W)``, bool.

    Example:
        >>> from rasterio.transform import Affine
        >>> p = RasterProfile(crs=None, transform=Affine.identity(), nodata=0.0,
        ...                   band_descriptions=(None,), band_indices=(1,), dtype="uint8",
        ...                   height=1, width=2)
        >>> d = RasterData(np.array([[[0, 7]]], dtype=np.uint8), np.array([[[False, True]]]), p)
        >>> int(d.masked().sum())
        7
    """

    array: np.ndarray
    mask: np.ndarray
    profile: RasterProfile

    def masked(self) -> np.ma.MaskedArray[Any, Any]:
        """Return the pixels as a NumPy masked array (masked where invalid).

        Returns:
            ``np.ma.MaskedArray`` of shape ``(C, H, W)``.

        Example:
            >>> from rasterio.transform import Affine
            >>> p = RasterProfile(crs=None, transform=Affine.identity(), nodata=None,
            ...                   band_descriptions=(None,), band_indices=(1,), dtype="float32",
            ...                   height=1, width=1)
            >>> d = RasterData(np.zeros((1, 1, 1), np.float32), np.ones((1, 1, 1), bool), p)
            >>> d.masked().count()
            np.int64(1)
        """
        return np.ma.MaskedArray(self.array, mask=~self.mask)
