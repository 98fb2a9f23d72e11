"""Backbone registry and families.

Families register themselves on import: ``vit`` (the one ViT class; DINOv2 and
ViT variants), ``dofa`` and ``spectral`` (DOFA and SpectralEarth Spec-ViT as
configurations of that ViT, plus Spec-RN50), ``skysense`` (SkySense-O visual
encoder), ``swin`` (timm SwinV2 and the torchvision/Satlas layout) and
``resnet``. Each family file owns its variants (one table row, or one
builder, per registered name), its weights catalog entries and its
checkpoint converters, as timm's family files own their ``default_cfgs``.

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
    TimmBackbone,
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
    "TimmBackbone",
    "adapt_input_weight",
    "create_backbone",
    "get_backbone_entry",
    "list_backbones",
    "register_backbone",
]
