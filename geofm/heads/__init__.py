"""Task heads, necks and the task models (segmentation, pooled) for geofm backbones.

Every head takes its input widths explicitly (``in_channels`` / ``in_features``),
so it works on any backbone: read them from ``backbone.feature_info`` (dense
heads) or ``backbone.embed_dim`` (pooled heads). Dense heads map a list of
NCHW feature maps to logits; :class:`SegmentationModel` chains backbone, neck
and head and resizes the logits to the input. :class:`PooledModel` chains the
backbone's pooled ``embed`` and a classification or regression head.

Example:
    >>> import torch
    >>> from geofm.heads import FCNHead, SegmentationModel
    >>> class Tiny(torch.nn.Module):
    ...     feature_info = []
    ...     def forward(self, x):
    ...         return [torch.nn.functional.avg_pool2d(x, 4)]
    >>> model = SegmentationModel(Tiny(), None, FCNHead(in_channels=3, num_classes=2))
    >>> model(torch.randn(2, 3, 16, 16)).shape
    torch.Size([2, 2, 16, 16])
"""

from __future__ import annotations

from geofm.heads.classification import ClassificationHead
from geofm.heads.convhead import ConvHead, FCNHead
from geofm.heads.fpn import (
    FPN,
    FPNSegmentationHead,
    SatlasUpsample,
    SimpleClassificationHead,
    SimpleSegmentationHead,
)
from geofm.heads.necks import LayerNorm2d, ViTFeaturePyramid
from geofm.heads.pooled import EmbeddingBackbone, PooledModel
from geofm.heads.regression import RegressionHead
from geofm.heads.segmentation import FeatureBackbone, SegmentationModel
from geofm.heads.upernet import UPerNetHead

__all__ = [
    "FPN",
    "ClassificationHead",
    "ConvHead",
    "FCNHead",
    "EmbeddingBackbone",
    "FPNSegmentationHead",
    "FeatureBackbone",
    "LayerNorm2d",
    "PooledModel",
    "RegressionHead",
    "SatlasUpsample",
    "SegmentationModel",
    "SimpleClassificationHead",
    "SimpleSegmentationHead",
    "UPerNetHead",
    "ViTFeaturePyramid",
]
