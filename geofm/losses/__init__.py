"""Losses: VICReg, Barlow Twins, InfoNCE (MoCo v2), NT-Xent, DINO, MAE; relative MSE.

Plain ``torch.nn.Module`` losses that depend on torch only. Each loss that
needs the global batch takes ``gather_distributed``; its docstring says which
terms are global and which are local. State updates (the MoCo queue, the DINO
centre) are explicit method calls, never a side effect of ``forward``; the
MoCo queue is :class:`geofm.ssl.MemoryBank`. :class:`RelativeMSELoss` is
SpectralEarth's regression loss.

References:
    See each module: :mod:`geofm.losses.vicreg`, :mod:`geofm.losses.barlow`,
    :mod:`geofm.losses.infonce`, :mod:`geofm.losses.ntxent`,
    :mod:`geofm.losses.dino`, :mod:`geofm.losses.mae`, :mod:`geofm.losses.regression`.

Example:
    >>> import torch
    >>> from geofm.losses import VICRegLoss
    >>> round(VICRegLoss()(torch.zeros(4, 8), torch.zeros(4, 8)).item(), 4)
    24.75
"""

from __future__ import annotations

from geofm.losses.barlow import BarlowTwinsLoss
from geofm.losses.dino import DINOLoss
from geofm.losses.infonce import InfoNCELoss
from geofm.losses.mae import MAELoss, normalize_patches
from geofm.losses.ntxent import NTXentLoss
from geofm.losses.regression import RelativeMSELoss, relative_mse_loss
from geofm.losses.vicreg import VICRegLoss, VICRegTerms, covariance_loss, variance_loss

__all__ = [
    "BarlowTwinsLoss",
    "DINOLoss",
    "InfoNCELoss",
    "MAELoss",
    "NTXentLoss",
    "RelativeMSELoss",
    "VICRegLoss",
    "VICRegTerms",
    "covariance_loss",
    "normalize_patches",
    "relative_mse_loss",
    "variance_loss",
]
