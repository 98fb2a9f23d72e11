"""geofm: geospatial foundation-model components for PyTorch.

The top level is kept light: heavy or optional dependencies (rasterio,
huggingface_hub) are imported only inside the functions that need them.

Example:
    >>> import geofm
    >>> isinstance(geofm.__version__, str)
    True
"""

from __future__ import annotations

from geofm._version import __version__

__all__ = ["__version__"]
