"""Package data: band tables, normalisation statistics and a sample GeoTIFF.

Files are read with :mod:`importlib.resources` (all small, plain text, but one):

- ``enmap_spectral_earth_bands.csv``: the 202 EnMAP bands SpectralEarth keeps
  (``idx, center_nm, fwhm_nm, original_idx`` into the 224 EnMAP L2A bands),
  from ``data/enmap_bands_remapped.csv`` of https://github.com/AABNassim/spectral_earth.
- ``spectral_earth_stats.json``: SpectralEarth's per-band mean / std on raw
  digital numbers for EnMAP (202), DESIS (235), EO-1 Hyperion (198) and
  HYPERVIEW (150) (``data/statistics``, ``data/*_statistics`` of the same repository).
- ``hyperion_usgs_bands.csv``: centre wavelength and FWHM of the 198 calibrated
  EO-1 Hyperion bands (B008-B057, B077-B224), from the USGS Hyperion spectral
  coverage table (http://eo1.usgs.gov/sensors/hyperioncoverage, US public domain).
- ``bigearthnet_s2_6band_stats.json``: Fusion-LoRA's BigEarthNet-S2 mean / std of
  bands ``[B04, B03, B02, B08, B11, B12]`` after ``/10000``
  (``datasets/config.json`` of https://github.com/Eyobed-Abby/fusion-lora-skysense).
- ``samples/landsat7_rgb_224.tif``: a 224 x 224 Landsat 7 RGB window (CC0,
  EPSG:32618), see ``samples/README.md``; :func:`sample_raster` gives its path.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["sample_raster"]


def sample_raster() -> Path:
    """Path of the embedded 224 x 224 Landsat 7 RGB GeoTIFF (CC0, EPSG:32618, 300 m pixels).

    Returns:
        Path inside the installed package.

    Example:
        >>> sample_raster().name
        'landsat7_rgb_224.tif'
        >>> sample_raster().is_file()
        True
    """
    return Path(__file__).parent / "samples" / "landsat7_rgb_224.tif"
