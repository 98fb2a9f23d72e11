"""SpaceNet-2 building tiles with a VIIRS night-light target (EcoVision-LoRA's data).

EcoVision-LoRA (bayramos/Ecovision-LoRA, notebooks ``1a_shanghai_pipeline`` /
``1b_vegas_pipeline``) pairs each SpaceNet-2 tile (AOI_4_Shanghai
RGB-PanSharpen, AOI_2_Vegas PS-RGB) with the VIIRS VNL v2 annual composite:
the raster is reprojected to the tiles' UTM zone (bilinear), each tile's box
selects a window, negatives are clipped to 0 and the window's **sum** is the
target (``lights_sum``). Building count and areas (m^2, in UTM) come from the
per-tile footprint GeoJSON.

Here the tile's box is expressed in the UTM zone of its centre and
:func:`geofm.geo.align_target` does the warp and the reduction.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geofm.datasets._common import LocalDataset, read_array
from geofm.geo import PixelWindow, TargetReduce, Tile, align_target, import_rasterio, utm_crs_for

__all__ = ["SpaceNet2NightLights"]

_LAYOUT = """\
  <root>/                                  e.g. AOI_2_Vegas_Train
    RGB-PanSharpen/*.tif or PS-RGB/*.tif   one GeoTIFF per tile (any CRS), ..._img<N>.tif
    geojson/buildings/*_img<N>.geojson     building footprints per tile (optional)
  viirs: a single-band raster (VNL v2 annual composite, average_masked)"""

_IMAGE_DIRS = ("RGB-PanSharpen", "PS-RGB")
_IMG_ID = re.compile(r"img(\d+)")


def _ring_area(ring: np.ndarray) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _building_metrics(path: Path | None, utm: Any) -> tuple[float, float, float]:
    """``(count, total_area_m2, mean_area_m2)`` of the polygons in a SpaceNet GeoJSON."""
    if path is None:
        return (0.0, 0.0, 0.0)
    transform = import_rasterio("SpaceNet2NightLights", package="geofm.datasets").warp.transform
    features = json.loads(path.read_text()).get("features", [])
    areas = []
    for feature in features:
        geom = feature.get("geometry") or {}
        kind, coords = str(geom.get("type")), geom.get("coordinates") or []
        polys: list[Any] = (
            [coords] if kind == "Polygon" else coords if kind == "MultiPolygon" else []
        )
        for poly in polys:
            area = 0.0
            for i, ring in enumerate(poly):
                pts = np.asarray(ring, dtype=np.float64)[:, :2]
                xs, ys = transform("EPSG:4326", utm, pts[:, 0].tolist(), pts[:, 1].tolist())
                a = _ring_area(np.stack([xs, ys], axis=1))
                area += a if i == 0 else -a
            areas.append(area)
    total = float(sum(areas))
    return (float(len(areas)), total, total / len(areas) if areas else 0.0)


class SpaceNet2NightLights(LocalDataset, layout=_LAYOUT):
    """SpaceNet-2 tiles with their VIIRS night-light target and building metrics.

    Args:
        root: The AOI folder (layout below).
        viirs: Night-light raster (any CRS; VNL v2 ``average_masked`` in the source).
        reduce: Reduction over the tile's target pixels: ``"sum"`` (the
            source's ``lights_sum`` target), ``"mean"`` or ``"nonzero"``.
        image_dir: Image sub-folder; default: the first of ``RGB-PanSharpen``,
            ``PS-RGB`` that exists.

    Layout::

        <root>/
          RGB-PanSharpen/*.tif or PS-RGB/*.tif   one GeoTIFF per tile, named ..._img<N>.tif
          geojson/buildings/*_img<N>.geojson     footprints (optional)

    Sample:
        ``image`` ``(C, H, W)`` float32 raw values; ``target`` ``()`` float32;
        ``buildings`` ``(3,)`` float32 = count, total area, mean area (m^2).

    Raises:
        DatasetNotFoundError: If ``root`` or ``viirs`` is missing, or no tile is found.

    Example:
        >>> SpaceNet2NightLights("/nonexistent", "/nonexistent.tif")
        Traceback (most recent call last):
        ...
        geofm.errors.DatasetNotFoundError: SpaceNet2NightLights: dataset directory ...
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        viirs: str | os.PathLike[str],
        *,
        reduce: TargetReduce = "sum",
        image_dir: str | None = None,
    ) -> None:
        super().__init__(root)
        self.viirs = Path(os.fspath(viirs))
        if not self.viirs.is_file():
            raise self.layout_error(f"VIIRS raster {str(self.viirs)!r} not found")
        candidates = [image_dir] if image_dir is not None else list(_IMAGE_DIRS)
        folders = [self.root / d for d in candidates if (self.root / d).is_dir()]
        self.images = sorted(folders[0].glob("*.tif")) if folders else []
        if not self.images:
            raise self.layout_error(f"no tile GeoTIFFs in any of {candidates}")
        footprints = {}
        for path in sorted((self.root / "geojson" / "buildings").glob("*.geojson")):
            match = _IMG_ID.search(path.stem)
            if match:
                footprints[match.group(1)] = path
        self.footprints = []
        for path in self.images:
            match = _IMG_ID.search(path.stem)
            self.footprints.append(footprints.get(match.group(1)) if match else None)
        self.tiles = [self._utm_tile(i, p) for i, p in enumerate(self.images)]
        self.targets = align_target(self.tiles, self.viirs, reduce=reduce, resampling="bilinear")

    @staticmethod
    def _utm_tile(index: int, path: Path) -> Tile:
        rasterio = import_rasterio("SpaceNet2NightLights", package="geofm.datasets")
        transform_bounds = rasterio.warp.transform_bounds
        with rasterio.open(path) as src:
            lon_lat = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
            utm = utm_crs_for((lon_lat[0] + lon_lat[2]) / 2, (lon_lat[1] + lon_lat[3]) / 2)
            left, bottom, right, top = transform_bounds(src.crs, utm, *src.bounds)
            h, w = src.height, src.width
        return Tile(
            index=index,
            grid_row=0,
            grid_col=index,
            window=PixelWindow(row_off=0, col_off=0, height=h, width=w),
            transform=rasterio.transform.Affine(
                (right - left) / w, 0.0, left, 0.0, -(top - bottom) / h, top
            ),
            crs=utm,
            path=path,
        )

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image = read_array(self.images[index], reader=type(self).__name__).astype(np.float32)
        metrics = _building_metrics(self.footprints[index], self.tiles[index].crs)
        return {
            "image": torch.from_numpy(image),
            "target": torch.tensor(float(self.targets[index]), dtype=torch.float32),
            "buildings": torch.tensor(metrics, dtype=torch.float32),
        }
