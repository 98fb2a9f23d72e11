"""Benchmark geofm.datasets.RasterChipDataset against torchgeo's RasterDataset + samplers.

Target (issue 19): training chips read from GeoTIFFs at >= 3x torchgeo's rate in
every setting, with no more memory per DataLoader worker. On the same files,
written by this script into a temporary folder (a 4-band uint16 ``--size`` x
``--size`` GeoTIFF, 256 px tiles, pixel-interleaved, ``--compress`` deflate by
default; a uint8 label raster on the same grid), 256 px chips with their masks, batches of 16:

- geofm ``RasterChipDataset(image, label, sampler="random", length=N)`` vs
  torchgeo ``RasterDataset & RasterDataset`` (an ``IntersectionDataset``) with
  ``RandomGeoSampler(size=256, length=N)``; geofm also without block alignment
  (``align_to_blocks=False``: uniform positions like torchgeo's, 4 blocks per chip);
- geofm ``sampler="grid"`` vs torchgeo ``GridGeoSampler(size=256, stride=256)``;
- each with 0 and 2 DataLoader workers, each library with its own collate
  function (geofm ``collate_chips``, torchgeo ``stack_samples``);
- "floor" (grid only): two bare rasterio reads per block-aligned grid window
  (float32 image, int64 mask, GDAL's block cache capped as geofm's) straight
  into one batch buffer (in shared memory in a worker) handed over without a
  copy, and nothing else, in the same DataLoader settings: the ceiling of any
  GDAL-based reader, so its ratio bounds what geofm can reach.

Each setting runs in its own subprocess (fresh caches, only its own library
imported, one torch intra-op thread as in DataLoader workers), after the files
are read once to warm the page cache. Throughput counts the samples after the
first batch (worker start-up excluded), as chips per wall-clock second and as
CPU milliseconds per chip (user + system time of the main process and its
workers over the same interval: the steadier number on a shared machine). Memory is
the peak RSS (Linux ``VmHWM``) of each process that reads chips (the main
process with 0 workers, else each worker), as the maximum over workers; RSS
includes the pages a forked worker shares with its parent.

torchgeo is a benchmark-only dependency; run this script with a Python that has
both (e.g. a separate venv: ``python -m venv venv-bench &&
venv-bench/bin/pip install torchgeo==0.8.1 -e .``).

Run (about 5 minutes at --size 4096 on a loaded 2-core VM):

    python benchmarks/bench_chips.py
    python benchmarks/bench_chips.py --size 4096 --samples 512
    python benchmarks/bench_chips.py --size 4096 --compress none  # no decompression floor
    python benchmarks/bench_chips.py --samplers grid --workers 0  # one setting
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

CHIP, BATCH = 256, 16


def _status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def write_files(folder: Path, size: int, compress: str) -> tuple[Path, Path]:
    """A 4-band uint16 image and a uint8 label raster, tiled 256 px, ``compress``, same grid."""
    import rasterio
    from rasterio.transform import Affine

    rng = np.random.default_rng(0)
    common = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "crs": "EPSG:32618",
        "transform": Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0),
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": None if compress == "none" else compress,
    }
    image, label = folder / "image.tif", folder / "label.tif"
    cols = np.arange(size, dtype=np.float32)
    with (
        rasterio.open(image, "w", count=4, dtype="uint16", **common) as img,
        rasterio.open(label, "w", count=1, dtype="uint8", **common) as lab,
    ):
        for row in range(0, size, 256):
            rows = np.arange(row, row + 256, dtype=np.float32)[:, None]
            field = np.sin(rows / 300.0) + np.cos(cols / 450.0)[None, :]  # (256, size), smooth
            noise = rng.integers(0, 400, (4, 256, size), dtype=np.uint16)
            bands = ((field + 2.0) * 900.0).astype(np.uint16)[None] + noise  # (4, 256, size)
            window = rasterio.windows.Window(0, row, size, 256)
            img.write(bands, window=window)
            lab.write(
                np.digitize(field, [-1.0, -0.3, 0.3, 1.0]).astype(np.uint8)[None], window=window
            )
    return image, label


class _Probe:
    """Wrap a dataset: each sample also carries its process's pid and peak RSS (KiB).

    Batched fetches go through ``__getitems__`` (the wrapped dataset's, where it
    has one), and the peak RSS is read once per batch, so the probe adds the same
    few microseconds per batch to every library.
    """

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: Any) -> dict[str, Any]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[Any]) -> list[dict[str, Any]]:
        batched = getattr(self.dataset, "__getitems__", None)
        samples = batched(indices) if batched else [self.dataset[i] for i in indices]
        pid, hwm = os.getpid(), _status_kb("VmHWM")
        return [{**sample, "pid": pid, "hwm_kb": hwm} for sample in samples]


def _geofm_loader(args: argparse.Namespace, sampler: str, workers: int, aligned: bool) -> Any:
    from torch.utils.data import DataLoader

    from geofm.datasets import RasterChipDataset, collate_chips

    folder = Path(args.dir)
    if sampler == "random":
        dataset = RasterChipDataset(
            folder / "image.tif",
            folder / "label.tif",
            size=CHIP,
            sampler="random",
            length=args.samples + BATCH,
            seed=0,
            align_to_blocks=aligned,
        )
    else:
        dataset = RasterChipDataset(folder / "image.tif", folder / "label.tif", size=CHIP)
    return DataLoader(
        _Probe(dataset),  # type: ignore[arg-type]
        batch_size=BATCH,
        num_workers=workers,
        collate_fn=collate_chips,
    )


class _Floor:
    """The least a reader can do per grid chip: two rasterio reads, nothing else.

    Reads the grid windows of ``RasterChipDataset(sampler="grid")`` (block-aligned)
    with one open handle per file and returns only what the other two return as
    pixels: the image as float32 and the mask as int64, with GDAL's block cache
    capped as geofm caps it. GDAL writes a batch's chips straight into one image
    and one mask buffer, allocated in shared memory in a DataLoader worker, and
    ``_zero_copy`` hands those buffers over as the batch: no per-chip
    allocation, no stacking copy, no copy into shared memory.
    Its rate is the ceiling for any GDAL-based reader in the same DataLoader
    setting (decoding and hand-over included); the ratio geofm can reach against
    torchgeo is at most this row's.
    """

    def __init__(self, folder: Path, size: int) -> None:
        self.folder = folder
        self.per_row = size // CHIP
        self.handles: Any = None

    def __len__(self) -> int:
        return self.per_row * self.per_row

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any]]:
        import rasterio
        import torch
        from torch.utils.data import get_worker_info

        if self.handles is None:
            # GDAL's block cache capped as geofm caps it (32 MiB), set once per process:
            # an uncapped cache grows with the file and faults in new memory for every
            # block it keeps.
            rasterio.env.set_gdal_config("GDAL_CACHEMAX", 32 << 20)
            self.handles = tuple(
                rasterio.open(self.folder / name) for name in ("image.tif", "label.tif")
            )
        image, label = self.handles
        n, in_worker = len(indices), get_worker_info() is not None

        def buffer(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
            if not in_worker:
                return torch.empty(shape, dtype=dtype)
            # New shared memory, allocated as default_collate allocates a batch in a
            # worker (share_memory_() would copy the empty buffer into it first).
            nbytes = int(np.prod(shape)) * torch.empty((), dtype=dtype).element_size()
            storage = torch.UntypedStorage._new_shared(nbytes)
            return torch.empty(0, dtype=dtype).set_(storage, 0, shape)

        images = buffer((n, image.count, CHIP, CHIP), torch.float32)
        masks = buffer((n, CHIP, CHIP), torch.int64)
        for k, index in enumerate(indices):
            row, col = divmod(index, self.per_row)
            window = rasterio.windows.Window(col * CHIP, row * CHIP, CHIP, CHIP)
            image.read(window=window, out=images[k].numpy())
            label.read(1, window=window, out=masks[k].numpy())
        return [{"image": images[k], "mask": masks[k]} for k in range(n)]


def _zero_copy(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The floor's batch: its buffers as they are (every sample's rows of one tensor)."""
    import torch
    from torch.utils.data import default_collate

    batch: dict[str, Any] = {}
    for key in samples[0]:
        first = samples[0][key]
        if isinstance(first, torch.Tensor):
            n, shape = len(samples), first.shape
            batch[key] = first.new_empty(0).set_(
                first.untyped_storage(), first.storage_offset(), (n, *shape)
            )
        else:
            batch[key] = default_collate([sample[key] for sample in samples])
    return batch


def _floor_loader(args: argparse.Namespace, workers: int) -> Any:
    from torch.utils.data import DataLoader

    folder = Path(args.dir)
    import rasterio

    with rasterio.open(folder / "image.tif") as src:
        size = src.width
    return DataLoader(
        _Probe(_Floor(folder, size)),  # type: ignore[arg-type]
        batch_size=BATCH,
        num_workers=workers,
        collate_fn=_zero_copy,
    )


def _torchgeo_loader(args: argparse.Namespace, sampler: str, workers: int) -> Any:
    import torch
    from torch.utils.data import DataLoader
    from torchgeo.datasets import (  # type: ignore[import-not-found,unused-ignore]
        RasterDataset,
        stack_samples,
    )
    from torchgeo.samplers import (  # type: ignore[import-not-found,unused-ignore]
        GridGeoSampler,
        RandomGeoSampler,
    )

    class Image(RasterDataset):  # type: ignore[misc]
        filename_glob = "image.tif"
        is_image = True

    class Label(RasterDataset):  # type: ignore[misc]
        filename_glob = "label.tif"
        is_image = False

    folder = Path(args.dir)
    dataset = Image(folder / "image.tif") & Label(folder / "label.tif")
    if sampler == "random":
        geo_sampler: Any = RandomGeoSampler(
            dataset,
            size=CHIP,
            length=args.samples + BATCH,
            generator=torch.Generator().manual_seed(0),
        )
    else:
        geo_sampler = GridGeoSampler(dataset, size=CHIP, stride=CHIP)
    return DataLoader(
        _Probe(dataset),  # type: ignore[arg-type]
        sampler=geo_sampler,
        batch_size=BATCH,
        num_workers=workers,
        collate_fn=stack_samples,
    )


def _cpu_seconds(pid: int | str) -> float:
    """User + system CPU seconds of a process so far (Linux ``/proc/<pid>/stat``)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One setting: iterate ``--samples`` chips (after a first batch), report rate and memory."""
    import torch

    # One intra-op thread, as DataLoader workers have: on a loaded machine torch's
    # OpenMP threads spin in torch.stack (collation) and slow both libraries alike.
    torch.set_num_threads(1)
    impl, sampler, workers = args.child, args.sampler, args.workers
    if impl == "torchgeo":
        loader = _torchgeo_loader(args, sampler, workers)
    elif impl == "floor":
        loader = _floor_loader(args, workers)
    else:
        loader = _geofm_loader(args, sampler, workers, aligned=impl == "geofm")
    peaks: dict[int, int] = {}
    seen, start, shape = 0, 0.0, None
    cpu0: dict[int | str, float] = {}
    cpu1: dict[int | str, float] = {}
    iterator = iter(loader)
    for batch in iterator:
        n = len(batch["image"])
        for pid, hwm in zip(batch["pid"], batch["hwm_kb"], strict=True):
            peaks[int(pid)] = max(peaks.get(int(pid), 0), int(hwm))
        if shape is None:  # the first batch pays the start-up; time from here
            pids = ["self", *(w.pid for w in getattr(iterator, "_workers", []))]
            start, shape = time.perf_counter(), tuple(batch["image"].shape[1:])
            cpu0 = {p: _cpu_seconds(p) for p in pids}
            assert tuple(batch["mask"].shape[1:]) == (CHIP, CHIP)
            continue
        seen += n
        for p in cpu0:  # read every batch: workers exit once the loader is exhausted
            cpu1[p] = _cpu_seconds(p)
        if seen >= args.samples:
            break
    elapsed = time.perf_counter() - start
    cpu = sum(cpu1[p] - cpu0[p] for p in cpu1)
    return {
        "impl": impl,
        "sampler": sampler,
        "workers": workers,
        "samples": seen,
        "seconds": elapsed,
        "rate": seen / elapsed,
        "cpu_ms": 1000 * cpu / seen,
        "peak_rss_mib": max(peaks.values()) / 1024,
        "image_shape": shape,
    }


def run_setting(args: argparse.Namespace, impl: str, sampler: str, workers: int) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        impl,
        "--sampler",
        sampler,
        "--workers",
        str(workers),
        "--dir",
        str(args.dir),
        "--samples",
        str(args.samples),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=8192, help="raster edge in pixels")
    parser.add_argument("--samples", type=int, default=512, help="chips timed per setting")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument(
        "--samplers", nargs="+", choices=["random", "grid"], default=["random", "grid"]
    )
    parser.add_argument("--dir", type=str, default=None, help="reuse/keep files in this folder")
    parser.add_argument(
        "--compress",
        default="deflate",
        choices=["deflate", "lzw", "zstd", "none"],
        help="compression of the written files",
    )
    parser.add_argument("--child", choices=["geofm", "geofm-unaligned", "floor", "torchgeo"])
    parser.add_argument("--sampler", choices=["random", "grid"], default="random")
    args = parser.parse_args()
    if args.child:
        args.workers = args.workers[0]
        print(json.dumps(child(args)))
        return

    temp = None
    if args.dir is None:
        temp = tempfile.TemporaryDirectory()
        args.dir = temp.name
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "image.tif").exists():
        t0 = time.perf_counter()
        write_files(folder, args.size, args.compress)
        print(f"wrote {args.size} x {args.size} files in {time.perf_counter() - t0:.1f} s")
    for name in ("image.tif", "label.tif"):  # warm the page cache for every setting alike
        with open(folder / name, "rb") as fh:
            while fh.read(1 << 24):
                pass
    import rasterio
    import torchgeo  # type: ignore[import-not-found,unused-ignore]

    with rasterio.open(folder / "image.tif") as src:
        mib = os.path.getsize(folder / "image.tif") / 2**20
        print(
            f"image: {src.count} x {src.height} x {src.width} {src.dtypes[0]}, blocks "
            f"{src.block_shapes[0]}, {src.compression}, {mib:.0f} MiB on disk"
        )
    print(
        f"torchgeo {torchgeo.__version__}, rasterio {rasterio.__version__}, "
        f"{os.cpu_count()} CPUs, {args.samples} chips of {CHIP} px per setting, batch {BATCH}"
    )

    print(
        f"{'sampler':<8}{'workers':>8}{'impl':>17}{'chips/s':>9}{'CPU ms/chip':>13}"
        f"{'peak RSS/worker':>17}"
    )
    rows = []
    for sampler in args.samplers:
        impls = (
            ["geofm", "geofm-unaligned", "torchgeo"]
            if sampler == "random"
            else ["geofm", "floor", "torchgeo"]
        )
        for workers in args.workers:
            results = {impl: run_setting(args, impl, sampler, workers) for impl in impls}
            for impl, res in results.items():
                print(
                    f"{sampler:<8}{workers:>8}{impl:>17}{res['rate']:>9.1f}{res['cpu_ms']:>13.2f}"
                    f"{res['peak_rss_mib']:>13.0f} MiB"
                )
            tg = results["torchgeo"]
            for impl in impls[:-1]:
                res = results[impl]
                rows.append(
                    (
                        sampler,
                        workers,
                        impl,
                        res["rate"] / tg["rate"],
                        tg["cpu_ms"] / res["cpu_ms"],
                        res["peak_rss_mib"] / tg["peak_rss_mib"],
                    )
                )
    print("\nratios vs torchgeo: chips/s (wall), chips per CPU second, peak RSS per worker")
    for sampler, workers, impl, speed, cpu, mem in rows:
        print(
            f"  {sampler:<7} workers={workers}  {impl:<16} {speed:5.2f}x  {cpu:5.2f}x  {mem:4.2f}x"
        )
    if temp is not None:
        temp.cleanup()


if __name__ == "__main__":
    main()
