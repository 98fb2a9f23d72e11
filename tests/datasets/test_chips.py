"""RasterChipDataset on tiny GeoTIFFs written into tmp_path.

References are written out here: windows are numpy slices of the arrays that
were written, bounds and transforms come from the affine formula, a warped label
is looked up at each image pixel centre, polygons are pixel-aligned rectangles.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import Affine
from torch.utils.data import DataLoader, default_collate, get_worker_info

from geofm import InputSpec
from geofm.datasets import RasterChipDataset, collate_chips
from geofm.errors import ShapeError

X0, Y0, RES = 500000.0, 4000000.0, 10.0
UTM = Affine(RES, 0.0, X0, 0.0, -RES, Y0)


def write(
    path: Path,
    array: np.ndarray,
    *,
    transform: Affine = UTM,
    crs: str | None = "EPSG:32618",
    nodata: float | None = None,
    descriptions: tuple[str, ...] = (),
    block: int | None = 16,
) -> Path:
    count, height, width = array.shape
    tiling: dict[str, Any] = {}
    if block is not None:
        tiling = {"tiled": True, "blockxsize": block, "blockysize": block}
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
        **tiling,
    ) as dst:
        dst.write(array)
        for i, text in enumerate(descriptions, start=1):
            dst.set_band_description(i, text)
    return path


@pytest.fixture
def scene(tmp_path: Path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """A 3-band uint16 image 40 x 56 and a uint8 label on its grid."""
    rng = np.random.default_rng(1)
    image = rng.integers(0, 5000, (3, 40, 56), dtype=np.uint16)
    label = rng.integers(0, 6, (1, 40, 56), dtype=np.uint8)
    return (
        write(tmp_path / "image.tif", image),
        write(tmp_path / "label.tif", label),
        image,
        label[0],
    )


def expected_bounds(row: int, col: int, h: int, w: int) -> list[float]:
    return [X0 + col * RES, Y0 - (row + h) * RES, X0 + (col + w) * RES, Y0 - row * RES]


# -- grid windows ---------------------------------------------------------------------


def test_grid_chips_are_the_written_windows_with_georeferencing(scene: Any) -> None:
    image_path, label_path, image, label = scene
    ds = RasterChipDataset(image_path, label_path, size=(16, 24), stride=16)
    # rows 0, 16 and 24 (shifted back to end at 40); cols 0, 16 and 32 (56 - 24)
    expected = [(r, c) for r in (0, 16, 24) for c in (0, 16, 32)]
    assert len(ds) == len(expected)
    for k, (r, c) in enumerate(expected):
        sample = ds[k]
        assert ds.window(k) == (image_path, r, c)
        assert sample["image"].dtype == torch.float32
        assert torch.equal(
            sample["image"], torch.from_numpy(image[:, r : r + 16, c : c + 24]).float()
        )
        assert sample["mask"].dtype == torch.int64
        assert torch.equal(sample["mask"], torch.from_numpy(label[r : r + 16, c : c + 24]).long())
        assert sample["crs"] == "EPSG:32618"
        assert sample["bounds"].tolist() == expected_bounds(r, c, 16, 24)
        assert sample["transform"].tolist() == [RES, 0.0, X0 + c * RES, 0.0, -RES, Y0 - r * RES]
    assert torch.equal(ds[-1]["image"], ds[len(ds) - 1]["image"])


def test_default_stride_is_the_size_and_default_size_is_256(tmp_path: Path) -> None:
    big = write(tmp_path / "big.tif", np.zeros((1, 300, 520), np.uint8), block=None)
    ds = RasterChipDataset(big)
    assert ds.size == (256, 256) and ds.stride == (256, 256)
    assert [ds.window(k)[1:] for k in range(len(ds))] == [
        (r, c) for r in (0, 44) for c in (0, 256, 264)
    ]
    assert "mask" not in ds[0]


def test_one_label_raster_serves_several_images(scene: Any, tmp_path: Path) -> None:
    image_path, label_path, image, label = scene
    second = write(tmp_path / "second.tif", image[:, ::-1].copy())
    ds = RasterChipDataset([image_path, second], label_path, size=20, stride=20)
    assert len(ds) == 2 * 2 * 3
    sample = ds[6]  # first window of the second image
    assert ds.window(6) == (second, 0, 0)
    assert torch.equal(
        sample["image"], torch.from_numpy(image[:, ::-1][:, :20, :20].copy()).float()
    )
    assert torch.equal(sample["mask"], torch.from_numpy(label[:20, :20]).long())


# -- random windows -------------------------------------------------------------------


def test_random_windows_are_seeded_per_index_and_per_epoch(scene: Any) -> None:
    image_path, label_path, image, _ = scene
    kwargs: dict[str, Any] = {"size": (16, 20), "sampler": "random", "length": 30}
    a = RasterChipDataset(image_path, label_path, seed=3, **kwargs)
    b = RasterChipDataset(image_path, label_path, seed=3, **kwargs)
    c = RasterChipDataset(image_path, label_path, seed=4, **kwargs)
    windows = [a.window(k) for k in range(30)]
    assert windows == [b.window(k) for k in reversed(range(30))][::-1]  # order-free
    assert windows != [c.window(k) for k in range(30)]
    a.set_epoch(1)
    assert windows != [a.window(k) for k in range(30)]
    a.set_epoch(0)
    assert windows == [a.window(k) for k in range(30)]
    for k, (_, r, col) in enumerate(windows):
        assert 0 <= r <= 40 - 16 and 0 <= col <= 56 - 20
        img = a[k]["image"]
        assert torch.equal(img, torch.from_numpy(image[:, r : r + 16, col : col + 20]).float())


def test_random_windows_start_on_blocks_unless_told_otherwise(scene: Any) -> None:
    image_path, _, _, _ = scene  # 16 x 16 blocks
    aligned = RasterChipDataset(image_path, size=(16, 20), sampler="random", length=60)
    starts = [aligned.window(k)[1:] for k in range(60)]
    assert all(r % 16 == 0 and c % 16 == 0 for r, c in starts)
    assert {r for r, _ in starts} == {0, 16} and {c for _, c in starts} == {0, 16, 32}
    free = RasterChipDataset(
        image_path, size=(16, 20), sampler="random", length=60, align_to_blocks=False
    )
    loose = [free.window(k)[1:] for k in range(60)]
    assert any(r % 16 or c % 16 for r, c in loose)
    assert max(r for r, _ in loose) <= 24 and max(c for _, c in loose) <= 36


def test_random_windows_blocks_larger_than_the_chip_do_not_constrain(tmp_path: Path) -> None:
    path = write(tmp_path / "i.tif", np.ones((1, 64, 64), np.uint8), block=32)
    ds = RasterChipDataset(path, size=16, sampler="random", length=40)
    assert any(r % 32 or c % 32 for _, r, c in (ds.window(k) for k in range(40)))


def test_random_images_are_drawn_in_proportion_to_their_positions(tmp_path: Path) -> None:
    small = write(tmp_path / "small.tif", np.zeros((1, 20, 20), np.uint8), block=None)
    large = write(tmp_path / "large.tif", np.zeros((1, 40, 40), np.uint8), block=None)
    ds = RasterChipDataset([small, large], size=10, sampler="random", length=2000)
    # positions: 11 * 11 = 121 vs 31 * 31 = 961
    share = sum(ds.window(k)[0] == small for k in range(2000)) / 2000
    assert share == pytest.approx(121 / (121 + 961), abs=0.025)


# -- region of interest and image labels ---------------------------------------------


def roi_of(row0: float, row1: float, col0: float, col1: float) -> tuple[float, ...]:
    """``(left, bottom, right, top)`` of fractional pixel rows / columns of ``UTM``."""
    return (X0 + col0 * RES, Y0 - row1 * RES, X0 + col1 * RES, Y0 - row0 * RES)


def test_roi_keeps_grid_windows_inside_its_whole_pixels(scene: Any) -> None:
    image_path, label_path, image, label = scene  # 40 x 56
    # Pixels wholly inside: rows 4..35 (ends on a pixel edge), columns 8..49.
    roi = roi_of(4.0, 36.0, 7.5, 50.7)
    ds = RasterChipDataset(image_path, label_path, size=16, roi=roi)
    # rows 4, 20 (20 + 16 = 36); columns 8, 24 and 34 (shifted back to end at 50)
    expected = [(r, c) for r in (4, 20) for c in (8, 24, 34)]
    assert [ds.window(k)[1:] for k in range(len(ds))] == expected
    for k, (r, c) in enumerate(expected):
        sample = ds[k]
        assert torch.equal(
            sample["image"], torch.from_numpy(image[:, r : r + 16, c : c + 16]).float()
        )
        assert torch.equal(sample["mask"], torch.from_numpy(label[r : r + 16, c : c + 16]).long())
        assert sample["bounds"].tolist() == expected_bounds(r, c, 16, 16)
    whole = RasterChipDataset(image_path, size=16, roi=roi_of(0, 40, 0, 56))
    assert len(whole) == len(RasterChipDataset(image_path, size=16)) == 3 * 4


def test_roi_keeps_random_windows_inside_on_blocks_where_it_can(scene: Any) -> None:
    image_path, _, _, _ = scene  # 16 x 16 blocks
    kwargs: dict[str, Any] = {"size": 16, "sampler": "random", "length": 80}
    roi = roi_of(4, 36, 8, 50)
    aligned = [
        w[1:] for w in map(RasterChipDataset(image_path, roi=roi, **kwargs).window, range(80))
    ]
    assert {r for r, _ in aligned} == {16} and {c for _, c in aligned} == {16, 32}
    free = RasterChipDataset(image_path, roi=roi, align_to_blocks=False, **kwargs)
    loose = [free.window(k)[1:] for k in range(80)]
    assert all(4 <= r <= 20 and 8 <= c <= 34 for r, c in loose)
    assert {r for r, _ in loose} >= {4, 20} and {c for _, c in loose} >= {8, 34}
    # Rows 2..19 hold no block-aligned 16 px window: rows start anywhere in the region.
    narrow = RasterChipDataset(image_path, roi=roi_of(2, 20, 0, 56), **kwargs)
    starts = [narrow.window(k)[1:] for k in range(80)]
    assert {r for r, _ in starts} == {2, 3, 4} and {c for _, c in starts} == {0, 16, 32}


def test_roi_leaves_out_images_it_does_not_cover(scene: Any, tmp_path: Path) -> None:
    image_path, _, image, _ = scene
    east = write(tmp_path / "east.tif", image, transform=UTM @ Affine.translation(100, 0))
    roi = roi_of(0, 40, 100, 156)  # exactly the second image
    grid = RasterChipDataset([image_path, east], size=20, roi=roi)
    assert {grid.window(k)[0] for k in range(len(grid))} == {east}
    assert len(grid) == 2 * 3
    rnd = RasterChipDataset([image_path, east], size=20, roi=roi, sampler="random", length=20)
    assert {rnd.window(k)[0] for k in range(20)} == {east}


def test_roi_errors_name_what_was_expected(scene: Any, tmp_path: Path) -> None:
    image_path, _, image, _ = scene
    cases: list[tuple[Any, str]] = [
        ((1.0, 2.0, 3.0), r"roi must be 4 finite numbers \(left, bottom, right, top\)"),
        ((0.0, 0.0, float("nan"), 1.0), "roi must be 4 finite numbers"),
        ("abcd", "roi must be 4 finite numbers"),
        ((5.0, 0.0, 1.0, 1.0), "left < right and bottom < top"),
    ]
    for roi, message in cases:
        with pytest.raises(ValueError, match=message):
            RasterChipDataset(image_path, size=8, roi=roi)
    samplers: list[dict[str, Any]] = [{}, {"sampler": "random", "length": 4}]
    for sampling in samplers:
        with pytest.raises(ValueError, match=r"No 16 x 16 px window lies inside roi=.*image.tif"):
            RasterChipDataset(image_path, size=16, roi=roi_of(0, 10, 0, 56), **sampling)
    other = write(tmp_path / "wgs.tif", image, crs="EPSG:32617")
    with pytest.raises(ValueError, match="different CRSs .*image.tif: EPSG:32618, wgs.tif"):
        RasterChipDataset([image_path, other], size=8, roi=roi_of(0, 40, 0, 56))
    rotated = write(tmp_path / "rot.tif", image, transform=UTM @ Affine.rotation(10))
    with pytest.raises(ValueError, match="roi needs north-up images, .*rot.tif"):
        RasterChipDataset(rotated, size=8, roi=roi_of(0, 40, 0, 56))


def test_image_labels_come_with_every_chip_of_their_image(scene: Any, tmp_path: Path) -> None:
    image_path, label_path, image, _ = scene
    second = write(tmp_path / "second.tif", image)
    for sampler, length in (("grid", None), ("random", 12)):
        ds = RasterChipDataset(
            [image_path, second],
            label_path,
            image_labels=[3, 7],
            size=20,
            sampler=sampler,  # type: ignore[arg-type]
            length=length,
        )
        labels = [int(ds[k]["label"]) for k in range(len(ds))]
        assert labels == [3 if ds.window(k)[0] == image_path else 7 for k in range(len(ds))]
        assert set(labels) == {3, 7}
        batch = next(iter(DataLoader(ds, batch_size=len(ds))))
        assert batch["label"].dtype == torch.int64 and batch["label"].shape == (len(ds),)
        assert batch["mask"].shape == (len(ds), 20, 20)
    assert "label" not in RasterChipDataset(image_path, size=20)[0]
    with pytest.raises(ValueError, match="Got 1 image_labels for 2 images"):
        RasterChipDataset([image_path, second], size=8, image_labels=[1])
    with pytest.raises(ValueError, match="image_labels must be integer classes, got 'water'"):
        RasterChipDataset([image_path, second], size=8, image_labels=[1, "water"])  # type: ignore[list-item]


# -- valid pixels ---------------------------------------------------------------------


def test_min_valid_skips_grid_chips_by_the_valid_fraction(tmp_path: Path) -> None:
    data = np.full((2, 32, 48), 7, np.int16)
    data[:, :, :20] = -1  # nodata: the first 20 columns
    data[1, 20:, 30:] = -1  # one band invalid makes the pixel invalid
    path = write(tmp_path / "nd.tif", data, nodata=-1)
    valid = (data != -1).all(axis=0)
    windows = [(r, c) for r in (0, 16) for c in (0, 16, 32)]
    for threshold in (0.3, 0.6, 1.0):
        ds = RasterChipDataset(path, size=16, min_valid=threshold)
        kept = [ds.window(k)[1:] for k in range(len(ds))]
        assert kept == [
            (r, c) for r, c in windows if valid[r : r + 16, c : c + 16].mean() >= threshold
        ]
    assert len(RasterChipDataset(path, size=16)) == 6  # default 0: nothing skipped


def test_min_valid_treats_nan_as_invalid_and_redraws_random_windows(tmp_path: Path) -> None:
    data = np.ones((1, 32, 64), np.float32)
    data[:, :, :40] = np.nan
    path = write(tmp_path / "nan.tif", data)
    ds = RasterChipDataset(
        path, size=16, sampler="random", length=12, min_valid=0.9, align_to_blocks=False
    )
    for k in range(12):
        _, _, c = ds.window(k)
        assert c >= 40 - 16 * 0.1  # at most 10 % of the columns may be NaN
        assert torch.isfinite(ds[k]["image"]).float().mean() >= 0.9


# -- bands ------------------------------------------------------------------------------


def test_bands_by_name_through_the_input_spec_and_by_index(tmp_path: Path) -> None:
    data = np.stack([np.full((16, 16), v, np.uint16) for v in (200, 300, 400, 800)])
    path = write(tmp_path / "s2.tif", data, descriptions=("B02", "B03", "B04", "B08"))
    spec = InputSpec.from_sensor("sentinel2_l2a", bands=["red", "green", "blue"])
    ds = RasterChipDataset(path, size=16, input_spec=spec)
    assert ds.num_bands == 3
    assert ds[0]["image"][:, 0, 0].tolist() == [400.0, 300.0, 200.0]
    by_index = RasterChipDataset(path, size=16, bands=[4, 1])
    assert by_index[0]["image"][:, 0, 0].tolist() == [800.0, 200.0]
    by_name = RasterChipDataset(path, size=16, bands=["B08", "B03"])
    assert by_name[0]["image"][:, 0, 0].tolist() == [800.0, 300.0]
    normalized = RasterChipDataset(path, size=16, input_spec=spec, normalize=True)[0]["image"]
    assert spec.scaling is not None and spec.mean is not None and spec.std is not None
    raw = torch.tensor([400.0, 300.0, 200.0])
    offset = torch.tensor(spec.scaling.offset).expand(3)
    divisor = torch.tensor(spec.scaling.divisor).expand(3)
    scaled = (raw - offset) / divisor
    if spec.scaling.clip is not None:
        scaled = scaled.clamp(*spec.scaling.clip)
    by_hand = (scaled - torch.tensor(spec.mean)) / torch.tensor(spec.std)
    assert torch.allclose(normalized[:, 5, 7], by_hand)


# -- labels ---------------------------------------------------------------------------


def test_label_on_a_coarser_partial_grid_is_warped_with_ignore_outside(tmp_path: Path) -> None:
    image = write(tmp_path / "img.tif", np.ones((1, 32, 48), np.uint8))
    values = (np.arange(80, dtype=np.uint8) + 1).reshape(1, 8, 10)
    # 20 m label pixels starting 100 m east and 100 m south of the image's corner
    coarse = Affine(20.0, 0.0, X0 + 100.0, 0.0, -20.0, Y0 - 100.0)
    label = write(tmp_path / "lab.tif", values, transform=coarse, block=None)
    ds = RasterChipDataset(image, label, size=(32, 48))
    expected = np.full((32, 48), -100, np.int64)
    for r in range(32):
        for c in range(48):
            x, y = X0 + (c + 0.5) * RES, Y0 - (r + 0.5) * RES  # pixel centre
            lc, lr = int((x - coarse.c) // 20), int((coarse.f - y) // 20)
            if 0 <= lr < 8 and 0 <= lc < 10:
                expected[r, c] = values[0, lr, lc]
    assert np.array_equal(ds[0]["mask"].numpy(), expected)
    assert (expected == -100).any() and (expected > 0).any()
    custom = RasterChipDataset(image, label, size=(32, 48), ignore_index=255)
    assert int(custom[0]["mask"][0, 0]) == 255


def test_warped_label_nodata_becomes_ignore_index(tmp_path: Path) -> None:
    image = write(tmp_path / "img.tif", np.ones((1, 40, 40), np.uint8), block=None)
    values = np.full((1, 20, 20), 3, np.uint8)
    values[0, :5, :5] = 9  # nodata: the image's first 10 x 10 pixels
    coarse = Affine(20.0, 0.0, X0, 0.0, -20.0, Y0)
    label = write(tmp_path / "lab.tif", values, transform=coarse, nodata=9, block=None)
    mask = RasterChipDataset(image, label, size=40)[0]["mask"].numpy()
    expected = np.full((40, 40), 3, np.int64)
    expected[:10, :10] = -100
    assert np.array_equal(mask, expected)


def test_label_nodata_on_the_same_grid_becomes_ignore_index(scene: Any, tmp_path: Path) -> None:
    image_path, _, _, label = scene
    holed = label.copy()
    holed[3:9, 5:11] = 250
    lab = write(tmp_path / "holed.tif", holed[None], nodata=250)
    mask = RasterChipDataset(image_path, lab, size=(40, 56))[0]["mask"].numpy()
    expected = holed.astype(np.int64)
    expected[holed == 250] = -100
    assert np.array_equal(mask, expected)


def test_label_band_picks_the_label_rasters_band(scene: Any, tmp_path: Path) -> None:
    image_path, _, _, label = scene
    two = write(tmp_path / "two.tif", np.stack([label, label + 10]))
    mask = RasterChipDataset(image_path, two, size=8, label_band=2)[0]["mask"]
    assert torch.equal(mask, torch.from_numpy(label[:8, :8] + 10).long())


def test_vector_labels_are_burnt_into_each_chip(tmp_path: Path) -> None:
    image = write(tmp_path / "img.tif", np.ones((1, 32, 48), np.uint8))

    def rect(r0: int, c0: int, r1: int, c1: int, cls: int) -> dict[str, Any]:
        x0, x1, y0, y1 = X0 + c0 * RES, X0 + c1 * RES, Y0 - r0 * RES, Y0 - r1 * RES
        ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
        return {
            "type": "Feature",
            "properties": {"cls": cls},
            "geometry": {"type": "Polygon", "coordinates": [ring]},
        }

    collection = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "EPSG:32618"}},
        "features": [rect(2, 3, 10, 30, 2), rect(5, 20, 20, 40, 5)],  # the second on top
    }
    path = tmp_path / "polygons.geojson"
    path.write_text(json.dumps(collection))
    expected = np.zeros((32, 48), np.int64)
    expected[2:10, 3:30] = 2
    expected[5:20, 20:40] = 5
    ds = RasterChipDataset(image, vector_labels=path, size=(16, 24), vector_property="cls")
    for k in range(len(ds)):
        _, r, c = ds.window(k)
        assert np.array_equal(ds[k]["mask"].numpy(), expected[r : r + 16, c : c + 24])
    ones = RasterChipDataset(image, vector_labels=collection, size=(32, 48))[0]["mask"]
    assert torch.equal(ones, torch.from_numpy((expected > 0).astype(np.int64)))
    collection.pop("crs")
    override = RasterChipDataset(
        image,
        vector_labels=collection,
        vector_crs="EPSG:32618",
        size=(32, 48),
        vector_property="cls",
    )
    assert np.array_equal(override[0]["mask"].numpy(), expected)


def test_vector_labels_default_to_wgs84_longitude_latitude(tmp_path: Path) -> None:
    image = write(tmp_path / "img.tif", np.ones((1, 32, 48), np.uint8))
    # The lon/lat of the centre pixel's neighbourhood: a small square around pixel (16, 24).
    xs = [X0 + 20 * RES, X0 + 28 * RES]
    ys = [Y0 - 12 * RES, Y0 - 20 * RES]
    lon, lat = rasterio.warp.transform("EPSG:32618", "EPSG:4326", xs, ys)
    ring = [
        [lon[0], lat[0]],
        [lon[1], lat[0]],
        [lon[1], lat[1]],
        [lon[0], lat[1]],
        [lon[0], lat[0]],
    ]
    collection = {
        "type": "Feature",
        "properties": {},
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }
    mask = RasterChipDataset(image, vector_labels=collection, size=(32, 48))[0]["mask"]
    assert int(mask[16, 24]) == 1 and int(mask[0, 0]) == 0
    assert 40 <= int(mask.sum()) <= 90  # about the 8 x 8 square, edges slightly curved


# -- processes and ranks ----------------------------------------------------------------


@pytest.mark.parametrize("sampler", ["grid", "random"])
def test_two_dataloader_workers_give_the_same_samples_as_none(scene: Any, sampler: str) -> None:
    image_path, label_path, _, _ = scene
    length = 10 if sampler == "random" else None
    ds = RasterChipDataset(image_path, label_path, size=(16, 20), sampler=sampler, length=length)  # type: ignore[arg-type]
    _ = ds[0]  # open handles in this process: workers must not reuse them

    def batches(workers: int) -> list[dict[str, Any]]:
        return list(DataLoader(ds, batch_size=3, num_workers=workers))

    single, multi = batches(0), batches(2)
    assert len(single) == len(multi) == -(-len(ds) // 3)
    for a, b in zip(single, multi, strict=True):
        for key in ("image", "mask", "bounds", "transform"):
            assert torch.equal(a[key], b[key])
        assert a["crs"] == b["crs"]


def test_handles_are_opened_lazily_and_never_pickled(scene: Any) -> None:
    image_path, label_path, _, _ = scene
    ds = RasterChipDataset(image_path, label_path, size=16)
    assert open_handles(ds) == {}
    first = ds[1]
    assert sorted(open_handles(ds)) == sorted([str(image_path), str(label_path)])
    clone = pickle.loads(pickle.dumps(ds))
    assert open_handles(clone) == {}
    assert torch.equal(clone[1]["image"], first["image"])
    handle = open_handles(ds)[str(image_path)]
    ds._pid = -5  # as after a fork: the inherited handle must not be reused
    _ = ds[1]
    assert open_handles(ds)[str(image_path)] is not handle
    ds.close()
    assert open_handles(ds) == {}


def open_handles(ds: RasterChipDataset) -> dict[str, Any]:
    """The file handles ``ds`` holds in this process."""
    return dict(ds._handles or {})


@pytest.mark.parametrize("sampler", ["grid", "random"])
def test_two_ranks_see_every_window_exactly_once(scene: Any, sampler: str) -> None:
    image_path, _, _, _ = scene
    kwargs: dict[str, Any] = {"size": (8, 8), "sampler": sampler}
    if sampler == "random":
        kwargs.update(length=25, align_to_blocks=False)
    whole = RasterChipDataset(image_path, **kwargs)
    everything = [whole.window(k) for k in range(len(whole))]
    assert len(everything) == (35 if sampler == "grid" else 25)
    shards = [RasterChipDataset(image_path, rank=r, world_size=2, **kwargs) for r in (0, 1)]
    seen = [shard.window(k) for shard in shards for k in range(len(shard))]
    assert sorted(seen) == sorted(everything)
    assert [len(s) for s in shards] == ([13, 12] if sampler == "random" else [18, 17])
    even = [
        RasterChipDataset(image_path, rank=r, world_size=2, even_shards=True, **kwargs)
        for r in (0, 1)
    ]
    assert len(even[0]) == len(even[1]) == len(everything) // 2
    assert not {e.window(k) for e in even[:1] for k in range(len(e))} & {
        even[1].window(k) for k in range(len(even[1]))
    }


def test_rank_and_world_size_default_to_torch_distributed(
    scene: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    image_path, _, _, _ = scene
    monkeypatch.setattr("geofm._dist.world_size", lambda: 3)
    monkeypatch.setattr("geofm._dist.rank", lambda: 2)
    ds = RasterChipDataset(image_path, size=8)
    assert (ds.rank, ds.world_size, len(ds)) == (2, 3, 35 // 3)
    whole = RasterChipDataset(image_path, size=8, rank=0, world_size=1)
    assert [ds.window(k) for k in range(len(ds))] == [whole.window(k) for k in range(2, 35, 3)]


# -- errors ---------------------------------------------------------------------------


def test_argument_errors_name_what_was_expected(scene: Any, tmp_path: Path) -> None:
    image_path, label_path, _, _ = scene
    cases: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"images": []}, ValueError, "at least one raster"),
        ({"images": tmp_path / "missing.tif"}, FileNotFoundError, "missing.tif"),
        ({"labels": tmp_path / "nolabel.tif"}, FileNotFoundError, "nolabel.tif"),
        ({"sampler": "tiles"}, ValueError, "Expected one of: grid, random"),
        ({"length": 5}, ValueError, "applies to sampler='random'"),
        ({"sampler": "random", "length": 5, "stride": 4}, ValueError, "applies to sampler='grid'"),
        ({"sampler": "random"}, ValueError, "needs length="),
        ({"sampler": "random", "length": 0}, ValueError, "needs length="),
        ({"size": 0}, ValueError, "size must be >= 1"),
        ({"size": 2.5}, TypeError, "size must be an int"),
        ({"stride": (4, 4, 4)}, TypeError, "stride must be an int"),
        ({"size": (8, 80)}, ValueError, "smaller than the chip size 8 x 80"),
        ({"min_valid": 1.5}, ValueError, "min_valid must be a fraction"),
        ({"max_tries": 0}, ValueError, "max_tries must be >= 1"),
        ({"gdal_cache_mb": 0}, ValueError, "gdal_cache_mb must be >= 1"),
        ({"label_resampling": "bilinear"}, ValueError, "Unknown label_resampling"),
        ({"normalize": True}, ValueError, "needs input_spec"),
        ({"rank": 2, "world_size": 2}, ValueError, "rank must be in"),
        ({"labels": [label_path, label_path, label_path]}, ValueError, "3 label rasters for 1"),
        ({"labels": label_path, "vector_labels": {}}, ValueError, "not both"),
        ({"labels": label_path, "label_band": 2}, ValueError, "label_band=2 is out of range"),
        ({"bands": [5]}, ShapeError, "out of range"),
        ({"bands": ["B8"]}, ShapeError, "not among the band descriptions"),
        ({"bands": [1, "B2"]}, ValueError, "all names or all 1-based"),
    ]
    for kwargs, error, message in cases:
        images = kwargs.pop("images", image_path)
        kwargs.setdefault("size", 8)
        with pytest.raises(error, match=message):
            RasterChipDataset(images, **kwargs)


def test_label_grid_errors(scene: Any, tmp_path: Path) -> None:
    image_path, _, _, label = scene
    shifted = write(tmp_path / "shift.tif", label[None], transform=UTM @ Affine.translation(3, 0))
    with pytest.raises(
        ValueError, match="another grid than its image .*label_resampling='nearest'"
    ):
        RasterChipDataset(image_path, shifted, size=8, label_resampling=None)
    no_crs = write(
        tmp_path / "nocrs.tif", label[None], crs=None, transform=UTM @ Affine.translation(3, 0)
    )
    with pytest.raises(ValueError, match="has no CRS, so it cannot be aligned"):
        RasterChipDataset(image_path, no_crs, size=8)
    far = write(tmp_path / "far.tif", label[None], transform=UTM @ Affine.translation(1000, 0))
    with pytest.raises(ValueError, match="does not overlap its image"):
        RasterChipDataset(image_path, far, size=8)


def test_image_errors(scene: Any, tmp_path: Path) -> None:
    image_path, _, image, _ = scene
    with pytest.raises(ValueError, match="has no CRS"):
        RasterChipDataset(write(tmp_path / "plain.tif", image, crs=None), size=8)
    two = write(tmp_path / "two.tif", image[:2])
    with pytest.raises(ValueError, match="different band counts .*image.tif: 3, two.tif: 2"):
        RasterChipDataset([image_path, two], size=8)
    empty = write(tmp_path / "empty.tif", np.zeros((1, 16, 16), np.uint8), nodata=0)
    with pytest.raises(ValueError, match="No grid window has a valid fraction >= min_valid=0.5"):
        RasterChipDataset(empty, size=8, min_valid=0.5)
    rnd = RasterChipDataset(empty, size=8, sampler="random", length=2, min_valid=0.5, max_tries=3)
    with pytest.raises(ValueError, match="in 3 random draws for index 0"):
        rnd[0]
    ds = RasterChipDataset(image_path, size=8)
    with pytest.raises(IndexError, match="Index 35 is out of range for 35 chips"):
        ds[35]


def test_vector_label_errors(scene: Any, tmp_path: Path) -> None:
    image_path, _, _, _ = scene
    square = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}

    def fc(*features: dict[str, Any]) -> dict[str, Any]:
        return {"type": "FeatureCollection", "features": list(features)}

    point = {
        "type": "Feature",
        "properties": {},
        "geometry": {"type": "Point", "coordinates": [0, 0]},
    }
    bad = tmp_path / "bad.geojson"
    bad.write_text("{not json")
    cases: list[tuple[Any, dict[str, Any], str]] = [
        (fc(point), {}, "geometry type 'Point'; expected Polygon"),
        (
            fc({"type": "Feature", "properties": {"a": 1}, "geometry": square}),
            {"vector_property": "cls"},
            "no property 'cls' .*it has: a",
        ),
        (
            fc({"type": "Feature", "properties": {"cls": "water"}, "geometry": square}),
            {"vector_property": "cls"},
            "class value 'water'; expected an integer",
        ),
        ({"type": "GeometryCollection"}, {}, "must be a GeoJSON FeatureCollection or Feature"),
        (bad, {}, "is not valid GeoJSON text"),
    ]
    for source, kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            RasterChipDataset(image_path, vector_labels=source, size=8, **kwargs)
    with pytest.raises(FileNotFoundError, match="vector_labels file .*nothing.geojson"):
        RasterChipDataset(image_path, vector_labels=tmp_path / "nothing.geojson", size=8)


# -- batched reads and collate_chips ----------------------------------------------------


def same_sample(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Same keys in the same order, equal tensors of the same dtype, equal other values."""
    if list(a) != list(b):
        return False
    for key, value in a.items():
        if isinstance(value, torch.Tensor):
            if value.dtype != b[key].dtype or not torch.equal(value, b[key]):
                return False
        elif value != b[key]:
            return False
    return True


def rows_of_one_buffer(tensors: list[torch.Tensor]) -> bool:
    """Whether ``tensors`` are consecutive rows of one storage."""
    first = tensors[0]
    return all(
        t.untyped_storage().data_ptr() == first.untyped_storage().data_ptr()
        and t.storage_offset() == first.storage_offset() + k * first.numel()
        for k, t in enumerate(tensors)
    )


def every_kind_of_dataset(scene: Any, tmp_path: Path) -> dict[str, RasterChipDataset]:
    """One dataset per way a sample is read: each kind of label, none, normalised, random."""
    image_path, label_path, _, label = scene
    holed = label.copy()
    holed[3:9, 5:11] = 250
    masked = write(tmp_path / "holed.tif", holed[None], nodata=250)
    coarse = Affine(20.0, 0.0, X0 + 100.0, 0.0, -20.0, Y0 - 100.0)
    warped = write(
        tmp_path / "coarse.tif",
        (np.arange(80, dtype=np.uint8) + 1).reshape(1, 8, 10),
        transform=coarse,
        block=None,
    )
    ring = [[X0 + 30, Y0 - 20], [X0 + 300, Y0 - 20], [X0 + 300, Y0 - 250], [X0 + 30, Y0 - 20]]
    polygons = {
        "type": "Feature",
        "properties": {"cls": 4},
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }
    spec = InputSpec(num_bands=3, mean=(10.0, 20.0, 30.0), std=(2.0, 4.0, 8.0))
    second = write(tmp_path / "second.tif", scene[2][:, ::-1].copy())
    size = (16, 24)
    return {
        "label": RasterChipDataset(image_path, label_path, size=size, stride=8),
        "masked label": RasterChipDataset(image_path, masked, size=size),
        "warped label": RasterChipDataset(image_path, warped, size=size),
        "polygons": RasterChipDataset(
            image_path,
            vector_labels=polygons,
            vector_crs="EPSG:32618",
            size=size,
            vector_property="cls",
        ),
        "no label": RasterChipDataset(image_path, size=size),
        "normalised": RasterChipDataset(image_path, size=size, input_spec=spec, normalize=True),
        "random, two images, image labels": RasterChipDataset(
            [image_path, second],
            label_path,
            image_labels=[3, 7],
            size=size,
            sampler="random",
            length=9,
            seed=4,
        ),
    }


def test_getitems_reads_the_samples_of_getitem_into_one_buffer(scene: Any, tmp_path: Path) -> None:
    for kind, ds in every_kind_of_dataset(scene, tmp_path).items():
        indices = [2, 0, len(ds) - 1, -1, 1]
        samples = ds.__getitems__(indices)
        assert len(samples) == len(indices), kind
        for sample, index in zip(samples, indices, strict=True):
            assert same_sample(sample, ds[index]), (kind, index)
        assert rows_of_one_buffer([s["image"] for s in samples]), kind
        if "mask" in samples[0]:
            assert rows_of_one_buffer([s["mask"] for s in samples]), kind
        assert ds.__getitems__([]) == []
    masks = every_kind_of_dataset(scene, tmp_path)["masked label"].__getitems__([0])[0]["mask"]
    assert (masks == -100).sum() == 36  # the 6 x 6 nodata hole, read into the batch buffer
    grid = RasterChipDataset(scene[0], size=(16, 24))  # 3 x 3 windows
    with pytest.raises(IndexError, match="Index 9 is out of range for 9 chips"):
        grid.__getitems__([0, 9])


def test_collate_chips_equals_default_collate_without_copying_a_batch_read(
    scene: Any, tmp_path: Path
) -> None:
    for kind, ds in every_kind_of_dataset(scene, tmp_path).items():
        samples = ds.__getitems__([1, 0, 2])
        batch, expected = collate_chips(samples), default_collate([ds[i] for i in (1, 0, 2)])
        assert list(batch) == list(expected), kind
        for key, value in expected.items():
            if isinstance(value, torch.Tensor):
                assert batch[key].dtype == value.dtype and torch.equal(batch[key], value), kind
            else:
                assert batch[key] == value, kind
        # No copy: the batch is the buffer the samples are rows of.
        assert batch["image"].data_ptr() == samples[0]["image"].data_ptr(), kind
        if "mask" in batch:
            assert batch["mask"].data_ptr() == samples[0]["mask"].data_ptr(), kind
        assert batch["bounds"].data_ptr() != samples[0]["bounds"].data_ptr()  # stacked


def test_collate_chips_copies_whatever_is_not_consecutive_rows_of_one_tensor() -> None:
    buffer = torch.arange(4 * 6, dtype=torch.float32).reshape(4, 2, 3)
    other = buffer.clone()
    cases = {
        "reordered rows": [buffer[1], buffer[0]],
        "a row left out": [buffer[0], buffer[2]],
        "rows of two tensors": [buffer[0], other[1]],
        "not contiguous": [buffer[0].t(), buffer[1].t()],
        "a later row not contiguous": [buffer[0], buffer[1].t().contiguous().t()],
        "another dtype": [buffer[0], buffer[1].view(torch.int32)],
        "another shape": [buffer[0], buffer[1:3].reshape(3, 4)[0].reshape(2, 2)],
        "not all tensors": [buffer[0], buffer[1].tolist()],
    }
    for name, values in cases.items():
        samples = [{"x": v} for v in values]
        try:
            expected = default_collate(samples)["x"]
        except (RuntimeError, TypeError) as error:  # then collate_chips raises the same
            with pytest.raises(type(error)):
                collate_chips(samples)
            continue
        batch = collate_chips(samples)["x"]
        assert batch.dtype == expected.dtype and torch.equal(batch, expected), name
        assert batch.data_ptr() != buffer.data_ptr(), name  # a new tensor
    rows = collate_chips([{"x": buffer[1]}, {"x": buffer[2]}])["x"]
    assert rows.data_ptr() == buffer[1].data_ptr() and torch.equal(rows, buffer[1:3])
    assert collate_chips([{"x": buffer[3]}])["x"].shape == (1, 2, 3)


def test_collate_chips_errors_name_what_was_expected() -> None:
    with pytest.raises(ValueError, match="collate_chips needs at least one sample, got none"):
        collate_chips([])
    with pytest.raises(
        ValueError,
        match=r"keys \['image', 'mask'\] of sample 0; sample 1 has \['image'\]",
    ):
        collate_chips(
            [{"image": torch.zeros(1), "mask": torch.zeros(1)}, {"image": torch.zeros(1)}]
        )


def collate_in_worker(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """collate_chips, recording where it ran, whether it copied and where the batch lies."""
    batch = collate_chips(samples)
    batch["in_worker"] = get_worker_info() is not None
    batch["copied"] = batch["image"].data_ptr() != samples[0]["image"].data_ptr()
    batch["shared"] = batch["image"].is_shared() and batch["mask"].is_shared()
    return batch


@pytest.mark.parametrize("sampler", ["grid", "random"])
def test_collate_chips_in_dataloader_workers_and_without_them(scene: Any, sampler: str) -> None:
    image_path, label_path, _, _ = scene
    length = 12 if sampler == "random" else None
    ds = RasterChipDataset(image_path, label_path, size=(16, 16), sampler=sampler, length=length)  # type: ignore[arg-type]
    reference = list(DataLoader(ds, batch_size=3))
    assert len(ds) == 12 and len(reference) == 4
    for workers in (0, 2):
        loader = DataLoader(ds, batch_size=3, num_workers=workers, collate_fn=collate_in_worker)
        batches = list(loader)
        assert len(batches) == len(reference)
        for a, b in zip(batches, reference, strict=True):
            for key in ("image", "mask", "bounds", "transform"):
                assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key])
            assert a["crs"] == b["crs"]
            assert a["in_worker"] == (workers > 0) and not a["copied"]
        # Each worker's first batch is read into ordinary memory (the DataLoader copies
        # it into shared memory to send it); once collate_chips has handed a batch over
        # as read, the worker reads the next ones straight into shared memory.
        expected = [False, False, True, True] if workers else [False] * 4
        assert [a["shared"] for a in batches] == expected


def test_without_collate_chips_workers_read_into_ordinary_memory(scene: Any) -> None:
    image_path, label_path, _, _ = scene
    ds = RasterChipDataset(image_path, label_path, size=(16, 16))

    def shared_rows(samples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = default_collate(samples)  # a copy, in shared memory in a worker
        batch["rows_shared"] = samples[0]["image"].is_shared()
        return batch

    batches = list(DataLoader(ds, batch_size=3, num_workers=2, collate_fn=shared_rows))
    assert [b["rows_shared"] for b in batches] == [False] * 4
