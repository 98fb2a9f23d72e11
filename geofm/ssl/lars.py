"""LARS optimiser as used by the VICReg reference (SGD momentum on trust-ratio-scaled updates).

References:
    - You, Gitman, Ginsburg. "Large Batch Training of Convolutional Networks."
      2017. https://arxiv.org/abs/1708.03888
    - VICReg reference code (``LARS``, ``exclude_bias_and_norm``):
      https://github.com/facebookresearch/vicreg/blob/main/main_vicreg.py
    - lightly's ``lightly.utils.lars.LARS`` (Lightning Bolts' variant, see
      :class:`LARS` for how the two differ).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

__all__ = ["LARS"]


class LARS(torch.optim.Optimizer):
    """LARS as in the VICReg reference: SGD with momentum on trust-ratio-scaled updates.

    For every parameter ``p`` with gradient ``g`` (per step, per parameter group)::

        u  = g + weight_decay * p
        q  = eta * ||p|| / ||u||   (q = 1 when ||p|| = 0 or ||u|| = 0)
        mu = momentum * mu + q * u (mu starts at 0)
        p  = p - lr * mu

    With ``exclude_bias_and_norm=True`` (the reference's filter) 1-D
    parameters (biases, normalisation weights) get neither weight decay nor
    the trust ratio: ``u = g`` and ``q = 1``.

    lightly's ``LARS(params, lr, momentum, weight_decay, trust_coefficient=eta)``
    differs in two ways: its trust ratio is ``eta * ||p|| / (||g|| + weight_decay
    * ||p|| + eps)`` (an upper bound of ``||u||`` in the denominator) and it
    excludes the parameters whose group has ``weight_decay = 0`` instead of the
    1-D ones. Both give the same steps when ``g`` is a positive multiple of
    ``p`` (and ``eps = 0``) and the 1-D parameters sit in a lightly group with
    ``weight_decay = 0``.

    Args:
        params: Parameters or parameter-group dicts, as for any optimiser.
        lr: Learning rate (VICReg: ``base_lr * batch_size / 256``, base 0.2-0.3).
        weight_decay: L2 penalty added to the update (VICReg: 1e-6).
        momentum: Momentum factor, in ``[0, 1)``.
        eta: Trust coefficient (0.001).
        exclude_bias_and_norm: Skip weight decay and the trust ratio for 1-D parameters.

    Raises:
        ValueError: If ``lr`` or ``weight_decay`` is negative, ``momentum`` is
            outside ``[0, 1)`` or ``eta`` is not positive.

    Example:
        >>> import torch
        >>> layer = torch.nn.Linear(4, 2)
        >>> optimizer = LARS(layer.parameters(), lr=0.1, weight_decay=1e-6)
        >>> layer(torch.randn(3, 4)).pow(2).sum().backward()
        >>> before = layer.weight.detach().clone()
        >>> optimizer.step()
        >>> # first step: ||delta W|| = lr * eta * ||W|| (trust ratio, mu starts at 0)
        >>> round(((layer.weight - before).norm() / before.norm()).item(), 6)
        0.0001
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        *,
        lr: float,
        weight_decay: float = 0.0,
        momentum: float = 0.9,
        eta: float = 0.001,
        exclude_bias_and_norm: bool = True,
    ) -> None:
        problems = []
        if lr < 0:
            problems.append(f"lr={lr} (expected >= 0)")
        if weight_decay < 0:
            problems.append(f"weight_decay={weight_decay} (expected >= 0)")
        if not 0 <= momentum < 1:
            problems.append(f"momentum={momentum} (expected a value in [0, 1))")
        if eta <= 0:
            problems.append(f"eta={eta} (expected > 0)")
        if problems:
            raise ValueError(
                f"LARS got {', '.join(problems)}. The VICReg reference uses lr=0.2 * batch / 256, "
                "weight_decay=1e-6, momentum=0.9, eta=0.001."
            )
        defaults = {
            "lr": lr,
            "weight_decay": weight_decay,
            "momentum": momentum,
            "eta": eta,
            "exclude_bias_and_norm": exclude_bias_and_norm,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Apply one LARS update to every parameter that has a gradient.

        Args:
            closure: Optional function that re-evaluates the model and returns the loss.

        Returns:
            The closure's loss, or ``None`` without a closure.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                update = p.grad
                if p.ndim > 1 or not group["exclude_bias_and_norm"]:
                    update = update.add(p, alpha=group["weight_decay"])
                    p_norm, u_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(update)
                    ratio = group["eta"] * p_norm / u_norm
                    update = update * torch.where((p_norm > 0) & (u_norm > 0), ratio, 1.0)
                state = self.state[p]
                if "mu" not in state:
                    state["mu"] = torch.zeros_like(p)
                mu = state["mu"]
                mu.mul_(group["momentum"]).add_(update)
                p.add_(mu, alpha=-group["lr"])
        return loss
