"""LoRA wrappers for ``nn.Linear`` and ``nn.Conv2d``, with named adapters.

References:
    - Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", ICLR 2022.
      https://arxiv.org/abs/2106.09685 (loralib's ``MergedLinear`` for fused projections:
      https://github.com/microsoft/LoRA/blob/main/loralib/layers.py)
    - PEFT's LoRA layers (key names, Conv2d layout, named adapters, safe merge):
      https://github.com/huggingface/peft/blob/main/src/peft/tuners/lora/layer.py

Design: a wrapper *takes over the base layer's own parameters* (the same
``Parameter`` objects, registered under the same names ``weight``/``bias``)
instead of holding the layer as a child module. The adapted model's state dict
therefore keeps every original key (``blocks.0.attn.qkv.weight``) and only
adds ``<layer>.lora_A.weight`` / ``<layer>.lora_B.weight``, the names PEFT uses.
The original layer object is kept aside (not as a child) and given back by
:meth:`LoRALayer.to_base_layer`.

Named adapters (PEFT's ``adapter_name``): a layer holds one or more adapters by
name. The adapter named :data:`DEFAULT_ADAPTER` (``"default"``) is stored under
``lora_A`` / ``lora_B`` (the keys above); any other adapter ``n`` under
``lora_adapters.<n>.lora_A`` / ``.lora_B``. One adapter is *active* (used by
``forward`` and ``.weight``); ``layer.lora_A``, ``layer.rank``,
``layer.scaling`` ... describe the active one.

The wrapper of each layer type comes from one type-keyed table,
:data:`LORA_WRAPPERS` (``nn.Linear -> LoRALinear``, ``nn.Conv2d -> LoRAConv2d``),
as in torchao's module swaps (https://github.com/pytorch/ao,
``torchao/quantization/transform_module.py``): it decides which modules LoRA can
wrap, builds the wrappers and names the supported types in errors.

A wrapper built by :func:`~geofm.lora.apply_lora` records, per adapter, the
:class:`~geofm.lora.LoRAConfig` it was built from and its dotted name in the
adapted module (:class:`LoRAAdapterInfo`); :func:`~geofm.lora.get_lora_config`
reads them back.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar, cast, get_args, overload

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geofm.errors import GeofmError, ShapeError, UnknownNameError, UnsupportedModuleError
from geofm.lora._match import matches
from geofm.lora.config import LoRAConfig, LoRAInitA, check_lora_hparams, lora_scaling

__all__ = [
    "DEFAULT_ADAPTER",
    "LORA_WRAPPERS",
    "LoRAAdapterInfo",
    "LoRAConv2d",
    "LoRALayer",
    "LoRALinear",
    "check_adapter_name",
    "init_lora_pair",
    "lora_layers",
    "wrapper_for",
]

LayerT = TypeVar("LayerT", bound="LoRALayer")
InfoT = TypeVar("InfoT")

DEFAULT_ADAPTER = "default"
"""The adapter name used when none is given (PEFT's); stored under ``lora_A``/``lora_B``."""


def check_adapter_name(name: object) -> str:
    """Check an adapter name: a non-empty string without ``"."`` (it becomes a module name).

    Args:
        name: The proposed name.

    Returns:
        ``name``.

    Raises:
        ValueError: If ``name`` is not a non-empty string or contains ``"."``.

    Example:
        >>> check_adapter_name("city_a")
        'city_a'
    """
    if not isinstance(name, str) or not name or "." in name:
        raise ValueError(
            f"adapter_name must be a non-empty string without '.', got {name!r}. "
            "Pass a name such as 'default' or 'city_a'."
        )
    return name


def init_lora_pair(
    a: nn.Linear | nn.Conv2d, b: nn.Linear | nn.Conv2d, a_init: LoRAInitA = "kaiming"
) -> None:
    """LoRA's init: ``A`` Kaiming-uniform (``a=sqrt(5)``), ``B`` zeros, in place.

    ``"kaiming"`` (the LoRA reference code and PEFT) draws ``A`` of shape
    ``(rank, in)`` with fan-in ``in``: ``U(-1/sqrt(in), 1/sqrt(in))``.
    ``"kaiming_rank"`` is EcoVision-LoRA's notebooks, which hold ``A`` as
    ``(in, rank)`` and so draw with fan-in ``rank``: ``U(-1/sqrt(rank), 1/sqrt(rank))``
    (``rank * k * k`` for a ``k x k`` convolution), values ``sqrt(in / rank)``
    times larger. ``B`` is zero either way, so the adapted layer starts equal
    to its base.

    Args:
        a: The down projection ``A`` (weight ``(rank, in)`` or ``(rank, in/groups, k, k)``).
        b: The up projection ``B``; its weight is zeroed.
        a_init: ``"kaiming"`` or ``"kaiming_rank"``.

    Raises:
        ValueError: If ``a_init`` is neither.

    Example:
        >>> a, b = nn.Linear(64, 4, bias=False), nn.Linear(4, 8, bias=False)
        >>> init_lora_pair(a, b, "kaiming_rank")
        >>> bool(a.weight.abs().max() <= 0.5), bool(b.weight.eq(0).all())  # 1/sqrt(4)
        (True, True)
    """
    if a_init == "kaiming":
        nn.init.kaiming_uniform_(a.weight, a=math.sqrt(5))
    elif a_init == "kaiming_rank":
        with torch.no_grad():
            nn.init.kaiming_uniform_(a.weight.transpose(0, 1), a=math.sqrt(5))  # fan-in = rank
    else:
        raise ValueError(f"a_init must be 'kaiming' or 'kaiming_rank', got {a_init!r}.")
    nn.init.zeros_(b.weight)


@dataclass(frozen=True)
class LoRAAdapterInfo:
    """The hyperparameters of one named adapter of a LoRA layer.

    Args:
        rank: LoRA rank ``r``.
        alpha: Scaling numerator.
        use_rslora: Rank-stabilised scaling ``alpha / sqrt(rank)``.
        chunks: For :class:`LoRALinear`, the adapted output chunks (``None``: all).
        config: The :class:`~geofm.lora.LoRAConfig` ``apply_lora`` used (``None``:
            the layer was built directly).
        target_name: The layer's dotted name in the module ``apply_lora`` adapted.

    Example:
        >>> LoRAAdapterInfo(rank=4, alpha=8.0, use_rslora=True).scaling
        4.0
    """

    rank: int
    alpha: float
    use_rslora: bool
    chunks: tuple[bool, ...] | None = None
    config: LoRAConfig | None = None
    target_name: str | None = None
    scaling: float = field(init=False)
    """``alpha / rank`` (``alpha / sqrt(rank)`` with ``use_rslora``)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "scaling", lora_scaling(self.rank, self.alpha, self.use_rslora))


class _ActiveInfo(Generic[InfoT]):
    """A read-only attribute of a LoRA layer: that field of its active adapter's info.

    ``layer.rank`` is ``layer.info.rank``, and likewise for every field of
    :class:`LoRAAdapterInfo` exposed under PEFT's single-adapter names.
    """

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc
        self.field = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.field = name

    @overload
    def __get__(self, layer: None, owner: type) -> _ActiveInfo[InfoT]: ...
    @overload
    def __get__(self, layer: LoRALayer, owner: type) -> InfoT: ...
    def __get__(self, layer: LoRALayer | None, owner: type) -> InfoT | _ActiveInfo[InfoT]:
        if layer is None:
            return self
        return cast(InfoT, getattr(layer.info, self.field))

    def __set__(self, layer: LoRALayer, value: object) -> None:
        raise AttributeError(
            f"{type(layer).__name__}.{self.field} is read-only: it is the active adapter's; "
            "add an adapter with other settings instead."
        )


class _AdapterModules(nn.Module):
    """The modules of one adapter not named ``"default"`` (``lora_adapters.<name>``)."""

    def __init__(self, a: nn.Module, b: nn.Module, dropout: nn.Module) -> None:
        super().__init__()
        self.lora_A = a
        self.lora_B = b
        self.lora_dropout = dropout


class LoRALayer(nn.Module):
    """Base of the LoRA wrappers: frozen base parameters, named adapters, merge state.

    Subclasses set :attr:`base_type` (the layer type they wrap), build each
    adapter's ``A``/``B`` modules (``_build_adapter``) and implement
    ``forward``. ``.weight`` is the effective weight ``W0 + s * B A`` of the
    active adapter; the base weight itself is :attr:`base_weight`, stored under
    the base layer's key ``weight``. A subclass constructor calls
    ``super().__init__(base)`` and then :meth:`add_adapter`.

    Args:
        base: The layer to adapt; its parameters are shared, not copied.

    Raises:
        UnsupportedModuleError: If ``base`` is not an instance of :attr:`base_type`.

    Example:
        >>> layer = LoRALinear(nn.Linear(4, 6), rank=2)
        >>> isinstance(layer, LoRALayer), layer.config is None, layer.active_adapter
        (True, True, 'default')
    """

    base_type: ClassVar[type[nn.Module]]
    """The layer type this wrapper adapts (the key of :data:`LORA_WRAPPERS`)."""
    bias: nn.Parameter | None

    def __init__(self, base: nn.Module) -> None:
        if not isinstance(base, self.base_type):
            raise UnsupportedModuleError(
                f"{type(self).__name__} wraps torch.nn.{self.base_type.__name__}, got "
                f"{type(base).__name__}. Wrappers by layer type: {_table_text()}."
            )
        super().__init__()
        # Register the base layer's Parameter objects under their own names (no `base.` prefix).
        self._parameters["weight"] = cast(nn.Parameter, base.weight)
        self.register_parameter("bias", cast("nn.Parameter | None", base.bias))
        # The original module, kept aside (not a child: no state-dict keys) for to_base_layer().
        self.__dict__["_base_layer"] = base
        self._record_shape(base)
        self.adapters: dict[str, LoRAAdapterInfo] = {}
        """Every adapter of this layer by name, in the order they were added."""
        self.active_adapter: str | None = None
        """The adapter ``forward`` uses (``None``: this layer lacks the model's active adapter)."""
        self.merged_adapter: str | None = None
        """The adapter folded into :attr:`base_weight` (``None``: not merged)."""
        self.adapters_disabled = False
        """``True`` inside :func:`~geofm.lora.disable_adapters`: ``forward`` is the base layer's."""

    # -- adapters -------------------------------------------------------------------------------

    def _where(self, name: str | None = None) -> str:
        info = self.adapters.get(name or "") if name else None
        target = info.target_name if info is not None else None
        layer = f"layer {target!r}" if target else type(self).__name__
        return f"adapter {name!r} of {layer}" if name else layer

    def _build_adapter(
        self, rank: int, where: str, **options: Any
    ) -> tuple[nn.Linear | nn.Conv2d, nn.Linear | nn.Conv2d, dict[str, Any]]:
        """``A`` and ``B`` of a new adapter (initialised) and its extra info fields."""
        raise NotImplementedError  # pragma: no cover - abstract

    def add_adapter(
        self,
        adapter_name: str,
        *,
        rank: int = 8,
        alpha: float = 16.0,
        dropout: float = 0.0,
        use_rslora: bool = False,
        a_init: LoRAInitA = "kaiming",
        config: LoRAConfig | None = None,
        target_name: str | None = None,
        **options: Any,
    ) -> None:
        """Add a new adapter (``A`` Kaiming-uniform, ``B`` zero) next to the existing ones.

        The first adapter of a layer becomes active; later ones do not (as
        PEFT's ``add_adapter``): call :meth:`set_adapter`.

        Args:
            adapter_name: Its name (see :func:`check_adapter_name`).
            rank: LoRA rank ``r`` (>= 1).
            alpha: Scaling numerator (> 0). geofm's default 16 gives ``s = 2`` at
                rank 8; PEFT's default ``lora_alpha=8`` gives ``s = 1``.
            dropout: Dropout probability on the adapter input, in ``[0, 1)``.
            use_rslora: Use rank-stabilised scaling ``alpha / sqrt(rank)``.
            a_init: How ``A`` is drawn (see :func:`init_lora_pair`).
            config: The config recorded for this adapter (``apply_lora`` sets it).
            target_name: This layer's dotted name, recorded with the adapter.
            **options: Layer-specific options (``chunks`` of :class:`LoRALinear`).

        Raises:
            GeofmError: If the name is taken or the layer is merged.
            ValueError: On an invalid name, ``rank``/``alpha``/``dropout``, or a
                rank that a grouped convolution cannot split.

        Example:
            >>> layer = LoRALinear(nn.Linear(4, 6), rank=2)
            >>> layer.add_adapter("other", rank=3)
            >>> list(layer.adapters), layer.active_adapter
            (['default', 'other'], 'default')
        """
        check_adapter_name(adapter_name)
        if adapter_name in self.adapters:
            raise GeofmError(
                f"{self._where()} already has an adapter named {adapter_name!r} (adapters: "
                f"{list(self.adapters)}). Pick another adapter_name or delete it first."
            )
        if self.merged:
            raise GeofmError(
                f"Cannot add adapter {adapter_name!r} to merged {self._where()}. Unmerge first."
            )
        check_lora_hparams(rank, alpha, dropout, owner=type(self).__name__)
        if a_init not in get_args(LoRAInitA):
            raise ValueError(f"a_init must be one of {get_args(LoRAInitA)}, got {a_init!r}.")
        where = f"{self._where()} (adapter {adapter_name!r})"
        if target_name:
            where = f"layer {target_name!r} (adapter {adapter_name!r})"
        a, b, extra = self._build_adapter(rank, where, **options)
        init_lora_pair(a, b, a_init)
        drop: nn.Module = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        if adapter_name == DEFAULT_ADAPTER:
            self._modules["lora_A"], self._modules["lora_B"] = a, b
            self._modules["lora_dropout"] = drop
        else:
            if "lora_adapters" not in self._modules:
                self._modules["lora_adapters"] = nn.ModuleDict()
            slots = cast(nn.ModuleDict, self._modules["lora_adapters"])
            slots[adapter_name] = _AdapterModules(a, b, drop)
        self.adapters[adapter_name] = LoRAAdapterInfo(
            rank=rank, alpha=float(alpha), use_rslora=use_rslora, config=config,
            target_name=target_name, **extra,
        )  # fmt: skip
        if self.active_adapter is None and len(self.adapters) == 1:
            self.active_adapter = adapter_name

    def _resolve(self, adapter_name: str | None) -> str:
        if adapter_name is None:
            if self.active_adapter is None:
                raise GeofmError(
                    f"{self._where()} has no active adapter (adapters: {list(self.adapters)}). "
                    "Pass adapter_name or call set_adapter."
                )
            return self.active_adapter
        if adapter_name not in self.adapters:
            raise UnknownNameError(
                f"{self._where()} has no adapter {adapter_name!r}; it has {list(self.adapters)}."
            )
        return adapter_name

    def adapter_modules(
        self, adapter_name: str | None = None
    ) -> tuple[nn.Linear | nn.Conv2d, nn.Linear | nn.Conv2d, nn.Module]:
        """``(lora_A, lora_B, lora_dropout)`` of an adapter.

        Args:
            adapter_name: The adapter (``None``: the active one).

        Returns:
            The three modules.

        Raises:
            UnknownNameError: If the layer has no such adapter.
            GeofmError: If ``adapter_name`` is ``None`` and no adapter is active.

        Example:
            >>> LoRALinear(nn.Linear(4, 6), rank=2).adapter_modules()[0].weight.shape
            torch.Size([2, 4])
        """
        name = self._resolve(adapter_name)
        owner = (
            self
            if name == DEFAULT_ADAPTER
            else cast(nn.ModuleDict, self._modules["lora_adapters"])[name]
        )
        mods = owner._modules
        return (
            cast("nn.Linear | nn.Conv2d", mods["lora_A"]),
            cast("nn.Linear | nn.Conv2d", mods["lora_B"]),
            cast(nn.Module, mods["lora_dropout"]),
        )

    def set_adapter(self, adapter_name: str | None) -> None:
        """Make ``adapter_name`` the active adapter (``None``: no adapter on this layer).

        Args:
            adapter_name: One of :attr:`adapters`, or ``None``.

        Raises:
            UnknownNameError: If the layer has no such adapter.
            GeofmError: If the layer is merged.

        Example:
            >>> layer = LoRALinear(nn.Linear(4, 6), rank=2)
            >>> layer.add_adapter("other", rank=3)
            >>> layer.set_adapter("other")
            >>> layer.rank
            3
        """
        if adapter_name is not None:
            self._resolve(adapter_name)
        if self.merged and adapter_name != self.active_adapter:
            raise GeofmError(f"Cannot switch adapters of merged {self._where()}. Unmerge first.")
        self.active_adapter = adapter_name

    def delete_adapter(self, adapter_name: str) -> None:
        """Remove an adapter; if it was active, the first remaining one becomes active.

        Args:
            adapter_name: One of :attr:`adapters`.

        Raises:
            UnknownNameError: If the layer has no such adapter.
            GeofmError: If that adapter is merged.

        Example:
            >>> layer = LoRALinear(nn.Linear(4, 6), rank=2)
            >>> layer.add_adapter("other", rank=3)
            >>> layer.delete_adapter("default")
            >>> list(layer.adapters), layer.active_adapter, sorted(layer.state_dict())[:2]
            (['other'], 'other', ['bias', 'lora_adapters.other.lora_A.weight'])
        """
        self._resolve(adapter_name)
        if self.merged_adapter == adapter_name:
            raise GeofmError(f"{self._where(adapter_name)} is merged. Unmerge before deleting it.")
        if adapter_name == DEFAULT_ADAPTER:
            for key in ("lora_A", "lora_B", "lora_dropout"):
                del self._modules[key]
        else:
            slots = cast(nn.ModuleDict, self._modules["lora_adapters"])
            del slots[adapter_name]
            if not len(slots):
                del self._modules["lora_adapters"]
        del self.adapters[adapter_name]
        if self.active_adapter == adapter_name:
            self.active_adapter = next(iter(self.adapters), None)

    def _live(self) -> str | None:
        """The adapter ``forward`` adds: active, not merged, not disabled (else ``None``)."""
        if self.merged_adapter is not None or self.adapters_disabled:
            return None
        return self.active_adapter

    # -- the active adapter, under the single-adapter names ---------------------------------

    @property
    def lora_A(self) -> nn.Linear | nn.Conv2d:  # noqa: N802 (PEFT's names)
        """``A`` of the active adapter."""
        return self.adapter_modules()[0]

    @property
    def lora_B(self) -> nn.Linear | nn.Conv2d:  # noqa: N802
        """``B`` of the active adapter."""
        return self.adapter_modules()[1]

    @property
    def lora_dropout(self) -> nn.Module:
        """Input dropout of the active adapter (``nn.Identity`` when ``dropout=0``)."""
        return self.adapter_modules()[2]

    @property
    def info(self) -> LoRAAdapterInfo:
        """:class:`LoRAAdapterInfo` of the active adapter."""
        return self.adapters[self._resolve(None)]

    rank: _ActiveInfo[int] = _ActiveInfo("Rank of the active adapter.")
    alpha: _ActiveInfo[float] = _ActiveInfo("``alpha`` of the active adapter.")
    use_rslora: _ActiveInfo[bool] = _ActiveInfo(
        "Whether the active adapter uses rank-stabilised scaling."
    )
    scaling: _ActiveInfo[float] = _ActiveInfo("Scaling ``s`` of the active adapter.")
    config: _ActiveInfo[LoRAConfig | None] = _ActiveInfo(
        "The config ``apply_lora`` used for the active adapter (``None``: built directly)."
    )
    target_name: _ActiveInfo[str | None] = _ActiveInfo(
        "This layer's dotted name in the module ``apply_lora`` adapted (``None``: by hand)."
    )

    @property
    def merged(self) -> bool:
        """Whether an adapter is folded into :attr:`base_weight`."""
        return self.merged_adapter is not None

    # -- construction from a config ------------------------------------------------------------

    @classmethod
    def from_config(
        cls: type[LayerT],
        base: nn.Module,
        config: LoRAConfig,
        *,
        name: str,
        adapter_name: str = DEFAULT_ADAPTER,
    ) -> LayerT:
        """The wrapper :func:`~geofm.lora.apply_lora` puts in place of ``base``.

        Args:
            base: The layer to adapt.
            config: Its rank, alpha, dropout and scaling (and, for fused qkv
                layers, ``qkv_parts``); recorded with the adapter.
            name: ``base``'s dotted name in the adapted module; recorded with the adapter.
            adapter_name: The adapter's name.

        Returns:
            The wrapper.

        Raises:
            UnsupportedModuleError: If ``base`` is not an instance of :attr:`base_type`.

        Example:
            >>> cfg = LoRAConfig(rank=2, targets=("0",))
            >>> LoRALinear.from_config(nn.Linear(4, 4), cfg, name="0").target_name
            '0'
        """
        # A subclass __init__ is LoRALayer.__init__ plus add_adapter; here the adapter comes
        # from the config instead, recording it and the layer's name.
        layer = cls.__new__(cls)
        LoRALayer.__init__(layer, base)
        layer.add_adapter_from_config(config, name=name, adapter_name=adapter_name)
        return layer

    def add_adapter_from_config(self, config: LoRAConfig, *, name: str, adapter_name: str) -> None:
        """:meth:`add_adapter` with the hyperparameters of ``config`` (``apply_lora`` calls it).

        Args:
            config: Rank, alpha, dropout, scaling and (fused qkv) ``qkv_parts``.
            name: This layer's dotted name in the adapted module.
            adapter_name: The new adapter's name.

        Raises:
            GeofmError: If the name is taken or the layer is merged.

        Example:
            >>> layer = LoRALinear(nn.Linear(4, 6), rank=2)
            >>> layer.add_adapter_from_config(LoRAConfig(rank=3), name="fc", adapter_name="b")
            >>> layer.adapters["b"].rank
            3
        """
        self.add_adapter(
            adapter_name, rank=config.rank, alpha=config.alpha, dropout=config.dropout,
            use_rslora=config.use_rslora, a_init=config.a_init, config=config, target_name=name,
            **self._config_options(config, name),
        )  # fmt: skip

    def _record_shape(self, base: nn.Module) -> None:
        """Copy (and check) the base layer's shape attributes (overridden by subclasses)."""
        raise NotImplementedError  # pragma: no cover - abstract

    @classmethod
    def _config_options(cls, config: LoRAConfig, name: str) -> dict[str, Any]:
        """Constructor arguments beyond the shared ones (overridden by subclasses)."""
        return {}

    # -- weights ----------------------------------------------------------------------------------

    @property
    def base_weight(self) -> nn.Parameter:
        """The frozen base weight as stored in the state dict (includes the delta once merged)."""
        return cast(nn.Parameter, self._parameters["weight"])

    @property
    def weight(self) -> Tensor:
        """The effective weight ``W0 + s * B A`` of the active adapter (``W0``: merged or disabled).

        Models that read ``layer.weight`` and call ``F.linear`` themselves
        (timm's SwinV2 ``attn.qkv``, torchvision's Swin) see the adapted weight,
        with gradients flowing to ``A`` and ``B``. The fast path is :meth:`forward`.
        """
        w = self.base_weight
        name = self._live()
        if name is None:
            return w
        return w + self.delta_weight(adapter_name=name, dtype=w.dtype)

    def _b_matrix(self, adapter_name: str) -> Tensor:
        """``B`` as a matrix over the whole output: ``(out, columns of A per group)``."""
        raise NotImplementedError  # pragma: no cover - abstract

    def _groups(self) -> int:
        """Groups of the base layer: the update is block-diagonal over them."""
        return 1

    def delta_weight(
        self, *, adapter_name: str | None = None, dtype: torch.dtype | None = None
    ) -> Tensor:
        """The weight update ``s * B A`` of an adapter, shaped like the base weight.

        For a grouped convolution the update of group ``g`` is ``B_g A_g``
        (block-diagonal), so it has the base weight's shape ``(out, in / groups, kh, kw)``.

        Args:
            adapter_name: The adapter (``None``: the active one).
            dtype: Compute dtype (default: the adapter's).

        Returns:
            The update (differentiable with respect to ``A`` and ``B``); rows of
            fused-qkv chunks without an adapter are zero.

        Example:
            >>> LoRAConv2d(nn.Conv2d(3, 8, 3), rank=2).delta_weight().shape
            torch.Size([8, 3, 3, 3])
            >>> LoRAConv2d(nn.Conv2d(4, 8, 3, groups=2), rank=2).delta_weight().shape
            torch.Size([8, 2, 3, 3])
            >>> layer = LoRALinear(nn.Linear(4, 6), rank=2, chunks=(False, True, False))
            >>> layer.delta_weight().shape
            torch.Size([6, 4])
        """
        name = self._resolve(adapter_name)
        a = self.adapter_modules(name)[0].weight.flatten(1)  # (n*r, in/g * k)
        b = self._b_matrix(name)  # (out, n*r / g)
        if dtype is not None:
            a, b = a.to(dtype), b.to(dtype)
        groups = self._groups()
        if groups == 1:
            delta = b @ a  # (out, in * k)
        else:
            out, per = b.shape[0] // groups, a.shape[0] // groups
            # (g, out/g, r/g) @ (g, r/g, in/g * k) -> (g, out/g, in/g * k): one block per group
            delta = torch.bmm(b.reshape(groups, out, per), a.reshape(groups, per, -1))
        return delta.reshape(self.base_weight.shape) * self.adapters[name].scaling

    @torch.no_grad()
    def merged_weight(self, adapter_name: str | None = None) -> Tensor:
        """The weight :meth:`merge` would write: ``W0 + s * B A`` in float32, cast back.

        Safe merge (PEFT's ``safe_merge``, always on): nothing is written here,
        and a non-finite adapter or result raises.

        Args:
            adapter_name: The adapter (``None``: the active one).

        Returns:
            A new tensor like :attr:`base_weight`.

        Raises:
            ValueError: If ``A`` or ``B`` holds NaN/inf, or the merged weight
                overflows the weight's dtype while ``W0`` is finite.

        Example:
            >>> layer = LoRALinear(nn.Linear(4, 6), rank=2)
            >>> torch.equal(layer.merged_weight(), layer.base_weight)  # B starts at zero
            True
        """
        name = self._resolve(adapter_name)
        a, b, _ = self.adapter_modules(name)
        bad = {
            key: int((~torch.isfinite(m.weight)).sum()) for key, m in (("lora_A", a), ("lora_B", b))
        }
        bad = {k: n for k, n in bad.items() if n}
        if bad:
            counts = ", ".join(f"{k}.weight: {n} non-finite values" for k, n in bad.items())
            raise ValueError(
                f"LoRA {self._where(name)} holds NaN/inf ({counts}); merging it would destroy the "
                "base weight, which is left unchanged. Reload or retrain this adapter."
            )
        w = self.base_weight
        new = (w.float() + self.delta_weight(adapter_name=name, dtype=torch.float32)).to(w.dtype)
        if not torch.isfinite(new).all() and torch.isfinite(w).all():
            raise ValueError(
                f"Merging LoRA {self._where(name)} overflows {w.dtype} (the merged weight has "
                "non-finite values); the base weight is left unchanged. Merge in float32 "
                "(model.float()) or keep the adapter unmerged."
            )
        return new

    @torch.no_grad()
    def merge(self) -> None:
        """Add ``s * B A`` of the active adapter into the base weight in place (float32, cast back).

        Raises:
            GeofmError: If the layer is already merged or its adapters are disabled.
            ValueError: If the adapter or the merged weight is not finite; the
                base weight is then unchanged (see :meth:`merged_weight`).
        """
        if self.merged:
            raise GeofmError("LoRA layer is already merged. Call unmerge() before merging again.")
        if self.adapters_disabled:
            raise GeofmError("Cannot merge while adapters are disabled (disable_adapters).")
        name = self._resolve(None)
        self.base_weight.copy_(self.merged_weight(name))
        self.merged_adapter = name

    @torch.no_grad()
    def unmerge(self) -> None:
        """Subtract the merged ``s * B A`` from the base weight in place (in float32, cast back).

        Raises:
            GeofmError: If the layer is not merged.
        """
        if self.merged_adapter is None:
            raise GeofmError("LoRA layer is not merged. Call merge() first.")
        w = self.base_weight
        delta = self.delta_weight(adapter_name=self.merged_adapter, dtype=torch.float32)
        w.copy_((w.float() - delta).to(w.dtype))
        self.merged_adapter = None

    def to_base_layer(self) -> nn.Module:
        """The original layer object, holding this wrapper's ``weight``/``bias`` Parameters.

        The weights are as they are now (a merged adapter stays in them); the
        adapters are not part of it. :func:`~geofm.lora.merge_and_unload` and
        :func:`~geofm.lora.unload` put it back in the model.

        Returns:
            The ``nn.Linear`` / ``nn.Conv2d`` (or subclass) that was wrapped.

        Example:
            >>> base = nn.Linear(4, 6)
            >>> LoRALinear(base, rank=2).to_base_layer() is base
            True
        """
        base = cast(nn.Module, self.__dict__["_base_layer"])
        base._parameters["weight"] = self._parameters["weight"]
        base._parameters["bias"] = self._parameters["bias"]
        base.train(self.training)
        return base

    def extra_repr(self) -> str:  # noqa: D102
        active = self.active_adapter
        info = f", rank={self.rank}, alpha={self.alpha}" if active is not None else ""
        names = (
            f", adapters={list(self.adapters)}, active={active!r}" if len(self.adapters) > 1 else ""
        )
        return f"{self._shape_repr()}{info}{names}, merged={self.merged}"

    def _shape_repr(self) -> str:
        raise NotImplementedError  # pragma: no cover - abstract


class LoRALinear(LoRALayer):
    """``nn.Linear`` plus a low-rank update: ``y = W0 x + b0 + s * B A dropout(x)``.

    Wraps ``base`` by composition: the wrapper registers ``base``'s own
    ``weight``/``bias`` Parameters under the same names (the state dict keys do
    not change) and adds ``lora_A`` ``(rank, in)`` (Kaiming-uniform,
    ``a=sqrt(5)``) and ``lora_B`` ``(out, rank)`` (zeros), so at init the output
    equals the base layer's. ``s = alpha / rank`` (``alpha / sqrt(rank)`` with
    ``use_rslora``). The default ``alpha=16`` gives ``s = 2`` at rank 8; PEFT's
    default ``lora_alpha=8`` gives ``s = 1`` (pass ``alpha=8.0`` for PEFT's).

    ``chunks`` adapts only parts of a fused projection: the output features are
    split into ``len(chunks)`` equal chunks (q, k, v for a fused qkv) and each
    chunk flagged ``True`` gets its own rank-``rank`` adapter (loralib's
    ``MergedLinear``). ``lora_A.weight`` then stacks the per-chunk ``A_i`` as
    ``(n_on * rank, in)`` and ``lora_B.weight`` the per-chunk ``B_i`` as
    ``(n_on * out / len(chunks), rank)``. The forward adds ``s * (A x)`` times the
    scattered ``B`` (see :meth:`scattered_b`) in place into the output: the
    update touches only the adapted chunks and the fused weight is never split.

    Reading ``.weight`` returns the effective weight ``W0 + s * B A`` (for
    models that call ``F.linear(x, layer.weight)`` themselves, such as timm's
    SwinV2); the state dict and :attr:`base_weight` hold the frozen ``W0``.
    More adapters are added with :meth:`add_adapter` (see :class:`LoRALayer`).

    Args:
        base: The layer to adapt; its parameters are shared, not copied.
        rank: LoRA rank ``r`` (>= 1).
        alpha: Scaling numerator (> 0); default 16 (PEFT: 8).
        dropout: Dropout probability on the adapter input, in ``[0, 1)``.
        use_rslora: Use rank-stabilised scaling ``alpha / sqrt(rank)``.
        chunks: One flag per equal output chunk, or ``None`` for one adapter
            over the whole output.
        adapter_name: Name of this first adapter.

    Shape:
        - Input: ``(*, in_features)``.
        - Output: ``(*, out_features)``.

    Raises:
        UnsupportedModuleError: If ``base`` is not an ``nn.Linear``.
        ShapeError: If ``out_features`` is not divisible by ``len(chunks)``.
        ValueError: On invalid ``rank``/``alpha``/``dropout``/``adapter_name`` or
            no chunk flagged.

    Example:
        >>> base = nn.Linear(4, 6)
        >>> layer = LoRALinear(base, rank=2, alpha=4.0, chunks=(True, False, True))
        >>> layer.lora_A.weight.shape, layer.lora_B.weight.shape
        (torch.Size([4, 4]), torch.Size([4, 2]))
        >>> x = torch.randn(3, 4)
        >>> torch.equal(layer(x), base(x))  # B starts at zero
        True
    """

    base_type = nn.Linear

    def __init__(
        self,
        base: nn.Linear,
        *,
        rank: int = 8,
        alpha: float = 16.0,
        dropout: float = 0.0,
        use_rslora: bool = False,
        chunks: tuple[bool, ...] | None = None,
        adapter_name: str = DEFAULT_ADAPTER,
    ) -> None:
        super().__init__(base)
        self.add_adapter(
            adapter_name, rank=rank, alpha=alpha, dropout=dropout, use_rslora=use_rslora,
            chunks=chunks,
        )  # fmt: skip

    def _record_shape(self, base: nn.Module) -> None:
        linear = cast(nn.Linear, base)
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def _build_adapter(
        self, rank: int, where: str, **options: Any
    ) -> tuple[nn.Linear, nn.Linear, dict[str, Any]]:
        raw = options.pop("chunks", None)
        if options:
            raise TypeError(f"LoRALinear got unexpected adapter options {sorted(options)}.")
        chunks = None if raw is None else tuple(bool(c) for c in raw)
        if chunks is None:
            n_on, chunk = 1, self.out_features
        else:
            n_chunks, n_on = len(chunks), sum(chunks)
            if n_on == 0:
                raise ValueError(f"chunks={raw!r} adapts nothing; flag at least one chunk True.")
            if self.out_features % n_chunks:
                raise ShapeError(
                    f"Cannot split {self.out_features} output features of {where} into "
                    f"{n_chunks} equal chunks (chunks={raw!r}). Is this really a fused projection?"
                )
            chunk = self.out_features // n_chunks
        device, dtype = self.base_weight.device, self.base_weight.dtype
        a = nn.Linear(self.in_features, n_on * rank, bias=False, device=device, dtype=dtype)
        b = nn.Linear(rank, n_on * chunk, bias=False, device=device, dtype=dtype)
        return a, b, {"chunks": chunks}

    @classmethod
    def _config_options(cls, config: LoRAConfig, name: str) -> dict[str, Any]:
        fused = config.qkv_chunks is not None and matches(name, config.qkv_names)
        return {"chunks": config.qkv_chunks if fused else None}

    @property
    def chunks(self) -> tuple[bool, ...] | None:
        """The adapted output chunks of the active adapter (``None``: the whole output)."""
        return self.info.chunks

    def _shape_repr(self) -> str:
        active = self.adapters.get(self.active_adapter or "")
        chunks = "" if active is None or active.chunks is None else f", chunks={active.chunks}"
        return f"in_features={self.in_features}, out_features={self.out_features}{chunks}"

    def _b_matrix(self, adapter_name: str) -> Tensor:
        return self.scattered_b(adapter_name)  # (out, n_on*r)

    def scattered_b(self, adapter_name: str | None = None) -> Tensor:
        """``B`` laid out over the whole output: ``(out_features, n_on * rank)``.

        Without ``chunks`` this is ``lora_B.weight``. With chunks, the rows of
        adapted chunk ``i`` hold its ``B_i`` in the columns of ``A_i`` and the
        other rows are zero, so ``scattered_b() @ lora_A.weight`` is the update of
        the fused weight. (One ``addmm_`` with this matrix beats per-slice
        in-place adds on CPU: slice views make autograd clone the full gradient.)

        Args:
            adapter_name: The adapter (``None``: the active one).

        Returns:
            The scattered ``B`` (differentiable with respect to ``lora_B.weight``).

        Example:
            >>> layer = LoRALinear(nn.Linear(4, 6), rank=1, chunks=(True, False, True))
            >>> layer.scattered_b().shape
            torch.Size([6, 2])
        """
        name = self._resolve(adapter_name)
        b = self.adapter_modules(name)[1].weight
        info = self.adapters[name]
        if info.chunks is None:
            return b  # (out, r)
        n_on, rank = sum(info.chunks), info.rank
        chunk = self.out_features // len(info.chunks)
        blocks: list[Tensor] = []
        j = 0
        for flag in info.chunks:
            if flag:
                b_j = b[j * chunk : (j + 1) * chunk]  # (chunk, r)
                left = b.new_zeros(chunk, j * rank)
                right = b.new_zeros(chunk, (n_on - j - 1) * rank)
                blocks.append(torch.cat([left, b_j, right], dim=1))  # (chunk, n_on*r)
                j += 1
            else:
                blocks.append(b.new_zeros(chunk, n_on * rank))
        return torch.cat(blocks)  # (out, n_on*r)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        name = self._live()
        if name is None:
            return F.linear(x, self.base_weight, self.bias)  # (*, out)
        lora_a, _, dropout = self.adapter_modules(name)
        x2d = x.reshape(-1, self.in_features)  # (M, in)
        out = F.linear(x2d, self.base_weight, self.bias)  # (M, out)
        a = lora_a(dropout(x2d))  # (M, n*r)
        # In place on a fresh (non-view) tensor: no extra (M, out) buffer, no autograd CopySlices.
        out.addmm_(a, self.scattered_b(name).t(), alpha=self.adapters[name].scaling)  # (M, out)
        return out.view(*x.shape[:-1], self.out_features)  # (*, out)


class LoRAConv2d(LoRALayer):
    """``nn.Conv2d`` plus a low-rank update, laid out like PEFT's LoRA ``Conv2d``.

    ``lora_A`` is a bias-free convolution ``in -> rank`` with the base's kernel,
    stride, padding, dilation and groups (Kaiming-uniform, ``a=sqrt(5)``);
    ``lora_B`` a bias-free ``1x1`` convolution ``rank -> out`` with the base's
    groups (zeros). Output: ``conv(x; W0, b0) + s * lora_B(lora_A(dropout(x)))``;
    the merged weight is ``W0 + s * (B A)`` reshaped to the kernel. Parameters
    are shared with ``base`` as in :class:`LoRALinear`. Default ``alpha=16``
    (PEFT's ``lora_alpha`` default is 8).

    Grouped and depthwise convolutions (``groups > 1``): each group ``g`` gets
    its own rank ``rank / groups`` adapter ``B_g A_g`` reading only that group's
    input channels, so the update has the base weight's shape
    ``(out, in / groups, kh, kw)`` and merges exactly (PEFT 0.21 cannot merge
    grouped adapters: its ``A`` reads every input channel). ``rank`` must be a
    multiple of ``groups``, as in PEFT. :func:`~geofm.lora.to_peft` writes ``A``
    in PEFT's layout (zero outside the group blocks), so PEFT computes the same
    outputs.

    Args:
        base: The convolution to adapt (``padding_mode="zeros"``).
        rank: LoRA rank ``r`` (>= 1; a multiple of ``base.groups``).
        alpha: Scaling numerator (> 0); default 16 (PEFT: 8).
        dropout: Dropout probability on the adapter input, in ``[0, 1)``.
        use_rslora: Use rank-stabilised scaling ``alpha / sqrt(rank)``.
        adapter_name: Name of this first adapter.

    Shape:
        - Input: ``(N, C_in, H, W)``.
        - Output: ``(N, C_out, H_out, W_out)`` as for ``base``.

    Raises:
        UnsupportedModuleError: If ``base`` is not an ``nn.Conv2d`` or uses a
            padding mode other than ``"zeros"``.
        ValueError: On invalid ``rank``/``alpha``/``dropout``/``adapter_name``, or a
            rank that is not a multiple of ``groups``.

    Example:
        >>> base = nn.Conv2d(3, 8, kernel_size=3, padding=1)
        >>> layer = LoRAConv2d(base, rank=2, alpha=2.0)
        >>> x = torch.randn(2, 3, 8, 6)
        >>> torch.equal(layer(x), base(x))
        True
        >>> depthwise = LoRAConv2d(nn.Conv2d(4, 4, 3, groups=4), rank=4)
        >>> depthwise.lora_A.weight.shape, depthwise.lora_B.weight.shape
        (torch.Size([4, 1, 3, 3]), torch.Size([4, 1, 1, 1]))
    """

    base_type = nn.Conv2d

    def __init__(
        self,
        base: nn.Conv2d,
        *,
        rank: int = 8,
        alpha: float = 16.0,
        dropout: float = 0.0,
        use_rslora: bool = False,
        adapter_name: str = DEFAULT_ADAPTER,
    ) -> None:
        super().__init__(base)
        self.add_adapter(
            adapter_name, rank=rank, alpha=alpha, dropout=dropout, use_rslora=use_rslora
        )

    def _record_shape(self, base: nn.Module) -> None:
        conv = cast(nn.Conv2d, base)
        if conv.padding_mode != "zeros":
            raise UnsupportedModuleError(
                f"LoRAConv2d supports padding_mode='zeros', got padding_mode="
                f"{conv.padding_mode!r}. Exclude this layer from the targets."
            )
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.kernel_size = cast(tuple[int, int], conv.kernel_size)
        self.stride = cast(tuple[int, int], conv.stride)
        self.padding = cast("tuple[int, int] | str", conv.padding)
        self.dilation = cast(tuple[int, int], conv.dilation)
        self.groups = conv.groups

    def _build_adapter(
        self, rank: int, where: str, **options: Any
    ) -> tuple[nn.Conv2d, nn.Conv2d, dict[str, Any]]:
        if options:
            raise TypeError(f"LoRAConv2d got unexpected adapter options {sorted(options)}.")
        g = self.groups
        if rank % g:
            raise ValueError(
                f"{where} is a convolution with groups={g}: the rank is split evenly over the "
                f"groups, so it must be a multiple of {g}, got rank={rank}. Use "
                f"rank={g * max(1, round(rank / g))} or exclude this layer."
            )
        device, dtype = self.base_weight.device, self.base_weight.dtype
        a = nn.Conv2d(
            self.in_channels, rank, self.kernel_size, stride=self.stride, padding=self.padding,
            dilation=self.dilation, groups=g, bias=False, device=device, dtype=dtype,
        )  # fmt: skip
        b = nn.Conv2d(rank, self.out_channels, 1, groups=g, bias=False, device=device, dtype=dtype)
        return a, b, {}

    def _shape_repr(self) -> str:
        groups = f", groups={self.groups}" if self.groups > 1 else ""
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}{groups}"

    def _groups(self) -> int:
        return self.groups

    def _b_matrix(self, adapter_name: str) -> Tensor:
        b = self.adapter_modules(adapter_name)[1].weight  # (out, r/g, 1, 1)
        return b.flatten(1)  # (out, r/g)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        # (N, out, H', W')
        out = F.conv2d(
            x, self.base_weight, self.bias, self.stride, self.padding, self.dilation, self.groups
        )
        name = self._live()
        if name is None:
            return out
        lora_a, lora_b, dropout = self.adapter_modules(name)
        return out.add_(lora_b(lora_a(dropout(x))), alpha=self.adapters[name].scaling)


LORA_WRAPPERS: dict[type[nn.Module], type[LoRALayer]] = {
    w.base_type: w for w in (LoRALinear, LoRAConv2d)
}
"""The type-keyed table of wrappers: which layer types LoRA adapts, and with what."""


def _table_text() -> str:
    return ", ".join(f"torch.nn.{t.__name__} -> {w.__name__}" for t, w in LORA_WRAPPERS.items())


def wrapper_for(layer_type: type[nn.Module], *, where: str) -> type[LoRALayer]:
    """The wrapper class :data:`LORA_WRAPPERS` assigns to ``layer_type``.

    A subclass of a table type is accepted only if it keeps that type's
    ``forward`` (the wrapper replaces it).

    Args:
        layer_type: The type of the module to adapt.
        where: What has this type, for the error (``"Module 'blocks.0.norm1'"``).

    Returns:
        :class:`LoRALinear` or :class:`LoRAConv2d`.

    Raises:
        UnsupportedModuleError: If LoRA cannot wrap ``layer_type``; the message
            lists the supported types.

    Example:
        >>> wrapper_for(nn.Linear, where="Module 'fc'").__name__
        'LoRALinear'
    """
    for base, wrapper in LORA_WRAPPERS.items():
        if issubclass(layer_type, base) and layer_type.forward is base.forward:
            return wrapper
    supported = ", ".join(f"torch.nn.{t.__name__}" for t in LORA_WRAPPERS)
    raise UnsupportedModuleError(
        f"{where} has type {layer_type.__name__}, which LoRA cannot wrap. Supported types: "
        f"{supported} (subclasses that keep their forward). Narrow targets, add exclude "
        "patterns or pass target_types=(nn.Linear,)."
    )


def lora_layers(model: nn.Module) -> Iterator[tuple[str, LoRALayer]]:
    """The LoRA layers of ``model`` with their dotted names, in model order.

    Args:
        model: Any module (``model`` itself is included, as ``""``, if it is a LoRA layer).

    Yields:
        ``(name, layer)`` pairs.

    Example:
        >>> model = nn.Sequential(LoRALinear(nn.Linear(2, 2)), nn.ReLU())
        >>> [name for name, _ in lora_layers(model)]
        ['0']
    """
    for name, module in model.named_modules():
        if isinstance(module, LoRALayer):
            yield name, module
