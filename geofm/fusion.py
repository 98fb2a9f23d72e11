"""Fusion of a visual feature map with a spectral feature map (Fusion-LoRA's CAF and GLF).

- :class:`CrossAttentionFusion` (CAF): tokens of the visual map attend to
  tokens of the spectral map (queries visual, keys / values spectral), with a
  residual connection and a feed-forward block; the output keeps the visual
  map's shape.
- :class:`GatedLateFusion` (GLF): a per-pixel, per-channel sigmoid gate mixes
  the fused map and the visual map, ``g * fused + (1 - g) * visual``.
- :class:`RandomBaseLoRALinear`: Fusion-LoRA's ``LoRALayer``, a linear layer
  whose base weight is random and frozen, with a trainable bias and a
  trainable low-rank update (both factors drawn from N(0, 0.01^2)).

Fusion-LoRA uses them as ``GLF(CAF(visual, spectral), visual)`` on 1024-channel
24x24 maps of a frozen SkySense-O encoder. Its quirks are options here: the
projections are plain trainable ``nn.Linear`` by default and the source's
frozen-random-base LoRA layers with ``projection="random_lora"``, the
feed-forward width is configurable (source: ``C``), the two maps may have
different token counts (source: equal), and the query residual may use the
raw instead of the normalised query (source: normalised).

Reference: Fusion-LoRA, ``fusion_lora/caf_module.py``, ``fusion_lora/glf_module.py`` and
``fusion_lora/lora_layers.py`` of https://github.com/Eyobed-Abby/fusion-lora-skysense
(re-implemented; key names ``q_proj``, ``norm1``, ``ffn.0``, ``gate_conv.0`` ... follow
the source).

Example:
    >>> import torch
    >>> caf = CrossAttentionFusion(embed_dim=32, num_heads=4)
    >>> glf = GatedLateFusion(channels=32)
    >>> visual, spectral = torch.randn(2, 32, 6, 6), torch.randn(2, 32, 3, 3)
    >>> glf(caf(visual, spectral), visual).shape
    torch.Size([2, 32, 6, 6])
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geofm.errors import ShapeError

__all__ = ["CrossAttentionFusion", "GatedLateFusion", "RandomBaseLoRALinear"]


def _check_map(x: Tensor, *, owner: str, label: str, channels: int) -> None:
    if x.ndim != 4:
        raise ShapeError(
            f"{owner} expects the {label} map as a (N, C, H, W) tensor, got shape "
            f"{tuple(x.shape)}. Reshape token sequences (N, L, C) to maps first."
        )
    if x.shape[1] != channels:
        raise ShapeError(
            f"{owner} was built for {channels} channels but the {label} map has "
            f"{x.shape[1]} (shape {tuple(x.shape)}). Project it to {channels} channels "
            "(e.g. with a 1x1 Conv2d) or build the module for its width."
        )


class RandomBaseLoRALinear(nn.Module):
    """Linear layer with a frozen *random* base weight plus a trainable low-rank update.

    Fusion-LoRA's ``LoRALayer`` (used for the CAF projections and the
    classifier of its main branch). Unlike LoRA on a pretrained layer
    (:class:`geofm.lora.LoRALinear`), the base weight ``W`` is not copied from
    anywhere: it is drawn like ``nn.Linear``'s (Kaiming-uniform, ``a = sqrt(5)``,
    so ``U(-1/sqrt(in), 1/sqrt(in))``) and frozen. The bias ``b`` is trainable,
    and both low-rank factors are drawn from ``N(0, init_std^2)`` (``B`` is
    *not* zero, so the layer is ``W x + b`` plus a small random update from the
    start):

    ``y = x W^T + b + (alpha / rank) * (dropout(x) A^T) B^T``

    ``W`` stays a ``Parameter`` with ``requires_grad=False``, so it is in the
    state dict (a reload reproduces the same random base) but not trained.

    Reference: Fusion-LoRA ``fusion_lora/lora_layers.py``
    (https://github.com/Eyobed-Abby/fusion-lora-skysense).

    Args:
        in_features: Input width.
        out_features: Output width.
        rank: Rank ``r`` of the update (source: 8).
        alpha: Scaling numerator; the update is multiplied by ``alpha / rank``
            (source: 1.0, so 0.125 at rank 8).
        dropout: Dropout probability on the update's input (source: 0).
        use_bias: Trainable bias (source: yes).
        init_std: Standard deviation of ``A`` and ``B`` at init (source: 0.01).

    Shape:
        - Input: ``(*, in_features)``.
        - Output: ``(*, out_features)``.

    Raises:
        ValueError: If a width or the rank is not positive, ``alpha`` or
            ``init_std`` is not positive, or ``dropout`` is not in ``[0, 1)``.

    Example:
        >>> layer = RandomBaseLoRALinear(1024, 1024, rank=8)
        >>> sum(p.numel() for p in layer.parameters() if p.requires_grad)
        17408
        >>> layer(torch.randn(2, 5, 1024)).shape
        torch.Size([2, 5, 1024])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        rank: int = 8,
        alpha: float = 1.0,
        dropout: float = 0.0,
        use_bias: bool = True,
        init_std: float = 0.01,
    ) -> None:
        super().__init__()
        if in_features <= 0 or out_features <= 0 or rank <= 0:
            raise ValueError(
                "RandomBaseLoRALinear sizes must be positive, got "
                f"in_features={in_features}, out_features={out_features}, rank={rank}."
            )
        if not (alpha > 0 and init_std > 0 and 0.0 <= dropout < 1.0):
            raise ValueError(
                "RandomBaseLoRALinear needs alpha > 0, init_std > 0 and dropout in [0, 1), got "
                f"alpha={alpha}, init_std={init_std}, dropout={dropout}."
            )
        self.in_features, self.out_features = in_features, out_features
        self.rank, self.alpha = rank, alpha
        self.scaling = alpha / rank
        weight = torch.empty(out_features, in_features)
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5))  # nn.Linear's draw, then frozen
        self.weight = nn.Parameter(weight, requires_grad=False)
        if use_bias:
            bound = 1.0 / math.sqrt(in_features)
            self.bias: nn.Parameter | None = nn.Parameter(
                torch.empty(out_features).uniform_(-bound, bound)
            )
        else:
            self.bias = None
        self.lora_A = nn.Parameter(torch.randn(rank, in_features) * init_std)
        self.lora_B = nn.Parameter(torch.randn(out_features, rank) * init_std)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """``x W^T + b + (alpha / rank) (dropout(x) A^T) B^T``.

        Args:
            x: Input ``(*, in_features)``.

        Returns:
            Output ``(*, out_features)``.

        Example:
            >>> layer = RandomBaseLoRALinear(4, 3, rank=2)
            >>> layer(torch.zeros(1, 4)).shape
            torch.Size([1, 3])
        """
        base = F.linear(x, self.weight, self.bias)  # (*, out)
        update = F.linear(F.linear(self.dropout(x), self.lora_A), self.lora_B)  # (*, out)
        return base + self.scaling * update

    def extra_repr(self) -> str:  # noqa: D102
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"rank={self.rank}, alpha={self.alpha}, bias={self.bias is not None}"
        )


class CrossAttentionFusion(nn.Module):
    """Cross-attention fusion (CAF): visual tokens attend to spectral tokens.

    With ``V`` the visual and ``S`` the spectral map flattened to tokens:
    ``Q = LN1(V)``, ``K = V' = LN_kv(S)`` (``LN_kv`` is ``LN1`` when
    ``share_norm``, as in the source), multi-head attention
    ``A = softmax(W_q Q (W_k K)^T / sqrt(d_h)) W_v V'``,
    ``Y = R + W_o A`` with ``R = Q`` (``query_residual="normalized"``, source)
    or ``R = V`` (``"input"``), then ``Y = Y + FFN(LN2(Y))`` with
    ``FFN = Linear(C, F) -> act -> Linear(F, C)``; ``Y`` is reshaped back to
    the visual map's ``(N, C, H, W)``.

    The four projections ``W_q, W_k, W_v, W_o`` are plain trainable
    ``nn.Linear`` layers (``projection="linear"``, the default) or, as in the
    source, :class:`RandomBaseLoRALinear` layers (``projection="random_lora"``:
    random frozen base weight, trainable bias, rank-``lora_rank`` update with
    both factors from N(0, 0.01^2), scaled by ``lora_alpha / lora_rank``).
    With ``embed_dim=1024`` the default has 6,301,696 parameters, all
    trainable; ``projection="random_lora"`` has the source's 2,172,928
    trainable ones (the four frozen ``1024x1024`` base weights aside).

    Reference: Fusion-LoRA ``fusion_lora/caf_module.py``
    (https://github.com/Eyobed-Abby/fusion-lora-skysense).

    Args:
        embed_dim: Channels ``C`` of both maps.
        num_heads: Attention heads (must divide ``embed_dim``; source: 8).
        ffn_hidden_dim: Hidden width ``F`` of the feed-forward block;
            ``None`` means ``embed_dim`` (the source's choice; ViTs use ``4 C``).
        act_layer: Activation class of the feed-forward block (source: ``nn.ReLU``).
        share_norm: Use one LayerNorm for queries, keys and values (source) or
            a separate ``norm_kv`` for the spectral tokens.
        query_residual: Add the attention output to the ``"normalized"``
            query (source) or to the ``"input"`` visual tokens.
        require_equal_tokens: Reject maps whose token counts differ, as the
            source implicitly does; by default any spectral grid size works.
        use_bias: Bias in the four projections.
        projection: ``"linear"`` (trainable ``nn.Linear``) or ``"random_lora"``
            (the source's :class:`RandomBaseLoRALinear`).
        lora_rank: Rank of the ``"random_lora"`` projections (source: 8).
        lora_alpha: Scaling numerator of the ``"random_lora"`` projections
            (source: 1.0).

    Shape:
        - Visual input: ``(N, C, H, W)``.
        - Spectral input: ``(N, C, H_s, W_s)`` (``H_s * W_s`` may differ from ``H * W``).
        - Output: ``(N, C, H, W)``.

    Raises:
        ValueError: If ``embed_dim`` is not divisible by ``num_heads``, a size is
            not positive, or ``query_residual`` or ``projection`` is unknown.
        ShapeError: In ``forward``, for maps that are not 4-D, have the wrong
            channel count, different batch sizes, or (with
            ``require_equal_tokens``) different token counts.

    Example:
        >>> caf = CrossAttentionFusion(embed_dim=16, num_heads=2, ffn_hidden_dim=64)
        >>> caf(torch.randn(1, 16, 4, 4), torch.randn(1, 16, 8, 8)).shape
        torch.Size([1, 16, 4, 4])
        >>> source = CrossAttentionFusion(embed_dim=1024, projection="random_lora")
        >>> sum(p.numel() for p in source.parameters() if p.requires_grad)
        2172928
    """

    def __init__(
        self,
        *,
        embed_dim: int,
        num_heads: int = 8,
        ffn_hidden_dim: int | None = None,
        act_layer: type[nn.Module] = nn.ReLU,
        share_norm: bool = True,
        query_residual: Literal["normalized", "input"] = "normalized",
        require_equal_tokens: bool = False,
        use_bias: bool = True,
        projection: Literal["linear", "random_lora"] = "linear",
        lora_rank: int = 8,
        lora_alpha: float = 1.0,
    ) -> None:
        super().__init__()
        hidden = embed_dim if ffn_hidden_dim is None else ffn_hidden_dim
        if embed_dim <= 0 or num_heads <= 0 or hidden <= 0:
            raise ValueError(
                "CrossAttentionFusion sizes must be positive, got "
                f"embed_dim={embed_dim}, num_heads={num_heads}, ffn_hidden_dim={hidden}."
            )
        if embed_dim % num_heads:
            raise ValueError(
                f"CrossAttentionFusion embed_dim={embed_dim} is not divisible by "
                f"num_heads={num_heads}. Pick a head count that divides the channel count."
            )
        if query_residual not in ("normalized", "input"):
            raise ValueError(
                "CrossAttentionFusion query_residual must be 'normalized' or 'input', "
                f"got {query_residual!r}."
            )
        if projection not in ("linear", "random_lora"):
            raise ValueError(
                "CrossAttentionFusion projection must be 'linear' or 'random_lora', "
                f"got {projection!r}."
            )
        self.projection = projection
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.share_norm = share_norm
        self.query_residual = query_residual
        self.require_equal_tokens = require_equal_tokens

        def proj() -> nn.Module:
            if projection == "random_lora":
                return RandomBaseLoRALinear(
                    embed_dim, embed_dim, rank=lora_rank, alpha=lora_alpha, use_bias=use_bias
                )
            return nn.Linear(embed_dim, embed_dim, bias=use_bias)

        self.q_proj, self.k_proj, self.v_proj, self.out_proj = proj(), proj(), proj(), proj()
        self.norm1 = nn.LayerNorm(embed_dim)
        self.norm_kv = None if share_norm else nn.LayerNorm(embed_dim)
        self.norm2 = nn.LayerNorm(embed_dim)
        self.ffn = nn.Sequential(
            nn.Linear(embed_dim, hidden), act_layer(), nn.Linear(hidden, embed_dim)
        )

    def _split_heads(self, tokens: Tensor) -> Tensor:
        n, length, _ = tokens.shape
        heads = tokens.view(n, length, self.num_heads, self.head_dim)  # (N, L, h, d)
        return heads.transpose(1, 2)  # (N, h, L, d)

    def forward(self, visual: Tensor, spectral: Tensor) -> Tensor:
        """Fuse ``spectral`` into ``visual`` by cross-attention.

        Args:
            visual: Visual feature map (queries).
            spectral: Spectral feature map (keys and values).

        Returns:
            The fused map, shaped like ``visual``.

        Raises:
            ShapeError: For maps that are not 4-D, have the wrong channel count,
                different batch sizes, or (with ``require_equal_tokens``)
                different token counts.

        Shape:
            - Visual: ``(N, C, H, W)``; spectral: ``(N, C, H_s, W_s)``.
            - Output: ``(N, C, H, W)``.

        Example:
            >>> caf = CrossAttentionFusion(embed_dim=8, num_heads=2)
            >>> caf(torch.randn(2, 8, 3, 3), torch.randn(2, 8, 3, 3)).shape
            torch.Size([2, 8, 3, 3])
        """
        owner = "CrossAttentionFusion"
        _check_map(visual, owner=owner, label="visual", channels=self.embed_dim)
        _check_map(spectral, owner=owner, label="spectral", channels=self.embed_dim)
        if visual.shape[0] != spectral.shape[0]:
            raise ShapeError(
                f"CrossAttentionFusion got batch sizes {visual.shape[0]} (visual) and "
                f"{spectral.shape[0]} (spectral). Pass maps of the same batch."
            )
        n, c, height, width = visual.shape
        if self.require_equal_tokens and spectral.shape[-2:] != visual.shape[-2:]:
            raise ShapeError(
                f"CrossAttentionFusion was built with require_equal_tokens=True but got a "
                f"{height}x{width} visual map and a {spectral.shape[2]}x{spectral.shape[3]} "
                "spectral map. Resize the spectral map to the visual grid or build the "
                "module with require_equal_tokens=False."
            )
        query_in = visual.flatten(2).transpose(1, 2)  # (N, L_q, C)
        context_in = spectral.flatten(2).transpose(1, 2)  # (N, L_s, C)
        query = self.norm1(query_in)
        context = self.norm1(context_in) if self.norm_kv is None else self.norm_kv(context_in)
        q = self._split_heads(self.q_proj(query))  # (N, h, L_q, d)
        k = self._split_heads(self.k_proj(context))  # (N, h, L_s, d)
        v = self._split_heads(self.v_proj(context))  # (N, h, L_s, d)
        attended = F.scaled_dot_product_attention(q, k, v)  # (N, h, L_q, d)
        attended = attended.transpose(1, 2).reshape(n, height * width, c)  # (N, L_q, C)
        residual = query if self.query_residual == "normalized" else query_in
        out: Tensor = residual + self.out_proj(attended)  # (N, L_q, C)
        out = out + self.ffn(self.norm2(out))  # (N, L_q, C)
        return out.transpose(1, 2).reshape(n, c, height, width)  # (N, C, H, W)


class GatedLateFusion(nn.Module):
    """Gated late fusion (GLF): a learned per-pixel, per-channel mix of two maps.

    ``g = sigmoid(Conv1x1([fused, visual]))`` (``2C -> C``, with bias) and
    ``out = g * fused + (1 - g) * visual``. At ``C = 1024`` it has 2,098,176
    parameters, as in the source. The gate conv is ``gate_conv.0`` (source layout).

    Reference: Fusion-LoRA ``fusion_lora/glf_module.py``
    (https://github.com/Eyobed-Abby/fusion-lora-skysense).

    Args:
        channels: Channels ``C`` of both maps.
        use_bias: Bias in the gate convolution (source: yes).

    Shape:
        - Fused and visual inputs: ``(N, C, H, W)`` each.
        - Output: ``(N, C, H, W)``.

    Raises:
        ValueError: If ``channels`` is not positive.
        ShapeError: In ``forward``, for maps that are not 4-D, have the wrong
            channel count or differ in shape.

    Example:
        >>> glf = GatedLateFusion(channels=1024)
        >>> sum(p.numel() for p in glf.parameters())
        2098176
        >>> GatedLateFusion(channels=4)(torch.randn(2, 4, 5, 5), torch.randn(2, 4, 5, 5)).shape
        torch.Size([2, 4, 5, 5])
    """

    def __init__(self, *, channels: int, use_bias: bool = True) -> None:
        super().__init__()
        if channels <= 0:
            raise ValueError(f"GatedLateFusion channels must be positive, got {channels}.")
        self.channels = channels
        self.gate_conv = nn.Sequential(
            nn.Conv2d(2 * channels, channels, kernel_size=1, bias=use_bias), nn.Sigmoid()
        )

    def gate(self, fused: Tensor, visual: Tensor) -> Tensor:
        """The gate ``g`` in ``(0, 1)``: the weight of ``fused`` at each pixel and channel.

        Args:
            fused: Fused map (e.g. the output of :class:`CrossAttentionFusion`).
            visual: Visual map.

        Returns:
            The gate.

        Raises:
            ShapeError: For maps that are not 4-D, have the wrong channel count
                or differ in shape.

        Shape:
            - Inputs: ``(N, C, H, W)`` each.
            - Output: ``(N, C, H, W)``.

        Example:
            >>> glf = GatedLateFusion(channels=2)
            >>> g = glf.gate(torch.randn(1, 2, 3, 3), torch.randn(1, 2, 3, 3))
            >>> bool(((g > 0) & (g < 1)).all())
            True
        """
        owner = "GatedLateFusion"
        _check_map(fused, owner=owner, label="fused", channels=self.channels)
        _check_map(visual, owner=owner, label="visual", channels=self.channels)
        if fused.shape != visual.shape:
            raise ShapeError(
                f"GatedLateFusion got a fused map of shape {tuple(fused.shape)} and a visual "
                f"map of shape {tuple(visual.shape)}. Pass maps of the same shape (resize one "
                "to the other's grid first)."
            )
        gate: Tensor = self.gate_conv(torch.cat([fused, visual], dim=1))  # (N, C, H, W)
        return gate

    def forward(self, fused: Tensor, visual: Tensor) -> Tensor:
        """Mix ``fused`` and ``visual`` with the learned gate :meth:`gate`.

        Args:
            fused: Fused map ``(N, C, H, W)``, weighted by ``g``.
            visual: Visual map of the same shape, weighted by ``1 - g``.

        Returns:
            ``g * fused + (1 - g) * visual``, shaped like the inputs.

        Raises:
            ShapeError: As :meth:`gate`.

        Example:
            >>> glf = GatedLateFusion(channels=3)
            >>> glf(torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)).abs().sum().item()
            0.0
        """
        g = self.gate(fused, visual)
        return g * fused + (1 - g) * visual
