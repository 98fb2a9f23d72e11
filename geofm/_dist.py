"""Distributed helpers: rank, world size and collectives with a correct backward.

The collectives here have the backward pass that makes a loss computed on the
gathered batch train exactly like a single process on the concatenated batch
under ``DistributedDataParallel`` (DDP):

* :func:`gather`: forward ``all_gather`` of each rank's ``(n, ...)`` slice into
  ``(W * n, ...)``; backward sums the incoming gradient of the whole gathered
  tensor over ranks (``all_reduce``) and each rank keeps the rows it owns;
* :func:`all_reduce_sum`: forward sums over ranks; backward sums the incoming
  gradient over ranks (batch-norm statistics of the global batch).

Why the sum: every rank evaluates the same global term ``L``, so the gradient
that reaches rank ``r``'s slice is ``sum_r' dL_r'/dz_r = W * dL/dz_r``; DDP then
averages parameter gradients over the ``W`` ranks, which cancels the factor
``W``. Keeping only the local gradient (no sum) leaves the gradient off by
``1 / W``, the bug reported in lightly issues #1920 and #1977. This is the
``FullGatherLayer`` of the VICReg reference code.

References:
    - VICReg reference code (``FullGatherLayer``):
      https://github.com/facebookresearch/vicreg/blob/main/main_vicreg.py
    - lightly issues #1920, #1977, #1528 (gradients off by ``1 / world_size``).
"""

from __future__ import annotations

from typing import Any, cast

import torch
import torch.distributed as dist
from torch import Tensor

from geofm.errors import MissingDependencyError

__all__ = [
    "all_ranks_ok",
    "all_reduce_sum",
    "broadcast_object",
    "check_distributed_available",
    "collective_device",
    "gather",
    "rank",
    "world_size",
]


def world_size() -> int:
    """Return the number of processes, or 1 when not running distributed.

    Returns:
        ``torch.distributed.get_world_size()`` inside an initialised process
        group, else 1.

    Example:
        >>> world_size()
        1
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def rank() -> int:
    """Return the rank of this process, or 0 when not running distributed.

    Returns:
        ``torch.distributed.get_rank()`` inside an initialised process group,
        else 0.

    Example:
        >>> rank()
        0
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return 0


def check_distributed_available(*, gather_distributed: bool, owner: str) -> None:
    """Raise if ``gather_distributed=True`` but PyTorch has no distributed support.

    Args:
        gather_distributed: The flag the user passed.
        owner: Name of the class that received the flag, for the message.

    Raises:
        MissingDependencyError: If ``torch.distributed`` is not available.

    Example:
        >>> check_distributed_available(gather_distributed=False, owner="VICRegLoss")
    """
    if gather_distributed and not dist.is_available():
        raise MissingDependencyError(
            f"{owner}(gather_distributed=True) needs torch.distributed, which this PyTorch "
            "build lacks. Install a PyTorch build with distributed support or pass "
            "gather_distributed=False."
        )


class _GatherWithGradient(torch.autograd.Function):
    """All-gather along dim 0; backward sums gradients over ranks, keeps own rows."""

    @staticmethod
    def forward(ctx: Any, tensor: Tensor) -> Tensor:
        ctx.rank = dist.get_rank()
        ctx.batch_size = tensor.shape[0]
        chunks = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(chunks, tensor.contiguous())
        return torch.cat(chunks, dim=0)  # (W * n, ...)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> Tensor:
        # Clone: all_reduce works in place and autograd may still own grad_output.
        grad = grad_output.contiguous().clone()  # (W * n, ...)
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = ctx.rank * ctx.batch_size
        return grad[start : start + ctx.batch_size]  # (n, ...)


def gather(tensor: Tensor) -> Tensor:
    """Concatenate ``tensor`` from all ranks along dim 0, with a DDP-correct backward.

    Every rank must pass a tensor of the same shape. Outside an initialised
    process group (or with one process) the input is returned unchanged.

    Args:
        tensor: This rank's slice.

    Returns:
        The slices of ranks ``0 .. W-1`` concatenated in rank order.

    Shape:
        - Input: ``(n, *)``.
        - Output: ``(W * n, *)``.

    Example:
        >>> gather(torch.ones(2, 3)).shape
        torch.Size([2, 3])
    """
    if world_size() == 1:
        return tensor
    return cast(Tensor, _GatherWithGradient.apply(tensor))


class _AllReduceSumWithGradient(torch.autograd.Function):
    """Sum over ranks; backward sums the incoming gradients over ranks as well."""

    @staticmethod
    def forward(ctx: Any, tensor: Tensor) -> Tensor:
        total = tensor.detach().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> Tensor:
        # Same convention as the gather: every rank's loss depends on the sum,
        # so the gradient of its input is the sum of all ranks' gradients.
        grad = grad_output.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


def all_reduce_sum(tensor: Tensor) -> Tensor:
    """Return the sum of ``tensor`` over ranks, with a DDP-correct backward.

    The backward sums the incoming gradients over ranks (the all-reduce is its
    own adjoint), the convention of :func:`gather`: with DDP's averaging of
    parameter gradients this trains like one process on the concatenated batch
    (e.g. batch-norm statistics of the global batch). Every rank must pass a
    tensor of the same shape. Outside an initialised process group (or with
    one process) the input is returned unchanged.

    Args:
        tensor: This rank's value.

    Returns:
        A new tensor holding the sum over ranks when distributed, else the input.

    Shape:
        - Input: any shape ``(*)``.
        - Output: the same shape.

    Example:
        >>> all_reduce_sum(torch.ones(2))
        tensor([1., 1.])
    """
    if world_size() == 1:
        return tensor
    return cast(Tensor, _AllReduceSumWithGradient.apply(tensor))


def collective_device() -> torch.device:
    """The device the process group's collectives use: the current GPU under NCCL, else CPU.

    Only valid inside an initialised process group.
    """
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def broadcast_object(value: Any) -> Any:
    """Rank 0's ``value`` (any picklable object) on every rank; ``value`` as is with one process.

    Example:
        >>> broadcast_object({"a": 1})
        {'a': 1}
    """
    if world_size() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0, device=collective_device())
    return box[0]


def all_ranks_ok(ok: bool) -> bool:
    """``True`` only if ``ok`` is true on every rank (``ok`` itself with one process).

    Example:
        >>> all_ranks_ok(True)
        True
    """
    if world_size() == 1:
        return ok
    flag = torch.tensor([int(ok)], device=collective_device())
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


def raise_rank_failure(
    error: BaseException | None, all_ok: bool, *, caller: str, hint: str
) -> None:
    """After a collective: raise this rank's ``error``, else say another rank failed.

    Args:
        error: What this rank raised, or ``None``.
        all_ok: What :func:`all_ranks_ok` returned (every rank succeeded).
        caller: The public function, named in the message.
        hint: Advice appended to the message.

    Raises:
        BaseException: ``error`` itself, when this rank failed.
        RuntimeError: When only another rank failed.

    Example:
        >>> raise_rank_failure(None, True, caller="predict_raster", hint="")  # nothing failed
    """
    if error is not None:
        raise error
    if not all_ok:
        raise RuntimeError(
            f"{caller} failed on another rank (this is rank {rank()} of {world_size()}); see "
            f"that rank's error.{' ' + hint if hint else ''}"
        )
