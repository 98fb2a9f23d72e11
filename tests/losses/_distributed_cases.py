"""Cases for ``test_distributed.py``: run by the 2 spawned gloo ranks and by the single process.

A plain module (not a test file) so that ``torch.multiprocessing.spawn`` can pickle
``worker`` by name whatever pytest's import mode; the test puts this directory on
``sys.path`` (spawn passes ``sys.path`` on to the children).
"""

from __future__ import annotations

import datetime
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from geofm.losses import BarlowTwinsLoss, DINOLoss, InfoNCELoss, NTXentLoss, VICRegLoss
from geofm.ssl import MemoryBank

WORLD_SIZE = 2
LOCAL_BATCH = 4
IN_DIM = 6

Result = dict[str, Any]


def data() -> dict[str, Tensor]:
    generator = torch.Generator().manual_seed(1234)
    n = WORLD_SIZE * LOCAL_BATCH
    return {
        "x_a": torch.randn(n, IN_DIM, generator=generator, dtype=torch.float64),
        "x_b": torch.randn(n, IN_DIM, generator=generator, dtype=torch.float64),
    }


def _layer(out_dim: int) -> nn.Linear:
    generator = torch.Generator().manual_seed(out_dim)
    layer = nn.Linear(IN_DIM, out_dim).double()
    with torch.no_grad():
        layer.weight.copy_(torch.randn(out_dim, IN_DIM, generator=generator, dtype=torch.float64))
        layer.bias.copy_(torch.randn(out_dim, generator=generator, dtype=torch.float64))
    return layer


def _average_gradients(layer: nn.Module, world_size: int) -> None:
    """What DDP does after backward: all-reduce the parameter gradients and divide by W."""
    if world_size == 1:
        return
    for parameter in layer.parameters():
        assert parameter.grad is not None
        dist.all_reduce(parameter.grad)
        parameter.grad /= world_size


def _slice(data: dict[str, Tensor], rank: int, world_size: int) -> tuple[Tensor, Tensor]:
    n = data["x_a"].shape[0] // world_size
    rows = slice(rank * n, (rank + 1) * n)
    return (
        data["x_a"][rows].clone().requires_grad_(),
        data["x_b"][rows].clone().requires_grad_(),
    )


def _run_pair_loss(
    make_loss: Callable[[bool], nn.Module], out_dim: int
) -> Callable[[dict[str, Tensor], int, int], Result]:
    """A two-view loss on embeddings from one (DDP) linear layer."""

    def run(data: dict[str, Tensor], rank: int, world_size: int) -> Result:
        distributed = world_size > 1
        layer = _layer(out_dim)
        x_a, x_b = _slice(data, rank, world_size)
        z_a, z_b = layer(torch.cat([x_a, x_b])).chunk(2)
        loss_fn = make_loss(distributed)
        loss = loss_fn(z_a, z_b)
        loss.backward()
        _average_gradients(layer, world_size)
        result: Result = {
            "loss": loss.detach(),
            "weight_grad": layer.weight.grad,
            "bias_grad": layer.bias.grad,
            "x_a_grad": x_a.grad,
            "x_b_grad": x_b.grad,
        }
        if isinstance(loss_fn, InfoNCELoss) and loss_fn.memory_bank is not None:
            loss_fn.update_memory_bank(z_b)
            result["bank"] = loss_fn.memory_bank.bank.clone()
            result["pointer"] = loss_fn.memory_bank.pointer.clone()
        if isinstance(loss_fn, VICRegLoss):
            terms = loss_fn.terms(z_a, z_b)
            result["global_terms"] = torch.stack([terms.variance, terms.covariance]).detach()
        return result

    return run


def _bank_loss(distributed: bool) -> InfoNCELoss:
    torch.manual_seed(7)  # same initial bank on every rank and in the single run
    bank = MemoryBank(size=3 * WORLD_SIZE * LOCAL_BATCH, dim=5, gather_distributed=distributed)
    bank.bank = bank.bank.double()
    return InfoNCELoss(temperature=0.2, memory_bank=bank, gather_distributed=distributed)


def _run_dino(data: dict[str, Tensor], rank: int, world_size: int) -> Result:
    distributed = world_size > 1
    layer = _layer(7)
    x_a, x_b = _slice(data, rank, world_size)
    student = layer(torch.cat([x_a, x_b])).chunk(2)
    teacher = [(2.0 * s).detach() for s in reversed(student)]
    loss_fn = DINOLoss(output_dim=7, warmup_epochs=0, gather_distributed=distributed).double()
    loss = loss_fn(teacher, list(student), epoch=0)
    loss.backward()
    _average_gradients(layer, world_size)
    loss_fn.update_center(teacher)
    loss_fn.update_center([t + 1.0 for t in teacher])
    return {
        "loss": loss.detach(),
        "weight_grad": layer.weight.grad,
        "bias_grad": layer.bias.grad,
        "x_a_grad": x_a.grad,
        "x_b_grad": x_b.grad,
        "center": loss_fn.center.clone(),
    }


CASES: dict[str, Callable[[dict[str, Tensor], int, int], Result]] = {
    "vicreg_gram": _run_pair_loss(lambda d: VICRegLoss(gather_distributed=d), 16),
    "vicreg_direct": _run_pair_loss(lambda d: VICRegLoss(gather_distributed=d), 4),
    "barlow_gram": _run_pair_loss(lambda d: BarlowTwinsLoss(gather_distributed=d), 16),
    "barlow_direct": _run_pair_loss(lambda d: BarlowTwinsLoss(gather_distributed=d), 4),
    "ntxent": _run_pair_loss(lambda d: NTXentLoss(temperature=0.3, gather_distributed=d), 5),
    "infonce": _run_pair_loss(lambda d: InfoNCELoss(temperature=0.2, gather_distributed=d), 5),
    "infonce_bank": _run_pair_loss(_bank_loss, 5),
    "dino": _run_dino,
}
GLOBAL_ONLY = {"barlow_gram", "barlow_direct"}  # every rank computes the global loss


def worker(rank: int, port: int, out_dir: str) -> None:
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=WORLD_SIZE,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        torch.manual_seed(0)
        inputs = data()
        results = {name: run(inputs, rank, WORLD_SIZE) for name, run in CASES.items()}
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
