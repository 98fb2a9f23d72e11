"""Sample transforms in plain torch: normalisation, joint image+mask and photometric augmentation.

Samples are dicts with ``"image"`` ``(C, H, W)`` or ``(N, C, H, W)`` and an
optional integer ``"mask"`` (torchgeo's convention). Transforms run batched
on the image's device, work for any band count (the RGB-only colour
operations say so and raise otherwise), and take ``generator=`` in
``forward`` so a seed reproduces every draw.

Example:
    >>> import torch
    >>> from geofm.transforms import Compose, Normalize, RandomHorizontalFlip, RandomResizedCrop
    >>> aug = Compose([
    ...     RandomResizedCrop(32, scale=(0.5, 1.0)),
    ...     RandomHorizontalFlip(),
    ...     Normalize.from_sensor("enmap_spectral_earth"),
    ... ])
    >>> sample = {"image": 1000 * torch.rand(4, 202, 64, 64), "mask": torch.zeros(4, 64, 64).long()}
    >>> out = aug(sample, generator=torch.Generator().manual_seed(0))
    >>> tuple(out["image"].shape), tuple(out["mask"].shape)
    ((4, 202, 32, 32), (4, 32, 32))
"""

from __future__ import annotations

from geofm.transforms.base import Compose, Sample, Transform
from geofm.transforms.geometric import (
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomRotation,
    RandomRotation90,
    RandomVerticalFlip,
)
from geofm.transforms.normalize import Normalize
from geofm.transforms.photometric import (
    ColorJitter,
    RandomBandDropout,
    RandomBrightnessContrast,
    RandomGaussianBlur,
    RandomGrayscale,
    RandomSolarize,
)
from geofm.transforms.views import (
    DINOTransform,
    MoCoTransform,
    MultiViewTransform,
    VICRegTransform,
    blur_kernel_size,
)

__all__ = [
    "ColorJitter",
    "Compose",
    "DINOTransform",
    "MoCoTransform",
    "MultiViewTransform",
    "Normalize",
    "RandomBandDropout",
    "RandomBrightnessContrast",
    "RandomGaussianBlur",
    "RandomGrayscale",
    "RandomHorizontalFlip",
    "RandomResizedCrop",
    "RandomRotation",
    "RandomRotation90",
    "RandomSolarize",
    "RandomVerticalFlip",
    "Sample",
    "Transform",
    "VICRegTransform",
    "blur_kernel_size",
]
