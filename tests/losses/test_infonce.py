from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from lightly.loss import NTXentLoss as LightlyNTXentLoss

from geofm.errors import ShapeError
from geofm.losses import InfoNCELoss
from geofm.ssl import MemoryBank


def _paper_moco(query: torch.Tensor, key: torch.Tensor, bank: torch.Tensor, tau: float) -> float:
    """MoCo's loss, one sample at a time: -log(exp(q.k+/t) / (exp(q.k+/t) + sum exp(q.m/t)))."""
    total = 0.0
    for q, k in zip(F.normalize(query, dim=1), F.normalize(key, dim=1), strict=True):
        positive = math.exp(float(q @ k) / tau)
        negatives = sum(math.exp(float(q @ m) / tau) for m in bank)
        total += -math.log(positive / (positive + negatives))
    return total / query.shape[0]


def test_with_memory_bank_matches_lightly_over_two_steps() -> None:
    bank = MemoryBank(size=12, dim=8)
    bank.bank = bank.bank.double()
    ours = InfoNCELoss(temperature=0.1, memory_bank=bank)
    theirs = LightlyNTXentLoss(temperature=0.1, memory_bank_size=(12, 8))
    theirs.memory_bank.bank = bank.bank.clone()
    for _ in range(2):
        query = torch.randn(4, 8, dtype=torch.float64, requires_grad=True)
        key = torch.randn(4, 8, dtype=torch.float64, requires_grad=True)
        expected = _paper_moco(query.detach(), key.detach(), bank.bank, 0.1)
        loss = ours(query, key)
        grads = torch.autograd.grad(loss, (query, key))
        ours.update_memory_bank(key)
        reference = theirs(query, key)  # lightly enqueues key inside forward
        ref_grads = torch.autograd.grad(reference, (query, key))
        torch.testing.assert_close(loss, reference)
        for g, h in zip(grads, ref_grads, strict=True):
            torch.testing.assert_close(g, h)
        assert loss.item() == pytest.approx(expected, rel=1e-10)
        torch.testing.assert_close(ours.memory_bank.bank, theirs.memory_bank.bank)  # type: ignore[union-attr]


def test_without_memory_bank_uses_in_batch_keys() -> None:
    query = torch.randn(5, 8, dtype=torch.float64)
    key = torch.randn(5, 8, dtype=torch.float64)
    q, k = F.normalize(query, dim=1), F.normalize(key, dim=1)
    expected = 0.0
    for i in range(5):
        logits = [float(q[i] @ k[j]) / 0.2 for j in range(5)]
        expected -= logits[i] - math.log(sum(math.exp(x) for x in logits))
    loss = InfoNCELoss(temperature=0.2)(query, key)
    assert loss.item() == pytest.approx(expected / 5, rel=1e-10)


def _paper_in_batch(query: torch.Tensor, keys: torch.Tensor, tau: float, offset: int = 0) -> float:
    """In-batch InfoNCE: query i against every key j, positive j = i + offset."""
    q, k = F.normalize(query, dim=1), F.normalize(keys, dim=1)
    total = 0.0
    for i in range(q.shape[0]):
        logits = [float(q[i] @ k[j]) / tau for j in range(k.shape[0])]
        total -= logits[i + offset] - math.log(sum(math.exp(x) for x in logits))
    return total / q.shape[0]


def test_default_temperature_is_moco_v2s() -> None:
    query, key = torch.randn(4, 6, dtype=torch.float64), torch.randn(4, 6, dtype=torch.float64)
    assert InfoNCELoss()(query, key).item() == pytest.approx(_paper_in_batch(query, key, 0.1))


def test_batch_of_one_without_a_bank_has_no_negative_and_raises() -> None:
    with pytest.raises(ShapeError, match=r"undefined for this input: it needs at least 2 samples"):
        InfoNCELoss()(torch.randn(1, 8, requires_grad=True), torch.randn(1, 8))


def test_batch_of_one_with_a_non_empty_queue_matches_the_formula() -> None:
    bank = MemoryBank(size=5, dim=6)
    bank.bank = bank.bank.double()
    query = torch.randn(1, 6, dtype=torch.float64, requires_grad=True)
    key = torch.randn(1, 6, dtype=torch.float64)
    loss = InfoNCELoss(temperature=0.2, memory_bank=bank)(query, key)
    assert loss.item() == pytest.approx(_paper_moco(query.detach(), key, bank.bank, 0.2))
    (grad,) = torch.autograd.grad(loss, query)
    assert grad.abs().sum() > 0


def test_batch_of_one_per_rank_is_defined_once_gathered(monkeypatch: pytest.MonkeyPatch) -> None:
    # Rank 0 of 2: its one query's negative is the other rank's key.
    query = torch.randn(1, 6, dtype=torch.float64)
    keys = torch.randn(2, 6, dtype=torch.float64)
    other = F.normalize(keys[1:], dim=1)
    monkeypatch.setattr("geofm.losses.infonce.gather", lambda k: torch.cat([k, other.to(k.dtype)]))
    loss = InfoNCELoss(temperature=0.3, gather_distributed=True)(query, keys[:1])
    assert loss.item() == pytest.approx(_paper_in_batch(query, keys, 0.3), rel=1e-10)


def test_empty_batch_with_a_bank_raises() -> None:
    loss_fn = InfoNCELoss(memory_bank=MemoryBank(size=4, dim=3))
    with pytest.raises(ShapeError, match="it needs at least 1 sample in the batch"):
        loss_fn(torch.randn(0, 3), torch.randn(0, 3))


def test_loss_can_backpropagate_after_the_bank_update() -> None:
    loss_fn = InfoNCELoss(memory_bank=MemoryBank(size=8, dim=4))
    query = torch.randn(4, 4, requires_grad=True)
    loss = loss_fn(query, torch.randn(4, 4))
    loss_fn.update_memory_bank(torch.randn(4, 4))  # MoCo enqueues before backward
    loss.backward()
    assert query.grad is not None and torch.isfinite(query.grad).all()


def test_forward_leaves_the_bank_unchanged() -> None:
    loss_fn = InfoNCELoss(memory_bank=MemoryBank(size=8, dim=4))
    assert loss_fn.memory_bank is not None
    before = loss_fn.memory_bank.bank.clone()
    loss_fn(torch.randn(4, 4, requires_grad=True), torch.randn(4, 4))
    torch.testing.assert_close(loss_fn.memory_bank.bank, before)
    assert int(loss_fn.memory_bank.pointer) == 0


def test_memory_bank_is_a_fifo_ring_with_unit_norm_start() -> None:
    bank = MemoryBank(size=5, dim=3)
    torch.testing.assert_close(bank.bank.norm(dim=1), torch.ones(5))
    first, second = torch.full((3, 3), 1.0), torch.full((3, 3), 2.0)
    bank.enqueue(first)
    bank.enqueue(second)  # wraps: rows 3, 4, 0
    assert bank.bank[:, 0].tolist() == [2.0, 1.0, 1.0, 2.0, 2.0]
    assert int(bank.pointer) == 1
    assert "bank" in bank.state_dict() and "pointer" in bank.state_dict()


def test_half_precision_inputs_are_computed_in_float32() -> None:
    query, key = torch.randn(4, 8), torch.randn(4, 8)
    loss_fn = InfoNCELoss(memory_bank=MemoryBank(size=8, dim=8))
    loss = loss_fn(query.bfloat16(), key.bfloat16())
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, loss_fn(query.bfloat16().float(), key.bfloat16().float()))


def test_rejects_bad_inputs_and_arguments() -> None:
    with pytest.raises(ValueError, match="temperature=0.0; expected a finite temperature > 0"):
        InfoNCELoss(temperature=0.0)
    with pytest.raises(ValueError, match="temperature=nan"):
        InfoNCELoss(temperature=float("nan"))
    with pytest.raises(ValueError, match="same value for both"):
        InfoNCELoss(memory_bank=MemoryBank(size=4, dim=2, gather_distributed=True))
    with pytest.raises(ShapeError, match="query and key of the same shape"):
        InfoNCELoss()(torch.randn(4, 8), torch.randn(3, 8))
    with pytest.raises(ShapeError, match=r"query of shape \(N, D\)"):
        InfoNCELoss()(torch.randn(4, 2, 8), torch.randn(4, 2, 8))
    with pytest.raises(ShapeError, match="dim=8"):
        InfoNCELoss(memory_bank=MemoryBank(size=4, dim=4))(torch.randn(2, 8), torch.randn(2, 8))
    with pytest.raises(ValueError, match="has no memory bank"):
        InfoNCELoss().update_memory_bank(torch.randn(2, 8))


def test_memory_bank_rejects_bad_sizes_and_keys() -> None:
    with pytest.raises(ValueError, match="positive integers"):
        MemoryBank(size=0, dim=4)
    bank = MemoryBank(size=4, dim=2)
    with pytest.raises(ShapeError, match=r"\(B, 2\)"):
        bank.enqueue(torch.randn(2, 3))
    with pytest.raises(ShapeError, match="cannot enqueue 5 keys"):
        bank.enqueue(torch.randn(5, 2))


def test_memory_bank_path_passes_gradcheck_and_gradgradcheck() -> None:
    bank = MemoryBank(size=6, dim=4)
    bank.bank = bank.bank.double()
    loss_fn = InfoNCELoss(temperature=0.5, memory_bank=bank)
    query = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    key = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(loss_fn, (query, key))
    assert torch.autograd.gradgradcheck(loss_fn, (query, key))


def test_large_logits_do_not_overflow() -> None:
    loss_fn = InfoNCELoss(temperature=0.001, memory_bank=MemoryBank(size=8, dim=4))
    query = torch.randn(4, 4, requires_grad=True)
    loss = loss_fn(query, query.detach())
    loss.backward()
    assert torch.isfinite(loss) and query.grad is not None and torch.isfinite(query.grad).all()
