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
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from geofm.errors import ShapeError
from geofm.geo._rio import PathLike, import_rasterio, window_transform

if TYPE_CHECKING:
    from collections.abc import Sequence

    from affine import Affine

__all__ = ["PixelWindow", "RasterData", "RasterProfile", "WindowLike", "read_raster"]


def _as_int(value: float, name: str) -> int:
    if float(value) != int(value):
        raise ValueError(
            f"Window {name} must be a whole number of pixels, got {value}. "
            "Round the window first (e.g. window.round_offsets().round_lengths())."
        )
    return int(value)


def _resolve_bands(bands: Sequence[int] | None, count: int, path: PathLike) -> list[int]:
    if bands is None:
        return list(range(1, count + 1))
    chosen = list(bands)
    if not chosen:
        raise ValueError(f"bands is empty. Pass 1-based band indices in 1..{count}, or None.")
    bad = [b for b in chosen if not isinstance(b, int | np.integer) or not 1 <= b <= count]
    if bad:
        raise ShapeError(
            f"Band indices {bad} are out of range for '{path}', which has {count} bands. "
            f"Pass 1-based indices in 1..{count}."
        )
    return [int(b) for b in chosen]


def _read_window(
    dataset: Any, window: PixelWindow, band_indices: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Read ``window`` (possibly partly outside) from an open dataset: values and validity.

    Pixels outside the raster are 0 and invalid; NaN values are invalid.
    """
    indexes = list(band_indices)
    dtype = dataset.dtypes[indexes[0] - 1]
    array = np.zeros((len(indexes), window.height, window.width), dtype=dtype)
    mask = np.zeros(array.shape, dtype=bool)
    r0, r1 = max(window.row_off, 0), min(window.row_stop, dataset.height)
    c0, c1 = max(window.col_off, 0), min(window.col_stop, dataset.width)
    if r0 < r1 and c0 < c1:
        rasterio = import_rasterio("read_raster")
        inner = rasterio.windows.Window(c0, r0, c1 - c0, r1 - r0)
        rows = slice(r0 - window.row_off, r1 - window.row_off)
        cols = slice(c0 - window.col_off, c1 - window.col_off)
        if (r1 - r0, c1 - c0) == (window.height, window.width):  # all inside: read in place
            dataset.read(indexes, window=inner, out=array)
            np.not_equal(dataset.read_masks(indexes, window=inner), 0, out=mask)
        else:
            array[:, rows, cols] = dataset.read(indexes, window=inner)
            mask[:, rows, cols] = dataset.read_masks(indexes, window=inner) != 0
        if np.issubdtype(array.dtype, np.floating):
            mask &= ~np.isnan(array)
    return array, mask


def read_raster(
    path: PathLike,
    *,
    window: WindowLike | None = None,
    bands: Sequence[int] | None = None,
) -> RasterData:
    """Read a raster (or a window of it) with its validity mask and georeferencing.

    Nodata is returned as a mask, never as a value: :attr:`RasterData.mask` is
    ``False`` where GDAL's mask band says the pixel is invalid (nodata value,
    internal mask or alpha band), where a floating-point value is NaN, and
    outside the raster when ``window`` extends past its edges (those pixels are
    0 in :attr:`RasterData.array`).

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
        indexes = _resolve_bands(bands, src.count, path)
        win = (
            PixelWindow(0, 0, src.height, src.width)
            if window is None
            else PixelWindow.from_window(window)
        )
        array, mask = _read_window(src, win, indexes)
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


class WindowLike(Protocol):
    """Anything with pixel offsets and sizes: :class:`PixelWindow`, rasterio's ``Window``.

    Example:
        >>> window: WindowLike = PixelWindow(row_off=0, col_off=4, height=2, width=8)
        >>> window.row_off, window.col_off, window.height, window.width
        (0, 4, 2, 8)
    """

    @property
    def row_off(self) -> float: ...  # noqa: D102

    @property
    def col_off(self) -> float: ...  # noqa: D102

    @property
    def height(self) -> float: ...  # noqa: D102

    @property
    def width(self) -> float: ...  # noqa: D102


@dataclass(frozen=True)
class PixelWindow:
    """A rectangle of pixels, possibly extending past the raster's edges.

    Offsets may be negative and the rectangle may end beyond the raster: the
    part outside is read as padding and marked invalid (see :func:`read_raster`).

    Args:
        row_off: First row (0-based, from the top).
        col_off: First column (0-based, from the left).
        height: Number of rows, at least 1.
        width: Number of columns, at least 1.

    Raises:
        ValueError: If ``height`` or ``width`` is smaller than 1.

    Example:
        >>> PixelWindow(row_off=0, col_off=256, height=256, width=256).col_stop
        512
    """

    row_off: int
    col_off: int
    height: int
    width: int

    def __post_init__(self) -> None:
        if self.height < 1 or self.width < 1:
            raise ValueError(
                f"PixelWindow needs height and width >= 1, got height={self.height}, "
                f"width={self.width}."
            )

    @property
    def row_stop(self) -> int:
        """One past the last row."""
        return self.row_off + self.height

    @property
    def col_stop(self) -> int:
        """One past the last column."""
        return self.col_off + self.width

    @classmethod
    def from_window(cls, window: WindowLike) -> PixelWindow:
        """Convert a window-like object (e.g. rasterio's ``Window``) with whole-pixel values.

        Args:
            window: Object with ``row_off``, ``col_off``, ``height``, ``width``.

        Returns:
            The equivalent :class:`PixelWindow`.

        Raises:
            ValueError: If a value is not a whole number of pixels.

        Example:
            >>> PixelWindow.from_window(PixelWindow(1, 2, 3, 4))
            PixelWindow(row_off=1, col_off=2, height=3, width=4)
        """
        return cls(
            row_off=_as_int(window.row_off, "row_off"),
            col_off=_as_int(window.col_off, "col_off"),
            height=_as_int(window.height, "height"),
            width=_as_int(window.width, "width"),
        )

    def to_rasterio(self) -> Any:
        """Return the equivalent ``rasterio.windows.Window``.

        Returns:
            A ``rasterio.windows.Window``.

        Example:
            >>> PixelWindow(0, 0, 2, 3).to_rasterio()
            Window(col_off=0, row_off=0, width=3, height=2)
        """
        rasterio = import_rasterio("PixelWindow.to_rasterio")
        return rasterio.windows.Window(self.col_off, self.row_off, self.width, self.height)


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
        >>> from affine import Affine
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
        >>> from affine import Affine
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
            >>> from affine import Affine
            >>> p = RasterProfile(crs=None, transform=Affine.identity(), nodata=None,
            ...                   band_descriptions=(None,), band_indices=(1,), dtype="float32",
            ...                   height=1, width=1)
            >>> d = RasterData(np.zeros((1, 1, 1), np.float32), np.ones((1, 1, 1), bool), p)
            >>> d.masked().count()
            np.int64(1)
        """
        return np.ma.MaskedArray(self.array, mask=~self.mask)
