"""GlobalBatchNorm: plain BatchNorm in one process, global-batch statistics over gloo ranks."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.multiprocessing.spawn import spawn

from geofm.errors import ShapeError
from geofm.ssl import GlobalBatchNorm, convert_to_global_batchnorm


def _cases() -> ModuleType:
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(Path(__file__).resolve().parent))
        return importlib.import_module("_batchnorm_cases")


def _pair(momentum: float | None) -> tuple[nn.BatchNorm2d, GlobalBatchNorm]:
    reference = nn.BatchNorm2d(3, momentum=momentum).double()
    with torch.no_grad():
        reference.weight.uniform_(0.5, 1.5)
        reference.bias.uniform_(-1.0, 1.0)
    ours = GlobalBatchNorm(3, momentum=momentum).double()
    ours.load_state_dict(reference.state_dict())
    return reference, ours


@pytest.mark.parametrize("momentum", [0.1, None])
def test_single_process_equals_batchnorm2d_in_train_and_eval(momentum: float | None) -> None:
    reference, ours = _pair(momentum)
    for step in range(3):
        x = torch.randn(4, 3, 5, 5, dtype=torch.float64) * (step + 1) + step
        outs, grads = [], []
        for bn in (reference, ours):
            xi = x.clone().requires_grad_()
            out = bn(xi)
            (out * torch.arange(out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
            outs.append(out)
            grads.append((xi.grad, bn.weight.grad.clone(), bn.bias.grad.clone()))
            bn.zero_grad()
        torch.testing.assert_close(outs[0], outs[1])
        for a, b in zip(*grads, strict=True):
            torch.testing.assert_close(a, b)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(ours, name), getattr(reference, name))
    reference.eval()
    ours.eval()
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(ours(x), reference(x))


def test_convert_keeps_state_parameters_and_mode() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Sequential(nn.BatchNorm1d(2)))
    net.train()
    net[2][0].eval()
    with torch.no_grad():  # non-trivial running statistics
        net[1].running_mean.uniform_()
        net[2][0].running_var.uniform_(1.0, 2.0)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    weight = net[1].weight
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    converted = convert_to_global_batchnorm(net)
    assert converted is net
    assert isinstance(net[1], GlobalBatchNorm) and isinstance(net[2][0], GlobalBatchNorm)
    assert net[1].weight is weight  # shared: the optimiser built before still updates it
    assert net[1].training and not net[2][0].training
    assert optimizer.param_groups[0]["params"][2] is net[1].weight
    after = net.state_dict()
    assert list(after) == list(before)
    for key, value in before.items():
        torch.testing.assert_close(after[key], value)
    single = convert_to_global_batchnorm(nn.BatchNorm3d(2, affine=False, track_running_stats=False))
    assert isinstance(single, GlobalBatchNorm) and not single.affine
    assert single.running_mean is None


def test_convert_rejects_uninitialised_lazy_batchnorm() -> None:
    with pytest.raises(ValueError, match="forward pass"):
        convert_to_global_batchnorm(nn.Sequential(nn.LazyBatchNorm2d()))


def test_input_without_batch_dimension_raises() -> None:
    with pytest.raises(ShapeError, match=r"got shape \(3,\)"):
        GlobalBatchNorm(3)(torch.randn(3))


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    out_dir = tmp_path_factory.mktemp("global_bn")
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(Path(__file__).resolve().parent))
        cases = importlib.import_module("_batchnorm_cases")
        spawn(  # type: ignore[no-untyped-call]
            cases.worker, args=(cases.free_port(), str(out_dir)), nprocs=cases.WORLD_SIZE
        )
    return [torch.load(out_dir / f"rank{r}.pt", weights_only=True) for r in range(cases.WORLD_SIZE)]


def test_two_ranks_of_n_equal_one_process_of_2n(two_ranks: list[dict[str, Any]]) -> None:
    cases = _cases()
    single = cases.run(cases.data(), 0, 1, convert=False)  # plain nn.BatchNorm2d on 2N
    world_size = cases.WORLD_SIZE
    torch.testing.assert_close(torch.stack([r["loss"] for r in two_ranks]).mean(), single["loss"])
    torch.testing.assert_close(torch.cat([r["out"] for r in two_ranks]), single["out"])
    # input gradients: each rank holds W x its rows' gradient (DDP's averaging convention)
    x_grad = torch.cat([r["x_grad"] for r in two_ranks]) / world_size
    torch.testing.assert_close(x_grad, single["x_grad"])
    keys = ("weight_grad", "bias_grad", "conv_grad", "running_mean", "running_var")
    for r in two_ranks:
        for key in (*keys, "num_batches_tracked"):
            torch.testing.assert_close(r[key], single[key])
