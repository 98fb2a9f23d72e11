"""Cases for ``test_batchnorm.py``: run by 2 spawned gloo ranks and by one process.

A plain module (not a test file) so that ``torch.multiprocessing.spawn`` can pickle
``worker`` by name; the test puts this directory on ``sys.path``.
"""

from __future__ import annotations

import datetime
import socket
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from geofm.ssl import convert_to_global_batchnorm

WORLD_SIZE = 2
LOCAL_BATCH = 3
CHANNELS = 4


def data() -> Tensor:
    generator = torch.Generator().manual_seed(99)
    x = torch.randn(WORLD_SIZE * LOCAL_BATCH, 3, 5, 5, generator=generator, dtype=torch.float64)
    return 2.0 * x + 1.0


def model() -> nn.Sequential:
    """Conv -> BN -> ReLU -> pool, float64, fixed weights, BN converted to GlobalBatchNorm."""
    torch.manual_seed(5)
    net = nn.Sequential(
        nn.Conv2d(3, CHANNELS, 3), nn.BatchNorm2d(CHANNELS, momentum=0.3), nn.ReLU()
    ).double()
    with torch.no_grad():
        net[1].weight.uniform_(0.5, 1.5)
        net[1].bias.uniform_(-0.5, 0.5)
    return net


def run(x: Tensor, rank: int, world_size: int, *, convert: bool) -> dict[str, Any]:
    """Two training steps' statistics and the DDP-averaged gradients of one rank."""
    net = convert_to_global_batchnorm(model()) if convert else model()
    n = x.shape[0] // world_size
    local = x[rank * n : (rank + 1) * n].clone().requires_grad_()
    weights = torch.linspace(-1.0, 2.0, x.shape[0] * CHANNELS * 9, dtype=x.dtype)
    weights = weights.view(x.shape[0], CHANNELS, 3, 3)[rank * n : (rank + 1) * n]
    out = net(local)  # (n, C, 3, 3)
    loss = (out * weights).sum() / n  # mean over the local samples: ranks' mean = global loss
    loss.backward()
    for parameter in net.parameters():  # what DDP does: average the gradients over ranks
        assert parameter.grad is not None
        if world_size > 1:
            dist.all_reduce(parameter.grad)
            parameter.grad /= world_size
    net(local.detach() * 0.5)  # a second batch for the running statistics
    bn = net[1]
    return {
        "loss": loss.detach(),
        "out": out.detach(),
        "x_grad": local.grad,
        "weight_grad": bn.weight.grad,
        "bias_grad": bn.bias.grad,
        "conv_grad": net[0].weight.grad,
        "running_mean": bn.running_mean.clone(),
        "running_var": bn.running_var.clone(),
        "num_batches_tracked": bn.num_batches_tracked.clone(),
    }


def worker(rank: int, port: int, out_dir: str) -> None:
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=WORLD_SIZE,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        torch.save(run(data(), rank, WORLD_SIZE, convert=True), Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
