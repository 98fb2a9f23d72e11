"""How a pretrained first layer is adapted to other bands, from adapt_input_weight's reports.

Two cases, computed with ``geofm.backbones.adapt.adapt_input_weight`` on a
random kernel (the mapping, not the values, is what is drawn): RGB weights
(DINOv2, ImageNet) onto Sentinel-2 L2A's 12 bands, and Landsat 8/9 OLI
weights onto Sentinel-2 L2A. Each target band (bottom row) is linked to the
source channels it was built from; the line width is the weight.

Run: ``python docs/scripts/band_adaptation.py OUT_DIR``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from _style import COLORS, out_dir_from_argv, plt, save
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from geofm.backbones.adapt import adapt_input_weight
from geofm.sensors import get_sensor

METHOD_COLORS = {
    "copy": COLORS[2],
    "interpolate": COLORS[0],
    "nearest": COLORS[1],
    "sum": COLORS[4],
    "repeat": COLORS[3],
}


def _panel(ax: Axes, source: str, target: str) -> str:
    src, dst = get_sensor(source), get_sensor(target)
    kernel = torch.randn(8, src.num_bands, 3, 3)
    _, report = adapt_input_weight(
        kernel, target_in_chans=dst.num_bands, source_bands=src, target_bands=dst
    )
    for channel in report.channels:
        x_dst = dst.wavelengths[channel.index]
        for source_index, weight in channel.sources:
            ax.plot(
                [src.wavelengths[source_index], x_dst],
                [1, 0],
                color=METHOD_COLORS[channel.method],
                lw=0.5 + 2.5 * abs(weight),
                alpha=0.8,
            )
        ax.plot(x_dst, 0, "o", color=METHOD_COLORS[channel.method], ms=7)
        ax.text(
            x_dst, -0.12, dst.bands[channel.index], rotation=90, ha="center", va="top", fontsize=7
        )
    for i, wl in enumerate(src.wavelengths):
        ax.plot(wl, 1, "s", color="black", ms=6)
        ax.text(wl, 1.08, src.bands[i], rotation=90, ha="center", va="bottom", fontsize=7)
    ax.set_ylim(-0.55, 1.5)
    ax.set_yticks([0, 1], [f"{target}\n(model input)", f"{source}\n(pretrained)"], fontsize=8)
    ax.set_xscale("log")
    ax.set_xticks([450, 600, 800, 1000, 1600, 2200], ["450", "600", "800", "1000", "1600", "2200"])
    ax.minorticks_off()
    ax.set_xlabel("wavelength (nm, log scale)", fontsize=8)
    summary = report.summary()
    ax.set_title(f"{source} -> {target}: {summary}", fontsize=9)
    return summary


def main(out_dir: Path) -> list[Path]:
    """Write this script's figures into ``out_dir``; return their paths."""
    fig, axes = plt.subplots(2, 1, figsize=(10, 6.4))
    _panel(axes[0], "rgb", "sentinel2_l2a")
    _panel(axes[1], "landsat89_oli", "sentinel2_l2a")
    handles = [
        Line2D([], [], color=c, marker="o", lw=2, label=m)
        for m, c in METHOD_COLORS.items()
        if m in ("copy", "interpolate", "nearest")
    ]
    fig.legend(handles=handles, loc="upper right", fontsize=8, title="new kernel by", ncol=3)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return [save(fig, out_dir / "band_adaptation.svg")]


if __name__ == "__main__":
    print(main(out_dir_from_argv()))
