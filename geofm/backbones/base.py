"""The backbone contract, the backbone registry and ``create_backbone``.

Every backbone is a :class:`Backbone`: ``forward(x)`` returns a list of NCHW
feature maps (one per entry of ``out_indices``, always NCHW, also for Swin),
``embed(x)`` returns pooled ``(N, D)`` embeddings, and ``feature_info``
describes channels and stride of each returned map.

Reference: the contract follows timm's ``features_only`` / ``forward_intermediates``
idea (https://github.com/huggingface/pytorch-image-models) with explicit,
typed metadata instead of dicts.

Example:
    >>> import torch, geofm
    >>> model = geofm.create_backbone("resnet18", in_chans=4)
    >>> [tuple(f.shape) for f in model(torch.randn(1, 4, 64, 64))]
    [(1, 64, 16, 16), (1, 128, 8, 8), (1, 256, 4, 4), (1, 512, 2, 2)]
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from geofm._registry import HubMixin, Registry
from geofm.backbones.adapt import AdaptationReport, BandInfo, adapt_input_weight
from geofm.errors import ShapeError, UnknownNameError
from geofm.input_spec import InputSpec
from geofm.sensors import Sensor, get_sensor, resolve_bands, resolve_wavelengths
from geofm.weights.catalog import resolve_pretrained, weights_for_backbone
from geofm.weights.load import LoadReport, StateDict, load_weights

__all__ = [
    "Backbone",
    "BackboneConfig",
    "TimmBackbone",
    "BackboneEntry",
    "FeatureInfo",
    "FeatureInfoList",
    "create_backbone",
    "get_backbone_entry",
    "list_backbones",
    "normalize_out_indices",
    "register_backbone",
]

logger = logging.getLogger(__name__)

BackboneBuilder = Callable[..., "Backbone"]

# Parameters create_backbone handles itself; builders never see them.
_LOADER_PARAMS = ("pretrained", "bands", "pretrained_bands", "grad_checkpointing")
_CLASSIFIER_NOTE = "classifier head; the backbone has none"


def normalize_out_indices(
    indices: Sequence[int] | None, count: int, *, default: Sequence[int], what: str
) -> tuple[int, ...]:
    """Validate block / stage indices, resolve negative ones and sort them.

    Args:
        indices: Requested indices (negative values count from the end), or
            ``None`` for ``default``.
        count: Number of blocks or stages.
        default: Indices used when ``indices`` is ``None``.
        what: What the indices count, for messages (``"ViT with 12 blocks"``).

    Returns:
        Sorted, non-negative, unique indices.

    Raises:
        ValueError: If an index is out of range or one is repeated.

    Example:
        >>> normalize_out_indices([-1, 0], 4, default=(0, 1, 2, 3), what="ResNet with 4 stages")
        (0, 3)
    """
    picks = tuple(default if indices is None else indices)
    out: list[int] = []
    for i in picks:
        if not -count <= i < count:
            raise ValueError(
                f"out_indices entry {i} is out of range for a {what}. "
                f"Expected values in [{-count}, {count - 1}]."
            )
        out.append(i % count)
    if len(set(out)) != len(out):
        raise ValueError(f"out_indices must not repeat a block or stage, got {picks}.")
    return tuple(sorted(out))


@dataclass(frozen=True)
class FeatureInfo:
    """Channels and stride of one feature map returned by a backbone.

    Args:
        channels: Channel count ``C`` of the map.
        reduction: Stride of the map with respect to the input (``H / H_map``).
        module: Name of the module the map is taken from.

    Example:
        >>> FeatureInfo(channels=256, reduction=4, module="layer1")
        FeatureInfo(channels=256, reduction=4, module='layer1')
    """

    channels: int
    reduction: int
    module: str = ""


class FeatureInfoList(list[FeatureInfo]):
    """The :class:`FeatureInfo` of each map a backbone returns, with timm's accessors.

    A plain list (indexing, iteration, ``len``) plus timm's ``FeatureInfo``
    queries: ``channels()`` and ``reduction()`` give every map's value as a list,
    ``channels(i)`` and ``reduction(i)`` the value of map ``i``.

    Example:
        >>> info = FeatureInfoList([FeatureInfo(64, 4), FeatureInfo(128, 8)])
        >>> info.channels(), info.reduction(1)
        ([64, 128], 8)
    """

    def channels(self, idx: int | None = None) -> Any:
        """Channel count of map ``idx`` (an ``int``), or of every map (a list) for ``None``."""
        return self._field("channels", idx)

    def reduction(self, idx: int | None = None) -> Any:
        """Stride of map ``idx`` w.r.t. the input (an ``int``), or of every map for ``None``."""
        return self._field("reduction", idx)

    def _field(self, name: str, idx: int | None) -> Any:
        return [getattr(f, name) for f in self] if idx is None else getattr(self[idx], name)


@dataclass(frozen=True)
class BackboneConfig:
    """How :func:`create_backbone` built a backbone: enough to rebuild it.

    :func:`create_backbone` stores one on every model as ``model.config``;
    :func:`geofm.hub.save_pretrained` writes it to ``config.json`` and
    :func:`geofm.hub.from_pretrained` rebuilds the model through the registry.

    Args:
        name: Registered backbone name.
        kwargs: The effective keyword arguments (``in_chans`` taken from the
            weights included), without ``pretrained``.
        weights: Catalog entry name or file name the weights were loaded
            from, or ``None``.

    Example:
        >>> import geofm
        >>> geofm.create_backbone("resnet18", in_chans=4).config
        BackboneConfig(name='resnet18', kwargs={'in_chans': 4}, weights=None)
    """

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None


@dataclass(frozen=True)
class BackboneEntry:
    """Registry metadata of one backbone name.

    Args:
        name: Registered name.
        builder: Function building the backbone from keyword arguments.
        family: Family name (``"vit"``, ``"dinov2"``, ``"swinv2"``, ``"resnet"``, ...).
        default_in_chans: Input channels of the default configuration.
        pretrained_bands: Sensor name of the bands the published weights of
            this architecture expect (used for ``in_chans`` adaptation), or ``None``.
        min_input_size: Smallest input side the backbone accepts (also its
            size granularity, e.g. the patch size or the total stride).
        description: One line for listings.

    Example:
        >>> get_backbone_entry("resnet50").family
        'resnet'
    """

    name: str
    builder: BackboneBuilder
    family: str
    default_in_chans: int = 3
    pretrained_bands: str | None = "rgb"
    min_input_size: int = 32
    description: str = ""

    def accepted_kwargs(self) -> list[str]:
        """Sorted keyword arguments the builder accepts (``create_backbone``'s own included).

        Returns:
            Sorted argument names.

        Example:
            >>> "in_chans" in get_backbone_entry("resnet18").accepted_kwargs()
            True
        """
        params = inspect.signature(self.builder).parameters
        # Wavelengths reach a builder only through ``bands=`` (resolved by create_backbone).
        return sorted((set(params) | set(_LOADER_PARAMS)) - {"wavelengths"})


BACKBONES: Registry[BackboneEntry] = Registry("backbone")


class Backbone(HubMixin, nn.Module):
    """Base class of every geofm backbone.

    Subclasses set :attr:`embed_dim`, :attr:`in_chans`, :attr:`feature_info`
    and :attr:`out_indices` and implement :meth:`forward_features` and
    :meth:`forward_embed`. :meth:`forward` and :meth:`embed` check the input
    and call them.

    Attributes:
        embed_dim: Size ``D`` of :meth:`embed`'s output.
        in_chans: Number of input bands ``C``.
        feature_info: One :class:`FeatureInfo` per returned map, as a
            :class:`FeatureInfoList` (timm's ``.channels()`` / ``.reduction()``).
        input_spec: The :class:`~geofm.InputSpec` the backbone expects: from its
            catalog weights, from ``bands=`` at creation, or unknown (only the
            band count and :attr:`size_divisor`). Settable, e.g. after
            fine-tuning with other statistics; the band count must match.
        out_indices: Which blocks / stages :meth:`forward` returns.
        size_divisor: Input height and width must be multiples of this.
        stem_weight_key: State-dict key of the first layer's kernel (for
            input-channel adaptation of pretrained weights).
        key_prefix: Prefix this module adds to the wrapped model's keys
            (``"model."`` for timm-based families); checkpoints in the
            wrapped model's own layout get it added on load.
        source_prefixes: Prefixes stripped from checkpoint keys on load when
            that makes more keys match (``"module."`` from DDP, ...).
        classifier_prefixes: Keys under these prefixes (after prefix
            alignment) are a classifier the backbone does not build: they are
            dropped on load and listed in the report as ignored.
        key_renames: ``(old, new)`` key prefixes mapped on load, for a
            configuration whose source layout names a part differently
            (SpectralEarth's ``vit_core.`` is this module's ``model.``).
        grad_checkpointing: Whether blocks recompute activations in backward.
        load_report: Report of the last weight loading, if any.
        adaptation_report: Report of the input-channel adaptation, if any.

    Shape:
        - Input: ``(N, C, H, W)`` with ``C == in_chans`` and ``H``, ``W``
          multiples of :attr:`size_divisor`.
        - Output of ``forward``: list of ``(N, C_i, H / r_i, W / r_i)``.
        - Output of ``embed``: ``(N, D)``.

    Example:
        >>> import torch, geofm
        >>> m = geofm.create_backbone("resnet18")
        >>> m.embed(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 512])
    """

    stem_weight_key: str = ""
    key_prefix: ClassVar[str] = ""
    source_prefixes: tuple[str, ...] = ("module.",)
    classifier_prefixes: ClassVar[tuple[str, ...]] = ()
    key_renames: tuple[tuple[str, str], ...] = ()
    embed_dim: int
    in_chans: int
    out_indices: tuple[int, ...]
    size_divisor: int = 1

    def __init__(self) -> None:
        super().__init__()
        self._feature_info = FeatureInfoList()
        self._input_spec: InputSpec | None = None
        self.load_report: LoadReport | None = None
        self.adaptation_report: AdaptationReport | None = None
        self.pretrained_bands: BandInfo | None = None
        self.bands: BandInfo | None = None
        self.config: BackboneConfig | None = None
        self.grad_checkpointing = False

    @property
    def feature_info(self) -> FeatureInfoList:
        """One :class:`FeatureInfo` per map :meth:`forward` returns."""
        return self._feature_info

    @feature_info.setter
    def feature_info(self, value: Iterable[FeatureInfo]) -> None:
        self._feature_info = FeatureInfoList(value)

    @property
    def input_spec(self) -> InputSpec:
        """What the backbone expects as input (see the class docstring)."""
        if self._input_spec is None:
            return InputSpec.unknown(self.in_chans, multiple=self.size_divisor)
        return self._input_spec

    @input_spec.setter
    def input_spec(self, spec: InputSpec) -> None:
        if not isinstance(spec, InputSpec):
            raise TypeError(f"input_spec must be a geofm.InputSpec, got {type(spec).__name__}.")
        if spec.num_bands != self.in_chans:
            raise ShapeError(
                f"input_spec describes {spec.num_bands} bands but the backbone takes "
                f"{self.in_chans}."
            )
        self._input_spec = spec

    def check_input(self, x: torch.Tensor) -> None:
        """Raise :class:`~geofm.errors.ShapeError` unless ``x`` fits this backbone.

        Args:
            x: Candidate input.

        Raises:
            ShapeError: Wrong rank, band count, or a size that is not a
                multiple of :attr:`size_divisor`.

        Example:
            >>> import torch, geofm
            >>> geofm.create_backbone("resnet18").check_input(torch.zeros(1, 4, 32, 32))
            Traceback (most recent call last):
            ...
            geofm.errors.ShapeError: ResNetBackbone expected 3 bands, got 4 ...
        """
        name = type(self).__name__
        if x.ndim != 4:
            raise ShapeError(f"{name} expected a (N, C, H, W) tensor, got shape {tuple(x.shape)}.")
        if x.shape[1] != self.in_chans:
            raise ShapeError(
                f"{name} expected {self.in_chans} bands, got {x.shape[1]} (input shape "
                f"{tuple(x.shape)}). Create the backbone with in_chans={x.shape[1]} or pass "
                f"{self.in_chans}-band input."
            )
        h, w = x.shape[-2:]
        d = self.size_divisor
        if h % d or w % d:
            raise ShapeError(
                f"{name} needs height and width that are multiples of {d}, got {h}x{w}. "
                f"Pad or crop the input, e.g. to {max(d, h // d * d)}x{max(d, w // d * d)}."
            )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps at :attr:`out_indices`, each ``(N, C_i, H_i, W_i)``.

        Args:
            x: Input ``(N, C, H, W)``.

        Returns:
            List of NCHW feature maps, described by :attr:`feature_info`.
        """
        self.check_input(x)
        return self.forward_features(x)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Family-specific forward on a checked input (subclasses implement it).

        Args:
            x: Input ``(N, C, H, W)``, already validated by :meth:`check_input`.

        Returns:
            One ``(N, C_i, H_i, W_i)`` map per entry of :attr:`feature_info`.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement forward_features.")

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled embedding ``(N, D)``: the input is checked, then :meth:`forward_embed` pools.

        Each family states its pooling on :meth:`forward_embed` (class token,
        mean token, global average pool of the last stage, ...).

        Args:
            x: Input ``(N, C, H, W)``.

        Returns:
            ``(N, embed_dim)`` embeddings.

        Raises:
            ShapeError: See :meth:`check_input`.
        """
        self.check_input(x)
        return self.forward_embed(x)

    def forward_embed(self, x: torch.Tensor) -> torch.Tensor:
        """Family-specific pooling on a checked input, ``(N, D)`` (subclasses implement it).

        Args:
            x: Input ``(N, C, H, W)``, already validated by :meth:`check_input`.

        Returns:
            ``(N, embed_dim)`` embeddings.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement forward_embed.")

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute activations of every block in backward to save memory.

        Families that run their blocks through :meth:`run_blocks` get this for
        free; timm-backed ones use timm's own mechanism (:class:`TimmBackbone`).

        Args:
            enable: Turn checkpointing on or off.

        Example:
            >>> import geofm
            >>> m = geofm.create_backbone("tv_swin_v2_b", depths=(1, 1, 1, 1))
            >>> m.set_grad_checkpointing()
            >>> m.grad_checkpointing
            True
        """
        self.grad_checkpointing = enable

    def run_blocks(self, blocks: Iterable[nn.Module], x: torch.Tensor) -> torch.Tensor:
        """Apply ``blocks`` in order, checkpointing each one when :attr:`grad_checkpointing` is on.

        Args:
            blocks: Modules applied one after the other.
            x: Their input.

        Returns:
            The output of the last block.
        """
        for block in blocks:
            if self.grad_checkpointing and torch.is_grad_enabled():
                x = cast(torch.Tensor, checkpoint(block, x, use_reentrant=False))
            else:
                x = block(x)
        return x

    def adapt_state_dict(self, state_dict: StateDict, report: LoadReport) -> StateDict:
        """Map a checkpoint in this family's source layout onto this module's keys.

        Aligns key prefixes (:attr:`source_prefixes`, :attr:`key_prefix`),
        applies :attr:`key_renames`, drops :attr:`classifier_prefixes` (listed
        as ignored), and adapts the stem kernel when the checkpoint's input
        channel count differs from :attr:`in_chans`, or when both band sets are
        known and the model's bands are another order or selection of the
        file's (see :func:`~geofm.backbones.adapt.adapt_input_weight`), recording
        it in ``report.adapted`` and :attr:`adaptation_report`.
        :attr:`pretrained_bands` describes the file only when its band count is
        the kernel's channel count; otherwise the file's bands count as unknown.
        Families extend it with position-embedding resampling.

        Args:
            state_dict: Checkpoint tensors.
            report: Report to append notes to.

        Returns:
            The adapted state dict.

        Raises:
            ShapeError: If the channel counts differ and, with no band information
                to map them, the file's kernel is not RGB (the message names
                ``bands=`` and ``pretrained_bands=``).
            UnknownNameError: If a band name of the model matches no band of the file.
        """
        state_dict = self._align_prefixes(state_dict, report)
        if self.classifier_prefixes:
            state_dict = self._drop_keys(
                state_dict, self.classifier_prefixes, _CLASSIFIER_NOTE, report
            )
        key = self.stem_weight_key
        if not key or key not in state_dict:
            return state_dict
        weight = state_dict[key]
        own = self.state_dict()[key]
        if weight.ndim != own.ndim:
            return state_dict
        source = self.pretrained_bands
        if source is not None and _band_count(source) != weight.shape[1]:
            source = None  # pretrained_bands does not describe this file: its bands are unknown
        if weight.shape[1] == own.shape[1] and (source is None or self.bands is None):
            return state_dict  # same count, nothing to map the channels by: taken as stored
        new, adaptation = adapt_input_weight(
            weight, target_in_chans=own.shape[1], source_bands=source, target_bands=self.bands
        )
        if adaptation.is_identity:
            return state_dict
        self.adaptation_report = adaptation
        report.adapted.append(
            f"{key}: input channels {weight.shape[1]} -> {own.shape[1]} "
            f"({len(adaptation.copied)} copied, {len(adaptation.new_channels)} new); "
            f"{adaptation.summary()}"
        )
        out = dict(state_dict)
        out[key] = new
        return out

    def _align_prefixes(self, state_dict: StateDict, report: LoadReport) -> StateDict:
        """Strip :attr:`source_prefixes` or add :attr:`key_prefix` when that matches more keys."""
        own = set(self.state_dict())
        candidates: list[tuple[str, StateDict]] = [("", state_dict)]
        for prefix in self.source_prefixes:
            stripped: StateDict = {}
            for k, v in state_dict.items():
                while k.startswith(prefix):
                    k = k[len(prefix) :]
                stripped[k] = v
            candidates.append((f"stripped leading {prefix!r} from keys", stripped))
        if self.key_prefix:
            added = {
                (k if k.startswith(self.key_prefix) else self.key_prefix + k): v
                for k, v in state_dict.items()
            }
            candidates.append((f"added prefix {self.key_prefix!r} to keys", added))
        if self.key_renames:
            candidates = [(note, self._rename(sd)) for note, sd in candidates]
        note, best = max(candidates, key=lambda c: len(own & set(c[1])))
        plain = candidates[0][1]
        if note and len(own & set(best)) > len(own & set(plain)):
            report.adapted.append(note)
            return best
        return plain

    def _rename(self, state_dict: StateDict) -> StateDict:
        out: StateDict = {}
        for k, v in state_dict.items():
            for old, new in self.key_renames:
                if k.startswith(old):
                    k = new + k[len(old) :]
                    break
            out[k] = v
        return out

    @staticmethod
    def _drop_keys(
        state_dict: StateDict, prefixes: Sequence[str], reason: str, report: LoadReport
    ) -> StateDict:
        """Remove keys under ``prefixes`` and list them in ``report.ignored`` with ``reason``."""
        kept: StateDict = {}
        for k, v in state_dict.items():
            if any(k.startswith(p) for p in prefixes):
                report.ignored.append(f"{k} ({reason})")
            else:
                kept[k] = v
        return kept


class TimmBackbone(Backbone):
    """A timm model behind the :class:`Backbone` contract, held as ``model`` (keys ``model.*``).

    One home for what every timm-backed family shares: the intermediate maps
    through timm's ``forward_intermediates``, timm's gradient checkpointing,
    and checkpoints in timm's own layout (the ``model.`` prefix is added on
    load and :attr:`classifier_prefixes` are dropped). Subclasses set
    :attr:`out_indices`, :attr:`feature_info`, :attr:`embed_dim`,
    :attr:`in_chans` and implement :meth:`forward_embed`.

    Args:
        model: A timm model built with ``num_classes=0``.

    Example:
        >>> import geofm
        >>> isinstance(geofm.create_backbone("resnet18"), TimmBackbone)
        True
    """

    key_prefix: ClassVar[str] = "model."
    classifier_prefixes: ClassVar[tuple[str, ...]] = ("model.head.",)
    # timm's feature index of stage 0 (ResNet counts its stem as feature 0).
    stage_offset: ClassVar[int] = 0

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model: Any = model

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs at :attr:`out_indices` through timm's ``forward_intermediates``, NCHW.

        Args:
            x: Input ``(N, C, H, W)``, already validated by :meth:`check_input`.

        Returns:
            One ``(N, C_i, H_i, W_i)`` map per entry of :attr:`out_indices`.
        """
        return self.intermediates(x)

    def intermediates(self, x: torch.Tensor, **options: Any) -> list[torch.Tensor]:
        """Timm's ``forward_intermediates`` at :attr:`out_indices`, maps only.

        Args:
            x: Input ``(N, C, H, W)``.
            **options: Family options of timm's call (``norm``, ``output_fmt``).

        Returns:
            One map per entry of :attr:`out_indices`.
        """
        maps = self.model.forward_intermediates(
            x,
            indices=[i + self.stage_offset for i in self.out_indices],
            stop_early=True,
            intermediates_only=True,
            **options,
        )
        return cast(list[torch.Tensor], maps)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Checkpoint every block in backward (timm's mechanism).

        Args:
            enable: Turn checkpointing on or off.
        """
        self.model.set_grad_checkpointing(enable)
        self.grad_checkpointing = enable


def _band_count(info: BandInfo) -> int:
    return info.num_bands if isinstance(info, Sensor) else len(info)


def register_backbone(
    name: str,
    *,
    family: str,
    default_in_chans: int = 3,
    pretrained_bands: str | None = "rgb",
    min_input_size: int = 32,
    description: str = "",
) -> Callable[[BackboneBuilder], BackboneBuilder]:
    """Register a backbone builder under an explicit ``name`` (decorator).

    Args:
        name: Unique registry name, ``<arch>_<size>_patch<k>`` style.
        family: Family name used for grouping.
        default_in_chans: Input channels of the default configuration.
        pretrained_bands: Sensor name of the published weights' bands.
        min_input_size: Smallest valid input side.
        description: One line for listings.

    Returns:
        A decorator that registers the builder and returns it unchanged.

    Raises:
        ValueError: If ``name`` is already registered.

    Example:
        >>> import torch
        >>> @register_backbone("doc_tiny_cnn", family="doc")
        ... def doc_tiny_cnn(*, in_chans: int = 3) -> Backbone:
        ...     raise RuntimeError("not built in this example")
        >>> "doc_tiny_cnn" in list_backbones("doc_*")
        True
    """

    def decorator(builder: BackboneBuilder) -> BackboneBuilder:
        BACKBONES.add(
            name,
            BackboneEntry(
                name=name,
                builder=builder,
                family=family,
                default_in_chans=default_in_chans,
                pretrained_bands=pretrained_bands,
                min_input_size=min_input_size,
                description=description,
            ),
        )
        return builder

    return decorator


def get_backbone_entry(name: str) -> BackboneEntry:
    """Registry metadata of backbone ``name``.

    Args:
        name: Registered backbone name.

    Returns:
        The :class:`BackboneEntry`.

    Raises:
        UnknownNameError: If the name is not registered (with suggestions).

    Example:
        >>> get_backbone_entry("resnet18").default_in_chans
        3
    """
    return BACKBONES.get(name)


def list_backbones(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """Sorted registered backbone names matching an ``fnmatch`` glob.

    Args:
        pattern: Glob, e.g. ``"dinov2_*"``.
        pretrained: Only names that have at least one entry in the weights
            catalog.

    Returns:
        Sorted names.

    Example:
        >>> list_backbones("resnet*")
        ['resnet18', 'resnet50']
    """
    names = BACKBONES.list(pattern)
    if not pretrained:
        return names
    return [n for n in names if weights_for_backbone(n)]


def create_backbone(
    name: str,
    *,
    pretrained: bool | str | os.PathLike[str] = False,
    bands: str | Sensor | Sequence[str] | Sequence[float] | None = None,
    in_chans: int | None = None,
    img_size: int | None = None,
    out_indices: Sequence[int] | None = None,
    grad_checkpointing: bool = False,
    pretrained_bands: str | Sensor | Sequence[str] | None = None,
    **kwargs: Any,
) -> Backbone:
    """Build a registered backbone, optionally with pretrained weights.

    Args:
        name: Registered name (see :func:`list_backbones`), optionally with a
            weights tag, timm style: ``"dinov2_vit_small_patch14.lvd142m"``
            picks that catalog entry for ``pretrained=True``.
        pretrained: ``False``; ``True`` for the catalog's default weights (or
            the tag in ``name``); a catalog tag; or a local file path
            (``.safetensors`` preferred; ``.pt``/``.pth`` only through
            ``torch.load(weights_only=True)``). Loading is strict and its
            :class:`~geofm.weights.LoadReport` is stored in ``model.load_report``.
        bands: The input bands: a sensor name, a :class:`~geofm.sensors.Sensor`,
            band names (``["B04", "red", "SR_B5"]``, any alias the sensor
            catalog knows) or centre wavelengths in nm. Fixed-kernel backbones
            use them to pick matching pretrained channels; wavelength-conditioned
            ones (``dofa_*``, ``generator=...``) generate their kernels from the
            bands' wavelengths. Implies ``in_chans``.
        in_chans: Input band count. With pretrained weights whose band count
            differs, the first layer is adapted (see
            :func:`~geofm.backbones.adapt.adapt_input_weight`); the report is
            in ``model.adaptation_report``. Never re-initialised silently.
        img_size: Native input size (ViTs: size of the stored position
            embedding; other sizes are interpolated at run time).
        out_indices: Blocks / stages whose outputs ``forward`` returns.
        grad_checkpointing: Recompute activations in backward.
        pretrained_bands: Band set of a local weights file, when it differs
            from the architecture's default (``BackboneEntry.pretrained_bands``);
            catalog entries carry their own.
        **kwargs: Family-specific builder arguments (e.g. ``depth``, ``pool``).

    Returns:
        The :class:`Backbone`.

    Raises:
        UnknownNameError: Unknown ``name``, band, sensor, or weights tag.
        TypeError: A keyword argument the builder does not accept; the message
            lists the accepted ones.
        ShapeError: ``in_chans`` inconsistent with ``bands``.
        ValueError: A weights tag in ``name`` and another in ``pretrained``.
        WeightsError: The weights cannot be found, read or loaded strictly.

    Example:
        >>> import torch, geofm
        >>> vit = geofm.create_backbone("vit_small_patch16", depth=2, img_size=32)
        >>> [f.shape for f in vit(torch.randn(1, 3, 32, 32))]
        [torch.Size([1, 384, 2, 2]), torch.Size([1, 384, 2, 2])]
        >>> dofa = geofm.create_backbone("dofa_vit_base_patch16", depth=1, bands=[664.6, 832.8])
        >>> dofa.in_chans
        2
    """
    name, _, tag = name.partition(".")
    entry = BACKBONES.get(name)
    params = inspect.signature(entry.builder).parameters
    unknown = sorted(set(kwargs) - set(params) | set(kwargs) & {"wavelengths"})
    if unknown:
        hint = (
            " Pass wavelengths (nm) or a sensor name as bands=." if "wavelengths" in unknown else ""
        )
        raise TypeError(
            f"create_backbone({name!r}) got unknown keyword argument(s) {', '.join(unknown)}. "
            f"Accepted: {', '.join(entry.accepted_kwargs())}.{hint}"
        )
    if tag:
        if isinstance(pretrained, str) and pretrained != tag:
            raise ValueError(
                f"create_backbone got the weights tag {tag!r} in its name and "
                f"pretrained={pretrained!r}. Give the tag once: in the name with "
                "pretrained=True, or as pretrained='<tag>'."
            )
        known = [s.tag for s in weights_for_backbone(name)]
        if tag not in known:
            raise UnknownNameError(
                f"Unknown weights tag {tag!r} for backbone {name!r}. Registered tags: "
                f"{', '.join(known) or 'none'}."
            )
        if pretrained is True:
            pretrained = tag
    resolved = resolve_pretrained(name, pretrained) if pretrained is not False else None
    spec = resolved.spec if resolved is not None else None
    if spec is not None and spec.in_chans is not None and in_chans is None and bands is None:
        in_chans = spec.in_chans  # build for the checkpoint's bands unless told otherwise
    if spec is not None and spec.sensor is not None and pretrained_bands is None:
        pretrained_bands = spec.sensor
    target_bands, wavelengths = _resolve_input_bands(
        bands, need_wavelengths="wavelengths" in params
    )
    if bands is not None:
        count = len(wavelengths) if target_bands is None else _band_count(target_bands)
        if in_chans is not None and in_chans != count:
            raise ShapeError(
                f"in_chans={in_chans} but bands lists {count} bands. Pass matching values "
                "or only one of them."
            )
        in_chans = count
    given = {
        "in_chans": in_chans,
        "wavelengths": wavelengths or None,
        "img_size": img_size,
        "out_indices": tuple(out_indices) if out_indices is not None else None,
    }
    for key, value in given.items():
        if value is None:
            continue
        if key not in params:
            if key == "wavelengths":
                continue  # a fixed-kernel family: bands only pick pretrained channels
            raise TypeError(
                f"create_backbone({name!r}) does not support {key}= (family {entry.family!r}). "
                f"Accepted: {', '.join(entry.accepted_kwargs())}."
            )
        kwargs[key] = value
    model = entry.builder(**kwargs)
    model.bands = target_bands
    if pretrained_bands is not None:
        model.pretrained_bands = resolve_bands(pretrained_bands)
    elif entry.pretrained_bands is not None:
        model.pretrained_bands = resolve_bands(entry.pretrained_bands)

    if resolved is not None:
        model.load_report = load_weights(
            model,
            resolved.path,
            strict=True,
            sha256=resolved.sha256,
            converter=resolved.converter,
        )
        logger.info("loaded %s", model.load_report.summary())
    model.input_spec = _input_spec_for(
        model,
        bands=bands,
        target_bands=target_bands,
        wavelengths=wavelengths,
        pretrained=resolved is not None,
    )
    if grad_checkpointing:
        model.set_grad_checkpointing(True)
    kwargs.pop("wavelengths", None)  # recorded through bands
    recorded = {
        **kwargs,
        **{
            k: v
            for k, v in (
                ("bands", bands),
                ("pretrained_bands", pretrained_bands),
                ("grad_checkpointing", grad_checkpointing or None),
            )
            if v is not None
        },
    }
    weights = None
    if resolved is not None:
        weights = resolved.spec.name if resolved.spec is not None else resolved.path.name
    model.config = BackboneConfig(name=name, kwargs=recorded, weights=weights)
    return model


def _registered(sensor: Sensor) -> bool:
    try:
        return get_sensor(sensor.name) == sensor
    except LookupError:
        return False


def _spec_of_sensor(sensor: Sensor, multiple: int, names: Sequence[str] | None = None) -> InputSpec:
    """The spec of ``sensor``'s bands (or of ``names`` among them), naming a registered parent."""
    if names is None and not _registered(sensor):
        parent = sensor.name.partition("[")[0]  # "sentinel2_l2a[B04,B03]" from Sensor.select
        try:
            base = get_sensor(parent)
        except LookupError:
            base = None
        if base is not None:
            return InputSpec.from_sensor(base, bands=sensor.bands, multiple=multiple)
    return InputSpec.from_sensor(sensor, bands=names, multiple=multiple)


def _input_spec_for(
    model: Backbone,
    *,
    bands: object,
    target_bands: BandInfo | None,
    wavelengths: tuple[float, ...],
    pretrained: bool,
) -> InputSpec:
    """What ``model`` expects, from ``bands=`` or from the weights it loaded.

    Band names without a sensor are read as bands of the weights' sensor (with
    its statistics) when the model loaded pretrained weights; otherwise only the
    names (or wavelengths) are known. Without ``bands=`` a pretrained model
    expects its weights' bands, and a randomly initialised one is unknown.
    """
    multiple, count = model.size_divisor, model.in_chans
    source = model.pretrained_bands if pretrained else None
    if bands is None:
        if isinstance(source, Sensor) and source.num_bands == count:
            return _spec_of_sensor(source, multiple)
        return InputSpec.unknown(count, multiple=multiple)
    if isinstance(target_bands, Sensor):
        return _spec_of_sensor(target_bands, multiple)
    if target_bands is not None:
        names = tuple(target_bands)
        if isinstance(source, Sensor):
            try:
                return _spec_of_sensor(source, multiple, names)
            except LookupError:
                pass  # names of another sensor: known by name only
        return InputSpec(num_bands=count, bands=names, multiple=multiple)
    return InputSpec(num_bands=count, wavelengths=wavelengths, multiple=multiple)


def _resolve_input_bands(
    bands: str | Sensor | Sequence[str] | Sequence[float] | None, *, need_wavelengths: bool
) -> tuple[BandInfo | None, tuple[float, ...]]:
    """Band names (for channel matching) and wavelengths in nm of ``create_backbone``'s ``bands``.

    Numbers are wavelengths (no names known); anything else goes through the
    one band resolver of :mod:`geofm.sensors`. Wavelengths of band names are
    looked up only for a wavelength-conditioned builder (``need_wavelengths``).
    """
    if bands is None:
        return None, ()
    if not isinstance(bands, (str, Sensor)) and all(
        isinstance(b, (int, float)) and not isinstance(b, bool) for b in bands
    ):
        waves = resolve_wavelengths([float(cast(float, b)) for b in bands])
        return None, waves
    info = resolve_bands(cast("str | Sensor | Sequence[str]", bands))
    if need_wavelengths and not isinstance(info, Sensor):
        raise ValueError(
            f"bands={list(info)!r} are names without a sensor, so their wavelengths are "
            "unknown and this wavelength-conditioned backbone cannot use them. Pass the "
            "bands of a sensor, e.g. bands=get_sensor('sentinel2_l2a').select("
            f"{list(info)!r}) (geofm.sensors.get_sensor), a sensor name, or the centre "
            "wavelengths in nm."
        )
    return info, resolve_wavelengths(info) if need_wavelengths else ()
