"""Projection heads for self-supervised learning: VICReg, MoCo, SimCLR, DINO.

References:
    - VICReg expander "8192-8192-8192": https://arxiv.org/abs/2105.04906,
      https://github.com/facebookresearch/vicreg (``main_vicreg.py``, ``Projector``).
    - MoCo v2 head: https://arxiv.org/abs/2003.04297.
    - SimCLR head: https://arxiv.org/abs/2002.05709, https://arxiv.org/abs/2006.10029.
    - DINO head: https://arxiv.org/abs/2104.14294,
      https://github.com/facebookresearch/dino (``vision_transformer.py``, ``DINOHead``).
    - lightly (same heads): https://github.com/lightly-ai/lightly
      (``lightly/models/modules/heads.py``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from geofm._registry import register_module

__all__ = [
    "DINOProjectionHead",
    "MoCoProjectionHead",
    "SimCLRProjectionHead",
    "VICRegProjectionHead",
]


@register_module()
class VICRegProjectionHead(nn.Module):
    """VICReg expander: ``[Linear-BN-ReLU] * (k - 1)``, then ``Linear`` without bias.

    Same layout as the reference ``Projector`` (hidden ``Linear`` layers keep
    their bias; lightly's ``VICRegProjectionHead`` also gives the last layer a
    bias). Build it from the reference's spec string with :meth:`from_spec`.

    Args:
        input_dim: Backbone embedding dimension (ResNet-18: 512, ResNet-50: 2048).
        dims: Output sizes of the ``k`` linear layers (reference: 8192, 8192, 8192).

    Shape:
        - Input: ``(N, input_dim)``.
        - Output: ``(N, dims[-1])``.

    Raises:
        ValueError: If ``dims`` is empty or holds a non-positive size.

    Example:
        >>> head = VICRegProjectionHead(input_dim=16, dims=(32, 32, 8))
        >>> head(torch.randn(4, 16)).shape
        torch.Size([4, 8])
    """

    def __init__(self, *, input_dim: int, dims: Sequence[int] = (8192, 8192, 8192)) -> None:
        super().__init__()
        if len(dims) == 0 or min(dims) <= 0 or input_dim <= 0:
            raise ValueError(
                f"VICRegProjectionHead got input_dim={input_dim}, dims={tuple(dims)}; expected "
                "positive sizes and at least one layer, e.g. dims=(8192, 8192, 8192)."
            )
        layers: list[nn.Module] = []
        sizes = [input_dim, *dims]
        for in_dim, out_dim in itertools.pairwise(sizes[:-1]):
            layers += [nn.Linear(in_dim, out_dim), nn.BatchNorm1d(out_dim), nn.ReLU(inplace=True)]
        layers.append(nn.Linear(sizes[-2], sizes[-1], bias=False))
        self.layers = nn.Sequential(*layers)

    @classmethod
    def from_spec(cls, spec: str, *, input_dim: int) -> VICRegProjectionHead:
        """Build the head from a spec string such as ``"8192-8192-8192"``.

        Args:
            spec: Layer output sizes joined by ``-`` (the reference's ``--mlp``).
            input_dim: Backbone embedding dimension.

        Returns:
            The projection head.

        Raises:
            ValueError: If ``spec`` is not dash-separated positive integers.

        Example:
            >>> head = VICRegProjectionHead.from_spec("64-64-32", input_dim=16)
            >>> head(torch.randn(2, 16)).shape
            torch.Size([2, 32])
        """
        parts = spec.split("-")
        if not all(part.isdigit() and int(part) > 0 for part in parts):
            raise ValueError(
                f"VICRegProjectionHead.from_spec got spec={spec!r}; expected positive integers "
                "joined by '-', e.g. '8192-8192-8192'."
            )
        return cls(input_dim=input_dim, dims=[int(part) for part in parts])

    def forward(self, x: Tensor) -> Tensor:
        """Project embeddings ``(N, input_dim)`` to ``(N, dims[-1])``."""
        return cast(Tensor, self.layers(x))


@register_module()
class MoCoProjectionHead(nn.Module):
    """MoCo projection head: ``[Linear-(BN)-ReLU] * (k - 1)``, then ``Linear-(BN)``.

    MoCo v2: 2 layers, 2048 hidden, 128 out, no BN (``Linear`` with bias).
    SpectralEarth uses ``use_batch_norm=True`` (``Linear`` without bias, each
    followed by BN, the last BN included), lightly's layout, so the
    ``state_dict`` matches lightly's ``MoCoProjectionHead``.

    Args:
        input_dim: Backbone embedding dimension (Spec-RN50: 2048; ViT-S: 384).
        hidden_dim: Hidden width (2048).
        output_dim: Output width (128).
        num_layers: Number of linear layers, ``>= 2`` (MoCo v3: 3).
        use_batch_norm: BatchNorm after every linear layer.

    Shape:
        - Input: ``(N, input_dim)``.
        - Output: ``(N, output_dim)``.

    Raises:
        ValueError: If ``num_layers < 2``.

    Example:
        >>> head = MoCoProjectionHead(input_dim=16, hidden_dim=32, output_dim=8)
        >>> head(torch.randn(4, 16)).shape
        torch.Size([4, 8])
    """

    def __init__(
        self,
        *,
        input_dim: int,
        hidden_dim: int = 2048,
        output_dim: int = 128,
        num_layers: int = 2,
        use_batch_norm: bool = False,
    ) -> None:
        super().__init__()
        if num_layers < 2:
            raise ValueError(
                f"{type(self).__name__} got num_layers={num_layers}; expected 2 or more "
                "(2 for MoCo v2 / SimCLR v1, 3 for MoCo v3 / SimCLR v2)."
            )
        # Linear[-BN]-ReLU blocks, then Linear[-BN]; Linear bias only without BN (lightly's layout).
        layers: list[nn.Module] = []
        dims = [input_dim] + [hidden_dim] * (num_layers - 1) + [output_dim]
        for index, (in_dim, out_dim) in enumerate(itertools.pairwise(dims)):
            layers.append(nn.Linear(in_dim, out_dim, bias=not use_batch_norm))
            if use_batch_norm:
                layers.append(nn.BatchNorm1d(out_dim))
            if index < num_layers - 1:
                layers.append(nn.ReLU(inplace=True))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Project embeddings ``(N, input_dim)`` to ``(N, output_dim)``."""
        return cast(Tensor, self.layers(x))


class SimCLRProjectionHead(MoCoProjectionHead):
    """SimCLR projection head ``g(h)``: :class:`MoCoProjectionHead` with BN on by default.

    Same layout and defaults as lightly's ``SimCLRProjectionHead`` (BN on
    every layer as in SimCLR v2's code; ``use_batch_norm=False`` gives the
    v1 MLP ``W2 relu(W1 h)``; SimCLR v2 uses ``num_layers=3``).

    Args:
        input_dim: Backbone embedding dimension.
        use_batch_norm: BatchNorm after every linear layer (on by default).
        **kwargs: ``hidden_dim`` (2048), ``output_dim`` (128) and ``num_layers``
            (2), as for :class:`MoCoProjectionHead`.

    Shape:
        - Input: ``(N, input_dim)``.
        - Output: ``(N, output_dim)``.

    Raises:
        ValueError: If ``num_layers < 2``.

    Example:
        >>> head = SimCLRProjectionHead(input_dim=16, hidden_dim=32, output_dim=8)
        >>> head(torch.randn(4, 16)).shape, isinstance(head.layers[1], nn.BatchNorm1d)
        (torch.Size([4, 8]), True)
    """

    def __init__(self, *, input_dim: int, use_batch_norm: bool = True, **kwargs: int) -> None:
        super().__init__(input_dim=input_dim, use_batch_norm=use_batch_norm, **kwargs)


@register_module()
class DINOProjectionHead(nn.Module):
    """DINO head: MLP (GELU) to a bottleneck, L2-normalise, weight-normalised ``Linear``.

    MLP linears are initialised with a truncated normal (std 0.02) and zero
    bias. The last layer is ``weight_norm(Linear(bottleneck, output, no bias))``
    with its norm ``g`` set to 1 and, when ``normalize_last_layer=True``,
    frozen (DINO's ``norm_last_layer``). For the first
    ``freeze_last_layer_epochs`` epochs call
    :meth:`cancel_last_layer_gradients` between ``backward()`` and the
    optimiser step (DINO freezes it for epoch 0).

    SpectralEarth: ``hidden_dim=2048, bottleneck_dim=256, output_dim=128``.

    Args:
        input_dim: Backbone embedding dimension.
        hidden_dim: MLP width (2048).
        bottleneck_dim: Width before the normalised layer (256).
        output_dim: Number of prototypes ``K`` (DINO 65,536).
        num_layers: Linear layers in the MLP, ``>= 1`` (3).
        use_batch_norm: BatchNorm after the hidden linears (off for ViTs).
        normalize_last_layer: Freeze ``g = 1`` so weight rows have unit norm.
        freeze_last_layer_epochs: Epochs during which
            :meth:`cancel_last_layer_gradients` drops the last layer's gradients.

    Shape:
        - Input: ``(N, input_dim)``.
        - Output: ``(N, output_dim)``.

    Raises:
        ValueError: If ``num_layers < 1`` or ``freeze_last_layer_epochs < 0``.

    Example:
        >>> head = DINOProjectionHead(input_dim=16, hidden_dim=32, bottleneck_dim=8,
        ...                           output_dim=64)
        >>> head(torch.randn(4, 16)).shape
        torch.Size([4, 64])
    """

    def __init__(
        self,
        *,
        input_dim: int,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        output_dim: int = 65536,
        num_layers: int = 3,
        use_batch_norm: bool = False,
        normalize_last_layer: bool = True,
        freeze_last_layer_epochs: int = 1,
    ) -> None:
        super().__init__()
        if num_layers < 1 or freeze_last_layer_epochs < 0:
            raise ValueError(
                f"DINOProjectionHead got num_layers={num_layers}, freeze_last_layer_epochs="
                f"{freeze_last_layer_epochs}; expected num_layers >= 1 and "
                "freeze_last_layer_epochs >= 0."
            )
        layers: list[nn.Module] = []
        sizes = [input_dim] + [hidden_dim] * (num_layers - 1) + [bottleneck_dim]
        for index, (in_dim, out_dim) in enumerate(itertools.pairwise(sizes)):
            layers.append(nn.Linear(in_dim, out_dim))
            if index < num_layers - 1:
                if use_batch_norm:
                    layers.append(nn.BatchNorm1d(out_dim))
                layers.append(nn.GELU())
        self.layers = nn.Sequential(*layers)
        for module in self.layers:
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
        self.last_layer = weight_norm(nn.Linear(bottleneck_dim, output_dim, bias=False))
        norm = self._last_layer_norm()
        with torch.no_grad():
            norm.fill_(1.0)
        norm.requires_grad_(not normalize_last_layer)
        self.freeze_last_layer_epochs = freeze_last_layer_epochs

    def _last_layer_norm(self) -> nn.Parameter:
        """The weight-norm magnitude ``g``, ``(output_dim, 1)``."""
        parametrizations = cast(nn.Module, self.last_layer.parametrizations)
        weight = cast(nn.Module, parametrizations.weight)
        return cast(nn.Parameter, weight.original0)

    def cancel_last_layer_gradients(self, *, epoch: int) -> None:
        """Drop the last layer's gradients while ``epoch < freeze_last_layer_epochs``.

        Call after ``loss.backward()`` and before ``optimizer.step()``; with
        ``grad=None`` the optimiser skips the parameters (no weight decay either).

        Args:
            epoch: Zero-based current epoch.

        Example:
            >>> head = DINOProjectionHead(input_dim=4, hidden_dim=8, bottleneck_dim=4,
            ...                           output_dim=8, freeze_last_layer_epochs=1)
            >>> head(torch.randn(2, 4)).sum().backward()
            >>> head.cancel_last_layer_gradients(epoch=0)
            >>> [p.grad for p in head.last_layer.parameters()]
            [None, None]
        """
        if epoch < self.freeze_last_layer_epochs:
            for parameter in self.last_layer.parameters():
                parameter.grad = None

    def forward(self, x: Tensor) -> Tensor:
        """Project embeddings ``(N, input_dim)`` to ``(N, output_dim)`` logits."""
        x = F.normalize(self.layers(x), dim=-1)  # (N, bottleneck_dim)
        return cast(Tensor, self.last_layer(x))
