"""SpaceNet-2 building tiles with a VIIRS night-light target (EcoVision-LoRA's data).

EcoVision-LoRA (bayramos/Ecovision-LoRA, notebooks ``1a_shanghai_pipeline`` /
``1b_vegas_pipeline``) pairs each SpaceNet-2 tile (AOI_4_Shanghai
RGB-PanSharpen, AOI_2_Vegas PS-RGB) with the VIIRS VNL v2 annual composite:
the raster is reprojected to the tiles' UTM zone (bilinear), each tile's box
selects a window, negatives are clipped to 0 and the window's **sum** is the
target (``lights_sum``). Building count and areas (m^2, in UTM) come from the
per-tile footprint GeoJSON.

Here the tile's box is expressed in the UTM zone of its centre and
:func:`geofm.geo.align_target` does the warp and the reduction. A tile that
the night-light raster does not cover (no valid target pixel under it) is an
error raised when the dataset is built, naming the tiles and the raster's
extent, instead of a NaN target. Footprint GeoJSONs are read in the CRS their
``crs`` member declares (``{"type": "name", "properties": {"name":
"urn:ogc:def:crs:EPSG::32616"}}``, as SpaceNet and GDAL write it), or in
WGS 84 longitude / latitude without one (RFC 7946).
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


def _geojson_crs(data: dict[str, Any], path: Path) -> str:
    """The CRS a GeoJSON object declares in its ``crs`` member; WGS 84 lon/lat without one.

    Args:
        data: The parsed GeoJSON object.
        path: Its file, named in errors.

    Returns:
        A CRS string rasterio understands (``"EPSG:4326"`` when none is declared).

    Raises:
        ValueError: If the ``crs`` member is neither a named CRS
            (``{"type": "name", "properties": {"name": ...}}``) nor a legacy
            ``{"type": "EPSG", "properties": {"code": ...}}``.

    Example:
        >>> member = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32616"}}
        >>> _geojson_crs({"crs": member}, Path("a.geojson"))
        'urn:ogc:def:crs:EPSG::32616'
        >>> _geojson_crs({}, Path("a.geojson"))
        'EPSG:4326'
    """
    member = data.get("crs")
    if member is None:
        return "EPSG:4326"
    props = member.get("properties") if isinstance(member, dict) else None
    props = props if isinstance(props, dict) else {}
    kind = member.get("type") if isinstance(member, dict) else None
    if kind == "name" and isinstance(props.get("name"), str):
        name: str = props["name"]
        # OGC's CRS84 is WGS 84 in longitude / latitude order, which is how rasterio
        # treats EPSG:4326 coordinates.
        return "EPSG:4326" if name.upper().endswith("CRS84") else name
    if kind == "EPSG" and isinstance(props.get("code"), int):
        return f"EPSG:{props['code']}"
    raise ValueError(
        f"{path} has a 'crs' member {member!r} that is not a named CRS. Expected "
        '{"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::<code>"}}.'
    )


def _building_metrics(path: Path | None, utm: Any) -> tuple[float, float, float]:
    """``(count, total_area_m2, mean_area_m2)`` of the polygons in a SpaceNet GeoJSON."""
    if path is None:
        return (0.0, 0.0, 0.0)
    rasterio = import_rasterio("SpaceNet2NightLights", package="geofm.datasets")
    data = json.loads(path.read_text())
    source = rasterio.crs.CRS.from_user_input(_geojson_crs(data, path))
    target = rasterio.crs.CRS.from_user_input(utm)
    features = data.get("features", [])
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
                a = _ring_area(_to_crs(pts, source, target, path))
                area += a if i == 0 else -a
            areas.append(area)
    total = float(sum(areas))
    return (float(len(areas)), total, total / len(areas) if areas else 0.0)


def _to_crs(points: np.ndarray, source: Any, target: Any, path: Path) -> np.ndarray:
    """``(P, 2)`` coordinates from ``source`` to ``target``, with a clear error on bad input."""
    if source == target:
        return points
    if source.is_geographic and (
        np.abs(points[:, 0]).max() > 180.0 or np.abs(points[:, 1]).max() > 90.0
    ):
        raise ValueError(
            f"{path} has coordinates such as {points[0].tolist()}, outside longitude / latitude "
            f"range, but its CRS is {source.to_string()} (declared by its 'crs' member, or "
            "WGS 84 when it has none). Declare the CRS the coordinates are in with a 'crs' "
            "member, or reproject the file to WGS 84."
        )
    transform = import_rasterio("SpaceNet2NightLights", package="geofm.datasets").warp.transform
    xs, ys = transform(source, target, points[:, 0].tolist(), points[:, 1].tolist())
    out = np.stack([np.asarray(xs), np.asarray(ys)], axis=1)
    if not np.isfinite(out).all():
        raise ValueError(
            f"{path}: coordinates such as {points[0].tolist()} do not map from "
            f"{source.to_string()} to {target.to_string()}. Check the file's 'crs' member."
        )
    return out


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

    Footprint GeoJSONs are read in the CRS of their ``crs`` member (WGS 84
    longitude / latitude without one) and measured in the tile's UTM zone.

    Sample:
        ``image`` ``(C, H, W)`` float32 raw values; ``target`` ``()`` float32;
        ``buildings`` ``(3,)`` float32 = count, total area, mean area (m^2).

    Raises:
        DatasetNotFoundError: If ``root`` or ``viirs`` is missing, or no tile is found.
        ValueError: If the night-light raster has no valid pixel under some
            tiles (it does not cover them, or only with nodata); the message
            names the tiles and both extents.

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
        self._check_coverage()

    def _check_coverage(self) -> None:
        missing = [i for i, t in enumerate(self.targets) if not np.isfinite(t)]
        if not missing:
            return
        rasterio = import_rasterio("SpaceNet2NightLights", package="geofm.datasets")
        transform_bounds = rasterio.warp.transform_bounds
        with rasterio.open(self.viirs) as src:
            raster = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
        tile = self.tiles[missing[0]]
        left, top = tile.transform @ (0, 0)
        right, bottom = tile.transform @ (tile.window.width, tile.window.height)
        first = transform_bounds(tile.crs, "EPSG:4326", left, bottom, right, top)

        def box(b: tuple[float, ...]) -> str:
            return f"lon {b[0]:.4f}..{b[2]:.4f}, lat {b[1]:.4f}..{b[3]:.4f}"

        names = ", ".join(self.images[i].name for i in missing[:3])
        raise ValueError(
            f"SpaceNet2NightLights: the night-light raster {str(self.viirs)!r} ({box(raster)}) "
            f"has no valid pixel under {len(missing)} of {len(self.tiles)} tiles ({names}"
            f"{', ...' if len(missing) > 3 else ''}; the first at {box(first)}), so their "
            "targets would be NaN. Pass a raster that covers the AOI with valid data (the "
            "source uses the global VIIRS VNL v2 composite)."
        )

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
