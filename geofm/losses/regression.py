"""SpectralEarth's relative-MSE regression loss (the Hyperview challenge score).

References:
    Braham et al., "SpectralEarth", arXiv:2408.08447;
    https://github.com/AABNassim/spectral_earth (``src/models/regression_module.py``:
    loss = mean over targets of MSE(model) / MSE(baseline)).
    Nalepa et al., "The Hyperview Challenge", ICIP 2022 (the relative-MSE score).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from geofm.errors import ShapeError
from geofm.losses._common import undefined_loss_message

__all__ = ["RelativeMSELoss", "relative_mse_loss"]


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
        ShapeError: If ``pred`` and ``target`` differ in shape or are not 1-D/2-D,
            or hold no sample (the means are undefined).

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
    if pred.shape[0] == 0:
        raise ShapeError(
            undefined_loss_message(
                "relative_mse_loss",
                needs="at least 1 sample to average over",
                got=f"pred and target of shape {tuple(pred.shape)}",
                fix="Pass a non-empty batch.",
            )
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
