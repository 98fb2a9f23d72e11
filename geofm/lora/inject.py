"""Inject, merge and freeze LoRA adapters in any ``nn.Module``.

Layers are chosen by glob patterns on module names and optionally by type, and
wrapped through the type-keyed table :data:`geofm.lora.layers.LORA_WRAPPERS`
(``nn.Linear -> LoRALinear``, ``nn.Conv2d -> LoRAConv2d``), as in torchao's module
swaps (https://github.com/pytorch/ao, ``torchao/quantization/transform_module.py``).
Matching follows PEFT's ``target_modules`` rule (full name or dotted suffix),
with :mod:`fnmatch` globs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from torch import nn

from geofm.errors import GeofmError, UnsupportedModuleError
from geofm.lora._match import match_modules
from geofm.lora.config import LoRAConfig
from geofm.lora.layers import LoRALayer, LoRALinear, lora_layers, wrapper_for

__all__ = [
    "apply_lora",
    "get_lora_config",
    "mark_only_lora_trainable",
    "merge_lora",
    "unmerge_lora",
]

ModuleT = TypeVar("ModuleT", bound=nn.Module)


_HERE = "this module"


def _root_of(path: str, target_name: str) -> str | None:
    """Which module apply_lora adapted, seen from the module searched (``None``: unknown).

    ``path`` is a layer's name in the module searched, ``target_name`` its name
    in the module apply_lora adapted; one must end the other.
    """
    if path == target_name:
        return _HERE
    if path.endswith("." + target_name):
        return f"submodule {path[: -len(target_name) - 1]!r}"
    if not path or target_name.endswith("." + path):
        prefix = target_name[: len(target_name) - len(path)].rstrip(".")
        return f"a parent, which names this module {prefix!r}"
    return None


def _require_layers(model: nn.Module) -> list[LoRALayer]:
    layers = [m for _, m in lora_layers(model)]
    if not layers:
        raise GeofmError(
            f"{type(model).__name__} has no LoRA layers. Call apply_lora(model, config) first."
        )
    return layers


def apply_lora(model: ModuleT, config: LoRAConfig) -> ModuleT:
    """Inject LoRA into ``model`` in place and return it.

    Every module selected by ``config`` (see :class:`LoRAConfig`) is replaced
    in its parent by a :class:`LoRALinear` / :class:`LoRAConv2d` that shares the
    original parameters, so ``model.state_dict()`` keeps all original keys and
    gains ``<layer>.lora_A.weight`` / ``<layer>.lora_B.weight``. At init the
    model computes exactly what it did before. ``requires_grad`` of existing
    parameters is not changed: call :func:`mark_only_lora_trainable` next. Each
    wrapper records ``config``; :func:`get_lora_config` reads it back (for
    :func:`save_lora`, :func:`to_peft` and ``save_pretrained``).

    Args:
        model: Any module (a timm/torchvision/geofm backbone, a full model).
        config: What to adapt and how.

    Returns:
        ``model`` itself, adapted.

    Raises:
        GeofmError: If ``model`` already holds LoRA layers.
        UnknownNameError: If a ``targets`` pattern matches no module (the
            message lists close module names).
        UnsupportedModuleError: If a matched module or a ``target_types`` entry
            has a type LoRA cannot wrap (the message lists the supported types), a
            matched module is shared under several names, or ``qkv_parts`` is a
            strict subset but no adapted Linear matches ``qkv_names``.
        ShapeError: If a fused qkv layer's output size is not divisible by 3.

    Example:
        >>> model = nn.Sequential(nn.Linear(4, 12), nn.ReLU(), nn.Linear(12, 2))
        >>> _ = apply_lora(model, LoRAConfig(rank=2, targets=("0", "2")))
        >>> sorted(model.state_dict())  # doctest: +NORMALIZE_WHITESPACE
        ['0.bias', '0.lora_A.weight', '0.lora_B.weight', '0.weight',
         '2.bias', '2.lora_A.weight', '2.lora_B.weight', '2.weight']
    """
    existing = [n for n, _ in lora_layers(model)]
    if existing:
        raise GeofmError(
            f"{type(model).__name__} already has LoRA layers ({', '.join(existing[:3])}...). "
            "apply_lora is called once per model; put every target in one LoRAConfig."
        )
    for t in config.target_types:
        wrapper_for(t, where="LoRAConfig.target_types entry")
    selected = match_modules(
        model, config.targets, field_name="targets", exclude=config.exclude,
        types=config.target_types,
    )  # fmt: skip
    occurrences: dict[int, list[str]] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        occurrences.setdefault(id(module), []).append(name)
    wrappers: dict[str, LoRALayer] = {}
    for name, module in selected.items():
        wrapper_cls = wrapper_for(type(module), where=f"Module {name!r}")
        if len(occurrences[id(module)]) > 1:
            raise UnsupportedModuleError(
                f"Module {name!r} is shared under several names {occurrences[id(module)]}; "
                "LoRA cannot wrap a shared module. Exclude it."
            )
        wrappers[name] = wrapper_cls.from_config(module, config, name=name)
    if config.qkv_chunks and not any(
        isinstance(w, LoRALinear) and w.chunks for w in wrappers.values()
    ):
        raise UnsupportedModuleError(
            f"qkv_parts={config.qkv_parts!r} selects parts of fused qkv Linears, but no adapted "
            f"Linear matches qkv_names={config.qkv_names!r}. Fix qkv_names or drop qkv_parts."
        )
    # Swap only once every wrapper is built, so an error above leaves the model untouched.
    for name, wrapper in wrappers.items():
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, wrapper)
    return model


def get_lora_config(model: nn.Module) -> LoRAConfig | None:
    """The :class:`LoRAConfig` that :func:`apply_lora` applied to ``model``, read from its layers.

    Every layer built by :func:`apply_lora` records its config and its dotted
    name in the adapted module (:attr:`~geofm.lora.layers.LoRALayer.config`,
    :attr:`~geofm.lora.layers.LoRALayer.target_name`); nothing is stored on
    ``model`` itself. The config belongs to the module ``apply_lora`` was called
    on: after ``apply_lora(backbone, config)``, ``get_lora_config(backbone)`` is
    ``config`` and, for a model holding that backbone, ``get_lora_config(model)``
    is ``None``.

    Args:
        model: Any module.

    Returns:
        The config, or ``None`` if ``model`` holds no LoRA layer or its LoRA
        layers were all added by one ``apply_lora`` call on another module (a
        submodule of ``model``, or a module that contains it).

    Raises:
        GeofmError: If the LoRA layers of ``model`` cannot come from one
            ``apply_lora`` call: a layer built directly (``LoRALinear(...)``),
            layers from calls on different modules or with different configs, or
            a layer moved to another name after ``apply_lora``.

    Example:
        >>> config = LoRAConfig(rank=2, targets=("0",))
        >>> inner = apply_lora(nn.Sequential(nn.Linear(4, 4)), config)
        >>> get_lora_config(inner) == config
        True
        >>> get_lora_config(nn.Sequential(inner, nn.ReLU())) is None  # applied to a child
        True
    """
    roots: dict[str, list[str]] = {}
    configs: list[LoRAConfig] = []
    for path, layer in lora_layers(model):
        if layer.config is None or layer.target_name is None:
            raise GeofmError(
                f"LoRA layer {path!r} of {type(model).__name__} was built directly "
                f"({type(layer).__name__}(...)), not by apply_lora, so it records no LoRAConfig. "
                "Adapt models with apply_lora(model, config)."
            )
        root = _root_of(path, layer.target_name)
        if root is None:
            raise GeofmError(
                f"LoRA layer {path!r} was adapted as {layer.target_name!r} and has since been "
                "moved to another name, so geofm cannot tell which module its config applies "
                "to. Call apply_lora on the model in its final layout."
            )
        roots.setdefault(root, []).append(path)
        if layer.config not in configs:
            configs.append(layer.config)
    if not configs:
        return None
    if len(roots) > 1 or len(configs) > 1:
        where = "; ".join(f"{root}: {', '.join(paths[:2])}" for root, paths in roots.items())
        raise GeofmError(
            f"The LoRA layers of {type(model).__name__} come from {len(roots)} apply_lora "
            f"call(s) and hold {len(configs)} distinct config(s) ({where}); one LoRAConfig "
            "cannot describe them. Adapt the model with a single apply_lora call."
        )
    return configs[0] if _HERE in roots else None


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
    extra = match_modules(model, tuple(also), field_name="also")
    model.requires_grad_(False)
    for layer in layers:
        layer.lora_A.requires_grad_(True)
        layer.lora_B.requires_grad_(True)
    for module in extra.values():
        module.requires_grad_(True)
    return model
