"""Every catalog sensor's bands on a wavelength axis (centre +- half the FWHM).

Reads ``geofm.sensors.list_sensors()`` / ``get_sensor()``: the figure shows
exactly the catalog of the installed geofm. Sensors with more than 20 bands
(hyperspectral) are drawn as thin lines at their centre wavelengths.

Run: ``python docs/scripts/sensor_bands.py OUT_DIR``.
"""

from __future__ import annotations

from pathlib import Path

from _style import COLORS, out_dir_from_argv, plt, save
from matplotlib.patches import Rectangle

from geofm.sensors import get_sensor, list_sensors


def main(out_dir: Path) -> list[Path]:
    """Write this script's figures into ``out_dir``; return their paths."""
    names = list_sensors()
    fig, ax = plt.subplots(figsize=(10, 0.42 * len(names) + 1.2))
    for row, name in enumerate(reversed(names)):
        sensor = get_sensor(name)
        color = COLORS[row % len(COLORS)]
        hyperspectral = sensor.num_bands > 20
        for i, centre in enumerate(sensor.wavelengths):
            if hyperspectral or sensor.bandwidths is None:
                ax.plot([centre, centre], [row - 0.3, row + 0.3], color=color, lw=0.6)
            else:
                width = sensor.bandwidths[i]
                ax.add_patch(
                    Rectangle(
                        (centre - width / 2, row - 0.3), width, 0.6, color=color, alpha=0.75, lw=0
                    )
                )
        ax.text(2580, row, f"{sensor.num_bands} bands", va="center", fontsize=8)
    ax.set_yticks(range(len(names)), list(reversed(names)), fontsize=8)
    ax.set_xlim(350, 2750)
    ax.set_ylim(-0.7, len(names) - 0.3)
    ax.set_xlabel("wavelength (nm)")
    for edge, label in ((400, "visible"), (700, "near infrared"), (1400, "shortwave infrared")):
        ax.axvline(edge, color="grey", lw=0.5, ls=":")
        ax.text(edge + 10, len(names) - 0.45, label, fontsize=8, color="grey")
    ax.set_title(
        "Sensor catalog: band centres +- FWHM / 2 (lines: hyperspectral or FWHM unknown)",
        fontsize=10,
    )
    return [save(fig, out_dir / "sensor_bands.svg")]


if __name__ == "__main__":
    print(main(out_dir_from_argv()))
