"""Multi-class metrics from a streaming confusion matrix, and top-k accuracy."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from geofm.errors import ShapeError
from geofm.metrics._common import (
    Absent,
    Average,
    RatioMetric,
    bind_first,
    check_range,
    check_same_shape,
    sum_over_ranks,
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


class ConfusionMatrix(RatioMetric):
    """Streaming multi-class confusion matrix with IoU, precision, recall, F1 and accuracy.

    ``iou``, ``precision``, ``recall``, ``f1_score`` and ``accuracy`` read
    the matrix; see :meth:`precision` for ``average``, ``zero_division`` and
    ``absent``. Under ``torch.distributed`` every ``compute()`` (and every
    ratio, which calls it) sums the matrices of all ranks, so every rank must
    call the same methods in the same order; the local counts are kept.

    Args:
        num_classes: Number of classes ``C``.
        ignore_index: Target value to skip (e.g. 255, or a class index such as
            SpectralEarth's background class); ``None`` keeps every sample.
        validate_args: Check label ranges on every update (one host sync per
            batch); turn off for speed once a pipeline is trusted.
        sync_on_compute: Sum the counts over the ranks of the default process
            group in ``compute()`` (torchmetrics' default); ``False`` keeps
            each rank's own counts. No effect outside a process group.

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
        >>> cm = ConfusionMatrix(num_classes=3)
        >>> scores = torch.tensor([[2.0, 0.0, 1.0], [0.0, 1.0, 3.0]])  # (N=2, C=3)
        >>> cm.update(scores, torch.tensor([0, 1]))
        >>> cm.compute()
        tensor([[1, 0, 0],
                [0, 0, 1],
                [0, 0, 0]])
        >>> float(cm.recall(average="micro"))
        0.5
    """

    def __init__(
        self,
        num_classes: int,
        *,
        ignore_index: int | None = None,
        validate_args: bool = True,
        sync_on_compute: bool = True,
    ) -> None:
        super().__init__(
            num_classes, "num_classes", validate_args=validate_args, sync_on_compute=sync_on_compute
        )
        self.num_classes = num_classes
        self.ignore_index = ignore_index
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
            Int64 counts, summed over ranks when distributed; rows are true
            classes, columns predicted classes.
        """
        local = self._matrix
        if local is None:
            local = torch.zeros(self.num_classes, self.num_classes, dtype=torch.long)
        return sum_over_ranks(local, enabled=self.sync_on_compute).clone()

    def _ratio_counts(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        cm = self.compute()
        tp = cm.diagonal()
        counted = torch.ones(self.num_classes, dtype=torch.bool, device=cm.device)
        if self.ignore_index is not None and 0 <= self.ignore_index < self.num_classes:
            counted[self.ignore_index] = False
        return tp, cm.sum(dim=0) - tp, cm.sum(dim=1) - tp, counted

    def iou(
        self, *, average: Average = "macro", zero_division: float = 0.0, absent: Absent = "ignore"
    ) -> Tensor:
        """Intersection over union (Jaccard index) TP / (TP + FP + FN).

        Arguments as in :meth:`precision`; IoU is 0/0 only for an absent class.

        Returns:
            Scalar (or ``(C,)`` for ``"none"``), float64.
        """
        return self._ratio("iou", average, zero_division, absent)

    def accuracy(
        self, *, average: Average = "micro", zero_division: float = 0.0, absent: Absent = "ignore"
    ) -> Tensor:
        """Accuracy: overall (``"micro"``, pixel accuracy) or mean class recall (``"macro"``).

        Per-class accuracy (``"none"``) is the class recall, as in torchmetrics'
        ``MulticlassAccuracy``; ``"macro"`` is scikit-learn's balanced accuracy
        when every class occurs in the targets.

        Arguments as in :meth:`precision`; ``zero_division`` is the value of a
        class that never occurs in the targets.

        Returns:
            Scalar (or ``(C,)`` for ``"none"``), float64.
        """
        return self._ratio("recall", average, zero_division, absent)


class TopKAccuracy:
    """Streaming top-k accuracy: the target is among the ``k`` highest scores.

    Args:
        k: Number of top classes that count as a hit (1 = plain accuracy).
        sync_on_compute: Sum the hit and sample counts over the ranks of the
            default process group in ``compute()``; ``False`` keeps each
            rank's own. No effect outside a process group.

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

    def __init__(self, *, k: int = 1, sync_on_compute: bool = True) -> None:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}.")
        self.k = k
        self.sync_on_compute = sync_on_compute
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
        """Fraction of hits so far, over all ranks when distributed (0 before any update).

        Returns:
            Scalar float64 tensor.
        """
        counts = torch.tensor([self._correct, self._total], dtype=torch.long)
        correct, total = sum_over_ranks(counts, enabled=self.sync_on_compute).tolist()
        return torch.tensor(correct / max(total, 1), dtype=torch.float64)


def _one_shot(
    preds: Tensor, target: Tensor, num_classes: int, ignore_index: int | None
) -> ConfusionMatrix:
    # One-shot functions measure the batch they are given: no collective.
    cm = ConfusionMatrix(num_classes, ignore_index=ignore_index, sync_on_compute=False)
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
        >>> confusion_matrix(torch.tensor([1, 1, 2]), torch.tensor([0, 1, 1]), num_classes=3)
        tensor([[0, 1, 0],
                [0, 1, 1],
                [0, 0, 0]])
    """
    return _one_shot(preds, target, num_classes, ignore_index).compute()


def _ratio_of_batch(
    method: Callable[..., Tensor],
    preds: Tensor,
    target: Tensor,
    *,
    num_classes: int,
    average: Average = "macro",
    ignore_index: int | None = None,
    zero_division: float = 0.0,
    absent: Absent = "ignore",
) -> Tensor:
    """The shared body of :func:`iou`, :func:`precision`, ... (``method`` of ConfusionMatrix)."""
    cm = _one_shot(preds, target, num_classes, ignore_index)
    return method(cm, average=average, zero_division=zero_division, absent=absent)


_RATIO_DOC = """{summary} of one batch.

    See :meth:`ConfusionMatrix.{name}` for the streaming form.

    Args:
        preds: Class indices with the target's shape, or scores ``(N, C, ...)``.
        target: Class indices ``(N, ...)``.
        num_classes: Number of classes ``C``.
        average: ``"macro"`` (unweighted mean over classes), ``"micro"``
            (pooled counts) or ``"none"`` (per class); default ``"{average}"``.
        ignore_index: Target value to skip, or ``None``. If it is a class
            index, that class is left out of the averages (NaN per class).
        zero_division: Value of a class whose ratio is 0/0 (default 0.0, as
            scikit-learn and torchmetrics); NaN leaves it out of the mean.
        absent: ``"ignore"`` (default, torchmetrics' rule) leaves classes
            absent from both preds and target out of the macro mean;
            ``"include"`` counts them with ``zero_division`` (scikit-learn
            with ``labels=range(C)``).

    Returns:
        Scalar (or ``(C,)`` for ``"none"``), float64.

    Shape:
        - preds: ``(N, ...)`` indices or ``(N, C, ...)`` scores; target: ``(N, ...)``.

    Raises:
        ShapeError: If the shapes do not match.
        ValueError: If labels are out of range, or ``average`` or ``absent`` is unknown.

    Example:
        >>> import torch
        >>> preds, target = torch.tensor([0, 0, 1, 2, 1]), torch.tensor([0, 1, 1, 1, 2])
        >>> per_class = {name}(preds, target, num_classes=4, average="none")
        >>> per_class[3]  # class 3 is absent: 0/0 gives zero_division
        tensor(0., dtype=torch.float64)
        >>> macro = {name}(preds, target, num_classes=4, average="macro")
        >>> bool(torch.isclose(macro, per_class[:3].mean()))  # absent="ignore"
        True
        >>> macro = {name}(preds, target, num_classes=4, average="macro", absent="include")
        >>> bool(torch.isclose(macro, per_class.mean()))
        True
    """


def _ratio_doc(name: str, average: str = "macro") -> str:
    method = getattr(ConfusionMatrix, name)
    summary = (method.__doc__ or "").strip().splitlines()[0].rstrip(".")
    return _RATIO_DOC.format(summary=summary, name=name, average=average)


iou = bind_first(_ratio_of_batch, ConfusionMatrix.iou, doc=_ratio_doc("iou"))
precision = bind_first(_ratio_of_batch, ConfusionMatrix.precision, doc=_ratio_doc("precision"))
recall = bind_first(_ratio_of_batch, ConfusionMatrix.recall, doc=_ratio_doc("recall"))
f1_score = bind_first(_ratio_of_batch, ConfusionMatrix.f1_score, doc=_ratio_doc("f1_score"))
accuracy = bind_first(
    _ratio_of_batch,
    ConfusionMatrix.accuracy,
    doc=_ratio_doc("accuracy", average="micro"),
    defaults={"average": "micro"},
)


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
        >>> scores = torch.tensor([[0.1, 0.5, 0.4], [0.3, 0.2, 0.5]])
        >>> float(topk_accuracy(scores, torch.tensor([2, 1]), k=2))
        0.5
    """
    metric = TopKAccuracy(k=k, sync_on_compute=False)
    metric.update(scores, target)
    return metric.compute()


# Doctest skips functions built in another module (bind_first); list them for it.
__test__ = {f.__name__: f for f in (iou, precision, recall, f1_score, accuracy)}
