from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from geofm.errors import ShapeError
from geofm.metrics import (
    MeanAbsoluteError,
    R2Score,
    RootMeanSquaredError,
    mean_absolute_error,
    r2_score,
    root_mean_squared_error,
)

FUNCS = [
    (mean_absolute_error, MeanAbsoluteError, skm.mean_absolute_error),
    (root_mean_squared_error, RootMeanSquaredError, skm.root_mean_squared_error),
    (r2_score, R2Score, skm.r2_score),
]


def _data(n: int = 257, d: int = 4, offset: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    target = torch.randn(n, d, generator=g) * 3 + offset
    preds = target + torch.randn(n, d, generator=g)
    return preds, target


@pytest.mark.parametrize(("fn", "cls", "sk_fn"), FUNCS)
@pytest.mark.parametrize("multioutput", ["uniform_average", "raw_values"])
def test_matches_sklearn(fn, cls, sk_fn, multioutput: str) -> None:  # type: ignore[no-untyped-def]
    preds, target = _data()
    want = sk_fn(target.numpy(), preds.numpy(), multioutput=multioutput)
    np.testing.assert_allclose(fn(preds, target, multioutput=multioutput).numpy(), want, rtol=1e-5)


@pytest.mark.parametrize(("fn", "cls", "sk_fn"), FUNCS)
def test_one_dimensional_inputs(fn, cls, sk_fn) -> None:  # type: ignore[no-untyped-def]
    preds, target = _data(d=1)
    want = sk_fn(target[:, 0].numpy(), preds[:, 0].numpy())
    assert fn(preds[:, 0], target[:, 0]).item() == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize(("fn", "cls", "sk_fn"), FUNCS)
def test_streaming_equals_one_shot_with_large_offset(fn, cls, sk_fn) -> None:  # type: ignore[no-untyped-def]
    preds, target = _data(offset=1e4)  # variance tiny relative to mean
    metric = cls(num_outputs=4, multioutput="raw_values")
    for p, t in zip(preds.split(40), target.split(40), strict=True):
        metric.update(p, t)
    want = sk_fn(target.double().numpy(), preds.double().numpy(), multioutput="raw_values")
    np.testing.assert_allclose(metric.compute().numpy(), want, rtol=1e-9)
    torch.testing.assert_close(metric.compute(), fn(preds, target, multioutput="raw_values"))


def test_r2_of_constant_target_follows_sklearn() -> None:
    target = torch.ones(5)
    assert r2_score(target, target).item() == skm.r2_score(target.numpy(), target.numpy())
    preds = target + torch.arange(5.0)
    assert r2_score(preds, target).item() == skm.r2_score(target.numpy(), preds.numpy())


def test_rejects_bad_inputs() -> None:
    with pytest.raises(ShapeError, match="same shape"):
        r2_score(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ShapeError, match=r"expects \(N,\) or \(N, 2\)"):
        R2Score(num_outputs=2).update(torch.zeros(3, 3), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="before any update"):
        MeanAbsoluteError().compute()
    with pytest.raises(ValueError, match="multioutput must be"):
        R2Score(multioutput="variance_weighted")  # type: ignore[arg-type]
