"""SkySense-O visual encoder: the mmcls Swin Transformer V2 "huge" of SkySense-CLIP.

``skysense_o_swinv2_huge`` rebuilds ``SkySenseCLIP.visual`` of SkySense-O with
the original parameter names, so the visual weights of the published
``skysense_clip.pth`` load strictly (the ``backbone_gep.`` prefix is stripped
on load, see :func:`skysense_o_visual`).

Architecture (mmcls ``SwinTransformerV2`` arch ``huge`` as configured by
SkySense-O's ``clip_config.yml``): patch 4, embed 352, depths (2, 2, 18, 2),
heads (8, 16, 32, 64), windows (8, 8, 8, 16), pretrained windows
(0, 0, 0, 8), an extra LayerNorm after every 6th block of a stage, post-norm
blocks with cosine attention and a continuous (log-spaced MLP) position bias,
stochastic depth 0.2, no absolute position embedding, and a LayerNorm per
returned stage (``norm0`` ... ``norm3``). SkySense-O changes one thing: the
last stage keeps the resolution (each channel repeated 4 times, then the
5632 -> 2816 merging linear and its norm), so the maps have 352 / 704 / 1408 /
2816 channels at strides 4 / 8 / 16 / 16.

Semantics kept from mmcls (they differ from timm / torchvision):

- Block: ``x = x + norm1(drop_path(attn(x)))``, ``x = x + norm2(drop_path(ffn(x)))``,
  then ``x = norm3(x)`` on blocks with the extra norm. Stochastic depth sits
  *before* the post-norm (timm and torchvision apply it after).
- Patch merging concatenates each 2x2 neighbourhood in ``nn.Unfold`` order
  (channel-major: ``c * 4 + 2 * dy + dx``), not timm's / torchvision's
  ``[x00, x10, x01, x11]`` order, so their merging layers would scramble
  these weights.
- Windows: maps are zero-padded at the bottom / right to a multiple of the
  window (padded tokens take part in attention; only the shift is masked,
  with -100); a map whose shorter side equals the window is not shifted.
- Relative-position coordinates are normalised by ``pretrained_window - 1``
  where a pretrained window is given (stage 3: 8 for a window of 16).

Inputs whose shorter feature-map side is *smaller* than a stage's window
(inputs under 256 px for stage 3) are refused by the mmcls code. Here that
stage then attends within one window of the map's shorter side, unshifted,
with the position bias of the same continuous table (the original Swin
Transformer's rule); there is no upstream output to compare such sizes to.

References:
    Zhu et al., "SkySense-O: Towards Open-World Remote Sensing Interpretation
    with Vision-Centric Visual-Language Modeling", CVPR 2025.
    Liu et al., "Swin Transformer V2: Scaling Up Capacity and Resolution", CVPR 2022.
    Code: https://github.com/zqcrafts/SkySense-O
    (``skysense_o/modeling/backbone/visual_encoder.py``, ``clip_config.yml``);
    mmcls ``models/utils/attention.py`` (``WindowMSAV2``, ``ShiftWindowMSA``),
    ``models/utils/embed.py`` (``PatchMerging``); mmcv ``FFN``, ``PatchEmbed``.

Example:
    >>> import torch, geofm
    >>> m = geofm.create_backbone("skysense_o_swinv2_huge", depths=(1, 1, 1, 1))
    >>> [(f.shape[1], 64 // f.shape[-1]) for f in m(torch.randn(1, 3, 64, 64))]
    [(352, 4), (704, 8), (1408, 16), (2816, 16)]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from timm.layers.drop import DropPath
from torch import nn

from geofm.backbones.base import Backbone, FeatureInfo, normalize_out_indices, register_backbone
from geofm.weights.catalog import WeightsSpec, register_weights
from geofm.weights.convert import register_converter, take_prefixed
from geofm.weights.load import LoadReport, StateDict

__all__ = ["SkySenseOVisualEncoder", "skysense_o_swinv2_huge", "skysense_o_visual"]

_EMBED_DIM = 352
_DEPTHS = (2, 2, 18, 2)
_NUM_HEADS = (8, 16, 32, 64)
_WINDOW_SIZES = (8, 8, 8, 16)
_PRETRAINED_WINDOW_SIZES = (0, 0, 0, 8)
_EXTRA_NORM_EVERY = 6
_CPB_HIDDEN = 512
_SHIFT_MASK_VALUE = -100.0
_LOGIT_SCALE_MAX = math.log(1.0 / 0.01)


def _four(values: Sequence[int], what: str, minimum: int) -> tuple[int, ...]:
    if len(values) != 4 or any(v < minimum for v in values):
        raise ValueError(
            f"{what} must be 4 integers >= {minimum} (one per stage), got {tuple(values)}."
        )
    return tuple(int(v) for v in values)


def _log_spaced_coords(window: int, pretrained_window: int) -> torch.Tensor:
    """SwinV2's continuous relative coordinates of a window, ``(2w-1, 2w-1, 2)``.

    Offsets are divided by ``pretrained_window - 1`` (or ``window - 1`` when no
    pretrained window is given), scaled to [-8, 8] and log-spaced:
    ``sign(t) * log2(|t| + 1) / log2(8)``.
    """
    span = torch.arange(-(window - 1), window, dtype=torch.float32)
    coords = torch.stack(torch.meshgrid(span, span, indexing="ij"), dim=-1)  # (2w-1, 2w-1, 2)
    scale = (pretrained_window if pretrained_window > 0 else window) - 1
    coords = coords / max(scale, 1) * 8.0
    return torch.sign(coords) * torch.log2(coords.abs() + 1.0) / math.log2(8.0)


def _relative_index(window: int) -> torch.Tensor:
    """Index into the ``(2w-1)^2`` offset table for every token pair of a window, ``(w^2, w^2)``."""
    pos = torch.arange(window)
    grid = torch.stack(torch.meshgrid(pos, pos, indexing="ij")).flatten(1)  # (2, w*w)
    offset = grid[:, :, None] - grid[:, None, :] + (window - 1)  # (2, w*w, w*w), in [0, 2w-2]
    return offset[0] * (2 * window - 1) + offset[1]  # (w*w, w*w)


def _window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """``(N, H, W, C)`` -> ``(N * nW, window^2, C)``, windows in row-major order."""
    n, h, w, c = x.shape
    x = x.view(n, h // window, window, w // window, window, c)  # (N, h', ws, w', ws, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, c)  # (N*nW, ws*ws, C)


def _window_merge(windows: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`_window_partition`: ``(N * nW, window^2, C)`` -> ``(N, H, W, C)``."""
    c = windows.shape[-1]
    x = windows.view(-1, h // window, w // window, window, window, c)  # (N, h', w', ws, ws, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, h, w, c)  # (N, H, W, C)


def _shift_mask(h: int, w: int, window: int, shift: int, like: torch.Tensor) -> torch.Tensor:
    """Additive mask ``(nW, window^2, window^2)`` separating regions a cyclic shift joined.

    Rows (and columns) fall in three regions: ``[0, H - window)``,
    ``[H - window, H - shift)`` and ``[H - shift, H)``; token pairs from
    different regions get ``-100``.
    """

    def region(size: int) -> torch.Tensor:
        idx = torch.arange(size, device=like.device)
        return (idx >= size - window).long() + (idx >= size - shift).long()  # (size,) in {0,1,2}

    labels = region(h)[:, None] * 3 + region(w)[None, :]  # (H, W)
    per_window = _window_partition(labels[None, :, :, None], window)[..., 0]  # (nW, ws*ws)
    differs = per_window[:, :, None] != per_window[:, None, :]  # (nW, ws*ws, ws*ws)
    return differs.to(like.dtype) * _SHIFT_MASK_VALUE


class _WindowAttentionV2(nn.Module):
    """mmcls ``WindowMSAV2``: cosine window attention with a continuous position bias.

    Parameter names and shapes match mmcls (and timm's SwinV2 ``WindowAttention``):
    ``qkv`` (no bias) with separate ``q_bias`` / ``v_bias``, ``logit_scale``
    ``(heads, 1, 1)``, ``cpb_mlp`` (2 -> 512 -> heads), ``proj``. The coordinate
    table and index are recomputed buffers (not saved). ``qkv`` is called as a
    module, so LoRA wrappers on it take effect.
    """

    def __init__(
        self, *, dim: int, num_heads: int, window_size: int, pretrained_window_size: int
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.window_size = window_size
        self.logit_scale = nn.Parameter(torch.full((num_heads, 1, 1), math.log(10.0)))
        self.cpb_mlp = nn.Sequential(
            nn.Linear(2, _CPB_HIDDEN),
            nn.ReLU(inplace=True),
            nn.Linear(_CPB_HIDDEN, num_heads, bias=False),
        )
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)
        coords = _log_spaced_coords(window_size, pretrained_window_size)
        self.register_buffer("relative_coords_table", coords, persistent=False)
        self.register_buffer("relative_position_index", _relative_index(window_size), False)

    def position_bias(self, window: int) -> torch.Tensor:
        """``16 * sigmoid(cpb_mlp(coords))`` for the token pairs of a window, ``(heads, w^2, w^2)``.

        For ``window`` smaller than the configured one, the pairs of its
        top-left sub-window are taken (same relative offsets, same bias).
        """
        table = self.cpb_mlp(self.relative_coords_table).view(-1, self.num_heads)  # (T, heads)
        index = cast(torch.Tensor, self.relative_position_index)
        full = table[index.view(-1)]  # (ws^4, heads)
        ws = self.window_size
        if window != ws:
            full = full.view(ws, ws, ws, ws, self.num_heads)[:window, :window, :window, :window]
        bias = full.reshape(window * window, window * window, self.num_heads)  # (L, L, heads)
        return 16.0 * torch.sigmoid(bias.permute(2, 0, 1))  # (heads, L, L)

    def forward(self, x: torch.Tensor, *, window: int, mask: torch.Tensor | None) -> torch.Tensor:
        """Attention within each window: ``(B', L, C)`` -> ``(B', L, C)``, ``L = window^2``."""
        b, n, c = x.shape
        bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))
        qkv = self.qkv(x) + bias  # (B', L, 3C)
        qkv = qkv.view(b, n, 3, self.num_heads, c // self.num_heads)  # (B', L, 3, heads, d)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B', heads, L, d)
        scale = torch.clamp(self.logit_scale, max=_LOGIT_SCALE_MAX).exp()  # (heads, 1, 1)
        q = F.normalize(q, dim=-1) * scale
        k = F.normalize(k, dim=-1)
        attn_bias = self.position_bias(window).unsqueeze(0)  # (1, heads, L, L)
        if mask is not None:
            nw = mask.shape[0]
            attn_bias = attn_bias + mask.unsqueeze(1)  # (nW, heads, L, L)
            attn_bias = attn_bias.repeat(b // nw, 1, 1, 1)  # (B', heads, L, L)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias, scale=1.0)
        out = out.transpose(1, 2).reshape(b, n, c)  # (B', L, C)
        return cast(torch.Tensor, self.proj(out))


class _ShiftWindowAttention(nn.Module):
    """mmcls ``ShiftWindowMSA`` on a channels-last map: pad, shift, window attention, undo."""

    def __init__(
        self,
        *,
        dim: int,
        num_heads: int,
        window_size: int,
        shift: bool,
        pretrained_window_size: int,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.window_size = window_size
        self.shift_size = window_size // 2 if shift else 0
        self.w_msa = _WindowAttentionV2(
            dim=dim,
            num_heads=num_heads,
            window_size=window_size,
            pretrained_window_size=pretrained_window_size,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, H, W, C)`` -> ``(N, H, W, C)``."""
        _, h, w, _ = x.shape
        window, shift = self.window_size, self.shift_size
        if min(h, w) < window:  # mmcls refuses; the original Swin shrinks the window
            window, shift = min(h, w), 0
        elif min(h, w) == window:  # mmcls (pad_small_map=False): no shift
            shift = 0
        x = F.pad(x, (0, 0, 0, (-w) % window, 0, (-h) % window))  # (N, Hp, Wp, C), zeros
        hp, wp = x.shape[1], x.shape[2]
        mask = None
        if shift:
            x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
            mask = _shift_mask(hp, wp, window, shift, x)
        out = self.w_msa(_window_partition(x, window), window=window, mask=mask)
        x = _window_merge(out, window, hp, wp)  # (N, Hp, Wp, C)
        if shift:
            x = torch.roll(x, shifts=(shift, shift), dims=(1, 2))
        return x[:, :h, :w]


class _FFN(nn.Module):
    """mmcv ``FFN`` (2 layers, GELU, no dropout): keys ``layers.0.0.*`` and ``layers.1.*``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Sequential(nn.Linear(dim, hidden), nn.GELU()), nn.Linear(hidden, dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., C)`` -> ``(..., C)``."""
        return cast(torch.Tensor, self.layers(x))


class _SwinBlockV2(nn.Module):
    """SkySense-O ``SwinBlockV2``: post-norm, drop-path before the norm, optional ``norm3``."""

    def __init__(self, attn: _ShiftWindowAttention, *, extra_norm: bool, drop_path: float) -> None:
        super().__init__()
        dim = attn.dim
        self.attn = attn
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = _FFN(dim, 4 * dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim) if extra_norm else None
        self.drop_path: nn.Module = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, H, W, C)`` -> ``(N, H, W, C)``."""
        x = x + self.norm1(self.drop_path(self.attn(x)))
        x = x + self.norm2(self.drop_path(self.ffn(x)))
        if self.norm3 is not None:
            x = self.norm3(x)
        return x


class _PatchMerging(nn.Module):
    """mmcls ``PatchMerging`` with post-norm: 2x2 gather in ``nn.Unfold`` order, linear, LayerNorm.

    With ``keep_resolution`` (SkySense-O's last stage) every channel is
    repeated 4 times instead of gathering a neighbourhood, so the map size is
    unchanged.
    """

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * in_dim, out_dim, bias=False)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x: torch.Tensor, *, keep_resolution: bool) -> torch.Tensor:
        """``(N, H, W, C)`` -> ``(N, H/2, W/2, C_out)`` (or ``(N, H, W, C_out)``)."""
        if keep_resolution:
            x = x.repeat_interleave(4, dim=-1)  # (N, H, W, 4C): c0 c0 c0 c0 c1 ...
        else:
            n, h, w, c = x.shape
            x = x.view(n, h // 2, 2, w // 2, 2, c)  # (N, H/2, dy, W/2, dx, C)
            x = x.permute(0, 1, 3, 5, 2, 4).reshape(
                n, h // 2, w // 2, 4 * c
            )  # (N, H/2, W/2, C*dy*dx)
        return cast(torch.Tensor, self.norm(self.reduction(x)))


class _PatchEmbed(nn.Module):
    """mmcv ``PatchEmbed``: ``projection`` (conv, kernel = stride = patch) then ``norm``."""

    def __init__(self, in_chans: int, dim: int, patch_size: int) -> None:
        super().__init__()
        self.projection = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` -> ``(N, H/p, W/p, D)``."""
        x = self.projection(x).permute(0, 2, 3, 1)  # (N, H/p, W/p, D)
        return cast(torch.Tensor, self.norm(x))


class _Stage(nn.Module):
    """mmcls ``SwinBlockV2Sequence``: optional ``downsample`` then ``blocks``."""

    def __init__(
        self,
        *,
        in_dim: int,
        dim: int,
        depth: int,
        num_heads: int,
        window_size: int,
        pretrained_window_size: int,
        extra_norm_every: int,
        drop_paths: Sequence[float],
        downsample: bool,
        keep_resolution: bool,
    ) -> None:
        super().__init__()
        self.keep_resolution = keep_resolution
        self.downsample = _PatchMerging(in_dim, dim) if downsample else None
        self.blocks = nn.ModuleList(
            _SwinBlockV2(
                _ShiftWindowAttention(
                    dim=dim,
                    num_heads=num_heads,
                    window_size=window_size,
                    shift=j % 2 == 1,
                    pretrained_window_size=pretrained_window_size,
                ),
                extra_norm=extra_norm_every > 0 and (j + 1) % extra_norm_every == 0,
                drop_path=drop_paths[j],
            )
            for j in range(depth)
        )


# Where the visual encoder sits: the published file's dicts, then a SkySenseCLIP state dict.
_SKYSENSE_VISUAL = ("backbone_gep.", "visual.")
_SKYSENSE_BUFFERS = ("relative_coords_table", "relative_position_index")


@register_converter("skysense_o_visual")
def skysense_o_visual(state_dict: StateDict, report: LoadReport) -> StateDict:
    """SkySense-O checkpoint -> its visual encoder's mmcls ``SwinTransformerV2`` keys.

    The published ``skysense_clip.pth`` nests the visual encoder in its
    ``model`` (and ``teacher``) dicts under ``backbone_gep.``;
    :func:`~geofm.weights.load.read_state_dict` takes the ``model`` one. A full
    ``SkySenseCLIP`` state dict holds it under ``visual.``. The first of these
    prefixes present is stripped and every other key (text tower,
    projections, other SkySense branches) is listed in ``report.ignored``; a
    dict without either prefix is taken as already converted. mmcls saves
    the ``relative_coords_table`` / ``relative_position_index`` buffers, which
    it (and geofm) recomputes on load: they are listed as ignored too.

    Args:
        state_dict: Flat tensors of one of the nested dicts.
        report: Report that receives notes and ignored keys.

    Returns:
        The visual encoder's keys (``patch_embed.*``, ``stages.*``, ``norm{i}.*``).

    Example:
        >>> import torch
        >>> sd = {
        ...     "backbone_gep.patch_embed.projection.weight": torch.zeros(1),
        ...     "backbone_gep.stages.0.blocks.0.attn.w_msa.relative_position_index": torch.zeros(1),
        ...     "backbone_s2.cls_token": torch.zeros(1),
        ... }
        >>> from geofm.weights.load import LoadReport
        >>> list(skysense_o_visual(sd, LoadReport()))
        ['patch_embed.projection.weight']
    """
    prefix = next((p for p in _SKYSENSE_VISUAL if any(k.startswith(p) for k in state_dict)), "")
    out = take_prefixed(
        state_dict,
        report,
        prefix,
        converter="skysense_o_visual",
        outside="not part of the SkySense-O visual encoder",
    )
    for key in [k for k in out if k.endswith(_SKYSENSE_BUFFERS)]:
        del out[key]
        report.ignored.append(f"{prefix}{key} (buffer recomputed from the window size on load)")
    return out


class SkySenseOVisualEncoder(Backbone):
    """SkySense-O's visual encoder (mmcls SwinV2 with a full-resolution last stage).

    The defaults are SkySense-CLIP's ``huge`` configuration; the other
    arguments exist for smaller test or research variants (weights load only
    into the defaults, apart from ``depths`` overrides of a truncated copy).

    Args:
        in_chans: Input bands (the published weights: RGB, ImageNet-style
            0-255 mean/std normalisation as in SkySense-O).
        out_indices: Stages (0-3) whose normed maps :meth:`forward` returns.
        depths: Blocks per stage.
        embed_dim: Channels of stage 0 (doubled per stage).
        num_heads: Attention heads per stage.
        window_sizes: Attention window per stage.
        pretrained_window_sizes: Window the position bias was trained with, per
            stage (0: none; coordinates are normalised by the window itself).
        extra_norm_every: Add a LayerNorm (``norm3``) after every n-th block of
            a stage (0: never).
        drop_path_rate: Stochastic depth, linearly increasing over all blocks.

    Shape:
        - Input: ``(N, C, H, W)``, ``H`` and ``W`` multiples of 16 (256 or more
          for the exact SkySense-O behaviour of the last stage).
        - ``forward``: ``(N, D, H/4, W/4)``, ``(N, 2D, H/8, W/8)``,
          ``(N, 4D, H/16, W/16)``, ``(N, 8D, H/16, W/16)`` with ``D = embed_dim``.
        - ``embed``: ``(N, 8D)``, the mean of the normed last map (SkySense-CLIP's
          pooled image feature before ``vision_projection``).

    Raises:
        ValueError: Non-positive sizes, or head counts that do not divide the
            stage widths.

    Example:
        >>> import torch
        >>> m = SkySenseOVisualEncoder(
        ...     embed_dim=16, depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8),
        ...     window_sizes=(2, 2, 2, 4), pretrained_window_sizes=(0, 0, 0, 2),
        ... )
        >>> m.embed(torch.randn(2, 3, 64, 64)).shape
        torch.Size([2, 128])
    """

    stem_weight_key = "patch_embed.projection.weight"
    size_divisor = 16

    def __init__(
        self,
        *,
        in_chans: int = 3,
        out_indices: Sequence[int] | None = None,
        depths: Sequence[int] = _DEPTHS,
        embed_dim: int = _EMBED_DIM,
        num_heads: Sequence[int] = _NUM_HEADS,
        window_sizes: Sequence[int] = _WINDOW_SIZES,
        pretrained_window_sizes: Sequence[int] = _PRETRAINED_WINDOW_SIZES,
        extra_norm_every: int = _EXTRA_NORM_EVERY,
        drop_path_rate: float = 0.2,
    ) -> None:
        super().__init__()
        if in_chans <= 0 or embed_dim <= 0:
            raise ValueError(
                f"in_chans and embed_dim must be positive, got {in_chans} and {embed_dim}."
            )
        if extra_norm_every < 0 or not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(
                f"extra_norm_every must be >= 0 and drop_path_rate in [0, 1), got "
                f"{extra_norm_every} and {drop_path_rate}."
            )
        depths = _four(depths, "depths", 1)
        heads = _four(num_heads, "num_heads", 1)
        windows = _four(window_sizes, "window_sizes", 2)
        pretrained = _four(pretrained_window_sizes, "pretrained_window_sizes", 0)
        dims = [embed_dim * 2**i for i in range(4)]
        for i, (dim, h) in enumerate(zip(dims, heads, strict=True)):
            if dim % h:
                raise ValueError(
                    f"Stage {i} has {dim} channels, not divisible by num_heads[{i}]={h}. "
                    "Pick head counts that divide embed_dim * 2**stage."
                )
        self.in_chans = in_chans
        self.embed_dim = dims[-1]
        self.out_indices = normalize_out_indices(
            out_indices, 4, default=(0, 1, 2, 3), what="SkySense-O encoder with 4 stages"
        )
        strides = (4, 8, 16, 16)
        self.feature_info = [FeatureInfo(dims[i], strides[i], f"norm{i}") for i in self.out_indices]

        self.patch_embed = _PatchEmbed(in_chans, embed_dim, patch_size=4)
        total = sum(depths)
        rates = [drop_path_rate * j / max(total - 1, 1) for j in range(total)]  # linspace
        self.stages = nn.ModuleList()
        for i in range(4):
            self.stages.append(
                _Stage(
                    in_dim=dims[max(i - 1, 0)],
                    dim=dims[i],
                    depth=depths[i],
                    num_heads=heads[i],
                    window_size=windows[i],
                    pretrained_window_size=pretrained[i],
                    extra_norm_every=extra_norm_every,
                    drop_paths=rates[sum(depths[:i]) : sum(depths[: i + 1])],
                    downsample=i > 0,
                    keep_resolution=i == 3,
                )
            )
        for i, dim in enumerate(dims):
            self.add_module(f"norm{i}", nn.LayerNorm(dim))

    def _stage_norm(self, i: int) -> nn.Module:
        return cast(nn.Module, getattr(self, f"norm{i}"))

    def _run_stage(self, stage: _Stage, x: torch.Tensor) -> torch.Tensor:
        if stage.downsample is not None:
            x = stage.downsample(x, keep_resolution=stage.keep_resolution)
        return self.run_blocks(stage.blocks, x)

    def _stage_outputs(self, x: torch.Tensor, last: int) -> list[torch.Tensor]:
        """Raw (un-normed) channels-last outputs of stages ``0..last``."""
        x = self.patch_embed(x)  # (N, H/4, W/4, D)
        outs: list[torch.Tensor] = []
        for stage in list(self.stages)[: last + 1]:
            x = self._run_stage(cast(_Stage, stage), x)  # (N, H_i, W_i, C_i)
            outs.append(x)
        return outs

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Normed stage outputs at :attr:`out_indices`, NCHW."""
        outs = self._stage_outputs(x, max(self.out_indices))
        return [
            self._stage_norm(i)(outs[i]).permute(0, 3, 1, 2).contiguous()  # (N, C_i, H_i, W_i)
            for i in self.out_indices
        ]

    def forward_embed(self, x: torch.Tensor) -> torch.Tensor:
        """Mean over positions of the ``norm3``-normed last stage, ``(N, 8 * embed_dim)``."""
        last = self._stage_norm(3)(self._stage_outputs(x, 3)[-1])  # (N, H/16, W/16, D)
        return cast(torch.Tensor, last.mean(dim=(1, 2)))  # (N, D)

    def adapt_state_dict(self, state_dict: StateDict, report: LoadReport) -> StateDict:
        """Accept SkySense-O layouts: ``backbone_gep.`` / ``visual.`` prefixes, saved buffers.

        Runs :func:`skysense_o_visual` (a no-op on keys
        already converted), which also drops mmcls' saved
        ``relative_coords_table`` / ``relative_position_index`` buffers
        (recomputed here, as mmcls does on load), then the base adaptation.

        Args:
            state_dict: Checkpoint tensors.
            report: Report to append notes to.

        Returns:
            The state dict in this module's layout.
        """
        return super().adapt_state_dict(skysense_o_visual(state_dict, report), report)


@register_backbone(
    "skysense_o_swinv2_huge",
    family="swinv2",
    min_input_size=16,
    description="SkySense-O visual encoder (mmcls SwinV2-huge, strides 4/8/16/16), NCHW.",
)
def skysense_o_swinv2_huge(
    *,
    in_chans: int = 3,
    out_indices: Sequence[int] | None = None,
    depths: Sequence[int] = _DEPTHS,
    drop_path_rate: float = 0.2,
) -> SkySenseOVisualEncoder:
    """Build SkySense-CLIP's visual encoder (655.1 M parameters at full depth).

    Args:
        in_chans: Input bands.
        out_indices: Stages to return (default all four).
        depths: Blocks per stage (default ``(2, 2, 18, 2)``; smaller for tests).
        drop_path_rate: Stochastic depth rate (SkySense-O: 0.2).

    Returns:
        The backbone.

    Example:
        >>> skysense_o_swinv2_huge(depths=(1, 1, 1, 1)).feature_info[-1]
        FeatureInfo(channels=2816, reduction=16, module='norm3')
    """
    return SkySenseOVisualEncoder(
        in_chans=in_chans, out_indices=out_indices, depths=depths, drop_path_rate=drop_path_rate
    )


# --- weights --------------------------------------------------------------------------------
# --- SkySense-O visual encoder (SkySense-CLIP's mmcls SwinV2-huge) ---------------------------
register_weights(
    WeightsSpec(
        name="skysense_o_swinv2_huge.skysense_clip",
        repo_id="zqcraft/SkySense-O",
        filename="pretrain/skysense_clip.pth",
        url="https://huggingface.co/zqcraft/SkySense-O/tree/main",
        converter="skysense_o_visual",
        sensor="rgb",
        in_chans=3,
        license="unknown",
        citation=(
            "Zhu et al., SkySense-O: Towards Open-World Remote Sensing Interpretation with "
            "Vision-Centric Visual-Language Modeling, CVPR 2025."
        ),
        default=True,
        notes=(
            "SkySense-CLIP checkpoint: a dict with 'clip' (text tower, vision_projection "
            "[2816 x 1024], logit_scale) and 'model' / 'teacher' dicts in which the visual "
            "encoder sits under 'backbone_gep.'; geofm reads 'model' (as SkySense-O's loader "
            "does) and the converter strips the prefix, ignoring the text tower, other "
            "branches and mmcls' saved position buffers. Input: 8-bit RGB normalised with "
            "ImageNet mean/std (SkySense-O's CLIP_PIXEL_MEAN/STD on the 0-255 scale), 384 px "
            "in SkySense-O and Fusion-LoRA (multiples of 16; >= 256 px for the exact mmcls "
            "window behaviour). Unconfirmed: the file's path inside the hub repo (taken from "
            "Fusion-LoRA's loader; SkySense-O's base.yaml names a local "
            "'pretrain/skysense_clip.ckpt'), revision, sha256 and licence (none published); "
            "that the file loads with torch.load(weights_only=True) and holds norm0-norm2 "
            "(SkySense-O itself loads it with strict=False)."
        ),
    )
)
