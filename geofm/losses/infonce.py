"""InfoNCE (MoCo v2) loss with an optional queue of negative keys.

References:
    - He, Fan, Wu, Xie, Girshick. "Momentum Contrast for Unsupervised Visual
      Representation Learning." CVPR 2020. https://arxiv.org/abs/1911.05722
    - Chen, Fan, Girshick, He. "Improved Baselines with Momentum Contrastive
      Learning" (MoCo v2). 2020. https://arxiv.org/abs/2003.04297
    - Reference code: https://github.com/facebookresearch/moco (``moco/builder.py``).
    - lightly's equivalent: ``NTXentLoss(memory_bank_size=(K, D))``
      (``lightly/loss/ntx_ent_loss.py``, ``lightly/models/modules/memory_bank.py``).
"""

from __future__ import annotations

from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor

from geofm._dist import gather, rank
from geofm.errors import ShapeError
from geofm.losses._common import (
    DistributedModule,
    check_batch_size,
    check_embedding_pair,
    check_positive,
    full_precision,
    upcast,
)

__all__ = ["InfoNCELoss", "MemoryBank"]


def _queue_probabilities(q: Tensor, k: Tensor, bank: Tensor) -> tuple[Tensor, Tensor]:
    """Differentiable softmax of ``[q.k, q.bank]``: ``(p_negatives (N, K), p_positive (N,))``."""
    positive = (q * k).sum(dim=1)  # (N,)
    negatives = q @ bank.T  # (N, K)
    log_normaliser = torch.logaddexp(positive, torch.logsumexp(negatives, dim=1))  # (N,)
    return (negatives - log_normaliser[:, None]).exp(), (positive - log_normaliser).exp()


class _QueueCrossEntropy(torch.autograd.Function):
    """``mean_i -log softmax([q_i.k_i, q_i.bank])[0]`` without materialising the concat.

    Forward keeps ``exp(logits - max)`` in place of the logits (no extra
    ``(N, K)`` buffers); backward needs one matmul. Under ``create_graph=True``
    the backward is rebuilt from differentiable ops, so second derivatives are exact.
    """

    @staticmethod
    def forward(ctx: Any, q: Tensor, k: Tensor, bank: Tensor) -> Tensor:
        positive = (q * k).sum(dim=1)  # (N,)
        exp_negatives = q @ bank.T  # (N, K), logits for now
        shift = torch.maximum(exp_negatives.amax(dim=1), positive)  # (N,)
        exp_negatives.sub_(shift[:, None]).exp_()  # (N, K), in place
        exp_positive = (positive - shift).exp()  # (N,)
        normaliser = exp_negatives.sum(dim=1) + exp_positive  # (N,)
        ctx.save_for_backward(q, k, bank, exp_negatives, exp_positive, normaliser)
        return (shift + normaliser.log() - positive).mean()

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, Tensor, None]:
        q, k, bank, exp_negatives, exp_positive, normaliser = cast(
            tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor], ctx.saved_tensors
        )
        scale = grad_output / q.shape[0]
        if torch.is_grad_enabled():  # create_graph=True: differentiable recomputation
            p_negatives, p_positive = _queue_probabilities(q, k, bank)
            from_negatives = p_negatives @ bank  # (N, D)
        else:
            p_positive = exp_positive / normaliser  # (N,)
            # Normalise the (N, D) product instead of the (N, K) probabilities.
            from_negatives = (exp_negatives @ bank) / normaliser[:, None]  # (N, D)
        d_positive = (p_positive - 1.0)[:, None]  # (N, 1)
        grad_q = scale * (from_negatives + d_positive * k)  # (N, D)
        grad_k = scale * (d_positive * q)  # (N, D)
        return grad_q, grad_k, None


class MemoryBank(DistributedModule):
    """First-in-first-out queue of ``size`` embeddings (MoCo's dictionary).

    Import it from :mod:`geofm.ssl` (``from geofm.ssl import MemoryBank``); it
    is defined here, next to the loss that reads it.

    The bank starts as random unit vectors (seeded by the global torch RNG) and
    is a persistent buffer, so it is saved in checkpoints. :meth:`enqueue`
    writes a batch at the current pointer, wrapping around the end (lightly
    instead drops the part of a batch that does not fit when ``size`` is not a
    multiple of the batch size). It never updates itself implicitly.

    ``enqueue`` replaces the ``bank`` tensor instead of writing into it, so a
    loss computed from the old bank can still be back-propagated after the
    update (MoCo enqueues before the backward pass).

    Args:
        size: Number of stored embeddings ``K`` (MoCo v2: 65,536; SpectralEarth: 32,768).
        dim: Embedding dimension ``D``.
        gather_distributed: Enqueue the keys of all ranks (in rank order), so
            every rank holds the same bank. All ranks must pass the same
            batch size.

    Attributes:
        bank: ``(K, D)`` stored embeddings.
        pointer: ``()`` long tensor, index of the next write.

    Raises:
        ValueError: If ``size`` or ``dim`` is not positive.
        MissingDependencyError: If ``gather_distributed=True`` and PyTorch has
            no ``torch.distributed``.

    Example:
        >>> bank = MemoryBank(size=4, dim=2)
        >>> bank.enqueue(torch.ones(3, 2))
        >>> bank.enqueue(torch.zeros(3, 2))
        >>> bank.bank[:, 0].tolist(), int(bank.pointer)
        ([0.0, 0.0, 1.0, 0.0], 2)
    """

    bank: Tensor
    pointer: Tensor

    repr_fields = ("size", "dim")

    def __init__(self, *, size: int, dim: int, gather_distributed: bool = False) -> None:
        super().__init__(gather_distributed=gather_distributed)
        if size <= 0 or dim <= 0:
            raise ValueError(
                f"MemoryBank got size={size}, dim={dim}; expected positive integers, e.g. "
                "MemoryBank(size=32768, dim=128)."
            )
        self.size = size
        self.dim = dim
        self.register_buffer("bank", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, keys: Tensor) -> None:
        """Write ``keys`` (detached) over the oldest entries.

        With ``gather_distributed=True`` the keys of all ranks are written.

        Args:
            keys: Embeddings to store, usually L2-normalised keys.

        Shape:
            - keys: ``(B, D)`` with ``B * world_size <= K``.

        Raises:
            ShapeError: If ``keys`` is not ``(B, D)`` or holds more rows than the bank.
        """
        if keys.ndim != 2 or keys.shape[1] != self.dim:
            raise ShapeError(
                f"MemoryBank(dim={self.dim}).enqueue expects keys of shape (B, {self.dim}), got "
                f"{tuple(keys.shape)}. Pass the key embeddings the bank was built for."
            )
        keys = keys.detach()
        if self.gather_distributed:
            keys = gather(keys)  # (W * B, D), no gradient: keys are detached
        count = keys.shape[0]
        if count > self.size:
            raise ShapeError(
                f"MemoryBank(size={self.size}) cannot enqueue {count} keys at once (shape "
                f"{tuple(keys.shape)}, after gathering over ranks). Use a bank at least as large "
                "as the (global) batch."
            )
        start = int(self.pointer)
        positions = (torch.arange(count, device=self.bank.device) + start) % self.size  # (B,)
        self.bank = self.bank.index_copy(0, positions, keys.to(self.bank.dtype))  # (K, D)
        self.pointer.fill_((start + count) % self.size)


class InfoNCELoss(DistributedModule):
    """InfoNCE loss of queries against their keys, as in MoCo v2.

    Queries ``q`` and keys ``k`` are L2-normalised. With a
    :class:`MemoryBank`, the logits of sample ``i`` are
    ``[q_i . k_i, q_i . m_1, ..., q_i . m_K] / tau`` (negatives = the bank
    only) and the target is index 0. Without a bank the negatives are the
    other keys of the batch: logits ``q_i . k_j / tau`` over all keys ``j``,
    target ``j = i`` (gathered over ranks with ``gather_distributed=True``).
    The loss is the mean cross-entropy over the local queries.

    The bank is never updated by ``forward``: call :meth:`update_memory_bank`
    with the keys after computing the loss (lightly updates it inside
    ``forward``). Gradients flow into both ``query`` and ``key``; MoCo computes
    keys with a momentum encoder under ``torch.no_grad()``.

    Global vs local: the loss is local (averaged over this rank's queries,
    which DDP's gradient averaging turns into the global mean); in-batch
    negatives and bank updates are global when ``gather_distributed=True``.

    The loss is undefined without a negative: in-batch negatives need at
    least 2 keys in the (global) batch, so a batch of one raises instead of
    returning 0 with no gradient. With a bank, a batch of one is fine (the
    bank holds the negatives).

    fp16/bf16 inputs are computed in float32.

    Args:
        temperature: ``tau`` (MoCo v2 and SpectralEarth: 0.1).
        memory_bank: Queue of negatives, or ``None`` for in-batch negatives.
        gather_distributed: Use the keys of all ranks as in-batch negatives
            (no bank), or enqueue the keys of all ranks (with a bank; set the
            same flag on the bank).

    Shape:
        - query, key: ``(N, D)``; ``N >= 1`` with a bank, else ``N >= 2`` over
          the (global) batch.
        - Output: ``()``.

    Raises:
        ValueError: If ``temperature`` is not finite and positive, or the bank's
            ``gather_distributed`` differs from the loss's.
        ShapeError: If ``query`` and ``key`` are not ``(N, D)`` of one shape,
            ``D`` differs from the bank's, or there is no negative (see above).
        MissingDependencyError: If ``gather_distributed=True`` and PyTorch has
            no ``torch.distributed``.

    Example:
        >>> loss_fn = InfoNCELoss(temperature=0.1, memory_bank=MemoryBank(size=16, dim=8))
        >>> query, key = torch.randn(4, 8, requires_grad=True), torch.randn(4, 8)
        >>> loss = loss_fn(query, key)
        >>> loss.backward()
        >>> loss_fn.update_memory_bank(key)
        >>> loss.shape, int(loss_fn.memory_bank.pointer)
        (torch.Size([]), 4)
    """

    repr_fields = ("temperature",)

    def __init__(
        self,
        *,
        temperature: float = 0.1,
        memory_bank: MemoryBank | None = None,
        gather_distributed: bool = False,
    ) -> None:
        super().__init__(gather_distributed=gather_distributed)
        check_positive(
            temperature, owner="InfoNCELoss", name="temperature", hint="MoCo v2 uses 0.1"
        )
        if memory_bank is not None and memory_bank.gather_distributed != gather_distributed:
            raise ValueError(
                f"InfoNCELoss got gather_distributed={gather_distributed} but a MemoryBank with "
                f"gather_distributed={memory_bank.gather_distributed}. Use the same value for both."
            )
        self.temperature = temperature
        self.memory_bank = memory_bank

    def forward(self, query: Tensor, key: Tensor) -> Tensor:
        """Return the InfoNCE loss.

        Args:
            query: Query embeddings (online encoder).
            key: Positive key embeddings (momentum encoder), row ``i`` pairs with ``query[i]``.

        Returns:
            Scalar loss.

        Raises:
            ShapeError: If the shapes are wrong or there is no negative (see the
                class docstring).
        """
        check_embedding_pair(query, key, owner="InfoNCELoss", names=("query", "key"))
        if self.memory_bank is not None and query.shape[1] != self.memory_bank.dim:
            raise ShapeError(
                f"InfoNCELoss got embeddings of dimension {query.shape[1]} (shape "
                f"{tuple(query.shape)}) but its MemoryBank stores dimension "
                f"{self.memory_bank.dim}. Build the bank with dim={query.shape[1]}."
            )
        with full_precision(query):
            # Folding 1 / tau into q scales every logit at O(N D) cost.
            q = F.normalize(upcast(query), dim=1) / self.temperature  # (N, D)
            k = F.normalize(upcast(key), dim=1)  # (N, D)
            if self.memory_bank is not None:
                check_batch_size(
                    q,
                    owner="InfoNCELoss",
                    gathered=False,
                    purpose="to average over",
                    minimum=1,
                    fix="Pass at least one query.",
                )
                bank = self.memory_bank.bank.to(q.dtype)  # (K, D)
                return cast(Tensor, _QueueCrossEntropy.apply(q, k, bank))
            keys = gather(k) if self.gather_distributed else k  # (W * N, D)
            check_batch_size(
                keys,
                owner="InfoNCELoss",
                gathered=self.gather_distributed,
                purpose="for in-batch negatives (the other keys)",
                fix="Use a batch size of 2 or more, or a MemoryBank of negatives.",
            )
            logits = q @ keys.T  # (N, W * N)
            offset = rank() * q.shape[0] if self.gather_distributed else 0
            labels = torch.arange(q.shape[0], device=q.device) + offset  # (N,)
            return F.cross_entropy(logits, labels)

    @torch.no_grad()
    def update_memory_bank(self, key: Tensor) -> None:
        """Enqueue the L2-normalised ``key`` into the memory bank.

        Args:
            key: The keys passed to :meth:`forward`.

        Shape:
            - key: ``(N, D)``.

        Raises:
            ValueError: If the loss has no memory bank.
            ShapeError: As for :meth:`MemoryBank.enqueue`.
        """
        if self.memory_bank is None:
            raise ValueError(
                "InfoNCELoss.update_memory_bank was called but the loss has no memory bank. "
                "Build it with InfoNCELoss(memory_bank=MemoryBank(size=..., dim=...))."
            )
        self.memory_bank.enqueue(F.normalize(key.detach(), dim=1))
