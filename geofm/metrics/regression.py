"""Regression metrics: MAE, RMSE and R^2 with float64 streaming statistics."""

from __future__ import annotations

import torch
from torch import Tensor

from geofm.errors import ShapeError
from geofm.metrics._common import (
    MultiOutput,
    check_same_shape,
)

__all__ = [
    "MeanAbsoluteError",
    "R2Score",
    "RootMeanSquaredError",
    "mean_absolute_error",
    "r2_score",
    "root_mean_squared_error",
]


class _RegressionStats:
    """Float64 running statistics per output: count, mean and M2 of targets, error sums."""

    def __init__(self, *, num_outputs: int = 1, multioutput: MultiOutput = "uniform_average"):
        if num_outputs < 1:
            raise ValueError(f"num_outputs must be at least 1, got {num_outputs}.")
        if multioutput not in ("uniform_average", "raw_values"):
            raise ValueError(
                f"multioutput must be 'uniform_average' or 'raw_values', got {multioutput!r}."
            )
        self.num_outputs = num_outputs
        self.multioutput = multioutput
        self.reset()

    def reset(self) -> None:
        """Forget every batch seen so far."""
        self._n = 0
        self._mean: Tensor | None = None
        self._m2: Tensor | None = None
        self._abs: Tensor | None = None
        self._sq: Tensor | None = None

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch of predictions and targets, ``(N,)`` or ``(N, num_outputs)``."""
        check_same_shape(type(self).__name__, preds, target)
        width = 1 if preds.ndim == 1 else preds.shape[-1]
        if preds.ndim not in (1, 2) or width != self.num_outputs:
            raise ShapeError(
                f"{type(self).__name__} expects (N,) or (N, {self.num_outputs}) inputs, got "
                f"{tuple(preds.shape)}. Set num_outputs to the number of targets."
            )
        p = preds.detach().double().reshape(len(preds), -1)  # (N, D)
        t = target.detach().double().reshape(len(target), -1)  # (N, D)
        n = len(t)
        if n == 0:
            return
        err = p - t
        batch_mean = t.mean(dim=0)
        batch_m2 = (t - batch_mean).pow(2).sum(dim=0)
        if self._mean is None or self._m2 is None or self._abs is None or self._sq is None:
            self._mean, self._m2 = batch_mean, batch_m2
            self._abs, self._sq = err.abs().sum(dim=0), err.pow(2).sum(dim=0)
        else:
            total = self._n + n
            delta = batch_mean - self._mean
            self._mean = self._mean + delta * n / total
            self._m2 = self._m2 + batch_m2 + delta.pow(2) * self._n * n / total
            self._abs = self._abs + err.abs().sum(dim=0)
            self._sq = self._sq + err.pow(2).sum(dim=0)
        self._n += n

    def _finish(self, per_output: Tensor) -> Tensor:
        return per_output if self.multioutput == "raw_values" else per_output.mean()

    def _require(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        if self._mean is None or self._m2 is None or self._abs is None or self._sq is None:
            raise ValueError(f"{type(self).__name__}.compute() called before any update.")
        return self._mean, self._m2, self._abs, self._sq


class MeanAbsoluteError(_RegressionStats):
    """Streaming mean absolute error.

    Args:
        num_outputs: Number of regression targets ``D``.
        multioutput: ``"uniform_average"`` (mean over outputs) or ``"raw_values"``.

    Shape:
        - ``update`` preds, target: ``(N,)`` or ``(N, D)``.

    Raises:
        ShapeError: In ``update``, if shapes differ or do not match ``num_outputs``.
        ValueError: In ``compute``, before any update.

    Example:
        >>> import torch
        >>> mae = MeanAbsoluteError()
        >>> mae.update(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 4.0]))
        >>> float(mae.compute())
        1.5
    """

    def compute(self) -> Tensor:
        """MAE so far.

        Returns:
            Scalar (or ``(D,)`` with ``"raw_values"``), float64.
        """
        return self._finish(self._require()[2] / self._n)


class RootMeanSquaredError(_RegressionStats):
    """Streaming root mean squared error (per output, then averaged, like scikit-learn).

    Args:
        num_outputs: Number of regression targets ``D``.
        multioutput: ``"uniform_average"`` (mean of per-output RMSE) or ``"raw_values"``.

    Shape:
        - ``update`` preds, target: ``(N,)`` or ``(N, D)``.

    Raises:
        ShapeError: In ``update``, if shapes differ or do not match ``num_outputs``.
        ValueError: In ``compute``, before any update.

    Example:
        >>> import torch
        >>> rmse = RootMeanSquaredError()
        >>> rmse.update(torch.tensor([0.0, 0.0]), torch.tensor([3.0, 4.0]))
        >>> round(float(rmse.compute()), 4)
        3.5355
    """

    def compute(self) -> Tensor:
        """RMSE so far.

        Returns:
            Scalar (or ``(D,)`` with ``"raw_values"``), float64.
        """
        return self._finish((self._require()[3] / self._n).sqrt())


class R2Score(_RegressionStats):
    """Streaming coefficient of determination R^2 = 1 - SS_res / SS_tot.

    A constant target column scores 1.0 if predicted perfectly and 0.0
    otherwise (scikit-learn's ``force_finite=True``).

    Args:
        num_outputs: Number of regression targets ``D``.
        multioutput: ``"uniform_average"`` (mean over outputs) or ``"raw_values"``.

    Shape:
        - ``update`` preds, target: ``(N,)`` or ``(N, D)``.

    Raises:
        ShapeError: In ``update``, if shapes differ or do not match ``num_outputs``.
        ValueError: In ``compute``, before any update.

    Example:
        >>> import torch
        >>> r2 = R2Score()
        >>> r2.update(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 2.0, 4.0]))
        >>> round(float(r2.compute()), 4)
        0.7857
    """

    def compute(self) -> Tensor:
        """R^2 so far.

        Returns:
            Scalar (or ``(D,)`` with ``"raw_values"``), float64.
        """
        _, m2, _, sq = self._require()
        r2 = 1 - sq / m2.clamp(min=torch.finfo(torch.float64).tiny)
        r2 = torch.where(m2 > 0, r2, (sq == 0).double())
        return self._finish(r2)


def _width(preds: Tensor) -> int:
    return 1 if preds.ndim == 1 else preds.shape[-1]


def mean_absolute_error(
    preds: Tensor, target: Tensor, *, multioutput: MultiOutput = "uniform_average"
) -> Tensor:
    """Mean absolute error of one batch.

    Args:
        preds: Predictions ``(N,)`` or ``(N, D)``.
        target: Targets, same shape.
        multioutput: ``"uniform_average"`` or ``"raw_values"`` (per output).

    Returns:
        Scalar (or ``(D,)``), float64.

    Raises:
        ShapeError: If the shapes differ or are not 1-D/2-D.
        ValueError: If the batch is empty.

    Example:
        >>> import torch
        >>> float(mean_absolute_error(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 4.0])))
        1.5
    """
    metric = MeanAbsoluteError(num_outputs=_width(preds), multioutput=multioutput)
    metric.update(preds, target)
    return metric.compute()


def root_mean_squared_error(
    preds: Tensor, target: Tensor, *, multioutput: MultiOutput = "uniform_average"
) -> Tensor:
    """Root mean squared error of one batch; arguments as in :func:`mean_absolute_error`.

    Returns:
        Scalar (or ``(D,)``), float64.

    Raises:
        ShapeError: If the shapes differ or are not 1-D/2-D.
        ValueError: If the batch is empty.

    Example:
        >>> import torch
        >>> float(root_mean_squared_error(torch.tensor([0.0]), torch.tensor([2.0])))
        2.0
    """
    metric = RootMeanSquaredError(num_outputs=_width(preds), multioutput=multioutput)
    metric.update(preds, target)
    return metric.compute()


def r2_score(
    preds: Tensor, target: Tensor, *, multioutput: MultiOutput = "uniform_average"
) -> Tensor:
    """Coefficient of determination of one batch; arguments as in :func:`mean_absolute_error`.

    Returns:
        Scalar (or ``(D,)``), float64.

    Raises:
        ShapeError: If the shapes differ or are not 1-D/2-D.
        ValueError: If the batch is empty.

    Example:
        >>> import torch
        >>> float(r2_score(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 2.0, 3.0])))
        1.0
    """
    metric = R2Score(num_outputs=_width(preds), multioutput=multioutput)
    metric.update(preds, target)
    return metric.compute()
