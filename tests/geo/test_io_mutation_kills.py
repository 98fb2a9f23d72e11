"""read_raster: the words of its errors name the function and the file (mutation kills)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from geofm.errors import MissingDependencyError, ShapeError
from geofm.geo import read_raster

from .conftest import WriteRaster


def test_missing_rasterio_names_read_raster(
    write_raster: WriteRaster, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_raster(np.zeros((1, 4, 4), np.uint8))
    monkeypatch.setitem(sys.modules, "rasterio", None)  # `import rasterio` raises ImportError
    with pytest.raises(MissingDependencyError) as info:
        read_raster(path)
    assert str(info.value) == (
        "rasterio is required for geofm.geo.read_raster. Install it with: pip install rasterio."
    )


def test_out_of_range_band_names_the_file(write_raster: WriteRaster) -> None:
    path = write_raster(np.zeros((3, 4, 4), np.uint8), name="three_bands.tif")
    with pytest.raises(
        ShapeError,
        match=rf"^Band indices \[4\] are out of range for '{re.escape(str(path))}', which has 3 bands",
    ):
        read_raster(path, bands=[1, 4])
    assert Path(path).exists()
