"""SpectralEarth EnMAP patches (pre-training) and the EnMAP-CORINE downstream task.

SpectralEarth (AABNassim/spectral_earth, ``src/datasets/spectral_earth.py``,
``src/datasets/enmap_corine.py``; arXiv 2408.08447): 128 x 128 EnMAP patches
with 202 bands (int16 DN, 30 m), one folder per location holding one GeoTIFF
per acquisition (two acquisitions give the two SSL views). EnMAP-CORINE is
multi-label classification: the CORINE Land Cover codes of a patch, mapped to
the 19-class BigEarthNet nomenclature, present in the patch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from geofm.datasets._common import LocalDataset, read_array

__all__ = ["CORINE_TO_BIGEARTHNET19", "EnMAPCorine", "SpectralEarth"]

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

    Layout::

        <root>/enmap/<location_id>/*.tif

    Sample:
        ``image`` (or ``image1``, ``image2``): ``(202, 128, 128)`` int16 raw DN.

    Raises:
        DatasetNotFoundError: If the folder is missing or holds no patch.

    Example:
        >>> print(SpectralEarth.layout)
          <root>/enmap/<location_id>/*.tif   one 202-band 128x128 GeoTIFF per acquisition
    """

    def __init__(
        self, root: str | os.PathLike[str], *, two_views: bool = False, seed: int = 0
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

    def __len__(self) -> int:
        return len(self.locations)

    def _read(self, path: Path) -> torch.Tensor:
        return torch.from_numpy(read_array(path, reader="SpectralEarth").astype(np.int16))

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

    Layout::

        <root>/enmap/<sample_id>
        <root>/corine/<sample_id>
        <root>/splits/enmap_corine/<split>.txt

    Sample:
        ``image`` ``(202, H, W)`` int16 raw DN; ``label`` ``(19,)`` float32 multi-hot.

    Raises:
        DatasetNotFoundError: If the folder, the split file or a listed file is missing.

    Example:
        >>> EnMAPCorine.num_labels, CORINE_TO_BIGEARTHNET19[311]  # 311: broad-leaved forest
        (19, 8)
    """

    num_labels = 19

    def __init__(
        self, root: str | os.PathLike[str], *, split: Literal["train", "val", "test"] = "train"
    ) -> None:
        super().__init__(root)
        split_file = self.root / "splits" / "enmap_corine" / f"{split}.txt"
        self.ids = self.read_split(split_file, "enmap/{}", "corine/{}")
        self.lookup = np.full(1000, -1, dtype=np.int64)
        for code, label in CORINE_TO_BIGEARTHNET19.items():
            self.lookup[code] = label

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sid = self.ids[index]
        image = read_array(self.root / "enmap" / sid, reader="EnMAPCorine").astype(np.int16)
        codes = read_array(self.root / "corine" / sid, reader="EnMAPCorine").astype(np.int64)
        codes = codes[(codes >= 0) & (codes < 1000)]
        labels = self.lookup[np.unique(codes)]
        multi_hot = np.zeros(self.num_labels, dtype=np.float32)
        multi_hot[labels[labels >= 0]] = 1.0
        return {"image": torch.from_numpy(image), "label": torch.from_numpy(multi_hot)}
