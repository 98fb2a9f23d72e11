"""Self-supervised learning utilities: EMA, schedules, masking, heads, MAE decoder, LARS, global BN.

Building blocks for the SSL pipelines of SpectralEarth (MoCo v2, DINO, MAE)
and VICReg, to combine with :mod:`geofm.losses`. Everything is a plain
function or ``nn.Module``; the MAE decoder is built from timm ``Block``
modules and works with the tokens of any timm-style ViT.

References:
    - VICReg (projector "8192-8192-8192"): https://arxiv.org/abs/2105.04906,
      https://github.com/facebookresearch/vicreg
    - MoCo v2 (head, momentum encoder): https://arxiv.org/abs/2003.04297
    - SimCLR (projection head): https://arxiv.org/abs/2002.05709
    - DINO (head, teacher EMA schedule): https://arxiv.org/abs/2104.14294,
      https://github.com/facebookresearch/dino
    - MAE (masking, decoder, sin-cos position embedding): https://arxiv.org/abs/2111.06377,
      https://github.com/facebookresearch/mae
    - SpectralEarth settings: https://github.com/AABNassim/spectral_earth
    - lightly (same components): https://github.com/lightly-ai/lightly
    - LARS: https://arxiv.org/abs/1708.03888 (the VICReg reference's variant)

Modules: :mod:`~geofm.ssl.momentum` (``update_momentum``, ``cosine_schedule``),
:mod:`~geofm.ssl.masking` (``patchify``, ``unpatchify``, ``random_masking``,
``sincos_2d_position_embedding``), :mod:`~geofm.ssl.heads` (projection heads),
:mod:`~geofm.ssl.mae_decoder` (``MAEDecoder``), :mod:`~geofm.ssl.lars` (``LARS``),
:mod:`~geofm.ssl.batchnorm` (``GlobalBatchNorm``, ``convert_to_global_batchnorm``).
``MemoryBank`` (MoCo's queue) is defined next to ``InfoNCELoss`` and imported
from here: ``from geofm.ssl import MemoryBank``.

Example:
    >>> import torch
    >>> from geofm.ssl import MoCoProjectionHead, cosine_schedule
    >>> head = MoCoProjectionHead(input_dim=16, hidden_dim=32, output_dim=8)
    >>> head(torch.randn(4, 16)).shape, cosine_schedule(0, max_steps=10, start_value=0.996,
    ...                                                 end_value=1.0)
    (torch.Size([4, 8]), 0.996)
"""

from __future__ import annotations

from geofm.losses.infonce import MemoryBank
from geofm.ssl.batchnorm import GlobalBatchNorm, convert_to_global_batchnorm
from geofm.ssl.heads import (
    DINOProjectionHead,
    MoCoProjectionHead,
    SimCLRProjectionHead,
    VICRegProjectionHead,
)
from geofm.ssl.lars import LARS
from geofm.ssl.mae_decoder import MAEDecoder
from geofm.ssl.masking import (
    RandomMasking,
    patchify,
    random_masking,
    sincos_2d_position_embedding,
    unpatchify,
)
from geofm.ssl.momentum import cosine_schedule, update_momentum

__all__ = [
    "LARS",
    "DINOProjectionHead",
    "GlobalBatchNorm",
    "MAEDecoder",
    "MemoryBank",
    "MoCoProjectionHead",
    "RandomMasking",
    "SimCLRProjectionHead",
    "VICRegProjectionHead",
    "convert_to_global_batchnorm",
    "cosine_schedule",
    "patchify",
    "random_masking",
    "sincos_2d_position_embedding",
    "unpatchify",
    "update_momentum",
]
