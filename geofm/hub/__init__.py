"""Whole models and the weights catalog, as users reach them: save, rebuild, push, look up, load.

- :mod:`geofm.hub.rebuild`: ``save_pretrained`` / ``from_pretrained`` /
  ``push_to_hub`` for backbones and task models (sits above
  :mod:`geofm.heads`); ``build_segmentation_model`` / ``build_pooled_model``
  make task models that record how to rebuild them.
- :mod:`geofm.hub.info`: catalog listings for the CLI.
- ``list_weights``, ``get_weights``, ``load_weights``, :class:`WeightsSpec` and
  :class:`LoadReport` live in :mod:`geofm.weights` (the loading side, below
  the backbones) and are re-exported here. Importing :mod:`geofm.hub` imports
  :mod:`geofm.backbones`, whose family files register the catalog entries,
  so the catalog is complete. Registration, resolution and converter
  functions are in :mod:`geofm.weights`.

huggingface_hub is imported only inside the functions that need the network.

Example:
    >>> from geofm.hub import LoadReport, get_weights
    >>> LoadReport().ok
    True
    >>> get_weights("resnet50.sentinel2_all_moco").sensor
    'ssl4eo_s12_sentinel2_l1c'
"""

from __future__ import annotations

import geofm.backbones  # noqa: F401  (the family files register the catalog entries)
from geofm.hub.rebuild import (
    ModuleSpec,
    build_pooled_model,
    build_segmentation_model,
    from_pretrained,
    push_to_hub,
    register_module,
    save_pretrained,
)
from geofm.weights import LoadReport, WeightsSpec, get_weights, list_weights, load_weights

__all__ = [
    "LoadReport",
    "ModuleSpec",
    "WeightsSpec",
    "build_pooled_model",
    "build_segmentation_model",
    "from_pretrained",
    "get_weights",
    "list_weights",
    "load_weights",
    "push_to_hub",
    "register_module",
    "save_pretrained",
]
