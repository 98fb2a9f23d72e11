"""Shared validation, ratio, distributed and builder helpers of :mod:`geofm.metrics` (private).

Distributed synchronisation follows torchmetrics' ``sync_on_compute``: the
streaming classes keep per-rank statistics, and ``compute()`` reduces them
over the ranks of the default process group (sums for counts, concatenation
for kept scores) without changing the local state, so later updates and
computes keep working. The collectives use ``torch.distributed`` directly.

References:
    torchmetrics ``Metric.sync`` / ``sync_on_compute``,
    https://lightning.ai/docs/torchmetrics/stable/pages/overview.html
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Concatenate, Literal, ParamSpec, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor

from geofm._dist import world_size
from geofm.errors import ShapeError

Average = Literal["macro", "micro", "none"]
MultiOutput = Literal["uniform_average", "raw_values"]
Ratio = Literal["iou", "precision", "recall", "f1"]
Absent = Literal["ignore", "include"]

P = ParamSpec("P")
First = TypeVar("First")


def check_average(average: str, allowed: tuple[str, ...]) -> None:
    """Raise if ``average`` is not one of ``allowed``."""
    if average not in allowed:
        raise ValueError(f"average must be one of {list(allowed)}, got {average!r}.")


def check_absent(absent: str) -> None:
    """Raise if ``absent`` is not ``"ignore"`` or ``"include"``."""
    if absent not in ("ignore", "include"):
        raise ValueError(f"absent must be 'ignore' or 'include', got {absent!r}.")


def ratio_terms(tp: Tensor, fp: Tensor, fn: Tensor, kind: Ratio) -> tuple[Tensor, Tensor]:
    """Numerator and denominator of a per-class (or pooled) ratio."""
    if kind == "iou":
        return tp, tp + fp + fn
    if kind == "precision":
        return tp, tp + fp
    if kind == "recall":
        return tp, tp + fn
    return 2 * tp, 2 * tp + fp + fn


def divide(num: Tensor, den: Tensor, zero_division: float) -> Tensor:
    """Float64 ``num / den`` with ``zero_division`` where ``den == 0``."""
    num, den = num.double(), den.double()
    out = num / den.clamp(min=1)
    return torch.where(den > 0, out, torch.full_like(out, zero_division))


def macro_mean(values: Tensor, counted: Tensor, empty: float) -> Tensor:
    """NaN-skipping mean of ``values[counted]``; ``empty`` when no class is counted."""
    if not bool(counted.any()):
        return torch.tensor(empty, dtype=torch.float64, device=values.device)
    return values[counted].nanmean()


def reduce_ratio(
    tp: Tensor,
    fp: Tensor,
    fn: Tensor,
    *,
    kind: Ratio,
    average: str,
    zero_division: float,
    absent: str,
    counted: Tensor,
) -> Tensor:
    """Per-class ratios averaged over the ``counted`` classes (bool mask).

    With ``absent="ignore"`` a class with ``TP + FP + FN == 0`` (absent from
    both predictions and targets) is left out of the macro mean; with
    ``"include"`` it counts with its 0/0 value ``zero_division``. A macro
    mean over no class is ``zero_division``.
    """
    check_average(average, ("macro", "micro", "none"))
    check_absent(absent)
    if average == "micro":
        num, den = ratio_terms(tp[counted].sum(), fp[counted].sum(), fn[counted].sum(), kind)
        return divide(num, den, zero_division)
    num, den = ratio_terms(tp, fp, fn, kind)
    per_class = divide(num, den, zero_division)
    per_class = torch.where(counted, per_class, torch.full_like(per_class, math.nan))
    if average == "none":
        return per_class
    if absent == "ignore":
        counted = counted & (tp + fp + fn > 0)
    return macro_mean(per_class, counted, zero_division)


def check_same_shape(name: str, preds: Tensor, target: Tensor) -> None:
    """Raise :class:`ShapeError` if ``preds`` and ``target`` differ in shape."""
    if preds.shape != target.shape:
        raise ShapeError(
            f"{name}: preds and target must have the same shape, got {tuple(preds.shape)} and "
            f"{tuple(target.shape)}."
        )


def check_range(name: str, values: Tensor, num_classes: int) -> None:
    """Raise if integer labels fall outside ``[0, num_classes)``."""
    if values.numel() and (int(values.min()) < 0 or int(values.max()) >= num_classes):
        raise ValueError(
            f"{name} contains labels outside [0, {num_classes - 1}]: found min "
            f"{int(values.min())}, max {int(values.max())}. Check num_classes and ignore_index."
        )


def check_binary(name: str, values: Tensor) -> None:
    """Raise if ``values`` holds anything but 0 and 1."""
    if values.numel() and not bool(((values == 0) | (values == 1)).all()):
        raise ValueError(f"{name} must contain only 0 and 1 (multi-hot), got other values.")


def _collective_device(value: Tensor) -> torch.device:
    """Where a collective on ``value`` runs: NCCL on the rank's GPU, gloo on the CPU."""
    backend = dist.get_backend()
    if backend == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    if backend == "gloo":
        return torch.device("cpu")
    return value.device


def sum_over_ranks(value: Tensor, *, enabled: bool = True) -> Tensor:
    """Sum of ``value`` over the ranks of the default process group.

    Every rank must call it with a tensor of the same shape and dtype.
    Outside an initialised process group (one process), or with
    ``enabled=False``, ``value`` itself is returned.

    Args:
        value: This rank's statistic (counts or sums).
        enabled: ``False`` returns the local value (``sync_on_compute=False``).

    Returns:
        A new tensor on ``value``'s device holding the sum, or ``value``.
    """
    if not enabled or world_size() == 1:
        return value
    total = value.to(_collective_device(value), copy=True)
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total.to(value.device)


def cat_over_ranks(value: Tensor, *, enabled: bool = True) -> Tensor:
    """Rows of ``value`` from every rank, concatenated in rank order.

    The ranks may hold different numbers of rows (zero included); the other
    dimensions and the dtype must agree. Outside an initialised process group,
    or with ``enabled=False``, ``value`` itself is returned.

    Args:
        value: This rank's rows ``(n_r, *)``.
        enabled: ``False`` returns the local rows (``sync_on_compute=False``).

    Returns:
        ``(sum_r n_r, *)`` on ``value``'s device, or ``value``.
    """
    if not enabled or world_size() == 1:
        return value
    device = _collective_device(value)
    count = torch.tensor([value.shape[0]], dtype=torch.long, device=device)
    counts = [torch.empty_like(count) for _ in range(world_size())]
    dist.all_gather(counts, count)
    sizes = [int(c) for c in counts]
    if max(sizes) == 0:
        return value
    # all_gather needs equal shapes: pad every rank's rows to the longest, then trim.
    padded = value.new_zeros((max(sizes), *value.shape[1:]), device=device)  # (n_max, *)
    padded[: value.shape[0]] = value.to(device)
    chunks = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(chunks, padded)
    return torch.cat([c[:n] for c, n in zip(chunks, sizes, strict=True)]).to(value.device)


def bind_first(
    function: Callable[Concatenate[First, P], Tensor],
    first: First,
    *,
    doc: str,
    name: str | None = None,
    defaults: Mapping[str, object] | None = None,
) -> Callable[P, Tensor]:
    """A public metric function: ``function`` with its first argument fixed.

    Used for the one-shot metric functions that share one implementation and
    one signature (``iou``, ``precision``, ...): the result is a plain function
    named ``name`` with docstring ``doc``, whose signature (``inspect`` and
    mypy) is ``function``'s without the first parameter. The defining module
    lists the results in its ``__test__`` mapping so that doctest runs their
    examples (doctest skips functions whose globals are another module's).

    Args:
        function: The shared implementation; its first parameter selects the metric.
        first: The value of that first parameter.
        doc: The public docstring.
        name: The public name (``__name__``/``__qualname__``); by default
            ``first.__name__`` (the name of a bound method).
        defaults: Keyword defaults that differ from ``function``'s (e.g.
            accuracy's ``average="micro"``); shown in the signature too.

    Returns:
        The bound function.

    Raises:
        ValueError: If ``defaults`` names a parameter ``function`` lacks, or
            ``name`` is missing and ``first`` has no ``__name__``.
    """
    public_name = name if name is not None else getattr(first, "__name__", None)
    if public_name is None:
        raise ValueError(f"bind_first needs a name: {first!r} has no __name__.")
    overrides = dict(defaults or {})
    signature = inspect.signature(function)
    parameters = list(signature.parameters.values())[1:]
    unknown = sorted(overrides.keys() - {p.name for p in parameters})
    if unknown:
        raise ValueError(f"defaults {unknown} are not parameters of {function.__name__}.")

    def bound(*args: P.args, **kwargs: P.kwargs) -> Tensor:
        for key, value in overrides.items():
            kwargs.setdefault(key, value)
        return function(first, *args, **kwargs)

    bound.__dict__["__signature__"] = signature.replace(
        parameters=[p.replace(default=overrides.get(p.name, p.default)) for p in parameters]
    )
    bound.__name__ = bound.__qualname__ = public_name
    bound.__module__ = function.__module__
    bound.__doc__ = doc
    return bound


class RatioMetric(ABC):
    """Base of the confusion-matrix metrics: precision, recall and F1 from TP/FP/FN counts.

    Subclasses implement :meth:`_ratio_counts`, which returns the per-class
    (or per-label) true positives, false positives, false negatives and the
    mask of classes that take part in the averages, synchronised over ranks.

    Args:
        size: Number of classes (labels), at least 1.
        size_name: The subclass's argument name for ``size``, for the message.
        validate_args: Check the values of every update.
        sync_on_compute: Combine the counts of all ranks when computing.

    Raises:
        ValueError: If ``size < 1``.
    """

    def __init__(
        self, size: int, size_name: str, *, validate_args: bool, sync_on_compute: bool
    ) -> None:
        if size < 1:
            raise ValueError(f"{size_name} must be at least 1, got {size}.")
        self.validate_args = validate_args
        self.sync_on_compute = sync_on_compute

    @abstractmethod
    def _ratio_counts(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(TP, FP, FN, counted)`` per class, summed over ranks."""

    def _ratio(self, kind: Ratio, average: Average, zero_division: float, absent: Absent) -> Tensor:
        tp, fp, fn, counted = self._ratio_counts()
        return reduce_ratio(
            tp,
            fp,
            fn,
            kind=kind,
            average=average,
            zero_division=zero_division,
            absent=absent,
            counted=counted,
        )

    def precision(
        self, *, average: Average = "macro", zero_division: float = 0.0, absent: Absent = "ignore"
    ) -> Tensor:
        """Precision TP / (TP + FP).

        Per class (label), macro- or micro-averaged.

        Args:
            average: ``"macro"`` (unweighted mean over classes), ``"micro"``
                (pooled counts) or ``"none"`` (one value per class).
            zero_division: Value of a class whose ratio is 0/0; NaN leaves
                such classes out of the macro mean.
            absent: ``"ignore"`` leaves classes absent from both predictions
                and targets (TP + FP + FN = 0) out of the macro mean
                (torchmetrics' multi-class rule); ``"include"`` counts them
                with ``zero_division`` (scikit-learn with every label listed).

        Returns:
            Scalar (or one value per class for ``"none"``), float64.

        Raises:
            ValueError: If ``average`` or ``absent`` is unknown.
        """
        return self._ratio("precision", average, zero_division, absent)

    def recall(
        self, *, average: Average = "macro", zero_division: float = 0.0, absent: Absent = "ignore"
    ) -> Tensor:
        """Recall TP / (TP + FN).

        Arguments as in :meth:`precision`.

        Returns:
            Scalar (or one value per class for ``"none"``), float64.
        """
        return self._ratio("recall", average, zero_division, absent)

    def f1_score(
        self, *, average: Average = "macro", zero_division: float = 0.0, absent: Absent = "ignore"
    ) -> Tensor:
        """F1 score 2 TP / (2 TP + FP + FN).

        Arguments as in :meth:`precision`; F1 is 0/0 only for an absent class.

        Returns:
            Scalar (or one value per class for ``"none"``), float64.
        """
        return self._ratio("f1", average, zero_division, absent)
