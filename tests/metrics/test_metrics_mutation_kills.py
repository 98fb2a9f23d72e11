"""Tests written against the surviving mutants of ``geofm.metrics`` (see reports/mutation.md).

Values are checked against scikit-learn where it has the metric, errors by type
and message, and the documented defaults are exercised without passing them.
"""

from __future__ import annotations

import inspect
import re

import pytest
import torch
import torch.distributed as dist
from sklearn import metrics as skm

import geofm.metrics as metrics
from geofm.errors import ShapeError
from geofm.metrics import TopKAccuracy, classification, multilabel, regression, topk_accuracy
from geofm.metrics import _common as common


# --- helpers that build the public functions ------------------------------------------
@pytest.mark.parametrize(
    ("name", "summary", "average"),
    [
        ("iou", "Intersection over union (Jaccard index) TP / (TP + FP + FN)", "macro"),
        ("precision", "Precision TP / (TP + FP)", "macro"),
        ("f1_score", "F1 score 2 TP / (2 TP + FP + FN)", "macro"),
        (
            "accuracy",
            'Accuracy: overall (``"micro"``, pixel accuracy) or mean class recall (``"macro"``)',
            "micro",
        ),
    ],
)
def test_ratio_doc_is_the_public_docstring(name: str, summary: str, average: str) -> None:
    doc = (
        classification._ratio_doc(name)
        if average == "macro"
        else classification._ratio_doc(name, average)
    )
    assert doc == getattr(metrics, name).__doc__
    assert doc.startswith(f"{summary} of one batch.\n")
    assert f"See :meth:`ConfusionMatrix.{name}` for the streaming form." in doc
    assert f'default ``"{average}"``.' in doc
    assert f">>> per_class = {name}(preds, target, num_classes=4" in doc


@pytest.mark.parametrize("method", ["precision", "recall", "f1_score"])
def test_multilabel_bind_rebuilds_the_public_function(method: str) -> None:
    public = getattr(metrics, f"multilabel_{method}")
    rebuilt = multilabel._bind(multilabel._ratio_of_batch, method)  # type: ignore[arg-type]
    assert rebuilt.__name__ == rebuilt.__qualname__ == f"multilabel_{method}"
    assert rebuilt.__doc__ == public.__doc__
    assert inspect.signature(rebuilt) == inspect.signature(public)
    doc = rebuilt.__doc__ or ""
    summary = getattr(multilabel.MultilabelConfusionMatrix, method).__doc__.splitlines()[0]
    assert doc.startswith(f"{summary.rstrip('.')} of one multi-label batch.\n")
    assert f"MultilabelConfusionMatrix.{method}`" in doc
    assert f"per_label = multilabel_{method}(preds, target" in doc
    preds = torch.tensor([[0.9, 0.8, 0.1], [0.2, 0.7, 0.3], [0.6, 0.1, 0.2], [0.7, 0.9, 0.6]])
    target = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 1, 0], [1, 1, 1]])
    sk = {"precision": skm.precision_score, "recall": skm.recall_score, "f1_score": skm.f1_score}
    want = sk[method](target.numpy(), (preds > 0.5).int().numpy(), average="macro")
    assert float(rebuilt(preds, target)) == pytest.approx(want)


@pytest.mark.parametrize(
    ("name", "cls", "sk_fn"),
    [
        ("mean_absolute_error", regression.MeanAbsoluteError, skm.mean_absolute_error),
        ("root_mean_squared_error", regression.RootMeanSquaredError, skm.root_mean_squared_error),
        ("r2_score", regression.R2Score, skm.r2_score),
    ],
)
def test_regression_bind_rebuilds_the_public_function(name: str, cls: type, sk_fn: object) -> None:
    public = getattr(metrics, name)
    rebuilt = regression._bind(regression._of_batch, cls, name)
    assert rebuilt.__name__ == rebuilt.__qualname__ == name
    assert rebuilt.__module__ == "geofm.metrics.regression"
    assert rebuilt.__doc__ == public.__doc__
    assert inspect.signature(rebuilt) == inspect.signature(public)
    doc = rebuilt.__doc__ or ""
    summary = name.replace("_", " ").capitalize()
    assert doc.startswith(f"{summary} of one batch (see :class:`{cls.__name__}`).\n")
    assert f">>> per_output = {name}(preds, target" in doc
    preds = torch.tensor([[1.0, 2.0], [2.0, 0.0], [4.0, 1.0]])
    target = torch.tensor([[0.0, 2.0], [2.0, 1.0], [2.0, 3.0]])
    want = sk_fn(target.numpy(), preds.numpy())  # type: ignore[operator]
    assert float(rebuilt(preds, target)) == pytest.approx(want)


def test_bind_first_defaults_to_the_name_of_first_and_passes_it() -> None:
    def template(kind: object, x: torch.Tensor) -> torch.Tensor:
        return kind(x)  # type: ignore[operator,no-any-return]

    def double(x: torch.Tensor) -> torch.Tensor:
        return 2 * x

    bound = common.bind_first(template, double, doc="Twice x.")
    assert bound.__name__ == bound.__qualname__ == "double"
    assert bound.__doc__ == "Twice x."
    assert bound.__module__ == template.__module__ == __name__
    assert float(bound(torch.tensor(3.0))) == 6.0


# --- _collective_device ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("backend", "expected"),
    [("gloo", torch.device("cpu")), ("nccl", torch.device("cuda", 3)), ("mpi", None)],
)
def test_collective_device_follows_the_backend(
    monkeypatch: pytest.MonkeyPatch, backend: str, expected: torch.device | None
) -> None:
    monkeypatch.setattr(dist, "get_backend", lambda: backend)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    value = torch.zeros(2, device="meta")
    got = common._collective_device(value)
    assert got == (value.device if expected is None else expected)
    assert str(got) == str(value.device if expected is None else expected)


# --- top-k accuracy --------------------------------------------------------------------
SCORES = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.3, 0.6, 0.1], [0.2, 0.5, 0.3]])
TARGET = torch.tensor([1, 2, 1, 0])


def test_topk_default_k_is_one_like_sklearn() -> None:
    want = skm.top_k_accuracy_score(TARGET.numpy(), SCORES.numpy(), k=1)
    assert want == pytest.approx(0.5)
    stream = TopKAccuracy()
    stream.update(SCORES, TARGET)
    got = stream.compute()
    assert got.dtype == torch.float64 and float(got) == pytest.approx(want)
    assert float(topk_accuracy(SCORES, TARGET)) == pytest.approx(want)
    assert topk_accuracy(SCORES, TARGET).dtype == torch.float64


def test_topk_k_equal_to_the_class_count_hits_everything() -> None:
    assert float(topk_accuracy(SCORES, TARGET, k=3)) == 1.0


def test_topk_of_one_sample() -> None:
    assert float(topk_accuracy(SCORES[:1], TARGET[:1])) == 0.0
    assert float(topk_accuracy(SCORES[1:2], TARGET[1:2])) == 1.0
    assert float(TopKAccuracy().compute()) == 0.0  # before any update


def test_topk_messages() -> None:
    with pytest.raises(ValueError, match=r"^k must be at least 1, got 0\.$"):
        TopKAccuracy(k=0)
    with pytest.raises(
        ValueError, match=r"^target contains labels outside \[0, 2\]: found min 0, max 3\."
    ):
        topk_accuracy(SCORES, torch.tensor([0, 1, 2, 3]))


class _FakeOtherRank:
    """A second rank for ``sum_over_ranks``: all_reduce adds that rank's values."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, other: torch.Tensor) -> None:
        self.calls = 0
        monkeypatch.setattr(common, "world_size", lambda: 2)
        monkeypatch.setattr(dist, "get_backend", lambda: "gloo")

        def all_reduce(tensor: torch.Tensor, op: object = None) -> None:
            self.calls += 1
            tensor += other.to(tensor.dtype)

        monkeypatch.setattr(dist, "all_reduce", all_reduce)


def test_topk_sync_on_compute_and_one_shot_locality(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeOtherRank(monkeypatch, torch.tensor([3, 4]))  # the other rank: 3 hits of 4
    synced = TopKAccuracy()
    synced.update(SCORES, TARGET)  # 2 hits of 4 here
    assert float(synced.compute()) == pytest.approx(5 / 8)
    local = TopKAccuracy(sync_on_compute=False)
    local.update(SCORES, TARGET)
    assert float(local.compute()) == pytest.approx(0.5)
    calls = fake.calls
    assert float(topk_accuracy(SCORES, TARGET)) == pytest.approx(0.5)  # one-shot: no collective
    assert fake.calls == calls


@pytest.mark.parametrize("backend", ["gloo", "mpi"])
def test_sum_over_ranks_uses_the_collective_and_keeps_the_input(
    monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    _FakeOtherRank(monkeypatch, torch.tensor([1, 2]))
    monkeypatch.setattr(dist, "get_backend", lambda: backend)
    value = torch.tensor([5, 6])
    total = common.sum_over_ranks(value)
    assert total.tolist() == [6, 8] and value.tolist() == [5, 6]
    assert common.sum_over_ranks(value, enabled=False) is value


# --- multi-label -----------------------------------------------------------------------
ML_PREDS = torch.tensor([[0.9, 0.8, 0.1], [0.2, 0.7, 0.3], [0.6, 0.1, 0.2], [0.7, 0.9, 0.6]])
ML_TARGET = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 1, 0], [1, 1, 1]])


def test_multilabel_accuracy_defaults_to_micro_like_one_minus_hamming_loss() -> None:
    mcm = metrics.MultilabelConfusionMatrix(num_labels=3)
    mcm.update(ML_PREDS, ML_TARGET)
    want = 1 - skm.hamming_loss(ML_TARGET.numpy(), (ML_PREDS > 0.5).int().numpy())
    got = mcm.accuracy()
    assert got.dtype == torch.float64 and float(got) == pytest.approx(want)


def test_multilabel_subset_accuracy_of_one_sample_and_dtype() -> None:
    mcm = metrics.MultilabelConfusionMatrix(num_labels=3)
    mcm.update(ML_PREDS[3:], ML_TARGET[3:])  # every label right
    got = mcm.accuracy(average="subset")
    assert got.dtype == torch.float64 and float(got) == 1.0
    mcm.update(ML_PREDS, ML_TARGET)
    want = skm.accuracy_score(
        torch.cat([ML_TARGET[3:], ML_TARGET]).numpy(),
        (torch.cat([ML_PREDS[3:], ML_PREDS]) > 0.5).int().numpy(),
    )
    assert float(mcm.accuracy(average="subset")) == pytest.approx(want)


def test_multilabel_subset_accuracy_follows_sync_on_compute(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _FakeOtherRank(monkeypatch, torch.tensor([0, 4]))  # the other rank: 0 exact of 4
    local = metrics.MultilabelConfusionMatrix(num_labels=3, sync_on_compute=False)
    local.update(ML_PREDS[3:], ML_TARGET[3:])
    assert float(local.accuracy(average="subset")) == 1.0
    synced = metrics.MultilabelConfusionMatrix(num_labels=3)
    synced.update(ML_PREDS[3:], ML_TARGET[3:])
    assert float(synced.accuracy(average="subset")) == pytest.approx(1 / 5)


def test_histogram_average_precision_of_a_label_with_one_positive() -> None:
    scores = torch.tensor([[0.15], [0.45], [0.85], [0.65]])
    target = torch.tensor([[0], [1], [0], [0]])  # one positive, ranked third
    want = skm.average_precision_score(target.numpy().ravel(), scores.numpy().ravel())
    assert want == pytest.approx(1 / 3)
    for bins in (None, 10):
        got = metrics.multilabel_average_precision(scores, target, num_bins=bins)
        assert float(got) == pytest.approx(want)


# --- errors: each names what came and what was expected ----------------------------------
def _exact(message: str) -> str:
    return f"^{re.escape(message)}$"


def test_classification_error_messages() -> None:
    with pytest.raises(ValueError, match=_exact("num_classes must be at least 1, got 0.")):
        metrics.ConfusionMatrix(0)
    with pytest.raises(
        ValueError, match=_exact("average must be one of ['macro', 'micro', 'none'], got 'mean'.")
    ):
        metrics.iou(torch.tensor([0, 1]), torch.tensor([0, 1]), num_classes=2, average="mean")  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=_exact("absent must be 'ignore' or 'include', got 'drop'.")
    ):
        metrics.iou(torch.tensor([0, 1]), torch.tensor([0, 1]), num_classes=2, absent="drop")  # type: ignore[arg-type]
    message = (
        "preds contains labels outside [0, 1]: found min 0, max 2. Check num_classes and "
        "ignore_index."
    )
    with pytest.raises(ValueError, match=_exact(message)):
        metrics.confusion_matrix(torch.tensor([0, 2]), torch.tensor([0, 1]), num_classes=2)
    message = "target contains labels outside [0, 1]: found min -1, max 1. Check num_classes and ignore_index."
    with pytest.raises(ValueError, match=_exact(message)):
        metrics.confusion_matrix(torch.tensor([0, 1]), torch.tensor([-1, 1]), num_classes=2)
    message = "ConfusionMatrix: preds and target must have the same shape, got (2,) and (3,)."
    with pytest.raises(ShapeError, match=_exact(message)):
        metrics.confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 1, 1]), num_classes=2)
    message = (
        "Scores of shape (2, 3) do not match target (2,) and num_classes=2; expected (N, 2, ...) "
        "scores with target (N, ...)."
    )
    with pytest.raises(ShapeError, match=_exact(message)):
        metrics.confusion_matrix(torch.randn(2, 3), torch.tensor([0, 1]), num_classes=2)
    message = (
        "preds with the target's shape must be integer class indices, got dtype torch.float32. "
        "Pass scores as (N, C, ...) or call .argmax(dim=1) first."
    )
    with pytest.raises(ValueError, match=_exact(message)):
        metrics.confusion_matrix(torch.tensor([0.0, 1.0]), torch.tensor([0, 1]), num_classes=2)
    message = "TopKAccuracy expects scores (N, C, ...) and target (N, ...), got (2, 3) and (3,)."
    with pytest.raises(ShapeError, match=_exact(message)):
        topk_accuracy(torch.randn(2, 3), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=_exact("k=4 exceeds the number of classes 3.")):
        topk_accuracy(torch.randn(2, 3), torch.tensor([0, 1]), k=4)


def test_multilabel_error_messages() -> None:
    with pytest.raises(ValueError, match=_exact("num_labels must be at least 1, got 0.")):
        metrics.MultilabelConfusionMatrix(0)
    mcm = metrics.MultilabelConfusionMatrix(2)
    message = "MultilabelConfusionMatrix: preds and target must have the same shape, got (2, 2) and (2, 3)."
    with pytest.raises(ShapeError, match=_exact(message)):
        mcm.update(torch.zeros(2, 2), torch.zeros(2, 3))
    with pytest.raises(ShapeError, match=_exact("Expected (N, 2) multi-label inputs, got (2, 3).")):
        mcm.update(torch.zeros(2, 3), torch.zeros(2, 3))
    message = "target must contain only 0 and 1 (multi-hot), got other values."
    with pytest.raises(ValueError, match=_exact(message)):
        mcm.update(torch.zeros(1, 2), torch.tensor([[0, 2]]))
    message = (
        "Multi-label scores must be probabilities in [0, 1]; got values outside. "
        "Apply torch.sigmoid to logits first."
    )
    with pytest.raises(ValueError, match=_exact(message)):
        mcm.update(torch.tensor([[0.5, 1.5]]), torch.tensor([[0, 1]]))
    with pytest.raises(ValueError, match=_exact(message)):
        mcm.update(torch.tensor([[-0.5, 0.5]]), torch.tensor([[0, 1]]))
    with pytest.raises(
        ValueError,
        match=_exact("average must be one of ['micro', 'macro', 'none', 'subset'], got 'all'."),
    ):
        mcm.accuracy(average="all")  # type: ignore[arg-type]
    message = "num_bins must be None (exact) or at least 2, got 1."
    with pytest.raises(ValueError, match=_exact(message)):
        metrics.MultilabelAveragePrecision(2, num_bins=1)
    ap = metrics.MultilabelAveragePrecision(2, num_bins=4)
    message = "Expected (N, 2) scores and targets, got (2, 3)."
    with pytest.raises(ShapeError, match=_exact(message)):
        ap.update(torch.zeros(2, 3), torch.zeros(2, 3))
    message = "Histogram average precision needs scores in [0, 1]; apply torch.sigmoid first."
    with pytest.raises(ValueError, match=_exact(message)):
        ap.update(torch.tensor([[0.5, 1.5]]), torch.tensor([[0, 1]]))
    with pytest.raises(ShapeError, match=_exact("Expected (N, L) scores, got (3,).")):
        metrics.multilabel_average_precision(torch.zeros(3), torch.zeros(3))


def test_regression_error_messages() -> None:
    with pytest.raises(ValueError, match=_exact("num_outputs must be at least 1, got 0.")):
        regression.MeanAbsoluteError(num_outputs=0)
    message = "multioutput must be 'uniform_average' or 'raw_values', got 'variance_weighted'."
    with pytest.raises(ValueError, match=_exact(message)):
        regression.R2Score(multioutput="variance_weighted")  # type: ignore[arg-type]
    message = (
        "RootMeanSquaredError expects (N,) or (N, 1) inputs, got (2, 3). Set num_outputs to the "
        "number of targets."
    )
    with pytest.raises(ShapeError, match=_exact(message)):
        regression.RootMeanSquaredError().update(torch.zeros(2, 3), torch.zeros(2, 3))
    message = "R2Score.compute() has no samples: call update() with a non-empty batch first."
    with pytest.raises(ValueError, match=_exact(message)):
        regression.R2Score().compute()


# --- edges of the accepted ranges ------------------------------------------------------
def test_one_class_one_label_and_two_bins_are_accepted() -> None:
    cm = metrics.ConfusionMatrix(1)
    cm.update(torch.tensor([0, 0]), torch.tensor([0, 0]))
    assert cm.compute().tolist() == [[2]] and float(cm.iou()) == 1.0
    mcm = metrics.MultilabelConfusionMatrix(1)
    mcm.update(torch.tensor([[0.9]]), torch.tensor([[1]]))
    assert float(mcm.precision()) == 1.0
    scores, target = torch.tensor([[0.2], [0.9], [0.6]]), torch.tensor([[0], [1], [0]])
    ap = metrics.multilabel_average_precision(scores, target, num_bins=2)
    assert float(ap) == pytest.approx(0.5)  # 0.6 and 0.9 share the upper bin


def test_scores_at_the_threshold_and_at_0_and_1() -> None:
    preds = torch.tensor([[0.5, 1.0, 0.0]])
    target = torch.tensor([[1, 1, 0]])
    mcm = metrics.MultilabelConfusionMatrix(3)
    mcm.update(preds, target)
    # [[TN, FP], [FN, TP]]: 0.5 is not above the threshold; 1.0 and 0.0 are valid scores.
    assert mcm.compute().tolist() == [[[0, 0], [1, 0]], [[0, 0], [0, 1]], [[1, 0], [0, 0]]]
    scores, target = torch.tensor([[1.0], [0.0], [0.85]]), torch.tensor([[1], [0], [0]])
    ap = metrics.multilabel_average_precision(scores, target, num_bins=10)
    assert float(ap) == 1.0  # 1.0 lands in the top bin, above 0.85's
    scores[2, 0] = 0.95  # now in the top bin with 1.0: one threshold for both
    assert float(metrics.multilabel_average_precision(scores, target, num_bins=10)) == 0.5


@pytest.mark.parametrize("ignore_index", [0, 3])
def test_ignore_index_at_the_ends_of_the_class_range(ignore_index: int) -> None:
    preds = torch.tensor([0, 1, 2, 1, 0, 2, 1])
    target = torch.tensor([0, 1, 1, 2, ignore_index, 2, 0])
    got = metrics.iou(preds, target, num_classes=3, ignore_index=ignore_index, average="none")
    keep = target != ignore_index
    labels = [c for c in range(3) if c != ignore_index]
    want = skm.jaccard_score(
        target[keep].numpy(), preds[keep].numpy(), labels=labels, average=None, zero_division=0
    )
    assert got[labels].tolist() == pytest.approx(want.tolist())
    assert bool(got[0].isnan()) == (ignore_index == 0)


def test_compute_before_any_update_is_empty() -> None:
    cm = metrics.ConfusionMatrix(3)
    assert cm.compute().dtype == torch.int64 and cm.compute().tolist() == [[0] * 3] * 3
    mcm = metrics.MultilabelConfusionMatrix(2)
    assert mcm.compute().dtype == torch.int64 and mcm.compute().tolist() == [[[0, 0], [0, 0]]] * 2
    # No sample yet: every accuracy is 0/0, which gives 0 (like TopKAccuracy).
    assert mcm.accuracy(average="none").tolist() == [0.0, 0.0]
    for average in ("micro", "macro", "subset"):
        assert float(mcm.accuracy(average=average)) == 0.0


# --- one-shot functions never communicate ----------------------------------------------
def _no_collective(*args: object, **kwargs: object) -> None:
    raise AssertionError("a one-shot metric function called a collective")


@pytest.mark.parametrize(
    ("name", "preds", "target", "kwargs"),
    [
        ("confusion_matrix", torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]), {"num_classes": 2}),
        ("iou", torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]), {"num_classes": 2}),
        ("accuracy", torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]), {"num_classes": 2}),
        ("topk_accuracy", SCORES, TARGET, {"k": 2}),
        ("multilabel_f1_score", ML_PREDS, ML_TARGET, {}),
        ("multilabel_average_precision", ML_PREDS, ML_TARGET, {}),
        ("multilabel_average_precision", ML_PREDS, ML_TARGET, {"num_bins": 8}),
        ("mean_absolute_error", torch.tensor([1.0, 2.0]), torch.tensor([0.0, 4.0]), {}),
        ("root_mean_squared_error", torch.tensor([1.0, 2.0]), torch.tensor([0.0, 4.0]), {}),
        ("r2_score", torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 2.0, 4.0]), {}),
    ],
)
def test_one_shot_functions_do_not_communicate(
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    preds: torch.Tensor,
    target: torch.Tensor,
    kwargs: dict[str, object],
) -> None:
    fn = getattr(metrics, name)
    want = fn(preds, target, **kwargs)
    monkeypatch.setattr(common, "world_size", lambda: 2)  # as if in a 2-rank process group
    monkeypatch.setattr(dist, "get_backend", lambda: "gloo")
    monkeypatch.setattr(dist, "all_reduce", _no_collective)
    monkeypatch.setattr(dist, "all_gather", _no_collective)
    torch.testing.assert_close(fn(preds, target, **kwargs), want)


@pytest.mark.parametrize("num_bins", [None, 4])
def test_average_precision_before_any_update(num_bins: int | None) -> None:
    ap = metrics.MultilabelAveragePrecision(3, average="none", num_bins=num_bins)
    got = ap.compute()
    assert got.dtype == torch.float64 and got.tolist() == [0.0, 0.0, 0.0]
    ap.average = "macro"
    assert float(ap.compute()) == 0.0  # no label has a positive: the mean over none is 0


@pytest.mark.parametrize("num_bins", [None, 4])
def test_average_precision_without_sync_keeps_the_local_value(
    monkeypatch: pytest.MonkeyPatch, num_bins: int | None
) -> None:
    local = metrics.MultilabelAveragePrecision(3, num_bins=num_bins, sync_on_compute=False)
    local.update(ML_PREDS, ML_TARGET)
    want = metrics.multilabel_average_precision(ML_PREDS, ML_TARGET, num_bins=num_bins)
    monkeypatch.setattr(common, "world_size", lambda: 2)
    monkeypatch.setattr(dist, "get_backend", lambda: "gloo")
    monkeypatch.setattr(dist, "all_reduce", _no_collective)
    monkeypatch.setattr(dist, "all_gather", _no_collective)
    torch.testing.assert_close(local.compute(), want)


@pytest.mark.parametrize(
    ("make", "preds", "target", "read"),
    [
        (
            lambda: metrics.ConfusionMatrix(2, sync_on_compute=False),
            torch.tensor([0, 1, 1]),
            torch.tensor([0, 1, 0]),
            lambda m: m.iou(average="none"),
        ),
        (
            lambda: metrics.MultilabelConfusionMatrix(3, sync_on_compute=False),
            ML_PREDS,
            ML_TARGET,
            lambda m: m.f1_score(average="none"),
        ),
        (
            lambda: metrics.MultilabelConfusionMatrix(3, sync_on_compute=False),
            ML_PREDS,
            ML_TARGET,
            lambda m: m.accuracy(average="none"),
        ),
        (
            lambda: regression.MeanAbsoluteError(sync_on_compute=False),
            torch.tensor([1.0, 2.0]),
            torch.tensor([0.0, 4.0]),
            lambda m: m.compute(),
        ),
        (
            lambda: regression.R2Score(sync_on_compute=False),
            torch.tensor([1.0, 2.0, 3.0]),
            torch.tensor([1.0, 2.0, 4.0]),
            lambda m: m.compute(),
        ),
    ],
)
def test_streaming_without_sync_does_not_communicate(
    monkeypatch: pytest.MonkeyPatch,
    make: object,
    preds: torch.Tensor,
    target: torch.Tensor,
    read: object,
) -> None:
    metric = make()  # type: ignore[operator]
    metric.update(preds, target)
    want = read(metric)  # type: ignore[operator]
    monkeypatch.setattr(common, "world_size", lambda: 2)
    monkeypatch.setattr(dist, "get_backend", lambda: "gloo")
    monkeypatch.setattr(dist, "all_reduce", _no_collective)
    monkeypatch.setattr(dist, "all_gather", _no_collective)
    torch.testing.assert_close(read(metric), want)  # type: ignore[operator]


# --- documented defaults, exercised without passing them ---------------------------------
# Class 3 is absent (0/0 for every ratio), class 2 is never predicted (precision 0/0) and
# class 1 never occurs in the target (recall and accuracy 0/0).
CM_PREDS = torch.tensor([0, 0, 1, 1, 0, 0])
CM_TARGET = torch.tensor([0, 2, 0, 0, 2, 0])
SKLEARN_PER_CLASS = {
    "iou": skm.jaccard_score,
    "precision": skm.precision_score,
    "recall": skm.recall_score,
    "f1_score": skm.f1_score,
    "accuracy": skm.recall_score,  # per-class accuracy is the class recall
}


@pytest.mark.parametrize("name", list(SKLEARN_PER_CLASS))
def test_per_class_zero_division_defaults_to_zero(name: str) -> None:
    want = SKLEARN_PER_CLASS[name](
        CM_TARGET.numpy(), CM_PREDS.numpy(), labels=[0, 1, 2, 3], average=None, zero_division=0.0
    )
    got = getattr(metrics, name)(CM_PREDS, CM_TARGET, num_classes=4, average="none")
    assert got.dtype == torch.float64 and got.tolist() == pytest.approx(want.tolist())
    stream = metrics.ConfusionMatrix(4)
    stream.update(CM_PREDS, CM_TARGET)
    assert getattr(stream, name)(average="none").tolist() == pytest.approx(want.tolist())
    # Nothing seen: the macro mean over no counted class is zero_division, 0 by default.
    empty = getattr(metrics.ConfusionMatrix(4), name)(average="macro")
    assert empty.dtype == torch.float64 and float(empty) == 0.0


@pytest.mark.parametrize("name", ["precision", "recall", "f1_score"])
def test_multilabel_per_label_zero_division_defaults_to_zero(name: str) -> None:
    preds = torch.tensor([[0.9, 0.1, 0.8], [0.2, 0.1, 0.1], [0.7, 0.2, 0.3]])
    target = torch.tensor([[1, 0, 0], [1, 0, 1], [0, 0, 1]])  # label 1 absent
    sk_fn = {"precision": skm.precision_score, "recall": skm.recall_score, "f1_score": skm.f1_score}
    want = sk_fn[name](target.numpy(), (preds > 0.5).int().numpy(), average=None, zero_division=0.0)
    got = getattr(metrics, f"multilabel_{name}")(preds, target, average="none")
    assert got.tolist() == pytest.approx(want.tolist())
    stream = metrics.MultilabelConfusionMatrix(3)
    stream.update(preds, target)
    assert getattr(stream, name)(average="none").tolist() == pytest.approx(want.tolist())
    assert float(getattr(metrics.MultilabelConfusionMatrix(3), name)()) == 0.0


@pytest.mark.parametrize(
    ("cls", "sk_fn"),
    [
        (regression.MeanAbsoluteError, skm.mean_absolute_error),
        (regression.RootMeanSquaredError, skm.root_mean_squared_error),
        (regression.R2Score, skm.r2_score),
    ],
)
def test_regression_streams_single_rows_and_empty_batches(cls: type, sk_fn: object) -> None:
    preds = torch.tensor([[1.0, 2.0], [2.0, 0.0], [4.0, 1.0], [0.5, 3.0]])
    target = torch.tensor([[0.0, 2.0], [2.0, 1.0], [2.0, 3.0], [1.0, 1.0]])
    stream = cls(num_outputs=2, multioutput="raw_values")
    stream.update(preds[:0], target[:0])  # an empty batch changes nothing
    for row in range(4):  # one row at a time: every merge has a one-row side
        stream.update(preds[row : row + 1], target[row : row + 1])
    want = sk_fn(target.numpy(), preds.numpy(), multioutput="raw_values")  # type: ignore[operator]
    assert stream.compute().tolist() == pytest.approx(want.tolist())


def test_average_precision_update_errors_name_the_metric_and_the_target() -> None:
    ap = metrics.MultilabelAveragePrecision(2)
    message = (
        "MultilabelAveragePrecision: preds and target must have the same shape, got (2, 2) and "
        "(2, 3)."
    )
    with pytest.raises(ShapeError, match=_exact(message)):
        ap.update(torch.zeros(2, 2), torch.zeros(2, 3))
    message = "target must contain only 0 and 1 (multi-hot), got other values."
    with pytest.raises(ValueError, match=_exact(message)):
        ap.update(torch.zeros(1, 2), torch.tensor([[0, 2]]))


@pytest.mark.parametrize("backend", ["gloo", "mpi"])  # mpi: the collective runs where the rows are
def test_exact_average_precision_on_a_rank_without_data(
    monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    """Rank 0 has seen nothing; rank 1 holds every row: the gathered rows must stay aligned."""
    scores = torch.tensor([[0.9, 0.2], [0.3, 0.8], [0.6, 0.4]])
    target = torch.tensor([[1, 0], [0, 1], [0, 0]], dtype=torch.uint8)
    other = {torch.float32: scores, torch.uint8: target}

    def all_gather(out: list[torch.Tensor], tensor: torch.Tensor) -> None:
        out[0].copy_(tensor)
        if tensor.dtype == torch.long:  # the row counts
            out[1].fill_(len(scores))
        else:  # the rows, padded to the longest rank
            out[1].copy_(other[tensor.dtype][: len(out[1])])

    monkeypatch.setattr(common, "world_size", lambda: 2)
    monkeypatch.setattr(dist, "get_backend", lambda: "gloo")
    monkeypatch.setattr(dist, "all_gather", all_gather)
    monkeypatch.setattr(dist, "get_backend", lambda: backend)
    empty_rank = metrics.MultilabelAveragePrecision(2, average="none")
    want = skm.average_precision_score(target.numpy(), scores.numpy(), average=None)
    assert empty_rank.compute().tolist() == pytest.approx(want.tolist())


def test_multilabel_update_checks_every_float_batch_and_accepts_empty_ones() -> None:
    mcm = metrics.MultilabelConfusionMatrix(1)
    message = (
        "Multi-label scores must be probabilities in [0, 1]; got values outside. "
        "Apply torch.sigmoid to logits first."
    )
    with pytest.raises(ValueError, match=_exact(message)):
        mcm.update(torch.tensor([[1.5]]), torch.tensor([[1]]))  # a single score is checked too
    mcm.update(torch.zeros(0, 1), torch.zeros(0, 1, dtype=torch.long))
    mcm.update(torch.zeros(0, 1, dtype=torch.long), torch.zeros(0, 1, dtype=torch.long))
    assert mcm.compute().tolist() == [[[0, 0], [0, 0]]]
    message = "Expected (N, L) multi-label inputs, got (3,)."
    with pytest.raises(ShapeError, match=_exact(message)):
        metrics.multilabel_precision(torch.zeros(3), torch.zeros(3))


def test_regression_messages_name_the_metric_and_the_last_dimension() -> None:
    message = "R2Score: preds and target must have the same shape, got (2,) and (3,)."
    with pytest.raises(ShapeError, match=_exact(message)):
        regression.R2Score().update(torch.zeros(2), torch.zeros(3))
    message = (
        "MeanAbsoluteError expects (N,) or (N, 4) inputs, got (2, 3, 4). Set num_outputs to the "
        "number of targets."
    )
    with pytest.raises(ShapeError, match=_exact(message)):
        metrics.mean_absolute_error(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4))


@pytest.mark.parametrize(
    ("name", "sk_fn"),
    [
        ("mean_absolute_error", skm.mean_absolute_error),
        ("root_mean_squared_error", skm.root_mean_squared_error),
        ("r2_score", skm.r2_score),
    ],
)
def test_regression_with_many_outputs(name: str, sk_fn: object) -> None:
    g = torch.Generator().manual_seed(0)
    preds, target = torch.randn(6, 7, generator=g), torch.randn(6, 7, generator=g)
    want = sk_fn(target.numpy(), preds.numpy(), multioutput="raw_values")  # type: ignore[operator]
    got = getattr(metrics, name)(preds, target, multioutput="raw_values")
    assert got.tolist() == pytest.approx(want.tolist())


def test_r2_of_targets_with_a_small_spread_and_of_nan_on_a_constant_column() -> None:
    target = torch.tensor([0.1, 0.2, 0.3, 0.4])  # sum of squared deviations 0.05 < 1
    preds = torch.tensor([0.12, 0.18, 0.33, 0.38])
    want = skm.r2_score(target.numpy(), preds.numpy())
    assert float(metrics.r2_score(preds, target)) == pytest.approx(want, rel=1e-5)
    constant = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    preds = torch.tensor([[float("nan"), 0.0], [1.0, 1.0]])  # NaN in the constant column
    got = metrics.r2_score(preds, constant, multioutput="raw_values")
    assert bool(got[0].isnan()) and float(got[1]) == 1.0
