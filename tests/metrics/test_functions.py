"""The one-shot functions built by ``bind_first``: names, signatures, docs and errors."""

from __future__ import annotations

import doctest
import inspect

import pytest
import torch

import geofm.metrics as metrics
from geofm.metrics import classification, multilabel, regression
from geofm.metrics._common import bind_first

CLASSIFICATION = ["iou", "precision", "recall", "f1_score", "accuracy"]
MULTILABEL = ["multilabel_precision", "multilabel_recall", "multilabel_f1_score"]
REGRESSION = ["mean_absolute_error", "root_mean_squared_error", "r2_score"]


def _parameters(name: str) -> list[tuple[str, str, object]]:
    signature = inspect.signature(getattr(metrics, name))
    return [(p.name, p.kind.name, p.default) for p in signature.parameters.values()]


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_classification_signatures_are_the_documented_ones(name: str) -> None:
    empty = inspect.Parameter.empty
    kw = "KEYWORD_ONLY"
    assert _parameters(name) == [
        ("preds", "POSITIONAL_OR_KEYWORD", empty),
        ("target", "POSITIONAL_OR_KEYWORD", empty),
        ("num_classes", kw, empty),
        ("average", kw, "micro" if name == "accuracy" else "macro"),
        ("ignore_index", kw, None),
        ("zero_division", kw, 0.0),
        ("absent", kw, "ignore"),
    ]


@pytest.mark.parametrize("name", MULTILABEL)
def test_multilabel_signatures_are_the_documented_ones(name: str) -> None:
    assert [(n, d) for n, _, d in _parameters(name)][2:] == [
        ("average", "macro"),
        ("threshold", 0.5),
        ("zero_division", 0.0),
        ("absent", "ignore"),
    ]


@pytest.mark.parametrize("name", REGRESSION)
def test_regression_signatures_are_the_documented_ones(name: str) -> None:
    assert [(n, d) for n, _, d in _parameters(name)][2:] == [("multioutput", "uniform_average")]


@pytest.mark.parametrize("name", CLASSIFICATION + MULTILABEL + REGRESSION)
def test_functions_carry_their_public_name_module_and_own_example(name: str) -> None:
    fn = getattr(metrics, name)
    assert fn.__name__ == fn.__qualname__ == name
    assert fn.__module__.startswith("geofm.metrics.")
    assert ">>> per_" in fn.__doc__ and f"{name}(preds, target" in fn.__doc__
    module = {"c": classification, "m": multilabel, "r": regression}
    owner = module["m" if name in MULTILABEL else "r" if name in REGRESSION else "c"]
    assert owner.__test__[name] is fn  # so that --doctest-modules runs the example


def test_accuracy_default_is_micro_and_an_explicit_average_wins() -> None:
    preds, target = torch.tensor([0, 0, 1, 2, 1]), torch.tensor([0, 1, 1, 1, 2])
    assert float(metrics.accuracy(preds, target, num_classes=3)) == pytest.approx(2 / 5)
    macro = metrics.accuracy(preds, target, num_classes=3, average="macro")
    assert float(macro) == pytest.approx((1 + 1 / 3 + 0) / 3)


def test_examples_run_under_doctest() -> None:
    finder = doctest.DocTestFinder()
    found = {
        t.name.rsplit(".", 1)[-1] for m in (classification, multilabel) for t in finder.find(m)
    }
    assert set(CLASSIFICATION + MULTILABEL) <= found
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(regression):
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


def test_bind_first_rejects_unknown_defaults_and_nameless_values() -> None:
    def template(kind: str, x: torch.Tensor, *, scale: float = 1.0) -> torch.Tensor:
        return x * scale

    with pytest.raises(ValueError, match=r"defaults \['offset'\] are not parameters of template"):
        bind_first(template, "k", name="f", doc="d", defaults={"offset": 1.0})
    with pytest.raises(ValueError, match="needs a name"):
        bind_first(template, "k", doc="d")
    bound = bind_first(template, "k", name="f", doc="d", defaults={"scale": 2.0})
    assert (
        str(inspect.signature(bound))
        == "(x: 'torch.Tensor', *, scale: 'float' = 2.0) -> 'torch.Tensor'"
    )
    assert float(bound(torch.tensor(3.0))) == 6.0
    assert float(bound(torch.tensor(3.0), scale=3.0)) == 9.0
