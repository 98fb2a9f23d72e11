"""Regression head (linear or SpectralEarth's MLP) and SpectralEarth's relative-MSE loss.

References:
    Braham et al., "SpectralEarth", arXiv:2408.08447;
    https://github.com/AABNassim/spectral_earth (``src/models/regression_module.py``,
    Hyperview soil-parameter regression: BN1d -> 2048 -> 1024 MLP, dropout 0.2,
    loss = mean over targets of MSE(model) / MSE(baseline)).
    Nalepa et al., "The Hyperview Challenge", ICIP 2022 (the relative-MSE score).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from geofm.errors import ShapeError

__all__ = ["RegressionHead", "RelativeMSELoss", "relative_mse_loss"]


def relative_mse_loss(
    pred: Tensor, target: Tensor, *, baseline: Tensor | None = None, eps: float = 1e-12
) -> Tensor:
    """Mean over outputs of the model's MSE divided by a constant baseline's MSE.

    ``loss = mean_j [ mean_n (pred_nj - y_nj)^2 / (mean_n (b_j - y_nj)^2 + eps) ]``.
    With standardised targets the baseline ``b`` is 0 (SpectralEarth), so a
    loss below 1 beats predicting the mean.

    Args:
        pred: Predictions.
        target: Targets, same shape as ``pred``.
        baseline: Constant prediction per output ``(D,)`` (or a scalar);
            ``None`` means 0.
        eps: Added to each baseline MSE so an all-zero target column gives a
            large finite loss instead of a division by zero.

    Returns:
        Scalar loss.

    Shape:
        - pred, target: ``(N, D)`` or ``(N,)``.
        - baseline: ``(D,)`` or ``()``.

    Raises:
        ShapeError: If ``pred`` and ``target`` differ in shape or are not 1-D/2-D.

    Example:
        >>> import torch
        >>> y = torch.tensor([[1.0, -2.0], [-1.0, 2.0]])
        >>> float(relative_mse_loss(torch.zeros(2, 2), y))
        1.0
        >>> float(relative_mse_loss(y, y))
        0.0
    """
    if pred.shape != target.shape or pred.ndim not in (1, 2):
        raise ShapeError(
            f"relative_mse_loss needs pred and target of the same (N, D) or (N,) shape, got "
            f"{tuple(pred.shape)} and {tuple(target.shape)}."
        )
    reference = torch.zeros_like(target) if baseline is None else baseline.expand_as(target)
    model_mse = (pred - target).pow(2).mean(dim=0)  # (D,)
    baseline_mse = (reference - target).pow(2).mean(dim=0)  # (D,)
    return (model_mse / (baseline_mse + eps)).mean()


class RelativeMSELoss(nn.Module):
    """Module form of :func:`relative_mse_loss`.

    Args:
        baseline: Constant prediction per output ``(D,)``, or ``None`` for 0.
            Stored as a buffer so it follows ``.to(device)``.
        eps: Added to each baseline MSE.

    Shape:
        - Input: ``pred`` and ``target`` of shape ``(N, D)`` or ``(N,)``.
        - Output: scalar.

    Raises:
        ShapeError: In ``forward``, if the shapes differ.

    Example:
        >>> import torch
        >>> loss = RelativeMSELoss()
        >>> float(loss(torch.zeros(3, 4), torch.ones(3, 4)))
        1.0
    """

    baseline: Tensor | None

    def __init__(self, *, baseline: Tensor | None = None, eps: float = 1e-12) -> None:
        super().__init__()
        self.register_buffer("baseline", None if baseline is None else baseline.detach().clone())
        self.eps = eps

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """Loss of ``pred`` against ``target``."""
        return relative_mse_loss(pred, target, baseline=self.baseline, eps=self.eps)


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
            >>> head = RegressionHead.spectral_earth(in_features=16)
            >>> [m.out_features for m in head.layers if isinstance(m, torch.nn.Linear)]
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
