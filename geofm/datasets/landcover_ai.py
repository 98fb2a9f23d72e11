"""LandCover.ai: 512 x 512 RGB aerial chips of Poland with 5-class masks (ML4Earth 2024's data).

Boguszewski et al., "LandCover.ai: Dataset for Automatic Mapping of Buildings,
Woodlands, Water and Roads from Aerial Imagery", CVPRW 2021
(https://landcover.ai.linuxpolska.com). The layout read here is the one the
dataset's ``split.py`` writes (and torchgeo's ``LandCoverAI`` reads): chips in
``output/`` plus ``train.txt`` / ``val.txt`` / ``test.txt``.
"""

from __future__ import annotations

import os
from typing import Literal

import numpy as np
import torch

from geofm.datasets._common import LocalDataset, read_array

__all__ = ["LANDCOVER_AI_CLASSES", "LandCoverAI"]

LANDCOVER_AI_CLASSES = ("background", "building", "woodland", "water", "road")

_LAYOUT = """\
  <root>/output/<name>.jpg       512x512 RGB chip
  <root>/output/<name>_m.png     its mask, values 0..4 (background, building, woodland, water, road)
  <root>/{train,val,test}.txt    one <name> per line"""


class LandCoverAI(LocalDataset, layout=_LAYOUT):
    """LandCover.ai chips with their masks.

    Args:
        root: Dataset root (layout below).
        split: ``"train"``, ``"val"`` or ``"test"``.

    Layout::

        <root>/output/<name>.jpg, <root>/output/<name>_m.png, <root>/<split>.txt

    Sample:
        ``image`` ``(3, 512, 512)`` float32 in ``[0, 255]``; ``mask`` ``(512, 512)`` int64.

    Raises:
        DatasetNotFoundError: If the folder, the split file or a listed chip is missing.

    Example:
        >>> LandCoverAI.classes
        ('background', 'building', 'woodland', 'water', 'road')
    """

    classes = LANDCOVER_AI_CLASSES

    def __init__(
        self, root: str | os.PathLike[str], *, split: Literal["train", "val", "test"] = "train"
    ) -> None:
        super().__init__(root)
        self.names = self.read_split(self.root / f"{split}.txt", "output/{}.jpg", "output/{}_m.png")

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        out = self.root / "output"
        name = self.names[index]
        image = read_array(out / f"{name}.jpg", reader="LandCoverAI").astype(np.float32)
        mask = read_array(out / f"{name}_m.png", reader="LandCoverAI")[0].astype(np.int64)
        return {"image": torch.from_numpy(image), "mask": torch.from_numpy(mask)}
