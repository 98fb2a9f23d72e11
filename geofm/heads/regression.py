"""Regression head: linear, or SpectralEarth's MLP.

SpectralEarth trains it with the relative MSE, :class:`geofm.losses.RelativeMSELoss`.

References:
    Braham et al., "SpectralEarth", arXiv:2408.08447;
    https://github.com/AABNassim/spectral_earth (``src/models/regression_module.py``,
    Hyperview soil-parameter regression: BN1d -> 2048 -> 1024 MLP, dropout 0.2).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from geofm._registry import register_module
from geofm.errors import ShapeError

__all__ = ["RegressionHead"]


@register_module()
class RegressionHead(nn.Module):
    """Linear or MLP head that maps pooled embeddings to regression outputs.

    With no ``hidden_features`` it is a single ``Linear`` (EcoVision-LoRA:
    768 -> 1 on the DINOv2 CLS token). With hidden layers each one is
    Linear -> ReLU -> Dropout. :meth:`spectral_earth` builds SpectralEarth's
    Hyperview head: BN1d -> 2048 -> 1024 (dropout 0.2) -> outputs.

    Args:
        in_features: Embedding width ``D``.
        out_features: Number of regression targets.
        hidden_features: Widths of the hidden layers, in order.
        dropout: Dropout probability after each hidden ReLU.
        use_input_norm: Apply ``BatchNorm1d(in_features)`` first.

    Shape:
        - Input: ``(N, in_features)``.
        - Output: ``(N, out_features)``.

    Raises:
        ShapeError: In ``forward``, if the input is not ``(N, in_features)``.

    Example:
        >>> import torch
        >>> RegressionHead(in_features=8, out_features=1)(torch.randn(2, 8)).shape
        torch.Size([2, 1])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        hidden_features: Sequence[int] = (),
        dropout: float = 0.0,
        use_input_norm: bool = False,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        layers: list[nn.Module] = [nn.BatchNorm1d(in_features)] if use_input_norm else []
        width = in_features
        for hidden in hidden_features:
            layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = hidden
        layers.append(nn.Linear(width, out_features))
        self.layers = nn.Sequential(*layers)

    @classmethod
    def spectral_earth(cls, in_features: int, out_features: int = 4) -> RegressionHead:
        """SpectralEarth's Hyperview head: BN1d -> 2048 -> 1024 (ReLU, dropout 0.2) -> outputs.

        Args:
            in_features: Embedding width ``D``.
            out_features: Number of targets (Hyperview: 4 soil parameters).

        Returns:
            The head.

        Example:
            >>> from torch import nn
            >>> head = RegressionHead.spectral_earth(in_features=16)
            >>> [m.out_features for m in head.layers if isinstance(m, nn.Linear)]
            [2048, 1024, 4]
        """
        return cls(
            in_features,
            out_features,
            hidden_features=(2048, 1024),
            dropout=0.2,
            use_input_norm=True,
        )

    def forward(self, x: Tensor) -> Tensor:
        """Regression outputs for embeddings ``x``."""
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ShapeError(
                f"RegressionHead expects (N, {self.in_features}) embeddings, got "
                f"{tuple(x.shape)}. Pool backbone features first (e.g. backbone.embed(x))."
            )
        out: Tensor = self.layers(x)
        return out
