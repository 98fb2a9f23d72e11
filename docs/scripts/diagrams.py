"""Block diagrams of LoRA, cross-attention fusion (CAF) and gated late fusion (GLF).

Drawn from the formulas on the LoRA and Fusion pages (``geofm.lora.LoRALinear``:
``y = W0 x + b0 + (alpha / r) B A dropout(x)``; ``geofm.fusion``'s CAF and GLF);
the labels name the modules' own attributes.

Run: ``python docs/scripts/diagrams.py OUT_DIR``.
"""

from __future__ import annotations

from pathlib import Path

from _style import COLORS, out_dir_from_argv, plt, save
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch


def _box(
    ax: Axes,
    x: float,
    y: float,
    text: str,
    color: str,
    w: float = 2.2,
    h: float = 0.8,
    frozen: bool = False,
) -> tuple[float, float, float, float]:
    ax.add_patch(
        FancyBboxPatch(
            (x - w / 2, y - h / 2),
            w,
            h,
            boxstyle="round,pad=0.05",
            fc=color,
            ec="black",
            lw=1,
            alpha=0.35 if frozen else 0.9,
            hatch="//" if frozen else None,
        )
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=9)
    return (x, y, w, h)


def _arrow(ax: Axes, start: tuple[float, float], end: tuple[float, float], text: str = "") -> None:
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle="-|>",
            mutation_scale=12,
            lw=1.2,
            color="black",
            shrinkA=2,
            shrinkB=2,
        )
    )
    if text:
        ax.text((start[0] + end[0]) / 2 + 0.1, (start[1] + end[1]) / 2, text, fontsize=8)


def _canvas(width: float, height: float) -> tuple[Figure, Axes]:
    fig, ax = plt.subplots(figsize=(width, height))
    ax.set_xlim(0, width * 1.5)
    ax.set_ylim(0, height * 1.5)
    ax.axis("off")
    return fig, ax


def lora(out_dir: Path) -> Path:
    """LoRA on one layer: frozen base weight plus the scaled low-rank update."""
    fig, ax = _canvas(6.4, 4.9)
    _box(ax, 4.8, 1.5, "x  (N, ..., in)", "white", w=2.6)
    _box(
        ax, 2.4, 3.8, "W0, b0\nfrozen base weight\n(out x in)", COLORS[5], w=3.0, h=1.2, frozen=True
    )
    _box(ax, 7.2, 3.0, "lora_A: in -> r\n(Kaiming uniform)", COLORS[2], w=3.0)
    _box(ax, 7.2, 4.5, "lora_B: r -> out\n(zeros at init)", COLORS[2], w=3.0)
    _box(ax, 4.8, 5.9, "+", "white", w=0.7, h=0.6)
    _box(ax, 4.8, 6.9, "y  (N, ..., out)", "white", w=2.6)
    _arrow(ax, (4.4, 1.9), (2.8, 3.2))
    _arrow(ax, (5.4, 1.9), (6.8, 2.6), "dropout")
    _arrow(ax, (7.2, 3.4), (7.2, 4.1))
    _arrow(ax, (6.8, 4.9), (5.2, 5.8), "x alpha / r")
    _arrow(ax, (2.8, 4.4), (4.4, 5.8))
    _arrow(ax, (4.8, 6.2), (4.8, 6.5))
    ax.text(
        0.2,
        0.2,
        "merge_lora: W0 <- W0 + (alpha / r) B A   (safe: checked finite first)\n"
        "trainable: r (in + out) per layer instead of in x out",
        fontsize=8,
    )
    return save(fig, out_dir / "lora.svg")


def caf(out_dir: Path) -> Path:
    """CrossAttentionFusion: visual queries, spectral keys and values."""
    fig, ax = _canvas(6.4, 5.0)
    _box(ax, 2.4, 0.6, "visual map V\n(N, C, H, W)", COLORS[0], w=2.6, h=0.9)
    _box(ax, 7.2, 0.6, "spectral map S\n(N, C, Hs, Ws)", COLORS[1], w=2.6, h=0.9)
    _box(ax, 2.4, 2.0, "norm1 -> Q", "white")
    _box(ax, 7.2, 2.0, "norm1 (shared) -> K, V'", "white", w=3.2)
    _box(
        ax,
        4.8,
        3.5,
        "multi-head attention\nsoftmax(q_proj Q (k_proj K)^T / sqrt(d))\nv_proj V'  -> out_proj",
        COLORS[4],
        w=5.4,
        h=1.2,
    )
    _box(ax, 4.8, 5.0, "Y = Q + attention", "white", w=2.6)
    _box(ax, 4.8, 6.2, "Y + ffn(norm2(Y))\n(N, C, H, W)", COLORS[2], w=3.0, h=0.9)
    _arrow(ax, (2.4, 1.05), (2.4, 1.6))
    _arrow(ax, (7.2, 1.05), (7.2, 1.6))
    _arrow(ax, (2.4, 2.4), (3.6, 2.9), "queries")
    _arrow(ax, (7.2, 2.4), (6.0, 2.9), "keys, values")
    _arrow(ax, (4.8, 4.1), (4.8, 4.6))
    ax.plot([1.4, 1.4, 1.5], [2.4, 5.0, 5.0], color="black", lw=1.2)  # residual path, left
    _arrow(ax, (1.5, 5.0), (3.5, 5.0))
    ax.text(0.5, 3.7, "residual", fontsize=8, rotation=90)
    _arrow(ax, (4.8, 5.4), (4.8, 5.75))
    ax.text(0.2, 7.1, "CrossAttentionFusion: visual tokens attend to spectral tokens", fontsize=10)
    return save(fig, out_dir / "caf.svg")


def glf(out_dir: Path) -> Path:
    """GatedLateFusion: a sigmoid gate mixing fused and visual maps."""
    fig, ax = _canvas(6.4, 3.8)
    _box(ax, 2.0, 0.6, "fused F (from CAF)", COLORS[4], w=2.6)
    _box(ax, 7.6, 0.6, "visual V", COLORS[0], w=2.2)
    _box(ax, 4.8, 2.0, "g = sigmoid(gate_conv([F, V]))\nConv1x1 2C -> C", COLORS[3], w=4.2, h=1.0)
    _box(ax, 4.8, 3.9, "out = g * F + (1 - g) * V\n(N, C, H, W)", COLORS[2], w=4.2, h=1.0)
    _arrow(ax, (2.2, 0.95), (3.8, 1.5))
    _arrow(ax, (7.4, 0.95), (5.8, 1.5))
    _arrow(ax, (4.8, 2.5), (4.8, 3.4), "g per pixel and channel")
    _arrow(ax, (1.6, 0.95), (3.1, 3.4))
    _arrow(ax, (8.0, 0.95), (6.5, 3.4))
    ax.text(
        0.2,
        5.3,
        "GatedLateFusion: a learnt per-pixel, per-channel mix of fused and visual",
        fontsize=10,
    )
    return save(fig, out_dir / "glf.svg")


def main(out_dir: Path) -> list[Path]:
    """Write this script's figures into ``out_dir``; return their paths."""
    return [lora(out_dir), caf(out_dir), glf(out_dir)]


if __name__ == "__main__":
    print(main(out_dir_from_argv()))
