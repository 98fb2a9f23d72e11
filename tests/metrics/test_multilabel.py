from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from geofm.errors import ShapeError
from geofm.metrics import (
    MultilabelAveragePrecision,
    MultilabelConfusionMatrix,
    multilabel_accuracy,
    multilabel_average_precision,
    multilabel_confusion_matrix,
    multilabel_f1_score,
    multilabel_precision,
    multilabel_recall,
)

L = 6


def _data(n: int = 200, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    target = (torch.rand(n, L, generator=g) < 0.3).long()
    scores = (0.35 * target + 0.65 * torch.rand(n, L, generator=g)).clamp(0, 1)
    return scores, target


def _sk(fn, *args: object, **kwargs: object) -> np.ndarray:  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(fn(*args, **kwargs))


def test_confusion_matrices_match_sklearn() -> None:
    scores, target = _data()
    got = multilabel_confusion_matrix(scores, target)
    want = skm.multilabel_confusion_matrix(target.numpy(), (scores > 0.5).long().numpy())
    np.testing.assert_array_equal(got.numpy(), want)


@pytest.mark.parametrize(
    ("fn", "sk_fn"),
    [
        (multilabel_precision, skm.precision_score),
        (multilabel_recall, skm.recall_score),
        (multilabel_f1_score, skm.f1_score),
    ],
)
@pytest.mark.parametrize("average", ["micro", "macro", "none"])
def test_ratios_match_sklearn(fn, sk_fn, average: str) -> None:  # type: ignore[no-untyped-def]
    scores, target = _data()
    scores[:, 2] = 0.0  # label 2 never predicted
    target[:, 4] = 0  # label 4 never present
    got = fn(scores, target, average=average)
    want = _sk(
        sk_fn,
        target.numpy(),
        (scores > 0.5).long().numpy(),
        average=None if average == "none" else average,
        zero_division=0.0,
    )
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


def test_accuracy_variants_match_sklearn() -> None:
    scores, target = _data()
    pred = (scores > 0.5).long().numpy()
    t = target.numpy()
    assert multilabel_accuracy(scores, target).item() == pytest.approx(
        1 - skm.hamming_loss(t, pred)
    )
    assert multilabel_accuracy(scores, target, average="subset").item() == pytest.approx(
        skm.accuracy_score(t, pred)
    )
    per_label = [skm.accuracy_score(t[:, j], pred[:, j]) for j in range(L)]
    np.testing.assert_allclose(multilabel_accuracy(scores, target, average="none"), per_label)
    assert multilabel_accuracy(scores, target, average="macro").item() == pytest.approx(
        np.mean(per_label)
    )


@pytest.mark.parametrize("average", ["micro", "macro", "none"])
def test_average_precision_matches_sklearn(average: Literal["macro", "micro", "none"]) -> None:
    scores, target = _data()
    scores = (scores * 20).round() / 20  # create ties
    got = multilabel_average_precision(scores, target, average=average)
    want = _sk(
        skm.average_precision_score,
        target.numpy(),
        scores.numpy(),
        average=None if average == "none" else average,
    )
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10)


def test_average_precision_label_without_positives_is_zero_like_sklearn() -> None:
    scores, target = _data()
    target[:, 1] = 0
    got = multilabel_average_precision(scores, target, average="none")
    want = _sk(skm.average_precision_score, target.numpy(), scores.numpy(), average=None)
    assert got[1].item() == 0.0
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10)


def test_histogram_average_precision_is_exact_when_scores_sit_in_distinct_bins() -> None:
    scores, target = _data()
    scores = (torch.floor(scores * 50) + 0.5) / 50  # one score value per bin
    exact = multilabel_average_precision(scores, target, average="none")
    binned = multilabel_average_precision(scores, target, average="none", num_bins=50)
    torch.testing.assert_close(binned, exact)
    torch.testing.assert_close(
        multilabel_average_precision(scores, target, average="micro", num_bins=50),
        multilabel_average_precision(scores, target, average="micro"),
    )


def test_histogram_average_precision_approximates_exact() -> None:
    scores, target = _data(n=2000)
    exact = multilabel_average_precision(scores, target)
    binned = multilabel_average_precision(scores, target, num_bins=1000)
    assert abs(binned.item() - exact.item()) < 5e-3


@pytest.mark.parametrize("num_bins", [None, 64])
def test_streaming_equals_one_shot(num_bins: int | None) -> None:
    scores, target = _data(n=301)
    ap = MultilabelAveragePrecision(L, average="macro", num_bins=num_bins)
    mcm = MultilabelConfusionMatrix(L)
    for s, t in zip(scores.split(50), target.split(50), strict=True):
        ap.update(s, t)
        mcm.update(s, t)
    one_shot = multilabel_average_precision(scores, target, num_bins=num_bins)
    torch.testing.assert_close(ap.compute(), one_shot)
    torch.testing.assert_close(mcm.compute(), multilabel_confusion_matrix(scores, target))
    torch.testing.assert_close(
        mcm.accuracy(average="subset"), multilabel_accuracy(scores, target, average="subset")
    )
    torch.testing.assert_close(
        mcm.f1_score(average="micro"), multilabel_f1_score(scores, target, average="micro")
    )
    ap.reset()
    mcm.reset()
    assert mcm.compute().sum() == 0


def test_binary_predictions_are_accepted() -> None:
    scores, target = _data()
    pred = (scores > 0.5).long()
    torch.testing.assert_close(
        multilabel_f1_score(pred, target), multilabel_f1_score(scores, target)
    )


def test_rejects_bad_inputs() -> None:
    scores, target = _data(n=4)
    with pytest.raises(ShapeError, match="same shape"):
        multilabel_f1_score(scores, target[:3])
    with pytest.raises(ValueError, match="only 0 and 1"):
        multilabel_f1_score(scores, target * 2)
    with pytest.raises(ValueError, match="Apply torch.sigmoid"):
        multilabel_f1_score(scores * 4 - 2, target)
    with pytest.raises(ShapeError, match=r"Expected \(N, 3\)"):
        MultilabelConfusionMatrix(3).update(scores, target)
    with pytest.raises(ValueError, match="scores in \\[0, 1\\]"):
        multilabel_average_precision(scores - 1, target, num_bins=10)
    with pytest.raises(ValueError, match="num_bins"):
        MultilabelAveragePrecision(L, num_bins=1)
