from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from geofm.errors import ShapeError
from geofm.metrics import (
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

C = 5
Average = Literal["macro", "micro", "none"]
SK_RATIO = {
    "iou": skm.jaccard_score,
    "precision": skm.precision_score,
    "recall": skm.recall_score,
    "f1_score": skm.f1_score,
}
GEOFM_RATIO = {"iou": iou, "precision": precision, "recall": recall, "f1_score": f1_score}


def _data(n: int = 300, num_classes: int = C, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, num_classes, (n,), generator=g)
    preds = torch.where(
        torch.rand(n, generator=g) < 0.6, target, torch.randint(0, num_classes, (n,), generator=g)
    )
    return preds, target


def _sklearn(name: str, preds: torch.Tensor, target: torch.Tensor, **kwargs: object) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(SK_RATIO[name](target.numpy(), preds.numpy(), **kwargs))


@pytest.mark.parametrize("name", list(SK_RATIO))
@pytest.mark.parametrize("average", ["macro", "micro", "none"])
def test_ratios_match_sklearn(name: str, average: Average) -> None:
    preds, target = _data()
    got = GEOFM_RATIO[name](preds, target, num_classes=C, average=average)
    want = _sklearn(
        name, preds, target, labels=list(range(C)), average=None if average == "none" else average
    )
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


@pytest.mark.parametrize("name", list(SK_RATIO))
@pytest.mark.parametrize("ignore_index", [255, 2])
def test_ignore_index_matches_sklearn_on_kept_samples(name: str, ignore_index: int) -> None:
    preds, target = _data()
    target[::7] = ignore_index
    keep = target != ignore_index
    labels = [c for c in range(C) if c != ignore_index]
    for average in ("macro", "micro", "none"):
        got = GEOFM_RATIO[name](
            preds, target, num_classes=C, average=average, ignore_index=ignore_index
        )
        want = _sklearn(
            name,
            preds[keep],
            target[keep],
            labels=labels,
            average=None if average == "none" else average,
        )
        if average == "none":
            got = got[labels]
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


def test_ignore_class_is_nan_in_per_class_output() -> None:
    preds, target = _data()
    per_class = iou(preds, target, num_classes=C, average="none", ignore_index=2)
    assert torch.isnan(per_class[2])
    assert not torch.isnan(per_class[[0, 1, 3, 4]]).any()


@pytest.mark.parametrize("zero_division", [0.0, 1.0])
@pytest.mark.parametrize("name", list(SK_RATIO))
def test_empty_classes_use_zero_division_like_sklearn(name: str, zero_division: float) -> None:
    preds, target = _data(num_classes=3)  # classes 3 and 4 never occur
    for average in ("macro", "none"):
        got = GEOFM_RATIO[name](
            preds, target, num_classes=C, average=average, zero_division=zero_division
        )
        want = _sklearn(
            name,
            preds,
            target,
            labels=list(range(C)),
            average=None if average == "none" else average,
            zero_division=zero_division,
        )
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


@pytest.mark.parametrize("name", ["precision", "recall", "f1_score"])
def test_nan_zero_division_drops_classes_from_macro_like_sklearn(name: str) -> None:
    preds, target = _data(num_classes=3)
    got = GEOFM_RATIO[name](preds, target, num_classes=C, zero_division=float("nan"))
    want = _sklearn(
        name, preds, target, labels=list(range(C)), average="macro", zero_division=np.nan
    )
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


def test_single_class() -> None:
    target = torch.zeros(10, dtype=torch.long)
    preds = torch.zeros(10, dtype=torch.long)
    assert iou(preds, target, num_classes=1).item() == 1.0
    assert accuracy(preds, target, num_classes=1).item() == 1.0
    preds[3] = 1
    got = f1_score(preds, target, num_classes=2, average="none")
    want = _sklearn("f1_score", preds, target, labels=[0, 1], average=None)
    np.testing.assert_allclose(got.numpy(), want)


def test_accuracy_matches_sklearn() -> None:
    preds, target = _data()
    assert accuracy(preds, target, num_classes=C).item() == pytest.approx(
        skm.accuracy_score(target.numpy(), preds.numpy())
    )
    assert accuracy(preds, target, num_classes=C, average="macro").item() == pytest.approx(
        skm.balanced_accuracy_score(target.numpy(), preds.numpy())
    )
    target[::5] = 255
    keep = target != 255
    assert accuracy(preds, target, num_classes=C, ignore_index=255).item() == pytest.approx(
        skm.accuracy_score(target[keep].numpy(), preds[keep].numpy())
    )


def test_confusion_matrix_matches_sklearn_for_scores_and_maps() -> None:
    g = torch.Generator().manual_seed(1)
    scores = torch.randn(2, C, 6, 7, generator=g)
    target = torch.randint(0, C, (2, 6, 7), generator=g)
    got = confusion_matrix(scores, target, num_classes=C)
    want = skm.confusion_matrix(
        target.flatten().numpy(), scores.argmax(1).flatten().numpy(), labels=list(range(C))
    )
    np.testing.assert_array_equal(got.numpy(), want)


def test_streaming_equals_one_shot() -> None:
    preds, target = _data(n=500)
    target[::11] = 255
    cm = ConfusionMatrix(C, ignore_index=255)
    for p, t in zip(preds.split(37), target.split(37), strict=True):
        cm.update(p, t)
    one_shot = confusion_matrix(preds, target, num_classes=C, ignore_index=255)
    torch.testing.assert_close(cm.compute(), one_shot)
    for name in GEOFM_RATIO:
        torch.testing.assert_close(
            getattr(cm, name)(average="macro"),
            GEOFM_RATIO[name](preds, target, num_classes=C, ignore_index=255),
        )
    cm.reset()
    assert cm.compute().sum() == 0


def test_rejects_label_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"outside \[0, 4\]: found min 0, max 7"):
        iou(torch.tensor([0, 1]), torch.tensor([0, 7]), num_classes=C)
    with pytest.raises(ValueError, match="preds contains labels outside"):
        iou(torch.tensor([0, -1]), torch.tensor([0, 1]), num_classes=C)


def test_rejects_mismatched_shapes() -> None:
    with pytest.raises(ShapeError, match=r"same shape, got \(3,\) and \(4,\)"):
        iou(torch.zeros(3, dtype=torch.long), torch.zeros(4, dtype=torch.long), num_classes=C)
    with pytest.raises(ShapeError, match="expected \\(N, 5, ...\\) scores"):
        iou(torch.randn(4, 3), torch.zeros(4, dtype=torch.long), num_classes=C)


def test_rejects_float_labels_and_bad_average() -> None:
    with pytest.raises(ValueError, match="integer class indices"):
        iou(torch.zeros(3), torch.zeros(3, dtype=torch.long), num_classes=C)
    with pytest.raises(ValueError, match="average must be one of"):
        iou(
            torch.zeros(3, dtype=torch.long),
            torch.zeros(3, dtype=torch.long),
            num_classes=C,
            average="weighted",  # type: ignore[arg-type]
        )


@pytest.mark.parametrize("k", [1, 2, 5])
def test_topk_matches_sklearn(k: int) -> None:
    g = torch.Generator().manual_seed(2)
    scores = torch.randn(200, 8, generator=g)
    target = torch.randint(0, 8, (200,), generator=g)
    want = skm.top_k_accuracy_score(target.numpy(), scores.numpy(), k=k, labels=list(range(8)))
    assert topk_accuracy(scores, target, k=k).item() == pytest.approx(want)
    stream = TopKAccuracy(k=k)
    for s, t in zip(scores.split(64), target.split(64), strict=True):
        stream.update(s, t)
    assert stream.compute().item() == pytest.approx(want)


def test_topk_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="k=6 exceeds the number of classes 5"):
        topk_accuracy(torch.randn(3, 5), torch.zeros(3, dtype=torch.long), k=6)
    with pytest.raises(ShapeError, match="scores \\(N, C, ...\\)"):
        topk_accuracy(torch.randn(3, 5), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="outside"):
        topk_accuracy(torch.randn(3, 5), torch.tensor([0, 1, 9]))
