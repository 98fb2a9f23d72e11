"""Barlow Twins: redundancy-reduction loss on the cross-correlation matrix.

The off-diagonal penalty needs ``||C||_F^2`` of the ``(D, D)`` cross-correlation
``C = A^T B / N``. With ``N < D`` it is computed exactly through the two
``(N, N)`` Gram matrices, ``||A^T B||_F^2 = <A A^T, B B^T>_F``, in
``O(N^2 D)`` instead of ``O(N D^2)``.

References:
    - Zbontar, Jing, Misra, LeCun, Deny. "Barlow Twins: Self-Supervised
      Learning via Redundancy Reduction." ICML 2021.
      https://arxiv.org/abs/2103.03230
    - Reference code: https://github.com/facebookresearch/barlowtwins (``main.py``).
    - lightly's port: https://github.com/lightly-ai/lightly
      (``lightly/loss/barlow_twins_loss.py``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from geofm.losses._common import (
    BatchStatisticsLoss,
    MatrixMethod,
    full_precision,
    off_diagonal_square_sum,
)

__all__ = ["BarlowTwinsLoss"]


def _standardize(z: Tensor, *, eps: float) -> Tensor:
    """Standardise each feature over the batch (biased variance), like BatchNorm1d."""
    # Tensor.var(dim=0) is a slow strided reduction on CPU; centre, then mean of squares.
    z_centred = z - z.mean(dim=0)  # (N, D)
    var = (z_centred * z_centred).mean(dim=0)  # (D,)
    return z_centred * torch.rsqrt(var + eps)  # (N, D)


class BarlowTwinsLoss(BatchStatisticsLoss):
    """Barlow Twins loss: ``sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2``.

    ``C = A^T B / N`` where ``A``, ``B`` are the two views' embeddings, each
    standardised per feature over the batch (mean 0, biased variance 1, as an
    affine-free ``BatchNorm1d`` with ``eps``).

    With ``gather_distributed=True`` the standardisation and ``C`` use the
    **global** batch (everything is global), as the reference code does with
    SyncBatchNorm and an all-reduce of ``C``: under DDP this trains exactly
    like one process on the concatenated batch. lightly instead standardises
    per rank and averages the per-rank ``C`` matrices, which is not the
    single-process value. All ranks must pass the same batch size.

    fp16/bf16 inputs (and inputs under ``torch.autocast``) are computed in
    float32.

    Args:
        redundancy_weight: Weight ``lambda`` of the off-diagonal term. The
            paper and lightly use ``5e-3``; the reference code ``0.0051``.
            No extra loss scaling is applied.
        eps: Added to the variance in the standardisation (BatchNorm's 1e-5).
        gather_distributed: Compute everything over all ranks.
        correlation_method: ``"auto"`` (Gram matrices when ``N < D``, else the
            ``(D, D)`` matrix), ``"gram"`` or ``"direct"``. All are exact.

    Shape:
        - z_a, z_b: ``(N, D)``; standardising a feature needs ``N >= 2`` in
          the (global) batch.
        - Output: ``()``.

    Raises:
        ValueError: If ``eps`` is not finite and positive, or
            ``correlation_method`` is unknown.
        ShapeError: In ``forward``, for views that are not two ``(N, D)``
            tensors of one shape, or a (global) batch of one sample.
        MissingDependencyError: For ``gather_distributed=True`` without
            ``torch.distributed``.

    Example:
        >>> loss_fn = BarlowTwinsLoss()
        >>> z_a = torch.randn(8, 32, requires_grad=True)
        >>> same, other = loss_fn(z_a, z_a), loss_fn(z_a, torch.randn(8, 32))
        >>> bool(same < other)  # identical views: only the redundancy term is left
        True
        >>> (same + other).backward()
    """

    repr_fields = ("redundancy_weight", "eps")
    batch_purpose = "to standardise features"

    def __init__(
        self,
        *,
        redundancy_weight: float = 5e-3,
        eps: float = 1e-5,
        gather_distributed: bool = False,
        correlation_method: MatrixMethod = "auto",
    ) -> None:
        super().__init__(
            eps=eps,
            eps_hint="BatchNorm uses 1e-5; it keeps the standardisation finite",
            method=correlation_method,
            method_argument="correlation_method",
            gather_distributed=gather_distributed,
        )
        self.redundancy_weight = redundancy_weight
        self.correlation_method: MatrixMethod = correlation_method

    def forward(self, z_a: Tensor, z_b: Tensor) -> Tensor:
        """Return the Barlow Twins loss of two views.

        Args:
            z_a: Projector outputs of the first view.
            z_b: Projector outputs of the second view; row ``i`` pairs with ``z_a[i]``.

        Returns:
            ``sum_i (1 - C_ii)^2 + redundancy_weight * sum_{i != j} C_ij^2``, a scalar.

        Raises:
            ShapeError: See the class docstring.
        """
        z_a, z_b = self.local_views(z_a, z_b)
        with full_precision(z_a):
            z_a, z_b = self.global_views(z_a, z_b)  # (W * n, D) each when gathered
            n = z_a.shape[0]
            a = _standardize(z_a, eps=self.eps)  # (N, D)
            b = _standardize(z_b, eps=self.eps)  # (N, D)
            diagonal = (a * b).sum(dim=0) / n  # (D,) = diag(C)
            on_diagonal = (1.0 - diagonal).pow(2).sum()
            off_diagonal = (
                off_diagonal_square_sum(a, b, diagonal=diagonal * n, method=self.correlation_method)
                / n**2
            )
        return on_diagonal + self.redundancy_weight * off_diagonal
