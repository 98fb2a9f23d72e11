"""Benchmark geofm's safe, verified weight loading against the plain PyTorch / timm way (CPU).

Cases (same weights, geofm and the peer alternating per repeat so background load
hits both alike; median over repeats, ratio = geofm / peer time, lower is better):

- ``load``: ``geofm.hub.load_weights(model, "w.safetensors", sha256=<full>)``
  (hash check + safetensors read + adapt hook + strict load with report) vs
  ``model.load_state_dict(torch.load("w.pth", weights_only=True))`` (what
  torchgeo / SpectralEarth do, without hash or report). Target: within ~1.5x.
- ``load_nohash``: the same geofm call without a known hash (the cost of the
  check is the difference). Target: ~1x.
- ``roundtrip``: ``save_pretrained`` + ``from_pretrained`` (config, safetensors,
  model card, rebuild through the registry, strict load) vs timm's
  ``save_for_hf`` + ``timm.create_model(pretrained_cfg_overlay=file)``.

Models: timm ViT-B/16 (86 M parameters) and ResNet-50 (25.6 M) behind geofm's
backbones. Threads default to 1 (shared 2-core machine).

Run:
    python benchmarks/bench_hub.py
    python benchmarks/bench_hub.py --repeats 7 --models resnet50
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import timm
import torch
from safetensors.torch import save_file

import geofm
from geofm.hub import from_pretrained, load_weights, save_pretrained
from geofm.weights import file_sha256

_MODELS = {
    "vit_base": ("vit_base_patch16", "vit_base_patch16_224"),
    "resnet50": ("resnet50", "resnet50"),
}


def _time(fn: Callable[[], object], times: list[float]) -> None:
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)


def _pair(
    name: str, geofm_fn: Callable[[], object], peer_fn: Callable[[], object], repeats: int
) -> None:
    ours: list[float] = []
    peer: list[float] = []
    geofm_fn(), peer_fn()  # warm-up (page cache, allocator)
    for _ in range(repeats):
        _time(geofm_fn, ours)
        _time(peer_fn, peer)
    g, p = statistics.median(ours), statistics.median(peer)
    print(f"{name:<28} geofm {g * 1e3:8.1f} ms   peer {p * 1e3:8.1f} ms   ratio {g / p:5.2f}x")


def _bench_model(key: str, root: Path, repeats: int) -> None:
    name, timm_name = _MODELS[key]
    src = timm.create_model(timm_name, num_classes=0).eval()
    state = {k: v.contiguous() for k, v in src.state_dict().items()}
    st, pt = root / f"{key}.safetensors", root / f"{key}.pth"
    save_file(state, str(st))
    torch.save(state, pt)
    digest = file_sha256(st)
    model = geofm.create_backbone(name)
    tm = timm.create_model(timm_name, num_classes=0)
    folder, hf_dir = root / f"{key}_geofm", root / f"{key}_timm"
    print(f"--- {key}: {sum(v.numel() for v in state.values()) / 1e6:.1f} M parameters")

    def peer_load() -> object:
        return tm.load_state_dict(torch.load(pt, weights_only=True))

    _pair(
        f"{key} load (+sha256)", lambda: load_weights(model, st, sha256=digest), peer_load, repeats
    )
    _pair(f"{key} load (no hash)", lambda: load_weights(model, st), peer_load, repeats)

    def ours() -> object:
        save_pretrained(model, folder)
        return from_pretrained(folder)

    def peer() -> object:
        timm.models.save_for_hf(tm, str(hf_dir), safe_serialization=True)
        return timm.create_model(
            timm_name,
            num_classes=0,
            pretrained=True,
            pretrained_cfg_overlay={"file": str(hf_dir / "model.safetensors")},
        )

    _pair(f"{key} save+rebuild", ours, peer, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", nargs="+", default=list(_MODELS), choices=list(_MODELS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        for key in args.models:
            _bench_model(key, Path(tmp), args.repeats)


if __name__ == "__main__":
    main()
