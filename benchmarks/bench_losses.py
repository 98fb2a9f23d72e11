"""Benchmark geofm's SSL losses against lightly's, side by side in one run (CPU).

Each case times forward + backward (plus the state update each method needs per
step: the MoCo queue, the DINO centre) on identical inputs, reports the median
over repeats (and the best time, less sensitive to background load), the
speed-up ``lightly / geofm`` and the relative difference of the loss values.
Targets (issue 5): VICReg >= 50x and Barlow Twins >= 10x at N=256, D=8192;
DINO, InfoNCE (32,768 queue) and NT-Xent no slower than lightly (time ratio
geofm / lightly <= 1.05).

On a machine shared with other jobs, spinning OpenMP threads (libgomp's
default active wait) stall each other and inflate every small kernel several
fold; the script therefore sets ``OMP_WAIT_POLICY=PASSIVE`` unless the variable
is already set (same setting for geofm and lightly). ``--threads 1`` is the
steadiest measurement.

Run:
    python benchmarks/bench_losses.py                 # all cases
    python benchmarks/bench_losses.py --cases vicreg --repeats 10 --slow-repeats 2

lightly's VICReg takes ~13 s per step on a 2-core machine, so the slow lightly
cases (VICReg, Barlow Twins) use ``--slow-repeats`` (default 1). The measurements
of geofm and lightly alternate within each repeat so that background load hits
both alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts OpenMP

import torch
from lightly import loss as lightly_loss

from geofm import losses, ssl

Step = Callable[[], torch.Tensor]


@dataclass(frozen=True)
class Case:
    """One benchmark: a geofm step and a lightly step on the same inputs."""

    name: str
    setting: str
    geofm: Step
    lightly: Step
    slow_peer: bool  # lightly takes seconds: use --slow-repeats
    target: str


def _pair_inputs(n: int, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    z_a = torch.randn(n, d)
    z_b = 0.5 * z_a + torch.randn(n, d)
    return z_a, z_b


def _pair_step(loss_fn: torch.nn.Module, z_a: torch.Tensor, z_b: torch.Tensor) -> Step:
    def step() -> torch.Tensor:
        a, b = z_a.clone().requires_grad_(), z_b.clone().requires_grad_()
        loss = loss_fn(a, b)
        loss.backward()
        return cast(torch.Tensor, loss.detach())

    return step


def _vicreg(n: int, d: int) -> Case:
    z_a, z_b = _pair_inputs(n, d)
    return Case(
        "VICReg",
        f"N={n}, D={d}",
        _pair_step(losses.VICRegLoss(), z_a, z_b),
        _pair_step(lightly_loss.VICRegLoss(), z_a, z_b),
        slow_peer=True,
        target=">= 50x",
    )


def _barlow(n: int, d: int) -> Case:
    z_a, z_b = _pair_inputs(n, d)
    return Case(
        "BarlowTwins",
        f"N={n}, D={d}",
        _pair_step(losses.BarlowTwinsLoss(), z_a, z_b),
        _pair_step(lightly_loss.BarlowTwinsLoss(), z_a, z_b),
        slow_peer=True,
        target=">= 10x",
    )


def _ntxent(n: int, d: int) -> Case:
    z_a, z_b = _pair_inputs(n, d)
    return Case(
        "NT-Xent",
        f"N={n}, D={d}",
        _pair_step(losses.NTXentLoss(temperature=0.5), z_a, z_b),
        _pair_step(lightly_loss.NTXentLoss(temperature=0.5), z_a, z_b),
        slow_peer=False,
        target="ratio <= 1.05",
    )


def _infonce(n: int, d: int, queue: int) -> Case:
    query, key = _pair_inputs(n, d)
    ours = losses.InfoNCELoss(temperature=0.1, memory_bank=ssl.MemoryBank(size=queue, dim=d))
    theirs = lightly_loss.NTXentLoss(temperature=0.1, memory_bank_size=(queue, d))
    assert ours.memory_bank is not None
    theirs.memory_bank.bank = ours.memory_bank.bank.clone()

    def geofm_step() -> torch.Tensor:
        q = query.clone().requires_grad_()
        loss = ours(q, key)
        loss.backward()
        ours.update_memory_bank(key)
        return cast(torch.Tensor, loss.detach())

    def lightly_step() -> torch.Tensor:
        q = query.clone().requires_grad_()
        loss = theirs(q, key)  # enqueues key inside forward
        loss.backward()
        return cast(torch.Tensor, loss.detach())

    return Case(
        "InfoNCE+queue",
        f"N={n}, D={d}, K={queue}",
        geofm_step,
        lightly_step,
        slow_peer=False,
        target="ratio <= 1.05",
    )


def _dino(n: int, k: int, teacher_views: int, student_views: int) -> Case:
    teacher = [torch.randn(n, k) for _ in range(teacher_views)]
    student = [torch.randn(n, k) for _ in range(student_views)]
    ours = losses.DINOLoss(output_dim=k, warmup_epochs=0)
    theirs = lightly_loss.DINOLoss(output_dim=k, warmup_teacher_temp_epochs=0)

    def geofm_step() -> torch.Tensor:
        views = [s.clone().requires_grad_() for s in student]
        loss = ours(teacher, views, epoch=0)
        loss.backward()
        ours.update_center(teacher)
        return cast(torch.Tensor, loss.detach())

    def lightly_step() -> torch.Tensor:
        views = [s.clone().requires_grad_() for s in student]
        loss = theirs(teacher, views)  # updates its centre inside
        loss.backward()
        return cast(torch.Tensor, loss.detach())

    return Case(
        "DINO",
        f"N={n}, K={k}, views {teacher_views}+{student_views}",
        geofm_step,
        lightly_step,
        slow_peer=False,
        target="ratio <= 1.05",
    )


def _time(step: Step) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    value = step()
    return time.perf_counter() - start, value


def _run(case: Case, repeats: int, slow_repeats: int) -> None:
    peer_repeats = slow_repeats if case.slow_peer else repeats
    torch.manual_seed(0)
    first_ours = case.geofm()  # warm-up (allocations, thread pools)
    first_theirs = case.lightly() if not case.slow_peer else None
    ours_times: list[float] = []
    theirs_times: list[float] = []
    for index in range(max(repeats, peer_repeats)):
        if index < repeats:
            ours_times.append(_time(case.geofm)[0])
        if index < peer_repeats:
            elapsed, value = _time(case.lightly)
            theirs_times.append(elapsed)
            if first_theirs is None:
                first_theirs = value
    assert first_theirs is not None
    ours_s = statistics.median(ours_times)
    theirs_s = statistics.median(theirs_times)
    ours_min, theirs_min = min(ours_times), min(theirs_times)
    rel = abs(float(first_ours) - float(first_theirs)) / max(abs(float(first_theirs)), 1e-12)
    print(
        f"{case.name:<14} {case.setting:<28} geofm {ours_s * 1e3:9.2f} ms  "
        f"lightly {theirs_s * 1e3:10.2f} ms  speed-up {theirs_s / ours_s:7.2f}x  "
        f"time ratio {ours_s / theirs_s:5.3f}  loss {float(first_ours):.6g} vs "
        f"{float(first_theirs):.6g} (rel diff {rel:.1e})  target {case.target}"
        f"  | best-of: {ours_min * 1e3:.2f} vs {theirs_min * 1e3:.2f} ms, "
        f"ratio {ours_min / theirs_min:5.3f}  (repeats {len(ours_times)}/{len(theirs_times)})",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed steps per method")
    parser.add_argument(
        "--slow-repeats", type=int, default=1, help="timed lightly steps for VICReg/Barlow"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument(
        "--cases",
        nargs="+",
        default=["vicreg", "barlow", "dino", "infonce", "ntxent"],
        choices=["vicreg", "barlow", "dino", "infonce", "ntxent"],
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    builders: dict[str, Callable[[], Case]] = {
        "vicreg": lambda: _vicreg(256, 8192),
        "barlow": lambda: _barlow(256, 8192),
        "dino": lambda: _dino(64, 65536, 2, 4),
        "infonce": lambda: _infonce(256, 128, 32768),
        "ntxent": lambda: _ntxent(256, 128),
    }
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU, float32, "
        f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}"
    )
    for name in args.cases:
        torch.manual_seed(0)
        _run(builders[name](), args.repeats, args.slow_repeats)


if __name__ == "__main__":
    main()
