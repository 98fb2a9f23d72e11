"""BigEarthNet-S2, 6 bands [B04, B03, B02, B08, B11, B12], 19 labels (Fusion-LoRA's layout).

Fusion-LoRA (Eyobed-Abby/fusion-lora-skysense, ``fusion_lora/bigearthnet_dataset.py``,
``datasets/datasets/utils/prepare_spectral_data.py``) prepares BigEarthNet v2.0
(reBEN) patches as one ``(6, 256, 256)`` float tensor per sample (reflectance
/ 10000 clipped to [0, 1], B11/B12 resampled to 10 m, resized to 256 px) and a
multi-hot label CSV per split. The tensors are read with
``torch.load(weights_only=True)`` (a pickle that would run code is refused).

The raw BigEarthNet v2.0 folder (per-band GeoTIFFs + ``metadata.parquet``) is
not read here: prepare it into this layout first (the Fusion-LoRA tutorial,
``docs/tutorials/fusion-lora.md``, gives the steps).
"""

from __future__ import annotations

import csv
import os
from typing import Literal

import numpy as np
import torch

from geofm.datasets._common import LocalDataset
from geofm.errors import ShapeError

__all__ = ["BIGEARTHNET_19_CLASSES", "BigEarthNetS2"]

BIGEARTHNET_19_CLASSES = (
    "Urban fabric",
    "Industrial or commercial units",
    "Arable land",
    "Permanent crops",
    "Pastures",
    "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation",
    "Agro-forestry areas",
    "Broad-leaved forest",
    "Coniferous forest",
    "Mixed forest",
    "Natural grassland and sparsely vegetated areas",
    "Moors, heathland and sclerophyllous vegetation",
    "Transitional woodland, shrub",
    "Beaches, dunes, sands",
    "Inland wetlands",
    "Coastal wetlands",
    "Inland waters",
    "Marine waters",
)

_SPLIT_NAMES = {"train": "train", "val": "validation", "test": "test"}

_LAYOUT = """\
  <root>/{train,validation,test}_labels.csv   header: filename + 19 class columns (0/1)
  <root>/{train,validation,test}_tensors/<filename>.pt   (6, H, W) float tensor
      (bands B04, B03, B02, B08, B11, B12)"""


class BigEarthNetS2(LocalDataset, layout=_LAYOUT):
    """BigEarthNet-S2 6-band tensors with 19 multi-hot labels.

    Args:
        root: Dataset root (layout below).
        split: ``"train"``, ``"val"`` or ``"test"``.

    Layout::

        <root>/<split>_labels.csv, <root>/<split>_tensors/<filename>.pt
        (<split> is train, validation or test)

    Sample:
        ``image`` ``(6, H, W)`` float32; ``label`` ``(19,)`` float32 multi-hot.

    Raises:
        DatasetNotFoundError: If the folder, the CSV, or the tensor folder is missing,
            or the CSV does not have 19 label columns.
        ShapeError: If a tensor file does not hold a ``(6, H, W)`` tensor.

    Example:
        >>> len(BigEarthNetS2.classes), BigEarthNetS2.classes[0]
        (19, 'Urban fabric')
    """

    classes = BIGEARTHNET_19_CLASSES

    def __init__(
        self, root: str | os.PathLike[str], *, split: Literal["train", "val", "test"] = "train"
    ) -> None:
        super().__init__(root)
        prefix = _SPLIT_NAMES[split]
        csv_path = self.root / f"{prefix}_labels.csv"
        self.tensor_dir = self.root / f"{prefix}_tensors"
        if not csv_path.is_file() or not self.tensor_dir.is_dir():
            raise self.layout_error(f"{csv_path.name} or {self.tensor_dir.name}/ missing")
        with csv_path.open(newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            rows = list(reader)
        if not header or header[0] != "filename" or len(header) != 20:
            raise self.layout_error(
                f"{csv_path.name} has header {header[:3]}... ({len(header)} columns)"
            )
        self.filenames = [r[0] for r in rows]
        self.labels = torch.from_numpy(
            np.asarray([r[1:] for r in rows], dtype=np.float32).reshape(-1, 19)
        )

    def __len__(self) -> int:
        return len(self.filenames)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        path = self.tensor_dir / f"{self.filenames[index]}.pt"
        image = torch.load(path, weights_only=True, map_location="cpu")
        if not isinstance(image, torch.Tensor) or image.ndim != 3 or image.shape[0] != 6:
            shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise ShapeError(
                f"{path} holds {shape}, expected a (6, H, W) tensor with bands "
                "B04, B03, B02, B08, B11, B12. Re-run the Fusion-LoRA preparation script."
            )
        return {"image": image.float(), "label": self.labels[index]}
