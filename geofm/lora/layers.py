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
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geofm.errors import GeofmError, ShapeError, UnsupportedModuleError

__all__ = ["LoRAConv2d", "LoRALinear", "UnsupportedModuleError"]


def _scaling(rank: int, alpha: float, use_rslora: bool) -> float:
    return alpha / (math.sqrt(rank) if use_rslora else rank)


def _check_hparams(rank: int, alpha: float, dropout: float) -> None:
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"rank must be an integer >= 1, got {rank!r}.")
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha!r}.")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")


class _LoRALayer(nn.Module):
    """Shared state of the wrappers: frozen base parameters, scaling, merge state."""

    bias: nn.Parameter | None

    def __init__(
        self, base: nn.Linear | nn.Conv2d, *, rank: int, alpha: float, dropout: float,
        use_rslora: bool,
    ) -> None:  # fmt: skip
        super().__init__()
        _check_hparams(rank, alpha, dropout)
        # Register the base layer's Parameter objects under their own names (no `base.` prefix).
        self._parameters["weight"] = cast(nn.Parameter, base.weight)
        self.register_parameter("bias", cast("nn.Parameter | None", base.bias))
        self.rank = rank
        self.alpha = float(alpha)
        self.use_rslora = use_rslora
        self.scaling = _scaling(rank, self.alpha, use_rslora)
        self.lora_dropout: nn.Module = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False

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

    def delta_weight(self, *, dtype: torch.dtype | None = None) -> Tensor:
        """The weight update ``s * B A``, shaped like the base weight.

        Args:
            dtype: Compute dtype (default: the adapter's).

        Returns:
            The update (differentiable with respect to ``A`` and ``B``).
        """
        raise NotImplementedError  # pragma: no cover - abstract

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


class LoRALinear(_LoRALayer):
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
        if not isinstance(base, nn.Linear):
            raise UnsupportedModuleError(
                f"LoRALinear wraps nn.Linear, got {type(base).__name__}. "
                "Use LoRAConv2d for nn.Conv2d."
            )
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

    def extra_repr(self) -> str:  # noqa: D102
        chunks = "" if self.chunks is None else f", chunks={self.chunks}"
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"rank={self.rank}, alpha={self.alpha}{chunks}, merged={self.merged}"
        )

    def delta_weight(self, *, dtype: torch.dtype | None = None) -> Tensor:
        """The update ``s * B A`` as an ``(out_features, in_features)`` matrix.

        Args:
            dtype: Compute dtype (default: the adapter's).

        Returns:
            The update; rows of chunks without an adapter are zero.

        Example:
            >>> layer = LoRALinear(nn.Linear(4, 6), rank=2, chunks=(False, True, False))
            >>> layer.delta_weight().shape
            torch.Size([6, 4])
        """
        a, b = self.lora_A.weight, self.scattered_b()
        if dtype is not None:
            a, b = a.to(dtype), b.to(dtype)
        return (b @ a) * self.scaling  # (out, n*r) @ (n*r, in) -> (out, in)

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


class LoRAConv2d(_LoRALayer):
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

    def __init__(
        self,
        base: nn.Conv2d,
        *,
        rank: int = 8,
        alpha: float = 16.0,
        dropout: float = 0.0,
        use_rslora: bool = False,
    ) -> None:
        if not isinstance(base, nn.Conv2d):
            raise UnsupportedModuleError(
                f"LoRAConv2d wraps nn.Conv2d, got {type(base).__name__}. "
                "Use LoRALinear for nn.Linear."
            )
        if base.groups != 1 or base.padding_mode != "zeros":
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

    def extra_repr(self) -> str:  # noqa: D102
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"rank={self.rank}, alpha={self.alpha}, merged={self.merged}"
        )

    def delta_weight(self, *, dtype: torch.dtype | None = None) -> Tensor:
        """The update ``s * B A`` shaped like the kernel ``(out, in, kh, kw)``.

        Args:
            dtype: Compute dtype (default: the adapter's).

        Returns:
            The update.

        Example:
            >>> LoRAConv2d(nn.Conv2d(3, 8, 3), rank=2).delta_weight().shape
            torch.Size([8, 3, 3, 3])
        """
        a, b = self.lora_A.weight, self.lora_B.weight
        if dtype is not None:
            a, b = a.to(dtype), b.to(dtype)
        delta = b.flatten(1) @ a.flatten(1)  # (out, r) @ (r, in*kh*kw) -> (out, in*kh*kw)
        return delta.view(self.base_weight.shape) * self.scaling  # (out, in, kh, kw)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        # (N, out, H', W')
        w, pad = self.base_weight, self.padding
        out = F.conv2d(x, w, self.bias, self.stride, pad, self.dilation)
        if self.merged:
            return out
        return out.add_(self.lora_B(self.lora_A(self.lora_dropout(x))), alpha=self.scaling)
