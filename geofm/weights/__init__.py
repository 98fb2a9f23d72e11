"""Pretrained weights, the loading side: catalog type, resolution, download, hash check, safe load.

This package knows no model class (it sits below :mod:`geofm.backbones`):

- :mod:`geofm.weights.catalog`: :class:`WeightsSpec` records of published
  checkpoints (``register_weights``, ``get_weights``, ``list_weights``),
  resolved to a local file through geofm's weights folder, the
  huggingface_hub cache or a download (``resolve_weights``).
- :mod:`geofm.weights.download`: the local folder and huggingface_hub fetch.
- :mod:`geofm.weights.load`: safe reading (safetensors, or ``torch.load`` with
  ``weights_only=True``), sha256 checks, strict loading with a :class:`LoadReport`.
- :mod:`geofm.weights.convert`: the converter registry.

The catalog entries and the converters themselves live with the model
families that own them (``geofm/backbones/<family>.py``), so they are
registered when :mod:`geofm.backbones` is imported; :mod:`geofm.hub`, which
users import for ``get_weights`` / ``list_weights`` / ``load_weights``, does
that. Saving and rebuilding whole models (``save_pretrained``,
``from_pretrained``, ``push_to_hub``) sits above the task models, in
:mod:`geofm.hub`.

Importing this package imports neither huggingface_hub nor any model family.

Example:
    >>> import torch
    >>> from geofm.weights import LoadReport, WeightsSpec
    >>> LoadReport().ok
    True
    >>> WeightsSpec(name="resnet18.my_data", repo_id="org/repo").tag
    'my_data'
"""

from __future__ import annotations

from geofm.weights.catalog import (
    ResolvedWeights,
    WeightsSpec,
    get_weights,
    list_weights,
    register_weights,
    resolve_pretrained,
    resolve_weights,
    weights_for_backbone,
)
from geofm.weights.convert import Converter, get_converter, list_converters, register_converter
from geofm.weights.download import fetch_weights, weights_dir
from geofm.weights.load import (
    LoadReport,
    StateDict,
    file_sha256,
    load_weights,
    read_state_dict,
    verify_sha256,
)

__all__ = [
    "Converter",
    "LoadReport",
    "ResolvedWeights",
    "StateDict",
    "WeightsSpec",
    "fetch_weights",
    "file_sha256",
    "get_converter",
    "get_weights",
    "list_converters",
    "list_weights",
    "load_weights",
    "read_state_dict",
    "register_converter",
    "register_weights",
    "resolve_pretrained",
    "resolve_weights",
    "verify_sha256",
    "weights_dir",
    "weights_for_backbone",
]
