"""Tests of geofm.losses written against the mutants that the other loss tests let survive.

The error messages are part of each loss's contract (they name the loss, what it
expected, what it got and the fix), so every error path is checked against its
whole text: one cause at a time. The ``repr`` of each loss pins its documented
defaults (see reports/mutation.md, ``losses``).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from torch import Tensor

from geofm.errors import MissingDependencyError, ShapeError
from geofm.losses import (
    BarlowTwinsLoss,
    DINOLoss,
    InfoNCELoss,
    MAELoss,
    NTXentLoss,
    RelativeMSELoss,
    VICRegLoss,
    covariance_loss,
    normalize_patches,
    relative_mse_loss,
    variance_loss,
)
from geofm.losses.infonce import MemoryBank


def Z(*shape: int) -> Tensor:  # noqa: N802 (a shape-only stand-in for embeddings)
    return torch.randn(*shape)


ERROR_CASES = [
    pytest.param(
        lambda: VICRegLoss(eps=0.0),
        ValueError,
        "VICRegLoss got eps=0.0; expected a finite eps > 0 (the reference uses 1e-4; it keeps sqrt(variance + eps) differentiable).",
        id="vicreg_eps",
    ),
    pytest.param(
        lambda: VICRegLoss(covariance_method="slow"),  # type: ignore[arg-type]
        ValueError,
        "VICRegLoss got covariance_method='slow'; expected one of 'auto', 'gram', 'direct'. Use \"auto\" unless you are benchmarking.",
        id="vicreg_method",
    ),
    pytest.param(
        lambda: VICRegLoss()(Z(1, 3), Z(1, 3)),
        ShapeError,
        "VICRegLoss is undefined for this input: it needs at least 2 samples in the batch for the unbiased variance, got embeddings of shape (1, 3). Use a batch size of 2 or more.",
        id="vicreg_one",
    ),
    pytest.param(
        lambda: VICRegLoss()(Z(2, 3), Z(2, 3, 1)),
        ShapeError,
        "VICRegLoss expects z_b of shape (N, D), got shape (2, 3, 1). Flatten or pool the embeddings to (N, D) first.",
        id="vicreg_ndim",
    ),
    pytest.param(
        lambda: VICRegLoss()(Z(2, 3), Z(3, 3)),
        ShapeError,
        "VICRegLoss expects z_a and z_b of the same shape (N, D), got (2, 3) and (3, 3). Row i of z_b must pair with row i of z_a.",
        id="vicreg_pair",
    ),
    pytest.param(
        lambda: BarlowTwinsLoss(eps=-1.0),
        ValueError,
        "BarlowTwinsLoss got eps=-1.0; expected a finite eps > 0 (BatchNorm uses 1e-5; it keeps the standardisation finite).",
        id="barlow_eps",
    ),
    pytest.param(
        lambda: BarlowTwinsLoss(correlation_method="slow"),  # type: ignore[arg-type]
        ValueError,
        "BarlowTwinsLoss got correlation_method='slow'; expected one of 'auto', 'gram', 'direct'. Use \"auto\" unless you are benchmarking.",
        id="barlow_method",
    ),
    pytest.param(
        lambda: BarlowTwinsLoss()(Z(1, 3), Z(1, 3)),
        ShapeError,
        "BarlowTwinsLoss is undefined for this input: it needs at least 2 samples in the batch to standardise features, got embeddings of shape (1, 3). Use a batch size of 2 or more.",
        id="barlow_one",
    ),
    pytest.param(
        lambda: variance_loss(Z(4)),
        ShapeError,
        "variance_loss expects embeddings of shape (N, D), got shape (4,). Flatten or pool the embeddings to (N, D) first.",
        id="variance_ndim",
    ),
    pytest.param(
        lambda: variance_loss(Z(1, 4)),
        ShapeError,
        "variance_loss is undefined for this input: it needs at least 2 samples in the batch for the unbiased variance, got embeddings of shape (1, 4). Use a batch size of 2 or more.",
        id="variance_one",
    ),
    pytest.param(
        lambda: covariance_loss(Z(1, 4)),
        ShapeError,
        "covariance_loss is undefined for this input: it needs at least 2 samples in the batch for the unbiased variance, got embeddings of shape (1, 4). Use a batch size of 2 or more.",
        id="covariance_one",
    ),
    pytest.param(
        lambda: covariance_loss(Z(3, 4), method="slow"),  # type: ignore[arg-type]
        ValueError,
        "covariance_loss got method='slow'; expected one of 'auto', 'gram', 'direct'. Use \"auto\" unless you are benchmarking.",
        id="covariance_method",
    ),
    pytest.param(
        lambda: NTXentLoss(temperature=-0.5),
        ValueError,
        "NTXentLoss got temperature=-0.5; expected a finite temperature > 0 (SimCLR uses 0.1 to 1.0).",
        id="ntxent_temp",
    ),
    pytest.param(
        lambda: NTXentLoss()(Z(1, 3), Z(1, 3)),
        ShapeError,
        "NTXentLoss is undefined for this input: it needs at least 2 samples in the batch for negatives (the other samples' views), got embeddings of shape (1, 3). Use a batch size of 2 or more.",
        id="ntxent_one",
    ),
    pytest.param(
        lambda: NTXentLoss()(Z(2, 3, 1), Z(2, 3)),
        ShapeError,
        "NTXentLoss expects z_a of shape (N, D), got shape (2, 3, 1). Flatten or pool the embeddings to (N, D) first.",
        id="ntxent_ndim",
    ),
    pytest.param(
        lambda: InfoNCELoss(temperature=0.0),
        ValueError,
        "InfoNCELoss got temperature=0.0; expected a finite temperature > 0 (MoCo v2 uses 0.1).",
        id="infonce_temp",
    ),
    pytest.param(
        lambda: InfoNCELoss(memory_bank=MemoryBank(size=4, dim=3), gather_distributed=True),
        ValueError,
        "InfoNCELoss got gather_distributed=True but a MemoryBank with gather_distributed=False. Use the same value for both.",
        id="infonce_flag",
    ),
    pytest.param(
        lambda: InfoNCELoss()(Z(2, 3), Z(2, 3, 1)),
        ShapeError,
        "InfoNCELoss expects key of shape (N, D), got shape (2, 3, 1). Flatten or pool the embeddings to (N, D) first.",
        id="infonce_ndim",
    ),
    pytest.param(
        lambda: InfoNCELoss(memory_bank=MemoryBank(size=4, dim=8))(Z(2, 3), Z(2, 3)),
        ShapeError,
        "InfoNCELoss got embeddings of dimension 3 (shape (2, 3)) but its MemoryBank stores dimension 8. Build the bank with dim=3.",
        id="infonce_dim",
    ),
    pytest.param(
        lambda: InfoNCELoss(memory_bank=MemoryBank(size=4, dim=3))(Z(0, 3), Z(0, 3)),
        ShapeError,
        "InfoNCELoss is undefined for this input: it needs at least 1 sample in the batch to average over, got embeddings of shape (0, 3). Pass at least one query.",
        id="infonce_empty_bank",
    ),
    pytest.param(
        lambda: InfoNCELoss()(Z(1, 3), Z(1, 3)),
        ShapeError,
        "InfoNCELoss is undefined for this input: it needs at least 2 samples in the batch for in-batch negatives (the other keys), got embeddings of shape (1, 3). Use a batch size of 2 or more, or a MemoryBank of negatives.",
        id="infonce_one",
    ),
    pytest.param(
        lambda: InfoNCELoss().update_memory_bank(Z(2, 3)),
        ValueError,
        "InfoNCELoss.update_memory_bank was called but the loss has no memory bank. Build it with InfoNCELoss(memory_bank=MemoryBank(size=..., dim=...)).",
        id="infonce_nobank",
    ),
    pytest.param(
        lambda: MemoryBank(size=0, dim=3),
        ValueError,
        "MemoryBank got size=0, dim=3; expected positive integers, e.g. MemoryBank(size=32768, dim=128).",
        id="bank_size",
    ),
    pytest.param(
        lambda: MemoryBank(size=4, dim=3).enqueue(Z(2, 5)),
        ShapeError,
        "MemoryBank(dim=3).enqueue expects keys of shape (B, 3), got (2, 5). Pass the key embeddings the bank was built for.",
        id="bank_shape",
    ),
    pytest.param(
        lambda: MemoryBank(size=4, dim=3).enqueue(Z(5, 3)),
        ShapeError,
        "MemoryBank(size=4) cannot enqueue 5 keys at once (shape (5, 3), after gathering over ranks). Use a bank at least as large as the (global) batch.",
        id="bank_count",
    ),
    pytest.param(
        lambda: DINOLoss(output_dim=1),
        ValueError,
        "DINOLoss got output_dim=1; expected >= 2 (DINO uses 65536): a softmax over one output is constant, so the loss would be 0 with no gradient.",
        id="dino_dim",
    ),
    pytest.param(
        lambda: DINOLoss(output_dim=4, teacher_temperature=0.0),
        ValueError,
        "DINOLoss got teacher_temperature=0.0; expected a finite teacher_temperature > 0 (DINO uses 0.04 to 0.1).",
        id="dino_t",
    ),
    pytest.param(
        lambda: DINOLoss(output_dim=4, warmup_teacher_temperature=-0.04),
        ValueError,
        "DINOLoss got warmup_teacher_temperature=-0.04; expected a finite warmup_teacher_temperature > 0 (DINO uses 0.04 to 0.1).",
        id="dino_wt",
    ),
    pytest.param(
        lambda: DINOLoss(output_dim=4, student_temperature=float("nan")),
        ValueError,
        "DINOLoss got student_temperature=nan; expected a finite student_temperature > 0 (DINO uses 0.04 to 0.1).",
        id="dino_st",
    ),
    pytest.param(
        lambda: DINOLoss(output_dim=4, warmup_epochs=-1),
        ValueError,
        "DINOLoss got warmup_epochs=-1; expected >= 0 (0 disables warm-up).",
        id="dino_we",
    ),
    pytest.param(
        lambda: DINOLoss(output_dim=4, center_momentum=1.5),
        ValueError,
        "DINOLoss got center_momentum=1.5; expected a value in [0, 1] (DINO uses 0.9).",
        id="dino_cm",
    ),
    pytest.param(
        lambda: DINOLoss(output_dim=4).teacher_temperature_at(-1),
        ValueError,
        "DINOLoss got epoch=-1; expected a zero-based epoch >= 0.",
        id="dino_epoch",
    ),
    pytest.param(
        lambda: DINOLoss(output_dim=4)([], [Z(2, 4)], epoch=0),
        ShapeError,
        "DINOLoss got no teacher views. Pass a list of (N, K) tensors.",
        id="dino_noviews",
    ),
    pytest.param(
        lambda: DINOLoss(output_dim=4)([Z(2, 4)], [Z(2, 5)], epoch=0),
        ShapeError,
        "DINOLoss(output_dim=4) expects every student view of shape (N, 4) with one N, got shapes [(2, 5)]. Pass the head outputs of each crop.",
        id="dino_viewshape",
    ),
    pytest.param(
        lambda: DINOLoss(output_dim=4)([Z(0, 4)], [Z(0, 4), Z(0, 4)], epoch=0),
        ShapeError,
        "DINOLoss is undefined for this input: it needs at least 1 sample per view to average over, got teacher views of shape (0, 4). Pass a non-empty batch.",
        id="dino_empty",
    ),
    pytest.param(
        lambda: DINOLoss(output_dim=4)([Z(2, 4)], [], epoch=0),
        ShapeError,
        "DINOLoss got no student views. Pass a list of (N, K) tensors.",
        id="dino_oneview",
    ),
    pytest.param(
        lambda: DINOLoss(output_dim=4)([Z(2, 4)], [Z(2, 4)], epoch=0),
        ShapeError,
        "DINOLoss is undefined for this input: it needs a pair of different views (at least 2 views in total), got 1 teacher view(s) and 1 student view(s). Pass at least two crops (e.g. 2 global crops to both teacher and student).",
        id="dino_oneview2",
    ),
    pytest.param(
        lambda: DINOLoss(output_dim=4)([Z(2, 4)], [Z(2, 4), Z(3, 4)], epoch=0),
        ShapeError,
        "DINOLoss(output_dim=4) expects every student view of shape (N, 4) with one N, got shapes [(2, 4), (3, 4)]. Pass the head outputs of each crop.",
        id="dino_batch",
    ),
    pytest.param(
        lambda: DINOLoss(output_dim=4)([Z(2, 4)], [Z(3, 4), Z(3, 4)], epoch=0),
        ShapeError,
        "DINOLoss got teacher views with batch size 2 and student views with batch size 3. Pass crops of the same images to both.",
        id="dino_batch2",
    ),
    pytest.param(
        lambda: DINOLoss(output_dim=4)([Z(2, 4, 1)], [Z(2, 4, 1), Z(2, 4, 1)], epoch=0),
        ShapeError,
        "DINOLoss(output_dim=4) expects every teacher view of shape (N, 4) with one N, got shapes [(2, 4, 1)]. Pass the head outputs of each crop.",
        id="dino_3d",
    ),
    pytest.param(
        lambda: MemoryBank(size=3, dim=0),
        ValueError,
        "MemoryBank got size=3, dim=0; expected positive integers, e.g. MemoryBank(size=32768, dim=128).",
        id="bank_dim",
    ),
    pytest.param(
        lambda: DINOLoss(output_dim=4).update_center([]),
        ShapeError,
        "DINOLoss got no teacher views. Pass a list of (N, K) tensors.",
        id="dino_update_noviews",
    ),
    pytest.param(
        lambda: MAELoss(eps=0.0),
        ValueError,
        "MAELoss got eps=0.0; expected a finite eps > 0 (the MAE code uses 1e-6).",
        id="mae_eps",
    ),
    pytest.param(
        lambda: MAELoss()(Z(2, 3, 4), Z(2, 3, 5), torch.ones(2, 3)),
        ShapeError,
        "MAELoss expects prediction and target of the same shape (N, L, P), got (2, 3, 4) and (2, 3, 5). Patchify the images with the decoder's patch size.",
        id="mae_shape",
    ),
    pytest.param(
        lambda: MAELoss()(Z(2, 3, 4), Z(2, 3, 4), torch.ones(2, 4)),
        ShapeError,
        "MAELoss expects a mask of shape (N, L) = (2, 3), got (2, 4). Pass the patch mask returned by random_masking.",
        id="mae_mask",
    ),
    pytest.param(
        lambda: MAELoss()(Z(2, 3, 4), Z(2, 3, 4), torch.zeros(2, 3)),
        ValueError,
        "MAELoss is undefined for this input: it needs at least 1 masked patch to average over, got a mask of shape (2, 3) with none set. Pass the mask of random_masking with mask_ratio > 0.",
        id="mae_none",
    ),
    pytest.param(
        lambda: MAELoss()(Z(2, 3), Z(2, 3), torch.ones(2, 3)),
        ShapeError,
        "MAELoss expects prediction and target of the same shape (N, L, P), got (2, 3) and (2, 3). Patchify the images with the decoder's patch size.",
        id="mae_ndim",
    ),
    pytest.param(
        lambda: normalize_patches(Z(2, 3, 1)),
        ShapeError,
        "normalize_patches needs at least 2 values per patch for the unbiased variance, got patches of shape (2, 3, 1). Pass (N, L, P) patch vectors with P >= 2 (patch_size**2 * bands).",
        id="norm_p",
    ),
    pytest.param(
        lambda: normalize_patches(torch.tensor(1.0)),
        ShapeError,
        "normalize_patches needs at least 2 values per patch for the unbiased variance, got patches of shape (). Pass (N, L, P) patch vectors with P >= 2 (patch_size**2 * bands).",
        id="norm_0d",
    ),
    pytest.param(
        lambda: relative_mse_loss(Z(3, 2), Z(3, 4)),
        ShapeError,
        "relative_mse_loss needs pred and target of the same (N, D) or (N,) shape, got (3, 2) and (3, 4).",
        id="rel_shape",
    ),
    pytest.param(
        lambda: relative_mse_loss(Z(0, 2), Z(0, 2)),
        ShapeError,
        "relative_mse_loss is undefined for this input: it needs at least 1 sample to average over, got pred and target of shape (0, 2). Pass a non-empty batch.",
        id="rel_empty",
    ),
]


@pytest.mark.parametrize(("call", "kind", "message"), ERROR_CASES)
def test_each_error_has_its_whole_message(
    call: Callable[[], object], kind: type[Exception], message: str
) -> None:
    with pytest.raises(kind, match=f"^{re.escape(message)}$"):
        call()


def test_repr_shows_every_documented_default() -> None:
    assert repr(VICRegLoss()) == (
        "VICRegLoss(invariance_weight=25.0, variance_weight=25.0, covariance_weight=1.0,"
        " eps=0.0001, gather_distributed=False)"
    )
    assert repr(BarlowTwinsLoss()) == (
        "BarlowTwinsLoss(redundancy_weight=0.005, eps=1e-05, gather_distributed=False)"
    )
    assert repr(NTXentLoss()) == "NTXentLoss(temperature=0.5, gather_distributed=False)"
    assert repr(InfoNCELoss()) == "InfoNCELoss(temperature=0.1, gather_distributed=False)"
    assert repr(MemoryBank(size=4, dim=3)) == "MemoryBank(size=4, dim=3, gather_distributed=False)"
    assert repr(DINOLoss(output_dim=4)) == (
        "DINOLoss(output_dim=4, teacher_temperature=0.04, warmup_teacher_temperature=0.04,"
        " warmup_epochs=30, student_temperature=0.1, center_momentum=0.9,"
        " gather_distributed=False)"
    )
    assert repr(MAELoss()) == "MAELoss(normalize_targets=False, eps=1e-06)"
    assert repr(RelativeMSELoss()) == "RelativeMSELoss()"


def reference_normalize(x: Tensor, eps: float) -> Tensor:
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).sum(dim=-1, keepdim=True) / (x.shape[-1] - 1)
    return (x - mean) / torch.sqrt(var + eps)


def test_normalize_patches_uses_its_documented_default_eps() -> None:
    x = torch.randn(2, 3, 5, dtype=torch.float64) * 0.01  # variance ~1e-4: eps matters
    torch.testing.assert_close(normalize_patches(x), reference_normalize(x, 1e-6))
    assert not torch.allclose(normalize_patches(x), reference_normalize(x, 0.0))


def test_normalize_patches_accepts_two_values_per_patch() -> None:
    x = torch.tensor([[[1.0, 4.0], [2.0, -2.0]]], dtype=torch.float64)
    torch.testing.assert_close(normalize_patches(x, eps=0.0), reference_normalize(x, 0.0))


def test_mae_normalized_targets_use_the_losses_eps() -> None:
    prediction, target = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    mask = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    got = MAELoss(normalize_targets=True, eps=0.5)(prediction, target, mask)
    per_patch = (prediction - reference_normalize(target, 0.5)).pow(2).mean(dim=-1)
    torch.testing.assert_close(got, (per_patch * mask).sum() / mask.sum())


def test_mae_loss_keeps_the_prediction_dtype_whatever_the_mask_dtype() -> None:
    prediction, target = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    mask = torch.tensor([[True, False, True], [False, False, True]])
    expected = (prediction - target).pow(2).mean(dim=-1)[mask].mean()
    for m in (mask, mask.double(), mask.long()):
        got = MAELoss()(prediction, target, m)
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, expected)


def reference_relative_mse(pred: Tensor, target: Tensor, baseline: Tensor, eps: float) -> Tensor:
    model = ((pred - target) ** 2).mean(dim=0)
    base = ((baseline - target) ** 2).mean(dim=0)
    return (model / (base + eps)).mean()


def test_relative_mse_adds_eps_to_the_baseline_error() -> None:
    pred, target = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    baseline = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    expected = reference_relative_mse(pred, target, baseline, 0.25)
    torch.testing.assert_close(
        relative_mse_loss(pred, target, baseline=baseline, eps=0.25), expected
    )
    module = RelativeMSELoss(baseline=baseline, eps=0.25)
    torch.testing.assert_close(module(pred, target), expected)
    zero = torch.zeros(3, dtype=torch.float64)
    torch.testing.assert_close(
        RelativeMSELoss()(pred, target), reference_relative_mse(pred, target, zero, 1e-12)
    )


def grads(
    loss_fn: Callable[[Tensor, Tensor], Tensor], a: Tensor, b: Tensor, *, create_graph: bool
) -> tuple[Tensor, ...]:
    a, b = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
    return torch.autograd.grad(loss_fn(a, b), (a, b), create_graph=create_graph)


def test_infonce_bank_gradient_is_the_same_with_create_graph() -> None:
    # gradgradcheck only checks that the create_graph gradient is self-consistent;
    # this checks it equals the first-order gradient (itself checked by gradcheck).
    bank = MemoryBank(size=6, dim=4)
    bank.bank = bank.bank.double()
    loss_fn = InfoNCELoss(temperature=0.5, memory_bank=bank)
    query, key = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    plain = grads(loss_fn, query, key, create_graph=False)
    graph = grads(loss_fn, query, key, create_graph=True)
    for x, y in zip(plain, graph, strict=True):
        torch.testing.assert_close(x, y)


def test_vicreg_gram_gradient_is_the_same_with_create_graph() -> None:
    loss_fn = VICRegLoss(covariance_method="gram")  # weights 25, 25, 1: not all ones
    z_a, z_b = torch.randn(3, 5, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64)
    plain = grads(loss_fn, z_a, z_b, create_graph=False)
    graph = grads(loss_fn, z_a, z_b, create_graph=True)
    for x, y in zip(plain, graph, strict=True):
        torch.testing.assert_close(x, y)


def reference_dino(
    teacher: list[Tensor], student: list[Tensor], t_teacher: float, t_student: float
) -> Tensor:
    total, pairs = torch.zeros((), dtype=torch.float64), 0
    for i, t in enumerate(teacher):
        p = torch.softmax(t / t_teacher, dim=1)
        for j, s in enumerate(student):
            if i != j:
                total = total - (p * torch.log_softmax(s / t_student, dim=1)).sum(dim=1).mean()
                pairs += 1
    return total / pairs


def test_dino_with_two_teacher_views_and_one_student_view() -> None:
    loss_fn = DINOLoss(output_dim=5, teacher_temperature=0.07, warmup_teacher_temperature=0.07)
    teacher = [torch.randn(3, 5, dtype=torch.float64) for _ in range(2)]
    student = [torch.randn(3, 5, dtype=torch.float64)]
    got = loss_fn(teacher, student, epoch=0)
    torch.testing.assert_close(got, reference_dino(teacher, student, 0.07, 0.1))


def test_losses_emit_no_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DINOLoss(output_dim=4)([Z(2, 4), Z(2, 4)], [Z(2, 4)], epoch=3)
        InfoNCELoss(memory_bank=MemoryBank(size=4, dim=3))(Z(2, 3), Z(2, 3))
        NTXentLoss()(Z(3, 4), Z(3, 4))


def test_memory_bank_of_one_entry_and_its_integer_pointer() -> None:
    bank = MemoryBank(size=1, dim=3)
    assert bank.pointer.dtype == torch.int64 and bank.state_dict()["pointer"].dtype == torch.int64
    key = torch.nn.functional.normalize(torch.randn(1, 3), dim=1)
    bank.enqueue(key)
    assert torch.equal(bank.bank, key) and int(bank.pointer) == 0


def gram_nodes(loss: Tensor) -> set[str]:
    """Names of the Gram-path autograd Functions in ``loss``'s graph."""
    seen: set[object] = set()
    names: set[str] = set()
    stack = [loss.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if "Gram" in type(node).__name__:
            names.add(type(node).__name__)
        stack.extend(child for child, _ in node.next_functions)
    return names


@pytest.mark.parametrize(
    ("method", "n", "d", "gram"),
    [
        ("gram", 5, 3, True),  # forced even when N > D
        ("direct", 3, 5, False),  # forced even when N < D
        ("auto", 3, 5, True),  # N < D: Gram
        ("auto", 4, 4, False),  # N == D: direct
        ("auto", 5, 3, False),
    ],
)
def test_matrix_method_picks_the_documented_path(method: str, n: int, d: int, gram: bool) -> None:
    # Both paths give the same value; the method only chooses the cost, so the
    # choice is checked on the autograd graph.
    a = torch.randn(n, d, requires_grad=True)
    b = torch.randn(n, d)
    vicreg = VICRegLoss(covariance_method=method)  # type: ignore[arg-type]
    barlow = BarlowTwinsLoss(correlation_method=method)  # type: ignore[arg-type]
    assert gram_nodes(vicreg(a, b)) == ({"_GramBranchTermsBackward"} if gram else set())
    assert gram_nodes(barlow(a, b)) == ({"_GramInnerBackward"} if gram else set())
    covariance = covariance_loss(a, method=method)  # type: ignore[arg-type]
    assert gram_nodes(covariance) == ({"_GramSquaredNormBackward"} if gram else set())


def test_missing_torch_distributed_error_names_the_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.distributed, "is_available", lambda: False)
    with pytest.raises(
        MissingDependencyError, match=r"^NTXentLoss\(gather_distributed=True\) needs"
    ):
        NTXentLoss(gather_distributed=True)


@pytest.fixture
def one_rank_group(tmp_path: Path) -> Iterator[None]:
    """A real process group of one rank (gloo), so gathering runs and the batch is global."""
    dist = torch.distributed
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        yield
    finally:
        dist.destroy_process_group()


@pytest.mark.usefixtures("one_rank_group")
def test_gathered_batch_of_one_is_named_the_global_batch() -> None:
    cases: list[tuple[Callable[[], object], str]] = [
        (
            lambda: NTXentLoss(gather_distributed=True)(Z(1, 3), Z(1, 3)),
            "NTXentLoss is undefined for this input: it needs at least 2 samples in the global"
            " batch for negatives (the other samples' views), got embeddings of shape (1, 3).",
        ),
        (
            lambda: InfoNCELoss(gather_distributed=True)(Z(1, 3), Z(1, 3)),
            "InfoNCELoss is undefined for this input: it needs at least 2 samples in the global"
            " batch for in-batch negatives (the other keys), got embeddings of shape (1, 3).",
        ),
        (
            lambda: VICRegLoss(gather_distributed=True)(Z(1, 3), Z(1, 3)),
            "VICRegLoss is undefined for this input: it needs at least 2 samples in the global"
            " batch for the unbiased variance, got embeddings of shape (1, 3).",
        ),
    ]
    for call, start in cases:
        with pytest.raises(ShapeError, match=f"^{re.escape(start)}"):
            call()


def test_gram_and_direct_paths_give_the_same_first_order_gradients() -> None:
    z_a, z_b = torch.randn(3, 5, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64)
    for make in (
        lambda m: lambda a, b: covariance_loss(a, method=m) + covariance_loss(b, method=m),
        lambda m: BarlowTwinsLoss(correlation_method=m),
        lambda m: VICRegLoss(covariance_method=m),
    ):
        gram = grads(make("gram"), z_a, z_b, create_graph=False)
        direct = grads(make("direct"), z_a, z_b, create_graph=False)
        for x, y in zip(gram, direct, strict=True):
            torch.testing.assert_close(x, y)


def test_dino_accepts_the_edges_of_its_ranges() -> None:
    for momentum in (0.0, 1.0):
        assert DINOLoss(output_dim=2, center_momentum=momentum).center_momentum == momentum
    message = (
        "DINOLoss got teacher views with batch size 2 and student views with batch size 3."
        " Pass crops of the same images to both."
    )
    with pytest.raises(ShapeError, match=f"^{re.escape(message)}$"):
        DINOLoss(output_dim=4)([Z(2, 4), Z(2, 4)], [Z(3, 4)], epoch=0)


def test_memory_bank_of_one_dimension_and_a_double_query() -> None:
    assert MemoryBank(size=2, dim=1).bank.shape == (2, 1)
    bank = MemoryBank(size=5, dim=3)  # float32 bank, float64 query and key
    query, key = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    got = InfoNCELoss(temperature=0.5, memory_bank=bank)(query, key)
    torch.testing.assert_close(got, reference_infonce(query, key, bank.bank.double(), 0.5))


def reference_infonce(query: Tensor, key: Tensor, bank: Tensor, temperature: float) -> Tensor:
    q = torch.nn.functional.normalize(query, dim=1)
    k = torch.nn.functional.normalize(key, dim=1)
    logits = torch.cat([(q * k).sum(dim=1, keepdim=True), q @ bank.T], dim=1) / temperature
    return torch.nn.functional.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long))


def test_infonce_bank_shifts_each_row_by_its_own_maximum() -> None:
    # Row 0 has logits near +1/t, row 1 near -1/t: one shared shift would underflow row 1.
    bank_vectors = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    bank = MemoryBank(size=2, dim=3)
    bank.bank = bank_vectors.clone()
    query = torch.tensor([[1.0, 0.1, 0.0], [-1.0, -0.1, 0.0]], dtype=torch.float64)
    key = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.05, 0.0]], dtype=torch.float64)
    got = InfoNCELoss(temperature=0.001, memory_bank=bank)(query, key)
    expected = reference_infonce(query, key, bank_vectors, 0.001)
    assert torch.isfinite(got)
    torch.testing.assert_close(got, expected)
