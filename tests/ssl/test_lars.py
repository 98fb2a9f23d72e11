from __future__ import annotations

import pytest
import torch
from lightly.utils import lars as lightly_lars
from torch import nn

from geofm.ssl import LARS


def _model() -> nn.Sequential:
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.Linear(4, 3)).double()


def _loss(model: nn.Sequential, x: torch.Tensor, curvature: float) -> torch.Tensor:
    """Quadratic in every matrix (gradient ``curvature * W``) plus a data term for the 1-D params."""
    matrices = [p for p in model.parameters() if p.ndim > 1]
    vectors = [p for p in model.parameters() if p.ndim == 1]
    quadratic = sum(0.5 * curvature * w.pow(2).sum() for w in matrices)
    data = sum((v * x[: v.numel()]).sum() + v.pow(2).sum() for v in vectors)
    return quadratic + data  # type: ignore[return-value]


def test_matches_lightly_where_the_trust_ratios_agree() -> None:
    # lightly: eta ||p|| / (||g|| + wd ||p|| + eps); geofm: eta ||p|| / ||g + wd p||. Equal when
    # g = c p with c > 0 and eps = 0. lightly skips groups with weight_decay = 0, geofm 1-D params.
    ours, theirs = _model(), _model()
    lr, wd, momentum, eta = 0.5, 1e-2, 0.9, 0.02
    opt = LARS(ours.parameters(), lr=lr, weight_decay=wd, momentum=momentum, eta=eta)
    ref = lightly_lars.LARS(
        [
            {"params": [p for p in theirs.parameters() if p.ndim > 1]},
            {"params": [p for p in theirs.parameters() if p.ndim == 1], "weight_decay": 0.0},
        ],
        lr=lr,
        momentum=momentum,
        weight_decay=wd,
        trust_coefficient=eta,
        eps=0.0,
    )
    x = torch.randn(8, dtype=torch.float64)
    for _ in range(4):
        for model, optimizer in ((ours, opt), (theirs, ref)):
            optimizer.zero_grad()
            _loss(model, x, curvature=3.0).backward()
            optimizer.step()
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_one_step_follows_the_vicreg_formula() -> None:
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(3, 4, dtype=torch.float64))
    b = nn.Parameter(torch.randn(3, dtype=torch.float64))
    grads = [torch.randn(3, 4, dtype=torch.float64), torch.randn(3, dtype=torch.float64)]
    lr, wd, momentum, eta = 0.3, 0.1, 0.9, 0.01
    w0, b0 = w.detach().clone(), b.detach().clone()
    opt = LARS([w, b], lr=lr, weight_decay=wd, momentum=momentum, eta=eta)
    for _ in range(2):  # the second step exercises the momentum buffer
        w.grad, b.grad = grads[0].clone(), grads[1].clone()
        opt.step()
    # independent re-computation
    p, mu = w0.clone(), torch.zeros_like(w0)
    for _ in range(2):
        u = grads[0] + wd * p
        mu = momentum * mu + eta * p.norm() / u.norm() * u
        p = p - lr * mu
    torch.testing.assert_close(w.detach(), p)
    # 1-D parameter: plain momentum SGD, no decay, no trust ratio
    torch.testing.assert_close(b.detach(), b0 - lr * (grads[1] + (momentum * grads[1] + grads[1])))


def test_trust_ratio_is_one_for_zero_norms_and_options() -> None:
    w = nn.Parameter(torch.zeros(2, 2))
    opt = LARS([w], lr=1.0, momentum=0.0)
    w.grad = torch.ones(2, 2)
    opt.step()  # ||p|| = 0: q = 1, so p = -g
    torch.testing.assert_close(w.detach(), -torch.ones(2, 2))

    b = nn.Parameter(torch.ones(4))
    opt = LARS([b], lr=1.0, momentum=0.0, eta=0.5, exclude_bias_and_norm=False)
    b.grad = torch.full((4,), 3.0)
    opt.step()  # 1-D included: step = eta ||b|| / ||g|| * g = 0.5 * 2 / 6 * 3 = 0.5
    torch.testing.assert_close(b.detach(), torch.full((4,), 0.5))


def test_closure_and_params_without_grad() -> None:
    w = nn.Parameter(torch.ones(2, 2))
    frozen = nn.Parameter(torch.ones(2, 2))
    opt = LARS([w, frozen], lr=0.1)

    def closure() -> float:
        opt.zero_grad()
        loss = w.sum()
        loss.backward()
        return float(loss.detach())

    assert opt.step(closure) == 4.0
    assert opt.step() is None
    torch.testing.assert_close(frozen.detach(), torch.ones(2, 2))
    assert not torch.equal(w.detach(), torch.ones(2, 2))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": -1.0}, "lr=-1.0"),
        ({"lr": 0.1, "weight_decay": -1e-6}, "weight_decay=-1e-06"),
        ({"lr": 0.1, "momentum": 1.0}, r"momentum=1.0 \(expected a value in \[0, 1\)\)"),
        ({"lr": 0.1, "eta": 0.0}, "eta=0.0"),
    ],
)
def test_bad_hyperparameters_raise(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LARS([nn.Parameter(torch.ones(2))], **kwargs)  # type: ignore[arg-type]
