"""Seeded synthetic Earth-observation scenes with learnable structure.

Every example in ``examples/`` runs without a download on these scenes. They are
not noise: each has a rule a model can learn and a test can check.

- :func:`landcover_scene`: smooth class regions (water, vegetation, soil,
  built-up, then further classes) whose pixels follow a class reflectance
  spectrum evaluated at **any band set** (wavelengths in nm, or a sensor name
  of :mod:`geofm.sensors`), with illumination texture and sensor noise;
- :func:`built_up_scene`: roofs placed with a density that follows a smooth
  "urban" field, and a night-light map that is the blurred roof density
  (EcoVision's premise: built-up area drives night-time radiance);
- :func:`write_nightlight_scene`: the built-up scene as a UTM GeoTIFF plus a
  coarse EPSG:4326 VIIRS-like raster, so the real pipeline (tile, reproject,
  :func:`geofm.geo.align_target`) runs on it;
- datasets over these scenes (plain :class:`torch.utils.data.Dataset`, samples
  are dicts as in torchgeo): :class:`SyntheticSegmentation` (``image``,
  ``mask``), :class:`SyntheticMultilabel` (``image``, ``label`` multi-hot,
  ``target`` class fractions), :class:`SyntheticSceneClassification`
  (``image``, ``label``: one "country" style per class).

Everything is a deterministic function of ``seed`` (NumPy ``default_rng``).
The reflectance spectra are smooth functions of wavelength, so one class looks
consistent across sensors (RGB, Sentinel-2, EnMAP's 202 bands).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from geofm.errors import ShapeError
from geofm.geo import import_rasterio, utm_epsg_for
from geofm.sensors import Sensor, resolve_wavelengths

__all__ = [
    "BuiltUpScene",
    "LandCoverScene",
    "SyntheticMultilabel",
    "SyntheticSceneClassification",
    "SyntheticSegmentation",
    "built_up_scene",
    "class_layout",
    "landcover_scene",
    "smooth_field",
    "spectral_signatures",
    "write_landcover_scene",
    "write_nightlight_scene",
]

_NAMED_CLASSES = ("water", "vegetation", "bare_soil", "built_up")


def _gauss(wl: np.ndarray, centre: float, width: float) -> np.ndarray:
    out: np.ndarray = np.exp(-0.5 * ((wl - centre) / width) ** 2)
    return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1.0 / (1.0 + np.exp(-x))
    return out


def _named_spectrum(kind: str, wl: np.ndarray) -> np.ndarray:
    """Reflectance in [0, 1] of a named cover type at wavelengths ``wl`` (nm)."""
    absorption = 1.0 - 0.5 * _gauss(wl, 1450.0, 60.0) - 0.6 * _gauss(wl, 1940.0, 70.0)
    if kind == "water":
        return 0.02 + 0.08 * np.exp(-np.clip(wl - 420.0, 0.0, None) / 120.0)
    if kind == "vegetation":
        red_edge = (
            0.45 * _sigmoid((wl - 715.0) / 15.0) * (1.0 - 0.6 * _sigmoid((wl - 1300.0) / 150.0))
        )
        return (0.03 + 0.07 * _gauss(wl, 550.0, 35.0) + red_edge) * absorption
    if kind == "bare_soil":
        return (0.12 + 0.28 * np.clip((wl - 400.0) / 1800.0, 0.0, 1.0)) * absorption
    # built_up: bright and flat with a weak slope.
    return (0.30 + 0.05 * np.sin(wl / 320.0)) * absorption


def spectral_signatures(
    wavelengths: str | Sensor | Sequence[float], *, num_classes: int, seed: int = 0
) -> np.ndarray:
    """Reflectance of each class at each band: water, vegetation, bare soil, built-up, then random.

    The first four classes follow textbook shapes (vegetation's red edge near
    715 nm, water dark in the NIR, soil rising towards the SWIR, flat bright
    roofs, water-vapour dips at 1450/1940 nm); classes 4 and up are random
    smooth spectra drawn from ``seed`` and the class index only, so a class
    has the same spectrum for every band set.

    Args:
        wavelengths: Sensor (or its name) or centre wavelengths in nm, as
            :func:`geofm.sensors.resolve_wavelengths` takes them.
        num_classes: Number of classes, at least 1.
        seed: Seed of the random spectra (classes >= 4).

    Returns:
        ``float32`` array of shape ``(num_classes, C)`` in ``[0.01, 0.9]``.

    Raises:
        ValueError: If ``num_classes < 1`` or a wavelength is not in ``[100, 20000]`` nm.
        UnknownNameError: If a sensor name is not registered.

    Example:
        >>> sig = spectral_signatures("sentinel2_l2a", num_classes=6)
        >>> sig.shape
        (6, 12)
        >>> bool(sig[1, 7] > 3 * sig[1, 3])  # vegetation: NIR (B08) >> red (B04)
        True
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}.")
    wl = np.asarray(resolve_wavelengths(wavelengths), dtype=np.float64)
    rows = []
    for k in range(num_classes):
        if k < len(_NAMED_CLASSES):
            rows.append(_named_spectrum(_NAMED_CLASSES[k], wl))
            continue
        rng = np.random.default_rng([seed, k])
        curve = np.full_like(wl, rng.uniform(0.05, 0.3))
        for _ in range(3):
            centre = rng.uniform(400.0, 2500.0)
            curve += rng.uniform(-0.15, 0.35) * _gauss(wl, centre, rng.uniform(60.0, 400.0))
        rows.append(curve)
    out: np.ndarray = np.clip(np.stack(rows), 0.01, 0.9).astype(np.float32)
    return out


def smooth_field(
    size: int, *, scale: float, rng: np.random.Generator, channels: int = 1
) -> np.ndarray:
    """Smooth random fields: Gaussian noise on a coarse grid, bicubically upsampled.

    Args:
        size: Output height and width in pixels.
        scale: Correlation length in pixels (size of one coarse cell).
        rng: NumPy generator the values come from.
        channels: Number of independent fields.

    Returns:
        ``float32`` array ``(channels, size, size)``, roughly unit variance.

    Example:
        >>> smooth_field(16, scale=4.0, rng=np.random.default_rng(0), channels=2).shape
        (2, 16, 16)
    """
    cells = max(2, math.ceil(size / max(scale, 1.0)) + 3)
    coarse = torch.from_numpy(rng.standard_normal((1, channels, cells, cells)).astype(np.float32))
    fine = F.interpolate(coarse, scale_factor=max(scale, 1.0), mode="bicubic", align_corners=False)
    offset = (fine.shape[-1] - size) // 2
    out: np.ndarray = fine[0, :, offset : offset + size, offset : offset + size].numpy()
    return out


def class_layout(
    size: int,
    *,
    num_classes: int,
    rng: np.random.Generator,
    scale: float = 16.0,
    class_weights: Sequence[float] | None = None,
) -> np.ndarray:
    """Class regions: the argmax of one smooth field per class (plus a log-weight bias).

    Args:
        size: Height and width in pixels.
        num_classes: Number of classes.
        rng: NumPy generator.
        scale: Typical region size in pixels.
        class_weights: Relative area of each class (default: equal).

    Returns:
        ``int64`` array ``(size, size)`` of class indices.

    Raises:
        ShapeError: If ``class_weights`` does not have ``num_classes`` entries.

    Example:
        >>> mask = class_layout(32, num_classes=3, rng=np.random.default_rng(0))
        >>> sorted(set(mask.ravel().tolist())) == [0, 1, 2]
        True
    """
    fields = smooth_field(size, scale=scale, rng=rng, channels=num_classes)
    if class_weights is not None:
        weights = np.asarray(class_weights, dtype=np.float32)
        if weights.shape != (num_classes,) or np.any(weights <= 0):
            raise ShapeError(
                f"class_weights must hold {num_classes} positive values, got {list(weights)}."
            )
        fields = fields + np.log(weights / weights.mean())[:, None, None]
    out: np.ndarray = fields.argmax(axis=0).astype(np.int64)
    return out


@dataclass(frozen=True)
class LandCoverScene:
    """A synthetic land-cover scene.

    Args:
        image: Reflectance in ``[0, 1]``, ``(C, H, W)`` float32.
        mask: Class index per pixel, ``(H, W)`` int64.
        wavelengths: Centre wavelength of each band, nm.
        class_names: Name of each class.

    Example:
        >>> scene = landcover_scene(size=16, bands="rgb", num_classes=3)
        >>> scene.image.shape, scene.mask.shape, scene.class_names
        ((3, 16, 16), (16, 16), ('water', 'vegetation', 'bare_soil'))
    """

    image: np.ndarray
    mask: np.ndarray
    wavelengths: tuple[float, ...]
    class_names: tuple[str, ...]


def _class_names(num_classes: int) -> tuple[str, ...]:
    return tuple(
        _NAMED_CLASSES[k] if k < len(_NAMED_CLASSES) else f"class_{k}" for k in range(num_classes)
    )


def _render(
    mask: np.ndarray, signatures: np.ndarray, rng: np.random.Generator, noise: float
) -> np.ndarray:
    size = mask.shape[-1]
    image = signatures.T[:, mask]  # (C, H, W)
    light = 1.0 + 0.1 * smooth_field(size, scale=4.0, rng=rng)  # illumination / texture
    image = image * light + noise * rng.standard_normal(image.shape).astype(np.float32)
    out: np.ndarray = np.clip(image, 0.0, 1.0).astype(np.float32)
    return out


def landcover_scene(
    *,
    size: int = 64,
    bands: str | Sensor | Sequence[float] = "rgb",
    num_classes: int = 5,
    seed: int = 0,
    scale: float = 16.0,
    noise: float = 0.02,
    class_weights: Sequence[float] | None = None,
) -> LandCoverScene:
    """A land-cover scene: smooth class regions rendered with class spectra at any band set.

    Args:
        size: Height and width in pixels.
        bands: Sensor (or its name) or centre wavelengths in nm.
        num_classes: Number of classes (the first four are water, vegetation,
            bare soil, built-up).
        seed: Seed of the layout, texture and noise (the spectra use seed 0 so
            every scene shares them).
        scale: Typical region size in pixels.
        noise: Standard deviation of additive Gaussian noise (reflectance units).
        class_weights: Relative area of each class (default: equal).

    Returns:
        The scene.

    Raises:
        ValueError: If ``size < 2`` or ``num_classes < 1``.

    Example:
        >>> scene = landcover_scene(size=32, bands="sentinel2_l2a", num_classes=4, seed=1)
        >>> scene.image.shape, scene.image.dtype.name
        ((12, 32, 32), 'float32')
    """
    if size < 2:
        raise ValueError(f"size must be >= 2 pixels, got {size}.")
    wavelengths = resolve_wavelengths(bands)
    signatures = spectral_signatures(wavelengths, num_classes=num_classes)
    rng = np.random.default_rng(seed)
    mask = class_layout(
        size, num_classes=num_classes, rng=rng, scale=scale, class_weights=class_weights
    )
    image = _render(mask, signatures, rng, noise)
    return LandCoverScene(image, mask, wavelengths, _class_names(num_classes))


@dataclass(frozen=True)
class BuiltUpScene:
    """A synthetic built-up scene with its night-light map.

    Args:
        image: RGB, ``(3, H, W)`` uint8.
        roofs: ``1`` on roof pixels, ``(H, W)`` float32.
        lights: Night-time radiance (nW/cm^2/sr-like), ``(H, W)`` float32:
            roof density blurred over about ``blur`` pixels.

    Example:
        >>> scene = built_up_scene(size=32, seed=0)
        >>> scene.image.shape, scene.image.dtype.name, scene.lights.shape
        ((3, 32, 32), 'uint8', (32, 32))
    """

    image: np.ndarray
    roofs: np.ndarray
    lights: np.ndarray


def built_up_scene(
    *, size: int = 256, seed: int = 0, urban_scale: float = 48.0, blur: float = 4.0
) -> BuiltUpScene:
    """Roofs placed with a density following a smooth urban field; lights = blurred roof density.

    Args:
        size: Height and width in pixels.
        seed: Seed of everything.
        urban_scale: Size of urban clusters in pixels.
        blur: Gaussian blur (pixels, sigma) from roof density to night lights.

    Returns:
        The scene.

    Raises:
        ValueError: If ``size < 8``.

    Example:
        >>> scene = built_up_scene(size=64, seed=3)
        >>> bool(np.corrcoef(scene.roofs.ravel(), scene.lights.ravel())[0, 1] > 0.3)
        True
    """
    if size < 8:
        raise ValueError(f"size must be >= 8 pixels, got {size}.")
    rng = np.random.default_rng(seed)
    urban = 1.0 / (1.0 + np.exp(-2.5 * smooth_field(size, scale=urban_scale, rng=rng)[0]))
    roofs = np.zeros((size, size), dtype=np.float32)
    roof_colour = np.zeros((3, size, size), dtype=np.float32)
    cell = 6
    for r in range(0, size - 2, cell):
        for c in range(0, size - 2, cell):
            if rng.random() < urban[r, c] ** 1.5:
                h, w = rng.integers(2, 6, size=2)
                grey = rng.uniform(150.0, 230.0)
                roofs[r : r + h, c : c + w] = 1.0
                roof_colour[:, r : r + h, c : c + w] = grey + rng.uniform(-10, 10, size=(3, 1, 1))
    # Ground: vegetation to bare soil, darker grey pavement where urban.
    veg = np.array([60.0, 95.0, 50.0])[:, None, None]
    soil = np.array([130.0, 110.0, 85.0])[:, None, None]
    paved = np.array([105.0, 105.0, 110.0])[:, None, None]
    mix = 0.5 + 0.5 * np.tanh(smooth_field(size, scale=24.0, rng=rng)[0])
    ground = veg * mix + soil * (1.0 - mix)
    ground = ground * (1.0 - urban) + paved * urban
    ground = ground * (1.0 + 0.08 * smooth_field(size, scale=3.0, rng=rng)[0])
    image = np.where(roofs[None] > 0, roof_colour, ground)
    image = image + rng.normal(0.0, 4.0, size=image.shape)
    # Lights: Gaussian blur of roof density (separable, in torch).
    radius = max(1, int(3 * blur))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / blur) ** 2)
    kernel = kernel / kernel.sum()
    dens = torch.from_numpy(roofs)[None, None]  # (1, 1, H, W)
    dens = F.conv2d(F.pad(dens, (radius, radius, 0, 0), mode="reflect"), kernel.view(1, 1, 1, -1))
    dens = F.conv2d(F.pad(dens, (0, 0, radius, radius), mode="reflect"), kernel.view(1, 1, -1, 1))
    lights = 60.0 * dens[0, 0].numpy() + rng.gamma(1.0, 0.2, size=(size, size))
    return BuiltUpScene(np.clip(image, 0, 255).astype(np.uint8), roofs, lights.astype(np.float32))


def _write_tif(
    path: Path,
    data: np.ndarray,
    *,
    crs: str,
    transform: object,
    nodata: float | None = None,
    caller: str,
) -> Path:
    rasterio = import_rasterio(caller, package="geofm.datasets")
    profile = {
        "driver": "GTiff",
        "width": data.shape[-1],
        "height": data.shape[-2],
        "count": data.shape[0],
        "dtype": data.dtype.name,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def write_nightlight_scene(
    folder: str | os.PathLike[str],
    *,
    size: int = 448,
    seed: int = 0,
    lon: float = -115.14,
    lat: float = 36.17,
    gsd: float = 10.0,
    lights_resolution: float = 1.0 / 1000.0,
) -> tuple[Path, Path]:
    """Write a built-up scene as a UTM GeoTIFF and its night lights as an EPSG:4326 raster.

    The image is north-up in the UTM zone of ``(lon, lat)`` (EPSG:32611 for
    Las Vegas) with ``gsd`` metre pixels; the lights are averaged onto a
    lon/lat grid of ``lights_resolution`` degrees (VIIRS VNL is 15 arc-seconds,
    about 460 m; the default 3.6 arc-seconds, about 100 m, gives tiles of a few
    hundred metres several target pixels) covering the scene plus a margin.

    Args:
        folder: Existing output folder.
        size: Scene height and width in pixels.
        seed: Seed of the scene.
        lon: Longitude of the scene centre, degrees east.
        lat: Latitude of the scene centre, degrees north.
        gsd: Image pixel size in metres.
        lights_resolution: Lights pixel size in degrees.

    Returns:
        ``(image_path, lights_path)``: ``scene_rgb.tif`` (uint8, 3 bands) and
        ``lights_epsg4326.tif`` (float32, 1 band, nodata NaN).

    Raises:
        MissingDependencyError: If rasterio is not installed.

    Example:
        >>> import tempfile
        >>> img, lights = write_nightlight_scene(tempfile.mkdtemp(), size=64)
        >>> img.name, lights.name
        ('scene_rgb.tif', 'lights_epsg4326.tif')
    """
    caller = "write_nightlight_scene"
    rasterio = import_rasterio(caller, package="geofm.datasets")
    affine = rasterio.transform.Affine
    out = Path(os.fspath(folder))
    scene = built_up_scene(size=size, seed=seed)
    epsg = utm_epsg_for(lon, lat)
    crs = f"EPSG:{epsg}"
    transformer = rasterio.warp.transform("EPSG:4326", crs, [lon], [lat])
    cx, cy = transformer[0][0], transformer[1][0]
    half = size * gsd / 2.0
    transform = affine(gsd, 0.0, cx - half, 0.0, -gsd, cy + half)
    image_path = _write_tif(
        out / "scene_rgb.tif", scene.image, crs=crs, transform=transform, caller=caller
    )
    west, south, east, north = rasterio.warp.transform_bounds(
        crs, "EPSG:4326", cx - half, cy - half, cx + half, cy + half
    )
    margin = 3 * lights_resolution
    west, south = west - margin, south - margin
    width = math.ceil((east + margin - west) / lights_resolution)
    height = math.ceil((north + margin - south) / lights_resolution)
    res = lights_resolution
    grid = affine(res, 0.0, west, 0.0, -res, south + height * res)
    lights = np.full((height, width), np.nan, dtype=np.float32)
    rasterio.warp.reproject(
        scene.lights,
        lights,
        src_transform=transform,
        src_crs=crs,
        dst_transform=grid,
        dst_crs="EPSG:4326",
        dst_nodata=np.nan,
        resampling=rasterio.enums.Resampling.average,
    )
    lights_path = _write_tif(
        out / "lights_epsg4326.tif",
        lights[None],
        crs="EPSG:4326",
        transform=grid,
        nodata=np.nan,
        caller=caller,
    )
    return image_path, lights_path


def write_landcover_scene(
    folder: str | os.PathLike[str],
    scene: LandCoverScene,
    *,
    epsg: int = 32633,
    gsd: float = 10.0,
    origin: tuple[float, float] = (365000.0, 5810000.0),
    scale: float = 255.0,
) -> tuple[Path, Path]:
    """Write a :class:`LandCoverScene` as an image GeoTIFF and a mask GeoTIFF on one grid.

    Args:
        folder: Existing output folder.
        scene: The scene.
        epsg: EPSG code of the (projected) CRS.
        gsd: Pixel size in metres.
        origin: Upper-left corner ``(x, y)`` in CRS units.
        scale: The image is written as ``uint8(reflectance * scale)`` when
            ``scale <= 255``, else as ``uint16``.

    Returns:
        ``(image_path, mask_path)``: ``image.tif`` and ``mask.tif`` (uint8).

    Raises:
        MissingDependencyError: If rasterio is not installed.

    Example:
        >>> import tempfile
        >>> paths = write_landcover_scene(tempfile.mkdtemp(), landcover_scene(size=16))
        >>> [p.name for p in paths]
        ['image.tif', 'mask.tif']
    """
    caller = "write_landcover_scene"
    rasterio = import_rasterio(caller, package="geofm.datasets")
    out = Path(os.fspath(folder))
    transform = rasterio.transform.Affine(gsd, 0.0, origin[0], 0.0, -gsd, origin[1])
    dtype = np.uint8 if scale <= 255 else np.uint16
    pixels = np.clip(np.round(scene.image * scale), 0, np.iinfo(dtype).max).astype(dtype)
    crs = f"EPSG:{epsg}"
    image_path = _write_tif(out / "image.tif", pixels, crs=crs, transform=transform, caller=caller)
    mask = scene.mask[None].astype(np.uint8)
    mask_path = _write_tif(out / "mask.tif", mask, crs=crs, transform=transform, caller=caller)
    return image_path, mask_path


class SyntheticSegmentation(Dataset[dict[str, torch.Tensor]]):
    """Random patches of one synthetic land-cover scene (``image``, ``mask``).

    Args:
        scene: The scene patches are cut from.
        patch_size: Patch height and width in pixels.
        length: Number of samples.
        seed: Seed of the patch positions (sample ``i`` is always the same patch).
        region: ``(row0, row1)`` rows of the scene the patches come from (e.g. a
            spatial train/validation split); default: the whole scene.

    Raises:
        ValueError: If the region is smaller than a patch.

    Example:
        >>> ds = SyntheticSegmentation(landcover_scene(size=32), patch_size=16, length=4)
        >>> sample = ds[0]
        >>> sample["image"].shape, sample["mask"].shape, len(ds)
        (torch.Size([3, 16, 16]), torch.Size([16, 16]), 4)
    """

    def __init__(
        self,
        scene: LandCoverScene,
        *,
        patch_size: int,
        length: int,
        seed: int = 0,
        region: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        row0, row1 = region if region is not None else (0, scene.mask.shape[0])
        if row1 - row0 < patch_size or scene.mask.shape[1] < patch_size:
            raise ValueError(
                f"Rows {row0}..{row1} x {scene.mask.shape[1]} columns cannot hold a "
                f"{patch_size}-pixel patch. Use a smaller patch_size or a larger region."
            )
        rng = np.random.default_rng(seed)
        self.scene = scene
        self.patch_size = patch_size
        self.rows = rng.integers(row0, row1 - patch_size + 1, size=length)
        self.cols = rng.integers(0, scene.mask.shape[1] - patch_size + 1, size=length)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        r, c, p = int(self.rows[index]), int(self.cols[index]), self.patch_size
        return {
            "image": torch.from_numpy(self.scene.image[:, r : r + p, c : c + p].copy()),
            "mask": torch.from_numpy(self.scene.mask[r : r + p, c : c + p].copy()),
        }


class SyntheticMultilabel(Dataset[dict[str, torch.Tensor]]):
    """Small scenes of 1 to ``max_classes`` classes: multi-hot ``label`` and fractions ``target``.

    Each sample draws its classes at random, lays them out with
    :func:`class_layout` and renders them with the shared class spectra, so
    the labels are recoverable from the spectra (BigEarthNet / EnMAP-CORINE
    style multi-label classification; the class fractions serve as a
    regression target).

    Args:
        length: Number of samples.
        size: Height and width in pixels.
        bands: Sensor (or its name) or centre wavelengths in nm.
        num_labels: Number of classes / labels.
        max_classes: Most classes in one sample.
        min_fraction: A class covering less than this fraction is not labelled.
        seed: Base seed (sample ``i`` uses ``[seed, i]``).
        noise: Additive noise (reflectance units).

    Raises:
        ValueError: If ``max_classes`` is not in ``[1, num_labels]``.

    Example:
        >>> ds = SyntheticMultilabel(length=3, size=16, bands="bigearthnet_s2_6band", num_labels=19)
        >>> s = ds[0]
        >>> s["image"].shape, s["label"].shape, s["label"].dtype, s["target"].shape
        (torch.Size([6, 16, 16]), torch.Size([19]), torch.float32, torch.Size([19]))
    """

    def __init__(
        self,
        *,
        length: int,
        size: int = 32,
        bands: str | Sensor | Sequence[float] = "rgb",
        num_labels: int = 19,
        max_classes: int = 3,
        min_fraction: float = 0.05,
        seed: int = 0,
        noise: float = 0.02,
    ) -> None:
        super().__init__()
        if not 1 <= max_classes <= num_labels:
            raise ValueError(f"max_classes must be in [1, {num_labels}], got {max_classes}.")
        self.length, self.size, self.seed, self.noise = length, size, seed, noise
        self.num_labels, self.max_classes, self.min_fraction = num_labels, max_classes, min_fraction
        self.signatures = spectral_signatures(bands, num_classes=num_labels)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        count = int(rng.integers(1, self.max_classes + 1))
        classes = rng.choice(self.num_labels, size=count, replace=False)
        local = class_layout(self.size, num_classes=count, rng=rng, scale=self.size / 2)
        mask = classes[local]
        image = _render(mask, self.signatures, rng, self.noise)
        fractions = np.bincount(mask.ravel(), minlength=self.num_labels) / mask.size
        return {
            "image": torch.from_numpy(image),
            "label": torch.from_numpy((fractions >= self.min_fraction).astype(np.float32)),
            "target": torch.from_numpy(fractions.astype(np.float32)),
        }


class SyntheticSceneClassification(Dataset[dict[str, torch.Tensor]]):
    """RGB scenes in one of ``num_classes`` regional styles (SpaceNet-7 "country" labels).

    A style is a palette of three cover spectra (drawn from 8 shared classes)
    and a characteristic region size; a sample is a scene of that style with a
    random layout, uint8-like values in ``[0, 1]``.

    Args:
        length: Number of samples.
        num_classes: Number of styles (labels).
        size: Height and width in pixels.
        seed: Base seed (sample ``i`` uses ``[seed, i]``; styles use ``seed`` only).

    Example:
        >>> ds = SyntheticSceneClassification(length=4, num_classes=3, size=16)
        >>> ds[0]["image"].shape, int(ds[0]["label"]) in range(3)
        (torch.Size([3, 16, 16]), True)
    """

    def __init__(self, *, length: int, num_classes: int = 8, size: int = 64, seed: int = 0) -> None:
        super().__init__()
        rng = np.random.default_rng([seed, 10_000])
        self.length, self.size, self.seed, self.num_classes = length, size, seed, num_classes
        self.signatures = spectral_signatures("rgb", num_classes=8, seed=seed)
        self.palettes = [rng.choice(8, size=3, replace=False) for _ in range(num_classes)]
        self.scales = rng.uniform(3.0, 16.0, size=num_classes)
        self.labels = np.random.default_rng([seed, 20_000]).integers(0, num_classes, size=length)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        label = int(self.labels[index])
        rng = np.random.default_rng([self.seed, index])
        local = class_layout(self.size, num_classes=3, rng=rng, scale=float(self.scales[label]))
        mask = self.palettes[label][local]
        image = _render(mask, self.signatures, rng, 0.02)
        return {"image": torch.from_numpy(image), "label": torch.tensor(label)}
