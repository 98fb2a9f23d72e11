"""Per-band normalisation, with statistics read from the sensor catalog.

``normalised = (clip((raw - offset) / divisor) - mean) / std`` band by band,
the rule :mod:`geofm.sensors` documents (``offset``, ``divisor`` and ``clip``
come from the sensor's :class:`~geofm.sensors.ValueScaling`, ``Sensor.scaling``).
Works on sample dicts and on bare tensors, so the same module normalises the
training pipeline's samples and the input of a model at inference.
:meth:`Normalize.from_spec` builds it from a model's
:class:`~geofm.input_spec.InputSpec`, giving exactly what
:meth:`InputSpec.prepare <geofm.input_spec.InputSpec.prepare>` (and so
``predict_raster``) feeds the model.

Reference: ``torchvision.transforms.Normalize``; SpectralEarth's per-band
standardisation on raw DN (``src/transforms/normalize.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import overload

import torch
from torch import Tensor

from geofm._registry import register_module
from geofm.errors import ShapeError
from geofm.input_spec import InputSpec
from geofm.sensors import Sensor, get_sensor
from geofm.transforms.base import Sample, Transform

__all__ = ["Normalize"]


def _per_band(name: str, values: float | Sequence[float], bands: int) -> Tensor:
    t = torch.as_tensor(values, dtype=torch.float32).reshape(-1)
    if t.numel() == 1:
        t = t.expand(bands).clone()
    if t.numel() != bands:
        raise ShapeError(
            f"Normalize got {bands} mean values but {t.numel()} {name} values; "
            f"give one per band or a single number."
        )
    return t.reshape(bands, 1, 1)  # (C, 1, 1)


@register_module()
class Normalize(Transform):
    """Scale and standardise every band of an image tensor or of ``sample["image"]``.

    Called on a sample dict it returns a new dict with the normalised image;
    called on a bare tensor it returns the normalised tensor, so it can sit in
    front of a model, e.g. ``nn.Sequential(Normalize.from_sensor(...), model)``
    for :func:`geofm.geo.predict_raster`. The statistics are buffers: they move
    with ``.to(device)`` and are saved in ``state_dict``.

    Args:
        mean: Per-band mean after scaling.
        std: Per-band standard deviation after scaling (positive).
        offset: Subtracted from raw values first (one number or one per band).
        divisor: Raw values are divided by it after the offset (positive).
        clip: ``(low, high)`` applied to the scaled values before
            standardisation, or ``None``.
        dtype: Floating dtype the image is cast to first (``torch.float32``
            reproduces :meth:`InputSpec.prepare <geofm.input_spec.InputSpec.prepare>`),
            or ``None``: floating images keep their dtype, others become float32.

    Shape:
        - Input: a tensor or ``sample["image"]`` of shape ``(C, H, W)`` or
          ``(N, C, H, W)``, any dtype.
        - Output: same shape (and container), ``dtype`` (default: float32, or
          the input's floating dtype).

    Raises:
        ShapeError: If per-band lengths differ; in ``forward``, if the image
            band count differs from ``len(mean)``.
        ValueError: If a std or divisor is not positive, or ``dtype`` is not floating.

    Example:
        >>> import torch
        >>> norm = Normalize(mean=[0.5, 0.5], std=[0.5, 0.25], divisor=255)
        >>> norm({"image": torch.full((2, 1, 1), 255.0)})["image"].flatten()
        tensor([1., 2.])
        >>> model = torch.nn.Sequential(norm, torch.nn.Flatten())
        >>> model(torch.full((1, 2, 1, 1), 255.0))
        tensor([[1., 2.]])
    """

    mean: Tensor
    std: Tensor
    offset: Tensor
    divisor: Tensor

    def __init__(
        self,
        mean: Sequence[float],
        std: Sequence[float],
        *,
        offset: float | Sequence[float] = 0.0,
        divisor: float | Sequence[float] = 1.0,
        clip: tuple[float, float] | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if dtype is not None and not dtype.is_floating_point:
            raise ValueError(f"Normalize dtype must be a floating dtype, got {dtype}.")
        self.dtype = dtype
        bands = len(mean)
        if bands == 0:
            raise ShapeError("Normalize needs at least one band; got an empty mean.")
        self.register_buffer("mean", _per_band("mean", mean, bands))
        self.register_buffer("std", _per_band("std", std, bands))
        self.register_buffer("offset", _per_band("offset", offset, bands))
        self.register_buffer("divisor", _per_band("divisor", divisor, bands))
        if (self.std <= 0).any() or (self.divisor <= 0).any():
            raise ValueError("Normalize std and divisor values must all be positive.")
        if clip is not None and not clip[0] < clip[1]:
            raise ValueError(f"clip must be (low, high) with low < high, got {clip}.")
        self.clip = clip

    @classmethod
    def from_sensor(cls, sensor: Sensor | str, *, standardize: bool = True) -> Normalize:
        """Build the normalisation of a catalog sensor.

        Args:
            sensor: A :class:`~geofm.sensors.Sensor` or its registered name.
            standardize: Also apply the sensor's mean/std. ``False`` applies
                only its value scaling (offset, divisor, clip), which is the
                whole rule for sensors such as SatlasPretrain's inputs.

        Returns:
            The transform.

        Raises:
            ValueError: If ``standardize`` is true and the sensor has no mean/std.
            UnknownNameError: If the name is not registered.

        Example:
            >>> import torch
            >>> norm = Normalize.from_sensor("rgb")
            >>> norm({"image": torch.full((3, 1, 1), 255.0)})["image"].flatten()
            tensor([2.2489, 2.4286, 2.6400])
        """
        record = get_sensor(sensor) if isinstance(sensor, str) else sensor
        rule = record.scaling
        if not standardize:
            mean, std = [0.0] * record.num_bands, [1.0] * record.num_bands
        elif record.mean is None or record.std is None:
            raise ValueError(
                f"Sensor {record.name!r} has no mean/std statistics. Pass standardize=False "
                f"to apply only its value scaling, or build Normalize(mean=..., std=...) "
                f"with your own statistics."
            )
        else:
            mean, std = list(record.mean), list(record.std)
        return cls(mean, std, offset=rule.offset, divisor=rule.divisor, clip=rule.clip)

    @classmethod
    def from_spec(cls, spec: InputSpec | object) -> Normalize:
        """The normalisation a model's input spec prescribes, equal to ``spec.prepare``.

        Training with it feeds the model what :func:`geofm.geo.predict_raster`
        and ``geofm predict`` feed it: ``clip((raw - offset) / divisor)`` from
        the spec's scaling, then ``(x - mean) / std``, in float32. Parts the
        spec leaves unknown are left out (values as stored, no standardisation),
        exactly as :meth:`InputSpec.prepare <geofm.input_spec.InputSpec.prepare>` does.

        Args:
            spec: An :class:`~geofm.input_spec.InputSpec`, or any object with an
                ``input_spec`` attribute holding one (a backbone, a task model).

        Returns:
            The transform, with ``spec.num_bands`` bands.

        Raises:
            TypeError: If ``spec`` is neither an ``InputSpec`` nor has one as ``input_spec``.

        Example:
            >>> import torch
            >>> from geofm.input_spec import InputSpec
            >>> spec = InputSpec.from_sensor("rgb")
            >>> x = torch.randint(0, 256, (2, 3, 4, 4))
            >>> torch.equal(Normalize.from_spec(spec)(x), spec.prepare(x))
            True
        """
        found = spec if isinstance(spec, InputSpec) else getattr(spec, "input_spec", None)
        if not isinstance(found, InputSpec):
            raise TypeError(
                "Normalize.from_spec expects a geofm.InputSpec or a model with an "
                f"input_spec attribute, got {type(spec).__name__}"
                + ("" if found is None else f" whose input_spec is {type(found).__name__}")
                + "."
            )
        n = found.num_bands
        rule = found.scaling
        mean = found.mean if found.mean is not None else (0.0,) * n
        std = found.std if found.std is not None else (1.0,) * n
        return cls(
            list(mean),
            list(std),
            offset=rule.offset if rule is not None else 0.0,
            divisor=rule.divisor if rule is not None else 1.0,
            clip=rule.clip if rule is not None else None,
            dtype=torch.float32,
        )

    @overload
    def forward(self, sample: Tensor, *, generator: torch.Generator | None = None) -> Tensor: ...

    @overload
    def forward(self, sample: Sample, *, generator: torch.Generator | None = None) -> Sample: ...

    def forward(
        self, sample: Sample | Tensor, *, generator: torch.Generator | None = None
    ) -> Sample | Tensor:
        """Normalise a tensor, or ``sample["image"]``; see the class docstring.

        Args:
            sample: An image tensor ``(C, H, W)`` / ``(N, C, H, W)``, or a
                sample dict holding one under ``"image"``.
            generator: Unused (the transform is deterministic).

        Returns:
            The normalised tensor, or a new sample dict with the normalised image.

        Raises:
            ShapeError: If the image is not 3-D/4-D with ``len(mean)`` bands.
        """
        if isinstance(sample, Tensor):
            return self._normalize(sample)
        return {**sample, "image": self._normalize(sample["image"])}

    def _normalize(self, image: Tensor) -> Tensor:
        if image.ndim not in (3, 4) or image.shape[-3] != self.mean.shape[0]:
            raise ShapeError(
                f"Normalize expects an image with {self.mean.shape[0]} bands as (C, H, W) or "
                f"(N, C, H, W), got shape {tuple(image.shape)}. Build Normalize with one mean/std "
                f"per band of the input, e.g. Normalize.from_sensor(<the input's sensor>)."
            )
        if self.dtype is not None:
            x = image.to(self.dtype)
        else:
            x = image if image.is_floating_point() else image.float()
        x = (x - self.offset.to(x)) / self.divisor.to(x)
        if self.clip is not None:
            x = x.clamp(*self.clip)
        return (x - self.mean.to(x)) / self.std.to(x)
