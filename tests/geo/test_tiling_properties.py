"""Property-based tests (hypothesis) of the window and tiling arithmetic.

Any scene size, tile size, stride and overlap: every pixel is covered, the shifted
last tile lies inside the scene, blending weights form a partition of unity, and an
identity model reproduces any scene exactly through ``predict_raster``.
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from geofm.geo import predict_raster
from geofm.geo._stream import coverage, window_1d
from geofm.geo._window import tile_offsets

from .conftest import write_geotiff

# derandomize: the same examples on every run (no flaky CI); database=None: no .hypothesis/ folder.
PROPERTY = settings(max_examples=300, deadline=None, derandomize=True, database=None)


def _covered(length: int, offsets: list[int], size: int) -> np.ndarray:
    hits = np.zeros(length, dtype=int)
    for start in offsets:
        hits[max(start, 0) : min(start + size, length)] += 1
    return hits


@PROPERTY
@given(
    length=st.integers(1, 3000),
    size=st.integers(1, 400),
    stride_ratio=st.floats(0.05, 2.0),
    pad=st.sampled_from(["zero", "shift", "drop"]),
)
def test_tile_offsets_properties(length: int, size: int, stride_ratio: float, pad: str) -> None:
    stride = max(1, round(size * stride_ratio))
    offsets = tile_offsets(length, size, stride, pad)  # type: ignore[arg-type]
    assert offsets == sorted(set(offsets))  # strictly increasing
    if pad == "drop" and length < size:
        assert offsets == []
        return
    assert offsets[0] == 0 and all(o < length for o in offsets)  # no tile starts past the edge
    if pad == "drop":
        assert offsets == list(range(0, length - size + 1, stride))  # all full tiles, none lost
        assert offsets[-1] + size <= length < offsets[-1] + stride + size
    elif pad == "shift":
        assert offsets[-1] + size == max(length, size)  # the last tile ends at the edge
        assert all(o + size <= max(length, size) for o in offsets)
        assert offsets[:-1] == [k * stride for k in range(len(offsets) - 1)]
    else:
        assert offsets == [k * stride for k in range(len(offsets))]
        if stride <= size:
            assert offsets[-1] + size >= length  # reaches the edge (padded past it)
        if len(offsets) > 1:
            assert offsets[-2] + size < length  # and no tile more than needed
    if stride <= size and pad != "drop":
        assert (_covered(length, offsets, size) >= 1).all()  # every pixel is in a tile


@PROPERTY
@given(
    length=st.integers(1, 700),
    tile=st.integers(1, 96),
    overlap_ratio=st.floats(0.0, 0.5),
    blend=st.sampled_from(["cosine", "linear", "none"]),
)
def test_blending_weights_cover_every_pixel_and_sum_to_one(
    length: int, tile: int, overlap_ratio: float, blend: str
) -> None:
    overlap = min(int(tile * overlap_ratio), tile // 2)
    stride = tile - overlap
    offsets = tile_offsets(length, tile, stride, "shift")  # predict_raster's grid
    assert offsets[-1] + tile == max(length, tile)  # the shifted last tile is inside the scene
    weights = window_1d(tile, overlap, blend)  # type: ignore[arg-type]
    assert weights.shape == (tile,) and (weights > 0).all() and (weights <= 1).all()
    cover = coverage(length, offsets, weights)[:length]
    assert (cover > 0).all()  # every pixel gets weight: no division by zero, no hole
    # Normalised weights of the tiles touching a pixel sum to one (summed independently).
    total = np.zeros(length)
    for start in offsets:
        stop = min(start + tile, length)
        total[start:stop] += weights[: stop - start] / cover[start:stop]
    np.testing.assert_allclose(total, 1.0, rtol=0, atol=1e-12)
    if blend != "none" and overlap > 0:
        # Between regularly spaced tiles the raw ramps already sum to one (partition of unity):
        # from the end of the first ramp to where the shifted last tile starts to add weight.
        shifted = offsets[-1] % stride != 0
        end = offsets[-1] if shifted else offsets[-1] + tile - overlap
        np.testing.assert_allclose(cover[overlap:end], 1.0, rtol=0, atol=1e-12)


@settings(max_examples=20, deadline=None, derandomize=True, database=None)
@given(
    height=st.integers(1, 70),
    width=st.integers(1, 70),
    tile=st.integers(2, 40),
    overlap_ratio=st.floats(0.0, 0.5),
    blend=st.sampled_from(["cosine", "linear", "none"]),
    seed=st.integers(0, 2**16),
)
def test_identity_reproduces_any_scene_exactly(
    tmp_path_factory: pytest.TempPathFactory,
    height: int,
    width: int,
    tile: int,
    overlap_ratio: float,
    blend: str,
    seed: int,
) -> None:
    folder = tmp_path_factory.mktemp("scene")
    values = np.random.default_rng(seed).random((2, height, width), dtype=np.float32)
    src = write_geotiff(folder / "src.tif", values)
    out = predict_raster(
        nn.Identity().eval(),
        src,
        folder / "out.tif",
        tile=tile,
        overlap=min(int(tile * overlap_ratio), tile // 2),
        blend=blend,  # type: ignore[arg-type]
        batch_size=3,
        output="regression",
    )
    with rasterio.open(out) as r:
        np.testing.assert_array_equal(r.read(), values)
