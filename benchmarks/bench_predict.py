"""Benchmark geofm.geo.predict_raster: end-to-end overhead and memory flatness.

Two targets (issue 8):

1. Overhead: ``predict_raster`` end to end (windowed reads with prefetch, batched
   forward, cosine blending, argmax, compressed GeoTIFF writes; ``output="class"``)
   divided by the model's own forward on the same tiles (same count, same
   batches, tensors already in memory) must be <= 1.15, on a 4096 x 4096 3-band
   uint8 raster, tile 256, overlap 32, with a small segmentation model (three
   conv layers). Runs are interleaved and the best of ``--repeats`` is kept;
   wall-clock and CPU time (all threads of the process) are both reported,
   since wall time on a shared machine is dominated by other processes.
2. Memory: peak RSS of a process predicting an 8192 x 8192 raster must be
   <= 1.2 x that of one predicting a 2048 x 2048 raster. Each size runs in its
   own subprocess, which reports ``ru_maxrss`` and the peak reached during
   ``predict_raster`` alone (Linux ``VmHWM``, reset just before).

Run (about 6 minutes on a loaded 2-core VM; ``--quick``: about 1 minute, smaller sizes):

    python benchmarks/bench_predict.py
    python benchmarks/bench_predict.py --quick
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.transform import Affine
from torch import nn

from geofm.geo import predict_raster
from geofm.geo._window import tile_offsets

TILE, OVERLAP, BATCH, CLASSES = 256, 32, 8, 4


def small_segmentation_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, CLASSES, 1),
    ).eval()


def write_scene(path: Path, size: int) -> Path:
    """A 3-band uint8 UTM scene, tiled and deflate-compressed, written strip by strip."""
    rng = np.random.default_rng(0)
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 3,
        "dtype": "uint8",
        "crs": "EPSG:32618",
        "transform": Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0),
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
    }
    with rasterio.open(path, "w", **profile) as dst:
        for row in range(0, size, 256):
            rows = min(256, size - row)
            strip = rng.integers(0, 255, (3, rows, size), dtype=np.uint8)
            dst.write(strip, window=rasterio.windows.Window(0, row, size, rows))
    return path


def forward_only(model: nn.Module, size: int) -> tuple[float, float]:
    """Wall and CPU seconds of the model alone on the tiles predict_raster runs (same batches)."""
    offsets = tile_offsets(size, TILE, TILE - OVERLAP, "shift")
    per_band = [min(BATCH, len(offsets) - i) for i in range(0, len(offsets), BATCH)]
    inputs = {n: torch.rand(n, 3, TILE, TILE) for n in set(per_band)}
    start, cpu = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        for _ in offsets:  # one row band of tiles per row offset
            for n in per_band:
                model(inputs[n])
    return time.perf_counter() - start, time.process_time() - cpu


def end_to_end(model: nn.Module, src: Path, dst: Path) -> tuple[float, float]:
    """Wall and CPU seconds (all threads of the process) of predict_raster."""
    start, cpu = time.perf_counter(), time.process_time()
    predict_raster(
        model,
        src,
        dst,
        tile=TILE,
        overlap=OVERLAP,
        batch_size=BATCH,
        output="class",
        overwrite=True,
    )
    return time.perf_counter() - start, time.process_time() - cpu


def _proc_status_mib(key: str) -> float:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"{key}:\s+(\d+)", text).group(1)) / 1024  # type: ignore[union-attr]


def child_rss(src: Path, dst: Path) -> None:
    """Subprocess entry: predict once; print peak RSS, RSS before, and peak during predict (MiB).

    ``ru_maxrss`` is the issue's metric, but it also holds the import-time peak of
    torch; the Linux peak counter (``VmHWM``) is reset just before predicting so the
    third number is the peak reached during ``predict_raster`` alone.
    """
    model = small_segmentation_model()
    with torch.inference_mode():
        model(torch.zeros(1, 3, TILE, TILE))  # warm up, so both sizes start alike
    before = _proc_status_mib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM (Linux >= 4.0)
    end_to_end(model, src, dst)
    during = _proc_status_mib("VmHWM")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{peak:.1f} {before:.1f} {during:.1f}")


def measure_rss(src: Path, dst: Path) -> tuple[float, float, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child-rss", str(src), str(dst)],
        capture_output=True,
        text=True,
        check=True,
    )
    peak, before, during = (float(v) for v in out.stdout.split())
    return peak, before, during


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (smoke run)")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats (min is kept)")
    parser.add_argument("--child-rss", nargs=2, metavar=("SRC", "DST"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_rss:
        child_rss(Path(args.child_rss[0]), Path(args.child_rss[1]))
        return

    speed_size = 1024 if args.quick else 4096
    small_size, large_size = (512, 2048) if args.quick else (2048, 8192)
    print(
        f"torch {torch.__version__}, rasterio {rasterio.__version__}, "
        f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = small_segmentation_model()

        src = write_scene(folder / f"scene{speed_size}.tif", speed_size)
        forward_only(model, 512)  # warm-up
        forward_runs, e2e_runs = [], []
        for _ in range(args.repeats):  # interleaved, so slow phases of a shared machine hit both
            forward_runs.append(forward_only(model, speed_size))
            e2e_runs.append(end_to_end(model, src, folder / "pred.tif"))
        print(
            f"\n[overhead] {speed_size}x{speed_size}x3 uint8, tile {TILE}, overlap {OVERLAP}, "
            f"batch {BATCH}, {CLASSES}-class 3-conv model; best of {args.repeats}"
        )
        for label, index in (("wall", 0), ("CPU", 1)):
            fwd = min(r[index] for r in forward_runs)
            e2e = min(r[index] for r in e2e_runs)
            ratio = e2e / fwd
            verdict = "PASS" if ratio <= 1.15 else "FAIL"
            print(
                f"  {label:4s}: forward only {fwd:7.2f} s, predict_raster {e2e:7.2f} s, "
                f"ratio {ratio:.3f} (target <= 1.15: {verdict})"
            )
        print(
            f"  runs (wall, CPU) forward: {[(round(w, 2), round(c, 2)) for w, c in forward_runs]}"
        )
        print(f"  runs (wall, CPU) predict: {[(round(w, 2), round(c, 2)) for w, c in e2e_runs]}")

        rss = {}
        for size in (small_size, large_size):
            scene = write_scene(folder / f"rss{size}.tif", size)
            rss[size] = measure_rss(scene, folder / f"rss_pred{size}.tif")
            scene.unlink()
        print("\n[memory] one subprocess per size, MiB")
        print("  size         ru_maxrss  RSS before predict  peak during predict  (increase)")
        for size, (peak, before, during) in rss.items():
            print(
                f"  {size:5d}x{size:<5d} {peak:9.1f} {before:19.1f} {during:20.1f}"
                f"  (+{during - before:.1f})"
            )
        ratio_rss = rss[large_size][0] / rss[small_size][0]
        ratio_during = rss[large_size][2] / rss[small_size][2]
        for label, ratio in (("ru_maxrss", ratio_rss), ("peak during predict", ratio_during)):
            verdict = "PASS" if ratio <= 1.2 else "FAIL"
            print(f"  {label} {large_size} / {small_size}: {ratio:.3f} (target <= 1.2: {verdict})")


if __name__ == "__main__":
    main()
