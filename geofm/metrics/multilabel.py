"""Multi-label metrics: per-label confusion matrices and average precision."""

from __future__ import annotations

from collections.abc import Callable
from typing import Concatenate, Literal, ParamSpec

import torch
from torch import Tensor

from geofm.errors import ShapeError
from geofm.metrics._common import (
    Absent,
    Average,
    RatioMetric,
    bind_first,
    cat_over_ranks,
    check_absent,
    check_average,
    check_binary,
    check_same_shape,
    divide,
    macro_mean,
    sum_over_ranks,
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

P = ParamSpec("P")


class MultilabelConfusionMatrix(RatioMetric):
    """Streaming per-label 2x2 confusion matrices for multi-label tasks.

    ``accuracy``, ``precision``, ``recall`` and ``f1_score`` read the
    matrices (see :meth:`precision` for ``average``, ``zero_division`` and
    ``absent``). Under ``torch.distributed`` they and ``compute()`` sum the
    counts of all ranks, so every rank must call the same methods in the same
    order; the local counts are kept.

    Args:
        num_labels: Number of labels ``L``.
        threshold: Probability above which a score counts as a positive
            prediction (scores equal to it are negative, like ``> 0.5``).
        validate_args: Check that targets are 0/1 and float scores lie in
            ``[0, 1]`` (apply ``sigmoid`` to logits first).
        sync_on_compute: Sum the counts over the ranks of the default process
            group when computing (torchmetrics' default); ``False`` keeps each
            rank's own counts. No effect outside a process group.

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
        >>> scores = torch.tensor([[0.9, 0.2], [0.7, 0.6], [0.1, 0.4]])  # (N=3, L=2)
        >>> mcm.update(scores, torch.tensor([[1, 0], [0, 1], [0, 0]]))
        >>> [round(float(mcm.accuracy(average=a)), 4) for a in ("micro", "subset")]
        [0.8333, 0.6667]
    """

    def __init__(
        self,
        num_labels: int,
        *,
        threshold: float = 0.5,
        validate_args: bool = True,
        sync_on_compute: bool = True,
    ) -> None:
        super().__init__(
            num_labels, "num_labels", validate_args=validate_args, sync_on_compute=sync_on_compute
        )
        self.num_labels = num_labels
        self.threshold = threshold
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
        """Per-label ``[[TN, FP], [FN, TP]]`` counts, summed over ranks when distributed.

        Returns:
            ``(L, 2, 2)`` int64 tensor.
        """
        local = self._counts
        if local is None:
            local = torch.zeros(4, self.num_labels, dtype=torch.long)
        counts = sum_over_ranks(local, enabled=self.sync_on_compute)  # (4, L)
        return counts.T.reshape(self.num_labels, 2, 2)  # (L, 2, 2)

    def _stats(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        mcm = self.compute()
        return mcm[:, 0, 0], mcm[:, 0, 1], mcm[:, 1, 0], mcm[:, 1, 1]

    def _ratio_counts(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        _, fp, fn, tp = self._stats()
        return tp, fp, fn, torch.ones_like(tp, dtype=torch.bool)

    def accuracy(self, *, average: Literal["micro", "macro", "none", "subset"] = "micro") -> Tensor:
        """Multi-label accuracy.

        Args:
            average: ``"micro"``: fraction of correct (sample, label) entries
                (1 - Hamming loss; what Fusion-LoRA reports as bit accuracy);
                ``"macro"``: mean of per-label accuracies (equal to ``"micro"``,
                as every label has one entry per sample); ``"none"``: per
                label; ``"subset"``: fraction of samples with every label
                right (scikit-learn's ``accuracy_score``).

        Returns:
            Scalar (or ``(L,)`` for ``"none"``), float64.

        Raises:
            ValueError: If ``average`` is unknown.
        """
        check_average(average, ("micro", "macro", "none", "subset"))
        if average == "subset":
            local = torch.tensor([self._exact, self._samples], dtype=torch.long)
            exact, samples = sum_over_ranks(local, enabled=self.sync_on_compute).tolist()
            return torch.tensor(exact / max(samples, 1), dtype=torch.float64)
        tn, fp, fn, tp = self._stats()
        per_label = divide(tp + tn, tp + tn + fp + fn, 0.0)
        if average == "none":
            return per_label
        if average == "macro":
            return per_label.mean()
        return divide((tp + tn).sum(), (tp + tn + fp + fn).sum(), 0.0)


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
    two different scores share a bin and an approximation otherwise. Under
    ``torch.distributed``, ``compute()`` gathers the kept scores (or sums the
    tables) of all ranks, so every rank must call it.

    Args:
        num_labels: Number of labels ``L``.
        average: ``"macro"`` (mean of per-label AP), ``"micro"`` (AP of all
            entries pooled) or ``"none"`` (per label).
        num_bins: ``None`` for exact AP, or the histogram size.
        absent: A label without positive targets has AP 0 (scikit-learn's and
            torchmetrics' value). ``"ignore"`` (default) leaves such labels
            out of the macro mean, as their AP is undefined; ``"include"``
            averages their 0 in (scikit-learn, torchmetrics).
        sync_on_compute: Combine the statistics of the ranks of the default
            process group in ``compute()``; ``False`` keeps each rank's own.
            No effect outside a process group.

    Shape:
        - ``update`` scores: ``(N, L)``; target: ``(N, L)`` 0/1.

    Raises:
        ValueError: On a bad ``average``, ``absent`` or ``num_bins``; in
            ``update``, if targets are not 0/1 or histogram scores are outside
            ``[0, 1]``.
        ShapeError: In ``update``, if shapes differ or are not ``(N, L)``.

    Example:
        >>> import torch
        >>> ap = MultilabelAveragePrecision(num_labels=2, average="none")
        >>> scores = torch.tensor([[0.1, 0.3], [0.4, 0.2], [0.35, 0.6], [0.8, 0.9]])
        >>> ap.update(scores, torch.tensor([[0, 0], [0, 0], [1, 0], [1, 0]]))
        >>> ap.compute()  # label 1 has no positive target
        tensor([0.8333, 0.0000], dtype=torch.float64)
        >>> ap.average = "macro"
        >>> round(float(ap.compute()), 4)  # label 1 left out (absent="ignore")
        0.8333
    """

    def __init__(
        self,
        num_labels: int,
        *,
        average: Average = "macro",
        num_bins: int | None = None,
        absent: Absent = "ignore",
        sync_on_compute: bool = True,
    ) -> None:
        check_average(average, ("macro", "micro", "none"))
        check_absent(absent)
        if num_bins is not None and num_bins < 2:
            raise ValueError(f"num_bins must be None (exact) or at least 2, got {num_bins}.")
        self.num_labels = num_labels
        self.average = average
        self.num_bins = num_bins
        self.absent = absent
        self.sync_on_compute = sync_on_compute
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
        """Average precision over every batch since the last reset (and every rank).

        Returns:
            Scalar (or ``(L,)`` for ``average="none"``), float64.
        """
        sync = self.sync_on_compute
        if self.num_bins is not None:
            empty = torch.zeros(self.num_labels, self.num_bins, dtype=torch.long)
            pos = sum_over_ranks(empty if self._pos is None else self._pos, enabled=sync)
            neg = sum_over_ranks(empty if self._neg is None else self._neg, enabled=sync)
            if self.average == "micro":
                return _average_precision_histogram(pos.sum(0), neg.sum(0))
            per_label = _average_precision_histogram(pos, neg)  # (L,)
            positives = pos.sum(-1)  # (L,)
        else:
            if self._scores:
                scores, target = torch.cat(self._scores), torch.cat(self._targets)  # (N, L)
            else:  # a rank without data still takes part in the gather
                scores = torch.zeros(0, self.num_labels)
                target = torch.zeros(0, self.num_labels, dtype=torch.uint8)
            scores = cat_over_ranks(scores, enabled=sync)
            target = cat_over_ranks(target, enabled=sync)
            if self.average == "micro":
                return _average_precision_columns(scores.reshape(-1, 1), target.reshape(-1, 1))[0]
            per_label = _average_precision_columns(scores, target)  # (L,)
            positives = target.sum(0)  # (L,)
        if self.average == "none":
            return per_label
        counted = positives > 0 if self.absent == "ignore" else torch.ones_like(positives).bool()
        return macro_mean(per_label, counted, 0.0)


def _one_shot(preds: Tensor, target: Tensor, threshold: float) -> MultilabelConfusionMatrix:
    if preds.ndim != 2:
        raise ShapeError(f"Expected (N, L) multi-label inputs, got {tuple(preds.shape)}.")
    # One-shot functions measure the batch they are given: no collective.
    mcm = MultilabelConfusionMatrix(preds.shape[1], threshold=threshold, sync_on_compute=False)
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
        >>> preds = torch.tensor([[1, 0], [1, 1], [0, 0]])
        >>> target = torch.tensor([[1, 1], [0, 1], [0, 1]])
        >>> multilabel_confusion_matrix(preds, target)[1]  # label 1: TP 1, FN 2
        tensor([[0, 0],
                [2, 1]])
    """
    return _one_shot(preds, target, threshold).compute()


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
        >>> preds = torch.tensor([[1, 0], [1, 1], [0, 0]])
        >>> target = torch.tensor([[1, 1], [0, 1], [0, 0]])
        >>> float(multilabel_accuracy(preds, target))  # 4 of 6 entries
        0.6666666666666666
        >>> float(multilabel_accuracy(preds, target, average="subset"))  # 1 of 3 rows
        0.3333333333333333
    """
    return _one_shot(preds, target, threshold).accuracy(average=average)


def _ratio_of_batch(
    method: Callable[..., Tensor],
    preds: Tensor,
    target: Tensor,
    *,
    average: Average = "macro",
    threshold: float = 0.5,
    zero_division: float = 0.0,
    absent: Absent = "ignore",
) -> Tensor:
    """The shared body of the multi-label ratios (``method`` of MultilabelConfusionMatrix)."""
    mcm = _one_shot(preds, target, threshold)
    return method(mcm, average=average, zero_division=zero_division, absent=absent)


_RATIO_DOC = """{summary} of one multi-label batch.

    See :meth:`MultilabelConfusionMatrix.{method}` for the streaming form.

    Args:
        preds: Probabilities or 0/1 predictions ``(N, L)``.
        target: Multi-hot targets ``(N, L)``.
        average: ``"macro"`` (mean over labels), ``"micro"`` (pooled counts)
            or ``"none"`` (per label).
        threshold: Probability above which a score is a positive prediction.
        zero_division: Value of a label whose ratio is 0/0 (default 0.0);
            NaN leaves it out of the macro mean.
        absent: ``"ignore"`` (default) leaves labels absent from both preds
            and target out of the macro mean; ``"include"`` counts them with
            ``zero_division`` (scikit-learn, torchmetrics' multi-label metrics).

    Returns:
        Scalar (or ``(L,)`` for ``"none"``), float64.

    Shape:
        - preds, target: ``(N, L)``.

    Raises:
        ShapeError: If the shapes differ or are not ``(N, L)``.
        ValueError: On bad values, or an unknown ``average`` or ``absent``.

    Example:
        >>> import torch
        >>> preds = torch.tensor([[0.9, 0.8, 0.1], [0.2, 0.7, 0.3], [0.6, 0.1, 0.2]])
        >>> target = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 1, 0]])  # label 2: absent
        >>> per_label = {name}(preds, target, average="none")
        >>> per_label[2]  # 0/0 gives zero_division
        tensor(0., dtype=torch.float64)
        >>> bool(torch.isclose({name}(preds, target), per_label[:2].mean()))  # "ignore"
        True
        >>> bool(torch.isclose({name}(preds, target, absent="include"), per_label.mean()))
        True
    """


def _bind(
    function: Callable[Concatenate[Callable[..., Tensor], P], Tensor],
    method: Literal["precision", "recall", "f1_score"],
) -> Callable[P, Tensor]:
    """``multilabel_<method>``: ``function`` bound to ``MultilabelConfusionMatrix.<method>``."""
    bound_method = getattr(MultilabelConfusionMatrix, method)
    summary = (bound_method.__doc__ or "").strip().splitlines()[0].rstrip(".")
    doc = _RATIO_DOC.format(summary=summary, method=method, name=f"multilabel_{method}")
    return bind_first(function, bound_method, name=f"multilabel_{method}", doc=doc)


multilabel_precision = _bind(_ratio_of_batch, "precision")
multilabel_recall = _bind(_ratio_of_batch, "recall")
multilabel_f1_score = _bind(_ratio_of_batch, "f1_score")


def multilabel_average_precision(
    scores: Tensor,
    target: Tensor,
    *,
    average: Average = "macro",
    num_bins: int | None = None,
    absent: Absent = "ignore",
) -> Tensor:
    """Multi-label average precision of one batch (see :class:`MultilabelAveragePrecision`).

    Args:
        scores: Scores ``(N, L)``.
        target: Multi-hot targets ``(N, L)``.
        average: ``"macro"``, ``"micro"`` or ``"none"``.
        num_bins: ``None`` for exact AP, or a histogram size.
        absent: ``"ignore"`` (default) leaves labels without positive targets
            out of the macro mean; ``"include"`` averages their AP of 0 in.

    Returns:
        Scalar (or ``(L,)`` for ``"none"``), float64.

    Raises:
        ShapeError: If the shapes differ or are not ``(N, L)``.
        ValueError: If targets are not 0/1, or ``average`` or ``absent`` is unknown.

    Example:
        >>> import torch
        >>> s = torch.tensor([[0.9, 0.1, 0.3], [0.2, 0.8, 0.6], [0.4, 0.05, 0.2]])
        >>> t = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 1, 0]])  # label 2: no positive
        >>> multilabel_average_precision(s, t, average="none")
        tensor([1.0000, 0.8333, 0.0000], dtype=torch.float64)
        >>> round(float(multilabel_average_precision(s, t)), 4)  # labels 0 and 1
        0.9167
        >>> round(float(multilabel_average_precision(s, t, absent="include")), 4)
        0.6111
    """
    if scores.ndim != 2:
        raise ShapeError(f"Expected (N, L) scores, got {tuple(scores.shape)}.")
    metric = MultilabelAveragePrecision(
        scores.shape[1], average=average, num_bins=num_bins, absent=absent, sync_on_compute=False
    )
    metric.update(scores, target)
    return metric.compute()


# Doctest skips functions built in another module (bind_first); list them for it.
__test__ = {f.__name__: f for f in (multilabel_precision, multilabel_recall, multilabel_f1_score)}
