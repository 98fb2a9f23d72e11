"""The embedded Landsat 7 scene beside the map the demo's saved model writes.

Runs ``geofm.demo.run_demo`` (default settings, 60 steps, about 10 s of CPU),
reloads the saved model with ``from_pretrained`` and predicts the scene with
``predict_raster``'s defaults, which is what ``geofm predict model/ scene.tif
map.tif`` runs. Writes ``scene_and_map.png`` and, for the examples gallery,
the demo's own plot ``demo_plot.png``.

Run: ``python docs/scripts/scene_and_map.py OUT_DIR`` (the docs build runs it
through ``docs/hooks/figures.py``).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
from _style import out_dir_from_argv, plt, save
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

from geofm.data import sample_raster
from geofm.demo import run_demo
from geofm.geo import predict_raster, read_raster
from geofm.hub import from_pretrained
from geofm.input_spec import OutputSpec


def main(out_dir: Path) -> list[Path]:
    """Write this script's figures into ``out_dir``; return their paths."""
    with tempfile.TemporaryDirectory() as tmp:
        result = run_demo(tmp, plot=True)
        model = from_pretrained(result["outputs"]["model"])
        map_path = predict_raster(model, sample_raster(), Path(tmp) / "map.tif")
        predicted = read_raster(map_path).array[0]
        demo_plot = out_dir / "demo_plot.png"
        out_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(result["outputs"]["plot"], demo_plot)
    output = getattr(model, "output_spec", None)
    if not isinstance(output, OutputSpec) or output.colors is None or output.class_names is None:
        raise TypeError("the demo's saved model should carry an OutputSpec with colours and names")
    scene = read_raster(sample_raster())
    rgb = scene.array.transpose(1, 2, 0).astype(np.float32)
    rgb = np.clip(rgb / max(float(rgb.max()), 1.0), 0, 1)
    colors = [(r / 255, g / 255, b / 255) for r, g, b in output.colors]
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 4.4))
    axes[0].imshow(rgb)
    axes[0].set_title("embedded Landsat 7 scene")
    axes[1].imshow(
        np.ma.masked_equal(predicted, 255),
        cmap=ListedColormap(colors),
        vmin=0,
        vmax=len(colors) - 1,
        interpolation="nearest",
    )
    axes[1].set_title("map of the saved demo model")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [Patch(color=c, label=n) for c, n in zip(colors, output.class_names, strict=True)]
    axes[1].legend(handles=handles, loc="lower right", fontsize=8, framealpha=0.9)
    fig.text(
        0.5,
        0.06,
        "EPSG:32618, 300 m pixels; predict_raster defaults (= geofm predict). Classes: the demo's "
        f"stand-in labels (brightness terciles);\nvalidation mIoU {result['val_miou']:.2f} vs "
        f"{result['majority_baseline_miou']:.2f} for the majority class.",
        ha="center",
        fontsize=8,
    )
    return [save(fig, out_dir / "scene_and_map.png"), demo_plot]


if __name__ == "__main__":
    print(main(out_dir_from_argv()))
