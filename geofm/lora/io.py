"""Save and load LoRA adapters: geofm's safetensors file and PEFT's adapter folder.

geofm's file (:func:`save_lora` / :func:`load_lora`) holds the adapter tensors
under the model's own state-dict keys (``blocks.0.attn.qkv.lora_A.weight``,
``head.weight``) and the :class:`~geofm.lora.LoRAConfig` as JSON in the
safetensors metadata, so :func:`load_lora` can rebuild the adapters on a fresh
base model. Format: https://github.com/huggingface/safetensors

A PEFT adapter folder (:func:`to_peft` / :func:`from_peft`) holds
``adapter_config.json`` (a ``LoraConfig``) and ``adapter_model.safetensors`` with
keys ``base_model.model.<module>.lora_A.weight``, ``...lora_B.weight`` and, for
``modules_to_save``, ``base_model.model.<module>.<param>``. geofm's layers use
the same tensor layouts, so the conversion only renames keys. References:
https://github.com/huggingface/peft (``src/peft/utils/save_and_load.py``,
``src/peft/tuners/lora/config.py``).
"""

from __future__ import annotations

import glob
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from geofm.errors import GeofmError, UnknownNameError, WeightsError
from geofm.lora._match import match_modules, matches
from geofm.lora.config import LoRAConfig
from geofm.lora.inject import apply_lora, get_lora_config
from geofm.lora.layers import LoRALinear, lora_layers

__all__ = ["from_peft", "load_lora", "lora_state_dict", "save_lora", "to_peft"]

ModuleT = TypeVar("ModuleT", bound=nn.Module)

_FORMAT_KEY = "geofm.lora.format"
_CONFIG_KEY = "geofm.lora.config"
_FORMAT = "1"
_PEFT_PREFIX = "base_model.model."
_PEFT_CONFIG_FILE = "adapter_config.json"
_PEFT_WEIGHTS_FILE = "adapter_model.safetensors"

# PEFT options with no geofm equivalent, and the value that means "off".
_UNSUPPORTED_PEFT_OPTIONS: dict[str, Any] = {
    "use_dora": False, "fan_in_fan_out": False, "bias": "none", "lora_bias": False,
    "rank_pattern": {}, "alpha_pattern": {}, "layers_to_transform": None,
    "layer_replication": None, "target_parameters": None, "trainable_token_indices": None,
    "use_qalora": False,
}  # fmt: skip


def _require_config(model: nn.Module) -> LoRAConfig:
    config = get_lora_config(model)
    if config is None:
        raise GeofmError(
            f"{type(model).__name__} has no LoRA config. Call apply_lora(model, config) on this "
            "same module first (not on a parent or child of it)."
        )
    return config


def _preview(keys: Sequence[str]) -> str:
    return ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")


def _adapter_keys(model: nn.Module, also: Sequence[str]) -> list[str]:
    keys: list[str] = []
    for name, _ in lora_layers(model):
        keys += [f"{name}.lora_A.weight", f"{name}.lora_B.weight"]
    if also:
        for name, module in match_modules(model, tuple(also), field_name="also").items():
            keys += [f"{name}.{k}" for k in module.state_dict()]
    return list(dict.fromkeys(keys))


def _copy_adapter_tensors(model: nn.Module, tensors: Mapping[str, Tensor], *, source: str) -> None:
    """Copy ``tensors`` into ``model``; keys, shapes and dtypes must match exactly."""
    if any(layer.merged for _, layer in lora_layers(model)):
        raise GeofmError(
            "Cannot load adapters into a merged model. Call unmerge_lora(model) first."
        )
    expected = _adapter_keys(model, _require_config(model).also)
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


def _apply_or_check_config(model: nn.Module, config: LoRAConfig, *, source: str) -> None:
    if not any(True for _ in lora_layers(model)):
        apply_lora(model, config)
        return
    current = _require_config(model)
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
    config = _require_config(model)
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

    config = _require_config(model)
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
    _apply_or_check_config(model, config, source=str(path))
    _copy_adapter_tensors(model, tensors, source=str(path))
    return model


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

    config = _require_config(model)
    partial = [n for n, m in lora_layers(model) if isinstance(m, LoRALinear) and m.chunks]
    if partial:
        raise GeofmError(
            f"PEFT cannot express qkv_parts={config.qkv_parts!r}: it adapts a fused qkv Linear "
            f"only as a whole (peft issue #691). Affected layers: {', '.join(partial[:3])}. Use "
            "qkv_parts=('q', 'k', 'v') for a PEFT-compatible adapter, or save_lora for this one."
        )
    names = [n for n, _ in model.named_modules() if n]
    layers = [n for n, _ in lora_layers(model)]
    also = list(match_modules(model, config.also, field_name="also")) if config.also else []
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
    (out / _PEFT_CONFIG_FILE).write_text(json.dumps(peft_config, indent=2, sort_keys=True) + "\n")
    tensors = {
        _PEFT_PREFIX + k: v.detach().contiguous().clone() for k, v in lora_state_dict(model).items()
    }
    save_file(tensors, str(out / _PEFT_WEIGHTS_FILE), metadata={"format": "pt"})
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
    config_file, weights_file = folder / _PEFT_CONFIG_FILE, folder / _PEFT_WEIGHTS_FILE
    for file in (config_file, weights_file):
        if not file.is_file():
            raise WeightsError(
                f"{file} not found. from_peft reads a PEFT adapter folder with "
                f"{_PEFT_CONFIG_FILE} and {_PEFT_WEIGHTS_FILE} (re-save .bin adapters with "
                "PEFT's save_pretrained)."
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
    extra = [n for n in names if n not in set(targets) and matches(n, exact)]
    config = LoRAConfig(
        rank=int(raw["r"]),
        alpha=float(raw["lora_alpha"]),
        dropout=float(raw.get("lora_dropout", 0.0)),
        targets=tuple(exact),
        exclude=tuple(glob.escape(n) for n in extra),
        use_rslora=bool(raw.get("use_rslora", False)),
        also=tuple(glob.escape(n) for n in also),
    )
    _apply_or_check_config(model, config, source=str(folder))
    tensors = load_file(str(weights_file))
    foreign = [k for k in tensors if not k.startswith(_PEFT_PREFIX)]
    if foreign:
        raise WeightsError(
            f"{weights_file} has keys without the {_PEFT_PREFIX!r} prefix: {foreign[:3]}. "
            "Is it a PEFT LoRA adapter of a plain (non-task) model?"
        )
    _copy_adapter_tensors(
        model, {k[len(_PEFT_PREFIX) :]: v for k, v in tensors.items()}, source=str(folder)
    )
    return model
