"""Cases for ``test_distributed.py``: run by 2 spawned gloo ranks and by the single process.

A plain module (not a test file) so that ``torch.multiprocessing.spawn`` can pickle
``worker`` by name whatever pytest's import mode; the test puts this directory on
``sys.path`` (spawn passes ``sys.path`` on to the children). Its name differs from
``tests/losses/_distributed_cases.py`` so both can be imported in one session.

Rank 0 holds the first 70 % of every data set in two batches of different sizes, rank 1
the rest in one batch, so the ranks see different amounts of data; the ``*_rank0_only``
metrics get every batch on rank 0 and nothing on rank 1 (a rank without any update).
The single process (``world_size == 1``) feeds the same batches to one metric.
"""

from __future__ import annotations

import datetime
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import Tensor

from geofm.metrics import (
    ConfusionMatrix,
    MeanAbsoluteError,
    MultilabelAveragePrecision,
    MultilabelConfusionMatrix,
    R2Score,
    RootMeanSquaredError,
    TopKAccuracy,
    iou,
)

WORLD_SIZE = 2
C = 5  # classes
L = 4  # labels
D = 3  # regression outputs
Average = Literal["macro", "micro", "none"]


def data() -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(7)
    target = torch.randint(0, C - 1, (23, 3, 5), generator=g)  # class 4 never a target
    preds = torch.where(torch.rand(23, 3, 5, generator=g) < 0.6, target, 4 - target)
    target[torch.rand(23, 3, 5, generator=g) < 0.1] = 255
    labels = (torch.rand(29, L, generator=g) < 0.4).long()
    labels[:, 3] = 0  # label 3: no positive anywhere
    reg_target = torch.randn(31, D, generator=g) * torch.tensor([1.0, 4.0, 0.5]) + 50.0
    return {
        "scores": torch.randn(23, C, 3, 5, generator=g),
        "preds": preds,
        "target": target,
        "ml_scores": (0.4 * labels + 0.6 * torch.rand(29, L, generator=g)).clamp(0, 1),
        "ml_target": labels,
        "reg_preds": reg_target + torch.randn(31, D, generator=g),
        "reg_target": reg_target,
    }


def _batches(n: int, rank: int, world_size: int) -> list[slice]:
    """Row ranges of this rank: rank 0 gets 70 % in two batches, rank 1 the rest."""
    if world_size == 1:
        cut = round(0.7 * n)
        return [slice(0, cut // 3), slice(cut // 3, cut), slice(cut, n)]
    cut = round(0.7 * n)
    return [slice(0, cut // 3), slice(cut // 3, cut)] if rank == 0 else [slice(cut, n)]


def _feed(metric: Any, xs: Tensor, ys: Tensor, rows: list[slice]) -> Any:
    for r in rows:
        metric.update(xs[r], ys[r])
    return metric


def run(inputs: dict[str, Tensor], rank: int, world_size: int) -> dict[str, Tensor]:
    """Every metric on this rank's share of ``inputs``; the values its compute() returns."""
    out: dict[str, Tensor] = {}
    seg = _batches(len(inputs["target"]), rank, world_size)
    ml = _batches(len(inputs["ml_target"]), rank, world_size)
    reg = _batches(len(inputs["reg_target"]), rank, world_size)
    everything = [slice(0, None)] if rank == 0 else []

    cm = _feed(ConfusionMatrix(C, ignore_index=255), inputs["scores"], inputs["target"], seg)
    out["cm"] = cm.compute()
    out["cm_iou_macro"] = cm.iou()
    out["cm_f1_none"] = cm.f1_score(average="none")
    out["cm_precision_include"] = cm.precision(absent="include")
    out["cm_accuracy"] = cm.accuracy()
    out["cm_rank0_only"] = _feed(
        ConfusionMatrix(C, ignore_index=255), inputs["preds"], inputs["target"], everything
    ).compute()
    local = ConfusionMatrix(C, ignore_index=255, sync_on_compute=False)
    out["cm_local"] = _feed(local, inputs["preds"], inputs["target"], seg).compute()
    out["iou_function_local"] = iou(  # one-shot functions never communicate
        inputs["preds"][seg[0]], inputs["target"][seg[0]], num_classes=C, ignore_index=255
    )

    top = _feed(TopKAccuracy(k=2), inputs["scores"], inputs["target"].clamp(max=C - 1), seg)
    out["top2"] = top.compute()

    mcm = _feed(MultilabelConfusionMatrix(L), inputs["ml_scores"], inputs["ml_target"], ml)
    out["mcm"] = mcm.compute()
    out["mcm_subset"] = mcm.accuracy(average="subset")
    out["mcm_f1_macro"] = mcm.f1_score()
    averages: tuple[Average, ...] = ("macro", "micro", "none")
    for name, bins in (("ap_exact", None), ("ap_hist", 16)):
        for average in averages:
            ap = MultilabelAveragePrecision(L, average=average, num_bins=bins)
            out[f"{name}_{average}"] = _feed(
                ap, inputs["ml_scores"], inputs["ml_target"], ml
            ).compute()
    ap_rank0 = MultilabelAveragePrecision(L, average="none")
    out["ap_rank0_only"] = _feed(
        ap_rank0, inputs["ml_scores"], inputs["ml_target"], everything
    ).compute()

    regression: dict[str, Callable[..., Any]] = {
        "mae": MeanAbsoluteError,
        "rmse": RootMeanSquaredError,
        "r2": R2Score,
    }
    for name, cls in regression.items():
        metric = cls(num_outputs=D, multioutput="raw_values")
        out[name] = _feed(metric, inputs["reg_preds"], inputs["reg_target"], reg).compute()
    r2_rank0 = R2Score(num_outputs=D, multioutput="raw_values")
    out["r2_rank0_only"] = _feed(
        r2_rank0, inputs["reg_preds"], inputs["reg_target"], everything
    ).compute()
    out["r2_local"] = _feed(
        R2Score(num_outputs=D, multioutput="raw_values", sync_on_compute=False),
        inputs["reg_preds"],
        inputs["reg_target"],
        reg,
    ).compute()
    return out


def worker(rank: int, port: int, out_dir: str) -> None:
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=WORLD_SIZE,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        results = run(data(), rank, WORLD_SIZE)
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
