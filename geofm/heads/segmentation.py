"""``SegmentationModel``: backbone -> optional neck -> dense head -> logits at input size.

The backbone is any module whose ``forward`` returns a list of NCHW feature
maps and that describes them in ``feature_info`` (every geofm backbone does;
see :class:`FeatureBackbone`). The head's logits are resized bilinearly to the
input's height and width, as ML4Earth (x32) and SpectralEarth (FCN) do.

References:
    The encoder/decoder split follows segmentation_models_pytorch and
    MMSegmentation's ``EncoderDecoder``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch.nn.functional as F
from torch import Tensor, nn

from geofm._registry import HubMixin, register_module
from geofm.errors import ShapeError
from geofm.heads._checks import BackboneSpecMixin, check_backbone
from geofm.input_spec import OutputSpec

__all__ = ["FeatureBackbone", "SegmentationModel"]


def _check_maps(stage: str, features: object) -> None:
    if not isinstance(features, (list, tuple)) or not all(
        isinstance(f, Tensor) and f.ndim == 4 for f in features
    ):
        got = (
            [tuple(f.shape) if isinstance(f, Tensor) else type(f).__name__ for f in features]
            if isinstance(features, (list, tuple))
            else type(features).__name__
        )
        raise ShapeError(
            f"The {stage} must return a list of (N, C, H, W) maps, got {got}. "
            f"geofm backbones always return NCHW lists."
        )


class _FeatureInfo(Protocol):
    @property
    def channels(self) -> int: ...

    @property
    def reduction(self) -> int: ...


@runtime_checkable
class FeatureBackbone(Protocol):
    """What :class:`SegmentationModel` needs from a backbone.

    An ``nn.Module`` whose call returns one NCHW map per output level and whose
    ``feature_info`` lists each level's ``channels`` and ``reduction`` (stride
    w.r.t. the input). ``geofm.backbones.Backbone`` satisfies it.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> class Tiny(nn.Module):
        ...     feature_info = []
        ...     def forward(self, x):
        ...         return [x]
        >>> isinstance(Tiny(), FeatureBackbone)
        True
    """

    @property
    def feature_info(self) -> Sequence[_FeatureInfo]:
        """Channels and reduction of each returned map."""
        ...

    def __call__(self, x: Tensor) -> list[Tensor]:
        """One ``(N, C_i, H_i, W_i)`` map per entry of ``feature_info``."""
        ...


@register_module()
class SegmentationModel(BackboneSpecMixin, HubMixin, nn.Module):
    """Backbone, optional neck and dense head, returning logits at input resolution.

    Args:
        backbone: Module returning a list of ``(N, C_i, H_i, W_i)`` maps, with
            ``feature_info`` (see :class:`FeatureBackbone`).
        neck: Module mapping that list to another list of maps (e.g.
            :class:`~geofm.heads.FPN`, :class:`~geofm.heads.ViTFeaturePyramid`),
            or ``None`` to feed the backbone maps to the head directly.
        head: Module mapping a list of maps to ``(N, K, h, w)`` logits.
        output_spec: What the output means (class names, colours), saved with
            the model and used for map colours; or ``None``.

    Attributes:
        input_spec: The backbone's :class:`~geofm.InputSpec` (what
            :func:`geofm.geo.predict_raster` prepares input for).
        output_spec: The :class:`~geofm.OutputSpec` given, or ``None``.

    Shape:
        - Input: ``(N, C, H, W)``.
        - Output: ``(N, K, H, W)``: the head's logits, bilinearly resized
          (``align_corners=False``) when ``(h, w) != (H, W)``.

    Raises:
        TypeError: If ``backbone`` is not an ``nn.Module`` with ``feature_info``.
        ShapeError: In ``forward``, if the input is not 4-D, the backbone or
            neck does not return a list of 4-D maps, or the head does not
            return a 4-D tensor.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from geofm.heads import FPN, FPNSegmentationHead
        >>> class Tiny(nn.Module):
        ...     feature_info = []
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.a = nn.Conv2d(3, 8, 4, stride=4)
        ...         self.b = nn.Conv2d(8, 16, 2, stride=2)
        ...     def forward(self, x):
        ...         f1 = self.a(x)
        ...         return [f1, self.b(f1)]
        >>> model = SegmentationModel(
        ...     Tiny(), FPN([8, 16], out_channels=8), FPNSegmentationHead(8, num_classes=5)
        ... )
        >>> model(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 5, 32, 32])
    """

    def __init__(
        self,
        backbone: FeatureBackbone,
        neck: nn.Module | None,
        head: nn.Module,
        *,
        output_spec: OutputSpec | None = None,
    ) -> None:
        super().__init__()
        check_backbone(backbone, FeatureBackbone, owner="SegmentationModel", needs="feature_info")
        self.backbone = backbone
        self.neck = neck
        self.head = head
        self.output_spec = output_spec

    def forward(self, x: Tensor) -> Tensor:
        """Logits at the resolution of ``x``."""
        if x.ndim != 4:
            raise ShapeError(
                f"SegmentationModel expects an (N, C, H, W) batch, got shape {tuple(x.shape)}."
            )
        features = self.backbone(x)
        _check_maps("backbone", features)
        if self.neck is not None:
            features = self.neck(features)
            _check_maps("neck", features)
        logits: Tensor = self.head(features)
        if not isinstance(logits, Tensor) or logits.ndim != 4:
            shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
            raise ShapeError(f"The head must return (N, K, h, w) logits, got {shape}.")
        if logits.shape[-2:] != x.shape[-2:]:
            logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return logits
