"""Fixtures for geofm.geo: tiny GeoTIFFs written into tmp_path (no committed binaries)."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine

REAL_DATA = Path("/work/shared/data/real")

# A UTM 18N grid with 10 m pixels, the default for synthetic rasters.
UTM_TRANSFORM = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0)

WriteRaster = Callable[..., Path]


def error_message(kind: type[Exception], call: Callable[[], object]) -> str:
    """The message of the ``kind`` error ``call()`` raises (the test fails if it raises none)."""
    try:
        call()
    except kind as err:
        return str(err)
    pytest.fail(f"expected {kind.__name__}")


def write_geotiff(
    path: Path,
    array: np.ndarray,
    *,
    crs: Any = "EPSG:32618",
    transform: Affine = UTM_TRANSFORM,
    nodata: float | None = None,
    descriptions: tuple[str, ...] | None = None,
) -> Path:
    """Write a (C, H, W) array as a GeoTIFF and return its path."""
    count, height, width = array.shape
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=width,
        height=height,
        count=count,
        dtype=array.dtype,
        crs=crs,
        transform=transform,
        nodata=nodata,
    ) as dst:
        dst.write(array)
        for i, text in enumerate(descriptions or (), start=1):
            dst.set_band_description(i, text)
    return path


def write_scene(path: Path, seed: int, height: int = 24, width: int = 40) -> Path:
    """A 3-band float32 scene of seeded random values on the default UTM grid."""
    values = np.random.default_rng(seed).random((3, height, width), dtype=np.float32)
    return write_geotiff(path, values)


@pytest.fixture
def scenes(tmp_path: Path) -> list[Path]:
    """Four scenes ``tmp_path/scenes/s{k}.tif``, 24 rows by 40, 44, 48 and 52 columns."""
    folder = tmp_path / "scenes"
    folder.mkdir()
    return [write_scene(folder / f"s{k}.tif", seed=k, width=40 + 4 * k) for k in range(4)]


@pytest.fixture
def write_raster(tmp_path: Path) -> WriteRaster:
    """Factory: ``write_raster(array, name="src.tif", **kwargs) -> Path`` inside tmp_path."""

    def write(array: np.ndarray, name: str = "src.tif", **kwargs: Any) -> Path:
        return write_geotiff(tmp_path / name, array, **kwargs)

    return write


@pytest.fixture
def utm_transform() -> Affine:
    """The default transform of ``write_raster``: UTM 18N, 10 m pixels."""
    return UTM_TRANSFORM


@pytest.fixture
def rgb_byte() -> Path:
    """rasterio's CC0 RGB.byte.tif (791 x 718, 3 x uint8, EPSG:32618, nodata 0 collar)."""
    path = REAL_DATA / "rasterio_landsat7" / "RGB.byte.tif"
    if not path.exists():
        pytest.skip(f"real test raster {path} is not available")
    return path


class FakeTqdm:
    """Stands in for ``tqdm.auto.tqdm``: records how a bar is built, advanced and closed.

    Tests use it instead of a real bar: tqdm's write lock is a process-shared
    semaphore, and mutation testing forks the test process, so a child killed
    while holding it would block every later child.
    """

    made: ClassVar[list[FakeTqdm]] = []

    def __init__(self, *, total: int, unit: str, desc: str) -> None:
        self.total, self.unit, self.desc = total, unit, desc
        self.count = 0
        self.closed = False
        FakeTqdm.made.append(self)

    def update(self, n: int = 1) -> None:
        assert not self.closed, "update after close"
        self.count += n

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_tqdm(monkeypatch: pytest.MonkeyPatch) -> list[FakeTqdm]:
    """Put a fake ``tqdm.auto`` in ``sys.modules``; return the bars it makes."""
    module = types.ModuleType("tqdm.auto")
    module.tqdm = FakeTqdm  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tqdm.auto", module)
    made: list[FakeTqdm] = []
    monkeypatch.setattr(FakeTqdm, "made", made)
    return made
