"""NT-Xent: the normalised temperature-scaled cross-entropy of SimCLR.

References:
    - Chen, Kornblith, Norouzi, Hinton. "A Simple Framework for Contrastive
      Learning of Visual Representations." ICML 2020. https://arxiv.org/abs/2002.05709
    - Reference code: https://github.com/google-research/simclr (``objective.py``).
    - lightly's port: ``NTXentLoss`` (``lightly/loss/ntx_ent_loss.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from geofm._dist import rank
from geofm.losses._common import (
    DistributedModule,
    check_embedding_pair,
    check_positive,
    full_precision,
    gathered_pair,
    upcast,
)

__all__ = ["NTXentLoss"]


class NTXentLoss(DistributedModule):
    """SimCLR's NT-Xent loss over ``2N`` views with in-batch negatives.

    Embeddings are L2-normalised. Each of the ``2N`` views is classified
    against the other ``2N - 1`` views (logits ``cos / tau``); the target is
    the other view of the same sample. The loss is the mean cross-entropy over
    the local ``2N`` views.

    Global vs local: with ``gather_distributed=True`` the candidates (columns)
    are the views of all ranks while the rows stay local, so the loss is the
    local share of the global loss and DDP's gradient averaging yields the
    single-process gradient on the concatenated batch. All ranks must pass
    the same batch size.

    The loss is undefined without a negative: it needs at least 2 samples in
    the (global) batch, so a batch of one raises instead of returning 0 with
    no gradient. For MoCo-style negatives from a queue use
    :class:`~geofm.losses.InfoNCELoss`. fp16/bf16 inputs are computed in float32.

    Args:
        temperature: ``tau`` (lightly's default 0.5; SimCLR tunes 0.1 to 1.0).
        gather_distributed: Use the views of all ranks as negatives.

    Shape:
        - z_a, z_b: ``(N, D)``; ``N >= 2`` over the (global) batch.
        - Output: ``()``.

    Raises:
        ValueError: If ``temperature`` is not finite and positive.
        ShapeError: If the inputs are not two ``(N, D)`` tensors of one shape,
            or the (global) batch has a single sample.
        MissingDependencyError: If ``gather_distributed=True`` and PyTorch has
            no ``torch.distributed``.

    Example:
        >>> loss_fn = NTXentLoss(temperature=0.5)
        >>> z_a = torch.randn(4, 8, requires_grad=True)
        >>> loss = loss_fn(z_a, torch.randn(4, 8))
        >>> loss.backward()
        >>> loss.shape
        torch.Size([])
    """

    repr_fields = ("temperature",)

    def __init__(self, *, temperature: float = 0.5, gather_distributed: bool = False) -> None:
        super().__init__(gather_distributed=gather_distributed)
        check_positive(
            temperature, owner="NTXentLoss", name="temperature", hint="SimCLR uses 0.1 to 1.0"
        )
        self.temperature = temperature

    def forward(self, z_a: Tensor, z_b: Tensor) -> Tensor:
        """Return the NT-Xent loss.

        Args:
            z_a: Embeddings of the first view.
            z_b: Embeddings of the second view; row ``i`` pairs with ``z_a[i]``.

        Returns:
            Scalar loss.

        Raises:
            ShapeError: If the inputs are not two ``(N, D)`` tensors of one shape,
                or the (global) batch has a single sample.
        """
        check_embedding_pair(z_a, z_b, owner="NTXentLoss")
        n = z_a.shape[0]
        with full_precision(z_a):
            local = F.normalize(upcast(torch.cat([z_a, z_b], dim=0)), dim=1)  # (2N, D)
            # Columns ordered [a of all ranks, b of all ranks].
            all_a, all_b = gathered_pair(  # (W * N, D) each
                local[:n],
                local[n:],
                owner="NTXentLoss",
                gather_distributed=self.gather_distributed,
                purpose="for negatives (the other samples' views)",
            )
            # (2 * W * N, D); without gathering that is ``local`` itself (no copy).
            candidates = torch.cat([all_a, all_b], dim=0) if self.gather_distributed else local
            offset = rank() * n if self.gather_distributed else 0
            total = candidates.shape[0] // 2  # W * N
            logits = (local / self.temperature) @ candidates.T  # (2N, 2 * W * N)
            rows = torch.arange(2 * n, device=local.device)  # (2N,)
            index = rows % n + offset  # (2N,) sample index in the global batch
            is_second = rows >= n  # (2N,) row is a view b
            own_column = index + is_second * total  # (2N,)
            positive_column = index + (~is_second) * total  # (2N,)
            logits[rows, own_column] = float("-inf")  # a view is not its own candidate
            return F.cross_entropy(logits, positive_column)
