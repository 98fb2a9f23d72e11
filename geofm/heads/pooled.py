"""``PooledModel``: backbone pooled embedding -> head, for image-level tasks.

The counterpart of :class:`~geofm.heads.SegmentationModel` for classification,
multi-label classification and regression: the backbone's ``embed(x)`` gives
one ``(N, D)`` vector per image (every geofm backbone pools this way) and the
head maps it to logits or regression outputs.

References:
    timm's ``forward_features`` -> ``forward_head`` split; VICReg's and
    SpectralEarth's linear evaluation on pooled embeddings.
"""

from __future__ import annotations

from typing import Protocol, cast, runtime_checkable

from torch import Tensor, nn

from geofm._registry import HubMixin, register_module
from geofm.errors import ShapeError
from geofm.heads._checks import BackboneSpecMixin, check_backbone
from geofm.input_spec import OutputSpec

__all__ = ["EmbeddingBackbone", "PooledModel"]


@runtime_checkable
class EmbeddingBackbone(Protocol):
    """What :class:`PooledModel` needs from a backbone: ``embed(x) -> (N, D)``.

    ``geofm.backbones.Backbone`` satisfies it.

    Example:
        >>> import torch
        >>> class Mean(torch.nn.Module):
        ...     def embed(self, x):
        ...         return x.mean(dim=(2, 3))
        >>> isinstance(Mean(), EmbeddingBackbone)
        True
    """

    def embed(self, x: Tensor) -> Tensor:
        """Pooled embeddings ``(N, D)`` of a batch ``(N, C, H, W)``."""
        ...


@register_module()
class PooledModel(BackboneSpecMixin, HubMixin, nn.Module):
    """Backbone pooled embedding followed by a head: ``head(backbone.embed(x))``.

    Works with any head on ``(N, D)`` embeddings:
    :class:`~geofm.heads.ClassificationHead` (multi-class or multi-label,
    logits), :class:`~geofm.heads.RegressionHead` or a plain ``nn.Linear``.
    ``input_spec`` is the backbone's, when it has one.

    Args:
        backbone: Module with ``embed(x) -> (N, D)`` (see :class:`EmbeddingBackbone`).
        head: Module mapping ``(N, D)`` embeddings to the task outputs.
        output_spec: What the output means (kind, class names, units), saved
            with the model; or ``None``.

    Attributes:
        backbone: The backbone.
        head: The head.
        input_spec: The backbone's :class:`~geofm.InputSpec`.
        output_spec: The :class:`~geofm.OutputSpec` given, or ``None``.

    Shape:
        - Input: ``(N, C, H, W)``.
        - Output: the head's output, e.g. ``(N, K)`` logits or ``(N, T)`` targets.

    Raises:
        TypeError: If ``backbone`` is not an ``nn.Module`` with ``embed`` or
            ``head`` is not an ``nn.Module``.
        ShapeError: In ``forward``, if the input is not 4-D or the backbone's
            ``embed`` does not return ``(N, D)``.

    Example:
        >>> import torch
        >>> from geofm.heads import ClassificationHead
        >>> class Tiny(torch.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.conv = torch.nn.Conv2d(3, 8, 4, stride=4)
        ...     def embed(self, x):
        ...         return self.conv(x).mean(dim=(2, 3))
        >>> model = PooledModel(Tiny(), ClassificationHead(in_features=8, num_classes=5))
        >>> model(torch.randn(2, 3, 16, 16)).shape
        torch.Size([2, 5])
    """

    def __init__(
        self, backbone: nn.Module, head: nn.Module, *, output_spec: OutputSpec | None = None
    ) -> None:
        super().__init__()
        check_backbone(
            backbone, EmbeddingBackbone, owner="PooledModel", needs="an embed(x) -> (N, D) method"
        )
        if not isinstance(head, nn.Module):
            raise TypeError(
                f"PooledModel needs an nn.Module head, got {type(head).__name__}. Wrap the "
                f"function in an nn.Module or use geofm.heads.ClassificationHead / RegressionHead."
            )
        self.backbone = backbone
        self.head = head
        self.output_spec = output_spec

    def embed(self, x: Tensor) -> Tensor:
        """The backbone's pooled embeddings of a batch.

        Args:
            x: Images ``(N, C, H, W)``.

        Returns:
            Embeddings ``(N, D)``, the head's input.

        Raises:
            ShapeError: If ``x`` is not 4-D or the embeddings are not ``(N, D)``.
        """
        if x.ndim != 4:
            raise ShapeError(
                f"PooledModel expects an (N, C, H, W) batch, got shape {tuple(x.shape)}."
            )
        embeddings = cast(EmbeddingBackbone, self.backbone).embed(x)
        if not isinstance(embeddings, Tensor) or embeddings.ndim != 2:
            got = tuple(embeddings.shape) if isinstance(embeddings, Tensor) else type(embeddings)
            raise ShapeError(
                f"PooledModel's backbone.embed must return (N, D) embeddings, got {got}. "
                f"Pool the features to one vector per image."
            )
        return embeddings

    def forward(self, x: Tensor) -> Tensor:
        """The head's outputs for ``x`` ``(N, C, H, W)``."""
        out: Tensor = self.head(self.embed(x))
        return out
