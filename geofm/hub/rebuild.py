"""Save a geofm model to a folder, rebuild it from a folder or hub repo, push it to the hub.

A saved model is three files, the layout of Hugging Face model repos:

- ``config.json``: how to rebuild the model through geofm's registries: the
  backbone's registry name and ``create_backbone`` arguments (recorded by
  :func:`geofm.create_backbone` in ``model.config``), the LoRA config when
  adapters are attached (:mod:`geofm.lora`), and for a
  :class:`~geofm.heads.SegmentationModel` the neck and head classes (from
  :mod:`geofm.heads`) with their constructor arguments, and for a
  :class:`~geofm.heads.PooledModel` its head;
- ``model.safetensors``: the full state dict (never a pickle);
- ``README.md``: a model card (architecture, weights provenance, licence, how to load).

:func:`from_pretrained` rebuilds the modules from ``config.json`` (only
registered backbones and classes exported by :mod:`geofm.heads` can be named,
so a config cannot make geofm import arbitrary code) and loads the tensors
strictly. This is the rebuild side of the weights story and sits above the
task models: it imports :mod:`geofm.backbones`, :mod:`geofm.heads` and
:mod:`geofm.lora`, and huggingface_hub only inside :func:`from_pretrained` /
:func:`push_to_hub`. The LoRA config is read from the adapted layers
(:func:`geofm.lora.get_lora_config`), never from attributes planted on the model.

References:
    huggingface_hub ``ModelHubMixin`` (``save_pretrained`` / ``from_pretrained`` /
    ``push_to_hub``) and timm's ``push_to_hf_hub``, whose folder layout this follows.

Example:
    >>> import tempfile, torch, geofm
    >>> model = geofm.create_backbone("resnet18", in_chans=4).eval()
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = save_pretrained(model, tmp)
    ...     again = from_pretrained(tmp)
    >>> x = torch.randn(1, 4, 32, 32)
    >>> torch.equal(model.embed(x), again.embed(x))
    True
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import torch
from torch import nn

import geofm.heads as heads
from geofm._atomic import atomic_output
from geofm._registry import INIT_ARGS_ATTR, MODULES
from geofm._registry import register_module as _register_module
from geofm._version import __version__
from geofm.backbones.base import (
    BACKBONES,
    Backbone,
    BackboneConfig,
    create_backbone,
    list_backbones,
)
from geofm.errors import GeofmError, ShapeError, UnknownNameError, WeightsError
from geofm.heads import FeatureBackbone, PooledModel, SegmentationModel
from geofm.input_spec import InputSpec, OutputSpec
from geofm.lora import LoRAConfig, apply_lora, get_lora_config
from geofm.lora.layers import LoRALayer
from geofm.sensors import Sensor, get_sensor, list_sensors
from geofm.weights.catalog import get_weights, list_weights
from geofm.weights.load import load_state_dict_into, read_state_dict

__all__ = [
    "CONFIG_NAME",
    "MODEL_CARD_NAME",
    "WEIGHTS_NAME",
    "ModuleSpec",
    "build_pooled_model",
    "build_segmentation_model",
    "from_pretrained",
    "push_to_hub",
    "register_module",
    "save_pretrained",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
MODEL_CARD_NAME = "README.md"
_FORMAT = 2
_LIBRARY = "geofm"
T = TypeVar("T")
_TASK_MODELS = ("SegmentationModel", "PooledModel")


@dataclass(frozen=True)
class ModuleSpec:
    """A neck or head of a :class:`~geofm.heads.SegmentationModel`, by class and arguments.

    Args:
        name: Class name exported by :mod:`geofm.heads` (e.g. ``"FPN"``, ``"UPerNetHead"``).
        kwargs: Constructor keyword arguments; JSON values only (numbers,
            strings, booleans, lists), so they can be saved in ``config.json``.

    Example:
        >>> ModuleSpec("FPN", {"in_channels": [8, 16], "out_channels": 4}).build()
        FPN(...)
    """

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def build(self) -> nn.Module:
        """Instantiate the class with :attr:`kwargs`.

        Returns:
            The new module.

        Raises:
            UnknownNameError: If :attr:`name` is not a module class of :mod:`geofm.heads`.
        """
        allowed = sorted(
            n
            for n in heads.__all__
            if isinstance(getattr(heads, n), type) and issubclass(getattr(heads, n), nn.Module)
        )
        if self.name not in allowed or self.name in _TASK_MODELS:
            raise UnknownNameError(
                f"Unknown neck/head class {self.name!r}. Expected one of geofm.heads: "
                f"{', '.join(n for n in allowed if n not in _TASK_MODELS)}."
            )
        cls = getattr(heads, self.name)
        module: nn.Module = cls(**self.kwargs)
        return module

    def to_json(self) -> dict[str, Any]:
        """JSON form ``{"name": ..., "kwargs": ...}``.

        Returns:
            The dict stored in ``config.json``.

        Raises:
            WeightsError: If an argument is not JSON-serialisable.
        """
        return {"name": self.name, "kwargs": _jsonable(self.kwargs, f"{self.name} arguments")}


def _jsonable(value: Any, where: str) -> Any:
    """``value`` as plain JSON types, or a WeightsError saying which argument cannot be saved."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, where) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, Sensor):  # a catalog sensor by name, a selection of one as a record
        record = _sensor_record(value, where)
        return {"@sensor": record} if "bands" in record else record["name"]
    raise WeightsError(
        f"Cannot save {where}: {type(value).__name__} value {value!r} is not JSON-serialisable. "
        "Build the model with plain values (numbers, strings, lists), registered sensor names "
        "or band selections of them."
    )


_TORCH_MODULES: dict[str, tuple[type[nn.Module], Callable[[Any], dict[str, Any]]]] = {
    "torch.nn.Identity": (nn.Identity, lambda m: {}),
    "torch.nn.Linear": (
        nn.Linear,
        lambda m: {
            "in_features": m.in_features,
            "out_features": m.out_features,
            "bias": m.bias is not None,
        },
    ),
    "torch.nn.Conv2d": (
        nn.Conv2d,
        lambda m: {
            "in_channels": m.in_channels,
            "out_channels": m.out_channels,
            "kernel_size": list(m.kernel_size),
            "stride": list(m.stride),
            "padding": m.padding if isinstance(m.padding, str) else list(m.padding),
            "dilation": list(m.dilation),
            "groups": m.groups,
            "bias": m.bias is not None,
        },
    ),
    "torch.nn.ReLU": (nn.ReLU, lambda m: {}),
    "torch.nn.GELU": (nn.GELU, lambda m: {"approximate": m.approximate}),
    "torch.nn.Dropout": (nn.Dropout, lambda m: {"p": m.p}),
    "torch.nn.Flatten": (nn.Flatten, lambda m: {"start_dim": m.start_dim, "end_dim": m.end_dim}),
    "torch.nn.Sequential": (nn.Sequential, lambda m: {"*args": list(m)}),
}
_TORCH_BY_CLASS = {cls: name for name, (cls, _) in _TORCH_MODULES.items()}
# Limits checked before anything is allocated: larger values are corrupt or hostile configs.
_MAX_DEPTH = 32
_MAX_INT = 1 << 24
_SIZE_LIMITS = {"img_size": 8192, "depth": 512, "embed_dim": 65536, "num_heads": 1024}


def _merged_lora_layers(model: nn.Module) -> dict[str, str]:
    """``{layer name: merged adapter}`` of every merged LoRA layer."""
    return {
        n: m.merged_adapter
        for n, m in model.named_modules()
        if isinstance(m, LoRALayer) and m.merged_adapter is not None
    }


def _state_for_saving(model: nn.Module) -> dict[str, torch.Tensor]:
    """CPU, contiguous tensors; storage shared between keys (tied / wrapped weights) is copied."""
    seen: set[tuple[int, int]] = set()
    out: dict[str, torch.Tensor] = {}
    for key, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        ident = (t.untyped_storage().data_ptr(), t.storage_offset())
        if ident in seen:
            t = t.clone()
        seen.add(ident)
        out[key] = t
    return out


def _encode(value: Any, model: nn.Module, where: str) -> Any:
    """``value`` as JSON, modules as ``{"@module": node}``; a WeightsError names what cannot be."""
    if isinstance(value, nn.Module):
        return {"@module": _module_node(value, where)}
    if isinstance(value, type) and issubclass(value, nn.Module):
        return {"@class": _class_name(value, where)}
    if isinstance(value, InputSpec):
        return {"@input_spec": value.to_dict()}
    if isinstance(value, OutputSpec):
        return {"@output_spec": value.to_dict()}
    if isinstance(value, (list, tuple)):
        items = [_encode(v, model, f"{where}[{i}]") for i, v in enumerate(value)]
        return {"@tuple": items} if isinstance(value, tuple) else items
    if isinstance(value, Mapping):
        if any(str(k).startswith("@") for k in value):
            raise WeightsError(f"Cannot save {where}: dict keys starting with '@' are reserved.")
        return {str(k): _encode(v, model, f"{where}.{k}") for k, v in value.items()}
    return _jsonable(value, where)


def _sensor_record(sensor: Sensor, where: str) -> dict[str, Any]:
    """A catalog sensor (or a band selection of one) as ``{"name": ..., "bands": [...]}``.

    Only records the catalog can rebuild exactly are stored by name: the sensor
    itself or ``get_sensor(name).select(bands)``; anything else is refused.
    """
    base = sensor.name.split("[", 1)[0]
    if base in list_sensors(base):
        catalog = get_sensor(base)
        if sensor == catalog:
            return {"name": base}
        if sensor.bands and sensor == catalog.select(list(sensor.bands)):
            return {"name": base, "bands": list(sensor.bands)}
    raise WeightsError(
        f"Cannot save {where}: sensor record {sensor.name!r} is neither a registered sensor "
        "nor a band selection of one (get_sensor(name).select(bands)), so config.json cannot "
        "rebuild it. Register it with geofm.sensors.register_sensor first, or pass its band "
        "names or wavelengths."
    )


def _class_name(cls: type, where: str) -> str:
    """Registered name of a module class passed as an argument (e.g. a norm layer)."""
    if cls in _TORCH_BY_CLASS:
        return _TORCH_BY_CLASS[cls]
    name = getattr(cls, "registered_name", None)
    if isinstance(name, str) and name in MODULES and MODULES.get(name) is cls:
        return name
    raise WeightsError(
        f"Cannot save {where}: the class {cls.__module__}.{cls.__qualname__} is not registered. "
        "Register it with @geofm.hub.register_module()."
    )


def _module_class(name: str) -> type:
    return _TORCH_MODULES[name][0] if name in _TORCH_MODULES else MODULES.get(name)


def _module_node(module: nn.Module, where: str) -> dict[str, Any]:
    """How to rebuild ``module``: a registry backbone, a registered class, or a torch layer."""
    lora = get_lora_config(module)
    config = getattr(module, "config", None)
    if isinstance(module, Backbone) and isinstance(config, BackboneConfig):
        node: dict[str, Any] = {
            "backbone": {
                "name": config.name,
                "kwargs": _jsonable(config.kwargs, f"create_backbone({config.name!r}) arguments"),
                "weights": config.weights,
            }
        }
    elif type(module) in _TORCH_BY_CLASS:
        name = _TORCH_BY_CLASS[type(module)]
        args = _TORCH_MODULES[name][1](module)
        node = {"module": name, "args": _encode(args, module, f"{where} ({name})")}
    else:
        registered = getattr(type(module), "registered_name", None)
        recorded = getattr(module, INIT_ARGS_ATTR, None)
        if (
            not isinstance(registered, str)
            or registered not in MODULES
            or MODULES.get(registered) is not type(module)
            or not isinstance(recorded, dict)
        ):
            hint = (
                " It was not built by geofm.create_backbone: build it with "
                "geofm.create_backbone(name, ...)."
                if isinstance(module, Backbone)
                else " Register the class with @geofm.hub.register_module() so geofm records "
                "its constructor arguments, then build the model again."
            )
            raise WeightsError(
                f"Cannot save {where}: geofm does not know how to rebuild a "
                f"{type(module).__module__}.{type(module).__qualname__}.{hint}"
            )
        args = {}
        for key, value in recorded.items():
            live = getattr(module, key, None) if key != "*args" else None
            if isinstance(value, nn.Module) and isinstance(live, nn.Module):
                value = live  # a part replaced after construction is saved as it is now
            args[key] = _encode(value, module, f"{where}.{key}")
        node = {"module": registered, "args": args}
    if lora is not None:
        node["lora"] = json.loads(lora.to_json())
    return node


def _check_single_adapter(model: nn.Module) -> None:
    several = [
        n for n, m in model.named_modules() if isinstance(m, LoRALayer) and len(m.adapters) > 1
    ]
    if several:
        raise WeightsError(
            f"Cannot save a model whose LoRA layers hold several named adapters ({several[0]}: "
            f"{', '.join(cast(LoRALayer, dict(model.named_modules())[several[0]]).adapters)}). "
            "save_pretrained records one adapter: delete the others with "
            "geofm.lora.delete_adapter, or save each with geofm.lora.save_lora(adapter_name=...)."
        )


def _model_json(model: nn.Module) -> dict[str, Any]:
    _check_single_adapter(model)
    spec = getattr(model, "input_spec", None) if hasattr(model, "input_spec") else None
    output = getattr(model, "output_spec", None)
    return {
        "library": _LIBRARY,
        "format": _FORMAT,
        "geofm_version": __version__,
        "model": _module_node(model, "the model"),
        "input_spec": spec.to_dict() if isinstance(spec, InputSpec) else None,
        "output_spec": output.to_dict() if isinstance(output, OutputSpec) else None,
        "merged_lora": _merged_lora_layers(model),
    }


def build_segmentation_model(
    backbone: nn.Module,
    *,
    head: ModuleSpec,
    neck: ModuleSpec | None = None,
    output_spec: OutputSpec | None = None,
) -> SegmentationModel:
    """Build a :class:`~geofm.heads.SegmentationModel` from its neck and head by name.

    A shortcut for ``SegmentationModel(backbone, neck.build(), head.build())``;
    the model saves with :func:`save_pretrained` either way.

    Args:
        backbone: A backbone from :func:`geofm.create_backbone`.
        head: Head class of :mod:`geofm.heads` and its arguments.
        neck: Optional neck (e.g. ``ModuleSpec("FPN", ...)``).
        output_spec: What the output means, or ``None``.

    Returns:
        The model.

    Raises:
        UnknownNameError: If a class is not exported by :mod:`geofm.heads`.
        TypeError: If the backbone has no ``feature_info``.

    Example:
        >>> import torch, geofm
        >>> bb = geofm.create_backbone("resnet18", out_indices=[3])
        >>> model = build_segmentation_model(
        ...     bb, head=ModuleSpec("FCNHead", {"in_channels": 512, "num_classes": 3})
        ... )
        >>> model(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 3, 64, 64])
    """
    if not isinstance(backbone, FeatureBackbone):
        raise TypeError(
            f"build_segmentation_model needs a backbone with feature_info, got "
            f"{type(backbone).__name__}. Use geofm.create_backbone(...)."
        )
    return SegmentationModel(
        backbone,
        neck.build() if neck is not None else None,
        head.build(),
        output_spec=output_spec,
    )


def build_pooled_model(
    backbone: nn.Module, *, head: ModuleSpec, output_spec: OutputSpec | None = None
) -> PooledModel:
    """Build a :class:`~geofm.heads.PooledModel` from its head by name.

    A shortcut for ``PooledModel(backbone, head.build())``.

    Args:
        backbone: A backbone from :func:`geofm.create_backbone`.
        head: Head class of :mod:`geofm.heads` (e.g. ``ClassificationHead``,
            ``RegressionHead``) and its arguments.
        output_spec: What the output means, or ``None``.

    Returns:
        The model, ``head(backbone.embed(x))``.

    Raises:
        UnknownNameError: If the head class is not exported by :mod:`geofm.heads`.
        TypeError: If the backbone is not a geofm backbone.

    Example:
        >>> import torch, geofm
        >>> bb = geofm.create_backbone("resnet18")
        >>> model = build_pooled_model(
        ...     bb, head=ModuleSpec("ClassificationHead", {"in_features": 512, "num_classes": 5})
        ... )
        >>> model(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 5])
    """
    if not isinstance(backbone, Backbone):
        raise TypeError(
            f"build_pooled_model needs a geofm backbone, got {type(backbone).__name__}. "
            "Use geofm.create_backbone(...)."
        )
    return PooledModel(backbone, head.build(), output_spec=output_spec)


def register_module(name: str | None = None) -> Callable[[type[T]], type[T]]:
    """Class decorator: let :func:`save_pretrained` save and rebuild your module class.

    Instances of the class record their constructor arguments (as
    ``instance.init_args``); ``config.json`` names the class by ``name`` and
    stores those arguments (JSON values, other modules, :class:`~geofm.InputSpec`),
    and :func:`from_pretrained` calls the class with them again. The module
    defining the class must be imported before :func:`from_pretrained` runs.
    geofm's own heads, necks and task models are registered this way.

    Args:
        name: Name in ``config.json`` (default: the class name); unique.

    Returns:
        The decorator.

    Raises:
        ValueError: If the name is taken.

    Example:
        >>> import tempfile, torch, geofm
        >>> @register_module("DocScaledHead")
        ... class ScaledHead(torch.nn.Module):
        ...     def __init__(self, in_features: int, scale: float = 1.0) -> None:
        ...         super().__init__()
        ...         self.linear = torch.nn.Linear(in_features, 2)
        ...         self.scale = scale
        ...     def forward(self, x):
        ...         return self.linear(x) * self.scale
        >>> model = geofm.heads.PooledModel(geofm.create_backbone("resnet18"), ScaledHead(512, 3.0))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     again = from_pretrained(save_pretrained(model, tmp))
        >>> again.head.scale
        3.0
    """
    return _register_module(name)


def _model_card(config: dict[str, Any], metrics: Mapping[str, float] | None) -> str:
    """``README.md`` content through huggingface_hub's ``ModelCard`` (YAML metadata + text)."""
    from huggingface_hub import ModelCard, ModelCardData

    root = config["model"]
    backbones = _backbone_nodes(root)
    names = [b["name"] for b in backbones]
    specs = [get_weights(b["weights"]) for b in backbones if b.get("weights") in list_weights()]
    licences = sorted({w.license for w in specs if w.license not in ("", "unknown")})
    title = root.get("module") or (root.get("backbone") or {}).get("name", "model")
    if root.get("module") and names:
        title = f"{title} on {', '.join(names)}"
    data = ModelCardData(
        library_name=_LIBRARY,
        license=licences[0].lower() if len(licences) == 1 else None,
        tags=["geofm", "remote-sensing", *names],
    )
    lines = [
        "---",
        data.to_yaml(),
        "---",
        "",
        f"# {title}",
        "",
        "Saved with geofm `save_pretrained`.",
        "",
        "## Architecture",
        "",
        "```json",
        json.dumps(root, indent=2, sort_keys=True),
        "```",
        "",
        "## Input",
        "",
    ]
    if config.get("input_spec"):
        lines += ["```", InputSpec.from_dict(config["input_spec"]).describe(), "```"]
    else:
        lines.append("Not recorded: prepare the input as the model was trained.")
    if config.get("output_spec"):
        out = OutputSpec.from_dict(config["output_spec"])
        lines += ["", "## Output", "", f"Kind: {out.kind}, {out.num_outputs} outputs."]
        if out.class_names:
            lines.append("Classes: " + ", ".join(out.class_names) + ".")
        if out.units:
            lines.append(f"Units: {out.units}.")
    if metrics:
        lines += ["", "## Metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {float(v):.4g} |" for k, v in metrics.items()]
    lines += ["", "## Weights", ""]
    for bb in backbones:
        weights = bb.get("weights")
        entry = get_weights(weights) if weights in list_weights() else None
        if entry is not None:
            lines.append(
                f"- `{bb['name']}` initialised from the geofm catalog entry `{entry.name}` "
                f"({entry.source}); licence of those weights: {entry.license or 'unknown'}. "
                f"Citation: {entry.citation}"
            )
        elif weights:
            lines.append(f"- `{bb['name']}` initialised from the local file `{weights}`.")
        else:
            lines.append(f"- `{bb['name']}` initialised without pretrained weights.")
    lines += [
        "",
        "## Load",
        "",
        "```python",
        "from geofm.hub import from_pretrained",
        "",
        'model = from_pretrained("<this repo id or folder>")',
        "```",
        "",
        "Predict a GeoTIFF: `geofm predict <this folder> scene.tif map.tif`.",
        "",
    ]
    return str(ModelCard("\n".join(lines)).content)


def _backbone_nodes(node: Any) -> list[dict[str, Any]]:
    """Every ``{"backbone": ...}`` record inside a config node, in order."""
    found: list[dict[str, Any]] = []
    if isinstance(node, Mapping):
        if isinstance(node.get("backbone"), Mapping) and "name" in node["backbone"]:
            found.append(dict(node["backbone"]))
        for value in node.values():
            found += _backbone_nodes(value)
    elif isinstance(node, list):
        for value in node:
            found += _backbone_nodes(value)
    return found


def _check_rebuildable(model: nn.Module, config: dict[str, Any]) -> None:
    """Rebuild ``config`` on the meta device and compare state-dict keys and shapes."""
    try:
        with torch.device("meta"):
            rebuilt = _build(config["model"], "the model", 0)
    except (RuntimeError, NotImplementedError, TypeError):
        return  # a family that cannot be built on the meta device: loading checks strictly
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    new = {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()}
    if own != new:
        diff = sorted(set(own) ^ set(new)) or sorted(k for k in own if own[k] != new[k])
        raise WeightsError(
            "Cannot save the model: rebuilt from its recorded construction it would differ "
            f"(keys or shapes: {', '.join(diff[:5])}). A part was changed after construction "
            "in a way geofm cannot record (e.g. a layer replaced inside a registered module); "
            "build the model from its parts instead."
        )


def _write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Write through geofm's atomic writer: a temporary file beside ``path``, then a rename."""
    with atomic_output(path, overwrite=True, caller="save_pretrained") as tmp:
        write(tmp)


def save_pretrained(
    model: nn.Module,
    directory: str | os.PathLike[str],
    *,
    metrics: Mapping[str, float] | None = None,
) -> Path:
    """Write ``config.json``, ``model.safetensors`` and a model card ``README.md`` to ``directory``.

    ``config.json`` records how to rebuild every part (registry backbones by name
    and arguments, registered classes by name and constructor arguments, LoRA
    configs, merged LoRA layers), the model's :class:`~geofm.InputSpec` (what
    :func:`geofm.geo.predict_raster` prepares input for) and its
    :class:`~geofm.OutputSpec`. Each file is written to a temporary name and
    renamed, so a crash leaves the previous file or none.

    Args:
        model: Any composition of geofm backbones, registered module classes
            (geofm's heads, necks, task models and your classes registered with
            :func:`register_module`) and plain torch layers (``Linear``,
            ``Conv2d``, ``Sequential``, ...), LoRA-adapted or not, merged or not.
        directory: Output folder; created if needed; files of the same names
            are replaced.
        metrics: Evaluation results to list in the model card, or ``None``.

    Returns:
        The folder.

    Raises:
        WeightsError: If geofm cannot record how to rebuild a part (the message
            names the class and the registration call), or an argument is not JSON.

    Example:
        >>> import tempfile, geofm
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     folder = save_pretrained(geofm.create_backbone("resnet18"), tmp)
        ...     sorted(p.name for p in folder.iterdir())
        ['README.md', 'config.json', 'model.safetensors']
    """
    from safetensors.torch import save_file

    config = _model_json(model)
    _check_rebuildable(model, config)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    state = _state_for_saving(model)
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    card = _model_card(config, metrics)
    _write_atomically(
        out / WEIGHTS_NAME, lambda p: save_file(state, str(p), metadata={"format": "pt"})
    )
    _write_atomically(out / CONFIG_NAME, lambda p: _write_text(p, text))
    _write_atomically(out / MODEL_CARD_NAME, lambda p: _write_text(p, card))
    return out


def _fetch_repo_file(
    repo_id: str, filename: str, revision: str | None, cache_dir: str | None
) -> Path:
    from huggingface_hub import hf_hub_download

    try:
        return Path(str(hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache_dir)))
    except Exception as err:
        raise WeightsError(
            f"{repo_id!r} is not a local folder and {filename} could not be fetched from the hub "
            f"({type(err).__name__}). Pass a folder written by save_pretrained, or fetch the repo "
            f"with `hf download {repo_id}` on a machine with network access."
        ) from None


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise WeightsError(f"Cannot read {path} as JSON ({err}). Save the model again.") from None
    if not isinstance(config, dict) or config.get("library") != _LIBRARY:
        raise WeightsError(
            f'{path} is not a geofm config (no "library": "geofm"). Load it with the library '
            "that wrote it, or save the model with geofm.hub.save_pretrained."
        )
    if config.get("format") == 1:
        config = _upgrade_format_1(config, path)
    if config.get("format") != _FORMAT:
        raise WeightsError(
            f"{path} has config format {config.get('format')!r}; this geofm reads formats 1 "
            f"and {_FORMAT}. Upgrade geofm or save the model again."
        )
    try:
        _validate_config(config)
    except ValueError as err:
        raise WeightsError(f"{path}: {err}") from None
    return dict(config)


def _upgrade_format_1(config: dict[str, Any], path: Path) -> dict[str, Any]:
    """Format 1 (backbone / SegmentationModel / PooledModel by kind) as a format-2 node tree."""
    try:
        bb = config["backbone"]
        backbone: dict[str, Any] = {
            "backbone": {k: bb[k] for k in ("name", "kwargs", "weights") if k in bb}
        }
        if bb.get("lora"):
            backbone["lora"] = bb["lora"]
        kind = config["kind"]
        if kind == "backbone":
            root = backbone
        else:

            def part(spec: Mapping[str, Any] | None) -> Any:
                return (
                    None
                    if not spec
                    else {"@module": {"module": spec["name"], "args": spec["kwargs"]}}
                )

            args: dict[str, Any] = {"backbone": {"@module": backbone}, "head": part(config["head"])}
            if kind == "segmentation":
                args["neck"] = part(config.get("neck"))
            elif kind != "pooled":
                raise KeyError(f"kind {kind!r}")
            root = {"module": "SegmentationModel" if kind == "segmentation" else "PooledModel"}
            root["args"] = args
            if config.get("lora"):
                root["lora"] = config["lora"]
    except (KeyError, TypeError) as err:
        raise WeightsError(
            f"{path}: malformed format-1 config ({err}). Save the model again."
        ) from None
    return {
        **config,
        "format": _FORMAT,
        "model": root,
        "input_spec": None,
        "output_spec": None,
        "merged_lora": {},
    }


def _validate_config(config: Mapping[str, Any]) -> None:
    """Check every name and size of a config before anything is allocated (ValueError)."""
    allowed = {
        "library",
        "format",
        "geofm_version",
        "model",
        "input_spec",
        "output_spec",
        "merged_lora",
        "kind",
        "backbone",
        "neck",
        "head",
        "lora",
    }
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)}.")
    _validate_node(config.get("model"), "model", 0)
    if config.get("input_spec") is not None:
        InputSpec.from_dict(config["input_spec"], where="input_spec")
    if config.get("output_spec") is not None:
        OutputSpec.from_dict(config["output_spec"], where="output_spec")
    merged = config.get("merged_lora", {})
    if not isinstance(merged, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in merged.items()
    ):
        raise ValueError(
            f"field merged_lora must map layer names to adapter names, got {merged!r}."
        )


def _validate_value(value: Any, where: str, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise ValueError(f"field {where} nests deeper than {_MAX_DEPTH} levels.")
    if isinstance(value, bool) or value is None or isinstance(value, (str, float)):
        return
    if isinstance(value, int):
        key = where.rsplit(".", 1)[-1]
        limit = _SIZE_LIMITS.get(key, _MAX_INT)
        if abs(value) > limit:
            raise ValueError(f"field {where} = {value} is out of range (|value| <= {limit}).")
        return
    if isinstance(value, list):
        for i, v in enumerate(value):
            _validate_value(v, f"{where}[{i}]", depth + 1)
        return
    if isinstance(value, dict):
        if "@class" in value:
            name = value["@class"]
            if not isinstance(name, str) or (name not in _TORCH_MODULES and name not in MODULES):
                raise ValueError(f"field {where}: unknown module class {name!r}.")
        elif "@module" in value:
            _validate_node(value["@module"], where, depth + 1)
        elif "@tuple" in value:
            if not isinstance(value["@tuple"], list):
                raise ValueError(f"field {where}: @tuple must hold a list.")
            _validate_value(value["@tuple"], where, depth + 1)
        elif "@input_spec" in value:
            InputSpec.from_dict(value["@input_spec"], where=where)
        elif "@output_spec" in value:
            OutputSpec.from_dict(value["@output_spec"], where=where)
        elif "@sensor" in value:
            _sensor_from_record(value["@sensor"], where)
        else:
            for k, v in value.items():
                _validate_value(v, f"{where}.{k}", depth + 1)
        return
    raise ValueError(f"field {where} has an unsupported value {value!r}.")


def _sensor_from_record(record: Any, where: str) -> Sensor:
    """The sensor a ``{"@sensor": ...}`` value names; ``ValueError`` naming the field if not."""
    if not isinstance(record, dict) or set(record) - {"name", "bands"} or "name" not in record:
        raise ValueError(f"field {where}: @sensor must be {{'name': str, 'bands': [str, ...]}}.")
    name, bands = record["name"], record.get("bands")
    if not isinstance(name, str) or name not in list_sensors(name):
        raise ValueError(f"field {where}: unknown sensor {name!r}.")
    if bands is None:
        return get_sensor(name)
    if not isinstance(bands, list) or not bands or not all(isinstance(b, str) for b in bands):
        raise ValueError(f"field {where}: @sensor bands must be a non-empty list of names.")
    try:
        return get_sensor(name).select(bands)
    except UnknownNameError as err:
        raise ValueError(f"field {where}: {err}") from None


def _validate_node(node: Any, where: str, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise ValueError(f"field {where} nests deeper than {_MAX_DEPTH} levels.")
    if not isinstance(node, dict):
        raise ValueError(f"field {where} must be a module record (an object), got {node!r}.")
    extra = sorted(set(node) - {"backbone", "module", "args", "lora"})
    if extra:
        raise ValueError(f"field {where} has unknown key(s) {', '.join(extra)}.")
    if node.get("lora") is not None:
        try:
            LoRAConfig.from_json(json.dumps(node["lora"]))
        except (ValueError, TypeError, KeyError) as err:
            raise ValueError(f"field {where}.lora is not a LoRA config ({err}).") from None
    if "backbone" in node:
        bb = node["backbone"]
        if not isinstance(bb, dict) or not isinstance(bb.get("name"), str):
            raise ValueError(f"field {where}.backbone needs a name.")
        if bb["name"] not in list_backbones():
            raise ValueError(
                f"field {where}.backbone.name: unknown backbone {bb['name']!r}. "
                f"{BACKBONES.unknown_message(bb['name'])}"
            )
        if not isinstance(bb.get("kwargs", {}), dict):
            raise ValueError(f"field {where}.backbone.kwargs must be an object.")
        _validate_value(bb.get("kwargs", {}), f"{where}.backbone.kwargs", depth + 1)
        return
    name = node.get("module")
    if not isinstance(name, str) or (name not in _TORCH_MODULES and name not in MODULES):
        known = ", ".join(sorted([*_TORCH_MODULES, *MODULES.list()]))
        raise ValueError(
            f"field {where}.module: unknown module class {name!r}. Known: {known}. A class of "
            "yours must be registered with @geofm.hub.register_module() and imported first."
        )
    args = node.get("args", {})
    if not isinstance(args, dict):
        raise ValueError(f"field {where}.args must be an object.")
    _validate_value(args, f"{where}.args", depth + 1)


def _decode(value: Any, where: str, depth: int) -> Any:
    if isinstance(value, list):
        return [_decode(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict):
        if "@class" in value:
            return _module_class(value["@class"])
        if "@module" in value:
            return _build(value["@module"], where, depth + 1)
        if "@tuple" in value:
            return tuple(_decode(value["@tuple"], where, depth + 1))
        if "@input_spec" in value:
            return InputSpec.from_dict(value["@input_spec"], where=where)
        if "@output_spec" in value:
            return OutputSpec.from_dict(value["@output_spec"], where=where)
        if "@sensor" in value:
            return _sensor_from_record(value["@sensor"], where)
        return {k: _decode(v, f"{where}.{k}", depth + 1) for k, v in value.items()}
    return value


def _build(node: Mapping[str, Any], where: str, depth: int) -> nn.Module:
    """Instantiate one validated module record (children first, then LoRA)."""
    module: nn.Module
    try:
        if "backbone" in node:
            bb = node["backbone"]
            kwargs = _decode(dict(bb.get("kwargs", {})), f"{where}.backbone.kwargs", depth)
            module = create_backbone(bb["name"], **kwargs)
            module.config = BackboneConfig(
                name=bb["name"], kwargs=kwargs, weights=bb.get("weights")
            )
        else:
            args = _decode(dict(node.get("args", {})), f"{where}.args", depth)
            positional = args.pop("*args", [])
            cls = _module_class(node["module"])
            if cls is nn.Conv2d:
                for key in ("kernel_size", "stride", "dilation"):
                    args[key] = tuple(args[key])
                if isinstance(args["padding"], list):
                    args["padding"] = tuple(args["padding"])
            module = cls(*positional, **args)
    except (TypeError, ValueError, LookupError) as err:
        if isinstance(err, GeofmError) and not isinstance(
            err, (TypeError, ValueError, LookupError)
        ):
            raise
        raise WeightsError(f"Cannot rebuild {where} from config.json: {err}") from None
    if node.get("lora") is not None:
        apply_lora(module, LoRAConfig.from_json(json.dumps(node["lora"])))
    return module


def _rebuild(config: dict[str, Any]) -> nn.Module:
    model = _build(config["model"], "model", 0)
    if config.get("input_spec") is not None and hasattr(model, "input_spec"):
        try:
            setattr(model, "input_spec", InputSpec.from_dict(config["input_spec"]))  # noqa: B010
        except (AttributeError, ShapeError) as err:
            raise WeightsError(f"config.json input_spec does not fit the model: {err}") from None
    if config.get("output_spec") is not None and hasattr(model, "output_spec"):
        setattr(model, "output_spec", OutputSpec.from_dict(config["output_spec"]))  # noqa: B010
    return model


def _mark_merged(model: nn.Module, merged: Mapping[str, str], source: Path) -> None:
    layers = dict(model.named_modules())
    for name, adapter in merged.items():
        layer = layers.get(name)
        if not isinstance(layer, LoRALayer) or adapter not in layer.adapters:
            raise WeightsError(
                f"{source}: merged_lora names {name!r} (adapter {adapter!r}), which is not a "
                "LoRA adapter of the rebuilt model."
            )
        layer.merged_adapter = adapter  # the loaded base weight already holds the update


def from_pretrained(
    repo_id_or_directory: str | os.PathLike[str],
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> nn.Module:
    """Rebuild a model saved by :func:`save_pretrained` (a folder or a hub repo) and load it.

    ``config.json`` is validated first (every name known, every size in range)
    before anything is allocated; the modules are rebuilt through geofm's
    backbone registry and the registered module classes; the tensors load
    strictly from ``model.safetensors``; the saved :class:`~geofm.InputSpec` and
    :class:`~geofm.OutputSpec` are restored. A hub repo goes through
    huggingface_hub's cache (``HF_HUB_OFFLINE=1`` is respected).

    Args:
        repo_id_or_directory: Local folder, or ``"org/name"`` on the Hugging Face Hub.
        revision: Hub revision (branch, tag or commit); ignored for folders.
        cache_dir: huggingface_hub cache directory (default: ``HF_HUB_CACHE``).

    Returns:
        The model, in eval mode.

    Raises:
        WeightsError: Missing or foreign files, a config that is invalid (the
            message names the file and field) or that this geofm cannot read,
            or tensors that do not match the rebuilt model exactly.

    Example:
        >>> from_pretrained("/nonexistent/folder/that/is/no/repo")
        Traceback (most recent call last):
        ...
        geofm.errors.WeightsError: ...
    """
    local = Path(os.fspath(repo_id_or_directory)).expanduser()
    cache = os.fspath(cache_dir) if cache_dir is not None else None
    if local.is_dir():
        config_path, weights_path = local / CONFIG_NAME, local / WEIGHTS_NAME
        for needed in (config_path, weights_path):
            if not needed.is_file():
                raise WeightsError(
                    f"{local} has no {needed.name}. Pass a folder written by save_pretrained."
                )
    else:
        repo = os.fspath(repo_id_or_directory)
        config_path = _fetch_repo_file(repo, CONFIG_NAME, revision, cache)
        weights_path = _fetch_repo_file(repo, WEIGHTS_NAME, revision, cache)
    config = _read_config(config_path)
    model = _rebuild(config)
    load_state_dict_into(
        model, read_state_dict(weights_path), strict=True, source=str(weights_path)
    )
    _mark_merged(model, config.get("merged_lora", {}), config_path)
    return model.eval()


def push_to_hub(
    model: nn.Module,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str = "Upload geofm model",
    metrics: Mapping[str, float] | None = None,
) -> str:
    """Save ``model`` with :func:`save_pretrained` and upload the folder with huggingface_hub.

    Creates the repo if needed (``HfApi.create_repo(exist_ok=True)``), then
    ``HfApi.upload_folder``. Needs network access and a token with write access.

    Args:
        model: What :func:`save_pretrained` accepts.
        repo_id: ``"org/name"`` on the Hugging Face Hub.
        token: Hub token (default: the one huggingface_hub finds).
        private: Create the repo as private.
        revision: Branch to push to (default: ``main``).
        commit_message: Commit message.
        metrics: Evaluation results for the model card.

    Returns:
        The commit URL huggingface_hub reports.

    Raises:
        WeightsError: See :func:`save_pretrained`.

    Example:
        >>> push_to_hub(model, "me/my-geofm-model")  # doctest: +SKIP
        'https://huggingface.co/me/my-geofm-model/commit/...'

        What cannot be saved is refused before anything is uploaded:

        >>> push_to_hub(torch.nn.LSTM(2, 2), "me/my-geofm-model")
        Traceback (most recent call last):
        ...
        geofm.errors.WeightsError: Cannot save the model: geofm does not know how to rebuild ...
    """
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_pretrained(model, tmp, metrics=metrics)
        api.create_repo(repo_id=repo_id, private=private, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            commit_message=commit_message,
            revision=revision,
        )
    return str(info)
