"""lightly's loss, memory-bank and SSL-utility tests, ported to geofm.

Upstream: lightly-ai/lightly @ e8d317fc5a87f4387a85a35e689869039ec249ee (2026-08-21).
Followed, case for case (same parameters, same reference comparisons, rewritten here):

- ``tests/loss/test_vicreg_loss.py``: ``test__gather_distributed``,
  ``test__gather_distributed_dist_not_available``, ``test_forward_pass``,
  ``test_forward_pass_cuda``, ``test_forward_pass__error_batch_size_1``,
  ``test_forward_pass__error_different_shapes``, ``test_forward__compare``,
  ``test_forward__compare_vicregl``.
- ``tests/loss/test_barlow_twins_loss.py``: ``test__gather_distributed``,
  ``test__gather_distributed_dist_not_available``, ``test__loss_matches_reference_loss``,
  ``test__loss_is_affine_invariant``, ``test__gather_distributed_forward_matches_non_distributed``,
  ``test__gather_distributed_gradient_matches_non_distributed`` (lightly #1977).
- ``tests/loss/test_ntx_ent_loss.py``: ``test__gather_distributed``,
  ``test__gather_distributed_dist_not_available``, ``test_with_values``,
  ``test_with_correlated_embedding``, ``test_forward_pass``, ``test_forward_pass_1d``,
  ``test_forward_pass_neg_temp``, ``test_forward_pass_memory_bank`` and the three CUDA variants.
- ``tests/loss/test_dino_loss.py``: ``test_different_input_sizes``,
  ``test_teacher_temperature_warmup``, ``test_other_parameters``, ``test_single_view_raises``,
  ``test_center__equivalence``.
- ``tests/models/modules/test_memory_bank.py``: all tests of ``TestNTXentLoss`` and
  ``TestMemoryBank``.
- ``tests/utils/test_scheduler.py``: ``test_cosine_schedule`` (rows without ``period``),
  ``test_cosine_schedule__error`` (rows without ``period``).
- ``tests/models/test_ModelUtils.py``: ``test_momentum_works``, ``test_patchify``,
  ``test_unpatchify``, ``test_random_token_mask``.

Adaptations (besides geofm's names):

- ``VICRegLoss(lambda_param, mu_param, nu_param)`` -> ``VICRegLoss(invariance_weight,
  variance_weight, covariance_weight)``; ``BarlowTwinsLoss(lambda_param)`` ->
  ``BarlowTwinsLoss(redundancy_weight)``.
- ``pytest-mock``'s ``mocker.patch.object(dist, "is_available")`` -> ``monkeypatch`` with a
  call counter.
- ``NTXentLoss(memory_bank_size=K)`` -> ``InfoNCELoss(memory_bank=MemoryBank(size=K, dim=D))``
  plus an explicit ``update_memory_bank(key)`` after each loss (geofm never updates state
  inside ``forward``; docs/migration.md). ``memory_bank_size=0`` -> ``NTXentLoss``.
- NT-Xent's ``for bsz in range(1, 20)`` loops are parametrised over ``bsz`` so that the
  batch of one (an intended difference) is its own case.
- DINO: lightly's loss is given the teacher temperature of the reference schedule; geofm's
  follows its own warm-up (``warmup_teacher_temperature``, ``teacher_temperature``,
  ``warmup_epochs``, ``epoch=``), so the schedule itself is compared too. The centre is
  updated by an explicit ``update_center`` after the loss. ``test_center__equivalence`` feeds
  lightly's ``Center`` and ``DINOLoss.update_center`` a 3-D ``(views, batch, dim)`` tensor:
  upstream passes a 2-D tensor, which both lightly objects average over every element
  (a degenerate case; porting fix). The single-view error is matched on geofm's wording
  ("at least 2 views") instead of lightly's ("at least two views").
- DDP: lightly's pytest pool -> ``torch.multiprocessing.spawn`` with 2 gloo ranks
  (``_ddp_workers.py``), one spawn for both tests.
- Memory bank: "bank before the update" is a clone taken before ``enqueue``; geofm's bank is
  ``(K, D)`` (lightly's default is ``(D, K)``); error messages are matched on geofm's
  wording. ``MemoryBankModule(size=(10, -1))`` -> ``MemoryBank(size=10, dim=-1)``.
- ``cosine_schedule`` has no ``period``: those rows are not ported; its error messages are
  matched on geofm's wording.
- ``random_token_mask(size, mask_ratio, mask_class_token)`` -> ``random_masking`` on a token
  tensor with ``num_prefix_tokens = 0 if mask_class_token else 1``; ``idx_mask`` is rebuilt
  from the boolean mask.
- ADDED (not upstream): the same inputs through the installed lightly (VICReg, Barlow Twins,
  NT-Xent, DINO, ``update_momentum``, ``patchify``), approximate VICReg comparisons at
  four (N, D), and the exception geofm raises where an upstream expectation is an intended
  difference.

Every case where geofm differs on purpose or lacks the feature is a strict ``xfail`` with
the reason, so the run is green and a change of behaviour shows up.
"""

from __future__ import annotations

import copy
import importlib
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from _peers import xfail
from torch import Tensor, nn

from geofm.errors import MissingDependencyError, ShapeError
from geofm.losses import BarlowTwinsLoss, DINOLoss, InfoNCELoss, NTXentLoss, VICRegLoss
from geofm.ssl import MemoryBank, cosine_schedule, patchify, random_masking, unpatchify
from geofm.ssl import update_momentum as geofm_update_momentum

lightly_loss = pytest.importorskip("lightly.loss")

NO_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="No cuda")

DIST_ERROR = (
    "intended difference: without torch.distributed geofm raises MissingDependencyError "
    "(an ImportError); lightly raises ValueError"
)
ASSERT_ERROR = (
    "intended difference: geofm raises ShapeError (a ValueError) with a message where "
    "lightly asserts (AssertionError)"
)
BATCH_OF_ONE = (
    "intended (validation): one sample leaves no negative; geofm raises ShapeError, "
    "lightly returns 0 with no gradient"
)
BANK_OVERFLOW = (
    "intended, documented: MemoryBank(size=K) refuses to enqueue more than K keys at once; "
    "lightly drops the overflow"
)


# --- distributed flag ----------------------------------------------------------------------
LOSSES_WITH_GATHER = {
    "vicreg": VICRegLoss,
    "barlow_twins": BarlowTwinsLoss,
    "ntx_ent": NTXentLoss,
}


def _count_is_available(monkeypatch: pytest.MonkeyPatch, value: bool) -> list[int]:
    calls: list[int] = []

    def is_available() -> bool:
        calls.append(1)
        return value

    monkeypatch.setattr(dist, "is_available", is_available)
    return calls


@pytest.mark.parametrize("loss", list(LOSSES_WITH_GATHER))
def test__gather_distributed(monkeypatch: pytest.MonkeyPatch, loss: str) -> None:
    calls = _count_is_available(monkeypatch, True)
    LOSSES_WITH_GATHER[loss](gather_distributed=True)
    assert len(calls) == 1


@pytest.mark.parametrize("loss", list(LOSSES_WITH_GATHER))
@xfail(DIST_ERROR, raises=MissingDependencyError)
def test__gather_distributed_dist_not_available(monkeypatch: pytest.MonkeyPatch, loss: str) -> None:
    calls = _count_is_available(monkeypatch, False)
    with pytest.raises(ValueError):  # noqa: PT011 (upstream checks the class only)
        LOSSES_WITH_GATHER[loss](gather_distributed=True)
    assert len(calls) == 1


@pytest.mark.parametrize("loss", list(LOSSES_WITH_GATHER))
def test_added_gather_distributed_dist_not_available_raises_import_error(
    monkeypatch: pytest.MonkeyPatch, loss: str
) -> None:
    _count_is_available(monkeypatch, False)
    with pytest.raises(MissingDependencyError, match=r"needs torch\.distributed"):
        LOSSES_WITH_GATHER[loss](gather_distributed=True)


# --- VICReg --------------------------------------------------------------------------------
def _reference_vicreg(x: Tensor, y: Tensor, weights: tuple[float, float, float]) -> Tensor:
    """VICReg as written in facebookresearch/vicreg main_vicreg.py (direct covariance)."""
    invariance_weight, variance_weight, covariance_weight = weights
    n, d = x.shape
    invariance = F.mse_loss(x, y)
    x = x - x.mean(dim=0)
    y = y - y.mean(dim=0)
    variance = sum(F.relu(1 - torch.sqrt(z.var(dim=0) + 1e-4)).mean() / 2 for z in (x, y))
    off_diagonal = ~torch.eye(d, dtype=torch.bool)
    covariance = sum(((z.T @ z) / (n - 1))[off_diagonal].pow(2).sum() / d for z in (x, y))
    return (
        invariance_weight * invariance + variance_weight * variance + covariance_weight * covariance
    )


def _reference_vicregl_global(x: Tensor, y: Tensor) -> Tensor:
    """VICRegL's global VICReg on (B, L, D) maps: covariance per location, then averaged."""
    invariance = 25.0 * F.mse_loss(x, y)
    x = x - x.mean(dim=0)
    y = y - y.mean(dim=0)
    variance = 25.0 * sum(F.relu(1.0 - torch.sqrt(z.var(dim=0) + 1e-4)).mean() / 2 for z in (x, y))
    d = x.shape[-1]
    off_diagonal = ~torch.eye(d, dtype=torch.bool)
    covariance = 0.0
    for z in (x, y):
        per_location = z.permute(1, 0, 2)  # (L, B, D)
        per_location = per_location - per_location.mean(dim=1, keepdim=True)
        cov = per_location.transpose(1, 2) @ per_location / (per_location.shape[1] - 1)  # (L, D, D)
        covariance = covariance + (cov[:, off_diagonal].pow(2).sum(-1) / d).mean() / 2
    return invariance + variance + covariance


@pytest.mark.parametrize("batch_size", [2, 3])
def test_vicreg_forward_pass(batch_size: int) -> None:
    loss = VICRegLoss()
    x0, x1 = torch.randn(batch_size, 32), torch.randn(batch_size, 32)
    assert loss(x0, x1).item() == pytest.approx(loss(x1, x0).item())


@NO_CUDA
@pytest.mark.parametrize("batch_size", [2, 3])
def test_vicreg_forward_pass_cuda(batch_size: int) -> None:
    loss = VICRegLoss()
    x0, x1 = torch.randn(batch_size, 32).cuda(), torch.randn(batch_size, 32).cuda()
    assert loss(x0, x1).item() == pytest.approx(loss(x1, x0).item())


@xfail(ASSERT_ERROR, raises=ShapeError)
def test_vicreg_forward_pass__error_batch_size_1() -> None:
    with pytest.raises(AssertionError):
        VICRegLoss()(torch.randn(1, 32), torch.randn(1, 32))


@xfail(ASSERT_ERROR, raises=ShapeError)
def test_vicreg_forward_pass__error_different_shapes() -> None:
    with pytest.raises(AssertionError):
        VICRegLoss()(torch.randn(2, 32), torch.randn(2, 16))


@pytest.mark.parametrize(("x0", "x1"), [((1, 32), (1, 32)), ((2, 32), (2, 16))])
def test_added_vicreg_bad_shapes_raise_shape_error(
    x0: tuple[int, int], x1: tuple[int, int]
) -> None:
    with pytest.raises(ShapeError):
        VICRegLoss()(torch.randn(*x0), torch.randn(*x1))


@xfail(
    "intended difference (rounding): for N < D geofm takes the exact Gram-matrix path "
    "(||Z^T Z||_F = ||Z Z^T||_F), so the float32 result is not bit-equal to the reference; "
    "it agrees to 1e-5 relative (test_added_vicreg_forward__compare_approx)"
)
def test_vicreg_forward__compare() -> None:
    # Upstream compares one random pair with ==; ten seeded pairs make the outcome independent
    # of which pair the seed happens to draw.
    loss = VICRegLoss()
    for _ in range(10):
        x0, x1 = torch.randn(2, 32), torch.randn(2, 32)
        assert loss(x0, x1).item() == _reference_vicreg(x0, x1, (25.0, 25.0, 1.0)).item()


@pytest.mark.parametrize(("n", "d"), [(2, 32), (8, 32), (64, 16), (32, 2048)])
def test_added_vicreg_forward__compare_approx(n: int, d: int) -> None:
    loss = VICRegLoss()
    x0, x1 = torch.randn(n, d), torch.randn(n, d)
    expected = _reference_vicreg(x0, x1, (25.0, 25.0, 1.0)).item()
    assert loss(x0, x1).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(("n", "d"), [(2, 32), (8, 32), (64, 16), (32, 2048)])
@pytest.mark.parametrize("weights", [(25.0, 25.0, 1.0), (1.0, 5.0, 0.5)])
def test_added_vicreg_matches_installed_lightly(
    n: int, d: int, weights: tuple[float, float, float]
) -> None:
    x0, x1 = torch.randn(n, d), torch.randn(n, d)
    ours = VICRegLoss(
        invariance_weight=weights[0], variance_weight=weights[1], covariance_weight=weights[2]
    )
    theirs = lightly_loss.VICRegLoss(
        lambda_param=weights[0], mu_param=weights[1], nu_param=weights[2]
    )
    assert ours(x0, x1).item() == pytest.approx(theirs(x0, x1).item(), rel=1e-5)


@xfail(
    "missing feature: VICRegLoss takes (N, D) embeddings only; lightly also accepts "
    "VICRegL's (B, L, D) local features (raises ShapeError)",
    raises=ShapeError,
)
def test_vicreg_forward__compare_vicregl() -> None:
    loss = VICRegLoss(covariance_weight=0.5)
    x0, x1 = torch.randn(2, 10, 32), torch.randn(2, 10, 32)
    assert loss(x0, x1).item() == pytest.approx(_reference_vicregl_global(x0, x1).item())


# --- Barlow Twins --------------------------------------------------------------------------
def _reference_barlow(z_a: Tensor, z_b: Tensor, redundancy_weight: float) -> Tensor:
    """Barlow Twins as in facebookresearch/barlowtwins main.py: affine-free BatchNorm1d."""
    n, d = z_a.shape
    bn = nn.BatchNorm1d(d, affine=False)
    c = bn(z_a).T @ bn(z_b) / n
    on_diagonal = (torch.diagonal(c) - 1).pow(2).sum()
    off_diagonal = c[~torch.eye(d, dtype=torch.bool)].pow(2).sum()
    return on_diagonal + redundancy_weight * off_diagonal


def test_barlow__loss_matches_reference_loss() -> None:
    z_a, z_b = torch.randn(32, 8192), torch.randn(32, 8192)
    loss = BarlowTwinsLoss(redundancy_weight=5e-3, gather_distributed=False)
    assert torch.allclose(loss(z_a, z_b), _reference_barlow(z_a, z_b, 5e-3))


@pytest.mark.parametrize(("n", "d"), [(32, 8192), (64, 16)])
def test_added_barlow_matches_installed_lightly(n: int, d: int) -> None:
    z_a, z_b = torch.randn(n, d), torch.randn(n, d)
    ours = BarlowTwinsLoss(redundancy_weight=5e-3)(z_a, z_b)
    theirs = lightly_loss.BarlowTwinsLoss(lambda_param=5e-3)(z_a, z_b)
    assert torch.allclose(ours, theirs)


def test_barlow__loss_is_affine_invariant() -> None:
    loss = BarlowTwinsLoss()
    x = torch.randn(32, 1024)
    assert torch.allclose(loss(x, x), loss(x, 2 * x + 4))


@pytest.fixture(scope="module")
def barlow_ddp_results(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Tensor]]:
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    from torch.multiprocessing.spawn import spawn

    out_dir = tmp_path_factory.mktemp("barlow_ddp")
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(Path(__file__).resolve().parent))
        workers = importlib.import_module("_ddp_workers")
        spawn(  # type: ignore[no-untyped-call]
            workers.barlow_worker,
            args=(workers.free_port(), str(out_dir)),
            nprocs=workers.WORLD_SIZE,
            join=True,
        )
    return [
        torch.load(out_dir / f"rank{rank}.pt", weights_only=True)
        for rank in range(workers.WORLD_SIZE)
    ]


def test_barlow__gather_distributed_forward_matches_non_distributed(
    barlow_ddp_results: list[dict[str, Tensor]],
) -> None:
    from _ddp_workers import barlow_inputs

    z_a, z_b = barlow_inputs()
    truth = BarlowTwinsLoss(gather_distributed=False)(z_a, z_b)
    assert all(torch.allclose(r["loss"], truth, atol=1e-5) for r in barlow_ddp_results)


def test_barlow__gather_distributed_gradient_matches_non_distributed(
    barlow_ddp_results: list[dict[str, Tensor]],
) -> None:
    from _ddp_workers import barlow_inputs

    z_a, z_b = barlow_inputs()
    z_a = z_a.clone().requires_grad_(True)
    BarlowTwinsLoss(gather_distributed=False)(z_a, z_b).backward()
    assert z_a.grad is not None
    assert all(torch.allclose(r["grad"], z_a.grad, atol=1e-5) for r in barlow_ddp_results)


# --- NT-Xent / InfoNCE with a memory bank ---------------------------------------------------
def _simclr_reference(out0: Tensor, out1: Tensor, temperature: float) -> float:
    """SimCLR's Algorithm 1 (arXiv:2002.05709) in numpy, rows k and k + N are one sample."""
    z = np.concatenate([out0.numpy(), out1.numpy()]).astype(np.float64)
    n2 = z.shape[0]
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    logits = (z @ z.T) / temperature
    exp = np.exp(logits)
    denominator = exp.sum(axis=1) - np.diag(exp)  # every k != i
    n = n2 // 2
    partner = np.concatenate([np.arange(n, n2), np.arange(n)])
    losses = -np.log(exp[np.arange(n2), partner] / denominator)
    return float(losses.mean())


def _with_values_cases() -> list[object]:
    cases = []
    for gather in (False, True):
        for temperature in (0.1, 1, 10):
            for dimension in (1, 2, 16, 64):
                for n_samples in (1, 2, 4):
                    marks = [xfail(BATCH_OF_ONE, raises=ShapeError)] if n_samples == 1 else []
                    cases.append(
                        pytest.param(n_samples, dimension, temperature, gather, marks=marks)
                    )
    return cases


@pytest.mark.parametrize(("n_samples", "dimension", "temperature", "gather"), _with_values_cases())
def test_ntxent_with_values(
    n_samples: int, dimension: int, temperature: float, gather: bool
) -> None:
    out0 = torch.tensor(np.random.normal(0, 1, size=(n_samples, dimension)), dtype=torch.float32)
    out1 = torch.tensor(np.random.normal(0, 1, size=(n_samples, dimension)), dtype=torch.float32)
    loss_fn = NTXentLoss(temperature=temperature, gather_distributed=gather)
    l1, l2 = float(loss_fn(out0, out1)), float(loss_fn(out1, out0))
    manual = _simclr_reference(out0, out1, temperature)
    assert l1 == pytest.approx(l2, abs=1e-5)
    assert l1 == pytest.approx(manual, abs=1e-5)
    assert l2 == pytest.approx(manual, abs=1e-5)


@pytest.mark.parametrize("n_samples", [2, 4, 16])
@pytest.mark.parametrize("temperature", [0.1, 0.5, 7])
def test_added_ntxent_matches_installed_lightly(n_samples: int, temperature: float) -> None:
    out0, out1 = torch.randn(n_samples, 16), torch.randn(n_samples, 16)
    ours = NTXentLoss(temperature=temperature)(out0, out1)
    theirs = lightly_loss.NTXentLoss(temperature=temperature)(out0, out1)
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-5)


def _correlated_cases() -> list[object]:
    cases = []
    for gather in (False, True):
        for temperature in (0.1, 1, 7):
            for bank in (0, 1, 2, 8, 15, 16, 17):
                for n_samples in (1, 2, 8, 16):
                    marks = []
                    if bank == 0 and n_samples == 1:
                        marks = [xfail(BATCH_OF_ONE, raises=ShapeError)]
                    elif 0 < bank < n_samples:
                        marks = [xfail(BANK_OVERFLOW, raises=ShapeError)]
                    cases.append(pytest.param(n_samples, bank, temperature, gather, marks=marks))
    return cases


@pytest.mark.parametrize(("n_samples", "bank_size", "temperature", "gather"), _correlated_cases())
def test_ntxent_with_correlated_embedding(
    n_samples: int, bank_size: int, temperature: float, gather: bool
) -> None:
    # Every embedding points along (1, 2): all cosines are 1, so the loss is -log(1 / #candidates).
    out0_np = np.random.random((n_samples, 1))
    out1_np = np.random.random((n_samples, 1))
    out0 = torch.tensor(np.concatenate([out0_np, 2 * out0_np], axis=1), dtype=torch.float32)
    out1 = torch.tensor(np.concatenate([out1_np, 2 * out1_np], axis=1), dtype=torch.float32)
    out0.requires_grad = True
    if bank_size > 0:
        bank = MemoryBank(size=bank_size, dim=2, gather_distributed=gather)
        loss_fn = InfoNCELoss(temperature=temperature, memory_bank=bank, gather_distributed=gather)
        for _ in range(bank_size // n_samples + 2):  # fill the bank over several rounds
            loss = loss_fn(out0, out1).item()
            loss_fn.update_memory_bank(out1)
        expected = -np.log(1 / (bank_size + 1))
    else:
        loss = NTXentLoss(temperature=temperature, gather_distributed=gather)(out0, out1).item()
        expected = -np.log(1 / (2 * n_samples - 1))
    assert loss == pytest.approx(expected)


def _symmetry_cases() -> list[object]:
    return [
        pytest.param(bsz, marks=[xfail(BATCH_OF_ONE, raises=ShapeError)] if bsz == 1 else [])
        for bsz in range(1, 20)
    ]


@pytest.mark.parametrize("bsz", _symmetry_cases())
def test_ntxent_forward_pass(bsz: int) -> None:
    loss = NTXentLoss()
    batch_1, batch_2 = torch.randn(bsz, 32), torch.randn(bsz, 32)
    assert (loss(batch_1, batch_2) - loss(batch_2, batch_1)).pow(2).item() == pytest.approx(0.0)


@pytest.mark.parametrize("bsz", _symmetry_cases())
def test_ntxent_forward_pass_1d(bsz: int) -> None:
    loss = NTXentLoss()
    batch_1, batch_2 = torch.randn(bsz, 1), torch.randn(bsz, 1)
    assert (loss(batch_1, batch_2) - loss(batch_2, batch_1)).pow(2).item() == pytest.approx(0.0)


@xfail(
    "intended (validation): geofm rejects temperature <= 0 (ValueError); lightly allows -1",
    raises=ValueError,
)
def test_ntxent_forward_pass_neg_temp() -> None:
    loss = NTXentLoss(temperature=-1.0)
    for bsz in range(2, 20):
        batch_1, batch_2 = torch.randn(bsz, 32), torch.randn(bsz, 32)
        assert (loss(batch_1, batch_2) - loss(batch_2, batch_1)).pow(2).item() == pytest.approx(0.0)


def test_added_ntxent_neg_temp_raises() -> None:
    with pytest.raises(ValueError, match="temperature"):
        NTXentLoss(temperature=-1.0)


def _memory_bank_pass(device: str) -> None:
    loss_fn = InfoNCELoss(temperature=0.5, memory_bank=MemoryBank(size=64, dim=32)).to(device)
    for bsz in range(1, 20):
        batch_1 = torch.randn(bsz, 32, device=device)
        batch_2 = torch.randn(bsz, 32, device=device)
        assert torch.isfinite(loss_fn(batch_1, batch_2))
        loss_fn.update_memory_bank(batch_2)


def test_ntxent_forward_pass_memory_bank() -> None:
    _memory_bank_pass("cpu")


@NO_CUDA
def test_ntxent_forward_pass_memory_bank_cuda() -> None:
    _memory_bank_pass("cuda")


@NO_CUDA
def test_ntxent_forward_pass_cuda() -> None:
    loss = NTXentLoss()
    for bsz in range(2, 20):
        batch_1, batch_2 = torch.randn(bsz, 32).cuda(), torch.randn(bsz, 32).cuda()
        assert (loss(batch_1, batch_2) - loss(batch_2, batch_1)).pow(2).item() == pytest.approx(0.0)


# --- DINO ----------------------------------------------------------------------------------
class _OriginalDINOLoss:
    """DINO's loss as in facebookresearch/dino main_dino.py, without distributed training.

    Rewritten for this port: a numpy teacher-temperature schedule (linear warm-up, then
    constant), the centred/sharpened teacher, cross-entropy over every pair of different
    views, and the centre EMA updated inside the call (as the original does).
    """

    def __init__(
        self,
        *,
        out_dim: int,
        ncrops: int,
        warmup_teacher_temp: float,
        teacher_temp: float,
        warmup_teacher_temp_epochs: int,
        nepochs: int,
        student_temp: float,
        center_momentum: float,
    ) -> None:
        self.ncrops = ncrops
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.center = torch.zeros(1, out_dim)
        warmup = np.linspace(warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs)
        rest = np.full(nepochs - warmup_teacher_temp_epochs, teacher_temp)
        self.teacher_temp_schedule = np.concatenate([warmup, rest])

    def __call__(self, student_output: Tensor, teacher_output: Tensor, epoch: int) -> Tensor:
        student = (student_output / self.student_temp).chunk(self.ncrops)
        temperature = float(self.teacher_temp_schedule[epoch])
        teacher = F.softmax((teacher_output - self.center) / temperature, dim=-1).detach()
        teacher_views = teacher.chunk(2)
        terms = [
            (-q * F.log_softmax(student[v], dim=-1)).sum(dim=-1).mean()
            for iq, q in enumerate(teacher_views)
            for v in range(len(student))
            if v != iq
        ]
        with torch.no_grad():
            batch_center = teacher_output.sum(dim=0, keepdim=True) / len(teacher_output)
            self.center = self.center * self.center_momentum + batch_center * (
                1 - self.center_momentum
            )
        return torch.stack(terms).mean()


def _views(batch_size: int, n_views: int, output_dim: int, seed: int) -> list[Tensor]:
    torch.manual_seed(seed)
    return [
        torch.stack([torch.rand(output_dim) for _ in range(batch_size)]) for _ in range(n_views)
    ]


def _assert_dino_equal_to_original(
    *,
    batch_size: int = 3,
    n_global: int = 2,
    n_local: int = 6,
    output_dim: int = 4,
    warmup_teacher_temp: float = 0.04,
    teacher_temp: float = 0.04,
    warmup_teacher_temp_epochs: int = 30,
    student_temp: float = 0.1,
    center_momentum: float = 0.9,
    epoch: int = 0,
    n_epochs: int = 100,
) -> None:
    loss_fn = DINOLoss(
        output_dim=output_dim,
        teacher_temperature=teacher_temp,
        warmup_teacher_temperature=warmup_teacher_temp,
        warmup_epochs=warmup_teacher_temp_epochs,
        student_temperature=student_temp,
        center_momentum=center_momentum,
    )
    original = _OriginalDINOLoss(
        out_dim=output_dim,
        ncrops=n_global + n_local,
        warmup_teacher_temp=warmup_teacher_temp,
        teacher_temp=teacher_temp,
        warmup_teacher_temp_epochs=warmup_teacher_temp_epochs,
        nepochs=n_epochs,
        student_temp=student_temp,
        center_momentum=center_momentum,
    )
    assert loss_fn.teacher_temperature_at(epoch) == pytest.approx(
        float(original.teacher_temp_schedule[epoch])
    )

    # One linear layer per network, to check that the gradients reach the student.
    teacher = nn.Linear(output_dim, output_dim).requires_grad_(False)
    student = nn.Linear(output_dim, output_dim)
    original_teacher, original_student = copy.deepcopy(teacher), copy.deepcopy(student)
    optimizer = torch.optim.SGD(student.parameters(), lr=1)
    original_optimizer = torch.optim.SGD(original_student.parameters(), lr=1)

    teacher_views = _views(batch_size, n_global, output_dim, seed=0)
    student_views = _views(batch_size, n_global + n_local, output_dim, seed=1)
    teacher_out = [teacher(v) for v in teacher_views]
    student_out = [student(v) for v in student_views]
    original_teacher_out = original_teacher(torch.cat(teacher_views).clone())
    original_student_out = original_student(torch.cat(student_views).clone())

    loss = loss_fn(teacher_out, student_out, epoch=epoch)
    loss_fn.update_center(teacher_out)
    original_loss = original(original_student_out, original_teacher_out, epoch)

    optimizer.zero_grad()
    original_optimizer.zero_grad()
    loss.backward()
    original_loss.backward()
    optimizer.step()
    original_optimizer.step()

    assert torch.allclose(loss_fn.center.squeeze(), original.center.squeeze())
    assert torch.allclose(loss, original_loss)
    for ours, theirs in zip(student.parameters(), original_student.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs)
    for ours, theirs in zip(teacher.parameters(), original_teacher.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs)


def _input_size_cases() -> list[object]:
    reason = (
        "intended (validation): DINOLoss needs output_dim >= 2 (a softmax over one output is "
        "constant: loss 0, no gradient); lightly accepts 1"
    )
    return [
        pytest.param(b, n, d, marks=[xfail(reason, raises=ValueError)] if d == 1 else [])
        for d in range(1, 4)
        for n in range(0, 4)
        for b in range(1, 4)
    ]


@pytest.mark.parametrize(("batch_size", "n_local", "output_dim"), _input_size_cases())
def test_dino_different_input_sizes(batch_size: int, n_local: int, output_dim: int) -> None:
    _assert_dino_equal_to_original(batch_size=batch_size, n_local=n_local, output_dim=output_dim)


@pytest.mark.parametrize("warmup_teacher_temp", [0.01, 0.04, 0.07])
@pytest.mark.parametrize("teacher_temp", [0.01, 0.04, 0.07])
@pytest.mark.parametrize("warmup_teacher_temp_epochs", [0, 1, 10])
@pytest.mark.parametrize("epoch", [0, 1, 10, 20])
def test_dino_teacher_temperature_warmup(
    warmup_teacher_temp: float, teacher_temp: float, warmup_teacher_temp_epochs: int, epoch: int
) -> None:
    _assert_dino_equal_to_original(
        warmup_teacher_temp=warmup_teacher_temp,
        teacher_temp=teacher_temp,
        warmup_teacher_temp_epochs=warmup_teacher_temp_epochs,
        epoch=epoch,
    )


@pytest.mark.parametrize("student_temp", [0.05, 0.1, 0.2])
@pytest.mark.parametrize("center_momentum", [0.5, 0.9, 0.95])
def test_dino_other_parameters(student_temp: float, center_momentum: float) -> None:
    _assert_dino_equal_to_original(student_temp=student_temp, center_momentum=center_momentum)


def test_dino_single_view_raises() -> None:
    loss_fn = DINOLoss(output_dim=8)
    with pytest.raises(ValueError, match="at least 2 views"):
        loss_fn([torch.randn(4, 8)], [torch.randn(4, 8)], epoch=0)


@pytest.mark.parametrize("n_local", [0, 2])
def test_added_dino_matches_installed_lightly(n_local: int) -> None:
    teacher = [torch.randn(3, 16) for _ in range(2)]
    student = [torch.randn(3, 16) for _ in range(2 + n_local)]
    ours = DINOLoss(output_dim=16, warmup_epochs=0)(teacher, student, epoch=0)
    theirs = lightly_loss.DINOLoss(output_dim=16)(teacher, student, teacher_temp=0.04)
    assert torch.allclose(ours, theirs)


def test_dino_center__equivalence() -> None:
    from lightly.models.modules.center import Center

    criterion = DINOLoss(output_dim=32, center_momentum=0.9)
    center = Center(size=(1, 1, 32), momentum=0.9)
    reference = lightly_loss.DINOLoss(output_dim=32, center_momentum=0.9)
    x = torch.rand(2, 32)
    criterion.update_center([x])  # one teacher view of 2 samples
    center.update(x[None])  # (views, batch, dim)
    reference.update_center(teacher_out=x[None])
    assert torch.allclose(criterion.center, center.value.flatten())
    assert torch.allclose(criterion.center, reference.center.flatten())


# --- memory bank ---------------------------------------------------------------------------
def test_memory_bank_init__negative_size() -> None:
    with pytest.raises(ValueError, match="expected positive integers"):
        MemoryBank(size=-1, dim=2)
    with pytest.raises(ValueError, match="expected positive integers"):
        MemoryBank(size=10, dim=-1)


def test_memory_bank_forward_easy() -> None:
    bsz, dim, size = 3, 2, 9
    bank = MemoryBank(size=size, dim=dim)
    pointer = 0
    for _ in range(0, 33 * bsz, bsz):
        output = torch.randn(2 * bsz, dim, requires_grad=True)
        out0, out1 = output[:bsz], output[bsz:]
        current = bank.bank.clone()
        bank.enqueue(out1)
        # the bank before the update does not hold the batch yet; the one after does
        assert (out0 - current[pointer : pointer + bsz]).norm() > 1e-5
        assert (out1 - bank.bank[pointer : pointer + bsz]).norm() < 1e-5
        pointer = (pointer + bsz) % size


def _forward_wraps(device: str) -> None:
    bank = MemoryBank(size=10, dim=2).to(device)
    for _ in range(0, 33 * 3, 3):  # a bank size that is no multiple of the batch size
        bank.enqueue(torch.randn(3, 2, device=device))
    assert bank.bank.shape == (10, 2)


def test_memory_bank_forward() -> None:
    _forward_wraps("cpu")


@NO_CUDA
def test_memory_bank_forward__cuda() -> None:
    _forward_wraps("cuda")


@xfail(
    "intended difference: MemoryBank needs dim= (keyword-only, TypeError without it); lightly "
    "warns and infers the dimension from the first batch",
    raises=TypeError,
)
def test_memory_bank_init__no_dim_warning() -> None:
    with warnings.catch_warnings(record=True) as caught:  # pytest.warns would mask the error
        warnings.simplefilter("always")
        MemoryBank(size=10)  # type: ignore[call-arg]
    assert any("does not specify feature dimension" in str(w.message) for w in caught)


@xfail(
    "intended, documented: MemoryBank wraps a batch around the end of the queue (x1[2] lands "
    "in slot 0); lightly truncates it and restarts at slot 0"
)
def test_memory_bank_forward_exact() -> None:
    bank = MemoryBank(size=5, dim=2)
    x0, x1, x2 = torch.randn(3, 2), torch.randn(3, 2), torch.randn(3, 2)
    before = bank.bank.clone()
    bank.enqueue(x0)
    assert before.shape == (5, 2)
    assert before[:3].tolist() != x0.tolist()
    assert bank.bank[:3].tolist() == x0.tolist()
    before = bank.bank.clone()
    bank.enqueue(x1)
    assert before[:3].tolist() == x0.tolist()
    assert bank.bank[:3].tolist() == x0.tolist()
    assert bank.bank[3:].tolist() == x1[:2].tolist()
    before = bank.bank.clone()
    bank.enqueue(x2)
    assert before[:3].tolist() == x0.tolist()
    assert before[3:].tolist() == x1[:2].tolist()
    assert bank.bank[:3].tolist() == x2.tolist()


def test_added_memory_bank_forward_wraps() -> None:
    bank = MemoryBank(size=5, dim=2)
    x0, x1, x2 = torch.randn(3, 2), torch.randn(3, 2), torch.randn(3, 2)
    for x in (x0, x1, x2):
        bank.enqueue(x)
    # x0 -> 0..2, x1 -> 3, 4, 0 (wrapped), x2 -> 1..3
    assert bank.bank.tolist() == [x1[2].tolist(), *x2.tolist(), x1[1].tolist()]
    assert int(bank.pointer) == 4


@xfail(
    "intended difference: MemoryBank needs dim= (TypeError without it); lightly infers it "
    "from the first batch",
    raises=TypeError,
)
def test_memory_bank_forward__no_dim() -> None:
    bank = MemoryBank(size=5)  # type: ignore[call-arg]
    x0 = torch.randn(3, 2)
    bank.enqueue(x0)
    assert bank.bank.shape == (5, 2)


@xfail(
    "intended difference: the bank is always (K, D) (MemoryBank has no feature_dim_first; "
    "lightly's default layout is (D, K))",
    raises=TypeError,
)
def test_memory_bank_forward__dim_first() -> None:
    bank = MemoryBank(size=5, dim=2, feature_dim_first=True)  # type: ignore[call-arg]
    bank.enqueue(torch.randn(3, 2))
    assert bank.bank.shape == (2, 5)


# --- scheduler and model utilities ---------------------------------------------------------
SCHEDULE_ZERO = (
    "intended (validation): cosine_schedule needs max_steps >= 1 (ValueError); lightly "
    "returns end_value for max_steps=0"
)


@pytest.mark.parametrize(
    ("step", "max_steps", "start_value", "end_value", "expected"),
    [
        pytest.param(0, 0, 1.0, 0.0, 0.0, marks=xfail(SCHEDULE_ZERO, raises=ValueError)),
        pytest.param(1, 0, 1.0, 0.0, 0.0, marks=xfail(SCHEDULE_ZERO, raises=ValueError)),
        (1, 1, 1.0, 0.0, 0.0),
        (0, 10, 1.0, 0.0, 1.0),
        (1, 10, 1.0, 0.0, 0.96984631),
        (2, 10, 1.0, 0.0, 0.88302222),
        (10, 10, 1.0, 0.0, 0.0),
    ],
)
def test_cosine_schedule(
    step: int, max_steps: int, start_value: float, end_value: float, expected: float
) -> None:
    value = cosine_schedule(step, max_steps=max_steps, start_value=start_value, end_value=end_value)
    assert value == pytest.approx(expected)


@pytest.mark.parametrize(("step", "max_steps"), [(-1, 1), (1, -1)])
def test_cosine_schedule__error(step: int, max_steps: int) -> None:
    with pytest.raises(ValueError, match="expected step >= 0 and max_steps >= 1"):
        cosine_schedule(step, max_steps=max_steps, start_value=0.0, end_value=1.0)


def test_momentum_works() -> None:
    from lightly.models.utils import update_momentum

    model = nn.Sequential(nn.Linear(32, 32), nn.ReLU())
    teacher = copy.deepcopy(model)
    nn.init.normal_(teacher[0].weight)  # a teacher that differs from the student
    ours, theirs = copy.deepcopy(teacher), copy.deepcopy(teacher)
    geofm_update_momentum(model, ours, momentum=0.99)
    update_momentum(model, theirs, 0.99)  # ADDED: the installed lightly on the same models
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_patchify() -> None:
    from lightly.models import utils

    batch_size, channels, height, width, patch_size = 2, 3, 8, 8, 4
    images = torch.rand(batch_size, channels, height, width)
    patches = patchify(images, patch_size=patch_size)
    rows, cols = height // patch_size, width // patch_size
    assert list(patches.shape) == [batch_size, rows * cols, channels * patch_size**2]
    for image, image_patches in zip(images, patches, strict=True):
        for i in range(rows):
            for j in range(cols):
                window = image[
                    :, i * patch_size : (i + 1) * patch_size, j * patch_size : (j + 1) * patch_size
                ]
                # (row in patch, column in patch, channel) order
                assert torch.equal(image_patches[i * cols + j], window.permute(1, 2, 0).flatten())
    assert torch.equal(patches, utils.patchify(images, patch_size))  # ADDED: installed lightly


def test_unpatchify() -> None:
    images = torch.rand(2, 3, 8, 8)
    patches = patchify(images, patch_size=4)
    assert torch.equal(unpatchify(patches, patch_size=4, image_size=(8, 8)), images)


MASK_ALL = (
    "intended (validation): random_masking needs mask_ratio < 1 (it keeps at least one patch); "
    "lightly masks every token"
)


@pytest.mark.parametrize(
    ("mask_ratio", "mask_class_token"),
    [
        (0.0, False),
        (0.0, True),
        (0.6, False),
        (0.6, True),
        pytest.param(1.0, False, marks=xfail(MASK_ALL, raises=ValueError)),
        pytest.param(1.0, True, marks=xfail(MASK_ALL, raises=ValueError)),
    ],
)
def test_random_token_mask(mask_ratio: float, mask_class_token: bool) -> None:
    batch_size, seq_length = 2, 5
    prefix = 0 if mask_class_token else 1
    out = random_masking(
        torch.randn(batch_size, seq_length, 4), mask_ratio=mask_ratio, num_prefix_tokens=prefix
    )
    idx_keep = out.keep_index
    # the masked positions, rebuilt from the boolean patch mask (prefix tokens come first)
    idx_mask = torch.stack([row.nonzero().flatten() + prefix for row in out.mask])
    idx, _ = torch.cat([idx_keep, idx_mask], dim=1).sort(dim=1)
    assert torch.equal(idx, torch.arange(seq_length).repeat(batch_size, 1))
    if not mask_class_token:
        assert torch.all(idx_keep[:, 0] == 0)
