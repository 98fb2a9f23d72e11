"""Streaming evaluation metrics for segmentation, classification, multi-label and regression.

Every metric exists as a streaming class (``update`` per batch, ``compute``,
``reset``) that keeps only fixed-size sufficient statistics, and as a
one-shot function. Definitions follow scikit-learn and torchmetrics (the
tests check parity with both):

- Multi-class (segmentation or classification): a ``num_classes x
  num_classes`` confusion matrix (rows: true class, columns: predicted
  class) gives IoU (Jaccard), precision, recall, F1 and accuracy with
  ``average="macro"`` (unweighted mean over classes), ``"micro"`` (pooled
  counts) or ``"none"`` (per class). Samples whose target equals
  ``ignore_index`` are dropped; if ``ignore_index`` is itself a class index,
  that class is also left out of the averages (its per-class entry is NaN).
  A class whose ratio is 0/0 gets ``zero_division`` (default 0.0, like
  scikit-learn and torchmetrics; ``float("nan")`` leaves such classes out of
  the macro mean). A class absent from both predictions and targets is left
  out of the macro mean by default (``absent="ignore"``, torchmetrics' rule
  and the usual mean IoU); ``absent="include"`` counts it with
  ``zero_division`` (scikit-learn with ``labels=range(C)``).
- Top-k accuracy from class scores.
- Multi-label: per-label 2x2 confusion matrices (scikit-learn's
  ``multilabel_confusion_matrix`` layout) give element-wise ("micro") and
  per-label accuracy, exact-match ("subset") accuracy, precision, recall and
  F1 (with the same ``zero_division`` and ``absent`` rules); average
  precision is exact (it keeps every score: 5 bytes per sample and label)
  unless ``num_bins`` selects a fixed-size score histogram.
- Regression: MAE, RMSE and R^2, accumulated in float64 with Chan's parallel
  variance update so streaming equals one-shot.

Under ``torch.distributed`` (an initialised default process group),
``compute()`` of every streaming class, and every ratio read from a
confusion matrix, combines the statistics of all ranks, as torchmetrics'
``sync_on_compute=True`` does, so every rank must make the same calls; the
local state is left as it was. ``sync_on_compute=False`` keeps per-rank
results. The one-shot functions never communicate.

Only torch is imported. Statistics live on the device of the first batch.

References:
    scikit-learn metrics (``sklearn.metrics``), https://scikit-learn.org.
    torchmetrics, https://lightning.ai/docs/torchmetrics.
    Chan, Golub and LeVeque, "Updating formulae and a pairwise algorithm for
    computing sample variances", 1979.

Example:
    >>> import torch
    >>> from geofm.metrics import ConfusionMatrix
    >>> cm = ConfusionMatrix(num_classes=3, ignore_index=255)
    >>> cm.update(torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 1, 255]))
    >>> cm.update(torch.tensor([2]), torch.tensor([2]))
    >>> cm.iou(average="none")
    tensor([1.0000, 0.5000, 0.5000], dtype=torch.float64)
    >>> float(cm.accuracy(average="micro"))
    0.75
"""

from __future__ import annotations

from geofm.metrics.classification import (
    ConfusionMatrix,
    TopKAccuracy,
    accuracy,
    confusion_matrix,
    f1_score,
    iou,
    precision,
    recall,
    topk_accuracy,
)
from geofm.metrics.multilabel import (
    MultilabelAveragePrecision,
    MultilabelConfusionMatrix,
    multilabel_accuracy,
    multilabel_average_precision,
    multilabel_confusion_matrix,
    multilabel_f1_score,
    multilabel_precision,
    multilabel_recall,
)
from geofm.metrics.regression import (
    MeanAbsoluteError,
    R2Score,
    RootMeanSquaredError,
    mean_absolute_error,
    r2_score,
    root_mean_squared_error,
)

# By family, in the order of the table in docs/metrics.md.
__all__ = [
    "ConfusionMatrix",
    "confusion_matrix",
    "iou",
    "precision",
    "recall",
    "f1_score",
    "accuracy",
    "TopKAccuracy",
    "topk_accuracy",
    "MultilabelConfusionMatrix",
    "multilabel_confusion_matrix",
    "multilabel_accuracy",
    "multilabel_precision",
    "multilabel_recall",
    "multilabel_f1_score",
    "MultilabelAveragePrecision",
    "multilabel_average_precision",
    "MeanAbsoluteError",
    "mean_absolute_error",
    "RootMeanSquaredError",
    "root_mean_squared_error",
    "R2Score",
    "r2_score",
]
