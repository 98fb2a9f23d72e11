"""Bar chart of the benchmark ratios on the Benchmarks page (geofm time / peer time).

The numbers are those of ``docs/benchmarks.md`` (first run of each table);
each entry carries the text it was read from, and the script fails if that
text is no longer on the page, so the chart cannot drift from the tables.

Run: ``python docs/scripts/benchmark_ratios.py OUT_DIR``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _style import COLORS, out_dir_from_argv, plt, save
from matplotlib.patches import Rectangle

PAGE = Path(__file__).resolve().parents[1] / "benchmarks.md"

# (section, case, geofm time / peer time, text on the page it is read from)
RATIOS: list[tuple[str, str, float, str]] = [
    ("SSL losses vs lightly", "VICReg, D=8192", 84.7 / 13934, "84.7 / 13,934"),
    ("SSL losses vs lightly", "Barlow Twins, D=8192", 58.9 / 2838, "58.9 / 2,838"),
    ("SSL losses vs lightly", "DINO + centre", 0.50, "98.0 / 194.7 (ratio **0.50**)"),
    ("SSL losses vs lightly", "InfoNCE + queue", 0.82, "40.2 / 49.3 (**0.82**)"),
    ("SSL losses vs lightly", "NT-Xent", 0.45, "4.52 / 10.07 (**0.45**)"),
    ("LoRA vs PEFT", "train step, eager", 0.958, "**0.958** (0.968)"),
    ("LoRA vs PEFT", "train step, compiled vs eager PEFT", 0.924, "0.924 (0.928), missed"),
    ("LoRA vs PEFT", "peak step memory", 1.000, "**1.000** (417.3 MiB each)"),
    ("LoRA vs PEFT", "merged inference / plain backbone", 1.139, "1.139 (1.101), load noise"),
    ("Spectral / fusion vs reference", "CrossAttentionFusion", 0.86, "3628 / 4214 ms = **0.86**"),
    ("Spectral / fusion vs reference", "WavelengthPatchEmbed, N=8", 2.53, "1032 / 408 ms = 2.53"),
    ("Spectral / fusion vs reference", "WavelengthPatchEmbed, N=32", 1.36, "1332 / 982 ms = 1.36"),
    ("Spectral / fusion vs reference", "SpectralAdapter", 0.89, "4847 / 5431 ms = 0.89"),
    ("Heads, metrics, transforms", "FPN vs torchvision", 184.7 / 214.1, "184.7 ms | 214.1 ms"),
    (
        "Heads, metrics, transforms",
        "streaming IoU vs scikit-learn",
        106.9 / 636.2,
        "106.9 ms | 636.2 ms",
    ),
    ("Heads, metrics, transforms", "multi-label AP, exact", 49.7 / 95.8, "49.7 ms | 95.8 ms"),
    ("Heads, metrics, transforms", "multi-label AP, histogram", 12.5 / 105.8, "12.5 ms | 105.8 ms"),
    (
        "Heads, metrics, transforms",
        "crop + flips vs torchvision v2",
        18.8 / 18.7,
        "18.8 ms | 18.7 ms",
    ),
    ("Heads, metrics, transforms", "Gaussian blur", 37.0 / 44.0, "37.0 ms | 44.0 ms"),
    ("Weight loading, ViT-B", "load, sha256 checked", 1.17, "| 1.17x, 0.83x |"),
    ("Weight loading, ViT-B", "load, no hash", 0.16, "| 0.16x, 0.15x |"),
    ("Weight loading, ViT-B", "save + from_pretrained", 1.07, "| 1.07x, 1.26x |"),
    ("Whole-scene prediction", "end to end / forward only", 0.94, "14.11 s / 15.00 s = **0.94**"),
]


def check_page(text: str) -> None:
    """Raise if a number of the chart is not on the Benchmarks page any more."""
    stale = [case for _, case, _, evidence in RATIOS if evidence not in text]
    if stale:
        raise ValueError(
            f"docs/benchmarks.md no longer shows the numbers of {stale}; update "
            "docs/scripts/benchmark_ratios.py from the page."
        )


def main(out_dir: Path) -> list[Path]:
    """Write this script's figures into ``out_dir``; return their paths."""
    check_page(PAGE.read_text(encoding="utf-8"))
    sections = list(dict.fromkeys(s for s, *_ in RATIOS))
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(RATIOS) + 1.4))
    y = np.arange(len(RATIOS))[::-1]
    colors = [COLORS[sections.index(s)] for s, *_ in RATIOS]
    values = [r for _, _, r, _ in RATIOS]
    ax.barh(y, values, color=colors, left=0)
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", lw=1)
    ax.set_yticks(y, [case for _, case, _, _ in RATIOS], fontsize=10)
    for yi, value in zip(y, values, strict=True):
        label = f"{value:.3g}" if value >= 0.1 else f"1/{1 / value:.0f}"
        ax.text(
            value * (1.08 if value >= 1 else 0.92),
            yi,
            label,
            va="center",
            ha="left" if value >= 1 else "right",
            fontsize=9,
        )
    ax.set_xlim(0.003, 5)
    ax.set_xlabel("geofm time / peer time (log scale; left of 1: geofm faster)")
    handles = [Rectangle((0, 0), 1, 1, color=COLORS[i]) for i in range(len(sections))]
    ax.legend(
        handles, sections, fontsize=9, loc="upper center", bbox_to_anchor=(0.4, -0.09), ncol=3
    )
    ax.set_title("Benchmarks, first run of each table (2-core CPU VM; see the tables)", fontsize=10)
    return [save(fig, out_dir / "benchmark_ratios.svg")]


if __name__ == "__main__":
    print(main(out_dir_from_argv()))
