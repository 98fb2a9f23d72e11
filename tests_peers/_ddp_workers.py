"""Two-process gloo workers for the ported lightly DDP tests (a plain module, not a test file).

``torch.multiprocessing.spawn`` pickles :func:`barlow_worker` by module name, so it lives
outside the test file; the test puts this folder on ``sys.path`` (spawn hands ``sys.path``
to the children).
"""

from __future__ import annotations

import datetime
import socket
from pathlib import Path

import torch
import torch.distributed as dist

from geofm.losses import BarlowTwinsLoss

WORLD_SIZE = 2


def free_port() -> int:
    """An unused TCP port on localhost for the rendezvous."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def barlow_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    """The (16, 64) pair of lightly's DDP tests; every rank gets the same data."""
    generator = torch.Generator().manual_seed(0)
    return torch.randn(16, 64, generator=generator), torch.randn(16, 64, generator=generator)


def barlow_worker(rank: int, port: int, out_dir: str) -> None:
    """Forward value and input gradient of the gathered Barlow Twins loss on one rank."""
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=WORLD_SIZE,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        z_a, z_b = barlow_inputs()
        loss_fn = BarlowTwinsLoss(gather_distributed=True)
        loss = loss_fn(z_a, z_b).detach()
        z_a = z_a.clone().requires_grad_(True)
        loss_fn(z_a, z_b).backward()
        assert z_a.grad is not None
        torch.save({"loss": loss, "grad": z_a.grad}, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()
