"""SpaceNet-7 monthly mosaics as 16 patches of 256 x 256 px with country labels (VICReg-SN7).

sanagno/citiies_contrastive_learning (``vicreg_pure``) uses SpaceNet-7 train
(60 AOIs x 24 monthly 1024 x 1024 mosaics, 4 m): RGB only (first 3 bands), each
mosaic zero-padded to 1024 x 1024 and split into 16 patches of 256 x 256, the
label being the AOI's country (31 classes). The country of each AOI is read
from a CSV you provide (``aoi,country``), as the source derived it separately.

Each sample reads only its 256 x 256 window of the mosaic (not the whole
mosaic). Samples hold raw values; :attr:`SpaceNet7Patches.value_range` gives
the raw value that corresponds to full scale (255 for 8-bit mosaics, ``2**n - 1``
for files that declare ``NBITS=n``), to scale them to [0, 1].
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import torch

from geofm.datasets._common import LocalDataset
from geofm.geo import import_rasterio

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
        ``image`` ``(3, 256, 256)`` float32 raw values of bands 1-3 (zero-padded
        past the mosaic's edge; only this window is read); ``label`` ``()``
        int64 index into :attr:`countries` (sorted).

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
        self._firsts: list[Path] = []  # first mosaic of each AOI (value-range check)
        aois = sorted(p for p in (self.root / "train").glob("*") if p.is_dir())
        for aoi in aois:
            mosaics = sorted((aoi / image_dir).glob("*.tif"))
            if not mosaics:
                continue
            if aoi.name not in country_of:
                raise self.layout_error(f"AOI {aoi.name!r} has no row in {csv_path.name}")
            self.files += [(m, index[country_of[aoi.name]]) for m in mosaics]
            self._firsts.append(mosaics[0])
        if not self.files:
            raise self.layout_error(f"no mosaics in train/<AOI>/{image_dir}/")

    @property
    def value_range(self) -> float:
        """The raw value of full scale: ``image / value_range`` is in [0, 1].

        Read from the first mosaic of each AOI: ``2**n - 1`` if the files declare
        ``NBITS=n`` (GDAL's ``IMAGE_STRUCTURE`` metadata, e.g. 11-bit data stored
        as 16 bits), else 255 for ``uint8`` files.

        Raises:
            ValueError: If the mosaics are not 8-bit and declare no ``NBITS``
                (the range of the sensor cannot be read from the file; pass it
                yourself), or the AOIs disagree.
        """
        rasterio = import_rasterio("SpaceNet7Patches", package="geofm.datasets")
        ranges = {}
        for path in self._firsts:
            with rasterio.open(path) as src:
                # GDAL keeps NBITS per band (IMAGE_STRUCTURE domain of band 1).
                nbits = src.tags(1, ns="IMAGE_STRUCTURE").get("NBITS")
                dtype = src.dtypes[0]
            if nbits is not None:
                ranges[path] = float(2 ** int(nbits) - 1)
            elif dtype == "uint8":
                ranges[path] = 255.0
            else:
                raise ValueError(
                    f"SpaceNet7Patches: {path.name} is {dtype} without an NBITS tag, so its "
                    "value range is unknown (dividing by 255 would saturate 16-bit data). Pass "
                    "the sensor's full-scale value yourself, e.g. 2047 for 11-bit DN or 10000 "
                    "for reflectance x 10^4."
                )
        if len(set(ranges.values())) > 1:
            raise ValueError(
                "SpaceNet7Patches: the AOIs' mosaics have different value ranges "
                f"{sorted(set(ranges.values()))}; scale them yourself."
            )
        return next(iter(ranges.values()))

    def __len__(self) -> int:
        return len(self.files) * _GRID * _GRID

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        path, label = self.files[index // (_GRID * _GRID)]
        r, c = divmod(index % (_GRID * _GRID), _GRID)
        top, left = r * _PATCH, c * _PATCH
        image = np.zeros((3, _PATCH, _PATCH), dtype=np.float32)  # zero padding past the edge
        rasterio = import_rasterio("SpaceNet7Patches", package="geofm.datasets")
        with rasterio.open(path) as src:
            h, w = min(src.height - top, _PATCH), min(src.width - left, _PATCH)
            if h > 0 and w > 0:
                window = rasterio.windows.Window(left, top, w, h)
                image[:, :h, :w] = src.read([1, 2, 3], window=window)
        return {"image": torch.from_numpy(image), "label": torch.tensor(label)}
