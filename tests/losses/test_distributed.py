"""Distributed correctness: 2 gloo processes on CPU vs one process on the concatenated batch.

One ``torch.multiprocessing.spawn`` runs every loss (to keep the runtime low). Each rank
feeds its slice of a fixed global batch through a linear layer and then averages the
parameter gradients over ranks exactly as DDP does (an all-reduce divided by the world size;
``DistributedDataParallel`` itself is not used because it imports ``torch._dynamo``, ~6 s).
The single-process run feeds the whole batch through the same layer.
Expected: the mean of the per-rank losses equals the single-process loss (global-only losses
are equal on every rank), DDP parameter gradients equal the single-process gradients, and each
rank's input gradient divided by the world size equals the single-process input gradient of
its rows (DDP's averaging convention; a gather without the all-reduce in backward is off by
1 / world_size, lightly issues #1920 / #1977).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
import torch.distributed as dist
from torch.multiprocessing.spawn import spawn

from geofm.losses import BarlowTwinsLoss, VICRegLoss

Result = dict[str, Any]


def _cases() -> ModuleType:
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(Path(__file__).resolve().parent))
        return importlib.import_module("_distributed_cases")


@pytest.fixture(scope="module")
def distributed_results(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Result]]:
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    out_dir = tmp_path_factory.mktemp("dist")
    with pytest.MonkeyPatch.context() as patch:
        # spawn hands sys.path to the children, which unpickle cases.worker by module name.
        patch.syspath_prepend(str(Path(__file__).resolve().parent))
        cases = importlib.import_module("_distributed_cases")
        spawn(  # type: ignore[no-untyped-call]
            cases.worker,
            args=(cases.free_port(), str(out_dir)),
            nprocs=cases.WORLD_SIZE,
            join=True,
        )
    return [torch.load(out_dir / f"rank{r}.pt", weights_only=True) for r in range(cases.WORLD_SIZE)]


@pytest.mark.parametrize("name", list(_cases().CASES))
def test_two_gloo_ranks_match_single_process_on_concatenated_batch(
    distributed_results: list[dict[str, Result]], name: str
) -> None:
    cases = _cases()
    single = cases.CASES[name](cases.data(), 0, 1)
    ranks = [results[name] for results in distributed_results]
    world_size = cases.WORLD_SIZE
    losses = torch.stack([r["loss"] for r in ranks])
    torch.testing.assert_close(losses.mean(), single["loss"])
    if name in cases.GLOBAL_ONLY:
        for loss in losses:
            torch.testing.assert_close(loss, single["loss"])
    if "global_terms" in single:
        for r in ranks:
            torch.testing.assert_close(r["global_terms"], single["global_terms"])

    for key in ("weight_grad", "bias_grad"):
        for r in ranks:  # averaged as DDP does: identical on every rank
            torch.testing.assert_close(r[key], single[key])
    for key in ("x_a_grad", "x_b_grad"):
        local = torch.cat([r[key] for r in ranks]) / world_size
        torch.testing.assert_close(local, single[key])

    for key in ("bank", "pointer", "center"):
        if key in single:
            for r in ranks:
                torch.testing.assert_close(r[key], single[key])


def test_single_process_gather_is_the_identity() -> None:
    from geofm._dist import all_reduce_sum, gather, rank, world_size

    x = torch.randn(3, 2, requires_grad=True)
    assert gather(x) is x
    assert all_reduce_sum(x) is x
    assert (rank(), world_size()) == (0, 1)
    # gather_distributed=True outside a process group is the single-process loss
    z_a, z_b = torch.randn(4, 8), torch.randn(4, 8)
    torch.testing.assert_close(
        VICRegLoss(gather_distributed=True)(z_a, z_b), VICRegLoss()(z_a, z_b)
    )


def test_gather_distributed_without_torch_distributed_raises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from geofm.errors import MissingDependencyError

    monkeypatch.setattr(dist, "is_available", lambda: False)
    with pytest.raises(MissingDependencyError, match="gather_distributed=False"):
        BarlowTwinsLoss(gather_distributed=True)
    BarlowTwinsLoss(gather_distributed=False)  # fine without distributed support
