"""Streaming evaluation metrics for segmentation, classification, multi-label and regression.

Every metric exists as a streaming class (``update`` per batch, ``compute``,
``reset``) that keeps only fixed-size sufficient statistics, and as a
one-shot function. Definitions follow scikit-learn (the tests check parity):

- Multi-class (segmentation or classification): a ``num_classes x
  num_classes`` confusion matrix (rows: true class, columns: predicted
  class) gives IoU (Jaccard), precision, recall, F1 and accuracy with
  ``average="macro"`` (unweighted mean over classes), ``"micro"`` (pooled
  counts) or ``"none"`` (per class). Samples whose target equals
  ``ignore_index`` are dropped; if ``ignore_index`` is itself a class index,
  that class is also left out of the averages (its per-class entry is NaN).
  A class whose ratio is 0/0 gets ``zero_division`` (default 0.0, like
  scikit-learn; pass ``float("nan")`` to leave such classes out of the macro
  mean, as scikit-learn does with ``zero_division=np.nan``).
- Top-k accuracy from class scores.
- Multi-label: per-label 2x2 confusion matrices (scikit-learn's
  ``multilabel_confusion_matrix`` layout) give element-wise ("micro") and
  per-label accuracy, exact-match ("subset") accuracy, precision, recall and
  F1; average precision is exact (it keeps every score: 5 bytes per sample
  and label) unless ``num_bins`` selects a fixed-size score histogram.
- Regression: MAE, RMSE and R^2, accumulated in float64 with Chan's parallel
  variance update so streaming equals one-shot.

Only torch is imported. Statistics live on the device of the first batch.

References:
    scikit-learn metrics (``sklearn.metrics``), https://scikit-learn.org.
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

__all__ = [
    "ConfusionMatrix",
    "MeanAbsoluteError",
    "MultilabelAveragePrecision",
    "MultilabelConfusionMatrix",
    "R2Score",
    "RootMeanSquaredError",
    "TopKAccuracy",
    "accuracy",
    "confusion_matrix",
    "f1_score",
    "iou",
    "mean_absolute_error",
    "multilabel_accuracy",
    "multilabel_average_precision",
    "multilabel_confusion_matrix",
    "multilabel_f1_score",
    "multilabel_precision",
    "multilabel_recall",
    "precision",
    "r2_score",
    "recall",
    "root_mean_squared_error",
    "topk_accuracy",
]
