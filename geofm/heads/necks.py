"""Necks that turn single-scale ViT feature maps into a multi-scale pyramid.

:class:`ViTFeaturePyramid` is the "simple feature pyramid" of ViTDet: from a
stride-``s`` ViT map it builds maps at strides ``s/4, s/2, s, 2s`` with
transposed convolutions and max pooling, then projects every level to a
common width, so FPN-style heads (:class:`~geofm.heads.UPerNetHead`,
:class:`~geofm.heads.FPNSegmentationHead`) run on plain ViTs.

References:
    Li et al., "Exploring Plain Vision Transformer Backbones for Object
    Detection" (ViTDet), ECCV 2022; https://github.com/facebookresearch/detectron2
    (``modeling/backbone/vit.py``, ``SimpleFeaturePyramid``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geofm._registry import register_module
from geofm.errors import ShapeError

__all__ = ["LayerNorm2d", "ViTFeaturePyramid"]

_SCALES = (4.0, 2.0, 1.0, 0.5)


@register_module()
class LayerNorm2d(nn.Module):
    """LayerNorm over the channel dimension of an NCHW map.

    Args:
        num_channels: Number of channels ``C``.
        eps: Added to the variance for numerical stability.

    Shape:
        - Input: ``(N, C, H, W)``.
        - Output: same as input.

    Example:
        >>> import torch
        >>> y = LayerNorm2d(4)(torch.randn(2, 4, 3, 3))
        >>> bool(y.mean(dim=1).abs().max() < 1e-5)
        True
    """

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``x`` over channels."""
        x = x.permute(0, 2, 3, 1)  # (N, H, W, C)
        x = F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)  # (N, C, H, W)


def _scale_branch(
    channels: int, scale: float, norm_layer: type[nn.Module]
) -> tuple[nn.Module, int]:
    """Resampling branch for one pyramid level and the channels it outputs."""
    if scale == 4.0:
        return (
            nn.Sequential(
                nn.ConvTranspose2d(channels, channels // 2, 2, stride=2),
                norm_layer(channels // 2),
                nn.GELU(),
                nn.ConvTranspose2d(channels // 2, channels // 4, 2, stride=2),
            ),
            channels // 4,
        )
    if scale == 2.0:
        return nn.ConvTranspose2d(channels, channels // 2, 2, stride=2), channels // 2
    if scale == 1.0:
        return nn.Identity(), channels
    return nn.MaxPool2d(2, stride=2), channels


@register_module()
class ViTFeaturePyramid(nn.Module):
    """ViTDet's simple feature pyramid from single-scale ViT maps.

    For each entry of ``scales`` the input map is resampled (x4: two
    stride-2 transposed convs with norm + GELU between them, halving the
    channels each time; x2: one transposed conv; x1: identity; x0.5: 2x2 max
    pool) and, if ``out_channels`` is set, projected by Conv1x1 -> norm ->
    Conv3x3 -> norm. Give either one map (shared by all levels, as in ViTDet)
    or one map per level (e.g. blocks 3, 6, 9, 12 of a ViT-B, as UPerNet on
    BEiT does). ``out_channels`` (per level) and :meth:`reductions` wire the
    pyramid to a head.

    Args:
        in_channels: Channels of the ViT map(s) (the embed dim ``D``).
        scales: Resampling factor of each level, coarsest last, each one of
            ``4.0, 2.0, 1.0, 0.5``.
        out_channels: Width of every output level, or ``None`` to skip the
            projection (levels then have ``D/4, D/2, D, D`` channels for x4,
            x2, x1, x0.5).
        norm_layer: Normalisation class built as ``norm_layer(channels)``.

    Shape:
        - Input: list of 1 or ``len(scales)`` maps ``(N, D, h, w)``.
        - Output: list of ``(N, out_channels[i], h * scales[i], w * scales[i])``.

    Raises:
        ValueError: If a scale is unsupported or ``in_channels`` is not
            divisible by 4 when the x4 level is requested.
        ShapeError: In ``forward``, on a wrong number of maps or wrong channels.

    Example:
        >>> import torch
        >>> neck = ViTFeaturePyramid(in_channels=16, out_channels=8)
        >>> [tuple(o.shape) for o in neck([torch.randn(1, 16, 4, 4)])]
        [(1, 8, 16, 16), (1, 8, 8, 8), (1, 8, 4, 4), (1, 8, 2, 2)]
        >>> neck.reductions(16)
        [4, 8, 16, 32]
    """

    def __init__(
        self,
        in_channels: int,
        *,
        scales: Sequence[float] = _SCALES,
        out_channels: int | None = 256,
        norm_layer: type[nn.Module] = LayerNorm2d,
    ) -> None:
        super().__init__()
        if len(scales) == 0 or any(s not in _SCALES for s in scales):
            raise ValueError(
                f"ViTFeaturePyramid scales must be a non-empty subset of {list(_SCALES)}, "
                f"got {list(scales)}."
            )
        if 4.0 in scales and in_channels % 4:
            raise ValueError(
                f"The x4 level halves the channels twice, so in_channels must be divisible "
                f"by 4; got {in_channels}."
            )
        self.in_channels = in_channels
        self.scales = tuple(float(s) for s in scales)
        branches: list[nn.Module] = []
        projections: list[nn.Module] = []
        widths: list[int] = []
        for s in self.scales:
            branch, width = _scale_branch(in_channels, s, norm_layer)
            branches.append(branch)
            if out_channels is None:
                projections.append(nn.Identity())
                widths.append(width)
            else:
                projections.append(
                    nn.Sequential(
                        nn.Conv2d(width, out_channels, 1, bias=False),
                        norm_layer(out_channels),
                        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
                        norm_layer(out_channels),
                    )
                )
                widths.append(out_channels)
        self.branches = nn.ModuleList(branches)
        self.projections = nn.ModuleList(projections)
        self.out_channels: tuple[int, ...] = tuple(widths)

    def reductions(self, in_reduction: int) -> list[int]:
        """Stride of each output level given the stride of the input map.

        Args:
            in_reduction: Stride of the ViT map w.r.t. the image (the patch size).

        Returns:
            ``in_reduction / scale`` per level, rounded to an integer.

        Example:
            >>> ViTFeaturePyramid(in_channels=8, scales=(2.0, 1.0)).reductions(14)
            [7, 14]
        """
        return [round(in_reduction / s) for s in self.scales]

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        """Pyramid levels for ``features``, in the order of ``scales``."""
        if len(features) not in (1, len(self.scales)):
            raise ShapeError(
                f"ViTFeaturePyramid expects 1 or {len(self.scales)} maps (one per scale), "
                f"got {len(features)}."
            )
        maps = list(features) if len(features) > 1 else [features[0]] * len(self.scales)
        for f in maps:
            if f.ndim != 4 or f.shape[1] != self.in_channels:
                raise ShapeError(
                    f"ViTFeaturePyramid expects (N, {self.in_channels}, h, w) maps, got "
                    f"{tuple(f.shape)}. Set in_channels to the ViT embed dim."
                )
        pairs = zip(self.branches, self.projections, strict=True)
        return [proj(branch(f)) for f, (branch, proj) in zip(maps, pairs, strict=True)]
