"""Benchmark geofm's spectral tokenizers and fusion modules against their reference forms (CPU).

Cases (forward + backward, identical inputs and weights, median of repeats;
variants alternate inside each repeat so background load hits them alike):

- ``caf``: :class:`geofm.fusion.CrossAttentionFusion` (``scaled_dot_product_attention``)
  against the Fusion-LoRA formulation it re-implements (explicit ``Q K^T``,
  softmax, ``@ V`` per head), at the source's size: C=1024, 8 heads, 24x24
  visual and spectral tokens, batch 4. Also reports the max output difference.
- ``wavelength``: :class:`geofm.spectral.WavelengthPatchEmbed` (kernels generated
  from 12 Sentinel-2 wavelengths every call) against timm's fixed ``PatchEmbed``
  (one Conv2d) at ViT-S/16 size: D=384, 224 px, batch 8 and 32. The ratio is the
  price of accepting any band set; kernel generation does not grow with the batch.
- ``adapter``: :class:`geofm.spectral.SpectralAdapter` (Conv3d along bands, as
  SpectralEarth) against the same maths as 2-D convolutions over a
  ``(N, 1, C, H*W)`` view, 202 bands, 64x64 px, batch 4 (is Conv3d the slow path?).

Run:
    python benchmarks/bench_spectral_fusion.py                  # all cases, 5 repeats
    python benchmarks/bench_spectral_fusion.py --cases caf --repeats 3
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from timm.layers import PatchEmbed
from torch import Tensor

from geofm.fusion import CrossAttentionFusion
from geofm.sensors import get_sensor
from geofm.spectral import SpectralAdapter, WavelengthPatchEmbed


def _fwd_bwd(fn: Callable[[], Tensor]) -> float:
    start = time.perf_counter()
    fn().square().mean().backward()
    return time.perf_counter() - start


def _compare(
    label: str, ours: Callable[[], Tensor], peer: Callable[[], Tensor], repeats: int
) -> None:
    _fwd_bwd(ours), _fwd_bwd(peer)  # warm-up (allocator, oneDNN primitives)
    ours_t, peer_t = [], []
    for _ in range(repeats):
        ours_t.append(_fwd_bwd(ours))
        peer_t.append(_fwd_bwd(peer))
    mo, mp = statistics.median(ours_t), statistics.median(peer_t)
    print(
        f"{label:<48} geofm {mo * 1e3:8.1f} ms   reference {mp * 1e3:8.1f} ms   "
        f"geofm/reference {mo / mp:5.2f}"
    )


def _source_caf(caf: CrossAttentionFusion, visual: Tensor, spectral: Tensor) -> Tensor:
    """Fusion-LoRA's CAF formulation: explicit scores, softmax and weighted sum."""
    n, c, h, w = visual.shape
    q_in = caf.norm1(visual.flatten(2).transpose(1, 2))  # (N, L, C)
    kv_in = caf.norm1(spectral.flatten(2).transpose(1, 2))  # (N, L, C)
    heads, d = caf.num_heads, caf.head_dim
    q = caf.q_proj(q_in).view(n, -1, heads, d).transpose(1, 2)  # (N, h, L, d)
    k = caf.k_proj(kv_in).view(n, -1, heads, d).transpose(1, 2)  # (N, h, L, d)
    v = caf.v_proj(kv_in).view(n, -1, heads, d).transpose(1, 2)  # (N, h, L, d)
    attn = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d), dim=-1)  # (N, h, L, L)
    out = (attn @ v).transpose(1, 2).reshape(n, h * w, c)  # (N, L, C)
    out = q_in + caf.out_proj(out)
    out = out + caf.ffn(caf.norm2(out))
    return out.transpose(1, 2).reshape(n, c, h, w)  # (N, C, H, W)


def bench_caf(repeats: int) -> None:
    torch.manual_seed(0)
    caf = CrossAttentionFusion(embed_dim=1024, num_heads=8)
    visual = torch.randn(4, 1024, 24, 24, requires_grad=True)
    spectral = torch.randn(4, 1024, 24, 24, requires_grad=True)
    with torch.no_grad():
        diff = (caf(visual, spectral) - _source_caf(caf, visual, spectral)).abs().max().item()
    print(f"caf: max |geofm - reference| = {diff:.2e}")
    _compare(
        "CAF C=1024 h=8 24x24 tokens N=4 (fwd+bwd)",
        lambda: caf(visual, spectral),
        lambda: _source_caf(caf, visual, spectral),
        repeats,
    )


def bench_wavelength(repeats: int) -> None:
    torch.manual_seed(0)
    waves = list(get_sensor("sentinel2_l2a").wavelengths)
    ours = WavelengthPatchEmbed(embed_dim=384, patch_size=16, wavelengths=waves)
    fixed = PatchEmbed(img_size=224, patch_size=16, in_chans=12, embed_dim=384, flatten=False)
    for batch in (8, 32):
        x = torch.randn(batch, 12, 224, 224)
        _compare(
            f"WavelengthPatchEmbed vs timm PatchEmbed, N={batch}",
            lambda x=x: ours(x),
            lambda x=x: fixed(x),
            repeats,
        )


def bench_adapter(repeats: int) -> None:
    torch.manual_seed(0)
    adapter = SpectralAdapter()
    x = torch.randn(4, 202, 64, 64)

    def as_conv2d() -> Tensor:
        n, c, h, w = x.shape
        out = x.reshape(n, 1, c, h * w)  # (N, 1, C, H*W)
        for i in (0, 3, 6):
            conv, bn = adapter[i], adapter[i + 1]
            assert isinstance(conv, torch.nn.Conv3d)
            out = F.conv2d(
                out,
                conv.weight.flatten(3),  # (C_out, C_in, k, 1)
                conv.bias,
                stride=(conv.stride[0], 1),
                padding=(conv.padding[0], 0),
            )
            out = F.relu(bn(out.unsqueeze(-1)).squeeze(-1))  # BN3d on a 5-D view
        return out.mean(2).reshape(n, 128, h, w)  # (N, 128, H, W)

    _compare(
        "SpectralAdapter Conv3d vs Conv2d view, 202 bands", lambda: adapter(x), as_conv2d, repeats
    )


CASES = {"caf": bench_caf, "wavelength": bench_wavelength, "adapter": bench_adapter}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(CASES))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for case in args.cases:
        CASES[case](args.repeats)


if __name__ == "__main__":
    main()
