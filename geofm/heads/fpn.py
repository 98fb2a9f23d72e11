"""Feature pyramid network and the dense heads that sit on it (ML4Earth, SatlasPretrain).

:class:`FPN` is the top-down pyramid of Lin et al. with the parameter layout of
``torchvision.ops.FeaturePyramidNetwork`` (``inner_blocks.{i}.0.*``,
``layer_blocks.{i}.0.*``), so a SatlasPretrain FPN checkpoint
(``intermediates.0.fpn.*``, out channels 128) loads strictly once the
``intermediates.0.fpn.`` prefix is stripped.

References:
    Lin et al., "Feature Pyramid Networks for Object Detection", CVPR 2017.
    torchvision ``torchvision/ops/feature_pyramid_network.py``.
    Bastani et al., "SatlasPretrain", ICCV 2023;
    https://github.com/allenai/satlaspretrain_models (``models/fpn.py``, ``models/heads.py``).
    ML4Earth 2024 team repo, https://github.com/tangos974/ml4earth (``src/model.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geofm._registry import register_module
from geofm.errors import ShapeError

__all__ = [
    "FPN",
    "FPNSegmentationHead",
    "SatlasUpsample",
    "SimpleClassificationHead",
    "SimpleSegmentationHead",
]


def _check_features(name: str, features: Sequence[Tensor], channels: Sequence[int]) -> None:
    """Raise if ``features`` do not match the expected count and channels."""
    if len(features) != len(channels):
        raise ShapeError(
            f"{name} expects {len(channels)} feature maps, got {len(features)}. "
            f"Pass one (N, C, H, W) map per entry of in_channels={list(channels)}."
        )
    for i, (f, c) in enumerate(zip(features, channels, strict=True)):
        if f.ndim != 4 or f.shape[1] != c:
            raise ShapeError(
                f"{name} feature map {i} has shape {tuple(f.shape)}; expected (N, {c}, H, W) "
                f"as set by in_channels={list(channels)}."
            )


def _conv_block(
    in_channels: int, out_channels: int, kernel_size: int, norm_layer: type[nn.Module] | None
) -> nn.Sequential:
    """Conv (+ norm), laid out like torchvision's ``Conv2dNormActivation`` without activation."""
    layers: list[nn.Module] = [
        nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            padding=kernel_size // 2,
            bias=norm_layer is None,
        )
    ]
    if norm_layer is not None:
        layers.append(norm_layer(out_channels))
    return nn.Sequential(*layers)


@register_module()
class FPN(nn.Module):
    """Top-down feature pyramid with torchvision's state-dict layout.

    Each input map gets a 1x1 lateral conv (``inner_blocks``); the coarser
    merged map is upsampled (nearest, to the finer map's size) and added; a
    3x3 conv (``layer_blocks``) then smooths every level. Weights are
    initialised like torchvision (Kaiming-uniform, ``a=1``; zero bias).

    Args:
        in_channels: Channels of each input map, finest first.
        out_channels: Channels of every output map (SatlasPretrain: 128;
            ML4Earth: 256).
        norm_layer: Optional normalisation after each conv, built as
            ``norm_layer(out_channels)`` (the convs then have no bias).

    Shape:
        - Input: list of ``(N, in_channels[i], H_i, W_i)``, finest first.
        - Output: list of ``(N, out_channels, H_i, W_i)``, same order.

    Raises:
        ValueError: If ``in_channels`` is empty or a channel count is not positive.
        ShapeError: In ``forward``, if the maps do not match ``in_channels``.

    Example:
        >>> fpn = FPN(in_channels=[8, 16], out_channels=4)
        >>> outs = fpn([torch.randn(1, 8, 8, 8), torch.randn(1, 16, 4, 4)])
        >>> [tuple(o.shape) for o in outs]
        [(1, 4, 8, 8), (1, 4, 4, 4)]
        >>> sorted(fpn.state_dict())[:2]
        ['inner_blocks.0.0.bias', 'inner_blocks.0.0.weight']
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: int = 256,
        *,
        norm_layer: type[nn.Module] | None = None,
    ) -> None:
        super().__init__()
        if len(in_channels) == 0 or min(in_channels) <= 0 or out_channels <= 0:
            raise ValueError(
                f"FPN needs a non-empty list of positive in_channels and a positive "
                f"out_channels; got in_channels={list(in_channels)}, out_channels={out_channels}."
            )
        self.in_channels = tuple(in_channels)
        self.out_channels = out_channels
        self.inner_blocks = nn.ModuleList(
            _conv_block(c, out_channels, 1, norm_layer) for c in in_channels
        )
        self.layer_blocks = nn.ModuleList(
            _conv_block(out_channels, out_channels, 3, norm_layer) for _ in in_channels
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        """Pyramid outputs for ``features``; see the class docstring for shapes."""
        _check_features("FPN", features, self.in_channels)
        last = self.inner_blocks[-1](features[-1])
        outputs = [self.layer_blocks[-1](last)]
        for i in range(len(features) - 2, -1, -1):
            lateral = self.inner_blocks[i](features[i])
            last = lateral + F.interpolate(last, size=lateral.shape[-2:], mode="nearest")
            outputs.insert(0, self.layer_blocks[i](last))
        return outputs


@register_module()
class FPNSegmentationHead(nn.Module):
    """ML4Earth's segmentation head on FPN outputs.

    ``fuse="coarsest"`` (the ML4Earth setting) uses only the last (coarsest)
    pyramid level: Conv3x3(C -> hidden) -> ReLU -> Conv1x1(hidden -> classes).
    ``fuse="sum"`` first upsamples every level bilinearly to the finest one and
    sums them, then applies the same two convs. The logits stay at the used
    level's resolution; :class:`~geofm.heads.SegmentationModel` resizes them
    bilinearly to the input (ML4Earth: x32).

    Args:
        in_channels: Channels of the FPN maps (all levels share it).
        num_classes: Number of output classes.
        hidden_channels: Width of the 3x3 conv (ML4Earth: 128).
        fuse: Which pyramid levels feed the convs: ``"coarsest"`` or ``"sum"``.

    Shape:
        - Input: list of ``(N, in_channels, H_i, W_i)``, finest first.
        - Output: ``(N, num_classes, H_k, W_k)`` with ``k`` the last level
          (``"coarsest"``) or the first level (``"sum"``).

    Raises:
        ShapeError: In ``forward``, if a map does not have ``in_channels`` channels.

    Example:
        >>> head = FPNSegmentationHead(in_channels=4, num_classes=3)
        >>> head([torch.randn(2, 4, 8, 8), torch.randn(2, 4, 4, 4)]).shape
        torch.Size([2, 3, 4, 4])
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        hidden_channels: int = 128,
        fuse: Literal["coarsest", "sum"] = "coarsest",
    ) -> None:
        super().__init__()
        if fuse not in ("coarsest", "sum"):
            raise ValueError(f"fuse must be 'coarsest' or 'sum', got {fuse!r}.")
        self.in_channels = in_channels
        self.fuse = fuse
        self.conv = nn.Conv2d(in_channels, hidden_channels, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.classifier = nn.Conv2d(hidden_channels, num_classes, 1)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        """Logits for ``features``; see the class docstring for shapes."""
        if len(features) == 0:
            raise ShapeError("FPNSegmentationHead got no feature maps; pass at least one.")
        _check_features("FPNSegmentationHead", features, [self.in_channels] * len(features))
        if self.fuse == "coarsest":
            x = features[-1]
        else:
            size = features[0].shape[-2:]
            x = features[0]
            for f in features[1:]:
                x = x + F.interpolate(f, size=size, mode="bilinear", align_corners=False)
        out: Tensor = self.classifier(self.act(self.conv(x)))
        return out


@register_module()
class SatlasUpsample(nn.Module):
    """SatlasPretrain's ``Upsample``: bring the finest FPN level to input resolution.

    Applies ``log2(reduction)`` stages of Conv3x3 -> ReLU ->
    ConvTranspose(4, stride 2, padding 1) -> ReLU to the first map and prepends
    the result to the input list. The parameter names (``layers.{i}.{0,2}.*``)
    match SatlasPretrain's module.

    Args:
        in_channels: Channels of the first map (Satlas: the FPN's 128).
        reduction: Stride of the first map w.r.t. the input (a power of two;
            Satlas: 4, giving two stages).

    Shape:
        - Input: list of maps, the first ``(N, in_channels, H / reduction, W / reduction)``.
        - Output: ``[(N, in_channels, H, W)] + input``.

    Raises:
        ValueError: If ``reduction`` is not a power of two.
        ShapeError: In ``forward``, if the first map has the wrong channel count.

    Example:
        >>> up = SatlasUpsample(in_channels=4, reduction=4)
        >>> [tuple(o.shape) for o in up([torch.randn(1, 4, 3, 3)])]
        [(1, 4, 12, 12), (1, 4, 3, 3)]
    """

    def __init__(self, in_channels: int, *, reduction: int = 4) -> None:
        super().__init__()
        if reduction < 1 or reduction & (reduction - 1):
            raise ValueError(f"reduction must be a power of two (1, 2, 4, ...), got {reduction}.")
        self.in_channels = in_channels
        self.layers = nn.Sequential(
            *(
                nn.Sequential(
                    nn.Conv2d(in_channels, in_channels, 3, padding=1),
                    nn.ReLU(inplace=True),
                    nn.ConvTranspose2d(in_channels, in_channels, 4, stride=2, padding=1),
                    nn.ReLU(inplace=True),
                )
                for _ in range(int(math.log2(reduction)))
            )
        )

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        """Pyramid outputs for ``features``; see the class docstring for shapes."""
        if len(features) == 0:
            raise ShapeError("SatlasUpsample got no feature maps; pass at least one.")
        _check_features("SatlasUpsample", features[:1], [self.in_channels])
        return [self.layers(features[0]), *features]


@register_module()
class SimpleSegmentationHead(nn.Module):
    """SatlasPretrain's ``SimpleHead`` for segmentation: two 3x3 convs on the first map.

    Conv3x3(C -> C) -> ReLU -> Conv3x3(C -> classes), applied to ``features[0]``
    (after :class:`SatlasUpsample` that is the full-resolution map). Parameter
    names ``layers.0.0.*`` and ``layers.1.*`` match SatlasPretrain.

    Args:
        in_channels: Channels of the first map.
        num_classes: Number of output classes.

    Shape:
        - Input: list of maps, the first ``(N, in_channels, H, W)``.
        - Output: ``(N, num_classes, H, W)``.

    Raises:
        ShapeError: In ``forward``, if the first map has the wrong channel count.

    Example:
        >>> SimpleSegmentationHead(in_channels=4, num_classes=2)([torch.randn(1, 4, 6, 6)]).shape
        torch.Size([1, 2, 6, 6])
    """

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.layers = nn.Sequential(
            nn.Sequential(nn.Conv2d(in_channels, in_channels, 3, padding=1), nn.ReLU(inplace=True)),
            nn.Conv2d(in_channels, num_classes, 3, padding=1),
        )

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        """Logits for ``features``; see the class docstring for shapes."""
        if len(features) == 0:
            raise ShapeError("SimpleSegmentationHead got no feature maps; pass at least one.")
        _check_features("SimpleSegmentationHead", features[:1], [self.in_channels])
        out: Tensor = self.layers(features[0])
        return out


@register_module()
class SimpleClassificationHead(nn.Module):
    """SatlasPretrain's ``SimpleHead`` for (multi-label) classification.

    Conv3x3(C -> C) -> ReLU on ``features[0]``, global **max** pool, then
    Linear(C -> classes). Use cross-entropy for single-label and
    BCE-with-logits for multi-label targets. Parameter names ``layers.0.0.*``
    and ``extra.*`` match SatlasPretrain.

    Args:
        in_channels: Channels of the first map.
        num_classes: Number of output logits.

    Shape:
        - Input: list of maps, the first ``(N, in_channels, H, W)``.
        - Output: ``(N, num_classes)``.

    Raises:
        ShapeError: In ``forward``, if the first map has the wrong channel count.

    Example:
        >>> SimpleClassificationHead(in_channels=4, num_classes=5)([torch.randn(2, 4, 6, 6)]).shape
        torch.Size([2, 5])
    """

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.layers = nn.Sequential(
            nn.Sequential(nn.Conv2d(in_channels, in_channels, 3, padding=1), nn.ReLU(inplace=True)),
        )
        self.extra = nn.Linear(in_channels, num_classes)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        """Logits for ``features``; see the class docstring for shapes."""
        if len(features) == 0:
            raise ShapeError("SimpleClassificationHead got no feature maps; pass at least one.")
        _check_features("SimpleClassificationHead", features[:1], [self.in_channels])
        pooled = torch.amax(self.layers(features[0]), dim=(2, 3))  # (N, C)
        out: Tensor = self.extra(pooled)
        return out
