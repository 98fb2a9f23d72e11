"""DINO: self-distillation loss with teacher centring and sharpening.

References:
    - Caron, Touvron, Misra, Jegou, Mairal, Bojanowski, Joulin. "Emerging
      Properties in Self-Supervised Vision Transformers." ICCV 2021.
      https://arxiv.org/abs/2104.14294
    - Reference code: https://github.com/facebookresearch/dino (``main_dino.py``, ``DINOLoss``).
    - lightly's port: ``DINOLoss`` (``lightly/loss/dino_loss.py``), which
      updates the centre inside ``forward``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from geofm._dist import all_reduce_sum
from geofm.errors import ShapeError
from geofm.losses._common import (
    DistributedModule,
    check_positive,
    full_precision,
    undefined_loss_message,
    upcast,
)

__all__ = ["DINOLoss"]


class DINOLoss(DistributedModule):
    """Cross-entropy between the centred, sharpened teacher and the student.

    For teacher view ``t`` and student view ``s`` with ``t != s`` (view index
    ``i`` is the same crop in both lists, so same-view pairs are skipped):
    ``H(softmax((t - c) / T_t), log_softmax(s / T_s))`` averaged over the batch
    and over all such pairs. Typically the teacher sees the 2 global crops and
    the student all crops (global first).

    The centre ``c`` is an EMA of the teacher outputs, updated only when you
    call :meth:`update_center` (after the loss, once per step), never by
    ``forward``. The teacher temperature follows a linear warm-up from
    ``warmup_teacher_temperature`` to ``teacher_temperature`` over
    ``warmup_epochs`` epochs (:meth:`teacher_temperature_at`).

    Global vs local: the loss is local (this rank's batch; DDP averages the
    gradients); the centre uses the global batch mean when
    ``gather_distributed=True``. The teacher outputs get no gradient.
    fp16/bf16 inputs are computed in float32.

    Args:
        output_dim: Dimension ``K`` of the head outputs, ``>= 2`` (a softmax
            over one output is constant: the loss would be 0 with no gradient).
        teacher_temperature: ``T_t`` after warm-up (0.04; SpectralEarth 0.04).
        warmup_teacher_temperature: ``T_t`` at epoch 0 (0.04).
        warmup_epochs: Epochs of the linear teacher-temperature warm-up (DINO
            30, SpectralEarth 10); ``0`` disables it.
        student_temperature: ``T_s`` (0.1).
        center_momentum: EMA momentum of the centre (0.9).
        gather_distributed: Average the centre update over all ranks.

    Attributes:
        center: ``(K,)`` buffer, the running centre of the teacher outputs.

    Shape:
        - teacher_out: sequence of ``T`` tensors ``(N, K)``, ``N >= 1``.
        - student_out: sequence of ``S`` tensors ``(N, K)``, with at least one
          pair of different views (``T * S - min(T, S) >= 1``).
        - Output: ``()``.

    Raises:
        ValueError: If ``output_dim < 2``, a temperature is not finite and
            positive, ``warmup_epochs < 0`` or ``center_momentum`` is not in ``[0, 1]``.
        MissingDependencyError: If ``gather_distributed=True`` and PyTorch has
            no ``torch.distributed``.

    Example:
        >>> loss_fn = DINOLoss(output_dim=16, warmup_epochs=10)
        >>> teacher = [torch.randn(4, 16), torch.randn(4, 16)]
        >>> student = [torch.randn(4, 16, requires_grad=True) for _ in range(4)]
        >>> loss = loss_fn(teacher, student, epoch=0)
        >>> loss.backward()
        >>> loss_fn.update_center(teacher)
        >>> loss.shape, loss_fn.center.shape
        (torch.Size([]), torch.Size([16]))
    """

    center: Tensor
    repr_fields = (
        "output_dim",
        "teacher_temperature",
        "warmup_teacher_temperature",
        "warmup_epochs",
        "student_temperature",
        "center_momentum",
    )

    def __init__(
        self,
        *,
        output_dim: int,
        teacher_temperature: float = 0.04,
        warmup_teacher_temperature: float = 0.04,
        warmup_epochs: int = 30,
        student_temperature: float = 0.1,
        center_momentum: float = 0.9,
        gather_distributed: bool = False,
    ) -> None:
        super().__init__(gather_distributed=gather_distributed)
        if output_dim < 2:
            raise ValueError(
                f"DINOLoss got output_dim={output_dim}; expected >= 2 (DINO uses 65536): a "
                "softmax over one output is constant, so the loss would be 0 with no gradient."
            )
        temperatures = {
            "teacher_temperature": teacher_temperature,
            "warmup_teacher_temperature": warmup_teacher_temperature,
            "student_temperature": student_temperature,
        }
        for name, value in temperatures.items():
            check_positive(value, owner="DINOLoss", name=name, hint="DINO uses 0.04 to 0.1")
        if warmup_epochs < 0:
            raise ValueError(
                f"DINOLoss got warmup_epochs={warmup_epochs}; expected >= 0 (0 disables warm-up)."
            )
        if not 0.0 <= center_momentum <= 1.0:
            raise ValueError(
                f"DINOLoss got center_momentum={center_momentum}; expected a value in [0, 1] "
                "(DINO uses 0.9)."
            )
        self.output_dim = output_dim
        self.teacher_temperature = teacher_temperature
        self.warmup_teacher_temperature = warmup_teacher_temperature
        self.warmup_epochs = warmup_epochs
        self.student_temperature = student_temperature
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(output_dim))

    def teacher_temperature_at(self, epoch: int) -> float:
        """Return the teacher temperature of ``epoch`` (linear warm-up, then constant).

        Epochs ``0 .. warmup_epochs - 1`` step linearly from
        ``warmup_teacher_temperature`` to ``teacher_temperature`` (both ends
        included, like ``numpy.linspace``); later epochs use ``teacher_temperature``.

        Args:
            epoch: Zero-based epoch index.

        Returns:
            The temperature ``T_t``.

        Raises:
            ValueError: If ``epoch < 0``.

        Example:
            >>> loss_fn = DINOLoss(output_dim=4, warmup_teacher_temperature=0.04,
            ...                    teacher_temperature=0.07, warmup_epochs=4)
            >>> [round(loss_fn.teacher_temperature_at(e), 3) for e in range(6)]
            [0.04, 0.05, 0.06, 0.07, 0.07, 0.07]
        """
        if epoch < 0:
            raise ValueError(f"DINOLoss got epoch={epoch}; expected a zero-based epoch >= 0.")
        if epoch >= self.warmup_epochs:
            return self.teacher_temperature
        if self.warmup_epochs == 1:
            return self.warmup_teacher_temperature
        fraction = epoch / (self.warmup_epochs - 1)
        start, end = self.warmup_teacher_temperature, self.teacher_temperature
        return start + (end - start) * fraction

    def _check_views(self, views: Sequence[Tensor], *, name: str) -> None:
        if len(views) == 0:
            raise ShapeError(f"DINOLoss got no {name} views. Pass a list of (N, K) tensors.")
        shape = views[0].shape
        for view in views:
            if view.ndim != 2 or view.shape != shape or view.shape[1] != self.output_dim:
                raise ShapeError(
                    f"DINOLoss(output_dim={self.output_dim}) expects every {name} view of shape "
                    f"(N, {self.output_dim}) with one N, got shapes "
                    f"{[tuple(v.shape) for v in views]}. Pass the head outputs of each crop."
                )
        if shape[0] == 0:
            raise ShapeError(
                undefined_loss_message(
                    "DINOLoss",
                    needs="at least 1 sample per view to average over",
                    got=f"{name} views of shape {tuple(shape)}",
                    fix="Pass a non-empty batch.",
                )
            )

    def forward(
        self, teacher_out: Sequence[Tensor], student_out: Sequence[Tensor], *, epoch: int
    ) -> Tensor:
        """Return the DINO loss at ``epoch`` (which sets the teacher temperature).

        Args:
            teacher_out: Teacher head outputs, one ``(N, K)`` tensor per view.
            student_out: Student head outputs, one ``(N, K)`` tensor per view,
                in the same view order (extra local crops last).
            epoch: Zero-based epoch, for the teacher-temperature warm-up.

        Returns:
            Scalar loss.

        Raises:
            ShapeError: If a view has the wrong shape, the teacher and student
                batch sizes differ, or there is no pair of different views
                (DINO needs at least 2 views in total).
        """
        self._check_views(teacher_out, name="teacher")
        self._check_views(student_out, name="student")
        num_teacher, num_student = len(teacher_out), len(student_out)
        num_pairs = num_teacher * num_student - min(num_teacher, num_student)
        if num_pairs == 0:
            raise ShapeError(
                undefined_loss_message(
                    "DINOLoss",
                    needs="a pair of different views (at least 2 views in total)",
                    got=f"{num_teacher} teacher view(s) and {num_student} student view(s)",
                    fix="Pass at least two crops (e.g. 2 global crops to both teacher and "
                    "student).",
                )
            )
        batch_size = teacher_out[0].shape[0]
        if student_out[0].shape[0] != batch_size:
            raise ShapeError(
                f"DINOLoss got teacher views with batch size {batch_size} and student views "
                f"with batch size {student_out[0].shape[0]}. Pass crops of the same images to both."
            )
        temperature = self.teacher_temperature_at(epoch)
        dtype = functools.reduce(
            torch.promote_types, [v.dtype for v in (*teacher_out, *student_out)], torch.float32
        )
        with full_precision(teacher_out[0]):
            center = self.center.to(dtype)  # (K,)
            with torch.no_grad():
                teacher_probs = [
                    F.softmax((t.to(dtype) - center).div_(temperature), dim=-1)  # (N, K)
                    for t in teacher_out
                ]
            student_log_probs = [
                F.log_softmax(s.to(dtype) / self.student_temperature, dim=-1)  # (N, K)
                for s in student_out
            ]
            # Per view lists instead of stacking avoid copies. The sum over all
            # (t, s) pairs factorises: (sum_t p_t) . (sum_s log q_s); then the
            # same-view pairs (t, t) are subtracted.
            teacher_sum = functools.reduce(torch.add, teacher_probs)  # (N, K)
            student_sum = functools.reduce(torch.add, student_log_probs)  # (N, K)
            all_pairs = torch.dot(teacher_sum.flatten(), student_sum.flatten())
            same_view = functools.reduce(
                torch.add,
                [
                    torch.dot(p.flatten(), q.flatten())
                    for p, q in zip(teacher_probs, student_log_probs, strict=False)
                ],
            )
            return -(all_pairs - same_view) / (num_pairs * batch_size)

    @torch.no_grad()
    def update_center(self, teacher_out: Sequence[Tensor]) -> None:
        """Update the centre in place: ``c <- m * c + (1 - m) * mean(teacher_out)``.

        The mean runs over all views and the batch (over all ranks with
        ``gather_distributed=True``). Call once per step, after the loss.

        Args:
            teacher_out: Teacher head outputs, one ``(N, K)`` tensor per view.

        Raises:
            ShapeError: If a view has the wrong shape.
        """
        self._check_views(teacher_out, name="teacher")
        total = functools.reduce(torch.add, [upcast(t).sum(dim=0) for t in teacher_out])  # (K,)
        count = torch.tensor([len(teacher_out) * teacher_out[0].shape[0]], dtype=total.dtype)
        if self.gather_distributed:
            # One collective for the sum and the count (batch sizes may differ).
            reduced = all_reduce_sum(torch.cat([total, count.to(total.device)]))  # (K + 1,)
            total, count = reduced[:-1], reduced[-1:]
        batch_center = total / count.to(total.device)  # (K,)
        self.center.mul_(self.center_momentum).add_(
            batch_center.to(self.center.dtype), alpha=1.0 - self.center_momentum
        )
