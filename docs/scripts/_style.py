"""Shared figure settings of the docs scripts: Agg backend, reproducible SVG/PNG output.

Not a figure script itself (the docs hook runs only files without a leading
underscore).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

__all__ = ["COLORS", "out_dir_from_argv", "plt", "save"]

plt.rcParams.update(
    {
        "svg.hashsalt": "geofm-docs",  # stable element ids: the same SVG on every build
        "svg.fonttype": "none",  # text stays text (searchable, small)
        "font.size": 10,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
)

#: Colours used across the figures (colour-blind safe, Okabe-Ito).
COLORS = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]


def save(fig: Any, path: Path) -> Path:
    """Write ``fig`` to ``path`` without timestamps (PNG or SVG), close it, return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"Date": None} if path.suffix == ".svg" else {"Software": None}
    fig.savefig(path, metadata=metadata, bbox_inches="tight", dpi=100)
    plt.close(fig)
    return path


def out_dir_from_argv() -> Path:
    """The output folder given on the command line (default ``docs-figures``)."""
    return Path(sys.argv[1] if len(sys.argv) > 1 else "docs-figures")
