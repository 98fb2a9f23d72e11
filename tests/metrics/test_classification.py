from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Literal

import numpy as np
import pytest
import torch
import torchmetrics.functional.classification as tmf
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
GEOFM_ALL = {**GEOFM_RATIO, "accuracy": accuracy}
TORCHMETRICS: dict[str, Callable[..., torch.Tensor]] = {
    "iou": tmf.multiclass_jaccard_index,
    "precision": tmf.multiclass_precision,
    "recall": tmf.multiclass_recall,
    "f1_score": tmf.multiclass_f1_score,
    "accuracy": tmf.multiclass_accuracy,
}


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
def test_absent_classes_follow_sklearn_with_every_label_under_include(
    name: str, zero_division: float
) -> None:
    preds, target = _data(num_classes=3)  # classes 3 and 4 never occur in preds or target
    for average in ("macro", "none"):
        got = GEOFM_RATIO[name](
            preds,
            target,
            num_classes=C,
            average=average,
            zero_division=zero_division,
            absent="include",
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


@pytest.mark.parametrize("zero_division", [0.0, 1.0])
@pytest.mark.parametrize("name", list(SK_RATIO))
def test_absent_classes_are_left_out_of_the_macro_mean_under_ignore(
    name: str, zero_division: float
) -> None:
    preds, target = _data(num_classes=3)
    got = GEOFM_RATIO[name](preds, target, num_classes=C, zero_division=zero_division)
    # scikit-learn restricted to the classes that occur: the written-out "ignore" rule.
    want = _sklearn(name, preds, target, labels=[0, 1, 2], average="macro")
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    included = GEOFM_RATIO[name](
        preds, target, num_classes=C, zero_division=zero_division, absent="include"
    )
    assert abs(float(got) - float(included)) > 0.05  # the data tells the two rules apart


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


def _torchmetrics_maps() -> tuple[torch.Tensor, torch.Tensor]:
    """(4, 10, 7) maps over 6 classes: class 3 is never predicted, class 4 is never a target,
    class 5 occurs nowhere, and about 10 % of the targets are 255 (ignored)."""
    g = torch.Generator().manual_seed(3)
    target = torch.randint(0, 4, (4, 10, 7), generator=g)
    noise = torch.tensor([0, 1, 2, 4])[torch.randint(0, 4, (4, 10, 7), generator=g)]
    preds = torch.where(torch.rand(4, 10, 7, generator=g) < 0.55, target, noise)
    preds[preds == 3] = 4
    target[torch.rand(4, 10, 7, generator=g) < 0.1] = 255
    return preds, target


def _torchmetrics(
    name: str, preds: torch.Tensor, target: torch.Tensor, average: str
) -> torch.Tensor:
    return TORCHMETRICS[name](preds, target, num_classes=6, average=average, ignore_index=255)


@pytest.mark.parametrize("name", list(GEOFM_ALL))
@pytest.mark.parametrize("average", ["macro", "micro", "none"])
def test_matches_torchmetrics_under_absent_ignore(name: str, average: Average) -> None:
    preds, target = _torchmetrics_maps()
    got = GEOFM_ALL[name](
        preds, target, num_classes=6, average=average, ignore_index=255, absent="ignore"
    )
    want = _torchmetrics(name, preds, target, average)
    np.testing.assert_allclose(got.numpy(), want.double().numpy(), rtol=1e-6)


@pytest.mark.parametrize("name", list(GEOFM_ALL))
def test_include_is_the_plain_mean_of_torchmetrics_per_class_values(name: str) -> None:
    preds, target = _torchmetrics_maps()
    got = GEOFM_ALL[name](
        preds, target, num_classes=6, average="macro", ignore_index=255, absent="include"
    )
    per_class = _torchmetrics(name, preds, target, "none")  # absent class 5 scores 0 there
    assert float(per_class[5]) == 0.0
    np.testing.assert_allclose(float(got), float(per_class.double().mean()), rtol=1e-6)
    # the absent class is the only difference between the two rules
    ignored = GEOFM_ALL[name](preds, target, num_classes=6, average="macro", ignore_index=255)
    np.testing.assert_allclose(float(ignored) * 5 / 6, float(got), rtol=1e-12)


@pytest.mark.parametrize("absent", ["ignore", "include"])
def test_streaming_methods_match_the_functions_for_both_absent_rules(
    absent: Literal["ignore", "include"],
) -> None:
    preds, target = _torchmetrics_maps()
    cm = ConfusionMatrix(6, ignore_index=255)
    for p, t in zip(preds.split(3), target.split(3), strict=True):  # batches of 3 and 1
        cm.update(p, t)
    for name, fn in GEOFM_ALL.items():
        for average in ("macro", "none"):
            torch.testing.assert_close(
                getattr(cm, name)(average=average, absent=absent),
                fn(preds, target, num_classes=6, average=average, ignore_index=255, absent=absent),
            )


# Hand-computed example for the documented defaults (average, zero_division=0.0,
# absent="ignore"); preds/target over 5 classes:
#   class 0: TP 3, FP 2, FN 1    class 1: TP 1, FP 1, FN 2
#   class 2: TP 0, FP 2, FN 0 (predicted, never a target: recall 0/0)
#   class 3: TP 0, FP 0, FN 2 (a target, never predicted: precision 0/0)
#   class 4: absent from both (every ratio 0/0)
DEFAULT_PREDS = torch.tensor([0, 0, 1, 2, 0, 1, 0, 2, 0])
DEFAULT_TARGET = torch.tensor([0, 1, 1, 0, 1, 3, 0, 3, 0])
DEFAULT_MACRO = {  # mean over classes 0-3 (class 4 absent); 0/0 -> 0.0
    "iou": (3 / 6 + 1 / 4 + 0 + 0) / 4,
    "precision": (3 / 5 + 1 / 2 + 0 + 0.0) / 4,
    "recall": (3 / 4 + 1 / 3 + 0.0 + 0) / 4,
    "f1_score": (6 / 9 + 2 / 5 + 0 + 0) / 4,
}


def test_hand_computed_counts_of_the_defaults_example() -> None:
    cm = confusion_matrix(DEFAULT_PREDS, DEFAULT_TARGET, num_classes=5)
    tp = cm.diagonal()
    assert tp.tolist() == [3, 1, 0, 0, 0]
    assert (cm.sum(0) - tp).tolist() == [2, 1, 2, 0, 0]  # FP
    assert (cm.sum(1) - tp).tolist() == [1, 2, 0, 2, 0]  # FN


@pytest.mark.parametrize("name", list(DEFAULT_MACRO))
def test_ratio_defaults_are_macro_zero_division_zero_and_absent_ignore(name: str) -> None:
    fn = GEOFM_RATIO[name]
    got = float(fn(DEFAULT_PREDS, DEFAULT_TARGET, num_classes=5))
    assert got == pytest.approx(DEFAULT_MACRO[name], abs=1e-12)
    # the example tells each default from its alternatives
    others = [
        fn(DEFAULT_PREDS, DEFAULT_TARGET, num_classes=5, average="micro"),
        fn(DEFAULT_PREDS, DEFAULT_TARGET, num_classes=5, absent="include"),
        fn(DEFAULT_PREDS, DEFAULT_TARGET, num_classes=5, zero_division=1.0, absent="include"),
    ]
    assert all(abs(float(o) - got) > 1e-3 for o in others)
    stream = ConfusionMatrix(5)
    stream.update(DEFAULT_PREDS, DEFAULT_TARGET)
    assert float(getattr(stream, name)()) == pytest.approx(DEFAULT_MACRO[name], abs=1e-12)


@pytest.mark.parametrize("name", ["precision", "recall"])
def test_default_zero_division_scores_a_present_zero_over_zero_class_as_zero(name: str) -> None:
    # precision of class 3 and recall of class 2 are 0/0 while the class takes part
    # in the macro mean, so the default 0.0 (not 1.0, not NaN) shows in the result.
    per_class = GEOFM_RATIO[name](DEFAULT_PREDS, DEFAULT_TARGET, num_classes=5, average="none")
    zero_over_zero = 3 if name == "precision" else 2
    assert float(per_class[zero_over_zero]) == 0.0
    assert float(per_class[4]) == 0.0  # absent class: 0/0 -> zero_division in "none"
    with_one = GEOFM_RATIO[name](DEFAULT_PREDS, DEFAULT_TARGET, num_classes=5, zero_division=1.0)
    assert float(with_one) == pytest.approx(DEFAULT_MACRO[name] + 1 / 4, abs=1e-12)


def test_accuracy_defaults_to_overall_accuracy() -> None:
    got = accuracy(DEFAULT_PREDS, DEFAULT_TARGET, num_classes=5)
    assert float(got) == pytest.approx(4 / 9, abs=1e-12)  # 4 of 9 samples right
    macro = accuracy(DEFAULT_PREDS, DEFAULT_TARGET, num_classes=5, average="macro")
    assert float(macro) == pytest.approx(DEFAULT_MACRO["recall"], abs=1e-12)
    cm = ConfusionMatrix(5)
    cm.update(DEFAULT_PREDS, DEFAULT_TARGET)
    assert float(cm.accuracy()) == pytest.approx(4 / 9, abs=1e-12)


def test_macro_over_no_counted_class_is_zero_division() -> None:
    cm = ConfusionMatrix(3)  # nothing seen: every class absent
    assert float(cm.iou()) == 0.0
    assert np.isnan(float(cm.iou(zero_division=float("nan"))))
    assert float(cm.f1_score(zero_division=1.0)) == 1.0


def test_rejects_unknown_absent_rule() -> None:
    with pytest.raises(ValueError, match="absent must be 'ignore' or 'include', got 'skip'"):
        iou(DEFAULT_PREDS, DEFAULT_TARGET, num_classes=5, absent="skip")  # type: ignore[arg-type]
