"""Inject, merge and freeze LoRA adapters in any ``nn.Module``.

Layers are chosen by glob patterns on module names and optionally by type, and
wrapped through a type-keyed table (``nn.Linear -> LoRALinear``,
``nn.Conv2d -> LoRAConv2d``), as in torchao's module swaps
(https://github.com/pytorch/ao, ``torchao/quantization/transform_module.py``).
Matching follows PEFT's ``target_modules`` rule (full name or dotted suffix),
with :mod:`fnmatch` globs.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

from torch import nn

from geofm.errors import GeofmError, UnknownNameError
from geofm.lora.config import LoRAConfig
from geofm.lora.layers import LoRAConv2d, LoRALinear, UnsupportedModuleError, _LoRALayer

__all__ = ["apply_lora", "mark_only_lora_trainable", "merge_lora", "unmerge_lora"]

ModuleT = TypeVar("ModuleT", bound=nn.Module)

# Type-keyed wrapper table. A subclass is accepted only if it keeps the base class's forward.
_WRAPPERS: dict[type[nn.Module], type[_LoRALayer]] = {nn.Linear: LoRALinear, nn.Conv2d: LoRAConv2d}
_CONFIG_ATTR = "_geofm_lora_config"


def _matches(name: str, pattern: str) -> bool:
    """Whether ``pattern`` matches the full dotted ``name`` or one of its dotted suffixes."""
    return fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(name, "*." + pattern)


def _close_names(pattern: str, names: Iterable[str]) -> list[str]:
    candidates: set[str] = set()
    for name in names:
        parts = name.split(".")
        candidates.update(".".join(parts[i:]) for i in range(len(parts)))
    return difflib.get_close_matches(pattern, sorted(candidates), n=5, cutoff=0.5)


def _no_match_error(pattern: str, field_name: str, names: Sequence[str]) -> UnknownNameError:
    close = _close_names(pattern, names)
    hint = f" Close module names: {', '.join(close)}." if close else ""
    sample = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    return UnknownNameError(
        f"{field_name} pattern {pattern!r} matches no module.{hint} "
        f"Patterns are globs on full dotted names or their suffixes (modules: {sample})."
    )


def _match_modules(
    model: nn.Module, patterns: Sequence[str], *, field_name: str
) -> dict[str, nn.Module]:
    """Modules (by name, in model order) matching any pattern; each pattern must match one."""
    named = [(n, m) for n, m in model.named_modules() if n]
    names = [n for n, _ in named]
    out: dict[str, nn.Module] = {}
    for pattern in patterns:
        hits = {n: m for n, m in named if _matches(n, pattern)}
        if not hits:
            raise _no_match_error(pattern, field_name, names)
        out.update(hits)
    return {n: out[n] for n in names if n in out}


def _wrapper_for(module: nn.Module) -> type[_LoRALayer] | None:
    for base, wrapper in _WRAPPERS.items():
        if isinstance(module, base) and type(module).forward is base.forward:
            return wrapper
    return None


def _supported_names() -> str:
    return ", ".join(f"torch.nn.{t.__name__}" for t in _WRAPPERS)


def _lora_layers(model: nn.Module) -> Iterator[tuple[str, _LoRALayer]]:
    for name, module in model.named_modules():
        if isinstance(module, _LoRALayer):
            yield name, module


def _get_config(model: nn.Module) -> LoRAConfig:
    config = getattr(model, _CONFIG_ATTR, None)
    if not isinstance(config, LoRAConfig):
        raise GeofmError(
            f"{type(model).__name__} has no LoRA config. Call apply_lora(model, config) on this "
            "same module first (not on a parent or child of it)."
        )
    return config


def _select(model: nn.Module, config: LoRAConfig) -> dict[str, nn.Module]:
    named = [(n, m) for n, m in model.named_modules() if n]
    names = [n for n, _ in named]
    selected: dict[str, nn.Module] = {}
    for pattern in config.targets:
        hits = {
            n: m
            for n, m in named
            if _matches(n, pattern)
            and not any(_matches(n, ex) for ex in config.exclude)
            and (not config.target_types or isinstance(m, config.target_types))
        }
        if not hits:
            if any(_matches(n, pattern) for n in names) and (config.exclude or config.target_types):
                raise UnknownNameError(
                    f"targets pattern {pattern!r} matches modules, but none left after "
                    f"exclude={config.exclude!r} and target_types="
                    f"{tuple(t.__name__ for t in config.target_types)!r}. Loosen one of them."
                )
            raise _no_match_error(pattern, "targets", names)
        selected.update(hits)
    return {n: selected[n] for n in names if n in selected}


def apply_lora(model: ModuleT, config: LoRAConfig) -> ModuleT:
    """Inject LoRA into ``model`` in place and return it.

    Every module selected by ``config`` (see :class:`LoRAConfig`) is replaced
    in its parent by a :class:`LoRALinear` / :class:`LoRAConv2d` that shares the
    original parameters, so ``model.state_dict()`` keeps all original keys and
    gains ``<layer>.lora_A.weight`` / ``<layer>.lora_B.weight``. At init the
    model computes exactly what it did before. ``requires_grad`` of existing
    parameters is not changed: call :func:`mark_only_lora_trainable` next. The
    config is remembered on ``model`` for :func:`save_lora` and :func:`to_peft`.

    Args:
        model: Any module (a timm/torchvision/geofm backbone, a full model).
        config: What to adapt and how.

    Returns:
        ``model`` itself, adapted.

    Raises:
        GeofmError: If ``model`` already holds LoRA layers.
        UnknownNameError: If a ``targets`` pattern matches no module (the
            message lists close module names).
        UnsupportedModuleError: If a matched module has a type LoRA cannot wrap
            (the message lists the supported types), or ``qkv_parts`` is a strict
            subset but no adapted Linear matches ``qkv_names``.
        ShapeError: If a fused qkv layer's output size is not divisible by 3.

    Example:
        >>> model = nn.Sequential(nn.Linear(4, 12), nn.ReLU(), nn.Linear(12, 2))
        >>> _ = apply_lora(model, LoRAConfig(rank=2, targets=("0", "2")))
        >>> sorted(model.state_dict())  # doctest: +NORMALIZE_WHITESPACE
        ['0.bias', '0.lora_A.weight', '0.lora_B.weight', '0.weight',
         '2.bias', '2.lora_A.weight', '2.lora_B.weight', '2.weight']
    """
    existing = [n for n, _ in _lora_layers(model)]
    if existing or hasattr(model, _CONFIG_ATTR):
        raise GeofmError(
            f"{type(model).__name__} already has LoRA layers ({', '.join(existing[:3])}...). "
            "apply_lora is called once per model; put every target in one LoRAConfig."
        )
    selected = _select(model, config)
    occurrences: dict[int, list[str]] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        occurrences.setdefault(id(module), []).append(name)
    for name, module in selected.items():
        if _wrapper_for(module) is None:
            raise UnsupportedModuleError(
                f"Module {name!r} has type {type(module).__name__}, which LoRA cannot wrap. "
                f"Supported types: {_supported_names()} (subclasses that keep their forward). "
                "Narrow targets or pass target_types=(nn.Linear,)."
            )
        if len(occurrences[id(module)]) > 1:
            raise UnsupportedModuleError(
                f"Module {name!r} is shared under several names {occurrences[id(module)]}; "
                "LoRA cannot wrap a shared module. Exclude it."
            )
    fused = {n for n, m in selected.items() if isinstance(m, nn.Linear)
             and any(_matches(n, p) for p in config.qkv_names)}  # fmt: skip
    if not config.adapts_all_qkv_parts and not fused:
        raise UnsupportedModuleError(
            f"qkv_parts={config.qkv_parts!r} selects parts of fused qkv Linears, but no adapted "
            f"Linear matches qkv_names={config.qkv_names!r}. Fix qkv_names or drop qkv_parts."
        )
    chunks = None
    if not config.adapts_all_qkv_parts:
        chunks = tuple(p in config.qkv_parts for p in ("q", "k", "v"))
    for name, module in selected.items():
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        wrapper: _LoRALayer
        if isinstance(module, nn.Linear):
            wrapper = LoRALinear(
                module, rank=config.rank, alpha=config.alpha, dropout=config.dropout,
                use_rslora=config.use_rslora, chunks=chunks if name in fused else None,
            )  # fmt: skip
        else:
            assert isinstance(module, nn.Conv2d)  # guaranteed by _wrapper_for
            wrapper = LoRAConv2d(
                module, rank=config.rank, alpha=config.alpha, dropout=config.dropout,
                use_rslora=config.use_rslora,
            )  # fmt: skip
        setattr(parent, child, wrapper)
    object.__setattr__(model, _CONFIG_ATTR, config)
    return model


def _require_layers(model: nn.Module) -> list[_LoRALayer]:
    layers = [m for _, m in _lora_layers(model)]
    if not layers:
        raise GeofmError(
            f"{type(model).__name__} has no LoRA layers. Call apply_lora(model, config) first."
        )
    return layers


def merge_lora(model: ModuleT) -> ModuleT:
    """Fold every adapter into its base weight in place and return ``model``.

    Computed in float32 and cast back to the weight's dtype. The merged model
    runs at the plain backbone's speed; :func:`unmerge_lora` undoes it.

    Args:
        model: A model adapted by :func:`apply_lora`.

    Returns:
        ``model``, merged.

    Raises:
        GeofmError: If ``model`` has no LoRA layers or is already merged.

    Example:
        >>> model = apply_lora(nn.Sequential(nn.Linear(4, 4)), LoRAConfig(rank=2, targets=("0",)))
        >>> merge_lora(model)[0].merged
        True
    """
    layers = _require_layers(model)
    if any(layer.merged for layer in layers):
        raise GeofmError("Model is already (partly) merged. Call unmerge_lora(model) first.")
    for layer in layers:
        layer.merge()
    return model


def unmerge_lora(model: ModuleT) -> ModuleT:
    """Subtract every merged adapter from its base weight in place and return ``model``.

    Restores the weights up to float32 rounding of ``W0 + dW - dW``.

    Args:
        model: A model merged by :func:`merge_lora`.

    Returns:
        ``model``, unmerged.

    Raises:
        GeofmError: If ``model`` has no LoRA layers or is not fully merged.

    Example:
        >>> model = apply_lora(nn.Sequential(nn.Linear(4, 4)), LoRAConfig(rank=2, targets=("0",)))
        >>> unmerge_lora(merge_lora(model))[0].merged
        False
    """
    layers = _require_layers(model)
    if not all(layer.merged for layer in layers):
        raise GeofmError("Model is not (fully) merged. Call merge_lora(model) first.")
    for layer in layers:
        layer.unmerge()
    return model


def mark_only_lora_trainable(model: ModuleT, *, also: Sequence[str] = ("head",)) -> ModuleT:
    """Freeze every parameter except LoRA ``A``/``B`` and the ``also`` modules, in place.

    Args:
        model: A model adapted by :func:`apply_lora`.
        also: Module-name globs (same rule as ``LoRAConfig.targets``) whose
            parameters stay trainable, e.g. the task head. Pass ``()`` for none.

    Returns:
        ``model``.

    Raises:
        GeofmError: If ``model`` has no LoRA layers.
        UnknownNameError: If an ``also`` pattern matches no module.

    Example:
        >>> model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 1))
        >>> model = apply_lora(model, LoRAConfig(rank=2, targets=("0",)))
        >>> model = mark_only_lora_trainable(model, also=("1",))
        >>> [n for n, p in model.named_parameters() if p.requires_grad]
        ['0.lora_A.weight', '0.lora_B.weight', '1.weight', '1.bias']
    """
    if isinstance(also, str):
        raise ValueError(f"also must be a sequence of patterns, got {also!r}; write ({also!r},).")
    layers = _require_layers(model)
    extra = _match_modules(model, tuple(also), field_name="also")
    model.requires_grad_(False)
    for layer in layers:
        layer.lora_A.requires_grad_(True)
        layer.lora_B.requires_grad_(True)
    for module in extra.values():
        module.requires_grad_(True)
    return model
