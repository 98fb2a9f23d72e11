"""Read and write PEFT's LoRA adapter folders.

A PEFT adapter folder holds ``adapter_config.json`` (a ``LoraConfig``) and
``adapter_model.safetensors`` with keys ``base_model.model.<module>.lora_A.weight``,
``...lora_B.weight`` and, for ``modules_to_save``, ``base_model.model.<module>.<param>``.
geofm's layers use the same tensor layouts, so the conversion only renames keys.
References: https://github.com/huggingface/peft (``src/peft/utils/save_and_load.py``,
``src/peft/tuners/lora/config.py``).
"""

from __future__ import annotations

import glob
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from torch import nn

from geofm.errors import GeofmError, UnknownNameError, WeightsError
from geofm.lora.config import LoRAConfig
from geofm.lora.inject import _get_config, _lora_layers, _match_modules, _matches
from geofm.lora.io import _ensure_config, _load_adapter_tensors, lora_state_dict
from geofm.lora.layers import LoRALinear

__all__ = ["from_peft", "to_peft"]

ModuleT = TypeVar("ModuleT", bound=nn.Module)

_PREFIX = "base_model.model."
_CONFIG_FILE = "adapter_config.json"
_WEIGHTS_FILE = "adapter_model.safetensors"
# PEFT options with no geofm equivalent, and the value that means "off".
_UNSUPPORTED_PEFT_OPTIONS: dict[str, Any] = {
    "use_dora": False, "fan_in_fan_out": False, "bias": "none", "lora_bias": False,
    "rank_pattern": {}, "alpha_pattern": {}, "layers_to_transform": None,
    "layer_replication": None, "target_parameters": None, "trainable_token_indices": None,
    "use_qalora": False,
}  # fmt: skip


def _peft_list_match(name: str, targets: Sequence[str]) -> bool:
    """PEFT's rule for a list of target names: equal, or a dotted suffix."""
    return any(name == t or name.endswith("." + t) for t in targets)


def _peft_names(spec: str | Sequence[str], names: Sequence[str]) -> list[str]:
    """Module names a PEFT ``target_modules``-style value selects (regex string or list)."""
    if isinstance(spec, str):
        return [n for n in names if re.fullmatch(spec, n)]
    return [n for n in names if _peft_list_match(n, spec)]


def _peft_spec(selected: Sequence[str], names: Sequence[str]) -> str | list[str]:
    """The exact names as a PEFT list, or an anchored regex if the list would match more."""
    if set(_peft_names(list(selected), names)) == set(selected):
        return sorted(selected)
    return "^(?:" + "|".join(re.escape(n) for n in selected) + ")$"


def to_peft(model: nn.Module, directory: str | os.PathLike[str]) -> Path:
    """Write the adapters of ``model`` as a PEFT adapter folder.

    ``PeftModel.from_pretrained(base_model, directory)`` then rebuilds the same
    adapted model (``also`` modules become PEFT ``modules_to_save``).

    Args:
        model: A model adapted by :func:`apply_lora`.
        directory: Output folder (created if needed).

    Returns:
        The folder, holding ``adapter_config.json`` and ``adapter_model.safetensors``.

    Raises:
        GeofmError: If ``apply_lora`` was not called on ``model``, or a fused
            qkv layer adapts only some of q, k, v, which PEFT cannot express
            (PEFT adapts a fused Linear as a whole; peft issue #691).

    Example:
        >>> import tempfile
        >>> from geofm.lora import apply_lora
        >>> model = apply_lora(nn.Sequential(nn.Linear(4, 4)), LoRAConfig(rank=2, targets=("0",)))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     sorted(p.name for p in to_peft(model, tmp).iterdir())
        ['adapter_config.json', 'adapter_model.safetensors']
    """
    from safetensors.torch import save_file

    config = _get_config(model)
    partial = [n for n, m in _lora_layers(model) if isinstance(m, LoRALinear) and m.chunks]
    if partial:
        raise GeofmError(
            f"PEFT cannot express qkv_parts={config.qkv_parts!r}: it adapts a fused qkv Linear "
            f"only as a whole (peft issue #691). Affected layers: {', '.join(partial[:3])}. Use "
            "qkv_parts=('q', 'k', 'v') for a PEFT-compatible adapter, or save_lora for this one."
        )
    names = [n for n, _ in model.named_modules() if n]
    layers = [n for n, _ in _lora_layers(model)]
    also = list(_match_modules(model, config.also, field_name="also")) if config.also else []
    alpha: float | int = int(config.alpha) if float(config.alpha).is_integer() else config.alpha
    peft_config = {
        "peft_type": "LORA", "task_type": None, "base_model_name_or_path": None,
        "revision": None, "inference_mode": True, "r": config.rank, "lora_alpha": alpha,
        "lora_dropout": config.dropout, "use_rslora": config.use_rslora,
        "target_modules": _peft_spec(layers, names), "exclude_modules": None,
        "modules_to_save": sorted(also) or None, "init_lora_weights": True,
        "layers_pattern": None, **_UNSUPPORTED_PEFT_OPTIONS,
    }  # fmt: skip
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    (out / _CONFIG_FILE).write_text(json.dumps(peft_config, indent=2, sort_keys=True) + "\n")
    tensors = {
        _PREFIX + k: v.detach().contiguous().clone() for k, v in lora_state_dict(model).items()
    }
    save_file(tensors, str(out / _WEIGHTS_FILE), metadata={"format": "pt"})
    return out


def from_peft(model: ModuleT, directory: str | os.PathLike[str]) -> ModuleT:
    """Load a PEFT LoRA adapter folder into ``model`` in place and return it.

    ``target_modules`` (list or regex) and ``exclude_modules`` are resolved to
    exact module names of ``model`` and applied with :func:`apply_lora` (a model
    already adapted must match that config); ``modules_to_save`` become ``also``
    modules and are loaded too.

    Args:
        model: The base model the adapter was trained on (plain, not a ``PeftModel``).
        directory: A folder written by PEFT's ``save_pretrained`` or by :func:`to_peft`.

    Returns:
        ``model``, adapted and loaded.

    Raises:
        WeightsError: If the folder lacks ``adapter_config.json`` or
            ``adapter_model.safetensors``, or keys, shapes or dtypes do not match.
        GeofmError: If the adapter is not plain LoRA (DoRA, per-layer ranks,
            ``fan_in_fan_out``, trained biases, ...).
        UnknownNameError: If ``target_modules`` matches no module of ``model``.

    Example:
        >>> import tempfile
        >>> from geofm.lora import apply_lora
        >>> model = apply_lora(nn.Sequential(nn.Linear(4, 4)), LoRAConfig(rank=2, targets=("0",)))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     fresh = from_peft(nn.Sequential(nn.Linear(4, 4)), to_peft(model, tmp))
        >>> fresh[0].rank
        2
    """
    from safetensors.torch import load_file

    folder = Path(directory)
    config_file, weights_file = folder / _CONFIG_FILE, folder / _WEIGHTS_FILE
    for file in (config_file, weights_file):
        if not file.is_file():
            raise WeightsError(
                f"{file} not found. from_peft reads a PEFT adapter folder with {_CONFIG_FILE} and "
                f"{_WEIGHTS_FILE} (re-save .bin adapters with PEFT's save_pretrained)."
            )
    raw = json.loads(config_file.read_text())
    if raw.get("peft_type") != "LORA":
        raise GeofmError(f"{config_file} has peft_type {raw.get('peft_type')!r}; expected 'LORA'.")
    used = {
        k: raw[k]
        for k, off in _UNSUPPORTED_PEFT_OPTIONS.items()
        if raw.get(k, off) not in (off, None, {}, [])
    }
    if used:
        raise GeofmError(
            f"{config_file} uses PEFT options geofm does not support: {used}. "
            "Only plain LoRA adapters (one rank/alpha, no DoRA, no trained biases) can be loaded."
        )
    names = [n for n, _ in model.named_modules() if n]
    spec = raw.get("target_modules")
    if spec is None or spec == "all-linear":
        raise GeofmError(f"{config_file} has target_modules={spec!r}; list the modules explicitly.")
    targets = _peft_names(spec, names)
    if raw.get("exclude_modules"):
        excluded = set(_peft_names(raw["exclude_modules"], names))
        targets = [n for n in targets if n not in excluded]
    if not targets:
        raise UnknownNameError(
            f"target_modules={spec!r} in {config_file} matches no module of {type(model).__name__}."
        )
    also = raw.get("modules_to_save") or []
    # Our patterns also match dotted suffixes; exclude what PEFT's spec did not select.
    exact = [glob.escape(n) for n in targets]
    extra = [n for n in names if n not in set(targets) and any(_matches(n, p) for p in exact)]
    config = LoRAConfig(
        rank=int(raw["r"]),
        alpha=float(raw["lora_alpha"]),
        dropout=float(raw.get("lora_dropout", 0.0)),
        targets=tuple(exact),
        exclude=tuple(glob.escape(n) for n in extra),
        use_rslora=bool(raw.get("use_rslora", False)),
        also=tuple(glob.escape(n) for n in also),
    )
    _ensure_config(model, config, source=str(folder))
    tensors = load_file(str(weights_file))
    foreign = [k for k in tensors if not k.startswith(_PREFIX)]
    if foreign:
        raise WeightsError(
            f"{weights_file} has keys without the {_PREFIX!r} prefix: {foreign[:3]}. "
            "Is it a PEFT LoRA adapter of a plain (non-task) model?"
        )
    _load_adapter_tensors(
        model, {k[len(_PREFIX) :]: v for k, v in tensors.items()}, source=str(folder)
    )
    return model
