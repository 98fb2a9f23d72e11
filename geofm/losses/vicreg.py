"""VICReg: variance-invariance-covariance regularisation loss.

The covariance penalty needs ``||C||_F^2`` of the ``(D, D)`` covariance
``C = Z^T Z / (N - 1)``. With ``N < D`` (e.g. ``N=256``, ``D=8192``) it is
computed exactly through the ``(N, N)`` Gram matrix,
``||Z^T Z||_F^2 = ||Z Z^T||_F^2``, in ``O(N^2 D)`` instead of ``O(N D^2)``.

References:
    - Bardes, Ponce, LeCun. "VICReg: Variance-Invariance-Covariance
      Regularization for Self-Supervised Learning." ICLR 2022.
      https://arxiv.org/abs/2105.04906
    - Reference code: https://github.com/facebookresearch/vicreg (``main_vicreg.py``).
    - lightly's port: https://github.com/lightly-ai/lightly
      (``lightly/loss/vicreg_loss.py``), same value, direct covariance.
"""

from __future__ import annotations

from typing import Any, NamedTuple, cast

import torch
import torch.nn.functional as F
from torch import Tensor

from geofm.errors import ShapeError
from geofm.losses._common import (
    BatchStatisticsLoss,
    MatrixMethod,
    check_batch_size,
    check_matrix_method,
    full_precision,
    off_diagonal_square_sum,
)

__all__ = ["VICRegLoss", "VICRegTerms", "covariance_loss", "variance_loss"]


def _centre(z: Tensor) -> tuple[Tensor, Tensor]:
    """Centre ``z`` over the batch; return it and its column sums of squares ``(N - 1) Var``."""
    # Tensor.var(dim=0) is a slow strided reduction on CPU; this takes two fast passes.
    z_centred = z - z.mean(dim=0)  # (N, D)
    return z_centred, (z_centred * z_centred).sum(dim=0)  # (N, D), (D,)


def _check_branch(z: Tensor, *, owner: str) -> None:
    """Raise unless ``z`` is one branch ``(N, D)`` with ``N >= 2``."""
    if z.ndim != 2:
        raise ShapeError(
            f"{owner} expects embeddings of shape (N, D), got shape {tuple(z.shape)}. "
            "Flatten or pool the embeddings to (N, D) first."
        )
    check_batch_size(z, owner=owner, gathered=False, purpose="for the unbiased variance")


def _variance_term(square_sums: Tensor, n: int, eps: float) -> Tensor:
    std = torch.sqrt(square_sums / (n - 1) + eps)  # (D,)
    return F.relu(1.0 - std).mean()


def _covariance_term(z_centred: Tensor, square_sums: Tensor, method: MatrixMethod) -> Tensor:
    n, d = z_centred.shape
    # diag(Z_c^T Z_c) is the column sums of squares.
    off = off_diagonal_square_sum(z_centred, None, diagonal=square_sums, method=method)
    return off / ((n - 1) ** 2 * d)


def _branch_terms_autograd(z: Tensor, eps: float, method: MatrixMethod) -> tuple[Tensor, Tensor]:
    z_centred, square_sums = _centre(z)  # shared by both terms
    variance = _variance_term(square_sums, z.shape[0], eps)
    return variance, _covariance_term(z_centred, square_sums, method)


class _GramBranchTerms(torch.autograd.Function):
    """Variance and Gram-path covariance terms of one branch with a hand-written backward.

    The gradient has a closed form (centring drops out because every term has
    zero column mean): ``dZ = Z_c * c + k * (Z_c Z_c^T) Z_c`` with per-feature
    ``c`` and scalar ``k``, one ``addmm``, where autograd would chain a dozen
    ``(N, D)`` passes and two matmuls. Under ``create_graph=True`` the backward
    differentiates the autograd formulation instead, so second derivatives stay exact.
    """

    @staticmethod
    def forward(ctx: Any, z: Tensor, eps: float) -> tuple[Tensor, Tensor]:
        n, d = z.shape
        z_centred, square_sums = _centre(z)  # (N, D), (D,)
        std = torch.sqrt(square_sums / (n - 1) + eps)  # (D,)
        gram = z_centred @ z_centred.T  # (N, N)
        variance = F.relu(1.0 - std).mean()
        covariance = (gram.pow(2).sum() - square_sums.pow(2).sum()) / ((n - 1) ** 2 * d)
        ctx.save_for_backward(z, z_centred, square_sums, std, gram)
        ctx.eps = eps
        return variance, covariance

    @staticmethod
    def backward(ctx: Any, grad_variance: Tensor, grad_covariance: Tensor) -> tuple[Tensor, None]:
        z, z_centred, square_sums, std, gram = cast(
            tuple[Tensor, Tensor, Tensor, Tensor, Tensor], ctx.saved_tensors
        )
        if torch.is_grad_enabled():  # create_graph=True: differentiate the autograd formulation
            terms = _branch_terms_autograd(z, ctx.eps, "gram")
            (grad,) = torch.autograd.grad(
                terms, z, (grad_variance, grad_covariance), create_graph=True
            )
            return grad, None
        n, d = z_centred.shape
        # d variance / d Z_c = Z_c * (-[std < 1] / (D (N - 1) std))
        variance_scale = -(std < 1.0).to(std.dtype) / (d * (n - 1) * std)  # (D,)
        # d covariance / d Z_c = 4 (G Z_c - Z_c * s) / ((N - 1)^2 D)
        covariance_scale = 4.0 * grad_covariance / ((n - 1) ** 2 * d)
        per_feature = grad_variance * variance_scale - covariance_scale * square_sums  # (D,)
        grad = torch.addmm(z_centred * per_feature, gram * covariance_scale, z_centred)
        return grad, None  # (N, D)


def _branch_terms(z: Tensor, eps: float, method: MatrixMethod) -> tuple[Tensor, Tensor]:
    """(variance term, covariance term) of one branch."""
    n, d = z.shape
    if method == "gram" or (method == "auto" and n < d):
        variance, covariance = _GramBranchTerms.apply(z, eps)
        return cast(Tensor, variance), cast(Tensor, covariance)
    return _branch_terms_autograd(z, eps, method)


def variance_loss(z: Tensor, *, eps: float = 1e-4) -> Tensor:
    """Return the VICReg variance (hinge on the standard deviation) term.

    ``mean_d relu(1 - sqrt(Var_n(z[:, d]) + eps))`` with the unbiased variance.

    Args:
        z: Embeddings of one branch.
        eps: Added to the variance before the square root (keeps the gradient
            finite for constant embeddings).

    Returns:
        The variance term, a scalar tensor.

    Raises:
        ShapeError: If ``z`` is not 2-D or holds a single sample (the unbiased
            variance is undefined).

    Shape:
        - Input: ``(N, D)`` with ``N >= 2``.
        - Output: ``()``.

    Example:
        >>> round(variance_loss(torch.zeros(4, 3)).item(), 4)
        0.99
    """
    _check_branch(z, owner="variance_loss")
    _, square_sums = _centre(z)
    return _variance_term(square_sums, z.shape[0], eps)


def covariance_loss(z: Tensor, *, method: MatrixMethod = "auto") -> Tensor:
    """Return the VICReg covariance term ``sum_{i != j} C_ij^2 / D``.

    ``C = Z_c^T Z_c / (N - 1)`` with ``Z_c`` centred over the batch.

    Args:
        z: Embeddings of one branch.
        method: ``"gram"`` (``O(N^2 D)``), ``"direct"`` (``O(N D^2)``) or
            ``"auto"`` (Gram when ``N < D``). Both give the same value.

    Returns:
        The covariance term, a scalar tensor.

    Raises:
        ShapeError: If ``z`` is not 2-D or holds a single sample (the covariance
            is undefined).
        ValueError: If ``method`` is unknown.

    Shape:
        - Input: ``(N, D)`` with ``N >= 2``.
        - Output: ``()``.

    Example:
        >>> z = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
        >>> covariance_loss(z).item()  # C = [[2, 2], [2, 2]]; (4 + 4) / 2
        4.0
    """
    _check_branch(z, owner="covariance_loss")
    check_matrix_method(method, owner="covariance_loss", argument="method")
    z_centred, square_sums = _centre(z)
    return _covariance_term(z_centred, square_sums, method)


class VICRegTerms(NamedTuple):
    """The three unweighted VICReg terms, as logged by the reference code.

    Attributes:
        invariance: Mean squared error between the two branches (local batch).
        variance: Mean of the two branches' variance terms (global batch).
        covariance: Sum of the two branches' covariance terms (global batch).

    Example:
        >>> VICRegTerms(torch.tensor(0.0), torch.tensor(1.0), torch.tensor(2.0)).covariance
        tensor(2.)
    """

    invariance: Tensor
    variance: Tensor
    covariance: Tensor


class VICRegLoss(BatchStatisticsLoss):
    """VICReg loss: ``25 * invariance + 25 * variance + 1 * covariance``.

    * invariance: ``MSE(z_a, z_b)`` (mean over ``N * D``) on the **local** batch;
    * variance: ``(v(z_a) + v(z_b)) / 2`` with
      ``v(z) = mean_d relu(1 - sqrt(Var(z_d) + eps))``, unbiased variance;
    * covariance: ``c(z_a) + c(z_b)`` with ``c(z) = sum_{i != j} C_ij^2 / D``,
      ``C = Z_c^T Z_c / (N - 1)``.

    With ``gather_distributed=True`` the variance and covariance terms use the
    **global** batch (all ranks' embeddings, gathered with a backward that
    routes each rank's gradient back to it), the invariance term stays local,
    as in the reference code. Under DDP this trains exactly like one process
    on the concatenated batch. All ranks must pass the same batch size.

    fp16/bf16 inputs (and inputs under ``torch.autocast``) are computed in
    float32; the returned loss is float32 (float64 for float64 inputs).

    Args:
        invariance_weight: Weight of the invariance term (lambda in the paper).
        variance_weight: Weight of the variance term (mu).
        covariance_weight: Weight of the covariance term (nu).
        eps: Added to the variance before the square root, ``> 0``.
        gather_distributed: Compute variance and covariance over all ranks.
        covariance_method: ``"auto"`` (Gram matrix when ``N < D``, else the
            ``(D, D)`` covariance), ``"gram"`` or ``"direct"``. All are exact.

    Shape:
        - z_a, z_b: ``(N, D)``; the unbiased variance needs ``N >= 2`` in the
          (global) batch.
        - Output: ``()``.

    Raises:
        ValueError: If ``eps`` is not finite and positive, or
            ``covariance_method`` is unknown.
        ShapeError: From :meth:`terms` and ``forward``, if the inputs are not
            two ``(N, D)`` tensors of one shape or the (global) batch has one sample.
        MissingDependencyError: If ``gather_distributed=True`` and PyTorch has
            no ``torch.distributed``.

    Example:
        >>> loss_fn = VICRegLoss()
        >>> z_a = torch.randn(8, 32, requires_grad=True)
        >>> loss = loss_fn(z_a, z_a + 0.1 * torch.randn(8, 32))
        >>> loss.backward()
        >>> loss.shape, bool(torch.isfinite(z_a.grad).all())
        (torch.Size([]), True)
    """

    repr_fields = ("invariance_weight", "variance_weight", "covariance_weight", "eps")
    batch_purpose = "for the unbiased variance"

    def __init__(
        self,
        *,
        invariance_weight: float = 25.0,
        variance_weight: float = 25.0,
        covariance_weight: float = 1.0,
        eps: float = 1e-4,
        gather_distributed: bool = False,
        covariance_method: MatrixMethod = "auto",
    ) -> None:
        super().__init__(
            eps=eps,
            eps_hint="the reference uses 1e-4; it keeps sqrt(variance + eps) differentiable",
            method=covariance_method,
            method_argument="covariance_method",
            gather_distributed=gather_distributed,
        )
        self.invariance_weight = invariance_weight
        self.variance_weight = variance_weight
        self.covariance_weight = covariance_weight
        self.covariance_method: MatrixMethod = covariance_method

    def terms(self, z_a: Tensor, z_b: Tensor) -> VICRegTerms:
        """Return the three unweighted terms (for logging).

        Args:
            z_a: Embeddings of the first view.
            z_b: Embeddings of the second view.

        Returns:
            :class:`VICRegTerms` of scalar tensors.

        Raises:
            ShapeError: If the inputs are not two ``(N, D)`` tensors of one
                shape, or the (global) batch has one sample.

        Example:
            >>> terms = VICRegLoss().terms(torch.zeros(4, 3), torch.zeros(4, 3))
            >>> [round(t.item(), 4) for t in terms]
            [0.0, 0.99, 0.0]
        """
        z_a, z_b = self.local_views(z_a, z_b)
        with full_precision(z_a):
            invariance = F.mse_loss(z_a, z_b)  # local batch, as in the reference code
            z_a, z_b = self.global_views(z_a, z_b)  # (W * n, D) each when gathered
            variance = torch.zeros((), dtype=z_a.dtype, device=z_a.device)
            covariance = torch.zeros((), dtype=z_a.dtype, device=z_a.device)
            for z in (z_a, z_b):
                branch_variance, branch_covariance = _branch_terms(
                    z, self.eps, self.covariance_method
                )
                variance = variance + 0.5 * branch_variance
                covariance = covariance + branch_covariance
        return VICRegTerms(invariance=invariance, variance=variance, covariance=covariance)

    def forward(self, z_a: Tensor, z_b: Tensor) -> Tensor:
        """Return the weighted VICReg loss of two views.

        Args:
            z_a: Embeddings (projector outputs) of the first view.
            z_b: Embeddings of the second view, same shape.

        Returns:
            The weighted sum of the three :meth:`terms`, a scalar.

        Raises:
            ShapeError: As for :meth:`terms`.
        """
        terms = self.terms(z_a, z_b)
        return (
            self.invariance_weight * terms.invariance
            + self.variance_weight * terms.variance
            + self.covariance_weight * terms.covariance
        )
