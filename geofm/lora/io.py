"""Save and load LoRA adapters (plus ``also`` modules) as safetensors files.

The file holds the adapter tensors under the model's own state-dict keys
(``blocks.0.attn.qkv.lora_A.weight``, ``head.weight``) and the
:class:`~geofm.lora.LoRAConfig` as JSON in the safetensors metadata, so
:func:`load_lora` can rebuild the adapters on a fresh base model.
Format: https://github.com/huggingface/safetensors
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import torch
from torch import Tensor, nn

from geofm.errors import GeofmError, WeightsError
from geofm.lora.config import LoRAConfig
from geofm.lora.inject import _get_config, _lora_layers, _match_modules, apply_lora

__all__ = ["load_lora", "lora_state_dict", "save_lora"]

ModuleT = TypeVar("ModuleT", bound=nn.Module)

_FORMAT_KEY = "geofm.lora.format"
_CONFIG_KEY = "geofm.lora.config"
_FORMAT = "1"


def _preview(keys: Sequence[str]) -> str:
    return ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")


def _adapter_keys(model: nn.Module, also: Sequence[str]) -> list[str]:
    keys: list[str] = []
    for name, _ in _lora_layers(model):
        keys += [f"{name}.lora_A.weight", f"{name}.lora_B.weight"]
    if also:
        for name, module in _match_modules(model, tuple(also), field_name="also").items():
            keys += [f"{name}.{k}" for k in module.state_dict()]
    return list(dict.fromkeys(keys))


def _load_adapter_tensors(model: nn.Module, tensors: Mapping[str, Tensor], *, source: str) -> None:
    """Copy ``tensors`` into ``model``; keys, shapes and dtypes must match exactly."""
    if any(layer.merged for _, layer in _lora_layers(model)):
        raise GeofmError(
            "Cannot load adapters into a merged model. Call unmerge_lora(model) first."
        )
    expected = _adapter_keys(model, _get_config(model).also)
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in set(expected)]
    if missing or unexpected:
        raise WeightsError(
            f"Adapter keys in {source} do not match the model: missing {len(missing)} "
            f"[{_preview(missing)}], unexpected {len(unexpected)} [{_preview(unexpected)}]. "
            "Load into the same architecture the adapter was trained on."
        )
    state = model.state_dict(keep_vars=True)
    for key in expected:
        dst, src = state[key], tensors[key]
        if dst.shape != src.shape or dst.dtype != src.dtype:
            raise WeightsError(
                f"{key} in {source} has shape {tuple(src.shape)} and dtype {src.dtype}, the model "
                f"expects {tuple(dst.shape)} and {dst.dtype}. Cast the model to the adapter's "
                "dtype (or the other way round) before loading."
            )
    with torch.no_grad():
        for key in expected:
            state[key].copy_(tensors[key])


def lora_state_dict(model: nn.Module, *, also: Sequence[str] | None = None) -> dict[str, Tensor]:
    """The adapter tensors of ``model`` under its own state-dict keys.

    Args:
        model: A model adapted by :func:`apply_lora`.
        also: Module-name globs saved in full next to the adapters; ``None``
            uses the ``also`` of the model's :class:`LoRAConfig`.

    Returns:
        ``{key: tensor}`` with every ``lora_A``/``lora_B`` weight and the
        state of the ``also`` modules (detached, sharing memory with the model).

    Raises:
        GeofmError: If ``apply_lora`` was not called on ``model``.
        UnknownNameError: If an ``also`` pattern matches no module.

    Example:
        >>> model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 1))
        >>> model = apply_lora(model, LoRAConfig(rank=2, targets=("0",), also=("1",)))
        >>> list(lora_state_dict(model))
        ['0.lora_A.weight', '0.lora_B.weight', '1.weight', '1.bias']
    """
    config = _get_config(model)
    state = model.state_dict()
    return {k: state[k] for k in _adapter_keys(model, config.also if also is None else also)}


def save_lora(model: nn.Module, path: str | os.PathLike[str]) -> Path:
    """Write the adapters and ``also`` modules of ``model`` to a safetensors file.

    The :class:`LoRAConfig` goes into the file's metadata, so :func:`load_lora`
    needs only the base model.

    Args:
        model: A model adapted by :func:`apply_lora`.
        path: Output file (conventionally ``*.safetensors``); parent folders are created.

    Returns:
        The written path.

    Raises:
        GeofmError: If ``apply_lora`` was not called on ``model``.

    Example:
        >>> import tempfile
        >>> model = apply_lora(nn.Sequential(nn.Linear(4, 4)), LoRAConfig(rank=2, targets=("0",)))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     save_lora(model, Path(tmp) / "adapter.safetensors").name
        'adapter.safetensors'
    """
    from safetensors.torch import save_file

    config = _get_config(model)
    tensors = {k: v.detach().contiguous().clone() for k, v in lora_state_dict(model).items()}
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out), metadata={_FORMAT_KEY: _FORMAT, _CONFIG_KEY: config.to_json()})
    return out


def load_lora(model: ModuleT, path: str | os.PathLike[str]) -> ModuleT:
    """Load a :func:`save_lora` file into ``model`` in place and return it.

    A model without LoRA gets the stored config applied first; a model that
    already has LoRA must have been adapted with an equal config. Keys, shapes
    and dtypes must match exactly (nothing is cast or skipped).

    Args:
        model: The base model, plain or already adapted.
        path: A file written by :func:`save_lora`.

    Returns:
        ``model`` with the adapters and ``also`` modules loaded.

    Raises:
        WeightsError: If the file is not a geofm LoRA file, or keys, shapes or
            dtypes do not match.
        GeofmError: If ``model`` is merged or was adapted with another config.

    Example:
        >>> import tempfile
        >>> cfg = LoRAConfig(rank=2, targets=("0",))
        >>> model = apply_lora(nn.Sequential(nn.Linear(4, 4)), cfg)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     file = save_lora(model, Path(tmp) / "a.safetensors")
        ...     fresh = load_lora(nn.Sequential(nn.Linear(4, 4)), file)
        >>> torch.equal(fresh[0].lora_A.weight, model[0].lora_A.weight)
        True
    """
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    if metadata.get(_FORMAT_KEY) != _FORMAT or _CONFIG_KEY not in metadata:
        raise WeightsError(
            f"{path} is not a geofm LoRA file (no {_CONFIG_KEY!r} metadata). Use from_peft for "
            "PEFT adapter folders, or save the adapter with save_lora."
        )
    config = LoRAConfig.from_json(metadata[_CONFIG_KEY])
    _ensure_config(model, config, source=str(path))
    _load_adapter_tensors(model, tensors, source=str(path))
    return model


def _ensure_config(model: nn.Module, config: LoRAConfig, *, source: str) -> None:
    if not any(True for _ in _lora_layers(model)):
        apply_lora(model, config)
        return
    current = _get_config(model)
    if current != config:
        diff = [
            f"{f}: model {getattr(current, f)!r} vs file {getattr(config, f)!r}"
            for f in LoRAConfig.__dataclass_fields__
            if getattr(current, f) != getattr(config, f)
        ]
        raise GeofmError(
            f"The model's LoRA config differs from the one in {source} ({'; '.join(diff)}). "
            "Load into the plain base model instead, and load_lora applies the stored config."
        )
