"""Quickstart: a registry backbone on a real, embedded GeoTIFF.

What it shows: pick a backbone by name, adapt it to the raster's bands, run
it on a Landsat 7 window that ships with geofm, and print the shapes of the
multi-scale feature maps and of the pooled embedding.

Run (about 10 s on a laptop CPU)::

    python examples/quickstart.py
    python examples/quickstart.py --backbone dinov2_vit_small_patch14 --size 112

Real data: pass any GeoTIFF with ``--raster path/to/scene.tif``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import geofm
from geofm.cli import sample_raster

logger = logging.getLogger("quickstart")


@dataclass(frozen=True)
class Config:
    """Quickstart settings (every field is also a command-line flag)."""

    backbone: str = "resnet50"
    raster: str = ""
    size: int = 224
    seed: int = 0


def read_chip(path: Path, size: int) -> tuple[torch.Tensor, str]:
    import rasterio

    with rasterio.open(path) as src:
        data = src.read(window=((0, size), (0, size)), masked=True)
        crs = str(src.crs)
    if data.shape[1] < size or data.shape[2] < size:
        raise ValueError(f"{path} is smaller than {size}x{size}; pass a smaller --size.")
    # Scale to [0, 1] per band from the valid pixels, then ImageNet-style standardise.
    arr = data.filled(0).astype(np.float32)
    lo = data.min(axis=(1, 2)).filled(0)[:, None, None]
    hi = data.max(axis=(1, 2)).filled(1)[:, None, None]
    arr = ((arr - lo) / np.maximum(hi - lo, 1e-6)).astype(np.float32)
    x = torch.from_numpy(arr)[None]  # (1, C, H, W)
    return (x - x.mean(dim=(2, 3), keepdim=True)) / x.std(dim=(2, 3), keepdim=True), crs


def main(cfg: Config) -> dict[str, object]:
    torch.manual_seed(cfg.seed)
    path = Path(cfg.raster) if cfg.raster else sample_raster()
    x, crs = read_chip(path, cfg.size)
    model = geofm.create_backbone(cfg.backbone, in_chans=x.shape[1]).eval()
    with torch.no_grad():
        maps = model(x)
        emb = model.embed(x)
    result = {
        "raster": str(path),
        "crs": crs,
        "input": list(x.shape),
        "backbone": cfg.backbone,
        "features": [list(m.shape) for m in maps],
        "feature_info": [dataclasses.asdict(f) for f in model.feature_info],
        "embedding": list(emb.shape),
    }
    return result


def parse_args() -> Config:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for field in dataclasses.fields(Config):
        parser.add_argument(
            f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default
        )
    return Config(**vars(parser.parse_args()))


def report(result: dict[str, object]) -> str:
    """Human-readable summary of :func:`main`'s result."""
    lines = [f"raster   {result['raster']} ({result['crs']}), input {tuple(result['input'])}"]
    lines.append(f"backbone {result['backbone']}")
    for shape, info in zip(result["features"], result["feature_info"], strict=True):  # type: ignore[call-overload]
        lines.append(f"  {info['module']:<12} {tuple(shape)}  stride {info['reduction']}")
    lines.append(f"  {'embedding':<12} {tuple(result['embedding'])}")
    return "\n".join(lines)


if __name__ == "__main__":
    out = main(parse_args())
    print(report(out))
    print(json.dumps(out))
