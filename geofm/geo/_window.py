"""Pixel windows and the window reads shared by the ``geofm.geo`` modules.

A private module with public names: :class:`PixelWindow` and :class:`WindowLike`
are public through :mod:`geofm.geo`; :func:`read_window`, :func:`band_indices`
and :func:`tile_offsets` serve ``io``, ``tiling`` and ``predict``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from geofm.errors import ShapeError
from geofm.geo._rio import PathLike, import_rasterio, loaded_rasterio

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "PixelWindow",
    "TilePadding",
    "WindowLike",
    "band_indices",
    "read_window",
    "tile_offsets",
]

TilePadding = Literal["zero", "drop", "shift"]


def _as_int(value: float, name: str) -> int:
    if float(value) != int(value):
        raise ValueError(
            f"Window {name} must be a whole number of pixels, got {value}. "
            "Round the window first (e.g. window.round_offsets().round_lengths())."
        )
    return int(value)


class WindowLike(Protocol):
    """Anything with pixel offsets and sizes: :class:`PixelWindow`, rasterio's ``Window``.

    Example:
        >>> window: WindowLike = PixelWindow(row_off=0, col_off=4, height=2, width=8)
        >>> window.row_off, window.col_off, window.height, window.width
        (0, 4, 2, 8)
    """

    @property
    def row_off(self) -> float: ...

    @property
    def col_off(self) -> float: ...

    @property
    def height(self) -> float: ...

    @property
    def width(self) -> float: ...


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


def band_indices(bands: Sequence[int] | None, count: int, path: PathLike) -> list[int]:
    """1-based band indices to read: ``bands`` checked against ``count``, or all bands.

    Args:
        bands: 1-based indices, or ``None`` for ``1..count``.
        count: Number of bands of the raster.
        path: The raster, for error messages.

    Returns:
        The indices, as ints.

    Raises:
        ValueError: If ``bands`` is empty.
        ShapeError: If an index is outside ``1..count``.

    Example:
        >>> band_indices(None, 3, "a.tif"), band_indices([3, 1], 3, "a.tif")
        ([1, 2, 3], [3, 1])
    """
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


def read_window(
    dataset: Any, window: PixelWindow, band_indices: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Read ``window`` (possibly partly outside) from an open dataset: values and validity.

    Pixels outside the raster are 0 and invalid; NaN and infinite values are invalid.
    Bands of different types (a VRT may mix them) are read into their common
    type (``numpy.result_type``: ``uint8`` and ``uint16`` give ``uint16``).

    Args:
        dataset: An open rasterio dataset.
        window: Pixels to read; may extend past the raster.
        band_indices: 1-based bands to read, in order.

    Returns:
        ``(values, valid)``, both ``(C, H, W)``: values in the bands' dtype and a bool mask.
    """
    indexes = list(band_indices)
    kinds = {dataset.dtypes[i - 1] for i in indexes}
    # A VRT may mix band types (GeoTIFF bands share one): the values take the
    # common type of the chosen bands, read one band at a time.
    dtype = np.result_type(*kinds)
    array = np.zeros((len(indexes), window.height, window.width), dtype=dtype)
    mask = np.zeros(array.shape, dtype=bool)
    r0, r1 = max(window.row_off, 0), min(window.row_stop, dataset.height)
    c0, c1 = max(window.col_off, 0), min(window.col_stop, dataset.width)
    if r0 < r1 and c0 < c1:
        rasterio = loaded_rasterio()
        inner = rasterio.windows.Window(c0, r0, c1 - c0, r1 - r0)
        rows = slice(r0 - window.row_off, r1 - window.row_off)
        cols = slice(c0 - window.col_off, c1 - window.col_off)
        if len(kinds) > 1:
            for k, index in enumerate(indexes):
                array[k, rows, cols] = dataset.read(index, window=inner)
                mask[k, rows, cols] = dataset.read_masks(index, window=inner) != 0
        elif (r1 - r0, c1 - c0) == (window.height, window.width):  # all inside: read in place
            dataset.read(indexes, window=inner, out=array)
            np.not_equal(dataset.read_masks(indexes, window=inner), 0, out=mask)
        else:
            array[:, rows, cols] = dataset.read(indexes, window=inner)
            mask[:, rows, cols] = dataset.read_masks(indexes, window=inner) != 0
        if np.issubdtype(array.dtype, np.floating):
            mask &= np.isfinite(array)  # NaN and +-inf are no measurement
    return array, mask


def tile_offsets(length: int, size: int, stride: int, pad: TilePadding) -> list[int]:
    """Start offsets along one axis of ``length`` pixels (``pad`` as in ``tile_raster``).

    Example:
        >>> [tile_offsets(10, 4, 4, pad) for pad in ("zero", "shift", "drop")]
        [[0, 4, 8], [0, 4, 6], [0, 4]]
    """
    if length <= size:
        return [] if (pad == "drop" and length < size) else [0]
    regular = list(range(0, length - size + 1, stride))
    if regular[-1] + size == length or pad == "drop":
        return regular
    if pad == "zero":  # one more tile, padded, unless it would start past the raster (gaps)
        following = regular[-1] + stride
        return [*regular, following] if following < length else regular
    return [*regular, length - size]  # "shift": the last tile ends at the edge
