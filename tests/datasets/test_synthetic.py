from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from geofm.datasets.synthetic import (
    SyntheticMultilabel,
    SyntheticSceneClassification,
    SyntheticSegmentation,
    built_up_scene,
    landcover_scene,
    spectral_signatures,
    write_nightlight_scene,
)
from geofm.errors import ShapeError
from geofm.sensors import get_sensor


def test_scenes_are_deterministic_given_the_seed() -> None:
    a, b = landcover_scene(size=32, seed=3), landcover_scene(size=32, seed=3)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    assert not np.array_equal(a.mask, landcover_scene(size=32, seed=4).mask)


def test_class_spectra_agree_across_band_sets() -> None:
    # The same class evaluated at a subset of wavelengths gives the same values.
    full = spectral_signatures([490.0, 560.0, 665.0, 842.0], num_classes=6)
    sub = spectral_signatures([560.0, 842.0], num_classes=6)
    assert np.allclose(full[:, [1, 3]], sub)
    # Every spelling of a band set goes through geofm.sensors.resolve_wavelengths.
    s2 = get_sensor("sentinel2_l2a")
    by_name = spectral_signatures("sentinel2_l2a", num_classes=6)
    assert np.array_equal(spectral_signatures(s2, num_classes=6), by_name)
    assert np.array_equal(spectral_signatures(list(s2.wavelengths), num_classes=6), by_name)


def test_landcover_pixels_are_separable_by_their_class_spectrum() -> None:
    scene = landcover_scene(size=48, bands="sentinel2_l2a", num_classes=5, noise=0.01)
    sig = spectral_signatures("sentinel2_l2a", num_classes=5)
    pixels = scene.image.reshape(12, -1).T  # (H*W, C)
    nearest = ((pixels[:, None, :] - sig[None]) ** 2).sum(-1).argmin(1)
    assert (nearest == scene.mask.ravel()).mean() > 0.8


def test_night_lights_follow_the_roofs() -> None:
    scene = built_up_scene(size=96, seed=1)
    assert np.corrcoef(scene.roofs.ravel(), scene.lights.ravel())[0, 1] > 0.3


def test_written_nightlight_scene_is_utm_and_lights_are_lon_lat(tmp_path: Path) -> None:
    import rasterio

    image, lights = write_nightlight_scene(tmp_path, size=64, lon=121.47, lat=31.23)
    with rasterio.open(image) as src:
        assert src.crs.to_epsg() == 32651 and src.count == 3
    with rasterio.open(lights) as src:
        assert src.crs.to_epsg() == 4326


def test_datasets_return_dict_samples() -> None:
    seg = SyntheticSegmentation(landcover_scene(size=32), patch_size=16, length=3, region=(0, 24))
    assert seg[1]["mask"].shape == (16, 16)
    ml = SyntheticMultilabel(length=2, size=16, num_labels=19)
    s = ml[0]
    assert set(s["label"].tolist()) <= {0.0, 1.0}
    assert abs(float(s["target"].sum()) - 1.0) < 1e-5
    cls = SyntheticSceneClassification(length=5, num_classes=4, size=16)
    assert cls[2]["image"].shape == (3, 16, 16)


def test_errors() -> None:
    with pytest.raises(ValueError, match="cannot hold"):
        SyntheticSegmentation(landcover_scene(size=16), patch_size=32, length=1)
    with pytest.raises(ShapeError, match="class_weights"):
        landcover_scene(size=16, num_classes=3, class_weights=(1.0, 2.0))
    with pytest.raises(ValueError, match="wavelength"):
        spectral_signatures([], num_classes=2)
    with pytest.raises(ValueError, match="micrometres"):
        landcover_scene(size=16, bands=[0.49, 0.56, 0.665])
