from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from lightly.loss import DINOLoss as LightlyDINOLoss

from geofm.errors import ShapeError
from geofm.losses import DINOLoss


def _paper_dino(
    teacher: list[torch.Tensor],
    student: list[torch.Tensor],
    center: torch.Tensor,
    teacher_temp: float,
    student_temp: float = 0.1,
) -> torch.Tensor:
    """DINO's loss as in the paper's pseudo-code: loop over (teacher, student) view pairs."""
    total, terms = torch.zeros((), dtype=teacher[0].dtype), 0
    for t_index, t in enumerate(teacher):
        p_t = F.softmax((t - center) / teacher_temp, dim=-1)
        for s_index, s in enumerate(student):
            if s_index == t_index:
                continue
            total = total + (-p_t * F.log_softmax(s / student_temp, dim=-1)).sum(dim=-1).mean()
            terms += 1
    return total / terms


def _views(count: int, n: int = 3, k: int = 10, grad: bool = False) -> list[torch.Tensor]:
    return [torch.randn(n, k, dtype=torch.float64, requires_grad=grad) for _ in range(count)]


def test_matches_lightly_with_warmup_and_centre_updates_over_epochs() -> None:
    ours = DINOLoss(
        output_dim=10, teacher_temperature=0.07, warmup_teacher_temperature=0.04, warmup_epochs=4
    ).double()
    theirs = LightlyDINOLoss(
        output_dim=10,
        warmup_teacher_temp=0.04,
        teacher_temp=0.07,
        warmup_teacher_temp_epochs=4,
    ).double()
    for epoch in range(6):
        teacher, student = _views(2), _views(4, grad=True)  # 2 global + 2 local crops
        expected = _paper_dino(
            teacher, student, ours.center.clone(), ours.teacher_temperature_at(epoch)
        )
        loss = ours(teacher, student, epoch=epoch)
        grads = torch.autograd.grad(loss, student)
        ours.update_center(teacher)
        reference = theirs(teacher, student, epoch=epoch)  # lightly updates its centre inside
        ref_grads = torch.autograd.grad(reference, student)
        torch.testing.assert_close(loss, reference)
        torch.testing.assert_close(loss, expected)
        for g, h in zip(grads, ref_grads, strict=True):
            torch.testing.assert_close(g, h)
        torch.testing.assert_close(ours.center, theirs.center.flatten())


def test_teacher_temperature_schedule_matches_lightly_linspace() -> None:
    ours = DINOLoss(
        output_dim=4, warmup_teacher_temperature=0.02, teacher_temperature=0.05, warmup_epochs=7
    )
    theirs = LightlyDINOLoss(
        output_dim=4, warmup_teacher_temp=0.02, teacher_temp=0.05, warmup_teacher_temp_epochs=7
    )
    for epoch in range(7):
        assert ours.teacher_temperature_at(epoch) == pytest.approx(
            float(theirs.teacher_temp_schedule[epoch]), rel=1e-6
        )
    assert ours.teacher_temperature_at(100) == 0.05
    assert DINOLoss(output_dim=4, warmup_epochs=0).teacher_temperature_at(0) == 0.04
    single = DINOLoss(output_dim=4, warmup_teacher_temperature=0.01, warmup_epochs=1)
    assert single.teacher_temperature_at(0) == 0.01


def test_forward_does_not_change_the_centre_and_teacher_gets_no_gradient() -> None:
    loss_fn = DINOLoss(output_dim=10)
    teacher, student = _views(2, grad=True), _views(2, grad=True)
    loss = loss_fn(teacher, student, epoch=0)
    loss.backward()
    assert torch.count_nonzero(loss_fn.center) == 0
    assert all(t.grad is None for t in teacher)
    assert all(s.grad is not None and torch.isfinite(s.grad).all() for s in student)


def test_update_center_is_an_ema_of_the_batch_mean_with_default_momentum() -> None:
    loss_fn = DINOLoss(output_dim=10).double()
    teacher = _views(2)
    loss_fn.update_center(teacher)
    expected = 0.1 * torch.cat(teacher).mean(dim=0)
    torch.testing.assert_close(loss_fn.center, expected)
    loss_fn.update_center(teacher)
    torch.testing.assert_close(loss_fn.center, 0.9 * expected + 0.1 * torch.cat(teacher).mean(0))


def test_update_center_with_another_momentum() -> None:
    loss_fn = DINOLoss(output_dim=10, center_momentum=0.6).double()
    teacher = _views(3)
    loss_fn.update_center(teacher)
    torch.testing.assert_close(loss_fn.center, 0.4 * torch.cat(teacher).mean(dim=0))


def test_default_temperatures_and_warmup() -> None:
    loss_fn = DINOLoss(output_dim=10)
    assert (loss_fn.warmup_epochs, loss_fn.student_temperature) == (30, 0.1)
    assert loss_fn.teacher_temperature_at(0) == loss_fn.teacher_temperature_at(40) == 0.04
    teacher, student = _views(2), _views(3)
    expected = _paper_dino(teacher, student, torch.zeros(10, dtype=torch.float64), 0.04, 0.1)
    torch.testing.assert_close(loss_fn.double()(teacher, student, epoch=7), expected)


def test_one_view_raises_with_the_needed_count() -> None:
    with pytest.raises(
        ShapeError,
        match="undefined for this input: it needs a pair of different views .* got 1 teacher",
    ):
        DINOLoss(output_dim=10)(_views(1), _views(1), epoch=0)


def test_one_teacher_and_two_student_views_is_enough() -> None:
    teacher, student = _views(1), _views(2)
    loss = DINOLoss(output_dim=10).double()(teacher, student, epoch=0)
    center = torch.zeros(10, dtype=torch.float64)
    torch.testing.assert_close(loss, _paper_dino(teacher, student, center, 0.04))


def test_batch_of_one_is_defined() -> None:
    teacher, student = _views(2, n=1), _views(3, n=1, grad=True)
    loss = DINOLoss(output_dim=10).double()(teacher, student, epoch=0)
    center = torch.zeros(10, dtype=torch.float64)
    torch.testing.assert_close(loss, _paper_dino(teacher, student, center, 0.04))
    loss.backward()
    assert all(s.grad is not None and s.grad.abs().sum() > 0 for s in student)


def test_empty_batch_raises() -> None:
    with pytest.raises(ShapeError, match="it needs at least 1 sample per view"):
        DINOLoss(output_dim=10)(_views(2, n=0), _views(2, n=0), epoch=0)


def test_one_output_dimension_is_refused() -> None:
    with pytest.raises(ValueError, match="output_dim=1; expected >= 2"):
        DINOLoss(output_dim=1)


def test_rejects_bad_shapes_and_arguments() -> None:
    with pytest.raises(ShapeError, match=r"\(N, 10\)"):
        DINOLoss(output_dim=10)(_views(2, k=9), _views(2, k=9), epoch=0)
    with pytest.raises(ShapeError, match="batch size 3"):
        DINOLoss(output_dim=10)(_views(2, n=3), _views(2, n=4), epoch=0)
    with pytest.raises(ShapeError, match="no teacher views"):
        DINOLoss(output_dim=10)([], _views(2), epoch=0)
    with pytest.raises(ValueError, match="student_temperature=0; expected a finite"):
        DINOLoss(output_dim=10, student_temperature=0)
    with pytest.raises(ValueError, match="warmup_teacher_temperature=-0.04"):
        DINOLoss(output_dim=10, warmup_teacher_temperature=-0.04)
    with pytest.raises(ValueError, match="center_momentum=1.5"):
        DINOLoss(output_dim=10, center_momentum=1.5)
    with pytest.raises(ValueError, match="warmup_epochs=-1"):
        DINOLoss(output_dim=10, warmup_epochs=-1)
    with pytest.raises(ValueError, match="epoch=-1"):
        DINOLoss(output_dim=10).teacher_temperature_at(-1)


def test_half_precision_inputs_are_computed_in_float32() -> None:
    teacher = [v.float() for v in _views(2)]
    student = [v.float() for v in _views(2)]
    loss_fn = DINOLoss(output_dim=10)
    loss = loss_fn([t.half() for t in teacher], [s.half() for s in student], epoch=0)
    assert loss.dtype == torch.float32
    reference = loss_fn(
        [t.half().float() for t in teacher], [s.half().float() for s in student], epoch=0
    )
    torch.testing.assert_close(loss, reference)
