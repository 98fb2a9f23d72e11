"""Multi-class metrics from a streaming confusion matrix, and top-k accuracy."""

from __future__ import annotations

import torch
from torch import Tensor

from geofm.errors import ShapeError
from geofm.metrics._common import (
    Average,
    Ratio,
    check_range,
    check_same_shape,
    reduce_ratio,
)

__all__ = [
    "ConfusionMatrix",
    "TopKAccuracy",
    "accuracy",
    "confusion_matrix",
    "f1_score",
    "iou",
    "precision",
    "recall",
    "topk_accuracy",
]


def _labels_from_preds(preds: Tensor, target: Tensor, num_classes: int) -> Tensor:
    """Class indices from ``preds`` given as indices (target's shape) or scores ``(N, C, ...)``."""
    if preds.ndim == target.ndim + 1:
        if preds.shape[1] != num_classes or preds.shape[:1] + preds.shape[2:] != target.shape:
            raise ShapeError(
                f"Scores of shape {tuple(preds.shape)} do not match target {tuple(target.shape)} "
                f"and num_classes={num_classes}; expected (N, {num_classes}, ...) scores with "
                f"target (N, ...)."
            )
        return preds.argmax(dim=1)
    check_same_shape("ConfusionMatrix", preds, target)
    if preds.is_floating_point():
        raise ValueError(
            f"preds with the target's shape must be integer class indices, got dtype "
            f"{preds.dtype}. Pass scores as (N, C, ...) or call .argmax(dim=1) first."
        )
    return preds


class ConfusionMatrix:
    """Streaming multi-class confusion matrix with IoU, precision, recall, F1 and accuracy.

    Args:
        num_classes: Number of classes ``C``.
        ignore_index: Target value to skip (e.g. 255, or a class index such as
            SpectralEarth's background class); ``None`` keeps every sample.
        validate_args: Check label ranges on every update (one host sync per
            batch); turn off for speed once a pipeline is trusted.

    Shape:
        - ``update`` preds: class indices with the target's shape, or scores
          ``(N, C, ...)`` (argmax over dim 1).
        - ``update`` target: ``(N, ...)`` integer class indices.
        - ``compute``: ``(C, C)`` int64 counts, rows true class, columns predicted.

    Raises:
        ValueError: If ``num_classes < 1``; in ``update``, if labels are out
            of range or float preds have the target's shape.
        ShapeError: In ``update``, if preds and target shapes do not match.

    Example:
        >>> import torch
        >>> cm = ConfusionMatrix(num_classes=2)
        >>> cm.update(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0]))
        >>> cm.compute()
        tensor([[1, 1],
                [0, 0]])
        >>> float(cm.recall(average="micro"))
        0.5
    """

    def __init__(
        self, num_classes: int, *, ignore_index: int | None = None, validate_args: bool = True
    ) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}.")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.validate_args = validate_args
        self._matrix: Tensor | None = None

    def reset(self) -> None:
        """Forget every batch seen so far."""
        self._matrix = None

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch of predictions and targets to the counts.

        Args:
            preds: Class indices or ``(N, C, ...)`` scores.
            target: Class indices ``(N, ...)``.
        """
        labels = _labels_from_preds(preds, target, self.num_classes).reshape(-1)
        target = target.reshape(-1)
        if self.ignore_index is not None:
            keep = target != self.ignore_index
            labels, target = labels[keep], target[keep]
        if self.validate_args:
            check_range("target", target, self.num_classes)
            check_range("preds", labels, self.num_classes)
        counts = torch.bincount(
            target.long() * self.num_classes + labels.long(), minlength=self.num_classes**2
        ).reshape(self.num_classes, self.num_classes)  # (C, C)
        self._matrix = counts if self._matrix is None else self._matrix + counts

    def compute(self) -> Tensor:
        """The ``(C, C)`` confusion matrix of every batch since the last reset.

        Returns:
            Int64 counts; rows are true classes, columns predicted classes.
        """
        if self._matrix is None:
            return torch.zeros(self.num_classes, self.num_classes, dtype=torch.long)
        return self._matrix.clone()

    def _counted(self, device: torch.device) -> Tensor:
        counted = torch.ones(self.num_classes, dtype=torch.bool, device=device)
        if self.ignore_index is not None and 0 <= self.ignore_index < self.num_classes:
            counted[self.ignore_index] = False
        return counted

    def _ratio(self, kind: Ratio, average: Average, zero_division: float) -> Tensor:
        cm = self.compute()
        tp = cm.diagonal()
        fp = cm.sum(dim=0) - tp
        fn = cm.sum(dim=1) - tp
        return reduce_ratio(
            tp,
            fp,
            fn,
            kind=kind,
            average=average,
            zero_division=zero_division,
            counted=self._counted(cm.device),
        )

    def iou(self, *, average: Average = "macro", zero_division: float = 0.0) -> Tensor:
        """Intersection over union (Jaccard index): TP / (TP + FP + FN).

        Args:
            average: ``"macro"``, ``"micro"`` or ``"none"`` (per class).
            zero_division: Value for a 0/0 class; NaN drops it from the mean.

        Returns:
            Scalar (or ``(C,)`` for ``"none"``), float64.
        """
        return self._ratio("iou", average, zero_division)

    def precision(self, *, average: Average = "macro", zero_division: float = 0.0) -> Tensor:
        """Precision TP / (TP + FP); arguments as in :meth:`iou`.

        Returns:
            Scalar (or ``(C,)`` for ``"none"``), float64.
        """
        return self._ratio("precision", average, zero_division)

    def recall(self, *, average: Average = "macro", zero_division: float = 0.0) -> Tensor:
        """Recall TP / (TP + FN); arguments as in :meth:`iou`.

        Returns:
            Scalar (or ``(C,)`` for ``"none"``), float64.
        """
        return self._ratio("recall", average, zero_division)

    def f1_score(self, *, average: Average = "macro", zero_division: float = 0.0) -> Tensor:
        """F1 = 2 TP / (2 TP + FP + FN); arguments as in :meth:`iou`.

        Returns:
            Scalar (or ``(C,)`` for ``"none"``), float64.
        """
        return self._ratio("f1", average, zero_division)

    def accuracy(self, *, average: Average = "micro", zero_division: float = 0.0) -> Tensor:
        """Accuracy: ``"micro"`` = overall (pixel) accuracy, ``"macro"`` = mean class recall.

        Per-class accuracy (``"none"``) is the class recall, as in torchmetrics'
        ``MulticlassAccuracy``; ``"macro"`` is scikit-learn's balanced accuracy
        when every class occurs in the targets.

        Args:
            average: ``"micro"``, ``"macro"`` or ``"none"``.
            zero_division: Value for a class that never occurs in the targets.

        Returns:
            Scalar (or ``(C,)`` for ``"none"``), float64.
        """
        return self._ratio("recall", average, zero_division)


class TopKAccuracy:
    """Streaming top-k accuracy: the target is among the ``k`` highest scores.

    Args:
        k: Number of top classes that count as a hit (1 = plain accuracy).

    Shape:
        - ``update`` scores: ``(N, C, ...)``; target: ``(N, ...)`` class indices.

    Raises:
        ValueError: If ``k < 1``; in ``update``, if ``k > C`` or labels are out of range.
        ShapeError: In ``update``, if scores and target shapes do not match.

    Example:
        >>> import torch
        >>> top2 = TopKAccuracy(k=2)
        >>> top2.update(torch.tensor([[0.1, 0.5, 0.4], [0.8, 0.05, 0.15]]), torch.tensor([2, 1]))
        >>> float(top2.compute())
        0.5
    """

    def __init__(self, *, k: int = 1) -> None:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}.")
        self.k = k
        self.reset()

    def reset(self) -> None:
        """Forget every batch seen so far."""
        self._correct = 0
        self._total = 0

    def update(self, scores: Tensor, target: Tensor) -> None:
        """Add a batch.

        Args:
            scores: Class scores ``(N, C, ...)`` (logits or probabilities).
            target: Class indices ``(N, ...)``.
        """
        if scores.ndim != target.ndim + 1 or scores.shape[:1] + scores.shape[2:] != target.shape:
            raise ShapeError(
                f"TopKAccuracy expects scores (N, C, ...) and target (N, ...), got "
                f"{tuple(scores.shape)} and {tuple(target.shape)}."
            )
        num_classes = scores.shape[1]
        if self.k > num_classes:
            raise ValueError(f"k={self.k} exceeds the number of classes {num_classes}.")
        check_range("target", target, num_classes)
        top = scores.topk(self.k, dim=1).indices  # (N, k, ...)
        self._correct += int((top == target.unsqueeze(1)).any(dim=1).sum())
        self._total += target.numel()

    def compute(self) -> Tensor:
        """Fraction of hits so far (0 before any update).

        Returns:
            Scalar float64 tensor.
        """
        return torch.tensor(self._correct / max(self._total, 1), dtype=torch.float64)


def _stream(
    preds: Tensor, target: Tensor, num_classes: int, ignore_index: int | None
) -> ConfusionMatrix:
    cm = ConfusionMatrix(num_classes, ignore_index=ignore_index)
    cm.update(preds, target)
    return cm


def confusion_matrix(
    preds: Tensor, target: Tensor, *, num_classes: int, ignore_index: int | None = None
) -> Tensor:
    """Multi-class confusion matrix of one batch (see :class:`ConfusionMatrix`).

    Args:
        preds: Class indices with the target's shape, or scores ``(N, C, ...)``.
        target: Class indices ``(N, ...)``.
        num_classes: Number of classes ``C``.
        ignore_index: Target value to skip, or ``None``.

    Returns:
        ``(C, C)`` int64 counts, rows true class, columns predicted class.

    Raises:
        ShapeError: If the shapes do not match.
        ValueError: If labels are out of range.

    Example:
        >>> import torch
        >>> confusion_matrix(torch.tensor([1, 1]), torch.tensor([0, 1]), num_classes=2)
        tensor([[0, 1],
                [0, 1]])
    """
    return _stream(preds, target, num_classes, ignore_index).compute()


def iou(
    preds: Tensor,
    target: Tensor,
    *,
    num_classes: int,
    average: Average = "macro",
    ignore_index: int | None = None,
    zero_division: float = 0.0,
) -> Tensor:
    """Intersection over union (Jaccard index) of one batch.

    Args:
        preds: Class indices with the target's shape, or scores ``(N, C, ...)``.
        target: Class indices ``(N, ...)``.
        num_classes: Number of classes ``C``.
        average: ``"macro"``, ``"micro"`` or ``"none"`` (per class).
        ignore_index: Target value to skip, or ``None``.
        zero_division: Value for a 0/0 class; NaN drops it from the mean.

    Returns:
        Scalar (or ``(C,)`` for ``"none"``), float64.

    Raises:
        ShapeError: If the shapes do not match.
        ValueError: If labels are out of range or ``average`` is unknown.

    Example:
        >>> import torch
        >>> iou(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]), num_classes=2, average="none")
        tensor([0.5000, 0.5000], dtype=torch.float64)
    """
    cm = _stream(preds, target, num_classes, ignore_index)
    return cm.iou(average=average, zero_division=zero_division)


def precision(
    preds: Tensor,
    target: Tensor,
    *,
    num_classes: int,
    average: Average = "macro",
    ignore_index: int | None = None,
    zero_division: float = 0.0,
) -> Tensor:
    """Precision TP / (TP + FP) of one batch; arguments as in :func:`iou`.

    Returns:
        Scalar (or ``(C,)`` for ``"none"``), float64.

    Raises:
        ShapeError: If the shapes do not match.
        ValueError: If labels are out of range or ``average`` is unknown.

    Example:
        >>> import torch
        >>> float(precision(torch.tensor([0, 0, 1]), torch.tensor([0, 1, 1]), num_classes=2))
        0.75
    """
    cm = _stream(preds, target, num_classes, ignore_index)
    return cm.precision(average=average, zero_division=zero_division)


def recall(
    preds: Tensor,
    target: Tensor,
    *,
    num_classes: int,
    average: Average = "macro",
    ignore_index: int | None = None,
    zero_division: float = 0.0,
) -> Tensor:
    """Recall TP / (TP + FN) of one batch; arguments as in :func:`iou`.

    Returns:
        Scalar (or ``(C,)`` for ``"none"``), float64.

    Raises:
        ShapeError: If the shapes do not match.
        ValueError: If labels are out of range or ``average`` is unknown.

    Example:
        >>> import torch
        >>> float(recall(torch.tensor([0, 0, 1]), torch.tensor([0, 1, 1]), num_classes=2))
        0.75
    """
    cm = _stream(preds, target, num_classes, ignore_index)
    return cm.recall(average=average, zero_division=zero_division)


def f1_score(
    preds: Tensor,
    target: Tensor,
    *,
    num_classes: int,
    average: Average = "macro",
    ignore_index: int | None = None,
    zero_division: float = 0.0,
) -> Tensor:
    """F1 = 2 TP / (2 TP + FP + FN) of one batch; arguments as in :func:`iou`.

    Returns:
        Scalar (or ``(C,)`` for ``"none"``), float64.

    Raises:
        ShapeError: If the shapes do not match.
        ValueError: If labels are out of range or ``average`` is unknown.

    Example:
        >>> import torch
        >>> preds, target = torch.tensor([0, 0, 1]), torch.tensor([0, 1, 1])
        >>> round(float(f1_score(preds, target, num_classes=2)), 4)
        0.6667
    """
    cm = _stream(preds, target, num_classes, ignore_index)
    return cm.f1_score(average=average, zero_division=zero_division)


def accuracy(
    preds: Tensor,
    target: Tensor,
    *,
    num_classes: int,
    average: Average = "micro",
    ignore_index: int | None = None,
    zero_division: float = 0.0,
) -> Tensor:
    """Accuracy of one batch: overall (``"micro"``) or mean class recall (``"macro"``).

    Arguments as in :func:`iou`; see :meth:`ConfusionMatrix.accuracy`.

    Returns:
        Scalar (or ``(C,)`` for ``"none"``), float64.

    Raises:
        ShapeError: If the shapes do not match.
        ValueError: If labels are out of range or ``average`` is unknown.

    Example:
        >>> import torch
        >>> float(accuracy(torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 1, 1]), num_classes=2))
        0.75
    """
    cm = _stream(preds, target, num_classes, ignore_index)
    return cm.accuracy(average=average, zero_division=zero_division)


def topk_accuracy(scores: Tensor, target: Tensor, *, k: int = 1) -> Tensor:
    """Top-k accuracy of one batch (see :class:`TopKAccuracy`).

    Args:
        scores: Class scores ``(N, C, ...)``.
        target: Class indices ``(N, ...)``.
        k: Number of top classes that count as a hit.

    Returns:
        Scalar float64 tensor.

    Raises:
        ShapeError: If the shapes do not match.
        ValueError: If ``k`` is not in ``[1, C]`` or labels are out of range.

    Example:
        >>> import torch
        >>> float(topk_accuracy(torch.tensor([[0.1, 0.5, 0.4]]), torch.tensor([2]), k=2))
        1.0
    """
    metric = TopKAccuracy(k=k)
    metric.update(scores, target)
    return metric.compute()
