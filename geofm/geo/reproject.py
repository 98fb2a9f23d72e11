"""UTM zone lookup and reprojection of rasters to UTM.

UTM zones are 6 degrees wide from 180 W; EPSG:326zz is the northern and
EPSG:327zz the southern hemisphere (standard zones only, without the Norway /
Svalbard exceptions, as pyproj's ``query_utm_crs_info`` also does). EcoVision-LoRA
reprojects VIIRS to EPSG:32651 for Shanghai and EPSG:32611 for Las Vegas with
bilinear resampling (bayramos/Ecovision-LoRA, ``notebooks/1a_shanghai_pipeline.ipynb``
cell 11, ``1b_vegas_pipeline.ipynb`` cell 10).

Reprojection streams through a GDAL warped VRT
(https://gdal.org/drivers/raster/vrt.html#warped-vrt) block row by block row,
so memory stays flat in the raster's size; rotated source transforms are
handled by GDAL. For a conserved quantity (counts, energy) use
``resampling="sum"``: GDAL's ``sum`` weights every source pixel by its overlap
with the output pixel, so totals are preserved up to a small loss at the
raster's outer edge (0.04% for 80 x 60 pixels, 2% for 20 x 10).

Geographic sources that cross the antimeridian (longitudes past 180 E or
180 W, e.g. 0-360 grids) are warped with PROJ's ``+lon_wrap`` centred on the
raster: GDAL's warper maps output pixels back to source longitudes, which PROJ
otherwise returns in [-180, 180], outside such a raster, so the part beyond
180 would come out empty.

The output is written atomically through ``geofm/_atomic.py`` (temporary
file beside ``dst``, ``fsync``, no-replace rename unless ``overwrite``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from geofm._atomic import atomic_output, check_output
from geofm.geo._rio import (
    GEOTIFF_BLOCK,
    TILED_GTIFF,
    PathLike,
    Resampling,
    import_rasterio,
    loaded_rasterio,
    require_georeferencing,
    resampling_enum,
)

__all__ = ["reproject_to_utm", "utm_crs_for", "utm_epsg_for"]


def utm_epsg_for(lon: float, lat: float) -> int:
    """Return the EPSG code of the standard UTM zone containing a point.

    Args:
        lon: Longitude in degrees east, in ``[-180, 180]``.
        lat: Latitude in degrees north, in ``[-80, 84]`` (the UTM latitude band).

    Returns:
        ``32600 + zone`` north of the equator (and on it), ``32700 + zone`` south of it.

    Raises:
        ValueError: If the point lies outside UTM's coverage (a longitude outside
            ``[-180, 180]`` gets a hint about 0-360 longitudes, a latitude past
            the UTM band one about polar stereographic CRSs).

    Example:
        >>> utm_epsg_for(121.47, 31.23), utm_epsg_for(-115.14, 36.17), utm_epsg_for(18.42, -33.92)
        (32651, 32611, 32734)
    """
    if not math.isfinite(lon) or not math.isfinite(lat):
        raise ValueError(f"Point (lon={lon}, lat={lat}) is not a finite longitude/latitude.")
    if not -180.0 <= lon <= 180.0:
        wrapped = (lon + 180.0) % 360.0 - 180.0
        raise ValueError(
            f"Longitude {lon} is outside [-180, 180] (point lon={lon}, lat={lat}). If it comes "
            "from a 0-360 grid, wrap it first: lon = (lon + 180) % 360 - 180 gives "
            f"{wrapped:g} here. If lon and lat are swapped, swap them back."
        )
    if not -80.0 <= lat <= 84.0:
        raise ValueError(
            f"Point (lon={lon}, lat={lat}) is outside UTM coverage (lat in [-80, 84]). "
            "Use a polar stereographic CRS instead (UPS, EPSG:32661 / EPSG:32761)."
        )
    zone = min(math.floor((lon + 180.0) / 6.0) + 1, 60)
    return (32600 if lat >= 0 else 32700) + zone


def utm_crs_for(lon: float, lat: float) -> Any:
    """Return the ``rasterio.crs.CRS`` of the standard UTM zone containing a point.

    Args:
        lon: Longitude in degrees east, in ``[-180, 180]``.
        lat: Latitude in degrees north, in ``[-80, 84]``.

    Returns:
        A ``rasterio.crs.CRS`` (``EPSG:326zz`` north, ``EPSG:327zz`` south).

    Raises:
        MissingDependencyError: If rasterio is not installed.
        ValueError: If the point lies outside UTM's coverage.

    Example:
        >>> utm_crs_for(121.47, 31.23).to_epsg()  # Shanghai
        32651
    """
    rasterio = import_rasterio("utm_crs_for")
    return rasterio.crs.CRS.from_epsg(utm_epsg_for(lon, lat))


def _centre_lonlat(dataset: Any) -> tuple[float, float]:
    """Longitude (wrapped to [-180, 180)) and latitude of the raster's centre."""
    rasterio = loaded_rasterio()
    x, y = dataset.transform @ (dataset.width / 2, dataset.height / 2)
    lons, lats = rasterio.warp.transform(dataset.crs, "EPSG:4326", [x], [y])
    lon = float(lons[0])
    return ((lon + 180.0) % 360.0 - 180.0 if not -180.0 <= lon <= 180.0 else lon), float(lats[0])


def _wrapped_source_crs(dataset: Any) -> Any:
    """The source CRS with ``+lon_wrap`` at its centre if it is geographic and crosses 180.

    Returns ``None`` when no wrapping is needed (projected CRS, or all longitudes
    within [-180, 180]).
    """
    crs = dataset.crs
    if not crs.is_geographic:
        return None
    corners = [dataset.transform @ (c, r) for c in (0, dataset.width) for r in (0, dataset.height)]
    lons = [p[0] for p in corners]
    if min(lons) >= -180.0 and max(lons) <= 180.0:
        return None
    rasterio = loaded_rasterio()
    centre = (min(lons) + max(lons)) / 2
    return rasterio.crs.CRS.from_proj4(f"{crs.to_proj4()} +lon_wrap={centre!r}")


def reproject_to_utm(
    src: PathLike,
    dst: PathLike,
    *,
    resampling: Resampling = "bilinear",
    dst_crs: Any = None,
    resolution: float | None = None,
    overwrite: bool = False,
) -> Path:
    """Reproject a raster to the UTM zone of its centre and write a tiled GeoTIFF.

    The output grid is GDAL's suggested warp output (same pixel count order of
    magnitude, north-up) unless ``resolution`` is given. Nodata is kept: the
    source's nodata value is reused when it has one, otherwise invalid and
    outside pixels are recorded in a mask band.

    Args:
        src: Georeferenced raster (any CRS, rotated transforms allowed).
        dst: Output GeoTIFF (deflate-compressed, 256 x 256 tiles).
        resampling: GDAL resampling: ``"bilinear"`` (EcoVision's choice) for
            continuous fields, ``"nearest"``/``"mode"`` for classes, ``"sum"`` for
            conserved quantities (totals preserved; integer outputs can saturate,
            so convert such sources to float first), ``"average"`` for densities.
        dst_crs: Target CRS (anything ``rasterio.crs.CRS.from_user_input`` takes) to
            use instead of the automatic UTM zone, e.g. ``"EPSG:32651"`` to put a
            whole city in one zone.
        resolution: Output pixel size in metres; ``None`` keeps GDAL's estimate of
            the source resolution.
        overwrite: Replace ``dst`` if it exists.

    Returns:
        ``dst`` as a :class:`~pathlib.Path`.

    Raises:
        MissingDependencyError: If rasterio is not installed.
        ValueError: If ``src`` has no CRS or no geotransform, ``dst`` is ``src``
            (also through ``..``, a symbolic or a hard link), ``resolution`` is
            not positive or ``resampling`` is unknown.
        FileExistsError: If ``dst`` exists and ``overwrite`` is false, also when
            another writer creates it while this run is writing.

    Example:
        >>> import tempfile, pathlib, rasterio
        >>> from rasterio.transform import from_origin
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> with rasterio.open(folder / "ll.tif", "w", driver="GTiff", width=80, height=60,
        ...                    count=1, dtype="float32", crs="EPSG:4326",
        ...                    transform=from_origin(121.3, 31.3, 0.01, 0.01)) as d:
        ...     d.write(np.ones((1, 60, 80), np.float32))  # total 4800
        >>> out = reproject_to_utm(folder / "ll.tif", folder / "utm.tif", resampling="sum")
        >>> with rasterio.open(out) as r:
        ...     r.crs.to_epsg(), round(float(r.read(1, masked=True).sum()) / 4800, 3)
        (32651, 1.0)
    """
    rasterio = import_rasterio("reproject_to_utm")
    from rasterio.vrt import WarpedVRT

    method = resampling_enum(resampling, "reproject_to_utm")
    if resolution is not None and not resolution > 0:
        raise ValueError(f"resolution must be > 0 metres, got {resolution}.")
    out = check_output(dst, inputs=[src], overwrite=overwrite, caller="reproject_to_utm")
    with rasterio.open(src) as dataset:
        require_georeferencing(dataset, src, "reproject_to_utm")
        crs = (
            utm_crs_for(*_centre_lonlat(dataset))
            if dst_crs is None
            else rasterio.crs.CRS.from_user_input(dst_crs)
        )
        has_nodata = dataset.nodata is not None
        vrt_options: dict[str, Any] = {"crs": crs, "resampling": method}
        wrapped = _wrapped_source_crs(dataset)
        if wrapped is not None:
            vrt_options["src_crs"] = wrapped
        with WarpedVRT(dataset, **vrt_options) as probe:
            grid = (probe.transform, probe.width, probe.height)
        if resolution is not None:
            left, bottom, right, top = rasterio.transform.array_bounds(grid[2], grid[1], grid[0])
            width = max(1, math.ceil((right - left) / resolution))
            height = max(1, math.ceil((top - bottom) / resolution))
            grid = (
                rasterio.transform.from_origin(left, top, resolution, resolution),
                width,
                height,
            )
        transform, width, height = grid
        vrt_options.update(transform=transform, width=width, height=height)
        if has_nodata:
            vrt_options["nodata"] = dataset.nodata
        else:
            vrt_options["add_alpha"] = True
        profile = {
            **TILED_GTIFF,
            "width": width,
            "height": height,
            "count": dataset.count,
            "dtype": dataset.dtypes[0],
            "crs": crs,
            "transform": transform,
            "nodata": dataset.nodata,
        }
        bands = list(range(1, dataset.count + 1))
        with (
            atomic_output(out, overwrite=overwrite, caller="reproject_to_utm") as tmp,
            WarpedVRT(dataset, **vrt_options) as vrt,
            rasterio.open(tmp, "w", **profile) as sink,
        ):
            for i, text in enumerate(dataset.descriptions, start=1):
                if text:
                    sink.set_band_description(i, text)
            for row in range(0, height, GEOTIFF_BLOCK):
                window = rasterio.windows.Window(0, row, width, min(GEOTIFF_BLOCK, height - row))
                sink.write(vrt.read(bands, window=window), window=window)
                if not has_nodata:
                    alpha = vrt.read(dataset.count + 1, window=window)
                    sink.write_mask(np.where(alpha > 0, 255, 0).astype(np.uint8), window=window)
    return out
