"""Benchmark predict_raster(precision="bf16") against float32 on one scene.

Target (issue 19): bf16 at >= 1.5x the float32 throughput with >= 99% class
agreement on valid pixels, for a ViT-S/14 segmentation model (DINOv2 ViT-S/14,
random init, light head: two 3x3 convs on the last block's map) and a ResNet-50
segmentation model (FPN, 128 channels, ML4Earth head), on a ``--size`` x
``--size`` 3-band uint8 scene (structured: smooth fields plus noise), tile 252
(ViT, a multiple of 14) or 256 (ResNet), overlap 32, batch 8, ``output="class"``.

Both precisions run in one process, interleaved (fp32, bf16, fp32, bf16, ...),
after a warm-up on a small scene; the best of ``--repeats`` is kept. Agreement
is the share of pixels valid in both outputs where the classes are equal; the
models have random weights, so their logits are closer to ties than a trained
model's, and the share of pixels whose float32 top-2 logit margin is below
0.05 is printed to show how many decisions are near-ties. A third variant,
"bf16 weights" (the model cast to bfloat16, run by ``precision="fp32"``: no
autocast casts), shows what autocast's per-op casts cost. ``--compile`` adds
``torch.compile(model)`` (inductor, static shapes) in fp32 and bf16, timed after
a warm-up pass over the timed scene itself, so every batch shape is compiled
before timing (the compilation time is printed). When a target is missed, a
``torch.profiler`` summary of one batch in each precision is printed.

Run (about 4 minutes on a loaded 2-core VM with AVX512-BF16/AMX):

    python benchmarks/bench_predict_precision.py
    python benchmarks/bench_predict_precision.py --size 1024 --models resnet50
    python benchmarks/bench_predict_precision.py --size 1024 --repeats 1 --compile
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from rasterio.transform import Affine
from torch import nn

import geofm
from geofm.geo import predict_raster
from geofm.geo._window import tile_offsets
from geofm.heads import FPN, FPNSegmentationHead, SegmentationModel, SimpleSegmentationHead

CLASSES, OVERLAP, BATCH = 6, 32, 8


def vit_small(num_classes: int = CLASSES) -> nn.Module:
    torch.manual_seed(0)
    backbone = geofm.create_backbone("dinov2_vit_small_patch14", out_indices=[11])
    head = SimpleSegmentationHead(backbone.embed_dim, num_classes)
    return SegmentationModel(backbone, None, head).eval()


def resnet50(num_classes: int = CLASSES) -> nn.Module:
    torch.manual_seed(0)
    backbone = geofm.create_backbone("resnet50")
    neck = FPN(backbone.feature_info.channels(), out_channels=128)
    return SegmentationModel(backbone, neck, FPNSegmentationHead(128, num_classes)).eval()


class Bf16Weights(nn.Module):
    """The model with bfloat16 weights: input cast to bf16, logits back to float32.

    Not what ``precision="bf16"`` does (autocast keeps float32 weights and
    casts per op); measured beside it to show what the casts cost.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.to(torch.bfloat16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Float32 logits of the bf16 model for float32 ``x``."""
        return self.model(x.to(torch.bfloat16)).float()  # type: ignore[no-any-return]


MODELS = {"vit_small_patch14": (vit_small, 252), "resnet50": (resnet50, 256)}


def write_scene(path: Path, size: int) -> Path:
    """A 3-band uint8 scene with smooth structure plus noise, tiled and deflate-compressed."""
    rng = np.random.default_rng(0)
    rows = np.arange(size, dtype=np.float32)[:, None]
    cols = np.arange(size, dtype=np.float32)[None, :]
    bands = []
    for k in range(3):
        field = np.sin(rows / (90 + 40 * k)) * np.cos(cols / (120 - 30 * k))
        noise = rng.normal(0, 12, (size, size))
        bands.append(np.clip(128 + 90 * field + noise, 0, 255).astype(np.uint8))
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=size,
        height=size,
        count=3,
        dtype="uint8",
        crs="EPSG:32618",
        transform=Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0),
        tiled=True,
        blockxsize=256,
        blockysize=256,
        compress="deflate",
    ) as dst:
        dst.write(np.stack(bands))
    return path


def timed(model: nn.Module, src: Path, dst: Path, tile: int, precision: str, **kw: Any) -> float:
    start = time.perf_counter()
    predict_raster(
        model,
        src,
        dst,
        tile=tile,
        overlap=OVERLAP,
        batch_size=BATCH,
        precision=precision,  # type: ignore[arg-type]
        overwrite=True,
        **kw,
    )
    return time.perf_counter() - start


def near_tie_share(model: nn.Module, src: Path, tile: int) -> float:
    """Share of pixels of the scene's first tile whose fp32 top-2 logit margin is below 0.05."""
    with rasterio.open(src) as dataset:
        x = torch.from_numpy(dataset.read(window=((0, tile), (0, tile))).astype(np.float32))
    with torch.inference_mode():
        logits = model(x[None])[0]  # (K, tile, tile)
    top = logits.topk(2, dim=0).values
    return float(((top[0] - top[1]) < 0.05).float().mean())


def profile(model: nn.Module, tile: int) -> None:
    """Print the top operators of one batch in float32 and in bf16 autocast."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    x = torch.rand(BATCH, 3, tile, tile) * 255
    for precision in ("fp32", "bf16"):
        with torch.inference_mode(), torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            if precision == "bf16":
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    model(x)
            else:
                model(x)
        print(f"\n--- torch.profiler, one batch of {BATCH} x {tile}^2, {precision} ---")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=sorted(MODELS))
    parser.add_argument("--profile", action="store_true", help="always print the profile")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also time torch.compile(model) (inductor) in fp32 and bf16 autocast",
    )
    parser.add_argument(
        "--no-bf16-weights",
        dest="bf16_weights",
        action="store_false",
        help="skip the bf16-weights variant",
    )
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"mkldnn bf16: {torch.ops.mkldnn._is_mkldnn_bf16_supported()}, scene {args.size}^2"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        scene = write_scene(folder / "scene.tif", args.size)
        warm = write_scene(folder / "warm.tif", 512)
        for name in args.models:
            build, tile = MODELS[name]
            model = build()
            extra: dict[str, Any] = {}
            if name == "resnet50":  # convolutional: channels-last helps oneDNN
                model = model.to(memory_format=torch.channels_last)
                extra["channels_last"] = True
            variants: dict[str, tuple[nn.Module, str]] = {
                "fp32": (model, "fp32"),
                "bf16": (model, "bf16"),
            }
            if args.bf16_weights:
                variants["bf16 weights"] = (Bf16Weights(build()).eval(), "fp32")
                if name == "resnet50":
                    variants["bf16 weights"][0].to(memory_format=torch.channels_last)
            if args.compile:  # one compiled module per precision (autocast is traced in)
                for precision in ("fp32", "bf16"):
                    compiled = torch.compile(model, dynamic=False)
                    variants[f"{precision} compiled"] = (compiled, precision)  # type: ignore[assignment]
            for variant, (net, precision) in variants.items():
                start = time.perf_counter()
                timed(net, warm, folder / "warm_out.tif", tile, precision, **extra)
                if "compiled" in variant:  # compile every batch shape of the timed scene
                    timed(net, scene, folder / "warm_out.tif", tile, precision, **extra)
                    spent = time.perf_counter() - start
                    print(f"  {variant}: compilation + warm-up passes {spent:.0f} s")
            best = dict.fromkeys(variants, float("inf"))
            for _ in range(args.repeats):
                for variant, (net, precision) in variants.items():
                    out = folder / f"{name}_{variant.replace(' ', '_')}.tif"
                    seconds = timed(net, scene, out, tile, precision, **extra)
                    best[variant] = min(best[variant], seconds)
            tiles = len(tile_offsets(args.size, tile, tile - OVERLAP, "shift")) ** 2
            with rasterio.open(folder / f"{name}_fp32.tif") as a:
                fp32 = a.read(1)
            print(
                f"{name}: {tiles} tiles of {tile}^2, near-tie px in fp32 (top-2 margin < 0.05): "
                f"{100 * near_tie_share(model, scene, tile):.1f}%"
            )
            mpix = args.size**2 / 1e6
            for variant in variants:
                with rasterio.open(folder / f"{name}_{variant.replace(' ', '_')}.tif") as b:
                    other = b.read(1)
                valid = (fp32 != 255) & (other != 255)
                agreement = float((fp32[valid] == other[valid]).mean())
                speedup = best["fp32"] / best[variant]
                print(
                    f"  {variant:<13} {best[variant]:7.1f} s  {1000 * best[variant] / tiles:7.0f} "
                    f"ms/tile  {mpix / best[variant]:.3f} Mpx/s  speed-up {speedup:.2f}x  "
                    f"agreement {100 * agreement:.2f}% of {int(valid.sum())} valid px"
                )
            speedup = best["fp32"] / best["bf16"]
            with rasterio.open(folder / f"{name}_bf16.tif") as b:
                bf16 = b.read(1)
            valid = (fp32 != 255) & (bf16 != 255)
            agreement = float((fp32[valid] == bf16[valid]).mean())
            if args.profile or speedup < 1.5 or agreement < 0.99:
                profile(model, tile)


if __name__ == "__main__":
    main()
