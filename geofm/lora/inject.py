"""Inject, merge, unload, switch and freeze LoRA adapters in any ``nn.Module``.

Layers are chosen by glob patterns on module names and optionally by type, and
wrapped through the type-keyed table :data:`geofm.lora.layers.LORA_WRAPPERS`
(``nn.Linear -> LoRALinear``, ``nn.Conv2d -> LoRAConv2d``), as in torchao's module
swaps (https://github.com/pytorch/ao, ``torchao/quantization/transform_module.py``).
Matching follows PEFT's ``target_modules`` rule (full name or dotted suffix),
with :mod:`fnmatch` globs. Named adapters, :func:`disable_adapters`,
:func:`merge_and_unload` and :func:`unload` follow PEFT's ``LoraModel``
(https://github.com/huggingface/peft, ``src/peft/tuners/lora/model.py``) as
functions on a plain model: nothing is stored on the model itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

from torch import nn

from geofm.errors import GeofmError, UnknownNameError, UnsupportedModuleError
from geofm.lora._match import match_modules, matches
from geofm.lora.config import LoRAConfig
from geofm.lora.layers import (
    DEFAULT_ADAPTER,
    LORA_WRAPPERS,
    LoRALayer,
    LoRALinear,
    check_adapter_name,
    lora_layers,
    wrapper_for,
)

__all__ = [
    "apply_lora",
    "delete_adapter",
    "disable_adapters",
    "get_active_adapter",
    "get_lora_config",
    "list_adapters",
    "mark_only_lora_trainable",
    "merge_and_unload",
    "merge_lora",
    "set_adapter",
    "unload",
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


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name), child, module)


def _unwrap(model: nn.Module, layers: Sequence[tuple[str, LoRALayer]]) -> None:
    """Put each layer's original module back in its place."""
    for name, layer in layers:
        _replace(model, name, layer.to_base_layer())


def _live_layers(model: nn.Module) -> list[LoRALayer]:
    """The LoRA layers holding the active adapter (the ones merge and unmerge act on)."""
    return [m for m in _require_layers(model) if m.active_adapter is not None]


def list_adapters(model: nn.Module) -> list[str]:
    """The adapter names held by the LoRA layers of ``model``, in order of first appearance.

    Args:
        model: Any module.

    Returns:
        The names (empty if ``model`` has no LoRA layer).

    Example:
        >>> model = apply_lora(nn.Sequential(nn.Linear(4, 6)), LoRAConfig(rank=2, targets=("0",)))
        >>> _ = apply_lora(model, LoRAConfig(rank=4, targets=("0",)), adapter_name="other")
        >>> list_adapters(model)
        ['default', 'other']
    """
    names: dict[str, None] = {}
    for _, layer in lora_layers(model):
        names.update(dict.fromkeys(layer.adapters))
    return list(names)


def get_active_adapter(model: nn.Module) -> str | None:
    """The adapter the LoRA layers of ``model`` use (PEFT's ``active_adapter``).

    Args:
        model: Any module.

    Returns:
        The name, or ``None`` if ``model`` has no LoRA layer.

    Raises:
        GeofmError: If layers have different active adapters (set on single layers
            by hand); :func:`set_adapter` makes them agree.

    Example:
        >>> model = apply_lora(nn.Sequential(nn.Linear(4, 6)), LoRAConfig(rank=2, targets=("0",)))
        >>> get_active_adapter(model)
        'default'
    """
    active = {m.active_adapter for _, m in lora_layers(model) if m.active_adapter is not None}
    if len(active) > 1:
        raise GeofmError(
            f"The LoRA layers of {type(model).__name__} use different adapters {sorted(active)}"
            "; call set_adapter(model, name) to pick one."
        )
    return next(iter(active), None)


def apply_lora(
    model: ModuleT, config: LoRAConfig, *, adapter_name: str = DEFAULT_ADAPTER
) -> ModuleT:
    """Inject LoRA into ``model`` in place and return it.

    Every module selected by ``config`` (see :class:`LoRAConfig`) is replaced
    in its parent by a :class:`LoRALinear` / :class:`LoRAConv2d` that shares the
    original parameters, so ``model.state_dict()`` keeps all original keys and
    gains ``<layer>.lora_A.weight`` / ``<layer>.lora_B.weight``. At init the
    model computes exactly what it did before. ``requires_grad`` of existing
    parameters is not changed: call :func:`mark_only_lora_trainable` next. Each
    wrapper records ``config``; :func:`get_lora_config` reads it back (for
    :func:`save_lora`, :func:`to_peft` and ``save_pretrained``).

    Named adapters (PEFT's ``adapter_name``): calling ``apply_lora`` again with
    another ``adapter_name`` adds a second adapter, to already wrapped layers
    and to newly selected ones (stored under ``<layer>.lora_adapters.<name>``).
    The first adapter of a model is active; later ones are not until
    :func:`set_adapter`. A second adapter may not list ``also`` modules: they
    exist once in the model, so two adapters would overwrite each other's.

    Args:
        model: Any module (a timm/torchvision/geofm backbone, a full model).
        config: What to adapt and how.
        adapter_name: The new adapter's name (default ``"default"``).

    Returns:
        ``model`` itself, adapted.

    Raises:
        GeofmError: If ``model`` already holds an adapter named ``adapter_name``,
            is merged, or a second adapter lists ``also`` modules.
        UnknownNameError: If a ``targets`` pattern matches no module (the
            message lists close module names).
        UnsupportedModuleError: If a matched module or a ``target_types`` entry
            has a type LoRA cannot wrap (the message lists the supported types), a
            matched module is shared under several names, or ``qkv_parts`` is a
            strict subset but no adapted Linear matches ``qkv_names``.
        ShapeError: If a fused qkv layer's output size is not divisible by 3.
        ValueError: If a grouped convolution's groups do not divide the rank,
            or ``adapter_name`` is not a valid name.

    Example:
        >>> model = nn.Sequential(nn.Linear(4, 12), nn.ReLU(), nn.Linear(12, 2))
        >>> _ = apply_lora(model, LoRAConfig(rank=2, targets=("0", "2")))
        >>> sorted(model.state_dict())  # doctest: +NORMALIZE_WHITESPACE
        ['0.bias', '0.lora_A.weight', '0.lora_B.weight', '0.weight',
         '2.bias', '2.lora_A.weight', '2.lora_B.weight', '2.weight']
    """
    check_adapter_name(adapter_name)
    existing = dict(lora_layers(model))
    taken = [n for n, m in existing.items() if adapter_name in m.adapters]
    if taken:
        raise GeofmError(
            f"{type(model).__name__} already has a LoRA adapter named {adapter_name!r} "
            f"({', '.join(taken[:3])}...). apply_lora adds each adapter once: put every target "
            "in one LoRAConfig, or pass another adapter_name."
        )
    if any(m.merged for m in existing.values()):
        raise GeofmError("Cannot add an adapter to a merged model. Call unmerge_lora(model) first.")
    if existing and config.also:
        raise GeofmError(
            f"Adapter {adapter_name!r} lists also={config.also!r}, but the model already holds "
            f"adapters {list_adapters(model)}: also modules exist once in the model, so "
            "two adapters would overwrite each other's. Pass also=() for this adapter (and "
            "load its head yourself), or use a separate model."
        )
    for t in config.target_types:
        wrapper_for(t, where="LoRAConfig.target_types entry")
    wrapped = tuple(LORA_WRAPPERS[t] for t in config.target_types if t in LORA_WRAPPERS)
    selected = match_modules(
        model, config.targets, field_name="targets", exclude=config.exclude,
        types=config.target_types + wrapped, skip_inside=[n for n in existing if n],
    )  # fmt: skip
    occurrences: dict[int, list[str]] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        occurrences.setdefault(id(module), []).append(name)
    wrappers: dict[str, LoRALayer] = {}
    grown: dict[str, LoRALayer] = {}
    for name, module in selected.items():
        if isinstance(module, LoRALayer):
            grown[name] = module
            continue
        wrapper_cls = wrapper_for(type(module), where=f"Module {name!r}")
        if len(occurrences[id(module)]) > 1:
            raise UnsupportedModuleError(
                f"Module {name!r} is shared under several names {occurrences[id(module)]}; "
                "LoRA cannot wrap a shared module. Exclude it."
            )
        wrappers[name] = wrapper_cls.from_config(
            module, config, name=name, adapter_name=adapter_name
        )
    fused = [
        n for n, w in {**wrappers, **grown}.items()
        if isinstance(w, LoRALinear) and matches(n, config.qkv_names)
    ]  # fmt: skip
    if config.qkv_chunks and not fused:
        raise UnsupportedModuleError(
            f"qkv_parts={config.qkv_parts!r} selects parts of fused qkv Linears, but no adapted "
            f"Linear matches qkv_names={config.qkv_names!r}. Fix qkv_names or drop qkv_parts."
        )
    # Change the model only once every new wrapper is built; undo added adapters on error.
    done: list[LoRALayer] = []
    try:
        for name, layer in grown.items():
            layer.add_adapter_from_config(config, name=name, adapter_name=adapter_name)
            done.append(layer)
    except BaseException:
        for layer in done:
            layer.delete_adapter(adapter_name)
        raise
    active = get_active_adapter(model) if existing else None
    disabled = any(m.adapters_disabled for m in existing.values())
    for name, wrapper in wrappers.items():
        if existing:  # a new wrapper joins the model's current state
            wrapper.set_adapter(adapter_name if active == adapter_name else None)
            wrapper.adapters_disabled = disabled
        _replace(model, name, wrapper)
    return model


def set_adapter(model: nn.Module, adapter_name: str) -> None:
    """Make ``adapter_name`` the active adapter of every LoRA layer (PEFT's ``set_adapter``).

    Layers that do not hold this adapter compute their base layer only.
    ``requires_grad`` is not changed: call :func:`mark_only_lora_trainable`
    to train the newly active adapter.

    Args:
        model: A model adapted by :func:`apply_lora`.
        adapter_name: One of :func:`list_adapters`.

    Raises:
        UnknownNameError: If no layer holds ``adapter_name``.
        GeofmError: If ``model`` is merged.

    Example:
        >>> model = apply_lora(nn.Sequential(nn.Linear(4, 6)), LoRAConfig(rank=2, targets=("0",)))
        >>> _ = apply_lora(model, LoRAConfig(rank=4, targets=("0",)), adapter_name="other")
        >>> set_adapter(model, "other")
        >>> get_active_adapter(model), model[0].rank
        ('other', 4)
    """
    layers = _require_layers(model)
    names = list_adapters(model)
    if adapter_name not in names:
        raise UnknownNameError(
            f"{type(model).__name__} has no adapter {adapter_name!r}; it has {names}."
        )
    if any(m.merged for m in layers):
        raise GeofmError(
            "Cannot switch adapters of a merged model. Call unmerge_lora(model) first."
        )
    for layer in layers:
        layer.set_adapter(adapter_name if adapter_name in layer.adapters else None)


def delete_adapter(model: nn.Module, adapter_name: str) -> None:
    """Remove an adapter from every LoRA layer of ``model`` in place (PEFT's ``delete_adapter``).

    A layer left without adapters is replaced by its original module. If the
    deleted adapter was active, the first remaining one (see
    :func:`list_adapters`) becomes active.

    Args:
        model: A model adapted by :func:`apply_lora`.
        adapter_name: One of :func:`list_adapters`.

    Raises:
        UnknownNameError: If no layer holds ``adapter_name``.
        GeofmError: If that adapter is merged.

    Example:
        >>> model = apply_lora(nn.Sequential(nn.Linear(4, 6)), LoRAConfig(rank=2, targets=("0",)))
        >>> delete_adapter(model, "default")
        >>> type(model[0]).__name__
        'Linear'
    """
    layers = list(lora_layers(model))
    names = list_adapters(model)
    if adapter_name not in names:
        raise UnknownNameError(
            f"{type(model).__name__} has no adapter {adapter_name!r}; it has {names}."
        )
    if any(m.merged_adapter == adapter_name for _, m in layers):
        raise GeofmError(
            f"Adapter {adapter_name!r} is merged. Call unmerge_lora(model) before deleting it."
        )
    was_active = get_active_adapter(model) == adapter_name
    for _, layer in layers:
        if adapter_name in layer.adapters:
            layer.delete_adapter(adapter_name)
    _unwrap(model, [(n, m) for n, m in layers if n and not m.adapters])
    remaining = list_adapters(model)
    if was_active and remaining:
        set_adapter(model, remaining[0])


def _layer_configs(
    model: nn.Module, adapter_name: str
) -> tuple[dict[str, list[str]], list[LoRAConfig]]:
    """Where the layers holding ``adapter_name`` were adapted from, and their configs."""
    roots: dict[str, list[str]] = {}
    configs: list[LoRAConfig] = []
    for path, layer in lora_layers(model):
        info = layer.adapters.get(adapter_name)
        if info is None:
            continue
        if info.config is None or info.target_name is None:
            raise GeofmError(
                f"LoRA layer {path!r} of {type(model).__name__} was built directly "
                f"({type(layer).__name__}(...)), not by apply_lora, so it records no LoRAConfig. "
                "Adapt models with apply_lora(model, config)."
            )
        root = _root_of(path, info.target_name)
        if root is None:
            raise GeofmError(
                f"LoRA layer {path!r} was adapted as {info.target_name!r} and has since been "
                "moved to another name, so geofm cannot tell which module its config applies "
                "to. Call apply_lora on the model in its final layout."
            )
        roots.setdefault(root, []).append(path)
        if info.config not in configs:
            configs.append(info.config)
    return roots, configs


def _resolve_adapter(model: nn.Module, adapter_name: str | None) -> str | None:
    """``adapter_name``, or the active adapter (or the only one); ``None``: no adapters."""
    names = list_adapters(model)
    if adapter_name is not None:
        if adapter_name not in names:
            raise UnknownNameError(
                f"{type(model).__name__} has no adapter {adapter_name!r}; it has {names}."
            )
        return adapter_name
    active = get_active_adapter(model)
    if active is not None:
        return active
    return names[0] if len(names) == 1 else None


def get_lora_config(model: nn.Module, *, adapter_name: str | None = None) -> LoRAConfig | None:
    """The :class:`LoRAConfig` that :func:`apply_lora` applied to ``model``, read from its layers.

    Every layer built by :func:`apply_lora` records, per adapter, its config
    and its dotted name in the adapted module
    (:class:`~geofm.lora.layers.LoRAAdapterInfo`); nothing is stored on
    ``model`` itself. The config belongs to the module ``apply_lora`` was called
    on: after ``apply_lora(backbone, config)``, ``get_lora_config(backbone)`` is
    ``config`` and, for a model holding that backbone, ``get_lora_config(model)``
    is ``None``.

    Args:
        model: Any module.
        adapter_name: Which adapter (``None``: the active one).

    Returns:
        The config, or ``None`` if ``model`` holds no LoRA layer or the
        adapter's layers were all added by one ``apply_lora`` call on another
        module (a submodule of ``model``, or a module that contains it).

    Raises:
        GeofmError: If the adapter's layers cannot come from one ``apply_lora``
            call: a layer built directly (``LoRALinear(...)``), layers from calls
            on different modules or with different configs, or a layer moved to
            another name after ``apply_lora``.
        UnknownNameError: If ``model`` has no adapter ``adapter_name``.

    Example:
        >>> config = LoRAConfig(rank=2, targets=("0",))
        >>> inner = apply_lora(nn.Sequential(nn.Linear(4, 4)), config)
        >>> get_lora_config(inner) == config
        True
        >>> get_lora_config(nn.Sequential(inner, nn.ReLU())) is None  # applied to a child
        True
    """
    name = _resolve_adapter(model, adapter_name)
    if name is None:
        return None
    roots, configs = _layer_configs(model, name)
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
    """Fold the active adapter into every base weight in place and return ``model``.

    Computed in float32 and cast back to the weight's dtype. Safe merge (PEFT's
    ``safe_merge``, always on): every layer's merged weight is computed and
    checked first, and only if all are finite is any weight written, so an
    adapter holding NaN/inf raises and leaves the model untouched. The merged
    model runs at the plain backbone's speed; :func:`unmerge_lora` undoes it.

    Args:
        model: A model adapted by :func:`apply_lora`.

    Returns:
        ``model``, merged.

    Raises:
        GeofmError: If ``model`` has no LoRA layers, is already merged or its
            adapters are disabled.
        ValueError: If an adapter holds NaN/inf or a merged weight overflows
            its dtype (nothing is written).

    Example:
        >>> model = apply_lora(nn.Sequential(nn.Linear(4, 4)), LoRAConfig(rank=2, targets=("0",)))
        >>> merge_lora(model)[0].merged
        True
    """
    layers = _live_layers(model)
    if any(layer.merged for layer in _require_layers(model)):
        raise GeofmError("Model is already (partly) merged. Call unmerge_lora(model) first.")
    if any(layer.adapters_disabled for layer in layers):
        raise GeofmError("Cannot merge inside disable_adapters(model).")
    for layer in layers:  # check all before writing any
        layer.merged_weight()
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
    layers = _live_layers(model)
    if not layers or not all(layer.merged for layer in layers):
        raise GeofmError("Model is not (fully) merged. Call merge_lora(model) first.")
    for layer in layers:
        layer.unmerge()
    return model


def _unwrappable(model: nn.Module, what: str) -> list[tuple[str, LoRALayer]]:
    layers = list(lora_layers(model))
    if not layers:
        raise GeofmError(
            f"{type(model).__name__} has no LoRA layers. Call apply_lora(model, config) first."
        )
    if layers[0][0] == "":
        raise GeofmError(
            f"{what} replaces LoRA layers inside a model, but got a LoRA layer itself. Use "
            "layer.merge() / layer.unmerge() and layer.to_base_layer()."
        )
    return layers


def merge_and_unload(model: ModuleT) -> ModuleT:
    """Merge the active adapter and put plain layers back, in place (PEFT's ``merge_and_unload``).

    After :func:`merge_lora` (safe: nothing is written if an adapter is not
    finite), each LoRA wrapper is replaced by the original ``nn.Linear`` /
    ``nn.Conv2d`` object holding the merged weights; no wrapper, ``lora_A`` or
    ``lora_B`` is left and the state dict has the base model's keys. Other
    adapters are dropped. A model merged already is only unloaded.

    Args:
        model: A model adapted by :func:`apply_lora` (not a LoRA layer itself).

    Returns:
        ``model`` with plain layers.

    Raises:
        GeofmError: If ``model`` has no LoRA layers, is itself a LoRA layer, or
            is partly merged.
        ValueError: If an adapter holds NaN/inf (nothing is changed).

    Example:
        >>> model = apply_lora(nn.Sequential(nn.Linear(4, 4)), LoRAConfig(rank=2, targets=("0",)))
        >>> type(merge_and_unload(model)[0]).__name__
        'Linear'
    """
    layers = _unwrappable(model, "merge_and_unload")
    live = [m for _, m in layers if m.active_adapter is not None]
    if not (live and all(m.merged for m in live)):
        merge_lora(model)
    _unwrap(model, layers)
    return model


def unload(model: ModuleT) -> ModuleT:
    """Remove all adapters without merging; put plain layers back, in place (PEFT's ``unload``).

    A merged model is unmerged first, so the base weights are the original
    ones (up to float32 rounding of ``W0 + dW - dW``).

    Args:
        model: A model adapted by :func:`apply_lora` (not a LoRA layer itself).

    Returns:
        ``model`` with plain layers.

    Raises:
        GeofmError: If ``model`` has no LoRA layers or is itself a LoRA layer.

    Example:
        >>> base = nn.Linear(4, 4)
        >>> model = apply_lora(nn.Sequential(base), LoRAConfig(rank=2, targets=("0",)))
        >>> unload(model)[0] is base
        True
    """
    layers = _unwrappable(model, "unload")
    for _, layer in layers:
        if layer.merged:
            layer.unmerge()
    _unwrap(model, layers)
    return model


@contextmanager
def disable_adapters(model: nn.Module) -> Iterator[None]:
    """Context manager: inside it, LoRA layers compute their base layer only (``disable_adapter``).

    The previous state is restored on exit, also after an exception. Layers
    that :func:`apply_lora` wraps inside the block start disabled there and get
    the model's previous state on exit. Nothing is merged or copied.

    Args:
        model: A model adapted by :func:`apply_lora`.

    Yields:
        Nothing.

    Raises:
        GeofmError: If ``model`` has no LoRA layers or is merged (a merged
            adapter is part of the base weights: call :func:`unmerge_lora`).

    Example:
        >>> import torch
        >>> base = nn.Linear(4, 6)
        >>> model = apply_lora(nn.Sequential(base), LoRAConfig(rank=2, targets=("0",)))
        >>> _ = model[0].lora_B.weight.data.fill_(0.5)
        >>> x = torch.randn(3, 4)
        >>> with disable_adapters(model):
        ...     torch.equal(model(x), base(x))
        True
    """
    layers = _require_layers(model)
    if any(layer.merged for layer in layers):
        raise GeofmError(
            "Cannot disable adapters of a merged model: the adapter is part of the base weights. "
            "Call unmerge_lora(model) first."
        )
    before = [layer.adapters_disabled for layer in layers]
    for layer in layers:
        layer.adapters_disabled = True
    try:
        yield
    finally:
        for layer, state in zip(layers, before, strict=True):
            layer.adapters_disabled = state
        # Layers wrapped inside the block joined its disabled state: they leave it too.
        known = {id(layer) for layer in layers}
        for _, layer in lora_layers(model):
            if id(layer) not in known:
                layer.adapters_disabled = any(before)


def _saved_modules(model: nn.Module) -> dict[str, nn.Module]:
    """The ``also`` modules of the active adapter's configs, found under the module each adapted.

    ``apply_lora`` may have been called on ``model`` or on submodules of it: each
    config's ``also`` is matched inside the module it was applied to (a config
    applied to a parent of ``model`` cannot be resolved from here and is skipped).
    """
    roots: dict[tuple[str, tuple[str, ...]], None] = {}
    for path, layer in lora_layers(model):
        info = layer.adapters.get(layer.active_adapter or "")
        if info is None or info.config is None or not info.config.also or not info.target_name:
            continue
        if path == info.target_name or path.endswith("." + info.target_name):
            roots[(path[: len(path) - len(info.target_name)].rstrip("."), info.config.also)] = None
    found: dict[str, nn.Module] = {}
    for root, also in roots:
        module = model.get_submodule(root)
        hidden = [n for n, _ in lora_layers(module) if n]
        prefix = f"{root}." if root else ""
        matched = match_modules(module, also, field_name="LoRAConfig.also", skip_inside=hidden)
        found.update({prefix + n: m for n, m in matched.items()})
    return found


def mark_only_lora_trainable(model: ModuleT, *, also: Sequence[str] | None = None) -> ModuleT:
    """Freeze all parameters but the active adapter's ``A``/``B`` and ``also`` modules, in place.

    The modules in the active adapter's ``LoRAConfig.also`` (PEFT's
    ``modules_to_save``; matched inside the module ``apply_lora`` adapted)
    always stay trainable: they are saved with the adapter. ``also`` adds more.
    By default (``also=None``) a module named ``head`` is added too when the
    model has one (the former default ``("head",)``, which raised on a bare
    backbone).

    Args:
        model: A model adapted by :func:`apply_lora`.
        also: Module-name globs (same rule as ``LoRAConfig.targets``) whose
            parameters stay trainable besides ``LoRAConfig.also``. ``None``:
            ``("head",)`` if such a module exists, else nothing. ``()``: none.

    Returns:
        ``model``.

    Raises:
        GeofmError: If ``model`` has no LoRA layers.
        UnknownNameError: If an ``also`` pattern matches no module.
        ValueError: If ``also`` is a string.

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
    if also is None:
        names = [n for n, _ in model.named_modules() if n]
        also = ("head",) if any(matches(n, ("head",)) for n in names) else ()
    hidden = [n for n, _ in lora_layers(model) if n]
    extra = _saved_modules(model)
    if also:
        extra.update(match_modules(model, tuple(also), field_name="also", skip_inside=hidden))
    model.requires_grad_(False)
    for layer in layers:
        if layer.active_adapter is not None:
            lora_a, lora_b, _ = layer.adapter_modules()
            lora_a.requires_grad_(True)
            lora_b.requires_grad_(True)
    for module in extra.values():
        module.requires_grad_(True)
    return model
