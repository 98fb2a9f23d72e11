"""Tile grid with overlap on the embedded scene, and the cosine blending weights.

The grid comes from ``geofm.geo.tile_raster`` (128 px tiles, stride 96, i.e.
overlap 32; the last tile of each axis is shifted back to end at the edge, as
in ``predict_raster``). The weights follow ``predict_raster``'s documented
``blend="cosine"`` rule: 1 inside a tile, ``sin^2`` ramps over the overlap at
its borders (pixel centres), so two overlapping ramps sum to 1.

Run: ``python docs/scripts/tile_blending.py OUT_DIR``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _style import COLORS, out_dir_from_argv, plt, save
from matplotlib.patches import Rectangle

from geofm.data import sample_raster
from geofm.geo import read_raster, tile_raster

TILE, OVERLAP = 128, 32


def ramp_weights(size: int, overlap: int) -> np.ndarray:
    """predict_raster's cosine window along one axis (documented on the GeoTIFF I/O page)."""
    weights = np.ones(size)
    t = (np.arange(overlap) + 0.5) / overlap
    ramp = np.sin(0.5 * np.pi * t) ** 2
    weights[:overlap], weights[size - overlap :] = ramp, ramp[::-1]
    return weights


def main(out_dir: Path) -> list[Path]:
    """Write this script's figures into ``out_dir``; return their paths."""
    tiles = tile_raster(sample_raster(), size=TILE, stride=TILE - OVERLAP)
    scene = read_raster(sample_raster()).array.transpose(1, 2, 0).astype(np.float32)
    scene = np.clip(scene / max(float(scene.max()), 1.0), 0, 1)
    height, width = scene.shape[:2]
    fig, (grid_ax, weight_ax) = plt.subplots(1, 2, figsize=(10, 4.2), width_ratios=[1, 1.4])
    grid_ax.imshow(scene * 0.6 + 0.4)
    for k, tile in enumerate(tiles):
        row, col = tile.window.row_off, tile.window.col_off
        grid_ax.add_patch(
            Rectangle(
                (col - 0.5, row - 0.5),
                TILE,
                TILE,
                fill=False,
                lw=2,
                ec=COLORS[k % len(COLORS)],
                ls="-" if k % 2 == 0 else "--",
            )
        )
    grid_ax.set_title(
        f"{len(tiles)} tiles of {TILE} px, overlap {OVERLAP} px, on a {height} x {width} scene",
        fontsize=9,
    )
    grid_ax.set_xticks([])
    grid_ax.set_yticks([])

    starts = sorted({t.window.col_off for t in tiles})
    x = np.arange(width)
    total = np.zeros(width)
    for k, start in enumerate(starts):
        w = ramp_weights(TILE, OVERLAP)
        if start == 0:
            w[:OVERLAP] = 1.0  # no neighbour on the scene's edge
        if start + TILE == width:
            w[TILE - OVERLAP :] = 1.0
        weights = np.zeros(width)
        weights[start : start + TILE] = w
        total += weights
        weight_ax.plot(x, weights, color=COLORS[k], lw=2, label=f"tile at column {start}")
    weight_ax.plot(x, total, color="black", lw=1, ls=":", label="sum of weights")
    weight_ax.set_xlabel("column (pixels)")
    weight_ax.set_ylabel("blending weight")
    weight_ax.set_ylim(-0.05, 1.35)
    weight_ax.legend(fontsize=8, ncol=2, loc="upper center")
    weight_ax.set_title(
        "cosine (sin\u00b2) ramps over each overlap; outputs are divided by the sum", fontsize=9
    )
    return [save(fig, out_dir / "tile_blending.svg")]


if __name__ == "__main__":
    print(main(out_dir_from_argv()))
