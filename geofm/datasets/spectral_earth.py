"""SpectralEarth EnMAP patches (pre-training) and the EnMAP-CORINE downstream task.

SpectralEarth (AABNassim/spectral_earth, ``src/datasets/spectral_earth.py``,
``src/datasets/enmap_corine.py``; arXiv 2408.08447): 128 x 128 EnMAP patches
with 202 bands (int16 DN, 30 m), one folder per location holding one GeoTIFF
per acquisition (two acquisitions give the two SSL views). EnMAP-CORINE is
multi-label classification: the CORINE Land Cover codes of a patch, mapped to
the 19-class BigEarthNet nomenclature, present in the patch.

SpectralEarth's patches hold 202 of the 224 EnMAP L2A bands (the water-vapour
absorption bands around 1400 and 1900 nm are removed;
:data:`SPECTRAL_EARTH_ENMAP_BANDS`). Files with all 224 bands (EnMAP L2A
products, e.g. the EnMAP-Box test tiles) are read with
``band_indices=SPECTRAL_EARTH_ENMAP_BANDS``; the readers never drop bands unasked.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from geofm.datasets._common import LocalDataset
from geofm.geo import import_rasterio

__all__ = [
    "CORINE_TO_BIGEARTHNET19",
    "ENMAP_L2A_BAND_COUNT",
    "SPECTRAL_EARTH_ENMAP_BANDS",
    "EnMAPCorine",
    "SpectralEarth",
]

ENMAP_L2A_BAND_COUNT = 224
"""Bands of an EnMAP L2A product (418-2445 nm)."""


def _spectral_earth_bands() -> tuple[int, ...]:
    text = resources.files("geofm.data").joinpath("enmap_spectral_earth_bands.csv").read_text()
    return tuple(int(row["original_idx"]) for row in csv.DictReader(io.StringIO(text)))


SPECTRAL_EARTH_ENMAP_BANDS: tuple[int, ...] = _spectral_earth_bands()
"""0-based indices of SpectralEarth's 202 bands among the 224 EnMAP L2A bands
(``original_idx`` of SpectralEarth's ``data/enmap_bands_remapped.csv``, in
``geofm/data/enmap_spectral_earth_bands.csv``)."""


def _read_bands(path: Path, band_indices: tuple[int, ...] | None, reader: str) -> np.ndarray:
    """Read ``(C, H, W)``, only ``band_indices`` (0-based) when given, checking the band count."""
    rasterio = import_rasterio(reader, package="geofm.datasets")
    with rasterio.open(path) as src:
        if band_indices is not None and src.count <= max(band_indices):
            raise ValueError(
                f"{reader}: {path} has {src.count} bands, but band_indices selects band "
                f"{max(band_indices)} (0-based). Pass band_indices only for files with all "
                f"{ENMAP_L2A_BAND_COUNT} EnMAP L2A bands, or none for 202-band patches."
            )
        data: np.ndarray = src.read(None if band_indices is None else [i + 1 for i in band_indices])
    return data


def _check_indices(band_indices: Sequence[int] | None) -> tuple[int, ...] | None:
    if band_indices is None:
        return None
    indices = tuple(int(i) for i in band_indices)
    if not indices or min(indices) < 0:
        raise ValueError(
            f"band_indices must be non-empty 0-based band numbers, got {tuple(band_indices)!r}."
        )
    return indices


_SE_LAYOUT = """\
  <root>/enmap/<location_id>/*.tif   one 202-band 128x128 GeoTIFF per acquisition"""

_CORINE_LAYOUT = """\
  <root>/enmap/<sample_id>                     202-band EnMAP patch GeoTIFF
  <root>/corine/<sample_id>                    CORINE Land Cover code raster (same name)
  <root>/splits/enmap_corine/<split>.txt       one <sample_id> per line (train, val, test)"""

# CORINE level-3 code -> BigEarthNet-19 class index (0-based; the BigEarthNet-19
# nomenclature of Sumbul et al. 2021, as SpectralEarth's enmap_corine.py maps
# it). Codes absent here (122-124, 131-142, 332, 334, 335, 423) have no label.
CORINE_TO_BIGEARTHNET19: dict[int, int] = {
    111: 0, 112: 0,  # urban fabric
    121: 1,  # industrial or commercial units
    211: 2, 212: 2, 213: 2,  # arable land
    221: 3, 222: 3, 223: 3, 241: 3,  # permanent crops
    231: 4,  # pastures
    242: 5,  # complex cultivation patterns
    243: 6,  # agriculture with natural vegetation
    244: 7,  # agro-forestry
    311: 8, 312: 9, 313: 10,  # broad-leaved, coniferous, mixed forest
    321: 11, 333: 11,  # natural grassland and sparsely vegetated areas
    322: 12, 323: 12,  # moors, heathland, sclerophyllous vegetation
    324: 13,  # transitional woodland, shrub
    331: 14,  # beaches, dunes, sands
    411: 15, 412: 15,  # inland wetlands
    421: 16, 422: 16,  # coastal wetlands
    511: 17, 512: 17,  # inland waters
    521: 18, 522: 18, 523: 18,  # marine waters
}  # fmt: skip


class SpectralEarth(LocalDataset, layout=_SE_LAYOUT):
    """SpectralEarth pre-training patches: one sample per location.

    Args:
        root: Dataset root (layout below).
        two_views: Return two acquisitions of the location as ``image1`` /
            ``image2`` (the same one twice when it has only one).
        seed: Seed of the acquisition choice (sample ``i`` is deterministic).
        band_indices: 0-based bands to read from each file (``None``: all);
            :data:`SPECTRAL_EARTH_ENMAP_BANDS` reduces 224-band EnMAP L2A files
            to SpectralEarth's 202.

    Attributes:
        stored_bands: Band count of the first file (checked at construction).

    Layout::

        <root>/enmap/<location_id>/*.tif

    Sample:
        ``image`` (or ``image1``, ``image2``): ``(C, H, W)`` int16 raw DN, ``C``
        = 202 for SpectralEarth's patches (``len(band_indices)`` when given).

    Raises:
        DatasetNotFoundError: If the folder is missing or holds no patch.
        ValueError: If ``band_indices`` selects a band the first file does not have.

    Example:
        >>> print(SpectralEarth.layout)
          <root>/enmap/<location_id>/*.tif   one 202-band 128x128 GeoTIFF per acquisition
        >>> len(SPECTRAL_EARTH_ENMAP_BANDS), SPECTRAL_EARTH_ENMAP_BANDS[126]
        (202, 141)
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        two_views: bool = False,
        seed: int = 0,
        band_indices: Sequence[int] | None = None,
    ) -> None:
        super().__init__(root)
        enmap = self.root / "enmap"
        self.locations: list[list[Path]] = []
        if enmap.is_dir():
            for folder in sorted(p for p in enmap.iterdir() if p.is_dir()):
                files = sorted(folder.glob("*.tif"))
                if files:
                    self.locations.append(files)
        if not self.locations:
            raise self.layout_error("no patch GeoTIFFs found")
        self.two_views, self.seed = two_views, seed
        self.band_indices = _check_indices(band_indices)
        rasterio = import_rasterio("SpectralEarth", package="geofm.datasets")
        first = self.locations[0][0]
        with rasterio.open(first) as src:
            self.stored_bands = int(src.count)
        if self.band_indices is not None and self.stored_bands <= max(self.band_indices):
            raise ValueError(
                f"SpectralEarth: {first} has {self.stored_bands} bands, but band_indices "
                f"selects band {max(self.band_indices)} (0-based). Pass band_indices only for "
                f"files with all {ENMAP_L2A_BAND_COUNT} EnMAP L2A bands."
            )

    def __len__(self) -> int:
        return len(self.locations)

    def _read(self, path: Path) -> torch.Tensor:
        data = _read_bands(path, self.band_indices, "SpectralEarth")
        return torch.from_numpy(data.astype(np.int16))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        files = self.locations[index]
        rng = np.random.default_rng([self.seed, index])
        if not self.two_views:
            return {"image": self._read(files[int(rng.integers(len(files)))])}
        picks = rng.choice(len(files), size=2, replace=False) if len(files) > 1 else [0, 0]
        return {"image1": self._read(files[picks[0]]), "image2": self._read(files[picks[1]])}


class EnMAPCorine(LocalDataset, layout=_CORINE_LAYOUT):
    """EnMAP-CORINE multi-label classification (19 BigEarthNet classes).

    Args:
        root: Dataset root (layout below).
        split: ``"train"``, ``"val"`` or ``"test"``.
        band_indices: 0-based bands to read from each EnMAP file (``None``:
            all); see :class:`SpectralEarth`.

    Layout::

        <root>/enmap/<sample_id>
        <root>/corine/<sample_id>
        <root>/splits/enmap_corine/<split>.txt

    Sample:
        ``image`` ``(202, H, W)`` int16 raw DN; ``label`` ``(19,)`` float32 multi-hot.

    Raises:
        DatasetNotFoundError: If the folder, the split file or a listed file is missing.
        ValueError: If ``band_indices`` selects a band a file does not have (on read).

    Example:
        >>> EnMAPCorine.num_labels, CORINE_TO_BIGEARTHNET19[311]  # 311: broad-leaved forest
        (19, 8)
    """

    num_labels = 19

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        split: Literal["train", "val", "test"] = "train",
        band_indices: Sequence[int] | None = None,
    ) -> None:
        super().__init__(root)
        self.band_indices = _check_indices(band_indices)
        split_file = self.root / "splits" / "enmap_corine" / f"{split}.txt"
        self.ids = self.read_split(split_file, "enmap/{}", "corine/{}")
        self.lookup = np.full(1000, -1, dtype=np.int64)
        for code, label in CORINE_TO_BIGEARTHNET19.items():
            self.lookup[code] = label

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sid = self.ids[index]
        image = _read_bands(self.root / "enmap" / sid, self.band_indices, "EnMAPCorine")
        image = image.astype(np.int16)
        codes = _read_bands(self.root / "corine" / sid, None, "EnMAPCorine").astype(np.int64)
        codes = codes[(codes >= 0) & (codes < 1000)]
        labels = self.lookup[np.unique(codes)]
        multi_hot = np.zeros(self.num_labels, dtype=np.float32)
        multi_hot[labels[labels >= 0]] = 1.0
        return {"image": torch.from_numpy(image), "label": torch.from_numpy(multi_hot)}
