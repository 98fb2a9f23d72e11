"""Transform base class, ``Compose`` and the helpers every transform shares.

A sample is a ``dict[str, Tensor]`` following torchgeo's convention:
``"image"`` holds ``(C, H, W)`` or a batch ``(N, C, H, W)``; ``"mask"`` (if
present) holds integer labels ``(H, W)`` / ``(N, H, W)`` or with an extra
channel axis ``(K, H, W)`` / ``(N, K, H, W)``. Other keys pass through
untouched. Every transform also takes a bare image tensor and returns the
transformed tensor (image only). Random parameters are drawn per sample from
the CPU random generator (or the ``generator`` passed to ``forward``) and then
moved to the image's device, so results are reproducible on any device.

Reference: torchgeo's sample dictionaries and ``AugmentationSequential``,
https://github.com/microsoft/torchgeo.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, overload

import torch
from torch import Tensor, nn

from geofm.errors import ShapeError

__all__ = ["Compose", "Sample", "Transform"]

Sample = dict[str, Tensor]


def rand(shape: Sequence[int], generator: torch.Generator | None) -> Tensor:
    """Uniform ``[0, 1)`` draws on the generator's device (CPU by default)."""
    device = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(tuple(shape), generator=generator, device=device)


def uniform(
    low: float, high: float, shape: Sequence[int], generator: torch.Generator | None
) -> Tensor:
    """Uniform draws in ``[low, high)``."""
    return low + (high - low) * rand(shape, generator)


def check_sample(sample: object, name: str) -> None:
    """Raise a clear error unless ``sample`` is a sample dict holding an image tensor."""
    if isinstance(sample, Tensor):
        raise TypeError(
            f"{name}.forward expects a sample dict, got a bare tensor of shape "
            f"{tuple(sample.shape)}. Call the transform itself ({name}()(image)) to transform "
            f"a bare image, or pass {{'image': image}}."
        )
    if not isinstance(sample, Mapping):
        raise TypeError(
            f"{name} expects a sample dict {{'image': Tensor, 'mask': Tensor (optional)}} or "
            f"an image tensor, got {type(sample).__name__}."
        )
    if "image" not in sample:
        raise KeyError(f"{name} needs an 'image' key in the sample, got keys {sorted(sample)}.")
    if not isinstance(sample["image"], Tensor):
        raise TypeError(
            f"{name}: sample['image'] must be a torch.Tensor, got "
            f"{type(sample['image']).__name__}. Convert arrays with torch.from_numpy."
        )


def batch_image(sample: Sample, name: str) -> tuple[Tensor, bool]:
    """The sample's image as ``(N, C, H, W)`` and whether it was batched."""
    check_sample(sample, name)
    image = sample["image"]
    if image.ndim not in (3, 4):
        raise ShapeError(
            f"{name} expects 'image' as (C, H, W) or (N, C, H, W), got shape {tuple(image.shape)}."
        )
    return (image if image.ndim == 4 else image.unsqueeze(0)), image.ndim == 4


def batch_mask(sample: Sample, image: Tensor, name: str) -> Tensor | None:
    """The sample's mask as ``(N, K, H, W)`` matching ``image``, or ``None``."""
    mask = sample.get("mask")
    if mask is None:
        return None
    n, _, h, w = image.shape
    if mask.shape[-2:] != image.shape[-2:] or mask.numel() % (n * h * w):
        raise ShapeError(
            f"{name}: 'mask' of shape {tuple(mask.shape)} does not match 'image' of shape "
            f"{tuple(image.shape)}; expected (H, W), (N, H, W) or (N, K, H, W) with the "
            f"image's N, H and W."
        )
    if mask.is_floating_point():
        raise TypeError(
            f"{name}: 'mask' must hold integer labels, got dtype {mask.dtype}. "
            f"Convert it with .long()."
        )
    return mask.reshape(n, -1, h, w)  # (N, K, H, W)


def unbatch(sample: Sample, image: Tensor, mask: Tensor | None, batched: bool) -> Sample:
    """A new sample with ``image``/``mask`` restored to the input's layout."""
    out = dict(sample)
    out["image"] = image if batched else image[0]
    if mask is not None:
        old = sample["mask"]
        out["mask"] = mask.reshape(*old.shape[:-2], *mask.shape[-2:])
    return out


def check_probability(name: str, p: float) -> None:
    """Raise if ``p`` is not a probability."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} probability p must be in [0, 1], got {p}.")


def check_range(name: str, value: float | tuple[float, float]) -> tuple[float, float]:
    """A ``(low, high)`` pair from a pair or a symmetric half-width."""
    low, high = (-value, value) if isinstance(value, (int, float)) else value
    if low > high:
        raise ValueError(f"{name} range must have low <= high, got ({low}, {high}).")
    return float(low), float(high)


class Transform(nn.Module, ABC):
    """Base class of geofm transforms: ``forward(sample, generator=None) -> sample``.

    Subclasses implement :meth:`forward` on sample dicts; they never change keys
    other than ``"image"`` and ``"mask"``. Calling a transform on a bare image
    tensor runs it on ``{"image": tensor}`` and returns the transformed image;
    anything other than a dict or a tensor is a :class:`TypeError`.

    Shape:
        - Input: a sample dict, or an image ``(C, H, W)`` / ``(N, C, H, W)``.
        - Output: the same kind of object.

    Raises:
        TypeError: If called with something other than a sample dict or a tensor.

    Example:
        >>> import torch
        >>> class Double(Transform):
        ...     def forward(self, sample, *, generator=None):
        ...         return {**sample, "image": 2 * sample["image"]}
        >>> Double()({"image": torch.ones(1, 2, 2)})["image"].sum().item()
        8.0
        >>> Double()(torch.ones(1, 2, 2)).sum().item()  # a bare image in, an image out
        8.0
    """

    @overload
    def __call__(self, sample: Tensor, *, generator: torch.Generator | None = None) -> Tensor: ...

    @overload
    def __call__(self, sample: Sample, *, generator: torch.Generator | None = None) -> Sample: ...

    def __call__(self, sample: Any, *, generator: torch.Generator | None = None) -> Any:
        """Run :meth:`forward` on a sample dict, or on ``{"image": tensor}`` for a bare image.

        Args:
            sample: A sample dict, or an image tensor ``(C, H, W)`` / ``(N, C, H, W)``.
            generator: Source of randomness; ``None`` uses torch's global CPU generator.

        Returns:
            The transformed sample dict, or the transformed image for a tensor input.

        Raises:
            TypeError: If ``sample`` is neither, or its ``"image"`` is not a tensor.
            KeyError: If a sample dict has no ``"image"``.
        """
        if isinstance(sample, Tensor):
            return super().__call__({"image": sample}, generator=generator)["image"]
        check_sample(sample, type(self).__name__)
        return super().__call__(sample, generator=generator)

    @abstractmethod
    def forward(self, sample: Sample, *, generator: torch.Generator | None = None) -> Sample:
        """Transform ``sample``.

        Args:
            sample: Dict with ``"image"`` (and optionally ``"mask"``).
            generator: Source of randomness; ``None`` uses torch's global CPU generator.

        Returns:
            A new dict; the input is not modified.
        """


class Compose(Transform):
    """Apply transforms in order, sharing one random generator.

    Args:
        transforms: The transforms to chain.

    Example:
        >>> import torch
        >>> from geofm.transforms import RandomHorizontalFlip, RandomVerticalFlip
        >>> aug = Compose([RandomHorizontalFlip(p=1.0), RandomVerticalFlip(p=1.0)])
        >>> aug({"image": torch.arange(4.0).reshape(1, 2, 2)})["image"]
        tensor([[[3., 2.],
                 [1., 0.]]])
    """

    def __init__(self, transforms: Sequence[Transform]) -> None:
        super().__init__()
        self.transforms = nn.ModuleList(transforms)

    def forward(self, sample: Sample, *, generator: torch.Generator | None = None) -> Sample:
        """Apply every transform in order; see :meth:`Transform.forward`."""
        for t in self.transforms:
            sample = t(sample, generator=generator)
        return sample
