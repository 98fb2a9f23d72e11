"""SpectralEarth's dense heads: ``ConvHead`` for ViT maps and ``FCNHead`` for dilated ResNets.

References:
    Braham et al., "SpectralEarth: Training Hyperspectral Foundation Models at
    Scale", arXiv:2408.08447; https://github.com/AABNassim/spectral_earth
    (``src/models/semantic_segmentation_module.py``).
    Long et al., "Fully Convolutional Networks for Semantic Segmentation", CVPR 2015.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from geofm._registry import register_module
from geofm.errors import ShapeError

__all__ = ["ConvHead", "FCNHead"]


def _last_map(name: str, features: Sequence[Tensor], channels: int) -> Tensor:
    """The last feature map, checked to be ``(N, channels, H, W)``."""
    if len(features) == 0:
        raise ShapeError(f"{name} got no feature maps; pass at least one (N, C, H, W) map.")
    x = features[-1]
    if x.ndim != 4 or x.shape[1] != channels:
        raise ShapeError(
            f"{name} expects its last feature map as (N, {channels}, H, W), got "
            f"{tuple(x.shape)}. Set in_channels to the backbone's last feature channels."
        )
    return x


@register_module()
class ConvHead(nn.Module):
    """SpectralEarth's upsampling conv head for ViT feature maps.

    ``num_stages`` stages of bilinear x2 upsampling -> Conv3x3, with widths
    ``base_channels, base_channels / 2, ...`` and BatchNorm + ReLU after every
    conv except the last, which outputs the class logits. SpectralEarth uses
    ``num_stages = log2(patch_size)`` (2 for its patch-4 Spec-ViT), so the
    logits come out at input resolution; otherwise
    :class:`~geofm.heads.SegmentationModel` resizes the rest of the way.

    Args:
        in_channels: Channels of the ViT map (the embed dim ``D``).
        num_classes: Number of output classes.
        num_stages: Number of x2 upsampling stages (at least 1).
        base_channels: Width of the first stage; halves every stage (minimum 1).

    Shape:
        - Input: list of maps; the last is ``(N, in_channels, h, w)``.
        - Output: ``(N, num_classes, h * 2**num_stages, w * 2**num_stages)``.

    Raises:
        ValueError: If ``num_stages < 1``.
        ShapeError: In ``forward``, if the last map has the wrong channel count.

    Example:
        >>> import torch
        >>> head = ConvHead(in_channels=8, num_classes=3, num_stages=2)
        >>> head([torch.randn(2, 8, 4, 4)]).shape
        torch.Size([2, 3, 16, 16])
    """

    def __init__(
        self, in_channels: int, num_classes: int, *, num_stages: int = 2, base_channels: int = 128
    ) -> None:
        super().__init__()
        if num_stages < 1:
            raise ValueError(f"ConvHead needs num_stages >= 1, got {num_stages}.")
        self.in_channels = in_channels
        layers: list[nn.Module] = []
        channels = in_channels
        for i in range(num_stages):
            last = i == num_stages - 1
            out = num_classes if last else max(base_channels // 2**i, 1)
            layers += [
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(channels, out, 3, padding=1),
            ]
            if not last:
                layers += [nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            channels = out
        self.layers = nn.Sequential(*layers)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        """Logits from the last map of ``features``."""
        out: Tensor = self.layers(_last_map("ConvHead", features, self.in_channels))
        return out


@register_module()
class FCNHead(nn.Module):
    """FCN head as SpectralEarth uses it on dilated (output-stride 1) ResNets.

    Conv3x3(C -> hidden, no bias) -> BatchNorm -> ReLU -> Conv1x1(hidden -> classes)
    on the last feature map; :class:`~geofm.heads.SegmentationModel` resizes
    the logits bilinearly to the input.

    Args:
        in_channels: Channels of the last feature map (SpectralEarth: 2048).
        num_classes: Number of output classes.
        hidden_channels: Width of the 3x3 conv; ``None`` means
            ``in_channels // 8`` (SpectralEarth: 2048 -> 256), at least 1.

    Shape:
        - Input: list of maps; the last is ``(N, in_channels, h, w)``.
        - Output: ``(N, num_classes, h, w)``.

    Raises:
        ShapeError: In ``forward``, if the last map has the wrong channel count.

    Example:
        >>> import torch
        >>> FCNHead(in_channels=16, num_classes=4)([torch.randn(2, 16, 8, 8)]).shape
        torch.Size([2, 4, 8, 8])
    """

    def __init__(
        self, in_channels: int, num_classes: int, *, hidden_channels: int | None = None
    ) -> None:
        super().__init__()
        hidden = max(in_channels // 8, 1) if hidden_channels is None else hidden_channels
        self.in_channels = in_channels
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 3, padding=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, num_classes, 1),
        )

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        """Logits from the last map of ``features``."""
        out: Tensor = self.layers(_last_map("FCNHead", features, self.in_channels))
        return out
