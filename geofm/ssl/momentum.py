"""Momentum (EMA) updates and the cosine schedule of the momentum coefficient.

References:
    - MoCo (momentum key encoder): https://arxiv.org/abs/1911.05722
    - BYOL / DINO (teacher EMA, cosine momentum schedule 0.996 -> 1):
      https://arxiv.org/abs/2006.07733, https://arxiv.org/abs/2104.14294
    - lightly (``update_momentum``, ``cosine_schedule``): https://github.com/lightly-ai/lightly
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from geofm.errors import ShapeError

__all__ = ["cosine_schedule", "update_momentum"]


def update_momentum(model: nn.Module, ema_model: nn.Module, *, momentum: float) -> None:
    """Update ``ema_model``'s parameters in place: ``ema = m * ema + (1 - m) * model``.

    The exponential moving average (EMA) of MoCo's key encoder and DINO's
    teacher. Only parameters are averaged; buffers (BatchNorm statistics) are
    left alone, as in MoCo, DINO and lightly.

    Args:
        model: The online (student / query) model.
        ema_model: The momentum (teacher / key) model, same architecture.
        momentum: ``m`` in ``[0, 1]`` (MoCo 0.999; DINO 0.996 to 1 via
            :func:`cosine_schedule`).

    Raises:
        ValueError: If ``momentum`` is not in ``[0, 1]``.
        ShapeError: If the two models' parameters differ in number or shape.

    Example:
        >>> student, teacher = nn.Linear(2, 2), nn.Linear(2, 2)
        >>> update_momentum(student, teacher, momentum=0.0)
        >>> torch.equal(student.weight, teacher.weight)
        True
    """
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(
            f"update_momentum got momentum={momentum}; expected a value in [0, 1] "
            "(MoCo uses 0.999)."
        )
    params: list[Tensor] = list(model.parameters())
    ema_params: list[Tensor] = list(ema_model.parameters())
    shapes = [tuple(p.shape) for p in params]
    ema_shapes = [tuple(p.shape) for p in ema_params]
    if shapes != ema_shapes:
        raise ShapeError(
            f"update_momentum needs two models with the same parameters, got {len(params)} "
            f"parameters in model and {len(ema_params)} in ema_model (first shapes "
            f"{shapes[:3]} vs {ema_shapes[:3]}). Build ema_model with copy.deepcopy(model)."
        )
    with torch.no_grad():
        torch._foreach_lerp_(ema_params, params, 1.0 - momentum)


def cosine_schedule(step: int, *, max_steps: int, start_value: float, end_value: float) -> float:
    """Return ``start_value`` annealed to ``end_value`` along half a cosine.

    ``end - (end - start) * (1 + cos(pi * step / (max_steps - 1))) / 2``;
    steps ``>= max_steps - 1`` return ``end_value`` (lightly's convention, so
    SpectralEarth's DINO teacher momentum reaches 1.0 at epoch 9 of 10).

    Args:
        step: Current step (or epoch), ``>= 0``.
        max_steps: Length of the schedule, ``>= 1``.
        start_value: Value at step 0.
        end_value: Value from step ``max_steps - 1`` on.

    Returns:
        The scheduled value.

    Raises:
        ValueError: If ``step < 0`` or ``max_steps < 1``.

    Example:
        >>> [round(cosine_schedule(s, max_steps=3, start_value=0.0, end_value=1.0), 2)
        ...  for s in range(4)]
        [0.0, 0.5, 1.0, 1.0]
    """
    if step < 0 or max_steps < 1:
        raise ValueError(
            f"cosine_schedule got step={step}, max_steps={max_steps}; expected step >= 0 "
            "and max_steps >= 1."
        )
    if step >= max_steps - 1:
        return end_value
    cosine = (1.0 + math.cos(math.pi * step / (max_steps - 1))) / 2
    return end_value - (end_value - start_value) * cosine
