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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

import geofm.heads as heads
from geofm._version import __version__
from geofm.backbones.base import Backbone, BackboneConfig, create_backbone
from geofm.errors import GeofmError, UnknownNameError, WeightsError
from geofm.heads import FeatureBackbone, PooledModel, SegmentationModel
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
    "save_pretrained",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
MODEL_CARD_NAME = "README.md"
_FORMAT = 1
_LIBRARY = "geofm"
_PARTS_ATTR = "geofm_parts"
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
    if (
        isinstance(value, Sensor)
        and value.name in list_sensors()
        and get_sensor(value.name) == value
    ):
        return value.name
    raise WeightsError(
        f"Cannot save {where}: {type(value).__name__} value {value!r} is not JSON-serialisable. "
        "Build the model with plain values (numbers, strings, lists) or registered sensor names."
    )


def _lora_config(module: nn.Module) -> LoRAConfig | None:
    """The LoRA config :func:`geofm.lora.apply_lora` applied to ``module`` (not to a child)."""
    config = get_lora_config(module)
    if config is None:
        return None
    merged = [n for n, m in module.named_modules() if isinstance(m, LoRALayer) and m.merged]
    if merged:
        raise GeofmError(
            f"Cannot save a model with merged LoRA layers ({', '.join(merged[:3])}...): the "
            "saved weights would hold the update twice. Call geofm.lora.unmerge_lora(model) first."
        )
    return config


def _backbone_json(backbone: nn.Module) -> dict[str, Any]:
    config = getattr(backbone, "config", None)
    if not isinstance(backbone, Backbone) or not isinstance(config, BackboneConfig):
        raise WeightsError(
            f"Cannot save a {type(backbone).__name__} backbone: it was not built by "
            "geofm.create_backbone, so geofm does not know how to rebuild it. Build it with "
            "geofm.create_backbone(name, ...)."
        )
    lora = _lora_config(backbone)
    return {
        "name": config.name,
        "kwargs": _jsonable(config.kwargs, f"create_backbone({config.name!r}) arguments"),
        "weights": config.weights,
        "lora": json.loads(lora.to_json()) if lora is not None else None,
    }


def _model_json(model: nn.Module) -> dict[str, Any]:
    common = {"library": _LIBRARY, "format": _FORMAT, "geofm_version": __version__}
    if isinstance(model, Backbone):
        return {**common, "kind": "backbone", "backbone": _backbone_json(model)}
    if isinstance(model, (SegmentationModel, PooledModel)):
        kind, builder = (
            ("segmentation", "build_segmentation_model")
            if isinstance(model, SegmentationModel)
            else ("pooled", "build_pooled_model")
        )
        parts = getattr(model, _PARTS_ATTR, None)
        if not isinstance(parts, tuple):
            raise WeightsError(
                f"Cannot save this {type(model).__name__}: geofm does not know how its parts "
                f"were built. Build it with geofm.hub.{builder}(backbone, ..., "
                "head=ModuleSpec(...))."
            )
        neck, head = parts
        lora = _lora_config(model)
        return {
            **common,
            "kind": kind,
            "backbone": _backbone_json(cast(nn.Module, model.backbone)),
            "neck": neck.to_json() if neck is not None else None,
            "head": head.to_json(),
            "lora": json.loads(lora.to_json()) if lora is not None else None,
        }
    raise WeightsError(
        f"save_pretrained supports geofm backbones, SegmentationModel and PooledModel, got "
        f"{type(model).__name__}. Save other modules with safetensors.torch.save_file."
    )


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


def _model_card(config: dict[str, Any]) -> str:
    backbone = config["backbone"]
    weights = backbone.get("weights")
    spec = get_weights(weights) if weights in list_weights() else None
    licence = spec.license if spec is not None and spec.license not in ("", "unknown") else None
    titles = {"segmentation": "SegmentationModel", "pooled": "PooledModel"}
    title = (
        backbone["name"]
        if config["kind"] == "backbone"
        else f"{titles[config['kind']]} on {backbone['name']}"
    )
    lines = ["---", f"library_name: {_LIBRARY}"]
    if licence is not None:
        lines.append(f"license: {licence.lower()}")
    lines += ["tags:", "- geofm", "- remote-sensing", f"- {backbone['name']}", "---", ""]
    lines += [f"# {title}", "", "Saved with geofm `save_pretrained`.", "", "## Architecture", ""]
    args = ", ".join(f"{k}={v!r}" for k, v in backbone["kwargs"].items())
    lines.append(
        f"- Backbone: `geofm.create_backbone({backbone['name']!r}{', ' if args else ''}{args})`"
    )
    if backbone.get("lora"):
        lines.append(f"- LoRA on the backbone: `{json.dumps(backbone['lora'], sort_keys=True)}`")
    for part in ("neck", "head"):
        if config.get(part):
            lines.append(
                f"- {part.capitalize()}: `geofm.heads.{config[part]['name']}` "
                f"`{json.dumps(config[part]['kwargs'], sort_keys=True)}`"
            )
    if config.get("lora"):
        lines.append(f"- LoRA on the model: `{json.dumps(config['lora'], sort_keys=True)}`")
    lines += ["", "## Weights", ""]
    if spec is not None:
        lines += [
            f"Initialised from the geofm catalog entry `{spec.name}` ({spec.source}).",
            f"Licence of those weights: {spec.license or 'unknown'}. Citation: {spec.citation}",
        ]
    elif weights:
        lines.append(f"Initialised from the local file `{weights}`.")
    else:
        lines.append(
            "Initialised without pretrained weights (or from weights geofm did not record)."
        )
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
    ]
    return "\n".join(lines)


def build_segmentation_model(
    backbone: nn.Module, *, head: ModuleSpec, neck: ModuleSpec | None = None
) -> SegmentationModel:
    """Build a :class:`~geofm.heads.SegmentationModel` that :func:`save_pretrained` can save.

    The neck and head are built from their :class:`ModuleSpec`, which the
    model remembers so ``config.json`` can name them.

    Args:
        backbone: A backbone from :func:`geofm.create_backbone`.
        head: Head class of :mod:`geofm.heads` and its arguments.
        neck: Optional neck (e.g. ``ModuleSpec("FPN", ...)``).

    Returns:
        The model.

    Raises:
        UnknownNameError: If a class is not exported by :mod:`geofm.heads`.

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
    model = SegmentationModel(backbone, neck.build() if neck is not None else None, head.build())
    # A plain tuple attribute: not a submodule, not in the state dict.
    object.__setattr__(model, _PARTS_ATTR, (neck, head))
    return model


def build_pooled_model(backbone: nn.Module, *, head: ModuleSpec) -> PooledModel:
    """Build a :class:`~geofm.heads.PooledModel` that :func:`save_pretrained` can save.

    Args:
        backbone: A backbone from :func:`geofm.create_backbone`.
        head: Head class of :mod:`geofm.heads` (e.g. ``ClassificationHead``,
            ``RegressionHead``) and its arguments.

    Returns:
        The model, ``head(backbone.embed(x))``.

    Raises:
        UnknownNameError: If the head class is not exported by :mod:`geofm.heads`.
        TypeError: If the backbone has no ``embed``.

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
    model = PooledModel(backbone, head.build())
    object.__setattr__(model, _PARTS_ATTR, (None, head))
    return model


def save_pretrained(model: nn.Module, directory: str | os.PathLike[str]) -> Path:
    """Write ``config.json``, ``model.safetensors`` and a model card ``README.md`` to ``directory``.

    Args:
        model: A backbone from :func:`geofm.create_backbone` (LoRA-adapted or
            not), or a model from :func:`build_segmentation_model` or
            :func:`build_pooled_model`.
        directory: Output folder; created if needed, existing files of the
            same names are overwritten.

    Returns:
        The folder.

    Raises:
        WeightsError: If geofm cannot record how to rebuild the model (not
            built through the registry, or arguments that are not JSON).
        GeofmError: If LoRA layers are merged.

    Example:
        >>> import tempfile, geofm
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     folder = save_pretrained(geofm.create_backbone("resnet18"), tmp)
        ...     sorted(p.name for p in folder.iterdir())
        ['README.md', 'config.json', 'model.safetensors']
    """
    from safetensors.torch import save_file

    config = _model_json(model)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    save_file(_state_for_saving(model), str(out / WEIGHTS_NAME), metadata={"format": "pt"})
    (out / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    (out / MODEL_CARD_NAME).write_text(_model_card(config))
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
    except (OSError, json.JSONDecodeError) as err:
        raise WeightsError(f"Cannot read {path} as JSON ({err}). Save the model again.") from None
    if not isinstance(config, dict) or config.get("library") != _LIBRARY:
        raise WeightsError(
            f'{path} is not a geofm config (no "library": "geofm"). Load it with the library '
            "that wrote it, or save the model with geofm.hub.save_pretrained."
        )
    if config.get("format") != _FORMAT:
        raise WeightsError(
            f"{path} has config format {config.get('format')!r}; this geofm reads format "
            f"{_FORMAT}. Upgrade geofm or save the model again."
        )
    return config


def _rebuild(config: dict[str, Any]) -> nn.Module:
    bb = config["backbone"]
    backbone = create_backbone(bb["name"], **bb["kwargs"])
    backbone.config = BackboneConfig(name=bb["name"], kwargs=bb["kwargs"], weights=bb["weights"])
    if bb.get("lora"):
        apply_lora(backbone, LoRAConfig.from_json(json.dumps(bb["lora"])))
    if config["kind"] == "backbone":
        return backbone
    if config["kind"] not in ("segmentation", "pooled"):
        raise WeightsError(
            f"Unknown model kind {config['kind']!r} in config.json; expected 'backbone', "
            "'segmentation' or 'pooled'. Upgrade geofm."
        )
    head = ModuleSpec(**config["head"])
    model: nn.Module
    if config["kind"] == "pooled":
        model = build_pooled_model(backbone, head=head)
    else:
        neck = ModuleSpec(**config["neck"]) if config.get("neck") else None
        model = build_segmentation_model(backbone, neck=neck, head=head)
    if config.get("lora"):
        apply_lora(model, LoRAConfig.from_json(json.dumps(config["lora"])))
    return model


def from_pretrained(
    repo_id_or_directory: str | os.PathLike[str],
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> nn.Module:
    """Rebuild a model saved by :func:`save_pretrained` (a folder or a hub repo) and load it.

    The modules are rebuilt through geofm's backbone registry and
    :mod:`geofm.heads`; the tensors load strictly from ``model.safetensors``.
    A hub repo goes through huggingface_hub's cache (``HF_HUB_OFFLINE=1`` is respected).

    Args:
        repo_id_or_directory: Local folder, or ``"org/name"`` on the Hugging Face Hub.
        revision: Hub revision (branch, tag or commit); ignored for folders.
        cache_dir: huggingface_hub cache directory (default: ``HF_HUB_CACHE``).

    Returns:
        The model, in eval mode.

    Raises:
        WeightsError: Missing or foreign files, a config this geofm cannot
            read, or tensors that do not match the rebuilt model exactly.

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
    model = _rebuild(_read_config(config_path))
    load_state_dict_into(
        model, read_state_dict(weights_path), strict=True, source=str(weights_path)
    )
    return model.eval()


def push_to_hub(
    model: nn.Module,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str = "Upload geofm model",
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

    Returns:
        The commit URL huggingface_hub reports.

    Raises:
        WeightsError: See :func:`save_pretrained`.

    Example:
        >>> push_to_hub(model, "me/my-geofm-model")  # doctest: +SKIP
        'https://huggingface.co/me/my-geofm-model/commit/...'

        What cannot be saved is refused before anything is uploaded:

        >>> push_to_hub(torch.nn.Linear(2, 2), "me/my-geofm-model")
        Traceback (most recent call last):
        ...
        geofm.errors.WeightsError: save_pretrained supports geofm backbones, ... got Linear...
    """
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_pretrained(model, tmp)
        api.create_repo(repo_id=repo_id, private=private, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            commit_message=commit_message,
            revision=revision,
        )
    return str(info)
