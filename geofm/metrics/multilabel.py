"""Multi-label metrics: per-label confusion matrices and average precision."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from geofm.errors import ShapeError
from geofm.metrics._common import (
    Average,
    Ratio,
    check_average,
    check_binary,
    check_same_shape,
    divide,
    reduce_ratio,
)

__all__ = [
    "MultilabelAveragePrecision",
    "MultilabelConfusionMatrix",
    "multilabel_accuracy",
    "multilabel_average_precision",
    "multilabel_confusion_matrix",
    "multilabel_f1_score",
    "multilabel_precision",
    "multilabel_recall",
]


class MultilabelConfusionMatrix:
    """Streaming per-label 2x2 confusion matrices for multi-label tasks.

    Args:
        num_labels: Number of labels ``L``.
        threshold: Probability above which a score counts as a positive
            prediction (scores equal to it are negative, like ``> 0.5``).
        validate_args: Check that targets are 0/1 and float scores lie in
            ``[0, 1]`` (apply ``sigmoid`` to logits first).

    Shape:
        - ``update`` preds: ``(N, L)`` probabilities or 0/1 labels; target: ``(N, L)`` 0/1.
        - ``compute``: ``(L, 2, 2)`` as scikit-learn's ``multilabel_confusion_matrix``:
          ``[[TN, FP], [FN, TP]]`` per label.

    Raises:
        ShapeError: In ``update``, if preds and target shapes differ or are not ``(N, L)``.
        ValueError: In ``update``, if targets are not 0/1 or scores are outside ``[0, 1]``.

    Example:
        >>> import torch
        >>> mcm = MultilabelConfusionMatrix(num_labels=2)
        >>> mcm.update(torch.tensor([[0.9, 0.2], [0.7, 0.6]]), torch.tensor([[1, 0], [0, 1]]))
        >>> float(mcm.accuracy(average="micro")), float(mcm.accuracy(average="subset"))
        (0.75, 0.5)
    """

    def __init__(
        self, num_labels: int, *, threshold: float = 0.5, validate_args: bool = True
    ) -> None:
        if num_labels < 1:
            raise ValueError(f"num_labels must be at least 1, got {num_labels}.")
        self.num_labels = num_labels
        self.threshold = threshold
        self.validate_args = validate_args
        self.reset()

    def reset(self) -> None:
        """Forget every batch seen so far."""
        self._counts: Tensor | None = None  # (4, L): tn, fp, fn, tp
        self._exact = 0
        self._samples = 0

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch.

        Args:
            preds: Probabilities or 0/1 predictions ``(N, L)``.
            target: Multi-hot targets ``(N, L)``.
        """
        check_same_shape("MultilabelConfusionMatrix", preds, target)
        if preds.ndim != 2 or preds.shape[1] != self.num_labels:
            raise ShapeError(
                f"Expected (N, {self.num_labels}) multi-label inputs, got {tuple(preds.shape)}."
            )
        if self.validate_args:
            check_binary("target", target)
            floats = preds.is_floating_point() and preds.numel() > 0
            if floats and (float(preds.min()) < 0 or float(preds.max()) > 1):
                raise ValueError(
                    "Multi-label scores must be probabilities in [0, 1]; got values outside. "
                    "Apply torch.sigmoid to logits first."
                )
        pred = preds > self.threshold if preds.is_floating_point() else preds.bool()
        true = target.bool()
        counts = torch.stack(
            [
                (~pred & ~true).sum(dim=0),
                (pred & ~true).sum(dim=0),
                (~pred & true).sum(dim=0),
                (pred & true).sum(dim=0),
            ]
        )  # (4, L)
        self._counts = counts if self._counts is None else self._counts + counts
        self._exact += int((pred == true).all(dim=1).sum())
        self._samples += preds.shape[0]

    def compute(self) -> Tensor:
        """Per-label ``[[TN, FP], [FN, TP]]`` counts.

        Returns:
            ``(L, 2, 2)`` int64 tensor.
        """
        if self._counts is None:
            return torch.zeros(self.num_labels, 2, 2, dtype=torch.long)
        return self._counts.T.reshape(self.num_labels, 2, 2)  # (L, 2, 2)

    def _stats(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        mcm = self.compute()
        return mcm[:, 0, 0], mcm[:, 0, 1], mcm[:, 1, 0], mcm[:, 1, 1]

    def _ratio(self, kind: Ratio, average: Average, zero_division: float) -> Tensor:
        _, fp, fn, tp = self._stats()
        counted = torch.ones_like(tp, dtype=torch.bool)
        return reduce_ratio(
            tp, fp, fn, kind=kind, average=average, zero_division=zero_division, counted=counted
        )

    def accuracy(self, *, average: Literal["micro", "macro", "none", "subset"] = "micro") -> Tensor:
        """Multi-label accuracy.

        Args:
            average: ``"micro"``: fraction of correct (sample, label) entries
                (1 - Hamming loss; what Fusion-LoRA reports as bit accuracy);
                ``"macro"``: mean of per-label accuracies; ``"none"``: per
                label; ``"subset"``: fraction of samples with every label
                right (scikit-learn's ``accuracy_score``).

        Returns:
            Scalar (or ``(L,)`` for ``"none"``), float64.
        """
        check_average(average, ("micro", "macro", "none", "subset"))
        if average == "subset":
            return torch.tensor(self._exact / max(self._samples, 1), dtype=torch.float64)
        tn, fp, fn, tp = self._stats()
        per_label = divide(tp + tn, tp + tn + fp + fn, 0.0)
        if average == "none":
            return per_label
        if average == "macro":
            return per_label.mean()
        return divide((tp + tn).sum(), (tp + tn + fp + fn).sum(), 0.0)

    def precision(self, *, average: Average = "macro", zero_division: float = 0.0) -> Tensor:
        """Precision per label, macro- or micro-averaged.

        Args:
            average: ``"macro"``, ``"micro"`` or ``"none"``.
            zero_division: Value for a 0/0 label; NaN drops it from the mean.

        Returns:
            Scalar (or ``(L,)`` for ``"none"``), float64.
        """
        return self._ratio("precision", average, zero_division)

    def recall(self, *, average: Average = "macro", zero_division: float = 0.0) -> Tensor:
        """Recall; arguments as in :meth:`precision`.

        Returns:
            Scalar (or ``(L,)`` for ``"none"``), float64.
        """
        return self._ratio("recall", average, zero_division)

    def f1_score(self, *, average: Average = "macro", zero_division: float = 0.0) -> Tensor:
        """F1 = 2 TP / (2 TP + FP + FN); arguments as in :meth:`precision`.

        Returns:
            Scalar (or ``(L,)`` for ``"none"``), float64.
        """
        return self._ratio("f1", average, zero_division)


def _average_precision_columns(scores: Tensor, target: Tensor) -> Tensor:
    """Exact average precision of every column, as scikit-learn computes it.

    AP = sum_n (R_n - R_{n-1}) P_n over distinct score thresholds, which equals
    the mean over positives of the precision at the end of the positive's
    tie group. A column without positives gets 0 (scikit-learn's value).
    """
    sorted_scores, order = scores.sort(dim=0, descending=True)  # (N, L)
    hits = target.gather(0, order).double()  # (N, L)
    tps = hits.cumsum(dim=0)  # (N, L)
    ranks = torch.arange(1, len(scores) + 1, device=scores.device, dtype=torch.float64)
    prec = tps / ranks[:, None]  # (N, L)
    is_end = torch.ones_like(sorted_scores, dtype=torch.bool)
    is_end[:-1] = sorted_scores[:-1] != sorted_scores[1:]
    positions = torch.arange(len(scores), device=scores.device)[:, None].expand_as(is_end)
    end = torch.where(is_end, positions, len(scores))  # (N, L)
    end = end.flip(0).cummin(dim=0).values.flip(0)  # index of each entry's tie-group end
    prec_at_end = prec.gather(0, end)  # (N, L)
    positives = hits.sum(dim=0)  # (L,)
    return (hits * prec_at_end).sum(dim=0) / positives.clamp(min=1)


def _average_precision_histogram(pos: Tensor, neg: Tensor) -> Tensor:
    """Average precision per row from per-bin positive/negative counts (bins ascending)."""
    pos, neg = pos.flip(-1).double(), neg.flip(-1).double()  # highest scores first
    tps, fps = pos.cumsum(-1), neg.cumsum(-1)
    prec = tps / (tps + fps).clamp(min=1)
    positives = pos.sum(-1)
    return (pos * prec).sum(-1) / positives.clamp(min=1)


class MultilabelAveragePrecision:
    """Streaming multi-label average precision (area under the precision-recall step curve).

    By default every score is kept (``N x L`` float32 scores + uint8 targets,
    5 bytes per sample and label: 12 MB for BigEarthNet's 125k test images x
    19 labels) and the result equals scikit-learn's
    ``average_precision_score`` exactly. With ``num_bins`` the memory is fixed
    (two ``(L, num_bins)`` count tables): scores are bucketed into equal bins
    over ``[0, 1]`` and each bin acts as one threshold, which is exact when no
    two different scores share a bin and an approximation otherwise.

    Args:
        num_labels: Number of labels ``L``.
        average: ``"macro"`` (mean of per-label AP), ``"micro"`` (AP of all
            entries pooled) or ``"none"`` (per label).
        num_bins: ``None`` for exact AP, or the histogram size.

    Shape:
        - ``update`` scores: ``(N, L)``; target: ``(N, L)`` 0/1.

    Raises:
        ValueError: On a bad ``average`` or ``num_bins``; in ``update``, if
            targets are not 0/1 or histogram scores are outside ``[0, 1]``.
        ShapeError: In ``update``, if shapes differ or are not ``(N, L)``.

    Note:
        A label without positive targets has AP 0, as in scikit-learn, and
        counts in the macro mean.

    Example:
        >>> import torch
        >>> ap = MultilabelAveragePrecision(num_labels=1)
        >>> scores = torch.tensor([[0.1], [0.4], [0.35], [0.8]])
        >>> ap.update(scores, torch.tensor([[0], [0], [1], [1]]))
        >>> round(float(ap.compute()), 4)
        0.8333
    """

    def __init__(
        self, num_labels: int, *, average: Average = "macro", num_bins: int | None = None
    ) -> None:
        check_average(average, ("macro", "micro", "none"))
        if num_bins is not None and num_bins < 2:
            raise ValueError(f"num_bins must be None (exact) or at least 2, got {num_bins}.")
        self.num_labels = num_labels
        self.average = average
        self.num_bins = num_bins
        self.reset()

    def reset(self) -> None:
        """Forget every batch seen so far."""
        self._scores: list[Tensor] = []
        self._targets: list[Tensor] = []
        self._pos: Tensor | None = None
        self._neg: Tensor | None = None

    def update(self, scores: Tensor, target: Tensor) -> None:
        """Add a batch.

        Args:
            scores: Scores ``(N, L)`` (probabilities in ``[0, 1]`` for histogram mode).
            target: Multi-hot targets ``(N, L)``.
        """
        check_same_shape("MultilabelAveragePrecision", scores, target)
        if scores.ndim != 2 or scores.shape[1] != self.num_labels:
            raise ShapeError(
                f"Expected (N, {self.num_labels}) scores and targets, got {tuple(scores.shape)}."
            )
        check_binary("target", target)
        if self.num_bins is None:
            self._scores.append(scores.detach().float())
            self._targets.append(target.detach().to(torch.uint8))
            return
        if scores.numel() and (float(scores.min()) < 0 or float(scores.max()) > 1):
            raise ValueError(
                "Histogram average precision needs scores in [0, 1]; apply torch.sigmoid first."
            )
        bins = (scores.detach().double() * self.num_bins).long().clamp(max=self.num_bins - 1)
        flat = bins + torch.arange(self.num_labels, device=bins.device) * self.num_bins  # (N, L)
        size = self.num_labels * self.num_bins
        positive = target.bool()
        pos = torch.bincount(flat[positive], minlength=size).reshape(self.num_labels, -1)
        neg = torch.bincount(flat[~positive], minlength=size).reshape(self.num_labels, -1)
        self._pos = pos if self._pos is None else self._pos + pos
        self._neg = neg if self._neg is None else self._neg + neg

    def compute(self) -> Tensor:
        """Average precision over every batch since the last reset.

        Returns:
            Scalar (or ``(L,)`` for ``average="none"``), float64.
        """
        if self.num_bins is not None:
            if self._pos is None or self._neg is None:
                return torch.zeros(() if self.average != "none" else self.num_labels).double()
            if self.average == "micro":
                return _average_precision_histogram(self._pos.sum(0), self._neg.sum(0))
            per_label = _average_precision_histogram(self._pos, self._neg)
        else:
            if not self._scores:
                return torch.zeros(() if self.average != "none" else self.num_labels).double()
            scores, target = torch.cat(self._scores), torch.cat(self._targets)
            if self.average == "micro":
                return _average_precision_columns(scores.reshape(-1, 1), target.reshape(-1, 1))[0]
            per_label = _average_precision_columns(scores, target)
        return per_label if self.average == "none" else per_label.mean()


def _stream(preds: Tensor, target: Tensor, threshold: float) -> MultilabelConfusionMatrix:
    if preds.ndim != 2:
        raise ShapeError(f"Expected (N, L) multi-label inputs, got {tuple(preds.shape)}.")
    mcm = MultilabelConfusionMatrix(preds.shape[1], threshold=threshold)
    mcm.update(preds, target)
    return mcm


def multilabel_confusion_matrix(preds: Tensor, target: Tensor, *, threshold: float = 0.5) -> Tensor:
    """Per-label ``[[TN, FP], [FN, TP]]`` of one batch (see :class:`MultilabelConfusionMatrix`).

    Args:
        preds: Probabilities or 0/1 predictions ``(N, L)``.
        target: Multi-hot targets ``(N, L)``.
        threshold: Probability above which a score is a positive prediction.

    Returns:
        ``(L, 2, 2)`` int64 counts.

    Raises:
        ShapeError: If the shapes differ or are not ``(N, L)``.
        ValueError: If targets are not 0/1 or scores are outside ``[0, 1]``.

    Example:
        >>> import torch
        >>> multilabel_confusion_matrix(torch.tensor([[1, 0]]), torch.tensor([[1, 1]]))[1]
        tensor([[0, 0],
                [1, 0]])
    """
    return _stream(preds, target, threshold).compute()


def multilabel_accuracy(
    preds: Tensor,
    target: Tensor,
    *,
    average: Literal["micro", "macro", "none", "subset"] = "micro",
    threshold: float = 0.5,
) -> Tensor:
    """Multi-label accuracy of one batch; see :meth:`MultilabelConfusionMatrix.accuracy`.

    Args:
        preds: Probabilities or 0/1 predictions ``(N, L)``.
        target: Multi-hot targets ``(N, L)``.
        average: ``"micro"``, ``"macro"``, ``"none"`` or ``"subset"``.
        threshold: Probability above which a score is a positive prediction.

    Returns:
        Scalar (or ``(L,)`` for ``"none"``), float64.

    Raises:
        ShapeError: If the shapes differ or are not ``(N, L)``.
        ValueError: On bad values or an unknown ``average``.

    Example:
        >>> import torch
        >>> float(multilabel_accuracy(torch.tensor([[1, 0]]), torch.tensor([[1, 1]])))
        0.5
    """
    return _stream(preds, target, threshold).accuracy(average=average)


def multilabel_precision(
    preds: Tensor,
    target: Tensor,
    *,
    average: Average = "macro",
    threshold: float = 0.5,
    zero_division: float = 0.0,
) -> Tensor:
    """Multi-label precision of one batch.

    Args:
        preds: Probabilities or 0/1 predictions ``(N, L)``.
        target: Multi-hot targets ``(N, L)``.
        average: ``"macro"``, ``"micro"`` or ``"none"``.
        threshold: Probability above which a score is a positive prediction.
        zero_division: Value for a 0/0 label; NaN drops it from the mean.

    Returns:
        Scalar (or ``(L,)`` for ``"none"``), float64.

    Raises:
        ShapeError: If the shapes differ or are not ``(N, L)``.
        ValueError: On bad values or an unknown ``average``.

    Example:
        >>> import torch
        >>> p = torch.tensor([[1, 1], [0, 1]])
        >>> float(multilabel_precision(p, torch.tensor([[1, 0], [0, 1]]), average="micro"))
        0.6666666666666666
    """
    mcm = _stream(preds, target, threshold)
    return mcm.precision(average=average, zero_division=zero_division)


def multilabel_recall(
    preds: Tensor,
    target: Tensor,
    *,
    average: Average = "macro",
    threshold: float = 0.5,
    zero_division: float = 0.0,
) -> Tensor:
    """Multi-label recall of one batch; arguments as in :func:`multilabel_precision`.

    Returns:
        Scalar (or ``(L,)`` for ``"none"``), float64.

    Raises:
        ShapeError: If the shapes differ or are not ``(N, L)``.
        ValueError: On bad values or an unknown ``average``.

    Example:
        >>> import torch
        >>> p, t = torch.tensor([[1, 0]]), torch.tensor([[1, 1]])
        >>> float(multilabel_recall(p, t, average="micro"))
        0.5
    """
    mcm = _stream(preds, target, threshold)
    return mcm.recall(average=average, zero_division=zero_division)


def multilabel_f1_score(
    preds: Tensor,
    target: Tensor,
    *,
    average: Average = "macro",
    threshold: float = 0.5,
    zero_division: float = 0.0,
) -> Tensor:
    """Multi-label F1 of one batch; arguments as in :func:`multilabel_precision`.

    Returns:
        Scalar (or ``(L,)`` for ``"none"``), float64.

    Raises:
        ShapeError: If the shapes differ or are not ``(N, L)``.
        ValueError: On bad values or an unknown ``average``.

    Example:
        >>> import torch
        >>> p, t = torch.tensor([[1, 0]]), torch.tensor([[1, 1]])
        >>> round(float(multilabel_f1_score(p, t, average="micro")), 4)
        0.6667
    """
    mcm = _stream(preds, target, threshold)
    return mcm.f1_score(average=average, zero_division=zero_division)


def multilabel_average_precision(
    scores: Tensor,
    target: Tensor,
    *,
    average: Average = "macro",
    num_bins: int | None = None,
) -> Tensor:
    """Multi-label average precision of one batch (see :class:`MultilabelAveragePrecision`).

    Args:
        scores: Scores ``(N, L)``.
        target: Multi-hot targets ``(N, L)``.
        average: ``"macro"``, ``"micro"`` or ``"none"``.
        num_bins: ``None`` for exact AP, or a histogram size.

    Returns:
        Scalar (or ``(L,)`` for ``"none"``), float64.

    Raises:
        ShapeError: If the shapes differ or are not ``(N, L)``.
        ValueError: If targets are not 0/1.

    Example:
        >>> import torch
        >>> s = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
        >>> float(multilabel_average_precision(s, torch.tensor([[1, 0], [0, 1]])))
        1.0
    """
    if scores.ndim != 2:
        raise ShapeError(f"Expected (N, L) scores, got {tuple(scores.shape)}.")
    metric = MultilabelAveragePrecision(scores.shape[1], average=average, num_bins=num_bins)
    metric.update(scores, target)
    return metric.compute()
