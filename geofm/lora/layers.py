"""LoRA wrappers for ``nn.Linear`` and ``nn.Conv2d``.

References:
    - Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", ICLR 2022.
      https://arxiv.org/abs/2106.09685 (loralib's ``MergedLinear`` for fused projections:
      https://github.com/microsoft/LoRA/blob/main/loralib/layers.py)
    - PEFT's LoRA layers (key names and Conv2d layout kept compatible):
      https://github.com/huggingface/peft/blob/main/src/peft/tuners/lora/layer.py

Design: a wrapper *takes over the base layer's own parameters* (the same
``Parameter`` objects, registered under the same names ``weight``/``bias``)
instead of holding the layer as a child module. The adapted model's state dict
therefore keeps every original key (``blocks.0.attn.qkv.weight``) and only
adds ``<layer>.lora_A.weight`` / ``<layer>.lora_B.weight``, the names PEFT uses.

The wrapper of each layer type comes from one type-keyed table,
:data:`LORA_WRAPPERS` (``nn.Linear -> LoRALinear``, ``nn.Conv2d -> LoRAConv2d``),
as in torchao's module swaps (https://github.com/pytorch/ao,
``torchao/quantization/transform_module.py``): it decides which modules LoRA can
wrap, builds the wrappers and names the supported types in errors.

A wrapper built by :func:`~geofm.lora.apply_lora` records the
:class:`~geofm.lora.LoRAConfig` it was built from (:attr:`LoRALayer.config`)
and its dotted name in the adapted module (:attr:`LoRALayer.target_name`);
:func:`~geofm.lora.get_lora_config` reads them back.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, ClassVar, TypeVar, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geofm.errors import GeofmError, ShapeError, UnsupportedModuleError
from geofm.lora._match import matches
from geofm.lora.config import LoRAConfig, check_lora_hparams, lora_scaling

__all__ = ["LORA_WRAPPERS", "LoRAConv2d", "LoRALayer", "LoRALinear", "lora_layers", "wrapper_for"]

LayerT = TypeVar("LayerT", bound="LoRALayer")


class LoRALayer(nn.Module):
    """Base of the LoRA wrappers: frozen base parameters, scaling, merge state.

    Subclasses set :attr:`base_type` (the layer type they wrap), create
    ``lora_A`` and ``lora_B`` and implement ``forward``. ``.weight`` is the
    effective weight ``W0 + s * B A``; the base weight itself is
    :attr:`base_weight`, stored under the base layer's key ``weight``.

    Args:
        base: The layer to adapt; its parameters are shared, not copied.
        rank: LoRA rank ``r`` (>= 1).
        alpha: Scaling numerator (> 0).
        dropout: Dropout probability on the adapter input, in ``[0, 1)``.
        use_rslora: Use rank-stabilised scaling ``alpha / sqrt(rank)``.

    Raises:
        UnsupportedModuleError: If ``base`` is not an instance of :attr:`base_type`.
        ValueError: On invalid ``rank``/``alpha``/``dropout``.

    Example:
        >>> layer = LoRALinear(nn.Linear(4, 4), rank=2)
        >>> isinstance(layer, LoRALayer), layer.config is None
        (True, True)
    """

    base_type: ClassVar[type[nn.Module]]
    """The layer type this wrapper adapts (the key of :data:`LORA_WRAPPERS`)."""
    bias: nn.Parameter | None
    lora_A: nn.Linear | nn.Conv2d  # noqa: N815 (PEFT's names)
    lora_B: nn.Linear | nn.Conv2d  # noqa: N815
    config: LoRAConfig | None
    """The config :func:`~geofm.lora.apply_lora` used for this layer (``None``: built directly)."""
    target_name: str | None
    """This layer's dotted name in the module ``apply_lora`` adapted (``None``: built directly)."""

    def __init__(
        self, base: nn.Module, *, rank: int, alpha: float, dropout: float, use_rslora: bool
    ) -> None:
        if not isinstance(base, self.base_type):
            raise UnsupportedModuleError(
                f"{type(self).__name__} wraps torch.nn.{self.base_type.__name__}, got "
                f"{type(base).__name__}. Wrappers by layer type: {_table_text()}."
            )
        check_lora_hparams(rank, alpha, dropout, owner=type(self).__name__)
        super().__init__()
        # Register the base layer's Parameter objects under their own names (no `base.` prefix).
        self._parameters["weight"] = cast(nn.Parameter, base.weight)
        self.register_parameter("bias", cast("nn.Parameter | None", base.bias))
        self.rank = rank
        self.alpha = float(alpha)
        self.use_rslora = use_rslora
        self.scaling = lora_scaling(rank, self.alpha, use_rslora)
        self.lora_dropout: nn.Module = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False
        self.config = None
        self.target_name = None

    @classmethod
    def from_config(cls: type[LayerT], base: nn.Module, config: LoRAConfig, *, name: str) -> LayerT:
        """The wrapper :func:`~geofm.lora.apply_lora` puts in place of ``base``.

        Args:
            base: The layer to adapt.
            config: Its rank, alpha, dropout and scaling (and, for fused qkv
                layers, ``qkv_parts``); recorded as :attr:`config`.
            name: ``base``'s dotted name in the adapted module; recorded as
                :attr:`target_name`.

        Returns:
            The wrapper.

        Raises:
            UnsupportedModuleError: If ``base`` is not an instance of :attr:`base_type`.

        Example:
            >>> cfg = LoRAConfig(rank=2, targets=("0",))
            >>> LoRALinear.from_config(nn.Linear(4, 4), cfg, name="0").target_name
            '0'
        """
        layer = cls(
            base, rank=config.rank, alpha=config.alpha, dropout=config.dropout,
            use_rslora=config.use_rslora, **cls._config_options(config, name),
        )  # fmt: skip
        layer.config, layer.target_name = config, name
        return layer

    @classmethod
    def _config_options(cls, config: LoRAConfig, name: str) -> dict[str, Any]:
        """Constructor arguments beyond the shared ones (overridden by subclasses)."""
        return {}

    @property
    def base_weight(self) -> nn.Parameter:
        """The frozen base weight as stored in the state dict (includes the delta once merged)."""
        return cast(nn.Parameter, self._parameters["weight"])

    @property
    def weight(self) -> Tensor:
        """The effective weight ``W0 + s * B A`` (just ``W0`` once merged).

        Models that read ``layer.weight`` and call ``F.linear`` themselves
        (timm's SwinV2 ``attn.qkv``, torchvision's Swin) see the adapted weight,
        with gradients flowing to ``A`` and ``B``. The fast path is :meth:`forward`.
        """
        w = self.base_weight
        if self.merged:
            return w
        return w + self.delta_weight(dtype=w.dtype)

    def _b_matrix(self) -> Tensor:
        """``B`` as a matrix over the whole output: ``(out, columns of A)``."""
        raise NotImplementedError  # pragma: no cover - abstract

    def delta_weight(self, *, dtype: torch.dtype | None = None) -> Tensor:
        """The weight update ``s * B A``, shaped like the base weight.

        Args:
            dtype: Compute dtype (default: the adapter's).

        Returns:
            The update (differentiable with respect to ``A`` and ``B``); rows of
            fused-qkv chunks without an adapter are zero.

        Example:
            >>> LoRAConv2d(nn.Conv2d(3, 8, 3), rank=2).delta_weight().shape
            torch.Size([8, 3, 3, 3])
            >>> layer = LoRALinear(nn.Linear(4, 6), rank=2, chunks=(False, True, False))
            >>> layer.delta_weight().shape
            torch.Size([6, 4])
        """
        a, b = self.lora_A.weight.flatten(1), self._b_matrix()  # (n*r, in*k), (out, n*r)
        if dtype is not None:
            a, b = a.to(dtype), b.to(dtype)
        return (b @ a).view(self.base_weight.shape) * self.scaling  # like the base weight

    @torch.no_grad()
    def merge(self) -> None:
        """Add ``s * B A`` into the base weight in place (in float32, cast back).

        Raises:
            GeofmError: If the layer is already merged.
        """
        if self.merged:
            raise GeofmError("LoRA layer is already merged. Call unmerge() before merging again.")
        w = self.base_weight
        w.copy_((w.float() + self.delta_weight(dtype=torch.float32)).to(w.dtype))
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Subtract ``s * B A`` from the base weight in place (in float32, cast back).

        Raises:
            GeofmError: If the layer is not merged.
        """
        if not self.merged:
            raise GeofmError("LoRA layer is not merged. Call merge() first.")
        w = self.base_weight
        w.copy_((w.float() - self.delta_weight(dtype=torch.float32)).to(w.dtype))
        self.merged = False

    def extra_repr(self) -> str:  # noqa: D102
        return f"{self._shape_repr()}, rank={self.rank}, alpha={self.alpha}, merged={self.merged}"

    def _shape_repr(self) -> str:
        raise NotImplementedError  # pragma: no cover - abstract


class LoRALinear(LoRALayer):
    """``nn.Linear`` plus a low-rank update: ``y = W0 x + b0 + s * B A dropout(x)``.

    Wraps ``base`` by composition: the wrapper registers ``base``'s own
    ``weight``/``bias`` Parameters under the same names (the state dict keys do
    not change) and adds ``lora_A`` ``(rank, in)`` (Kaiming-uniform,
    ``a=sqrt(5)``) and ``lora_B`` ``(out, rank)`` (zeros), so at init the output
    equals the base layer's. ``s = alpha / rank`` (``alpha / sqrt(rank)`` with
    ``use_rslora``).

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

    Args:
        base: The layer to adapt; its parameters are shared, not copied.
        rank: LoRA rank ``r`` (>= 1).
        alpha: Scaling numerator (> 0).
        dropout: Dropout probability on the adapter input, in ``[0, 1)``.
        use_rslora: Use rank-stabilised scaling ``alpha / sqrt(rank)``.
        chunks: One flag per equal output chunk, or ``None`` for one adapter
            over the whole output.

    Shape:
        - Input: ``(*, in_features)``.
        - Output: ``(*, out_features)``.

    Raises:
        UnsupportedModuleError: If ``base`` is not an ``nn.Linear``.
        ShapeError: If ``out_features`` is not divisible by ``len(chunks)``.
        ValueError: On invalid ``rank``/``alpha``/``dropout`` or no chunk flagged.

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
    ) -> None:
        super().__init__(base, rank=rank, alpha=alpha, dropout=dropout, use_rslora=use_rslora)
        self.in_features = base.in_features
        self.out_features = base.out_features
        self.chunks = None if chunks is None else tuple(bool(c) for c in chunks)
        if self.chunks is None:
            n_on, chunk = 1, self.out_features
        else:
            n_chunks, n_on = len(self.chunks), sum(self.chunks)
            if n_on == 0:
                raise ValueError(f"chunks={chunks!r} adapts nothing; flag at least one chunk True.")
            if self.out_features % n_chunks:
                raise ShapeError(
                    f"Cannot split {self.out_features} output features into {n_chunks} equal "
                    f"chunks (chunks={chunks!r}). Is this really a fused projection?"
                )
            chunk = self.out_features // n_chunks
        device, dtype = base.weight.device, base.weight.dtype
        self.lora_A: nn.Linear = nn.Linear(
            self.in_features, n_on * rank, bias=False, device=device, dtype=dtype
        )
        self.lora_B: nn.Linear = nn.Linear(
            rank, n_on * chunk, bias=False, device=device, dtype=dtype
        )
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)

    @classmethod
    def _config_options(cls, config: LoRAConfig, name: str) -> dict[str, Any]:
        fused = config.qkv_chunks is not None and matches(name, config.qkv_names)
        return {"chunks": config.qkv_chunks if fused else None}

    def _shape_repr(self) -> str:
        chunks = "" if self.chunks is None else f", chunks={self.chunks}"
        return f"in_features={self.in_features}, out_features={self.out_features}{chunks}"

    def _b_matrix(self) -> Tensor:
        return self.scattered_b()  # (out, n_on*r)

    def scattered_b(self) -> Tensor:
        """``B`` laid out over the whole output: ``(out_features, n_on * rank)``.

        Without ``chunks`` this is ``lora_B.weight``. With chunks, the rows of
        adapted chunk ``i`` hold its ``B_i`` in the columns of ``A_i`` and the
        other rows are zero, so ``scattered_b() @ lora_A.weight`` is the update of
        the fused weight. (One ``addmm_`` with this matrix beats per-slice
        in-place adds on CPU: slice views make autograd clone the full gradient.)

        Returns:
            The scattered ``B`` (differentiable with respect to ``lora_B.weight``).

        Example:
            >>> layer = LoRALinear(nn.Linear(4, 6), rank=1, chunks=(True, False, True))
            >>> layer.scattered_b().shape
            torch.Size([6, 2])
        """
        b = self.lora_B.weight
        if self.chunks is None:
            return b  # (out, r)
        n_on, rank, chunk = sum(self.chunks), self.rank, self.out_features // len(self.chunks)
        blocks: list[Tensor] = []
        j = 0
        for flag in self.chunks:
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
        if self.merged:
            return F.linear(x, self.base_weight, self.bias)  # (*, out)
        x2d = x.reshape(-1, self.in_features)  # (M, in)
        out = F.linear(x2d, self.base_weight, self.bias)  # (M, out)
        a = self.lora_A(self.lora_dropout(x2d))  # (M, n*r)
        # In place on a fresh (non-view) tensor: no extra (M, out) buffer, no autograd CopySlices.
        out.addmm_(a, self.scattered_b().t(), alpha=self.scaling)  # (M, out)
        return out.view(*x.shape[:-1], self.out_features)  # (*, out)


class LoRAConv2d(LoRALayer):
    """``nn.Conv2d`` plus a low-rank update, laid out like PEFT's LoRA ``Conv2d``.

    ``lora_A`` is a bias-free convolution ``in -> rank`` with the base's kernel,
    stride, padding and dilation (Kaiming-uniform, ``a=sqrt(5)``); ``lora_B`` a
    bias-free ``1x1`` convolution ``rank -> out`` (zeros). Output:
    ``conv(x; W0, b0) + s * lora_B(lora_A(dropout(x)))``; the merged weight is
    ``W0 + s * (B A)`` reshaped to the kernel. Parameters are shared with
    ``base`` as in :class:`LoRALinear`.

    Args:
        base: The convolution to adapt (``groups=1``, ``padding_mode="zeros"``).
        rank: LoRA rank ``r`` (>= 1).
        alpha: Scaling numerator (> 0).
        dropout: Dropout probability on the adapter input, in ``[0, 1)``.
        use_rslora: Use rank-stabilised scaling ``alpha / sqrt(rank)``.

    Shape:
        - Input: ``(N, C_in, H, W)``.
        - Output: ``(N, C_out, H_out, W_out)`` as for ``base``.

    Raises:
        UnsupportedModuleError: If ``base`` is not an ``nn.Conv2d`` or uses
            ``groups > 1`` or a padding mode other than ``"zeros"``.
        ValueError: On invalid ``rank``/``alpha``/``dropout``.

    Example:
        >>> base = nn.Conv2d(3, 8, kernel_size=3, padding=1)
        >>> layer = LoRAConv2d(base, rank=2, alpha=2.0)
        >>> x = torch.randn(1, 3, 8, 8)
        >>> torch.equal(layer(x), base(x))
        True
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
    ) -> None:
        if isinstance(base, nn.Conv2d) and (base.groups != 1 or base.padding_mode != "zeros"):
            raise UnsupportedModuleError(
                f"LoRAConv2d supports groups=1 and padding_mode='zeros', got groups={base.groups}, "
                f"padding_mode={base.padding_mode!r}. Exclude this layer from the targets."
            )
        super().__init__(base, rank=rank, alpha=alpha, dropout=dropout, use_rslora=use_rslora)
        self.in_channels, self.out_channels = base.in_channels, base.out_channels
        self.kernel_size = cast(tuple[int, int], base.kernel_size)
        self.stride = cast(tuple[int, int], base.stride)
        self.padding = cast("tuple[int, int] | str", base.padding)
        self.dilation = cast(tuple[int, int], base.dilation)
        self.lora_A: nn.Conv2d = nn.Conv2d(
            base.in_channels, rank, self.kernel_size, stride=self.stride, padding=self.padding,
            dilation=self.dilation, bias=False, device=base.weight.device, dtype=base.weight.dtype,
        )  # fmt: skip
        self.lora_B: nn.Conv2d = nn.Conv2d(
            rank, base.out_channels, 1, bias=False, device=base.weight.device,
            dtype=base.weight.dtype,
        )  # fmt: skip
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)

    def _shape_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"

    def _b_matrix(self) -> Tensor:
        return self.lora_B.weight.flatten(1)  # (out, r, 1, 1) -> (out, r)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        # (N, out, H', W')
        w, pad = self.base_weight, self.padding
        out = F.conv2d(x, w, self.bias, self.stride, pad, self.dilation)
        if self.merged:
            return out
        return out.add_(self.lora_B(self.lora_A(self.lora_dropout(x))), alpha=self.scaling)


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
