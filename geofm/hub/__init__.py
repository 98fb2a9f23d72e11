"""Pretrained weights: a verified catalog, safe offline-first loading, converters, save/load/push.

- :mod:`geofm.hub.catalog`: :class:`WeightsSpec` records of published
  checkpoints (``list_weights``, ``get_weights``), resolved to a local file
  through geofm's weights folder, the huggingface_hub cache or a download.
- :mod:`geofm.hub.load`: safe reading (safetensors, or ``torch.load`` with
  ``weights_only=True``), sha256 checks, strict loading with a :class:`LoadReport`.
- :mod:`geofm.hub.convert`: named converters from original checkpoint layouts.
- :mod:`geofm.hub.rebuild`: ``save_pretrained`` / ``from_pretrained`` / ``push_to_hub``.
- :mod:`geofm.hub.info`: catalog listings for the CLI.

Importing this package imports neither huggingface_hub nor the model
families; those are imported inside the functions that need them.

Example:
    >>> from geofm.hub import LoadReport, get_weights
    >>> LoadReport().ok
    True
    >>> get_weights("resnet50.sentinel2_all_moco").sensor
    'sentinel2_l1c'
"""

from __future__ import annotations

from geofm.hub.catalog import (
    ResolvedWeights,
    WeightsSpec,
    get_weights,
    list_weights,
    register_weights,
    resolve_weights,
    weights_for_backbone,
)
from geofm.hub.convert import get_converter, list_converters, register_converter
from geofm.hub.download import fetch_weights, weights_dir
from geofm.hub.info import describe_weights, format_weights_table
from geofm.hub.load import (
    LoadReport,
    file_sha256,
    load_state_dict,
    load_weights,
    read_state_dict,
    verify_sha256,
)
from geofm.hub.rebuild import (
    ModuleSpec,
    build_segmentation_model,
    from_pretrained,
    push_to_hub,
    save_pretrained,
)

__all__ = [
    "LoadReport",
    "ModuleSpec",
    "ResolvedWeights",
    "WeightsSpec",
    "build_segmentation_model",
    "describe_weights",
    "fetch_weights",
    "file_sha256",
    "format_weights_table",
    "from_pretrained",
    "get_converter",
    "get_weights",
    "list_converters",
    "list_weights",
    "load_state_dict",
    "load_weights",
    "push_to_hub",
    "read_state_dict",
    "register_converter",
    "register_weights",
    "resolve_weights",
    "save_pretrained",
    "verify_sha256",
    "weights_dir",
    "weights_for_backbone",
]
