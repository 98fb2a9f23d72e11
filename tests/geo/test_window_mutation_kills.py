"""PixelWindow conversions and read_window with distinct values (no field or pixel can stand in for another)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from geofm.errors import MissingDependencyError
from geofm.geo import PixelWindow
from geofm.geo._window import read_window, tile_offsets

from .conftest import WriteRaster, error_message, write_geotiff


def test_from_window_keeps_each_field_in_its_place() -> None:
    got = PixelWindow.from_window(Window(col_off=2.0, row_off=1.0, width=4.0, height=3.0))
    assert (got.row_off, got.col_off, got.height, got.width) == (1, 2, 3, 4)
    assert all(type(v) is int for v in (got.row_off, got.col_off, got.height, got.width))


@pytest.mark.parametrize("field", ["row_off", "col_off", "height", "width"])
def test_from_window_names_the_fractional_field(field: str) -> None:
    values = {"row_off": 1.0, "col_off": 2.0, "height": 3.0, "width": 4.0, field: 2.5}
    message = error_message(ValueError, lambda: PixelWindow.from_window(Window(**values)))
    assert message == (
        f"Window {field} must be a whole number of pixels, got 2.5. "
        "Round the window first (e.g. window.round_offsets().round_lengths())."
    )


def test_to_rasterio_round_trips() -> None:
    window = PixelWindow(row_off=1, col_off=2, height=3, width=4).to_rasterio()
    assert isinstance(window, Window)
    assert (window.row_off, window.col_off, window.height, window.width) == (1, 2, 3, 4)
    assert PixelWindow.from_window(window) == PixelWindow(1, 2, 3, 4)


def test_to_rasterio_without_rasterio_names_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rasterio", None)
    with pytest.raises(
        MissingDependencyError,
        match=r"^rasterio is required for geofm\.geo\.PixelWindow\.to_rasterio\. ",
    ):
        PixelWindow(0, 0, 1, 1).to_rasterio()


# -- read_window: windows on each side of the raster, band subsets, nodata and NaN ---------


def _values(height: int = 4, width: int = 5, bands: int = 3) -> np.ndarray:
    """Distinct values: band * 100 + row * 10 + col + 1 (no pixel equals another)."""
    b, r, c = np.meshgrid(range(bands), range(height), range(width), indexing="ij")
    return (b * 100 + r * 10 + c + 1).astype("float32")


def _read(path: Path, window: PixelWindow, bands: list[int]) -> tuple[np.ndarray, np.ndarray]:
    with rasterio.open(path) as src:
        return read_window(src, window, bands)


def _expected(values: np.ndarray, window: PixelWindow, bands: list[int]) -> np.ndarray:
    """The window cut from ``values`` zero-padded on every side (an independent reference)."""
    pad = 10
    padded = np.pad(values, ((0, 0), (pad, pad), (pad, pad)))
    r, c = window.row_off + pad, window.col_off + pad
    return padded[[b - 1 for b in bands], r : r + window.height, c : c + window.width]


@pytest.mark.parametrize(
    "window",
    [
        PixelWindow(row_off=-2, col_off=-3, height=4, width=5),  # above and left
        PixelWindow(row_off=1, col_off=2, height=6, width=7),  # below and right
        PixelWindow(row_off=2, col_off=0, height=6, width=5),  # rows 2-3 of 4, then outside
        PixelWindow(row_off=0, col_off=2, height=4, width=6),  # columns 2-4 of 5, then outside
        PixelWindow(row_off=1, col_off=1, height=2, width=3),  # inside, off the origin
        # columns 2-4 of 5, then 4 outside: the window is as wide as col_off + the file's width
        PixelWindow(row_off=0, col_off=2, height=4, width=7),
    ],
    ids=["above-left", "below-right", "half-rows", "half-cols", "inside", "cols-past-edge"],
)
@pytest.mark.parametrize("bands", [[2], [3, 1]], ids=["band2", "bands31"])
def test_read_window_places_the_values_and_marks_the_outside(
    window: PixelWindow, bands: list[int], write_raster: WriteRaster
) -> None:
    values = _values()
    path = write_raster(values)
    array, valid = _read(path, window, bands)
    expected = _expected(values, window, bands)
    np.testing.assert_array_equal(array, expected)
    np.testing.assert_array_equal(valid, expected != 0)  # every pixel of the file is nonzero


@pytest.mark.parametrize(
    "window",
    [
        PixelWindow(row_off=4, col_off=0, height=2, width=5),  # starts at the last row's end
        PixelWindow(row_off=0, col_off=5, height=4, width=2),  # starts at the last column's end
        PixelWindow(row_off=1, col_off=6, height=2, width=2),  # rows overlap, columns do not
        PixelWindow(row_off=-3, col_off=1, height=2, width=2),  # columns overlap, rows do not
    ],
)
def test_read_window_outside_the_raster_is_all_zero_and_invalid(
    window: PixelWindow, write_raster: WriteRaster
) -> None:
    array, valid = _read(write_raster(_values()), window, [1, 2])
    assert array.shape == valid.shape == (2, window.height, window.width)
    assert not array.any() and not valid.any()


@pytest.mark.parametrize(
    "window",
    [PixelWindow(0, 0, 4, 5), PixelWindow(-1, -1, 6, 7)],
    ids=["in-place", "padded"],
)
def test_read_window_masks_nodata_and_non_finite_values_per_band(
    window: PixelWindow, write_raster: WriteRaster
) -> None:
    values = _values()
    values[1, 1, 1] = -9999.0  # the nodata value, in band 2 only
    values[0, 2, 3] = np.nan  # NaN in band 1, not nodata
    values[2, 3, 0] = np.inf  # +inf in band 3
    path = write_raster(values, nodata=-9999.0)
    array, valid = _read(path, window, [1, 2, 3])
    r, c = -window.row_off, -window.col_off  # file pixel (0, 0) in the window
    inside = np.zeros(valid.shape, dtype=bool)
    inside[:, r : r + 4, c : c + 5] = True
    invalid = {(1, 1 + r, 1 + c), (0, 2 + r, 3 + c), (2, 3 + r, 0 + c)}
    for index in np.ndindex(valid.shape):
        assert valid[index] == (inside[index] and index not in invalid), index
    assert array.dtype == np.float32


def test_read_window_reads_mixed_band_types_into_their_common_type(tmp_path: Path) -> None:
    # A VRT may mix band types (uint8 and uint16 here): the values are uint16.
    byte = write_geotiff(tmp_path / "byte.tif", np.full((1, 2, 3), 7, dtype="uint8"))
    wide = write_geotiff(tmp_path / "wide.tif", np.full((1, 2, 3), 300, dtype="uint16"))
    bands = "".join(
        f'<VRTRasterBand dataType="{kind}" band="{i}"><SimpleSource>'
        f'<SourceFilename relativeToVRT="1">{name}</SourceFilename><SourceBand>1</SourceBand>'
        "</SimpleSource></VRTRasterBand>"
        for i, (kind, name) in enumerate([("Byte", byte.name), ("UInt16", wide.name)], start=1)
    )
    vrt = tmp_path / "mixed.vrt"
    vrt.write_text(
        '<VRTDataset rasterXSize="3" rasterYSize="2">'
        f"<GeoTransform>0, 1, 0, 0, 0, -1</GeoTransform>{bands}</VRTDataset>"
    )
    array, valid = _read(vrt, PixelWindow(0, 0, 2, 3), [2, 1])
    assert array.dtype == np.uint16
    np.testing.assert_array_equal(array, [np.full((2, 3), 300), np.full((2, 3), 7)])
    assert valid.all()
    array, valid = _read(vrt, PixelWindow(1, -1, 2, 3), [1, 2])  # partly outside
    np.testing.assert_array_equal(array, [[[0, 7, 7], [0, 0, 0]], [[0, 300, 300], [0, 0, 0]]])
    np.testing.assert_array_equal(valid, array != 0)
    array, _ = _read(vrt, PixelWindow(0, 0, 2, 3), [1])  # one band: its own type
    assert array.dtype == np.uint8


def test_tile_offsets_on_an_axis_as_long_as_the_tile() -> None:
    for pad in ("zero", "shift", "drop"):
        assert tile_offsets(4, 4, 2, pad) == [0]  # type: ignore[arg-type]
        assert tile_offsets(3, 4, 2, pad) == ([] if pad == "drop" else [0])  # type: ignore[arg-type]


def test_read_window_masks_nodata_of_mixed_band_types_per_band(tmp_path: Path) -> None:
    # Band 1 (Byte) declares nodata 7 in the VRT, band 2 (UInt16) none: read one band at a
    # time, each band keeps its own mask.
    byte = write_geotiff(tmp_path / "byte.tif", np.array([[[7, 5, 5], [5, 5, 7]]], dtype="uint8"))
    wide = write_geotiff(tmp_path / "wide.tif", np.full((1, 2, 3), 7, dtype="uint16"))
    bands = "".join(
        f'<VRTRasterBand dataType="{kind}" band="{i}">{nodata}<SimpleSource>'
        f'<SourceFilename relativeToVRT="1">{name}</SourceFilename><SourceBand>1</SourceBand>'
        "</SimpleSource></VRTRasterBand>"
        for i, (kind, name, nodata) in enumerate(
            [("Byte", byte.name, "<NoDataValue>7</NoDataValue>"), ("UInt16", wide.name, "")],
            start=1,
        )
    )
    vrt = tmp_path / "mixed.vrt"
    vrt.write_text(
        '<VRTDataset rasterXSize="3" rasterYSize="2">'
        f"<GeoTransform>0, 1, 0, 0, 0, -1</GeoTransform>{bands}</VRTDataset>"
    )
    array, valid = _read(vrt, PixelWindow(0, 0, 2, 3), [1, 2])
    np.testing.assert_array_equal(array, [[[7, 5, 5], [5, 5, 7]], np.full((2, 3), 7)])
    np.testing.assert_array_equal(valid, [[[0, 1, 1], [1, 1, 0]], np.ones((2, 3))])
