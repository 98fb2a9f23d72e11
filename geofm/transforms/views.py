"""Multi-view pipelines for self-supervised pre-training (VICReg, MoCo v2, DINO).

Each pipeline maps one (batched) sample to a list of independently augmented
views, drawing all randomness from one generator so a seed reproduces every
view. Settings follow the source projects:

- :class:`VICRegTransform`: VICReg's two asymmetric RGB views (colour
  jitter, grayscale, blur p 1.0 / 0.1, solarisation p 0.0 / 0.2).
- :class:`MoCoTransform`: SpectralEarth's MoCo-v2 views for any band count
  (crop scale 0.08-1, blur p 0.5, horizontal and vertical flips, no colour).
- :class:`DINOTransform`: SpectralEarth's DINO views: two global crops
  (scale 0.05-1) and optional local crops (48 px, scale 0.05-0.4).

References:
    Bardes et al., "VICReg", ICLR 2022 (``augmentations.py``); Chen et al.,
    "Improved Baselines with Momentum Contrastive Learning", 2020; Caron et
    al., "Emerging Properties in Self-Supervised Vision Transformers", ICCV
    2021; SpectralEarth ``configs/experiment/pretrain/{moco,dino}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, overload

import torch
from torch import Tensor, nn

from geofm.sensors import get_sensor
from geofm.transforms.base import Compose, Sample, Transform, check_sample
from geofm.transforms.geometric import RandomHorizontalFlip, RandomResizedCrop, RandomVerticalFlip
from geofm.transforms.normalize import Normalize
from geofm.transforms.photometric import (
    ColorJitter,
    RandomGaussianBlur,
    RandomGrayscale,
    RandomSolarize,
)

__all__ = ["DINOTransform", "MoCoTransform", "MultiViewTransform", "VICRegTransform"]


def blur_kernel_size(size: int) -> int:
    """SpectralEarth's blur kernel for a crop size: ``size // 10 // 2 * 2 + 1`` (13 at 128 px).

    Args:
        size: Crop side in pixels.

    Returns:
        An odd kernel size.

    Example:
        >>> blur_kernel_size(128), blur_kernel_size(224)
        (13, 23)
    """
    return size // 10 // 2 * 2 + 1


def _imagenet_normalize() -> Normalize:
    """ImageNet mean/std for RGB already in ``[0, 1]`` (the ``rgb`` sensor's statistics)."""
    rgb = get_sensor("rgb")
    assert rgb.mean is not None  # catalog invariant
    assert rgb.std is not None
    return Normalize(list(rgb.mean), list(rgb.std))


def _with_normalize(steps: list[Transform], normalize: Normalize | None) -> Compose:
    return Compose([*steps, normalize] if normalize is not None else steps)


def _spectral_view(size: int, scale: tuple[float, float], normalize: Normalize | None) -> Compose:
    """SpectralEarth's view for any band count: crop, blur p 0.5, H/V flips, [normalize]."""
    return _with_normalize(
        [
            RandomResizedCrop(size, scale=scale),
            RandomGaussianBlur(blur_kernel_size(size), sigma=(0.1, 2.0), p=0.5),
            RandomHorizontalFlip(p=0.5),
            RandomVerticalFlip(p=0.5),
        ],
        normalize,
    )


class MultiViewTransform(nn.Module):
    """Apply several transforms to the same sample and return every view.

    Args:
        views: One transform per output view.

    Shape:
        - Input: a sample with ``image`` ``(C, H, W)`` or ``(N, C, H, W)``, or
          such an image tensor.
        - Output: list of ``len(views)`` samples (or image tensors).

    Example:
        >>> import torch
        >>> from geofm.transforms import RandomHorizontalFlip
        >>> views = MultiViewTransform([RandomHorizontalFlip(p=0.0), RandomHorizontalFlip(p=1.0)])
        >>> [v["image"].tolist() for v in views({"image": torch.tensor([[[1.0, 2.0]]])})]
        [[[[1.0, 2.0]]], [[[2.0, 1.0]]]]
    """

    def __init__(self, views: Sequence[Transform]) -> None:
        super().__init__()
        if len(views) == 0:
            raise ValueError("MultiViewTransform needs at least one view transform.")
        self.views = nn.ModuleList(views)

    @overload
    def forward(
        self, sample: Tensor, *, generator: torch.Generator | None = None
    ) -> list[Tensor]: ...

    @overload
    def forward(
        self, sample: Sample, *, generator: torch.Generator | None = None
    ) -> list[Sample]: ...

    def forward(
        self, sample: Sample | Tensor, *, generator: torch.Generator | None = None
    ) -> list[Sample] | list[Tensor]:
        """Every view of ``sample`` (a sample dict or a bare image), in the order of ``views``.

        Args:
            sample: A sample dict, or an image tensor (then every view is a tensor).
            generator: Source of randomness shared by all views.

        Returns:
            One sample (or image) per view.

        Raises:
            TypeError: If ``sample`` is neither a sample dict nor a tensor.
        """
        if not isinstance(sample, Tensor):
            check_sample(sample, type(self).__name__)
        return [view(sample, generator=generator) for view in self.views]


class VICRegTransform(MultiViewTransform):
    """VICReg's two asymmetric RGB views (input RGB in ``[0, 1]``).

    Both views: RandomResizedCrop(``size``, scale 0.08-1, bicubic), H-flip
    0.5, ColorJitter(0.4, 0.4, 0.2, 0.1) p 0.8, grayscale p 0.2, Gaussian
    blur sigma 0.1-2 (p 1.0 / 0.1), solarisation (p 0.0 / 0.2), then
    ``normalize``. VICReg blurs with PIL's radius; here the kernel has
    :func:`blur_kernel_size` taps (23 at 224 px).

    Args:
        size: Output side in pixels.
        scale: Crop area range.
        normalize: Final normalisation: ``"imagenet"`` (the default, VICReg's
            ImageNet mean/std on ``[0, 1]`` RGB), a :class:`Normalize`, or
            ``None`` to skip it.

    Raises:
        ValueError: If ``normalize`` is not ``"imagenet"``, a ``Normalize`` or ``None``.
        ShapeError: In ``forward``, if the image does not have 3 bands.

    Example:
        >>> import torch
        >>> views = VICRegTransform(size=16)({"image": torch.rand(2, 3, 32, 32)})
        >>> [tuple(v["image"].shape) for v in views]
        [(2, 3, 16, 16), (2, 3, 16, 16)]
        >>> any(isinstance(m, Normalize) for m in VICRegTransform(normalize=None).modules())
        False
    """

    def __init__(
        self,
        size: int = 224,
        *,
        scale: tuple[float, float] = (0.08, 1.0),
        normalize: Normalize | Literal["imagenet"] | None = "imagenet",
    ) -> None:
        if isinstance(normalize, str) and normalize == "imagenet":
            norm: Normalize | None = _imagenet_normalize()
        elif normalize is None or isinstance(normalize, Normalize):
            norm = normalize
        else:
            raise ValueError(
                f"VICRegTransform got normalize={normalize!r}; expected 'imagenet' (ImageNet "
                "mean/std), a geofm.transforms.Normalize, or None to skip normalisation."
            )
        kernel = blur_kernel_size(size)

        def view(blur_p: float, solarize_p: float) -> Compose:
            return _with_normalize(
                [
                    RandomResizedCrop(size, scale=scale, interpolation="bicubic"),
                    RandomHorizontalFlip(p=0.5),
                    ColorJitter(0.4, 0.4, 0.2, 0.1, p=0.8),
                    RandomGrayscale(p=0.2),
                    RandomGaussianBlur(kernel, sigma=(0.1, 2.0), p=blur_p),
                    RandomSolarize(0.5, p=solarize_p),
                ],
                norm,
            )

        super().__init__([view(1.0, 0.0), view(0.1, 0.2)])


class MoCoTransform(MultiViewTransform):
    """SpectralEarth's MoCo-v2 views for any band count (no colour operations).

    Both views: RandomResizedCrop(``size``, scale 0.08-1), Gaussian blur
    (:func:`blur_kernel_size` taps, sigma 0.1-2, p 0.5), H-flip, V-flip, then
    ``normalize`` if given (SpectralEarth standardises per band).

    Args:
        size: Output side in pixels (SpectralEarth: 128).
        scale: Crop area range.
        normalize: Final normalisation, or ``None`` (the default) to skip it.

    Example:
        >>> import torch
        >>> views = MoCoTransform(size=16)({"image": torch.rand(2, 10, 32, 32)})
        >>> [tuple(v["image"].shape) for v in views]
        [(2, 10, 16, 16), (2, 10, 16, 16)]
    """

    def __init__(
        self,
        size: int = 128,
        *,
        scale: tuple[float, float] = (0.08, 1.0),
        normalize: Normalize | None = None,
    ) -> None:
        super().__init__([_spectral_view(size, scale, normalize) for _ in range(2)])


class DINOTransform(MultiViewTransform):
    """SpectralEarth's DINO views: 2 global crops plus ``num_local_views`` local crops.

    Global views: RandomResizedCrop(``global_size``, ``global_scale``), blur
    p 0.5, H/V flips; local views the same at ``local_size`` and
    ``local_scale``. SpectralEarth trains with multi-crop off
    (``num_local_views = 0``). The first two returned views are the global ones.

    Args:
        global_size: Side of the global crops (SpectralEarth: 128).
        local_size: Side of the local crops (SpectralEarth: 48).
        global_scale: Area range of global crops.
        local_scale: Area range of local crops.
        num_local_views: Number of local crops.
        normalize: Final normalisation, or ``None`` (the default) to skip it.

    Raises:
        ValueError: If ``num_local_views`` is negative.

    Example:
        >>> import torch
        >>> dino = DINOTransform(global_size=16, local_size=8, num_local_views=2)
        >>> [v["image"].shape[-1] for v in dino({"image": torch.rand(1, 4, 32, 32)})]
        [16, 16, 8, 8]
    """

    def __init__(
        self,
        global_size: int = 128,
        local_size: int = 48,
        *,
        global_scale: tuple[float, float] = (0.05, 1.0),
        local_scale: tuple[float, float] = (0.05, 0.4),
        num_local_views: int = 0,
        normalize: Normalize | None = None,
    ) -> None:
        if num_local_views < 0:
            raise ValueError(f"num_local_views must be >= 0, got {num_local_views}.")
        views = [_spectral_view(global_size, global_scale, normalize) for _ in range(2)]
        views += [
            _spectral_view(local_size, local_scale, normalize) for _ in range(num_local_views)
        ]
        super().__init__(views)
