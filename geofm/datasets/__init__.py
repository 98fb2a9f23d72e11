"""Dataset readers for the source pipelines' real data, and seeded synthetic scenes.

Readers are plain :class:`torch.utils.data.Dataset` s over local files in each
dataset's native layout; samples are dicts (torchgeo's convention) with
``image`` and ``mask`` / ``label`` / ``target``. Nothing is ever downloaded: a
missing or malformed directory raises :class:`geofm.errors.DatasetNotFoundError`
describing the expected layout.

- :class:`SpaceNet2NightLights`: SpaceNet-2 AOI folder + a VIIRS raster
  (``image``, ``target``, ``buildings``);
- :class:`SpectralEarth`: SpectralEarth EnMAP 202-band patches (``image`` or
  ``image1`` / ``image2``);
- :class:`EnMAPCorine`: the EnMAP-CORINE multi-label task (``image``, ``label``);
- :class:`LandCoverAI`: LandCover.ai 512 px chips (``image``, ``mask``);
- :class:`SpaceNet7Patches`: SpaceNet-7 mosaics as 16 x 256 px patches
  (``image``, ``label`` = country);
- :class:`BigEarthNetS2`: BigEarthNet-S2, 6 bands, 19 labels (``image``, ``label``);
- :class:`RasterChipDataset`: grid or random chips of any GeoTIFFs, with label
  rasters or polygons (``image``, ``mask``, ``crs``, ``bounds``, ...); batch them
  with :func:`collate_chips`.

:mod:`geofm.datasets.synthetic` generates scenes with learnable structure so
every example runs without a download.

Example:
    >>> from geofm.datasets import SyntheticSegmentation, landcover_scene
    >>> ds = SyntheticSegmentation(landcover_scene(size=32), patch_size=16, length=2)
    >>> sorted(ds[0])
    ['image', 'mask']
"""

from __future__ import annotations

from geofm.datasets.bigearthnet import BIGEARTHNET_19_CLASSES, BigEarthNetS2
from geofm.datasets.chips import RasterChipDataset, collate_chips
from geofm.datasets.ecovision import SpaceNet2NightLights
from geofm.datasets.landcover_ai import LANDCOVER_AI_CLASSES, LandCoverAI
from geofm.datasets.spacenet7 import SpaceNet7Patches
from geofm.datasets.spectral_earth import EnMAPCorine, SpectralEarth
from geofm.datasets.synthetic import (
    BuiltUpScene,
    LandCoverScene,
    SyntheticMultilabel,
    SyntheticSceneClassification,
    SyntheticSegmentation,
    built_up_scene,
    landcover_scene,
    spectral_signatures,
    write_landcover_scene,
    write_nightlight_scene,
)

__all__ = [
    "BIGEARTHNET_19_CLASSES",
    "LANDCOVER_AI_CLASSES",
    "BigEarthNetS2",
    "BuiltUpScene",
    "EnMAPCorine",
    "LandCoverAI",
    "LandCoverScene",
    "RasterChipDataset",
    "SpaceNet2NightLights",
    "SpaceNet7Patches",
    "SpectralEarth",
    "SyntheticMultilabel",
    "SyntheticSceneClassification",
    "SyntheticSegmentation",
    "built_up_scene",
    "collate_chips",
    "landcover_scene",
    "spectral_signatures",
    "write_landcover_scene",
    "write_nightlight_scene",
]
