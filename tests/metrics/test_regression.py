from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
import torchmetrics.functional as tmf
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
    """Outputs with different target spreads and error sizes, so per-output averaging,
    pooling and variance weighting all give different numbers."""
    g = torch.Generator().manual_seed(0)
    spread = torch.tensor([3.0, 0.5, 8.0, 1.5])[:d]
    noise = torch.tensor([1.0, 0.4, 2.5, 3.0])[:d]
    target = torch.randn(n, d, generator=g) * spread + offset
    preds = target + torch.randn(n, d, generator=g) * noise
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
    with pytest.raises(ValueError, match=r"MeanAbsoluteError.compute\(\) has no samples"):
        MeanAbsoluteError().compute()
    with pytest.raises(ValueError, match="has no samples"):
        r2_score(torch.zeros(0), torch.zeros(0))
    with pytest.raises(ValueError, match="multioutput must be"):
        R2Score(multioutput="variance_weighted")  # type: ignore[arg-type]


TORCHMETRICS: dict[str, tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]]] = {
    "mae": (mean_absolute_error, lambda p, t: tmf.mean_absolute_error(p, t, num_outputs=4)),
    "rmse": (
        root_mean_squared_error,
        lambda p, t: tmf.mean_squared_error(p, t, squared=False, num_outputs=4),
    ),
    "r2": (r2_score, lambda p, t: tmf.r2_score(p, t, multioutput="raw_values")),
}


@pytest.mark.parametrize("name", list(TORCHMETRICS))
def test_matches_torchmetrics_per_output_and_averaged_by_default(name: str) -> None:
    fn, tm_fn = TORCHMETRICS[name]
    preds, target = _data()
    per_output = tm_fn(preds.double(), target.double())  # (4,)
    np.testing.assert_allclose(fn(preds, target, multioutput="raw_values"), per_output, rtol=1e-9)
    # default multioutput="uniform_average": the plain mean of the per-output values
    np.testing.assert_allclose(float(fn(preds, target)), float(per_output.mean()), rtol=1e-9)


def test_default_averaging_is_uniform_not_pooled_or_variance_weighted() -> None:
    preds, target = _data()
    p, t = preds.double().numpy(), target.double().numpy()
    r2 = float(r2_score(preds, target))
    assert r2 == pytest.approx(skm.r2_score(t, p, multioutput="uniform_average"), rel=1e-9)
    assert abs(r2 - skm.r2_score(t, p, multioutput="variance_weighted")) > 0.05
    assert abs(r2 - skm.r2_score(t.ravel(), p.ravel())) > 0.05
    rmse = float(root_mean_squared_error(preds, target))
    assert abs(rmse - math.sqrt(skm.mean_squared_error(t, p))) > 0.05  # sqrt of pooled MSE


@pytest.mark.parametrize("where", ["target", "preds"])
def test_nan_input_gives_nan_not_a_finite_score(where: str) -> None:
    preds, target = _data(n=20, d=1)
    preds, target = preds[:, 0].clone(), target[:, 0].clone()
    (target if where == "target" else preds)[7] = math.nan
    assert math.isnan(float(r2_score(preds, target)))
    assert math.isnan(float(mean_absolute_error(preds, target)))
    assert math.isnan(float(root_mean_squared_error(preds, target)))
    assert math.isnan(float(tmf.r2_score(preds, target)))  # torchmetrics agrees


def test_streaming_r2_stays_nan_after_a_nan_batch() -> None:
    preds, target = _data(n=30)
    target[25, 2] = math.nan
    metric = R2Score(num_outputs=4, multioutput="raw_values")
    for p, t in zip(preds.split(12), target.split(12), strict=True):
        metric.update(p, t)
    got = metric.compute()
    assert torch.isnan(got[2])
    want = skm.r2_score(
        target[:, [0, 1, 3]].numpy(), preds[:, [0, 1, 3]].numpy(), multioutput="raw_values"
    )
    np.testing.assert_allclose(got[[0, 1, 3]].numpy(), want, rtol=1e-5)
    metric.multioutput = "uniform_average"
    assert math.isnan(float(metric.compute()))
