"""geofm: geospatial foundation-model components for PyTorch.

The top level is light: the backbone registry is imported on first use of
one of its names, and optional heavy dependencies (rasterio, huggingface_hub)
only inside the functions that need them.

Example:
    >>> import geofm
    >>> isinstance(geofm.__version__, str)
    True
    >>> geofm.list_backbones("dinov2_vit_s*")
    ['dinov2_vit_small_patch14']
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from geofm._version import __version__

if TYPE_CHECKING:
    from geofm.backbones import Backbone, create_backbone, list_backbones, register_backbone
    from geofm.input_spec import InputSpec, OutputSpec

__all__ = [
    "Backbone",
    "InputSpec",
    "OutputSpec",
    "__version__",
    "create_backbone",
    "list_backbones",
    "register_backbone",
]

_LAZY = {
    "Backbone": "geofm.backbones",
    "create_backbone": "geofm.backbones",
    "list_backbones": "geofm.backbones",
    "register_backbone": "geofm.backbones",
    "InputSpec": "geofm.input_spec",
    "OutputSpec": "geofm.input_spec",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'geofm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
