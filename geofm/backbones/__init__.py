"""Backbone registry and families.

Families register themselves on import: ``vit`` (DINOv2 and ViT), ``spectral``
(SpectralEarth Spec-ViT / Spec-RN50), ``skysense`` (SkySense-O visual encoder), ``dofa``
(DOFA's wavelength-conditioned ViT), ``swin``
(timm SwinV2 and the torchvision/Satlas layout) and ``resnet``.

Example:
    >>> import geofm
    >>> "resnet50" in geofm.list_backbones()
    True
"""

from __future__ import annotations

from geofm.backbones import dofa, resnet, skysense, spectral, swin, vit  # noqa: F401  (registration side effects)
from geofm.backbones.adapt import AdaptationReport, ChannelOrigin, adapt_input_weight
from geofm.backbones.base import (
    Backbone,
    BackboneConfig,
    BackboneEntry,
    FeatureInfo,
    create_backbone,
    get_backbone_entry,
    list_backbones,
    register_backbone,
)

__all__ = [
    "AdaptationReport",
    "Backbone",
    "BackboneConfig",
    "BackboneEntry",
    "ChannelOrigin",
    "FeatureInfo",
    "adapt_input_weight",
    "create_backbone",
    "get_backbone_entry",
    "list_backbones",
    "register_backbone",
]
