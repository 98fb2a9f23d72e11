"""UPerNet decode head: pyramid pooling on the coarsest map plus an FPN, fused at the finest level.

References:
    Xiao et al., "Unified Perceptual Parsing for Scene Understanding", ECCV 2018.
    Zhao et al., "Pyramid Scene Parsing Network" (PPM), CVPR 2017.
    The layer arrangement follows the widely used MMSegmentation ``UPerHead``
    (https://github.com/open-mmlab/mmsegmentation, ``mmseg/models/decode_heads/uper_head.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geofm._registry import register_module
from geofm.errors import ShapeError

__all__ = ["UPerNetHead"]


def _conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def _resize(x: Tensor, size: torch.Size) -> Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


@register_module()
class UPerNetHead(nn.Module):
    """UPerNet head for multi-scale features (CNN stages or a ViT pyramid).

    The coarsest map goes through a pyramid pooling module (adaptive average
    pools at ``pool_scales``, each Conv1x1-BN-ReLU, upsampled and concatenated
    with the map, then Conv3x3-BN-ReLU). The other maps get Conv1x1-BN-ReLU
    laterals; a top-down pathway adds bilinearly upsampled coarser levels;
    each level except the coarsest gets a Conv3x3-BN-ReLU; all levels are
    upsampled to the finest, concatenated and fused by Conv3x3-BN-ReLU;
    dropout and a Conv1x1 give the logits at the finest level's resolution.

    Args:
        in_channels: Channels of each input map, finest first.
        num_classes: Number of output classes.
        channels: Width of every internal conv (MMSegmentation uses 512).
        pool_scales: Output sizes of the pyramid pooling module.
        dropout: Dropout probability before the classifier.

    Shape:
        - Input: list of ``(N, in_channels[i], H_i, W_i)``, finest first.
        - Output: ``(N, num_classes, H_0, W_0)``.

    Raises:
        ValueError: If ``in_channels`` or ``pool_scales`` is empty.
        ShapeError: In ``forward``, if the maps do not match ``in_channels``.

    Note:
        BatchNorm after the 1x1 pool needs more than one sample per batch in
        training mode, as in MMSegmentation.

    Example:
        >>> import torch
        >>> head = UPerNetHead(in_channels=[4, 8], num_classes=3, channels=8)
        >>> head([torch.randn(2, 4, 8, 8), torch.randn(2, 8, 4, 4)]).shape
        torch.Size([2, 3, 8, 8])
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        num_classes: int,
        *,
        channels: int = 256,
        pool_scales: Sequence[int] = (1, 2, 3, 6),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if len(in_channels) == 0 or len(pool_scales) == 0:
            raise ValueError(
                f"UPerNetHead needs non-empty in_channels and pool_scales; got "
                f"in_channels={list(in_channels)}, pool_scales={list(pool_scales)}."
            )
        self.in_channels = tuple(in_channels)
        last = in_channels[-1]
        self.pool_branches = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(s), _conv_bn_relu(last, channels, 1))
            for s in pool_scales
        )
        self.pool_bottleneck = _conv_bn_relu(last + len(pool_scales) * channels, channels, 3)
        self.lateral_convs = nn.ModuleList(_conv_bn_relu(c, channels, 1) for c in in_channels[:-1])
        self.fpn_convs = nn.ModuleList(
            _conv_bn_relu(channels, channels, 3) for _ in in_channels[:-1]
        )
        self.fuse = _conv_bn_relu(len(in_channels) * channels, channels, 3)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        """Logits at the finest level of ``features``."""
        if len(features) != len(self.in_channels) or any(
            f.ndim != 4 or f.shape[1] != c for f, c in zip(features, self.in_channels, strict=True)
        ):
            raise ShapeError(
                f"UPerNetHead expects {len(self.in_channels)} maps with channels "
                f"{list(self.in_channels)}, got shapes {[tuple(f.shape) for f in features]}."
            )
        top = features[-1]
        pooled = [top] + [_resize(branch(top), top.shape[-2:]) for branch in self.pool_branches]
        laterals = [conv(f) for conv, f in zip(self.lateral_convs, features[:-1], strict=True)]
        laterals.append(self.pool_bottleneck(torch.cat(pooled, dim=1)))
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + _resize(laterals[i], laterals[i - 1].shape[-2:])
        outs = [conv(x) for conv, x in zip(self.fpn_convs, laterals[:-1], strict=True)]
        outs.append(laterals[-1])
        size = outs[0].shape[-2:]
        fused = self.fuse(torch.cat([outs[0]] + [_resize(o, size) for o in outs[1:]], dim=1))
        out: Tensor = self.classifier(self.dropout(fused))
        return out
