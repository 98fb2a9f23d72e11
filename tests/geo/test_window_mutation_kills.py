"""PixelWindow conversions with four distinct values (no field can stand in for another)."""

from __future__ import annotations

import sys

import pytest
from rasterio.windows import Window

from geofm.errors import MissingDependencyError
from geofm.geo import PixelWindow

from .conftest import error_message


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
