"""Shared validation and ratio helpers of :mod:`geofm.metrics` (private)."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from geofm.errors import ShapeError

Average = Literal["macro", "micro", "none"]
MultiOutput = Literal["uniform_average", "raw_values"]
Ratio = Literal["iou", "precision", "recall", "f1"]


def check_average(average: str, allowed: tuple[str, ...]) -> None:
    """Raise if ``average`` is not one of ``allowed``."""
    if average not in allowed:
        raise ValueError(f"average must be one of {list(allowed)}, got {average!r}.")


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


def reduce_ratio(
    tp: Tensor,
    fp: Tensor,
    fn: Tensor,
    *,
    kind: Ratio,
    average: str,
    zero_division: float,
    counted: Tensor,
) -> Tensor:
    """Per-class ratios averaged over the ``counted`` classes (bool mask)."""
    check_average(average, ("macro", "micro", "none"))
    if average == "micro":
        num, den = ratio_terms(tp[counted].sum(), fp[counted].sum(), fn[counted].sum(), kind)
        return divide(num, den, zero_division)
    num, den = ratio_terms(tp, fp, fn, kind)
    per_class = divide(num, den, zero_division)
    per_class = torch.where(counted, per_class, torch.full_like(per_class, math.nan))
    if average == "none":
        return per_class
    return per_class[counted].nanmean()


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
