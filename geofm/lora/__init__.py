"""LoRA for vision backbones: fused-qkv aware, conv aware, exact merge, PEFT-compatible files.

``apply_lora(model, LoRAConfig(...))`` wraps the selected ``nn.Linear`` /
``nn.Conv2d`` layers (grouped and depthwise convolutions included) of any model
in place (keeping every state-dict key), :func:`mark_only_lora_trainable`
freezes the rest, :func:`merge_lora` folds the adapters in for inference (safe:
a NaN/inf adapter raises before any weight is written), :func:`merge_and_unload`
and :func:`unload` give back plain layers, :func:`save_lora` / :func:`load_lora`
store adapters as safetensors and :func:`to_peft` / :func:`from_peft` exchange
them with PEFT. :func:`get_lora_config` reads back the config an adapted model
was built with.

PEFT's habits: named adapters (``adapter_name=`` of :func:`apply_lora`,
:func:`load_lora`, :func:`from_peft`; :func:`set_adapter`,
:func:`delete_adapter`, :func:`list_adapters`, :func:`get_active_adapter`) and
the context manager :func:`disable_adapters`. ``LoRAConfig`` defaults to
``alpha=16`` (scaling 2 at rank 8); PEFT's default is ``lora_alpha=8``.

The ``weight`` contract: a wrapper takes over the base layer's own ``weight`` and
``bias`` Parameters (same objects, same state-dict keys) instead of holding the
layer as a child, and adds ``lora_A`` / ``lora_B``. Reading ``wrapper.weight``
returns the effective weight ``W0 + s * B A`` (a tensor, not a ``Parameter``), so
models that call ``F.linear(x, layer.weight)`` themselves see the adapter;
``wrapper.base_weight`` is the stored ``W0``. Unsupported layer types raise
:class:`geofm.errors.UnsupportedModuleError`.

References:
    - Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", ICLR 2022.
      https://arxiv.org/abs/2106.09685
    - PEFT: https://github.com/huggingface/peft

Example:
    >>> import torch
    >>> from torch import nn
    >>> from geofm.lora import LoRAConfig, apply_lora, mark_only_lora_trainable
    >>> model = nn.Sequential(nn.Linear(8, 24), nn.GELU(), nn.Linear(24, 2))
    >>> model = apply_lora(model, LoRAConfig(rank=2, targets=("0",)))
    >>> model = mark_only_lora_trainable(model, also=("2",))
    >>> sum(p.numel() for p in model.parameters() if p.requires_grad)
    114
"""

from __future__ import annotations

from geofm.lora.config import (
    LoRAConfig,
    LoRAInitA,
    QKVPart,
    ecovision_config,
    fusion_lora_config,
)
from geofm.lora.inject import (
    apply_lora,
    delete_adapter,
    disable_adapters,
    get_active_adapter,
    get_lora_config,
    list_adapters,
    mark_only_lora_trainable,
    merge_and_unload,
    merge_lora,
    set_adapter,
    unload,
    unmerge_lora,
)
from geofm.lora.io import from_peft, load_lora, lora_state_dict, save_lora, to_peft
from geofm.lora.layers import LoRAConv2d, LoRALinear, init_lora_pair

__all__ = [
    "LoRAConfig",
    "LoRAInitA",
    "LoRAConv2d",
    "LoRALinear",
    "QKVPart",
    "apply_lora",
    "delete_adapter",
    "disable_adapters",
    "ecovision_config",
    "from_peft",
    "fusion_lora_config",
    "get_active_adapter",
    "get_lora_config",
    "init_lora_pair",
    "list_adapters",
    "load_lora",
    "lora_state_dict",
    "mark_only_lora_trainable",
    "merge_and_unload",
    "merge_lora",
    "save_lora",
    "set_adapter",
    "to_peft",
    "unload",
    "unmerge_lora",
]
