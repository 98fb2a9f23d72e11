"""Shared base class, input checks, gathering and precision handling for the losses (private).

Every loss that is undefined for an input (too few samples for negatives or
for a variance, no pair of views, no masked patch) raises with the one wording
of :func:`undefined_loss_message` instead of returning a constant without
gradient.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, ClassVar, Literal, cast, get_args

import torch
from torch import Tensor, nn

from geofm._dist import check_distributed_available, gather
from geofm.errors import ShapeError

__all__ = [
    "BatchStatisticsLoss",
    "DistributedModule",
    "MatrixMethod",
    "check_batch_size",
    "check_embedding_pair",
    "check_matrix_method",
    "check_positive",
    "full_precision",
    "gather_pair",
    "gathered_pair",
    "off_diagonal",
    "off_diagonal_square_sum",
    "undefined_loss_message",
    "upcast",
]

#: How to get the Frobenius norm of a ``(D, D)`` covariance or cross-correlation:
#: ``"gram"`` through the ``(N, N)`` Gram matrix, ``"direct"`` through the
#: ``(D, D)`` matrix, ``"auto"``: Gram when ``N < D``.
MatrixMethod = Literal["auto", "gram", "direct"]


class DistributedModule(nn.Module):
    """Base of the modules that take ``gather_distributed`` (the SSL losses, the memory bank).

    Checks that ``torch.distributed`` exists when the flag is set, stores the
    flag, and shows the attributes named in ``repr_fields`` and the flag in ``repr``.

    Args:
        gather_distributed: Whether the module works on the batches of all ranks.

    Raises:
        MissingDependencyError: If ``gather_distributed=True`` and PyTorch has
            no ``torch.distributed``.

    Example:
        >>> class Loss(DistributedModule):
        ...     repr_fields = ("scale",)
        ...     def __init__(self):
        ...         super().__init__(gather_distributed=False)
        ...         self.scale = 2.0
        >>> Loss()
        Loss(scale=2.0, gather_distributed=False)
    """

    repr_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, gather_distributed: bool) -> None:
        super().__init__()
        check_distributed_available(
            gather_distributed=gather_distributed, owner=type(self).__name__
        )
        self.gather_distributed = gather_distributed

    def extra_repr(self) -> str:
        """Return the hyperparameters shown in ``repr``."""
        names = (*self.repr_fields, "gather_distributed")
        return ", ".join(f"{name}={getattr(self, name)}" for name in names)


def upcast(tensor: Tensor) -> Tensor:
    """Return ``tensor`` in float32 if it is in a narrower float type (fp16, bf16).

    float32 and float64 inputs are returned unchanged, so tests can run in
    float64. The cast is differentiable: gradients flow back in the input dtype.

    Example:
        >>> upcast(torch.ones(2, dtype=torch.bfloat16)).dtype
        torch.float32
    """
    return tensor.to(torch.promote_types(tensor.dtype, torch.float32))


def full_precision(tensor: Tensor) -> contextlib.AbstractContextManager[None]:
    """Return a context that disables autocast on ``tensor``'s device.

    Inside ``torch.autocast`` matmuls would otherwise run in fp16/bf16 again.

    Example:
        >>> with full_precision(torch.ones(1)):
        ...     pass
    """
    return torch.autocast(device_type=tensor.device.type, enabled=False)


def check_matrix_method(method: str, *, owner: str, argument: str) -> None:
    """Raise unless ``method`` is one of :data:`MatrixMethod`.

    Raises:
        ValueError: If ``method`` is not ``"auto"``, ``"gram"`` or ``"direct"``.

    Example:
        >>> check_matrix_method("gram", owner="VICRegLoss", argument="covariance_method")
    """
    choices = get_args(MatrixMethod)
    if method not in choices:
        raise ValueError(
            f"{owner} got {argument}={method!r}; expected one of {', '.join(map(repr, choices))}."
            ' Use "auto" unless you are benchmarking.'
        )


def check_positive(value: float, *, owner: str, name: str, hint: str) -> None:
    """Raise unless the hyperparameter ``value`` is finite and positive.

    Args:
        value: The value received.
        owner: Class that received it, for the message.
        name: Argument name, for the message.
        hint: Typical value or why it must be positive, for the message.

    Raises:
        ValueError: If ``value`` is not a finite number ``> 0`` (NaN included).

    Example:
        >>> check_positive(0.5, owner="NTXentLoss", name="temperature", hint="0.5")
        >>> check_positive(0.0, owner="NTXentLoss", name="temperature", hint="0.5")
        Traceback (most recent call last):
        ...
        ValueError: NTXentLoss got temperature=0.0; expected a finite temperature > 0 (0.5).
    """
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{owner} got {name}={value}; expected a finite {name} > 0 ({hint}).")


def undefined_loss_message(owner: str, *, needs: str, got: str, fix: str) -> str:
    """Return the one wording of every "this loss is undefined for this input" error.

    Args:
        owner: The loss, e.g. ``"InfoNCELoss"``.
        needs: What the loss needs, e.g. ``"at least 2 samples in the batch for negatives"``.
        got: What it received, e.g. ``"embeddings of shape (1, 8)"``.
        fix: How to fix it, one sentence.

    Returns:
        The message.

    Example:
        >>> undefined_loss_message("DINOLoss", needs="2 views", got="1 view", fix="Pass 2 crops.")
        'DINOLoss is undefined for this input: it needs 2 views, got 1 view. Pass 2 crops.'
    """
    return f"{owner} is undefined for this input: it needs {needs}, got {got}. {fix}"


def check_embedding_pair(
    z_a: Tensor, z_b: Tensor, *, owner: str, names: tuple[str, str] = ("z_a", "z_b")
) -> None:
    """Raise unless ``z_a`` and ``z_b`` are 2-D and of the same shape.

    Args:
        z_a: First embeddings.
        z_b: Second embeddings, paired row by row with ``z_a``.
        owner: Class that received them, for the message.
        names: The two argument names, for the message.

    Raises:
        ShapeError: If either input is not ``(N, D)`` or the shapes differ.

    Example:
        >>> check_embedding_pair(torch.ones(2, 3), torch.ones(2, 3), owner="VICRegLoss")
    """
    for name, z in zip(names, (z_a, z_b), strict=True):
        if z.ndim != 2:
            raise ShapeError(
                f"{owner} expects {name} of shape (N, D), got shape {tuple(z.shape)}. "
                "Flatten or pool the embeddings to (N, D) first."
            )
    if z_a.shape != z_b.shape:
        raise ShapeError(
            f"{owner} expects {names[0]} and {names[1]} of the same shape (N, D), got "
            f"{tuple(z_a.shape)} and {tuple(z_b.shape)}. Row i of {names[1]} must pair with "
            f"row i of {names[0]}."
        )


def gather_pair(z_a: Tensor, z_b: Tensor) -> tuple[Tensor, Tensor]:
    """Gather two views of one batch over ranks with a single collective.

    Outside a process group both are returned unchanged.

    Shape:
        - z_a, z_b: ``(n, D)`` each.
        - Output: two ``(W * n, D)`` tensors, rank by rank.

    Example:
        >>> a, b = gather_pair(torch.zeros(2, 3), torch.ones(2, 3))
        >>> a.shape, float(b.sum())
        (torch.Size([2, 3]), 6.0)
    """
    d = z_a.shape[1]
    both = gather(torch.cat([z_a, z_b], dim=1))  # (W * n, 2 * D)
    return both[:, :d], both[:, d:]  # (W * n, D) each


def check_batch_size(
    z: Tensor,
    *,
    owner: str,
    gathered: bool,
    purpose: str,
    minimum: int = 2,
    fix: str = "Use a batch size of 2 or more.",
) -> None:
    """Raise unless the (gathered) batch ``z`` ``(N, D)`` holds at least ``minimum`` samples.

    Args:
        z: The (gathered) embeddings.
        owner: The loss, for the message.
        gathered: Whether ``z`` is the global batch, for the message.
        purpose: Why the samples are needed, e.g. ``"for the unbiased variance"``.
        minimum: Fewest samples for which the loss is defined.
        fix: How to fix it, one sentence.

    Raises:
        ShapeError: If ``N < minimum``; the message has the wording of
            :func:`undefined_loss_message`.

    Example:
        >>> check_batch_size(torch.ones(2, 3), owner="VICRegLoss", gathered=False,
        ...                  purpose="for the unbiased variance")
    """
    if z.shape[0] < minimum:
        noun = "sample" if minimum == 1 else "samples"
        needs = f"at least {minimum} {noun} in the {'global ' if gathered else ''}batch {purpose}"
        raise ShapeError(
            undefined_loss_message(
                owner, needs=needs, got=f"embeddings of shape {tuple(z.shape)}", fix=fix
            )
        )


def gathered_pair(
    z_a: Tensor, z_b: Tensor, *, owner: str, gather_distributed: bool, purpose: str
) -> tuple[Tensor, Tensor]:
    """Return the two views of the global batch (gathered when asked), checked to hold 2 samples.

    Args:
        z_a: First view ``(n, D)``.
        z_b: Second view ``(n, D)``.
        owner: The loss, for the message.
        gather_distributed: Gather both views over ranks (:func:`gather_pair`).
        purpose: Why two samples are needed, for the message.

    Returns:
        ``(z_a, z_b)``, each ``(W * n, D)`` when gathered, else unchanged.

    Raises:
        ShapeError: If the (global) batch holds fewer than 2 samples.

    Example:
        >>> a, b = gathered_pair(torch.ones(2, 3), torch.zeros(2, 3), owner="BarlowTwinsLoss",
        ...                      gather_distributed=False, purpose="to standardise features")
        >>> a.shape
        torch.Size([2, 3])
    """
    if gather_distributed:
        z_a, z_b = gather_pair(z_a, z_b)  # (W * n, D) each
    check_batch_size(z_a, owner=owner, gathered=gather_distributed, purpose=purpose)
    return z_a, z_b


class BatchStatisticsLoss(DistributedModule):
    """Base of the two-view losses built on batch statistics of ``(N, D)`` embeddings.

    VICReg and Barlow Twins share their contract: ``eps > 0``, a
    :data:`MatrixMethod`, two views of one shape, computed in float32 or
    wider, gathered over ranks with ``gather_distributed=True``, and undefined
    for fewer than 2 samples in the (global) batch. Subclasses name why they
    need two samples in ``batch_purpose``.

    Args:
        eps: Numerical guard of the subclass, ``> 0``.
        eps_hint: Typical value of ``eps``, for the message.
        method: The subclass's :data:`MatrixMethod` argument.
        method_argument: Its public name, for the message.
        gather_distributed: Work on the batches of all ranks.

    Raises:
        ValueError: If ``eps`` is not finite and positive or ``method`` is unknown.
        MissingDependencyError: If ``gather_distributed=True`` and PyTorch has
            no ``torch.distributed``.

    Example:
        >>> class Loss(BatchStatisticsLoss):
        ...     batch_purpose = "for a variance"
        ...     def __init__(self):
        ...         super().__init__(eps=1e-4, eps_hint="1e-4", method="auto",
        ...                          method_argument="method", gather_distributed=False)
        >>> z_a, z_b = Loss().local_views(torch.ones(1, 3, dtype=torch.half), torch.ones(1, 3))
        >>> z_a.dtype
        torch.float32
        >>> try:
        ...     Loss().global_views(z_a, z_b)
        ... except ValueError as err:
        ...     print(str(err).split(",")[0])
        Loss is undefined for this input: it needs at least 2 samples in the batch for a variance
    """

    batch_purpose: ClassVar[str] = ""

    def __init__(
        self,
        *,
        eps: float,
        eps_hint: str,
        method: str,
        method_argument: str,
        gather_distributed: bool,
    ) -> None:
        super().__init__(gather_distributed=gather_distributed)
        owner = type(self).__name__
        check_positive(eps, owner=owner, name="eps", hint=eps_hint)
        check_matrix_method(method, owner=owner, argument=method_argument)
        self.eps = eps

    def local_views(self, z_a: Tensor, z_b: Tensor) -> tuple[Tensor, Tensor]:
        """Check the two views and return them in float32 or wider (:func:`upcast`).

        Args:
            z_a: First view.
            z_b: Second view, paired row by row with ``z_a``.

        Returns:
            ``(z_a, z_b)``, upcast.

        Raises:
            ShapeError: If the views are not two ``(N, D)`` tensors of one shape.
        """
        check_embedding_pair(z_a, z_b, owner=type(self).__name__)
        return upcast(z_a), upcast(z_b)

    def global_views(self, z_a: Tensor, z_b: Tensor) -> tuple[Tensor, Tensor]:
        """Return the views of the global batch (see :func:`gathered_pair`).

        Args:
            z_a: First view ``(n, D)``.
            z_b: Second view ``(n, D)``.

        Returns:
            ``(z_a, z_b)``, each ``(W * n, D)`` when gathered.

        Raises:
            ShapeError: If the (global) batch holds fewer than 2 samples.
        """
        return gathered_pair(
            z_a,
            z_b,
            owner=type(self).__name__,
            gather_distributed=self.gather_distributed,
            purpose=self.batch_purpose,
        )


class _GramSquaredNorm(torch.autograd.Function):
    """``||a a^T||_F^2`` with a one-matmul backward ``4 (a a^T) a`` (autograd would use two).

    The saved Gram matrix is reused in backward; under ``create_graph=True``
    it is recomputed so that second derivatives stay exact.
    """

    @staticmethod
    def forward(ctx: Any, a: Tensor) -> Tensor:
        gram = a @ a.T  # (N, N)
        ctx.save_for_backward(a, gram)
        return gram.pow(2).sum()

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> Tensor:
        a, gram = cast(tuple[Tensor, Tensor], ctx.saved_tensors)
        if torch.is_grad_enabled():  # create_graph=True: rebuild gram inside the graph
            gram = a @ a.T  # (N, N)
        return (gram * (4.0 * grad_output)) @ a  # (N, D)


class _GramInner(torch.autograd.Function):
    """``<a a^T, b b^T>_F = ||a^T b||_F^2``; gradients ``2 (b b^T) a`` and ``2 (a a^T) b``."""

    @staticmethod
    def forward(ctx: Any, a: Tensor, b: Tensor) -> Tensor:
        gram_a = a @ a.T  # (N, N)
        gram_b = b @ b.T  # (N, N)
        ctx.save_for_backward(a, b, gram_a, gram_b)
        return (gram_a * gram_b).sum()

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, Tensor]:
        a, b, gram_a, gram_b = cast(tuple[Tensor, Tensor, Tensor, Tensor], ctx.saved_tensors)
        if torch.is_grad_enabled():  # create_graph=True: rebuild the grams inside the graph
            gram_a, gram_b = a @ a.T, b @ b.T  # (N, N) each
        scale = 2.0 * grad_output
        return (gram_b * scale) @ a, (gram_a * scale) @ b  # (N, D) each


def off_diagonal(matrix: Tensor) -> Tensor:
    """Return the ``D * (D - 1)`` off-diagonal entries of a square matrix, flattened.

    Example:
        >>> off_diagonal(torch.arange(9.0).reshape(3, 3)).tolist()
        [1.0, 2.0, 3.0, 5.0, 6.0, 7.0]
    """
    d = matrix.shape[0]
    # Dropping the first entry and viewing the rest as (D - 1, D + 1) puts the
    # diagonal entries (1, 1) .. (D - 1, D - 1) in the last column.
    return matrix.flatten()[1:].view(d - 1, d + 1)[:, :-1].flatten()  # (D * (D - 1),)


def off_diagonal_square_sum(
    a: Tensor, b: Tensor | None, *, diagonal: Tensor, method: MatrixMethod
) -> Tensor:
    """Return ``sum_{i != j} (a^T b)_ij ** 2`` for ``a``, ``b`` of shape ``(N, D)``.

    ``b=None`` means ``b = a`` (a covariance). ``diagonal`` must be the
    diagonal of ``a^T b``, ``sum_n a_ni b_ni`` (callers already have it).
    ``method="gram"`` uses ``||a^T b||_F^2 = <a a^T, b b^T>_F`` (``O(N^2 D)``)
    minus ``||diagonal||^2``; ``method="direct"`` forms the ``(D, D)`` matrix
    (``O(N D^2)``) and sums its off-diagonal squares; ``"auto"`` picks Gram
    when ``N < D``. Both are exact up to float rounding.

    Example:
        >>> z = torch.randn(3, 5, dtype=torch.float64)
        >>> diagonal = z.pow(2).sum(dim=0)
        >>> g = off_diagonal_square_sum(z, None, diagonal=diagonal, method="gram")
        >>> torch.allclose(g, off_diagonal_square_sum(z, None, diagonal=diagonal, method="direct"))
        True
    """
    n, d = a.shape
    if method == "gram" or (method == "auto" and n < d):
        if b is None:
            total = cast(Tensor, _GramSquaredNorm.apply(a))
        else:
            total = cast(Tensor, _GramInner.apply(a, b))
        return total - diagonal.pow(2).sum()
    cross = a.T @ (a if b is None else b)  # (D, D)
    return off_diagonal(cross).pow(2).sum()
