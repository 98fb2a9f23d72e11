"""Photometric augmentation of ``image`` only (masks pass through unchanged).

Valid for any band count: :class:`RandomBrightnessContrast` (per band),
:class:`RandomGaussianBlur`, :class:`RandomBandDropout` and
:class:`RandomSolarize`. Defined for RGB only (they mix the three colour
channels and raise on other band counts): :class:`ColorJitter` and
:class:`RandomGrayscale`. Colour operations expect values in ``[0, 1]``
(apply them before :class:`~geofm.transforms.Normalize`).

References:
    torchvision ``ColorJitter``, ``RandomGrayscale``, ``GaussianBlur`` and
    ``RandomSolarize`` (the factor conventions and luma weights 0.2989,
    0.587, 0.114); VICReg's augmentations (https://github.com/facebookresearch/vicreg,
    ``augmentations.py``); SpectralEarth's Kornia Gaussian blur (no colour
    jitter, "to avoid distorting the spectrum").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from geofm.errors import ShapeError
from geofm.transforms.base import (
    Sample,
    Transform,
    batch_image,
    check_probability,
    check_range,
    rand,
    uniform,
)

__all__ = [
    "ColorJitter",
    "RandomBandDropout",
    "RandomBrightnessContrast",
    "RandomGaussianBlur",
    "RandomGrayscale",
    "RandomSolarize",
]

_LUMA = (0.2989, 0.587, 0.114)


def _float_image(sample: Sample, name: str) -> tuple[Tensor, bool]:
    image, batched = batch_image(sample, name)
    if not image.is_floating_point():
        raise TypeError(
            f"{name} needs a floating-point image, got dtype {image.dtype}. "
            f"Convert it with .float() / 255 (or similar) first."
        )
    return image, batched


def _rgb_image(sample: Sample, name: str) -> tuple[Tensor, bool]:
    image, batched = _float_image(sample, name)
    if image.shape[1] != 3:
        raise ShapeError(
            f"{name} is defined for RGB images (3 bands), got {image.shape[1]} bands. "
            f"For other band counts use RandomBrightnessContrast, RandomGaussianBlur or "
            f"RandomBandDropout."
        )
    return image, batched


def _finish(sample: Sample, image: Tensor, batched: bool) -> Sample:
    return {**sample, "image": image if batched else image[0]}


def _where(apply: Tensor, new: Tensor, old: Tensor) -> Tensor:
    return torch.where(apply.to(old.device).view(-1, 1, 1, 1), new, old)


def _gray(image: Tensor) -> Tensor:
    r, g, b = image.unbind(dim=1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)  # (N, 1, H, W)


def _blend(image: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    f = factor.view(-1, 1, 1, 1)
    return (f * image + (1 - f) * other).clamp(0, 1)


def _rgb_to_hsv(image: Tensor) -> Tensor:
    r, g, b = image.unbind(dim=1)
    value, _ = image.max(dim=1)
    delta = value - image.min(dim=1).values
    saturation = torch.where(value > 0, delta / value.clamp(min=1e-12), torch.zeros_like(value))
    safe = delta.clamp(min=1e-12)
    hue = torch.where(
        value == r,
        ((g - b) / safe) % 6,
        torch.where(value == g, (b - r) / safe + 2, (r - g) / safe + 4),
    )
    hue = torch.where(delta > 0, hue / 6 % 1.0, torch.zeros_like(hue))
    return torch.stack([hue, saturation, value], dim=1)  # (N, 3, H, W)


def _hsv_to_rgb(hsv: Tensor) -> Tensor:
    h, s, v = hsv.unbind(dim=1)
    sector = torch.floor(h * 6)
    frac = h * 6 - sector
    sector = sector.long() % 6
    p, q, t = v * (1 - s), v * (1 - s * frac), v * (1 - s * (1 - frac))
    table = torch.stack(
        [
            torch.stack([v, q, p, p, t, v], dim=1),  # red per sector
            torch.stack([t, v, v, q, p, p], dim=1),  # green per sector
            torch.stack([p, p, t, v, v, q], dim=1),  # blue per sector
        ],
        dim=1,
    )  # (N, 3, 6, H, W)
    index = sector[:, None, None].expand(-1, 3, 1, -1, -1)  # (N, 3, 1, H, W)
    return table.gather(2, index)[:, :, 0]  # (N, 3, H, W)


def _factor_range(name: str, value: float | tuple[float, float]) -> tuple[float, float]:
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{name} must be non-negative, got {value}.")
        return max(0.0, 1.0 - value), 1.0 + value
    low, high = check_range(name, value)
    if low < 0:
        raise ValueError(f"{name} factors must be non-negative, got ({low}, {high}).")
    return low, high


class _PerSampleAugment(Transform):
    """Image-only augmentation applied to each sample with probability ``p``.

    Subclasses implement ``_augment`` (the changed image for every sample);
    :meth:`forward` draws its parameters first, then which samples keep the
    change, so every subclass consumes the generator in the same order.
    """

    rgb_only = False  # needs a 3-band (RGB) image
    float_only = True  # needs a floating-point image

    def __init__(self, p: float) -> None:
        super().__init__()
        check_probability(type(self).__name__, p)
        self.p = p

    def _augment(self, image: Tensor, generator: torch.Generator | None) -> Tensor:
        """The augmented batch ``(N, C, H, W)`` for every sample (before the ``p`` draw)."""
        raise NotImplementedError(f"{type(self).__name__} must implement _augment.")

    def forward(self, sample: Sample, *, generator: torch.Generator | None = None) -> Sample:
        """Augment ``sample["image"]``; see the class docstring."""
        name = type(self).__name__
        if self.rgb_only:
            image, batched = _rgb_image(sample, name)
        elif self.float_only:
            image, batched = _float_image(sample, name)
        else:
            image, batched = batch_image(sample, name)
        out = self._augment(image, generator)
        apply = rand((image.shape[0],), generator) < self.p
        return _finish(sample, _where(apply, out, image), batched)


class RandomBrightnessContrast(_PerSampleAugment):
    """Per-band random brightness offset and contrast factor, for any band count.

    ``x' = (x - mean_b) * contrast_b + mean_b + brightness_b`` where
    ``mean_b`` is the band's spatial mean in that sample, ``brightness_b`` is
    drawn from ``brightness`` (in the image's units, so use it on normalised
    data) and ``contrast_b`` from ``contrast``. Values are not clamped.

    Args:
        brightness: Offset range ``(low, high)`` or ``b`` for ``(-b, b)``.
        contrast: Factor range ``(low, high)`` or ``c`` for ``(1 - c, 1 + c)``.
        p: Probability of changing a sample.
        per_band: Draw separate values per band (``False``: one per sample).

    Raises:
        ValueError: On a bad range or probability.
        TypeError: In ``forward``, if the image is not floating point.

    Example:
        >>> import torch
        >>> aug = RandomBrightnessContrast(brightness=(0.5, 0.5), contrast=(2.0, 2.0))
        >>> aug({"image": torch.tensor([[[0.0, 1.0]]])})["image"]
        tensor([[[0., 2.]]])
    """

    def __init__(
        self,
        *,
        brightness: float | tuple[float, float] = 0.1,
        contrast: float | tuple[float, float] = 0.1,
        p: float = 1.0,
        per_band: bool = True,
    ) -> None:
        super().__init__(p)
        self.brightness = check_range("brightness", brightness)
        self.contrast = _factor_range("contrast", contrast)
        self.per_band = per_band

    def _augment(self, image: Tensor, generator: torch.Generator | None) -> Tensor:
        """Shift and stretch every band around its mean; see the class docstring."""
        n, c = image.shape[:2]
        shape = (n, c if self.per_band else 1, 1, 1)
        offset = uniform(*self.brightness, shape, generator).to(image)
        factor = uniform(*self.contrast, shape, generator).to(image)
        mean = image.mean(dim=(2, 3), keepdim=True)  # (N, C, 1, 1)
        return (image - mean) * factor + mean + offset


class RandomGaussianBlur(_PerSampleAugment):
    """Gaussian blur with a random sigma per sample, for any band count.

    Separable kernel of ``kernel_size`` taps, ``exp(-x^2 / (2 sigma^2))``
    normalised, reflect padding (torchvision's ``gaussian_blur``).
    SpectralEarth uses ``kernel_size = size // 10 // 2 * 2 + 1`` (13 at 128 px),
    ``sigma`` in ``[0.1, 2]`` and ``p = 0.5``.

    Args:
        kernel_size: Odd, positive number of taps.
        sigma: Range of the standard deviation in pixels.
        p: Probability of blurring a sample.

    Raises:
        ValueError: If ``kernel_size`` is not odd and positive, ``sigma`` is
            not positive, or ``p`` is not a probability.
        TypeError: In ``forward``, if the image is not floating point.

    Example:
        >>> import torch
        >>> blur = RandomGaussianBlur(kernel_size=3, sigma=(1.0, 1.0), p=1.0)
        >>> float(blur({"image": torch.ones(2, 4, 5, 5)})["image"].mean())
        1.0
    """

    def __init__(
        self,
        kernel_size: int,
        *,
        sigma: tuple[float, float] = (0.1, 2.0),
        p: float = 0.5,
    ) -> None:
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}.")
        if not 0 < sigma[0] <= sigma[1]:
            raise ValueError(f"sigma must be an increasing positive pair, got {sigma}.")
        super().__init__(p)
        self.kernel_size = kernel_size
        self.sigma = sigma

    def _augment(self, image: Tensor, generator: torch.Generator | None) -> Tensor:
        """Blur every sample with its own sigma; see the class docstring."""
        n, c, h, w = image.shape
        sigma = uniform(*self.sigma, (n,), generator).to(image)
        k, pad = self.kernel_size, self.kernel_size // 2
        taps = torch.linspace(-pad, pad, k, device=image.device, dtype=image.dtype)
        kernel = torch.exp(-0.5 * (taps / sigma[:, None]) ** 2)  # (N, k)
        kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # (N*C, k)
        x = F.pad(image, (pad, pad, pad, pad), mode="reflect")
        x = x.reshape(1, n * c, h + 2 * pad, w + 2 * pad)  # (1, N*C, H', W')
        x = F.conv2d(x, kernel[:, None, None, :], groups=n * c)  # (1, N*C, H', W)
        x = F.conv2d(x, kernel[:, None, :, None], groups=n * c)  # (1, N*C, H, W)
        return x.reshape(n, c, h, w)  # (N, C, H, W)


class RandomBandDropout(_PerSampleAugment):
    """Replace whole bands with ``fill`` at random; at least one band is always kept.

    Args:
        drop_prob: Probability of dropping each band of a sample.
        p: Probability of applying band dropout to a sample.
        fill: Value written into dropped bands (0 is the mean of normalised data).

    Raises:
        ValueError: If a probability is outside ``[0, 1]``.

    Example:
        >>> import torch
        >>> out = RandomBandDropout(drop_prob=1.0)({"image": torch.ones(1, 4, 2, 2)})
        >>> int((out["image"].sum(dim=(2, 3)) > 0).sum())  # exactly one band survives
        1
    """

    float_only = False  # any dtype: bands are replaced, not computed

    def __init__(self, drop_prob: float = 0.1, *, p: float = 1.0, fill: float = 0.0) -> None:
        super().__init__(p)
        check_probability("RandomBandDropout", drop_prob)
        self.drop_prob = drop_prob
        self.fill = fill

    def _augment(self, image: Tensor, generator: torch.Generator | None) -> Tensor:
        """Drop bands of every sample, keeping its highest-scoring one; see the class docstring."""
        n, c = image.shape[:2]
        scores = rand((n, c), generator)
        drop = scores < self.drop_prob
        survivor = torch.nn.functional.one_hot(scores.argmax(dim=1), c).bool()  # (N, C)
        drop = drop & ~(drop.all(dim=1, keepdim=True) & survivor)
        drop = drop.to(image.device)[:, :, None, None]  # (N, C, 1, 1)
        return torch.where(drop, torch.full_like(image, self.fill), image)


class RandomSolarize(_PerSampleAugment):
    """Invert values at or above ``threshold`` (``x -> 1 - x``), for data in ``[0, 1]``.

    Args:
        threshold: Values ``>= threshold`` are inverted.
        p: Probability of solarising a sample.

    Raises:
        ValueError: If ``p`` is not a probability.
        TypeError: In ``forward``, if the image is not floating point.

    Example:
        >>> import torch
        >>> RandomSolarize(p=1.0)({"image": torch.tensor([[[0.2, 0.9]]])})["image"]
        tensor([[[0.2000, 0.1000]]])
    """

    def __init__(self, threshold: float = 0.5, *, p: float = 0.2) -> None:
        super().__init__(p)
        self.threshold = threshold

    def _augment(self, image: Tensor, generator: torch.Generator | None) -> Tensor:
        """Invert the values at or above the threshold; see the class docstring."""
        return torch.where(image >= self.threshold, 1 - image, image)


class RandomGrayscale(_PerSampleAugment):
    """Convert RGB samples to grey (replicated to 3 bands) with probability ``p``.

    Uses the luma weights 0.2989, 0.587, 0.114 (torchvision's).

    Args:
        p: Probability of converting a sample.

    Raises:
        ValueError: If ``p`` is not a probability.
        ShapeError: In ``forward``, if the image does not have 3 bands.

    Example:
        >>> import torch
        >>> out = RandomGrayscale(p=1.0)({"image": torch.tensor([[[1.0]], [[0.0]], [[0.0]]])})
        >>> out["image"].flatten()
        tensor([0.2989, 0.2989, 0.2989])
    """

    rgb_only = True

    def __init__(self, p: float = 0.1) -> None:
        super().__init__(p)

    def _augment(self, image: Tensor, generator: torch.Generator | None) -> Tensor:
        """The luma of every pixel in all three bands; see the class docstring."""
        return _gray(image).expand_as(image)


class ColorJitter(_PerSampleAugment):
    """torchvision-style colour jitter for RGB images in ``[0, 1]``.

    Brightness, contrast and saturation factors are drawn from
    ``[max(0, 1 - v), 1 + v]`` (or a given ``(low, high)``), the hue shift
    from ``[-h, h]`` with ``h <= 0.5``, all per sample. The four operations
    run in a random order drawn once per call (torchvision draws it per
    image). VICReg uses ``(0.4, 0.4, 0.2, 0.1)`` with ``p = 0.8``.

    Args:
        brightness: Brightness jitter (multiplicative).
        contrast: Contrast jitter (blend with the mean grey level).
        saturation: Saturation jitter (blend with the grey image).
        hue: Maximum hue shift, as a fraction of the colour circle.
        p: Probability of jittering a sample.

    Raises:
        ValueError: On negative jitter, ``hue`` outside ``[0, 0.5]`` or a bad ``p``.
        ShapeError: In ``forward``, if the image does not have 3 bands.

    Example:
        >>> import torch
        >>> jitter = ColorJitter(brightness=(0.5, 0.5))
        >>> jitter({"image": torch.full((3, 1, 1), 0.8)})["image"].flatten()
        tensor([0.4000, 0.4000, 0.4000])
    """

    rgb_only = True

    def __init__(
        self,
        brightness: float | tuple[float, float] = 0.0,
        contrast: float | tuple[float, float] = 0.0,
        saturation: float | tuple[float, float] = 0.0,
        hue: float | tuple[float, float] = 0.0,
        *,
        p: float = 1.0,
    ) -> None:
        super().__init__(p)
        self.brightness = _factor_range("brightness", brightness)
        self.contrast = _factor_range("contrast", contrast)
        self.saturation = _factor_range("saturation", saturation)
        self.hue = check_range("hue", hue)
        if not -0.5 <= self.hue[0] <= self.hue[1] <= 0.5:
            raise ValueError(f"hue shifts must lie in [-0.5, 0.5], got {self.hue}.")

    def _augment(self, image: Tensor, generator: torch.Generator | None) -> Tensor:
        """Jitter colours in a random order; see the class docstring."""
        n = image.shape[0]
        device = generator.device if generator is not None else torch.device("cpu")
        order = torch.randperm(4, generator=generator, device=device).tolist()
        factors = [
            uniform(*rng, (n,), generator).to(image)
            for rng in (self.brightness, self.contrast, self.saturation, self.hue)
        ]
        out = image
        for op in order:
            f = factors[op]
            if op == 0 and self.brightness != (1.0, 1.0):
                out = (out * f.view(-1, 1, 1, 1)).clamp(0, 1)
            elif op == 1 and self.contrast != (1.0, 1.0):
                out = _blend(out, _gray(out).mean(dim=(1, 2, 3), keepdim=True), f)
            elif op == 2 and self.saturation != (1.0, 1.0):
                out = _blend(out, _gray(out), f)
            elif op == 3 and self.hue != (0.0, 0.0):
                hsv = _rgb_to_hsv(out)
                hue = (hsv[:, :1] + f.view(-1, 1, 1, 1)) % 1.0
                out = _hsv_to_rgb(torch.cat([hue, hsv[:, 1:]], dim=1))
        return out
