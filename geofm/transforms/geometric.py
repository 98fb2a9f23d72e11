"""Joint geometric augmentation of ``image`` and ``mask`` for any band count.

Every transform moves the image and its mask with the same per-sample
parameters. Resampling (crops, arbitrary rotations) runs as one batched
``grid_sample`` on the image's device; masks always use nearest-neighbour
sampling so labels are never blended. Flips and 90-degree rotations are
exact index permutations.

References:
    torchvision ``RandomResizedCrop`` (area/aspect sampling, 10 attempts,
    centre-crop fallback) and ``RandomRotation``; Kornia's batched
    augmentations as used by SpectralEarth; ML4Earth's training augmentation
    (H-flip, +-15 degree rotation, RandomResizedCrop).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from geofm.errors import ShapeError
from geofm.transforms.base import (
    Sample,
    Transform,
    batch_image,
    batch_mask,
    check_probability,
    check_range,
    rand,
    unbatch,
    uniform,
)

__all__ = [
    "RandomHorizontalFlip",
    "RandomResizedCrop",
    "RandomRotation",
    "RandomRotation90",
    "RandomVerticalFlip",
]

Interpolation = Literal["bilinear", "nearest", "bicubic"]


def _resample(
    image: Tensor,
    mask: Tensor | None,
    theta: Tensor,
    size: tuple[int, int],
    interpolation: Interpolation,
    fill: float | None,
    mask_fill: int,
) -> tuple[Tensor, Tensor | None]:
    """Sample ``image`` (and ``mask``, nearest) on the affine grids ``theta`` (N, 2, 3).

    ``fill=None`` replicates border pixels (crops, like ``F.interpolate``);
    otherwise samples from outside the image get ``fill`` / ``mask_fill``.
    """
    if not image.is_floating_point():
        raise TypeError(
            f"Resampling needs a floating-point image, got dtype {image.dtype}. "
            f"Convert it with .float() (or normalise it) first."
        )
    n = image.shape[0]
    grid = F.affine_grid(theta.to(image), [n, 1, *size], align_corners=False)  # (N, h, w, 2)
    padding = "border" if fill is None else "zeros"
    out = F.grid_sample(image, grid, mode=interpolation, padding_mode=padding, align_corners=False)
    if fill is not None and fill != 0.0:
        ones = torch.ones_like(image[:, :1])
        coverage = F.grid_sample(ones, grid, mode=interpolation, align_corners=False)
        out = out + fill * (1 - coverage)
    if mask is None:
        return out, None
    labels = F.grid_sample(
        mask.to(grid), grid, mode="nearest", padding_mode=padding, align_corners=False
    )
    inside = F.grid_sample(
        torch.ones_like(labels[:, :1]), grid, mode="nearest", align_corners=False
    )
    labels = torch.where(inside > 0.5, labels, torch.full_like(labels, float(mask_fill)))
    return out, labels.round().to(mask.dtype)


def _where(apply: Tensor, new: Tensor, old: Tensor) -> Tensor:
    return torch.where(apply.to(old.device).view(-1, 1, 1, 1), new, old)


def _crop_boxes(
    n: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator | None,
    attempts: int = 10,
) -> Tensor:
    """Per-sample crop boxes ``(top, left, h, w)`` as torchvision's ``RandomResizedCrop``."""
    area = height * width
    target = area * uniform(scale[0], scale[1], (n, attempts), generator)
    log_ratio = uniform(math.log(ratio[0]), math.log(ratio[1]), (n, attempts), generator)
    aspect = log_ratio.exp()
    w = (target * aspect).sqrt().round()
    h = (target / aspect).sqrt().round()
    ok = (w > 0) & (h > 0) & (w <= width) & (h <= height)
    first = ok.float().argmax(dim=1, keepdim=True)  # first valid attempt
    w, h = w.gather(1, first)[:, 0], h.gather(1, first)[:, 0]
    found = ok.any(dim=1)
    # Fallback: the largest centred crop whose aspect ratio lies in ``ratio``.
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fw, fh = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        fw, fh = round(height * ratio[1]), height
    else:
        fw, fh = width, height
    w = torch.where(found, w, torch.full_like(w, fw))
    h = torch.where(found, h, torch.full_like(h, fh))
    offsets = rand((n, 2), generator)
    top = torch.where(found, (offsets[:, 0] * (height - h + 1)).floor(), (height - h) // 2)
    left = torch.where(found, (offsets[:, 1] * (width - w + 1)).floor(), (width - w) // 2)
    return torch.stack([top, left, h, w], dim=1)  # (N, 4)


class RandomResizedCrop(Transform):
    """Crop a random area and aspect ratio per sample and resize it to ``size``.

    The crop box follows torchvision (area fraction from ``scale``, log-uniform
    aspect ratio from ``ratio``, up to 10 attempts, centre-crop fallback);
    the crop is resampled with ``grid_sample`` (no antialiasing; border
    pixels replicated, as ``F.interpolate`` does), the mask with nearest
    neighbour.

    Args:
        size: Output ``(height, width)`` or one side for square outputs.
        scale: Range of the crop area as a fraction of the image area.
        ratio: Range of the crop aspect ratio (width / height).
        interpolation: Image resampling: ``"bilinear"``, ``"bicubic"`` or ``"nearest"``.

    Shape:
        - ``image``: ``(C, H, W)`` or ``(N, C, H, W)`` float -> ``(..., C, size)``.
        - ``mask``: ``(H, W)``, ``(N, H, W)`` or ``(N, K, H, W)`` integer -> same with ``size``.

    Raises:
        ValueError: If ``scale`` or ``ratio`` is not an increasing positive pair.
        ShapeError: In ``forward``, if image and mask do not match.
        TypeError: In ``forward``, if the image is not floating point.

    Example:
        >>> import torch
        >>> crop = RandomResizedCrop(8, scale=(0.5, 1.0))
        >>> out = crop({"image": torch.rand(2, 5, 16, 16), "mask": torch.zeros(2, 16, 16).long()})
        >>> tuple(out["image"].shape), tuple(out["mask"].shape)
        ((2, 5, 8, 8), (2, 8, 8))
    """

    def __init__(
        self,
        size: int | tuple[int, int],
        *,
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        interpolation: Interpolation = "bilinear",
    ) -> None:
        super().__init__()
        if not (0 < scale[0] <= scale[1] and 0 < ratio[0] <= ratio[1]):
            raise ValueError(
                f"scale and ratio must be increasing positive pairs, got scale={scale}, "
                f"ratio={ratio}."
            )
        self.size: tuple[int, int] = (size, size) if isinstance(size, int) else (size[0], size[1])
        self.scale = scale
        self.ratio = ratio
        self.interpolation: Interpolation = interpolation

    def forward(self, sample: Sample, *, generator: torch.Generator | None = None) -> Sample:
        """Crop and resize; see the class docstring."""
        image, batched = batch_image(sample, "RandomResizedCrop")
        mask = batch_mask(sample, image, "RandomResizedCrop")
        n, _, height, width = image.shape
        top, left, h, w = _crop_boxes(n, height, width, self.scale, self.ratio, generator).T
        zeros = torch.zeros_like(w)
        theta = torch.stack(
            [
                torch.stack([w / width, zeros, (2 * left + w) / width - 1], dim=1),
                torch.stack([zeros, h / height, (2 * top + h) / height - 1], dim=1),
            ],
            dim=1,
        )  # (N, 2, 3)
        out, out_mask = _resample(image, mask, theta, self.size, self.interpolation, None, 0)
        return unbatch(sample, out, out_mask, batched)


class RandomHorizontalFlip(Transform):
    """Flip image and mask left-right, each sample with probability ``p``.

    Args:
        p: Probability of flipping a sample.

    Raises:
        ValueError: If ``p`` is not in ``[0, 1]``.

    Example:
        >>> import torch
        >>> RandomHorizontalFlip(p=1.0)({"image": torch.tensor([[[1.0, 2.0]]])})["image"]
        tensor([[[2., 1.]]])
    """

    dim = -1

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        check_probability(type(self).__name__, p)
        self.p = p

    def forward(self, sample: Sample, *, generator: torch.Generator | None = None) -> Sample:
        """Flip; see the class docstring."""
        image, batched = batch_image(sample, type(self).__name__)
        mask = batch_mask(sample, image, type(self).__name__)
        apply = rand((image.shape[0],), generator) < self.p
        image = _where(apply, image.flip(self.dim), image)
        if mask is not None:
            mask = _where(apply, mask.flip(self.dim), mask)
        return unbatch(sample, image, mask, batched)


class RandomVerticalFlip(RandomHorizontalFlip):
    """Flip image and mask top-bottom (along ``H``), each sample with probability ``p``.

    The same rule as :class:`RandomHorizontalFlip` on the other spatial axis;
    the mask moves with its image.

    Args:
        p: Chance that a sample is turned upside down.

    Raises:
        ValueError: If ``p`` lies outside ``[0, 1]``.

    Example:
        >>> from torch import tensor
        >>> out = RandomVerticalFlip(p=1.0)(
        ...     {"image": tensor([[[1.0], [2.0]]]), "mask": tensor([[0], [5]])})
        >>> out["image"].flatten().tolist(), out["mask"].flatten().tolist()
        ([2.0, 1.0], [5, 0])
    """

    dim = -2


class RandomRotation90(Transform):
    """Rotate image and mask by a random multiple of 90 degrees (uniform over 0, 90, 180, 270).

    Exact (an index permutation), any dtype. Needs square images so every
    sample of a batch keeps the same shape.

    Raises:
        ShapeError: In ``forward``, if the image is not square.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> out = RandomRotation90()({"image": torch.rand(4, 3, 8, 8)}, generator=g)
        >>> tuple(out["image"].shape)
        (4, 3, 8, 8)
    """

    def forward(self, sample: Sample, *, generator: torch.Generator | None = None) -> Sample:
        """Rotate; see the class docstring."""
        image, batched = batch_image(sample, "RandomRotation90")
        mask = batch_mask(sample, image, "RandomRotation90")
        if image.shape[-1] != image.shape[-2]:
            raise ShapeError(
                f"RandomRotation90 needs square images, got {tuple(image.shape[-2:])}. "
                f"Crop to a square first or use RandomRotation."
            )
        ks = (rand((image.shape[0],), generator) * 4).long().clamp(max=3).to(image.device)
        out_image, out_mask = image.clone(), None if mask is None else mask.clone()
        for k in (1, 2, 3):
            idx = (ks == k).nonzero()[:, 0]
            out_image[idx] = image[idx].rot90(k, dims=(-2, -1))
            if mask is not None and out_mask is not None:
                out_mask[idx] = mask[idx].rot90(k, dims=(-2, -1))
        return unbatch(sample, out_image, out_mask, batched)


class RandomRotation(Transform):
    """Rotate image and mask about the centre by a random angle, keeping the size.

    Positive angles rotate counter-clockwise (as torchvision). Pixels that
    come from outside the image get ``fill`` (image) and ``mask_fill`` (mask;
    e.g. your ``ignore_index``).

    Args:
        degrees: Angle range ``(low, high)`` in degrees, or ``d`` for ``(-d, d)``.
        p: Probability of rotating a sample.
        interpolation: Image resampling: ``"bilinear"``, ``"bicubic"`` or ``"nearest"``.
        fill: Image value outside the rotated image.
        mask_fill: Mask label outside the rotated image.

    Raises:
        ValueError: If ``p`` is not a probability or ``degrees`` is decreasing.
        TypeError: In ``forward``, if the image is not floating point.

    Example:
        >>> import torch
        >>> rot = RandomRotation(degrees=(90.0, 90.0), interpolation="nearest")
        >>> rot({"image": torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])})["image"]
        tensor([[[2., 4.],
                 [1., 3.]]])
    """

    def __init__(
        self,
        degrees: float | tuple[float, float],
        *,
        p: float = 1.0,
        interpolation: Interpolation = "bilinear",
        fill: float = 0.0,
        mask_fill: int = 0,
    ) -> None:
        super().__init__()
        check_probability("RandomRotation", p)
        self.degrees = check_range("degrees", degrees)
        self.p = p
        self.interpolation: Interpolation = interpolation
        self.fill = fill
        self.mask_fill = mask_fill

    def forward(self, sample: Sample, *, generator: torch.Generator | None = None) -> Sample:
        """Rotate; see the class docstring."""
        image, batched = batch_image(sample, "RandomRotation")
        mask = batch_mask(sample, image, "RandomRotation")
        n, _, height, width = image.shape
        angle = torch.deg2rad(uniform(*self.degrees, (n,), generator).double())
        apply = rand((n,), generator) < self.p
        cos, sin = angle.cos(), angle.sin()
        zeros = torch.zeros_like(cos)
        # Output pixel -> input pixel is a rotation by -angle in pixel units,
        # rescaled to grid_sample's [-1, 1] coordinates of each axis.
        theta = torch.stack(
            [
                torch.stack([cos, -sin * height / width, zeros], dim=1),
                torch.stack([sin * width / height, cos, zeros], dim=1),
            ],
            dim=1,
        )  # (N, 2, 3)
        out, out_mask = _resample(
            image, mask, theta, (height, width), self.interpolation, self.fill, self.mask_fill
        )
        out = _where(apply, out, image)
        if mask is not None and out_mask is not None:
            out_mask = _where(apply, out_mask, mask)
        return unbatch(sample, out, out_mask, batched)
