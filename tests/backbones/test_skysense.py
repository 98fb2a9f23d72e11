"""SkySense-O visual encoder: mmcls parity (independent reference), layout, loading, errors.

mmpretrain / mmcls need mmcv's compiled ops, so the reference here is written
from the mmcls formulas (WindowMSAV2, ShiftWindowMSA, PatchMerging with
nn.Unfold, SkySense-O's SwinBlockV2 and keep-resolution stage), token layout
``(B, L, C)`` as mmcls uses it. The window attention is also compared with
timm's SwinV2 ``WindowAttention`` (same parameter names, same math).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, TypeVar

import pytest
import torch
import torch.nn.functional as F
from timm.models.swin_transformer_v2 import WindowAttention as TimmWindowAttention
from torch import nn

import geofm
from geofm.backbones.skysense import (
    SkySenseOVisualEncoder,
    _PatchMerging,
    _ShiftWindowAttention,
    _SwinBlockV2,
    _WindowAttentionV2,
)
from geofm.errors import ShapeError, WeightsError
from geofm.weights.load import load_weights

StateDict = dict[str, torch.Tensor]
M = TypeVar("M", bound=nn.Module)
TINY: dict[str, Any] = {
    "embed_dim": 16,
    "depths": (1, 2, 2, 2),
    "num_heads": (2, 2, 4, 8),
    "window_sizes": (4, 4, 2, 4),
    "pretrained_window_sizes": (0, 0, 0, 3),
    "extra_norm_every": 2,
    "drop_path_rate": 0.0,
}


def _randomize(module: M, seed: int = 0) -> M:
    """Random values everywhere (LayerNorm affine, biases, logit scale included)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return module.eval()


# --- reference written from the mmcls formulas ---------------------------------------------
def ref_coords_table(window: int, pretrained: int, norm_window: int) -> torch.Tensor:
    """mmcls relative_coords_table, element by element: (2w-1)^2 rows of (dy, dx)."""
    denom = (pretrained if pretrained > 0 else norm_window) - 1
    rows = []
    for dy in range(-(window - 1), window):
        for dx in range(-(window - 1), window):
            pair = []
            for t in (dy / denom * 8, dx / denom * 8):
                pair.append(math.copysign(math.log2(abs(t) + 1.0) / math.log2(8), t) if t else 0.0)
            rows.append(pair)
    return torch.tensor(rows)


def ref_window_msa(
    x: torch.Tensor,
    p: StateDict,
    heads: int,
    window: int,
    pretrained: int,
    mask: torch.Tensor | None,
    norm_window: int | None = None,
) -> torch.Tensor:
    """mmcls WindowMSAV2.forward with keys ``qkv.weight``, ``q_bias``, ... from ``p``."""
    b, n, c = x.shape
    bias = torch.cat([p["q_bias"], torch.zeros_like(p["v_bias"]), p["v_bias"]])
    qkv = F.linear(x, p["qkv.weight"], bias).reshape(b, n, 3, heads, c // heads)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)
    attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
    attn = attn * torch.clamp(p["logit_scale"], max=math.log(100.0)).exp()
    table = ref_coords_table(window, pretrained, norm_window or window)
    hidden = F.relu(F.linear(table, p["cpb_mlp.0.weight"], p["cpb_mlp.0.bias"]))
    table_bias = F.linear(hidden, p["cpb_mlp.2.weight"])  # ((2w-1)^2, heads)
    pos = [(i, j) for i in range(window) for j in range(window)]
    rel = torch.empty(heads, n, n)
    for a, (ya, xa) in enumerate(pos):
        for bb, (yb, xb) in enumerate(pos):
            rel[:, a, bb] = table_bias[
                (ya - yb + window - 1) * (2 * window - 1) + xa - xb + window - 1
            ]
    attn = attn + 16 * torch.sigmoid(rel)
    if mask is not None:
        nw = mask.shape[0]
        attn = (attn.view(b // nw, nw, heads, n, n) + mask[None, :, None]).view(-1, heads, n, n)
    out = (attn.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c)
    return F.linear(out, p["proj.weight"], p["proj.bias"])


def ref_shift_window_msa(
    x: torch.Tensor,
    hw: tuple[int, int],
    p: StateDict,
    heads: int,
    window: int,
    shift: int,
    pretrained: int,
) -> torch.Tensor:
    """mmcls ShiftWindowMSA.forward (pad_small_map=False; maps >= window)."""
    b, _, c = x.shape
    h, w = hw
    assert min(h, w) >= window
    if min(h, w) == window:
        shift = 0
    q = F.pad(
        x.view(b, h, w, c),
        (0, 0, 0, (window - w % window) % window, 0, (window - h % window) % window),
    )
    hp, wp = q.shape[1:3]
    mask = None
    if shift:
        q = torch.roll(q, (-shift, -shift), (1, 2))
        img = torch.zeros(1, hp, wp, 1)
        cnt = 0
        for hs in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
            for ws in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
                img[:, hs, ws, :] = cnt
                cnt += 1
        mw = img.view(1, hp // window, window, wp // window, window, 1).permute(0, 1, 3, 2, 4, 5)
        mw = mw.reshape(-1, window * window)
        mask = mw.unsqueeze(1) - mw.unsqueeze(2)
        mask = mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)
    win = q.view(b, hp // window, window, wp // window, window, c).permute(0, 1, 3, 2, 4, 5)
    out = ref_window_msa(win.reshape(-1, window * window, c), p, heads, window, pretrained, mask)
    out = out.view(b, hp // window, wp // window, window, window, c).permute(0, 1, 3, 2, 4, 5)
    out = out.reshape(b, hp, wp, c)
    if shift:
        out = torch.roll(out, (shift, shift), (1, 2))
    return out[:, :h, :w].reshape(b, h * w, c)


def _sub(sd: StateDict, prefix: str) -> StateDict:
    return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}


def ref_block(
    x: torch.Tensor,
    hw: tuple[int, int],
    p: StateDict,
    heads: int,
    window: int,
    shift: int,
    pretrained: int,
) -> torch.Tensor:
    """SkySense-O SwinBlockV2._inner_forward (eval: drop-path is the identity)."""
    c = x.shape[-1]

    def ln(t: torch.Tensor, name: str) -> torch.Tensor:
        return F.layer_norm(t, (c,), p[f"{name}.weight"], p[f"{name}.bias"])

    y = ref_shift_window_msa(x, hw, _sub(p, "attn.w_msa."), heads, window, shift, pretrained)
    x = ln(y, "norm1") + x
    y = F.linear(F.gelu(F.linear(x, p["ffn.layers.0.0.weight"], p["ffn.layers.0.0.bias"])),
                 p["ffn.layers.1.weight"], p["ffn.layers.1.bias"])  # fmt: skip
    x = ln(y, "norm2") + x
    return ln(x, "norm3") if "norm3.weight" in p else x


def ref_patch_merging(x: torch.Tensor, hw: tuple[int, int], p: StateDict) -> torch.Tensor:
    """mmcls PatchMerging (post-norm): nn.Unfold 2x2, reduction, norm."""
    b, _, c = x.shape
    h, w = hw
    cols = nn.Unfold(kernel_size=2, stride=2)(x.view(b, h, w, c).permute(0, 3, 1, 2)).transpose(
        1, 2
    )
    out = F.linear(cols, p["reduction.weight"])
    return F.layer_norm(out, (out.shape[-1],), p["norm.weight"], p["norm.bias"])


def ref_keep_resolution(x: torch.Tensor, p: StateDict) -> torch.Tensor:
    """Stage 3: norm(reduction(repeat_interleave(x, 4))) == norm(x @ (sum of each 4 columns)^T)."""
    weight = p["reduction.weight"]
    out = F.linear(x, weight.view(weight.shape[0], -1, 4).sum(-1))
    return F.layer_norm(out, (out.shape[-1],), p["norm.weight"], p["norm.bias"])


def ref_encoder(x: torch.Tensor, sd: StateDict, cfg: dict[str, Any]) -> list[torch.Tensor]:
    """SkySense-O SwinTransformerV2.forward (out_indices 0-3), NCHW outputs."""
    d = cfg["embed_dim"]
    t = F.conv2d(
        x, sd["patch_embed.projection.weight"], sd["patch_embed.projection.bias"], stride=4
    )
    h, w = t.shape[-2:]
    t = t.flatten(2).transpose(1, 2)
    t = F.layer_norm(t, (d,), sd["patch_embed.norm.weight"], sd["patch_embed.norm.bias"])
    outs = []
    for i in range(4):
        if i == 3:
            t = ref_keep_resolution(t, _sub(sd, "stages.3.downsample."))
        elif i > 0:
            t = ref_patch_merging(t, (h, w), _sub(sd, f"stages.{i}.downsample."))
            h, w = h // 2, w // 2
        window = cfg["window_sizes"][i]
        for j in range(cfg["depths"][i]):
            t = ref_block(t, (h, w), _sub(sd, f"stages.{i}.blocks.{j}."), cfg["num_heads"][i],
                          window, window // 2 if j % 2 else 0, cfg["pretrained_window_sizes"][i])  # fmt: skip
        c = t.shape[-1]
        out = F.layer_norm(t, (c,), sd[f"norm{i}.weight"], sd[f"norm{i}.bias"])
        outs.append(out.view(-1, h, w, c).permute(0, 3, 1, 2))
    return outs


# --- parity ---------------------------------------------------------------------------------
@pytest.mark.parametrize("pretrained", [0, 3])
def test_window_attention_matches_timm_swinv2_window_attention(pretrained: int) -> None:
    ours = _randomize(
        _WindowAttentionV2(dim=16, num_heads=2, window_size=4, pretrained_window_size=pretrained)
    )
    timm_attn = TimmWindowAttention(16, (4, 4), 2, pretrained_window_size=(pretrained, pretrained))
    timm_attn.load_state_dict(ours.state_dict(), strict=True)  # same names and shapes
    timm_attn.eval()
    x = torch.randn(4, 16, 16)
    mask = torch.where(torch.rand(2, 16, 16) > 0.7, -100.0, 0.0)
    for m in (None, mask):
        torch.testing.assert_close(
            ours(x, window=4, mask=m), timm_attn(x, mask=m), rtol=1e-5, atol=1e-5
        )


@pytest.mark.parametrize(
    ("hw", "window", "shift", "pretrained", "extra_norm"),
    [
        ((8, 8), 4, 0, 0, False),
        ((8, 8), 4, 2, 0, True),  # shifted, with norm3
        ((6, 10), 4, 2, 3, False),  # padded to 8x12, shifted, pretrained-window coordinates
        ((4, 12), 4, 2, 0, False),  # shorter side == window: mmcls does not shift
    ],
)
def test_block_matches_the_mmcls_formulas(
    hw: tuple[int, int], window: int, shift: int, pretrained: int, extra_norm: bool
) -> None:
    attn = _ShiftWindowAttention(dim=16, num_heads=2, window_size=window, shift=shift > 0,
                                 pretrained_window_size=pretrained)  # fmt: skip
    block = _SwinBlockV2(attn, extra_norm=extra_norm, drop_path=0.1)
    _randomize(block)
    x = torch.randn(2, hw[0] * hw[1], 16)
    want = ref_block(x, hw, dict(block.state_dict()), 2, window, shift, pretrained)
    got = block(x.view(2, *hw, 16)).reshape(2, -1, 16)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_drop_path_sits_before_the_post_norm() -> None:
    attn = _ShiftWindowAttention(dim=8, num_heads=2, window_size=2, shift=False,
                                 pretrained_window_size=0)  # fmt: skip
    block = _randomize(_SwinBlockV2(attn, extra_norm=False, drop_path=0.5))

    class DropAll(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.zeros_like(x)

    block.drop_path = DropAll()
    x = torch.randn(1, 2, 2, 8)
    # Every sample dropped: each residual adds LayerNorm(0) = the norm's bias (mmcls order);
    # timm's order (drop after the norm) would return x unchanged.
    torch.testing.assert_close(block(x), x + block.norm1.bias + block.norm2.bias)


def test_patch_merging_uses_unfold_order_and_keep_resolution_repeats_channels() -> None:
    merge = _randomize(_PatchMerging(6, 12))
    p = dict(merge.state_dict())
    x = torch.randn(2, 4 * 6, 6)
    got = merge(x.view(2, 4, 6, 6), keep_resolution=False)
    torch.testing.assert_close(got.reshape(2, -1, 12), ref_patch_merging(x, (4, 6), p))
    kept = merge(x.view(2, 4, 6, 6), keep_resolution=True)
    assert kept.shape == (2, 4, 6, 12)
    torch.testing.assert_close(
        kept.reshape(2, -1, 12), ref_keep_resolution(x, p), rtol=1e-5, atol=1e-5
    )


def test_tiny_encoder_matches_the_reference_end_to_end() -> None:
    model = _randomize(SkySenseOVisualEncoder(**TINY))
    x = torch.randn(2, 3, 64, 96)
    want = ref_encoder(x, dict(model.state_dict()), TINY)
    got = model(x)
    assert [tuple(f.shape) for f in got] == [
        (2, 16, 16, 24),
        (2, 32, 8, 12),
        (2, 64, 4, 6),
        (2, 128, 4, 6),
    ]
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(model.embed(x), want[-1].mean(dim=(2, 3)), rtol=1e-4, atol=1e-4)


def test_maps_smaller_than_the_window_attend_in_one_unshifted_window() -> None:
    attn = _ShiftWindowAttention(dim=16, num_heads=2, window_size=8, shift=True,
                                 pretrained_window_size=0)  # fmt: skip
    block = _randomize(_SwinBlockV2(attn, extra_norm=False, drop_path=0.0))
    x = torch.randn(1, 3, 5, 16)
    p = _sub(dict(block.state_dict()), "attn.w_msa.")
    # window 3 (the shorter side), no shift, bias of the same table (normalised by window 8)
    tokens = F.pad(x, (0, 0, 0, 1)).view(1, 3, 2, 3, 16).permute(0, 2, 1, 3, 4).reshape(2, 9, 16)
    attn = ref_window_msa(tokens, p, 2, 3, 0, None, norm_window=8)
    attn = attn.view(1, 2, 3, 3, 16).permute(0, 2, 1, 3, 4).reshape(1, 3, 6, 16)[:, :, :5]
    y = x + F.layer_norm(attn, (16,), block.norm1.weight, block.norm1.bias)
    y = y + block.norm2(block.ffn(y))
    torch.testing.assert_close(block(x), y, rtol=1e-5, atol=1e-5)


# --- layout of the real configuration (meta device: no memory) --------------------------------
def _expected_parameter_count() -> int:
    """SwinV2-huge as configured by SkySense-O, counted from the layer formulas."""
    total = 3 * 352 * 16 + 352 + 2 * 352  # patch embedding conv + norm
    for i, (depth, heads) in enumerate(zip((2, 2, 18, 2), (8, 16, 32, 64), strict=True)):
        c = 352 * 2**i
        if i > 0:
            total += 2 * c * c + 2 * c  # reduction 4(c/2) -> c (no bias) + norm
        attn = 3 * c * c + 2 * c + c * c + c + heads + (2 * 512 + 512 + 512 * heads)
        ffn = c * 4 * c + 4 * c + 4 * c * c + c
        total += depth * (attn + ffn + 4 * c) + (depth // 6) * 2 * c  # norm1/2 (+ norm3)
        total += 2 * c  # norm{i}
    return total


def test_full_huge_layout_and_parameter_count_on_meta() -> None:
    with torch.device("meta"):
        model = geofm.create_backbone("skysense_o_swinv2_huge")
    count = sum(p.numel() for p in model.parameters())
    assert count == _expected_parameter_count() == 655_079_632
    sd = model.state_dict()
    assert [k for k in sd if ".norm3." in k] == [
        f"stages.2.blocks.{j}.norm3.{n}" for j in (5, 11, 17) for n in ("weight", "bias")
    ]
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    assert shapes["patch_embed.projection.weight"] == (352, 3, 4, 4)
    assert shapes["stages.1.downsample.reduction.weight"] == (704, 1408)
    assert shapes["stages.3.downsample.reduction.weight"] == (2816, 5632)
    assert shapes["stages.3.blocks.1.attn.w_msa.qkv.weight"] == (8448, 2816)
    assert shapes["stages.3.blocks.1.attn.w_msa.logit_scale"] == (64, 1, 1)
    assert shapes["stages.3.blocks.1.attn.w_msa.cpb_mlp.2.weight"] == (64, 512)
    assert shapes["stages.3.blocks.1.ffn.layers.0.0.weight"] == (11264, 2816)
    assert shapes["norm3.weight"] == (2816,)
    assert not any("relative" in k or "k_bias" in k for k in sd)  # recomputed, never saved
    assert [(f.channels, f.reduction) for f in model.feature_info] == [
        (352, 4), (704, 8), (1408, 16), (2816, 16)
    ]  # fmt: skip
    assert model.embed_dim == 2816


# --- loading the original checkpoint layout --------------------------------------------------
def _original_file(path: Path, depths: tuple[int, ...]) -> StateDict:
    """A skysense_clip.pth-shaped file: clip / model / teacher dicts, visual under backbone_gep.

    Tensors are expanded views of one random row (tiny on disk, full shapes on load).
    """
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in SkySenseOVisualEncoder(depths=depths).state_dict().items()}
    gen = torch.Generator().manual_seed(1)
    visual = {k: torch.randn(s[-1], generator=gen).expand(s) for k, s in shapes.items()}
    model = {f"backbone_gep.{k}": v for k, v in visual.items()}
    # mmcls saves its position buffers; SkySense keeps other branches in the same dict
    model["backbone_gep.stages.0.blocks.0.attn.w_msa.relative_coords_table"] = torch.zeros(
        1, 15, 15, 2
    )
    model["backbone_gep.stages.0.blocks.0.attn.w_msa.relative_position_index"] = torch.zeros(64, 64)
    model["backbone_s2.cls_token"] = torch.zeros(1, 1, 4)
    ckpt = {
        "clip": {
            "vision_projection": torch.zeros(2816, 1024).expand(2816, 1024),
            "logit_scale": torch.zeros(()),
        },
        "model": model,
        "teacher": {k: torch.zeros(()).expand(v.shape) for k, v in model.items()},
    }
    torch.save(ckpt, path)
    return visual


def test_original_checkpoint_loads_strictly_from_a_path(tmp_path: Path) -> None:
    path = tmp_path / "skysense_clip.pth"
    visual = _original_file(path, (1, 1, 1, 1))
    model = geofm.create_backbone("skysense_o_swinv2_huge", depths=(1, 1, 1, 1), pretrained=path)
    report = model.load_report
    assert report is not None and report.ok
    assert "took the state dict stored under 'model'" in report.adapted
    assert "skysense_o_visual: stripped 'backbone_gep.'" in report.adapted
    assert sorted(k.split(" ")[0] for k in report.ignored) == [
        "backbone_gep.stages.0.blocks.0.attn.w_msa.relative_coords_table",
        "backbone_gep.stages.0.blocks.0.attn.w_msa.relative_position_index",
        "backbone_s2.cls_token",
    ]
    own = model.state_dict()
    for key in (
        "patch_embed.projection.weight",
        "stages.3.downsample.reduction.weight",
        "norm3.bias",
    ):
        torch.testing.assert_close(own[key], visual[key].contiguous())
    model.eval()
    with torch.no_grad():
        maps = model(torch.randn(1, 3, 32, 32))
    assert [tuple(f.shape[1:]) for f in maps] == [
        (352, 8, 8),
        (704, 4, 4),
        (1408, 2, 2),
        (2816, 2, 2),
    ]


def test_missing_visual_keys_fail_strict_loading(tmp_path: Path) -> None:
    model = SkySenseOVisualEncoder(**TINY)
    sd = {f"visual.{k}": v for k, v in model.state_dict().items() if not k.startswith("norm0.")}
    path = tmp_path / "clip_state.pt"
    torch.save(sd, path)
    with pytest.raises(WeightsError, match=r"(?s)2 missing.*missing: norm0.weight, norm0.bias"):
        load_weights(SkySenseOVisualEncoder(**TINY), path)


# --- errors ---------------------------------------------------------------------------------
def test_invalid_configurations_raise() -> None:
    with pytest.raises(ValueError, match=r"depths must be 4 integers >= 1.*\(2, 2, 18\)"):
        SkySenseOVisualEncoder(depths=(2, 2, 18))
    with pytest.raises(ValueError, match="Stage 1 has 32 channels, not divisible by num_heads"):
        SkySenseOVisualEncoder(embed_dim=16, num_heads=(2, 3, 4, 8), depths=(1, 1, 1, 1))
    with pytest.raises(ValueError, match="window_sizes must be 4 integers >= 2"):
        SkySenseOVisualEncoder(window_sizes=(8, 8, 8, 1), depths=(1, 1, 1, 1))
    with pytest.raises(ValueError, match="drop_path_rate in"):
        SkySenseOVisualEncoder(drop_path_rate=1.0, depths=(1, 1, 1, 1))


def test_input_size_must_be_a_multiple_of_16() -> None:
    model = SkySenseOVisualEncoder(**TINY)
    with pytest.raises(ShapeError, match="multiples of 16, got 40x48"):
        model(torch.randn(1, 3, 40, 48))
