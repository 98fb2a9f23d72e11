"""Geospatial I/O and whole-scene prediction.

Read rasters with explicit validity masks, cut them into georeferenced tiles
(with an index that round-trips), reproject to UTM, align coarse targets such
as VIIRS night lights to tiles, and run a model over a scene of any size into
a georeferenced GeoTIFF. rasterio is imported only inside the functions, so
``import geofm.geo`` does not import it; :func:`import_rasterio` is geofm's one
entry point to it (``geofm.datasets`` reads and writes rasters through it).

Example:
    >>> import geofm.geo as geo
    >>> geo.utm_epsg_for(-115.14, 36.17)  # Las Vegas, EcoVision's EPSG:32611
    32611
"""

from __future__ import annotations

from geofm.geo._rio import import_rasterio
from geofm.geo.align import TargetReduce, align_target
from geofm.geo.archive import predict_rasters
from geofm.geo.io import PixelWindow, RasterData, RasterProfile, WindowLike, read_raster
from geofm.geo.predict import BlendMode, OutputMode, Precision, PredictOptions, predict_raster
from geofm.geo.reproject import reproject_to_utm, utm_crs_for, utm_epsg_for
from geofm.geo.tiling import Tile, TilePadding, read_tile_index, tile_raster, write_tile_index

__all__ = [
    "BlendMode",
    "OutputMode",
    "PixelWindow",
    "Precision",
    "PredictOptions",
    "RasterData",
    "RasterProfile",
    "TargetReduce",
    "Tile",
    "TilePadding",
    "WindowLike",
    "align_target",
    "import_rasterio",
    "predict_raster",
    "predict_rasters",
    "read_raster",
    "read_tile_index",
    "reproject_to_utm",
    "tile_raster",
    "utm_crs_for",
    "utm_epsg_for",
    "write_tile_index",
]
