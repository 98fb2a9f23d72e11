"""Save and load LoRA adapters: geofm's safetensors file and PEFT's adapter folder.

geofm's file (:func:`save_lora` / :func:`load_lora`) holds one adapter's tensors
under the model's own state-dict keys of a ``"default"`` adapter
(``blocks.0.attn.qkv.lora_A.weight``, ``head.weight``) whatever the adapter's
name, and the :class:`~geofm.lora.LoRAConfig` as JSON in the safetensors
metadata, so :func:`load_lora` can rebuild the adapter on a fresh base model
(under any ``adapter_name``). Format: https://github.com/huggingface/safetensors

A PEFT adapter folder (:func:`to_peft` / :func:`from_peft`) holds
``adapter_config.json`` (a ``LoraConfig``) and ``adapter_model.safetensors`` with
keys ``base_model.model.<module>.lora_A.weight``, ``...lora_B.weight`` and, for
``modules_to_save``, ``base_model.model.<module>.<param>``. geofm's layers use
the same tensor layouts (except ``lora_A`` of grouped convolutions, converted
here), so the conversion mostly renames keys. References:
https://github.com/huggingface/peft (``src/peft/utils/save_and_load.py``,
``src/peft/tuners/lora/config.py``, ``src/peft/tuners/lora/layer.py``).

Loading is transactional: if :func:`load_lora` or :func:`from_peft` fails,
no adapter is left in the model.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from geofm._atomic import atomic_output
from geofm.errors import GeofmError, UnknownNameError, WeightsError
from geofm.lora._match import match_modules, matches
from geofm.lora.config import LoRAConfig
from geofm.lora.inject import (
    apply_lora,
    delete_adapter,
    get_active_adapter,
    get_lora_config,
    list_adapters,
)
from geofm.lora.layers import DEFAULT_ADAPTER, LoRAConv2d, LoRALinear, lora_layers

__all__ = ["from_peft", "load_lora", "lora_state_dict", "save_lora", "to_peft"]

ModuleT = TypeVar("ModuleT", bound=nn.Module)

logger = logging.getLogger(__name__)

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


def _adapter_name(model: nn.Module, adapter_name: str | None) -> str:
    """``adapter_name``, or the model's active adapter (or its only one)."""
    names = list_adapters(model)
    if adapter_name is None:
        active = get_active_adapter(model)
        adapter_name = active if active is not None else (names[0] if len(names) == 1 else None)
    if not names:
        raise GeofmError(
            f"{type(model).__name__} has no LoRA config. Call apply_lora(model, config) on this "
            "same module first (not on a parent or child of it)."
        )
    if adapter_name is None or adapter_name not in names:
        what = "no active adapter" if adapter_name is None else f"no adapter {adapter_name!r}"
        raise GeofmError(
            f"{type(model).__name__} has {what} (adapters: {names}). Call apply_lora(model, "
            "config) first, or pass adapter_name."
        )
    return adapter_name


def _require_config(model: nn.Module, adapter_name: str | None = None) -> LoRAConfig:
    name = _adapter_name(model, adapter_name)
    config = get_lora_config(model, adapter_name=name)
    if config is None:
        raise GeofmError(
            f"{type(model).__name__} has no LoRA config. Call apply_lora(model, config) on this "
            "same module first (not on a parent or child of it)."
        )
    return config


def _preview(keys: Sequence[str]) -> str:
    return ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")


def _show(value: object) -> str:
    return str(tuple(value)) if isinstance(value, torch.Size) else str(value)


def _adapter_keys(model: nn.Module, also: Sequence[str], adapter_name: str) -> dict[str, str]:
    """File key -> state-dict key of one adapter's tensors and of the ``also`` modules.

    File keys are those of a ``"default"`` adapter (``<layer>.lora_A.weight``);
    another adapter's tensors live under ``<layer>.lora_adapters.<name>.lora_A.weight``.
    """
    keys: dict[str, str] = {}
    inner = "" if adapter_name == DEFAULT_ADAPTER else f"lora_adapters.{adapter_name}."
    for name, layer in lora_layers(model):
        if adapter_name in layer.adapters:
            for ab in ("lora_A", "lora_B"):
                keys[f"{name}.{ab}.weight"] = f"{name}.{inner}{ab}.weight"
    if also:
        hidden = [n for n, _ in lora_layers(model) if n]
        for name, module in match_modules(
            model, tuple(also), field_name="also", skip_inside=hidden
        ).items():
            keys.update({f"{name}.{k}": f"{name}.{k}" for k in module.state_dict()})
    return keys


def _copy_adapter_tensors(
    model: nn.Module, tensors: Mapping[str, Tensor], *, source: str, adapter_name: str
) -> None:
    """Copy ``tensors`` (file keys) into ``model``; keys, shapes and dtypes must match exactly."""
    if any(layer.merged for _, layer in lora_layers(model)):
        raise GeofmError(
            "Cannot load adapters into a merged model. Call unmerge_lora(model) first."
        )
    keys = _adapter_keys(model, _require_config(model, adapter_name).also, adapter_name)
    missing = [k for k in keys if k not in tensors]
    unexpected = [k for k in tensors if k not in keys]
    if missing or unexpected:
        raise WeightsError(
            f"Adapter keys in {source} do not match the model: missing {len(missing)} "
            f"[{_preview(missing)}], unexpected {len(unexpected)} [{_preview(unexpected)}]. "
            "Load into the same architecture the adapter was trained on."
        )
    state = model.state_dict(keep_vars=True)
    problems = {
        attr: [
            f"{k}: file {_show(getattr(tensors[k], attr))}, model {_show(getattr(state[v], attr))}"
            for k, v in keys.items()
            if getattr(tensors[k], attr) != getattr(state[v], attr)
        ]
        for attr in ("shape", "dtype")
    }
    for attr, fix in (
        ("shape", "The adapter was made for another architecture (layer sizes, number of classes "
                  "or rank): load it into the model it was trained on."),
        ("dtype", "Cast the model to the adapter's dtype (or the other way round) before "
                  "loading; nothing is cast silently."),
    ):  # fmt: skip
        bad = problems[attr]
        if bad:
            more = " ..." if len(bad) > 3 else ""
            raise WeightsError(
                f"{len(bad)} tensor(s) in {source} have another {attr} than the model's "
                f"({'; '.join(bad[:3])}{more}). {fix}"
            )
    with torch.no_grad():
        for key, target in keys.items():
            state[target].copy_(tensors[key])


def _check_same_config(
    model: nn.Module, config: LoRAConfig, *, adapter_name: str, source: str
) -> None:
    current = _require_config(model, adapter_name)
    if current != config:
        diff = [
            f"{f}: model {getattr(current, f)!r} vs file {getattr(config, f)!r}"
            for f in LoRAConfig.__dataclass_fields__
            if getattr(current, f) != getattr(config, f)
        ]
        raise GeofmError(
            f"The model's LoRA config of adapter {adapter_name!r} differs from the one in "
            f"{source} ({'; '.join(diff)}). Load into the plain base model instead (or under "
            "another adapter_name), and the stored config is applied."
        )


def _load_transaction(
    model: nn.Module,
    config: LoRAConfig,
    *,
    adapter_name: str,
    source: str,
    tensors: Callable[[], Mapping[str, Tensor]],
) -> None:
    """Apply ``config`` as ``adapter_name`` if absent (else check it), then load ``tensors()``.

    On any error an adapter added here is deleted again, which puts the
    original modules back: the model is left as it was.
    """
    created = adapter_name not in list_adapters(model)
    if created:
        apply_lora(model, config, adapter_name=adapter_name)
    else:
        _check_same_config(model, config, adapter_name=adapter_name, source=source)
    try:
        _copy_adapter_tensors(model, tensors(), source=source, adapter_name=adapter_name)
    except BaseException:
        if created:
            delete_adapter(model, adapter_name)
        raise


def _read_safetensors(path: Path, what: str) -> tuple[dict[str, str], dict[str, Tensor]]:
    """Metadata and tensors of a safetensors file; a missing, directory or damaged path raises."""
    from safetensors import SafetensorError, safe_open

    if path.is_dir():
        raise WeightsError(f"{what} {path} is a directory, not a safetensors file.")
    if not path.is_file():
        raise WeightsError(f"{what} {path} not found.")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise WeightsError(
            f"{what} {path} cannot be read as safetensors ({type(err).__name__}: {err}); the "
            "file is truncated or corrupt. Save or download it again."
        ) from err
    return metadata, tensors


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


def _group_blocks(groups: int, a: Tensor) -> tuple[Tensor, Tensor]:
    """PEFT's grouped-conv ``A`` ``(r, in, kh, kw)`` as ``(g, r/g, g, in/g, kh, kw)``, + index."""
    r, cin = a.shape[:2]
    return a.reshape(groups, r // groups, groups, cin // groups, *a.shape[2:]), torch.arange(groups)


def _peft_conv_a(a: Tensor, groups: int) -> Tensor:
    """Grouped ``A`` ``(r, in/g, kh, kw)`` in PEFT's layout ``(r, in, kh, kw)``, 0 across groups."""
    r, cin_g = a.shape[:2]
    dense = a.new_zeros(r, groups * cin_g, *a.shape[2:])
    blocks, idx = _group_blocks(groups, dense)  # a view of `dense`
    blocks[idx, :, idx] = a.reshape(groups, r // groups, cin_g, *a.shape[2:])
    return dense


def _geofm_conv_a(a: Tensor, groups: int, *, where: str) -> Tensor:
    """PEFT's dense grouped ``A`` back to ``(r, in/g, kh, kw)``; refuses cross-group weights."""
    blocks, idx = _group_blocks(groups, a)
    own = blocks[idx, :, idx]  # (g, r/g, in/g, kh, kw)
    across = blocks.clone()
    across[idx, :, idx] = 0
    if across.count_nonzero():
        raise GeofmError(
            f"{where} is a convolution with groups={groups}. PEFT's lora_A for it reads every "
            f"input channel, and this adapter has non-zero weights across groups (max "
            f"{across.abs().max().item():.3g}): an update a grouped convolution cannot hold, "
            "so it cannot be loaded or merged (PEFT cannot merge it either). Exclude the layer "
            "when training with PEFT, or train the adapter with geofm."
        )
    return own.reshape(a.shape[0], a.shape[1] // groups, *a.shape[2:])


def _check_peft_convs(model: nn.Module, layers: Sequence[str]) -> None:
    """PEFT builds a conv's lora_A without the base's dilation: refuse dilated convolutions."""
    for name, layer in lora_layers(model):
        if name in layers and isinstance(layer, LoRAConv2d) and tuple(layer.dilation) != (1, 1):
            raise GeofmError(
                f"Layer {name!r} is a dilated convolution (dilation={layer.dilation}); PEFT "
                "builds lora_A without the base's dilation, so PEFT and geofm would compute "
                "different outputs. Exclude it from the PEFT adapter, or use save_lora/load_lora."
            )


def lora_state_dict(
    model: nn.Module, *, also: Sequence[str] | None = None, adapter_name: str | None = None
) -> dict[str, Tensor]:
    """One adapter's tensors under the keys of its file (PEFT's ``get_peft_model_state_dict``).

    The keys are the model's state-dict keys for the ``"default"`` adapter
    (``<layer>.lora_A.weight``); another adapter's tensors get the same keys
    (its name is dropped, as PEFT does).

    Args:
        model: A model adapted by :func:`apply_lora`.
        also: Module-name globs saved in full next to the adapters; ``None``
            uses the ``also`` of the adapter's :class:`LoRAConfig`.
        adapter_name: Which adapter (``None``: the active one).

    Returns:
        ``{key: tensor}`` with every ``lora_A``/``lora_B`` weight and the
        state of the ``also`` modules (detached, sharing memory with the model).

    Raises:
        GeofmError: If ``apply_lora`` was not called on ``model`` or it has no
            such adapter.
        UnknownNameError: If an ``also`` pattern matches no module.

    Example:
        >>> model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 1))
        >>> model = apply_lora(model, LoRAConfig(rank=2, targets=("0",), also=("1",)))
        >>> list(lora_state_dict(model))
        ['0.lora_A.weight', '0.lora_B.weight', '1.weight', '1.bias']
    """
    name = _adapter_name(model, adapter_name)
    config = _require_config(model, name)
    state = model.state_dict()
    keys = _adapter_keys(model, config.also if also is None else also, name)
    return {k: state[v] for k, v in keys.items()}


def save_lora(
    model: nn.Module, path: str | os.PathLike[str], *, adapter_name: str | None = None
) -> Path:
    """Write one adapter and the ``also`` modules of ``model`` to a safetensors file.

    The :class:`LoRAConfig` goes into the file's metadata, so :func:`load_lora`
    needs only the base model. The file is the same whatever the adapter's name.
    An existing file is replaced atomically (as PEFT's ``save_pretrained``
    replaces): the data goes to a temporary file beside it that is renamed
    over it only when complete, so a crash leaves the previous file or none;
    permissions follow the umask.

    Args:
        model: A model adapted by :func:`apply_lora`.
        path: Output file (conventionally ``*.safetensors``); parent folders are created.
        adapter_name: Which adapter (``None``: the active one).

    Returns:
        The written path.

    Raises:
        GeofmError: If ``apply_lora`` was not called on ``model`` or it has no such adapter.

    Example:
        >>> import tempfile
        >>> model = apply_lora(nn.Sequential(nn.Linear(4, 4)), LoRAConfig(rank=2, targets=("0",)))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     save_lora(model, Path(tmp) / "adapter.safetensors").name
        'adapter.safetensors'
    """
    from safetensors.torch import save_file

    name = _adapter_name(model, adapter_name)
    config = _require_config(model, name)
    tensors = {
        k: v.detach().contiguous().clone()
        for k, v in lora_state_dict(model, adapter_name=name).items()
    }
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    metadata = {_FORMAT_KEY: _FORMAT, _CONFIG_KEY: config.to_json()}
    with atomic_output(out, overwrite=True, caller="save_lora") as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return out


def load_lora(
    model: ModuleT, path: str | os.PathLike[str], *, adapter_name: str = DEFAULT_ADAPTER
) -> ModuleT:
    """Load a :func:`save_lora` file into ``model`` in place and return it.

    A model without an adapter named ``adapter_name`` gets the stored config
    applied under that name first (a second adapter next to existing ones:
    switch with :func:`~geofm.lora.set_adapter`); if the model has that
    adapter, it must have been applied with an equal config. Keys, shapes and
    dtypes must match exactly (nothing is cast or skipped). Transactional: if
    anything fails, the model is left as it was (no adapter injected).

    Args:
        model: The base model, plain or already adapted.
        path: A file written by :func:`save_lora`.
        adapter_name: The adapter to load into (PEFT's ``adapter_name``).

    Returns:
        ``model`` with the adapter and ``also`` modules loaded.

    Raises:
        WeightsError: If the path is missing, a directory, truncated or not a
            geofm LoRA file, or keys, shapes or dtypes do not match (the message
            names which).
        GeofmError: If ``model`` is merged or its adapter ``adapter_name`` was
            applied with another config.

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
    file = Path(path)
    metadata, tensors = _read_safetensors(file, "LoRA adapter file")
    if metadata.get(_FORMAT_KEY) != _FORMAT or _CONFIG_KEY not in metadata:
        raise WeightsError(
            f"{file} is not a geofm LoRA file: its metadata has {_FORMAT_KEY!r}="
            f"{metadata.get(_FORMAT_KEY)!r} and {'a' if _CONFIG_KEY in metadata else 'no'} "
            f"{_CONFIG_KEY!r}, expected {_FORMAT!r} and a config. Use from_peft for PEFT adapter "
            "folders, or save the adapter with save_lora."
        )
    config = LoRAConfig.from_json(metadata[_CONFIG_KEY])
    _load_transaction(
        model, config, adapter_name=adapter_name, source=str(file), tensors=lambda: tensors
    )
    return model


def to_peft(
    model: nn.Module, directory: str | os.PathLike[str], *, adapter_name: str | None = None
) -> Path:
    """Write one adapter of ``model`` as a PEFT adapter folder.

    ``PeftModel.from_pretrained(base_model, directory)`` then rebuilds the same
    adapted model (``also`` modules become PEFT ``modules_to_save``). For a
    grouped convolution, ``lora_A`` is written in PEFT's layout (every input
    channel, zero across groups), so PEFT computes the same outputs.

    Args:
        model: A model adapted by :func:`apply_lora`.
        directory: Output folder (created if needed).
        adapter_name: Which adapter (``None``: the active one).

    Returns:
        The folder, holding ``adapter_config.json`` and ``adapter_model.safetensors``.

    Raises:
        GeofmError: If ``apply_lora`` was not called on ``model``, a fused qkv
            layer adapts only some of q, k, v, which PEFT cannot express (PEFT
            adapts a fused Linear as a whole; peft issue #691), or an adapted
            convolution is dilated (PEFT's ``lora_A`` ignores dilation).

    Example:
        >>> import tempfile
        >>> from geofm.lora import apply_lora
        >>> model = apply_lora(nn.Sequential(nn.Linear(4, 4)), LoRAConfig(rank=2, targets=("0",)))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     sorted(p.name for p in to_peft(model, tmp).iterdir())
        ['adapter_config.json', 'adapter_model.safetensors']
    """
    from safetensors.torch import save_file

    name = _adapter_name(model, adapter_name)
    config = _require_config(model, name)
    held = [(n, m) for n, m in lora_layers(model) if name in m.adapters]
    partial = [n for n, m in held if isinstance(m, LoRALinear) and m.adapters[name].chunks]
    if partial:
        raise GeofmError(
            f"PEFT cannot express qkv_parts={config.qkv_parts!r}: it adapts a fused qkv Linear "
            f"only as a whole (peft issue #691). Affected layers: {', '.join(partial[:3])}. Use "
            "qkv_parts=('q', 'k', 'v') for a PEFT-compatible adapter, or save_lora for this one."
        )
    layers = [n for n, _ in held]
    _check_peft_convs(model, layers)
    hidden = [n for n, _ in lora_layers(model) if n]
    names = [
        n
        for n, _ in model.named_modules()
        if n and not n.startswith(tuple(h + "." for h in hidden))
    ]
    also = (
        list(match_modules(model, config.also, field_name="also", skip_inside=hidden))
        if config.also
        else []
    )
    alpha: float | int = int(config.alpha) if float(config.alpha).is_integer() else config.alpha
    peft_config = {
        "peft_type": "LORA", "task_type": None, "base_model_name_or_path": None,
        "revision": None, "inference_mode": True, "r": config.rank, "lora_alpha": alpha,
        "lora_dropout": config.dropout, "use_rslora": config.use_rslora,
        "target_modules": _peft_spec(layers, names), "exclude_modules": None,
        "modules_to_save": sorted(also) or None, "init_lora_weights": True,
        "layers_pattern": None, **_UNSUPPORTED_PEFT_OPTIONS,
    }  # fmt: skip
    tensors = {k: v.detach() for k, v in lora_state_dict(model, adapter_name=name).items()}
    for layer_name, layer in held:
        if isinstance(layer, LoRAConv2d) and layer.groups > 1:
            key = f"{layer_name}.lora_A.weight"
            tensors[key] = _peft_conv_a(tensors[key], layer.groups)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    # Weights first, then the config that makes the folder loadable; each file atomic.
    with atomic_output(out / _PEFT_WEIGHTS_FILE, overwrite=True, caller="to_peft") as tmp:
        save_file(
            {_PEFT_PREFIX + k: v.contiguous().clone() for k, v in tensors.items()},
            str(tmp),
            metadata={"format": "pt"},
        )
    with atomic_output(out / _PEFT_CONFIG_FILE, overwrite=True, caller="to_peft") as tmp:
        tmp.write_text(json.dumps(peft_config, indent=2, sort_keys=True) + "\n")
    return out


def _detect_prefix(model: nn.Module, modules: Sequence[str], names: Sequence[str]) -> str:
    """Where ``model`` holds the adapter's modules: ``""``, or a unique ``"<module>."`` prefix."""
    known = set(names)
    if not modules or all(m in known for m in modules):
        return ""
    found = [n + "." for n in names if all(f"{n}.{m}" in known for m in modules)]
    if len(found) > 1:
        raise WeightsError(
            f"The PEFT adapter's modules ({_preview(list(modules))}) are found under several "
            f"modules of {type(model).__name__}: {found}. Pass prefix= to pick one."
        )
    return found[0] if found else ""


def from_peft(
    model: ModuleT,
    directory: str | os.PathLike[str],
    *,
    adapter_name: str = DEFAULT_ADAPTER,
    prefix: str | None = None,
) -> ModuleT:
    """Load a PEFT LoRA adapter folder into ``model`` in place and return it.

    ``target_modules`` (list or regex) and ``exclude_modules`` are resolved to
    exact module names of ``model`` and applied with :func:`apply_lora` under
    ``adapter_name`` (a model already holding that adapter must match that
    config); ``modules_to_save`` become ``also`` modules and are loaded too;
    ``r``, ``lora_alpha``, ``lora_dropout`` and ``use_rslora`` are kept.

    An adapter trained with PEFT on a plain timm model loads into the geofm
    backbone that wraps that timm model as ``model.``: when the adapter's
    module names are not found in ``model`` but under exactly one submodule,
    they are remapped under it and the remapping is logged (logger
    ``geofm.lora.io``, level INFO). ``prefix`` sets it explicitly.

    For a grouped convolution, PEFT's dense ``lora_A`` is converted to geofm's
    per-group layout; an adapter with weights across groups cannot be held by
    a grouped convolution and raises (see :class:`~geofm.lora.LoRAConv2d`).
    Transactional: if anything fails, the model is left as it was.

    Args:
        model: The base model the adapter was trained on (plain, not a
            ``PeftModel``), or a module wrapping it.
        directory: A folder written by PEFT's ``save_pretrained`` or by :func:`to_peft`.
        adapter_name: The adapter to load into.
        prefix: Module path in ``model`` under which the adapter's module names
            are looked up (``"model"`` or ``"model."``; ``""``: none). ``None``:
            detect.

    Returns:
        ``model``, adapted and loaded.

    Raises:
        WeightsError: If the folder lacks ``adapter_config.json`` or
            ``adapter_model.safetensors``, a file is damaged, the prefix is
            ambiguous, or keys, shapes or dtypes do not match.
        GeofmError: If the adapter is not plain LoRA (DoRA, per-layer ranks,
            ``fan_in_fan_out``, trained biases, ...), mixes the groups of a
            grouped convolution, or adapts a dilated convolution.
        UnknownNameError: If ``target_modules`` matches no module of ``model``
            or ``prefix`` names no module.

    Example:
        >>> import tempfile
        >>> from geofm.lora import apply_lora
        >>> model = apply_lora(nn.Sequential(nn.Linear(4, 4)), LoRAConfig(rank=2, targets=("0",)))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     fresh = from_peft(nn.Sequential(nn.Linear(4, 4)), to_peft(model, tmp))
        >>> fresh[0].rank
        2
    """
    folder = Path(directory)
    config_file, weights_file = folder / _PEFT_CONFIG_FILE, folder / _PEFT_WEIGHTS_FILE
    for file in (config_file, weights_file):
        if not file.is_file():
            raise WeightsError(
                f"{file} not found. from_peft reads a PEFT adapter folder with "
                f"{_PEFT_CONFIG_FILE} and {_PEFT_WEIGHTS_FILE} (re-save .bin adapters with "
                "PEFT's save_pretrained)."
            )
    try:
        raw = json.loads(config_file.read_text())
    except (ValueError, OSError) as err:
        raise WeightsError(f"{config_file} is not valid JSON ({err}).") from err
    if not isinstance(raw, dict) or raw.get("peft_type") != "LORA":
        got = raw.get("peft_type") if isinstance(raw, dict) else type(raw).__name__
        raise GeofmError(f"{config_file} has peft_type {got!r}; expected 'LORA'.")
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
    spec = raw.get("target_modules")
    if spec is None or spec == "all-linear":
        raise GeofmError(f"{config_file} has target_modules={spec!r}; list the modules explicitly.")
    _, stored = _read_safetensors(weights_file, "PEFT adapter weights")
    foreign = [k for k in stored if not k.startswith(_PEFT_PREFIX)]
    if foreign:
        raise WeightsError(
            f"{weights_file} has keys without the {_PEFT_PREFIX!r} prefix: {foreign[:3]}. "
            "Is it a PEFT LoRA adapter of a plain (non-task) model?"
        )
    stripped = {k[len(_PEFT_PREFIX) :]: v for k, v in stored.items()}
    hidden = tuple(f"{n}." for n, _ in lora_layers(model) if n)
    names = [n for n, _ in model.named_modules() if n and not n.startswith(hidden)]
    lora_modules = sorted({k.rsplit(".lora_", 1)[0] for k in stripped if ".lora_" in k})
    if prefix is None:
        prefix = _detect_prefix(model, lora_modules, names)
        if prefix:
            logger.info(
                "from_peft: %s holds the adapter's %d modules under %r; remapped %s -> %s%s",
                type(model).__name__, len(lora_modules), prefix[:-1], lora_modules[0],
                prefix, lora_modules[0] + (", ..." if len(lora_modules) > 1 else ""),
            )  # fmt: skip
    elif prefix:
        prefix = prefix.rstrip(".") + "."
        if prefix[:-1] not in names:
            raise UnknownNameError(
                f"prefix={prefix[:-1]!r} names no module of {type(model).__name__}."
            )
    inner = [n[len(prefix) :] for n in names if n.startswith(prefix)]
    targets = [prefix + n for n in _peft_names(spec, inner)]
    if raw.get("exclude_modules"):
        excluded = {prefix + n for n in _peft_names(raw["exclude_modules"], inner)}
        targets = [n for n in targets if n not in excluded]
    if not targets:
        raise UnknownNameError(
            f"target_modules={spec!r} in {config_file} matches no module of {type(model).__name__}"
            + (f" under {prefix[:-1]!r}." if prefix else ".")
        )
    also = [prefix + n for n in raw.get("modules_to_save") or []]
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

    pre = prefix

    def tensors() -> dict[str, Tensor]:
        out = {pre + k: v for k, v in stripped.items()}
        _check_peft_convs(model, targets)
        for name, layer in lora_layers(model):
            key = f"{name}.lora_A.weight"
            if (
                isinstance(layer, LoRAConv2d) and layer.groups > 1 and key in out
                and out[key].dim() == 4 and out[key].shape[1] == layer.in_channels
            ):  # fmt: skip
                out[key] = _geofm_conv_a(out[key], layer.groups, where=f"Layer {name!r}")
        return out

    _load_transaction(model, config, adapter_name=adapter_name, source=str(folder), tensors=tensors)
    return model
