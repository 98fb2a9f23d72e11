"""SpaceNet-7 monthly mosaics as 16 patches of 256 x 256 px with country labels (VICReg-SN7).

sanagno/citiies_contrastive_learning (``vicreg_pure``) uses SpaceNet-7 train
(60 AOIs x 24 monthly 1024 x 1024 mosaics, 4 m): RGB only (first 3 bands), each
mosaic zero-padded to 1024 x 1024 and split into 16 patches of 256 x 256, the
label being the AOI's country (31 classes). The country of each AOI is read
from a CSV you provide (``aoi,country``), as the source derived it separately.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import torch

from geofm.datasets._common import LocalDataset, read_array

__all__ = ["SpaceNet7Patches"]

_LAYOUT = """\
  <root>/train/<AOI>/images/*.tif   monthly mosaics (4 bands, up to 1024x1024)
                                    (or images_masked/, see image_dir)
  <root>/countries.csv              header aoi,country; one row per AOI folder name"""

_GRID = 4  # 4 x 4 patches of 256 px in a 1024 px mosaic
_PATCH = 256


class SpaceNet7Patches(LocalDataset, layout=_LAYOUT):
    """SpaceNet-7 mosaics cut into 16 patches each, labelled with the AOI's country.

    Args:
        root: Dataset root (layout below).
        labels_csv: CSV with columns ``aoi,country`` (default ``<root>/countries.csv``).
        image_dir: Per-AOI image folder name: ``"images"`` or ``"images_masked"``.

    Layout::

        <root>/train/<AOI>/images/*.tif
        <root>/countries.csv

    Sample:
        ``image`` ``(3, 256, 256)`` float32 raw values (zero-padded at the mosaic's
        edge); ``label`` ``()`` int64 index into :attr:`countries` (sorted).

    Raises:
        DatasetNotFoundError: If the folder, the CSV or the mosaics are missing,
            or an AOI has no country in the CSV.

    Example:
        >>> print(SpaceNet7Patches.layout.splitlines()[-1])
          <root>/countries.csv              header aoi,country; one row per AOI folder name
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        labels_csv: str | os.PathLike[str] | None = None,
        image_dir: str = "images",
    ) -> None:
        super().__init__(root)
        csv_path = (
            Path(os.fspath(labels_csv)) if labels_csv is not None else self.root / "countries.csv"
        )
        if not csv_path.is_file():
            raise self.layout_error(f"country CSV {str(csv_path)!r} missing")
        with csv_path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        if not rows or not {"aoi", "country"} <= set(rows[0]):
            raise self.layout_error(f"{csv_path.name} lacks aoi,country columns")
        country_of = {r["aoi"]: r["country"] for r in rows}
        self.countries = sorted(set(country_of.values()))
        index = {c: i for i, c in enumerate(self.countries)}
        self.files: list[tuple[Path, int]] = []
        aois = sorted(p for p in (self.root / "train").glob("*") if p.is_dir())
        for aoi in aois:
            mosaics = sorted((aoi / image_dir).glob("*.tif"))
            if not mosaics:
                continue
            if aoi.name not in country_of:
                raise self.layout_error(f"AOI {aoi.name!r} has no row in {csv_path.name}")
            self.files += [(m, index[country_of[aoi.name]]) for m in mosaics]
        if not self.files:
            raise self.layout_error(f"no mosaics in train/<AOI>/{image_dir}/")

    def __len__(self) -> int:
        return len(self.files) * _GRID * _GRID

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        path, label = self.files[index // (_GRID * _GRID)]
        patch = index % (_GRID * _GRID)
        data = read_array(path, reader="SpaceNet7Patches", bands=[1, 2, 3]).astype(np.float32)
        padded = np.zeros((3, _GRID * _PATCH, _GRID * _PATCH), dtype=np.float32)
        h, w = min(data.shape[1], _GRID * _PATCH), min(data.shape[2], _GRID * _PATCH)
        padded[:, :h, :w] = data[:, :h, :w]
        r, c = divmod(patch, _GRID)
        image = padded[:, r * _PATCH : (r + 1) * _PATCH, c * _PATCH : (c + 1) * _PATCH]
        return {"image": torch.from_numpy(image.copy()), "label": torch.tensor(label)}
