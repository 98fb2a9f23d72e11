"""Regression metrics: MAE, RMSE and R^2 with float64 streaming statistics.

The running statistics (count, target mean and sum of squared deviations,
absolute and squared error sums) of two batches, or of two ranks, combine
with Chan, Golub and LeVeque's pairwise update, so streamed, distributed and
one-shot results agree.

References:
    Chan, Golub and LeVeque, "Updating formulae and a pairwise algorithm for
    computing sample variances", 1979.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Concatenate, ParamSpec

import torch
from torch import Tensor

from geofm.errors import ShapeError
from geofm.metrics._common import (
    MultiOutput,
    bind_first,
    cat_over_ranks,
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

P = ParamSpec("P")


# count n, then per output: target mean, sum of squared target deviations (M2),
# sum of |error|, sum of error^2.
_Stats = tuple[int, Tensor, Tensor, Tensor, Tensor]


def _merge(a: _Stats, b: _Stats) -> _Stats:
    """Statistics of the union of two disjoint sets of rows (Chan et al.)."""
    n_a, mean_a, m2_a, abs_a, sq_a = a
    n_b, mean_b, m2_b, abs_b, sq_b = b
    if n_a == 0:
        return b
    if n_b == 0:
        return a
    total = n_a + n_b
    delta = mean_b - mean_a
    mean = mean_a + delta * n_b / total
    m2 = m2_a + m2_b + delta.pow(2) * n_a * n_b / total
    return total, mean, m2, abs_a + abs_b, sq_a + sq_b


def _unpack(row: Tensor) -> _Stats:
    """Statistics from one packed row ``[n, mean, M2, |error| sum, error^2 sum]``."""
    mean, m2, abs_sum, sq_sum = row[1:].chunk(4)  # (D,) each
    return int(row[0]), mean, m2, abs_sum, sq_sum


class _RegressionStats(ABC):
    """Float64 running statistics per output, combined over batches and ranks."""

    def __init__(
        self,
        *,
        num_outputs: int = 1,
        multioutput: MultiOutput = "uniform_average",
        sync_on_compute: bool = True,
    ) -> None:
        if num_outputs < 1:
            raise ValueError(f"num_outputs must be at least 1, got {num_outputs}.")
        if multioutput not in ("uniform_average", "raw_values"):
            raise ValueError(
                f"multioutput must be 'uniform_average' or 'raw_values', got {multioutput!r}."
            )
        self.num_outputs = num_outputs
        self.multioutput = multioutput
        self.sync_on_compute = sync_on_compute
        self.reset()

    def reset(self) -> None:
        """Forget every batch seen so far."""
        self._stats: _Stats | None = None

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch of predictions and targets, ``(N,)`` or ``(N, num_outputs)``.

        Args:
            preds: Predictions.
            target: Targets, same shape.
        """
        check_same_shape(type(self).__name__, preds, target)
        width = 1 if preds.ndim == 1 else preds.shape[-1]
        if preds.ndim not in (1, 2) or width != self.num_outputs:
            raise ShapeError(
                f"{type(self).__name__} expects (N,) or (N, {self.num_outputs}) inputs, got "
                f"{tuple(preds.shape)}. Set num_outputs to the number of targets."
            )
        if len(preds) == 0:
            return
        p = preds.detach().double().reshape(len(preds), -1)  # (N, D)
        t = target.detach().double().reshape(len(target), -1)  # (N, D)
        err = p - t  # (N, D)
        mean = t.mean(dim=0)  # (D,)
        batch = (len(t), mean, (t - mean).pow(2).sum(dim=0), err.abs().sum(0), err.pow(2).sum(0))
        self._stats = batch if self._stats is None else _merge(self._stats, batch)

    def _synced(self) -> _Stats:
        """The statistics of every rank (Chan's update over ranks), or this rank's."""
        stats = self._stats
        if stats is None:
            zeros = torch.zeros(self.num_outputs, dtype=torch.float64)
            stats = (0, zeros, zeros, zeros, zeros)
        n, *moments = stats
        row = torch.cat([torch.tensor([float(n)], device=moments[0].device), *moments])
        rows = cat_over_ranks(row[None], enabled=self.sync_on_compute)  # (W, 1 + 4 D)
        merged = _unpack(rows[0])
        for other in rows[1:]:
            merged = _merge(merged, _unpack(other))
        if merged[0] == 0:
            raise ValueError(
                f"{type(self).__name__}.compute() has no samples: call update() with a "
                "non-empty batch first."
            )
        return merged

    def _finish(self, per_output: Tensor) -> Tensor:
        return per_output if self.multioutput == "raw_values" else per_output.mean()

    @abstractmethod
    def compute(self) -> Tensor:
        """The metric so far."""


class MeanAbsoluteError(_RegressionStats):
    """Streaming mean absolute error.

    Args:
        num_outputs: Number of regression targets ``D``.
        multioutput: ``"uniform_average"`` (mean over outputs) or ``"raw_values"``.
        sync_on_compute: Combine the statistics of the ranks of the default
            process group in ``compute()`` (so every rank must call it);
            ``False`` keeps each rank's own. No effect outside a process group.

    Shape:
        - ``update`` preds, target: ``(N,)`` or ``(N, D)``.

    Raises:
        ShapeError: In ``update``, if shapes differ or do not match ``num_outputs``.
        ValueError: In ``compute``, before any non-empty update.

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
        n, _, _, abs_sum, _ = self._synced()
        return self._finish(abs_sum / n)


class RootMeanSquaredError(_RegressionStats):
    """Streaming root mean squared error (per output, then averaged, like scikit-learn).

    Arguments as in :class:`MeanAbsoluteError` (``"uniform_average"`` averages
    the per-output RMSE), and so are the shapes and errors.

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
        n, _, _, _, sq_sum = self._synced()
        return self._finish((sq_sum / n).sqrt())


class R2Score(_RegressionStats):
    """Streaming coefficient of determination R^2 = 1 - SS_res / SS_tot.

    A constant target column scores 1.0 if predicted perfectly and 0.0
    otherwise (scikit-learn's ``force_finite=True``). A NaN among the
    predictions or targets makes the result NaN (never a finite stand-in).
    Arguments as in :class:`MeanAbsoluteError`, and so are the shapes and errors.

    Example:
        >>> import torch
        >>> r2 = R2Score()
        >>> r2.update(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 2.0, 4.0]))
        >>> round(float(r2.compute()), 4)
        0.7857
        >>> r2.update(torch.tensor([1.0]), torch.tensor([float("nan")]))
        >>> r2.compute()
        tensor(nan, dtype=torch.float64)
    """

    def compute(self) -> Tensor:
        """R^2 so far.

        Returns:
            Scalar (or ``(D,)`` with ``"raw_values"``), float64.
        """
        _, _, m2, _, sq = self._synced()
        r2 = 1 - sq / m2.clamp(min=torch.finfo(torch.float64).tiny)
        r2 = torch.where(m2 > 0, r2, (sq == 0).double())  # constant target column
        # NaN compares False above: keep it NaN instead of the constant-column value.
        r2 = torch.where(m2.isnan() | sq.isnan(), math.nan, r2)
        return self._finish(r2)


def _of_batch(
    metric: type[_RegressionStats],
    preds: Tensor,
    target: Tensor,
    *,
    multioutput: MultiOutput = "uniform_average",
) -> Tensor:
    """The shared body of the one-shot regression functions."""
    width = 1 if preds.ndim == 1 else preds.shape[-1]
    # One-shot functions measure the batch they are given: no collective.
    stream = metric(num_outputs=width, multioutput=multioutput, sync_on_compute=False)
    stream.update(preds, target)
    return stream.compute()


_DOC = """{summary} of one batch (see :class:`{metric}`).

    Args:
        preds: Predictions ``(N,)`` or ``(N, D)``.
        target: Targets, same shape.
        multioutput: ``"uniform_average"`` (mean over outputs) or
            ``"raw_values"`` (one value per output).

    Returns:
        Scalar (or ``(D,)``), float64; NaN where the inputs hold a NaN.

    Shape:
        - preds, target: ``(N,)`` or ``(N, D)``.

    Raises:
        ShapeError: If the shapes differ or are not 1-D/2-D.
        ValueError: If the batch is empty.

    Example:
        >>> import torch
        >>> preds = torch.tensor([[1.0, 2.0], [2.0, 0.0], [4.0, 1.0]])
        >>> target = torch.tensor([[0.0, 2.0], [2.0, 1.0], [2.0, 3.0]])
        >>> per_output = {name}(preds, target, multioutput="raw_values")  # (D,) = (2,)
        >>> bool(torch.isclose({name}(preds, target), per_output.mean()))  # uniform_average
        True
        >>> target[1, 0] = float("nan")
        >>> {name}(preds, target, multioutput="raw_values").isnan().tolist()  # NaN in, NaN out
        [True, False]
    """


def _bind(
    function: Callable[Concatenate[type[_RegressionStats], P], Tensor],
    metric: type[_RegressionStats],
    name: str,
) -> Callable[P, Tensor]:
    """``name``: ``function`` bound to the streaming class ``metric``."""
    summary = name.replace("_", " ").capitalize()
    doc = _DOC.format(summary=summary, metric=metric.__name__, name=name)
    return bind_first(function, metric, name=name, doc=doc)


mean_absolute_error = _bind(_of_batch, MeanAbsoluteError, "mean_absolute_error")
root_mean_squared_error = _bind(_of_batch, RootMeanSquaredError, "root_mean_squared_error")
r2_score = _bind(_of_batch, R2Score, "r2_score")


# Doctest skips functions built in another module (bind_first); list them for it.
__test__ = {f.__name__: f for f in (mean_absolute_error, root_mean_squared_error, r2_score)}
