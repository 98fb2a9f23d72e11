from __future__ import annotations

import copy
import itertools
import warnings

import pytest
import torch
from lightly.models.utils import update_momentum as lightly_update_momentum
from lightly.utils.scheduler import cosine_schedule as lightly_cosine_schedule
from torch import nn

from geofm.errors import ShapeError
from geofm.ssl import cosine_schedule, update_momentum


def _model() -> nn.Sequential:
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))


def test_update_momentum_matches_lightly_and_the_ema_formula() -> None:
    model, ema = _model(), _model()
    ema_before = copy.deepcopy(ema)
    reference = copy.deepcopy(ema)
    update_momentum(model, ema, momentum=0.99)
    lightly_update_momentum(model, reference, m=0.99)
    for p, p_ema, p_ref, p_old in zip(
        model.parameters(),
        ema.parameters(),
        reference.parameters(),
        ema_before.parameters(),
        strict=True,
    ):
        torch.testing.assert_close(p_ema, p_ref)
        torch.testing.assert_close(p_ema, 0.99 * p_old + 0.01 * p)
        assert not p_ema.requires_grad or p_ema.grad is None


def test_update_momentum_leaves_buffers_alone() -> None:
    model, ema = _model(), _model()
    norm, ema_norm = model[1], ema[1]
    assert isinstance(norm, nn.BatchNorm1d) and isinstance(ema_norm, nn.BatchNorm1d)
    assert norm.running_mean is not None and ema_norm.running_mean is not None
    norm.running_mean.fill_(3.0)
    update_momentum(model, ema, momentum=0.5)
    assert torch.count_nonzero(ema_norm.running_mean) == 0


def test_update_momentum_rejects_mismatched_models_and_momentum() -> None:
    with pytest.raises(ShapeError, match="same parameters"):
        update_momentum(nn.Linear(2, 3), nn.Linear(3, 2), momentum=0.9)
    with pytest.raises(ValueError, match=r"momentum=1.5; expected a value in \[0, 1\]"):
        update_momentum(nn.Linear(2, 3), nn.Linear(2, 3), momentum=1.5)


@pytest.mark.parametrize("max_steps", [1, 2, 10, 100])
def test_cosine_schedule_matches_lightly(max_steps: int) -> None:
    for step in range(max_steps + 3):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # lightly warns past max_steps
            expected = lightly_cosine_schedule(step, max_steps, 0.996, 1.0)
        ours = cosine_schedule(step, max_steps=max_steps, start_value=0.996, end_value=1.0)
        assert ours == pytest.approx(expected, abs=1e-12)


def test_cosine_schedule_spectral_earth_teacher_momentum_reaches_one_at_epoch_nine() -> None:
    values = [cosine_schedule(e, max_steps=10, start_value=0.996, end_value=1.0) for e in range(10)]
    assert values[0] == 0.996
    assert values[9] == 1.0
    assert all(a < b for a, b in itertools.pairwise(values))


def test_cosine_schedule_rejects_negative_step() -> None:
    with pytest.raises(ValueError, match="step=-1"):
        cosine_schedule(-1, max_steps=10, start_value=0.0, end_value=1.0)
    with pytest.raises(ValueError, match="max_steps=0"):
        cosine_schedule(0, max_steps=0, start_value=0.0, end_value=1.0)
