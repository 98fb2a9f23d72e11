from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import pytest
import torch
import torchmetrics.functional.classification as tmf
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
    target[:, 5], scores[:, 5] = 0, 0.2  # label 5 absent from preds and target
    got = fn(scores, target, average=average, absent="include")
    want = _sk(
        sk_fn,
        target.numpy(),
        (scores > 0.5).long().numpy(),
        average=None if average == "none" else average,
        zero_division=0.0,
    )
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


def test_absent_labels_are_left_out_of_the_macro_mean_by_default() -> None:
    scores, target = _data()
    target[:, 5], scores[:, 5] = 0, 0.2  # label 5 absent from preds and target
    pred = (scores > 0.5).long().numpy()
    for fn, sk_fn in (
        (multilabel_precision, skm.precision_score),
        (multilabel_recall, skm.recall_score),
        (multilabel_f1_score, skm.f1_score),
    ):
        got = fn(scores, target)  # defaults: macro, zero_division=0.0, absent="ignore"
        want = _sk(sk_fn, target[:, :5].numpy(), pred[:, :5], average="macro", zero_division=0.0)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
        assert float(fn(scores, target, absent="include")) == pytest.approx(float(got) * 5 / 6)


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


def _torchmetrics_data() -> tuple[torch.Tensor, torch.Tensor]:
    """(37, 5): label 1 never predicted, label 2 never a target, label 3 absent from both."""
    g = torch.Generator().manual_seed(5)
    target = (torch.rand(37, 5, generator=g) < 0.4).long()
    scores = (0.3 * target + 0.7 * torch.rand(37, 5, generator=g)).clamp(0, 1)
    scores[:, 1] = 0.3 * scores[:, 1]
    target[:, 2] = 0
    scores[:, 2] = 0.2 + 0.6 * scores[:, 2]
    target[:, 3], scores[:, 3] = 0, 0.1
    return scores, target


TM_RATIO = [
    (multilabel_precision, tmf.multilabel_precision),
    (multilabel_recall, tmf.multilabel_recall),
    (multilabel_f1_score, tmf.multilabel_f1_score),
]


@pytest.mark.parametrize(("fn", "tm_fn"), TM_RATIO)
@pytest.mark.parametrize("average", ["micro", "macro", "none"])
def test_ratios_match_torchmetrics_under_include(fn, tm_fn, average: str) -> None:  # type: ignore[no-untyped-def]
    scores, target = _torchmetrics_data()
    got = fn(scores, target, average=average, absent="include")
    want = tm_fn(scores, target, num_labels=5, average=average)
    np.testing.assert_allclose(got.numpy(), want.double().numpy(), rtol=1e-6)


@pytest.mark.parametrize(("fn", "tm_fn"), TM_RATIO)
def test_ratios_under_ignore_average_torchmetrics_values_of_present_labels(fn, tm_fn) -> None:  # type: ignore[no-untyped-def]
    scores, target = _torchmetrics_data()
    per_label = tm_fn(scores, target, num_labels=5, average="none")
    present = torch.tensor([True, True, True, False, True])  # label 3: TP + FP + FN = 0
    np.testing.assert_allclose(
        float(fn(scores, target)), float(per_label[present].mean()), rtol=1e-6
    )
    np.testing.assert_allclose(
        fn(scores, target, average="none").numpy(), per_label.numpy(), rtol=1e-6
    )


NO_POSITIVES_WARNING = "ignore:No positive samples found in target:UserWarning"  # torchmetrics


@pytest.mark.filterwarnings(NO_POSITIVES_WARNING)
@pytest.mark.parametrize("num_bins", [None, 1000])
@pytest.mark.parametrize("average", ["micro", "macro", "none"])
def test_average_precision_matches_torchmetrics_under_include(
    num_bins: int | None, average: Literal["macro", "micro", "none"]
) -> None:
    scores, target = _torchmetrics_data()
    scores = (scores * 100).round() / 100 + 5e-4  # one score value per bin of 1/1000
    got = multilabel_average_precision(
        scores, target, average=average, num_bins=num_bins, absent="include"
    )
    want = tmf.multilabel_average_precision(scores, target, num_labels=5, average=average)
    np.testing.assert_allclose(got.numpy(), want.double().numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.filterwarnings(NO_POSITIVES_WARNING)
@pytest.mark.parametrize("num_bins", [None, 1000])
def test_average_precision_default_leaves_labels_without_positives_out(
    num_bins: int | None,
) -> None:
    scores, target = _torchmetrics_data()
    scores = (scores * 100).round() / 100 + 5e-4
    per_label = tmf.multilabel_average_precision(scores, target, num_labels=5, average="none")
    with_positives = target.sum(0) > 0  # labels 2 and 3 have none
    assert with_positives.tolist() == [True, True, False, False, True]
    want = float(per_label[with_positives].mean())
    got = multilabel_average_precision(scores, target, num_bins=num_bins)
    assert float(got) == pytest.approx(want, rel=1e-5)
    stream = MultilabelAveragePrecision(5, num_bins=num_bins)
    for s, t in zip(scores.split(10), target.split(10), strict=True):
        stream.update(s, t)
    assert float(stream.compute()) == pytest.approx(want, rel=1e-5)
    assert float(stream.compute()) > float(per_label.mean()) + 0.1  # include would be lower


# Hand-computed example for the documented defaults (average="macro", threshold=0.5,
# zero_division=0.0, absent="ignore"); 5 samples, 4 labels:
#   label 0: TP 2, FP 1, FN 2 (the 0.5 score at a positive target is a negative: > 0.5)
#   label 1: TP 0, FP 2, FN 0 (predicted, never a target: recall 0/0)
#   label 2: TP 0, FP 0, FN 2 (a target, never predicted: precision 0/0)
#   label 3: absent from both
DEFAULT_SCORES = torch.tensor(
    [
        [0.8, 0.9, 0.3, 0.1],
        [0.7, 0.2, 0.4, 0.2],
        [0.9, 0.6, 0.1, 0.3],
        [0.2, 0.1, 0.2, 0.4],
        [0.5, 0.3, 0.2, 0.1],
    ]
)
DEFAULT_TARGET = torch.tensor(
    [[1, 0, 1, 0], [0, 0, 1, 0], [1, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0]]
)


def test_multilabel_defaults_on_a_hand_computed_example() -> None:
    mcm = multilabel_confusion_matrix(DEFAULT_SCORES, DEFAULT_TARGET)
    assert mcm[:, 1, 1].tolist() == [2, 0, 0, 0]  # TP
    assert mcm[:, 0, 1].tolist() == [1, 2, 0, 0]  # FP
    assert mcm[:, 1, 0].tolist() == [2, 0, 2, 0]  # FN
    want = {
        multilabel_precision: (2 / 3 + 0 + 0.0) / 3,
        multilabel_recall: (2 / 4 + 0.0 + 0) / 3,
        multilabel_f1_score: (4 / 7 + 0 + 0) / 3,
    }
    for fn, value in want.items():
        got = float(fn(DEFAULT_SCORES, DEFAULT_TARGET))
        assert got == pytest.approx(value, abs=1e-12)
        others = [
            fn(DEFAULT_SCORES, DEFAULT_TARGET, average="micro"),
            fn(DEFAULT_SCORES, DEFAULT_TARGET, absent="include"),
            fn(DEFAULT_SCORES, DEFAULT_TARGET, threshold=0.45),
        ]
        if fn is not multilabel_f1_score:  # F1 of a present label is never 0/0
            others.append(fn(DEFAULT_SCORES, DEFAULT_TARGET, zero_division=1.0))
        for other in others:
            assert abs(float(other) - got) > 1e-3
    assert float(multilabel_accuracy(DEFAULT_SCORES, DEFAULT_TARGET)) == pytest.approx(13 / 20)
    stream = MultilabelConfusionMatrix(4)
    stream.update(DEFAULT_SCORES, DEFAULT_TARGET)
    assert float(stream.f1_score()) == pytest.approx(want[multilabel_f1_score], abs=1e-12)
