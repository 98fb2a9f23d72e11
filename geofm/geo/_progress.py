"""Progress bars of ``geofm.geo``'s long loops (private module, public names).

One helper for every loop that can run for minutes (:func:`~geofm.geo.tile_raster`,
:func:`~geofm.geo.predict_raster`, :func:`~geofm.geo.predict_rasters`): a
``tqdm.auto`` bar when tqdm is installed (it is an optional dependency, in the
``examples`` extra), else ``None`` and one log line per function and process,
so the missing bar is explained once, not at every call.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["progress_bar"]

logger = logging.getLogger("geofm.geo")
_EXPLAINED: set[str] = set()  # callers whose missing bar was already logged


def progress_bar(total: int, *, unit: str, desc: str, caller: str) -> Any:
    """A tqdm bar over ``total`` units, or ``None`` when tqdm is not installed.

    Args:
        total: Number of units the loop will report with ``bar.update``.
        unit: Name of one unit, shown after the count (``"tile"``, ``"scene"``).
        desc: Text shown before the bar.
        caller: Public function that shows the bar, named in the log line
            written (once per process) when tqdm is missing.

    Returns:
        A ``tqdm.auto.tqdm`` instance the caller must ``close``, or ``None``.

    Example:
        >>> bar = progress_bar(3, unit="tile", desc="demo", caller="demo")
        >>> if bar is not None:
        ...     bar.close()
    """
    try:
        from tqdm.auto import tqdm
    except ImportError:
        if caller not in _EXPLAINED:
            _EXPLAINED.add(caller)
            logger.info("tqdm is not installed, so %s shows no progress bar.", caller)
        return None
    return tqdm(total=total, unit=unit, desc=desc)
