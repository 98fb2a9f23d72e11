"""Batch normalisation over the global batch of all ranks, on any device (CPU included).

``torch.nn.SyncBatchNorm`` needs CUDA. :class:`GlobalBatchNorm` computes the
same training statistics with two sums over ranks (the per-channel sums and
the count, then the centred sums of squares) through
:func:`geofm._dist.all_reduce_sum`, whose backward sums gradients over ranks,
so 2 ranks with ``N`` samples each train like one process with ``2N``.
VICReg, SimCLR and Barlow Twins use synchronised BatchNorm in the projector.

References:
    - ``torch.nn.SyncBatchNorm`` and its ``convert_sync_batchnorm``.
    - VICReg reference code (``nn.SyncBatchNorm.convert_sync_batchnorm``):
      https://github.com/facebookresearch/vicreg/blob/main/main_vicreg.py
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.lazy import LazyModuleMixin

from geofm._dist import all_reduce_sum
from geofm.errors import ShapeError

__all__ = ["GlobalBatchNorm", "convert_to_global_batchnorm"]


class GlobalBatchNorm(_BatchNorm):
    """BatchNorm whose training statistics cover the batches of every rank.

    Same arguments, parameters, buffers and state-dict keys as
    ``nn.BatchNorm1d/2d/3d`` (it accepts ``(N, C)``, ``(N, C, L)``, ``(N, C, H, W)``
    and ``(N, C, D, H, W)``). In training mode inside an initialised process
    group the mean and biased variance are those of the concatenated batch of
    all ranks (ranks may hold different batch sizes) and the running
    statistics are updated from them, as ``nn.SyncBatchNorm`` does; outside a
    process group, or in eval mode, it is plain BatchNorm. Statistics are
    computed in float32 or wider; the output has the input's dtype.

    Args:
        num_features: Number of channels ``C``.
        eps: Added to the variance.
        momentum: Running-statistics factor, or ``None`` for a cumulative average.
        affine: Learn a per-channel scale and shift.
        track_running_stats: Keep running mean/variance for eval mode.

    Shape:
        - Input: ``(N, C, *)``.
        - Output: same as the input.

    Raises:
        ShapeError: In ``forward``, if the input has fewer than 2 dimensions.

    Example:
        >>> import torch
        >>> bn = GlobalBatchNorm(3)  # no process group: plain BatchNorm
        >>> x = torch.randn(4, 3, 2, 2)
        >>> torch.allclose(bn(x), torch.nn.BatchNorm2d(3)(x))
        True
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats)

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ShapeError(
                f"GlobalBatchNorm expects (N, C, *) input with C={self.num_features}, got shape "
                f"{tuple(input.shape)}. Add the batch dimension."
            )

    def forward(self, input: Tensor) -> Tensor:
        """Normalise ``input`` with the statistics of the global batch (training, distributed)."""
        self._check_input_dim(input)
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(input)
        channels = input.shape[1]
        dims = [0, *range(2, input.dim())]
        shape = [1, channels] + [1] * (input.dim() - 2)
        x = input.to(torch.promote_types(input.dtype, torch.float32))
        local_count = torch.full((1,), input.numel() / channels, dtype=x.dtype, device=x.device)
        # Two passes (mean, then centred squares): E[x^2] - mean^2 loses precision.
        sums = all_reduce_sum(torch.cat([x.sum(dims), local_count]))  # (C + 1,)
        count = sums[-1]
        mean = sums[:channels] / count  # (C,)
        centred = x - mean.view(shape)
        var = all_reduce_sum((centred * centred).sum(dims)) / count  # (C,) biased
        if self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach() * count / (count - 1))
        out = centred * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out.to(input.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: Tensor, unbiased_var: Tensor) -> None:
        """``nn.BatchNorm``'s update: exponential (``momentum``) or cumulative (``None``)."""
        if self.running_mean is None or self.running_var is None:
            return
        factor = 0.0 if self.momentum is None else self.momentum
        if self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked)
        self.running_mean.lerp_(mean.to(self.running_mean), factor)
        self.running_var.lerp_(unbiased_var.to(self.running_var), factor)


def convert_to_global_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm in ``module`` (itself included) by :class:`GlobalBatchNorm`.

    Like ``nn.SyncBatchNorm.convert_sync_batchnorm``: the new layers share the
    old layers' parameters and buffers (so an optimiser built before the
    conversion still updates them) and keep the train/eval mode. Converts
    ``nn.BatchNorm1d/2d/3d`` and ``nn.SyncBatchNorm``; other modules are
    walked recursively and changed in place.

    Args:
        module: A model, or a single BatchNorm layer.

    Returns:
        ``module`` with its BatchNorm layers replaced, or the new layer if
        ``module`` itself is a BatchNorm.

    Raises:
        ValueError: If a lazy BatchNorm has not been initialised yet (run one
            forward pass first).

    Example:
        >>> from torch import nn
        >>> net = convert_to_global_batchnorm(nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)))
        >>> type(net[1]).__name__, sorted(net[1].state_dict())
        ('GlobalBatchNorm', ['bias', 'num_batches_tracked', 'running_mean', 'running_var',
                             'weight'])
    """
    if isinstance(module, _BatchNorm) and not isinstance(module, GlobalBatchNorm):
        if isinstance(module, LazyModuleMixin) and module.has_uninitialized_params():
            raise ValueError(
                f"convert_to_global_batchnorm got an uninitialised {type(module).__name__} "
                "(its number of channels is not known yet). Run one forward pass before "
                "converting, or use nn.BatchNorm*d(num_features)."
            )
        converted = GlobalBatchNorm(
            module.num_features,
            eps=module.eps,
            momentum=module.momentum,
            affine=module.affine,
            track_running_stats=module.track_running_stats,
        )
        if module.affine:
            converted.weight = module.weight
            converted.bias = module.bias
        converted.running_mean = module.running_mean
        converted.running_var = module.running_var
        converted.num_batches_tracked = module.num_batches_tracked
        converted.train(module.training)
        return converted
    for name, child in module.named_children():
        new = convert_to_global_batchnorm(child)
        if new is not child:
            setattr(module, name, new)
    return module
