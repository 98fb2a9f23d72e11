"""The input contract: what a model expects, and what it returns.

An :class:`InputSpec` travels with a model from its pretrained weights to its
saved ``config.json`` and to :func:`geofm.geo.predict_raster`: the bands (by
canonical catalog name, or unknown), their centre wavelengths, the rule from
stored values to model units (:class:`~geofm.sensors.ValueScaling`), the
per-band mean and std after scaling, and the spatial multiple and minimum size
the model needs. An :class:`OutputSpec` describes a task model's output (kind,
class names, colours, units).

Anchors: timm's ``pretrained_cfg`` (``mean``, ``std``, ``input_size``) and
torchgeo's weight transforms (``WeightsEnum.transforms``,
https://github.com/microsoft/torchgeo/blob/main/torchgeo/models/api.py).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, Literal, get_args

import torch
from torch import Tensor

from geofm.errors import ShapeError
from geofm.sensors import Sensor, ValueScaling, get_sensor

__all__ = ["InputSpec", "OutputKind", "OutputSpec"]

OutputKind = Literal["segmentation", "classification", "multilabel", "regression", "embedding"]

# Larger spatial multiples or minimum sizes than this are not a model's: a config
# asking for them is corrupt or hostile (a 10**6 "multiple" would allocate terabytes).
_MAX_SIZE = 1 << 16
_MAX_BANDS = 4096


def _floats(values: Any, label: str, where: str) -> tuple[float, ...]:
    if not isinstance(values, (list, tuple)) or not values:
        raise ValueError(f"{where}: {label} must be a non-empty list of numbers, got {values!r}.")
    out: list[float] = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{where}: {label} must hold finite numbers, got {v!r}.")
        out.append(float(v))
    return tuple(out)


def _int(value: Any, label: str, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{where}: {label} must be an integer in [{low}, {high}], got {value!r}.")
    return value


def _check_keys(data: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected a JSON object, got {type(data).__name__}.")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ValueError(
            f"{where}: unknown field(s) {', '.join(unknown)}; "
            f"expected some of {', '.join(allowed)}."
        )


@dataclass(frozen=True)
class InputSpec:
    """What a model expects as input: bands, value scaling, statistics, sizes.

    ``model_input = (clip((raw - offset) / divisor) - mean) / std`` band by band
    (:meth:`prepare`), with ``offset``/``divisor``/``clip`` from :attr:`scaling`.
    Any field may be unknown (``None``), and then nothing is assumed about it:
    an unknown scaling means values are used as stored; unknown statistics mean
    no standardisation; unknown bands mean bands are matched by count only.

    Args:
        num_bands: Number of input channels ``C``.
        bands: Canonical band names (from :attr:`sensor`'s catalog record), or ``None``.
        wavelengths: Centre wavelength of each band in nm, or ``None``.
        sensor: Registered sensor name the band names belong to, or ``None``.
        scaling: Rule from stored values to the units :attr:`mean`/:attr:`std`
            are defined on, or ``None`` (use values as stored).
        mean: Per-band mean after scaling, or ``None``.
        std: Per-band standard deviation after scaling (positive), or ``None``.
        multiple: Spatial multiple the model needs (14 for DINOv2, the patch size
            of a ViT, 32 for Swin/ResNet feature pyramids); ``1`` when any size works.
        min_size: Smallest input height/width in pixels.

    Raises:
        ShapeError: If a per-band field's length differs from ``num_bands``.
        ValueError: If ``num_bands``, ``multiple`` or ``min_size`` is out of range,
            a std is not positive, or a wavelength is outside ``[100, 20000]`` nm.

    Example:
        >>> spec = InputSpec.from_sensor("sentinel2_l2a", bands=["B04", "B03", "B02"], multiple=14)
        >>> spec.bands, spec.num_bands, spec.multiple
        (('B04', 'B03', 'B02'), 3, 14)
        >>> InputSpec.from_json(spec.to_json()) == spec
        True
    """

    num_bands: int
    bands: tuple[str, ...] | None = None
    wavelengths: tuple[float, ...] | None = None
    sensor: str | None = None
    scaling: ValueScaling | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    multiple: int = 1
    min_size: int = 1

    def __post_init__(self) -> None:
        _int(self.num_bands, "num_bands", "InputSpec", 1, _MAX_BANDS)
        _int(self.multiple, "multiple", "InputSpec", 1, _MAX_SIZE)
        _int(self.min_size, "min_size", "InputSpec", 1, _MAX_SIZE)
        for label in ("bands", "wavelengths", "mean", "std"):
            values = getattr(self, label)
            if values is not None and len(values) != self.num_bands:
                raise ShapeError(
                    f"InputSpec has {self.num_bands} bands but {len(values)} {label}; "
                    "give one value per band."
                )
        if self.std is not None and not all(math.isfinite(s) and s > 0 for s in self.std):
            raise ValueError(f"InputSpec std must be positive numbers, got {self.std}.")
        if self.wavelengths is not None and not all(
            100.0 <= w <= 20000.0 for w in self.wavelengths
        ):
            raise ValueError(
                f"InputSpec wavelengths must be in nm within [100, 20000], got {self.wavelengths}."
            )
        if self.scaling is not None and self.scaling.num_bands not in (1, self.num_bands):
            raise ShapeError(
                f"InputSpec has {self.num_bands} bands but its scaling covers "
                f"{self.scaling.num_bands}."
            )
        if (self.mean is None) != (self.std is None):
            raise ValueError("InputSpec needs both mean and std, or neither.")

    # -- construction -------------------------------------------------------

    @classmethod
    def unknown(cls, num_bands: int, *, multiple: int = 1, min_size: int = 1) -> InputSpec:
        """A spec that knows only the band count (and sizes).

        Args:
            num_bands: Number of input channels.
            multiple: Spatial multiple.
            min_size: Smallest height/width.

        Returns:
            The spec, with every other field ``None``.

        Example:
            >>> InputSpec.unknown(4).known_bands
            False
        """
        return cls(num_bands=num_bands, multiple=multiple, min_size=min_size)

    @classmethod
    def from_sensor(
        cls,
        sensor: str | Sensor,
        bands: Sequence[str] | None = None,
        *,
        multiple: int = 1,
        min_size: int = 1,
    ) -> InputSpec:
        """The spec of (a subset of) a catalog sensor's bands, with its scaling and statistics.

        Args:
            sensor: Registered sensor name or record.
            bands: Band names or aliases of ``sensor`` (default: all, in catalog order).
            multiple: Spatial multiple.
            min_size: Smallest height/width.

        Returns:
            The spec; :attr:`bands` holds canonical names.

        Raises:
            UnknownNameError: If the sensor or a band is unknown.

        Example:
            >>> InputSpec.from_sensor("rgb").mean
            (0.485, 0.456, 0.406)
        """
        record = get_sensor(sensor) if isinstance(sensor, str) else sensor
        parent = record.name
        if bands is not None:
            record = record.select(list(bands), name=record.name)
        return cls(
            num_bands=record.num_bands,
            bands=record.bands,
            wavelengths=record.wavelengths,
            sensor=parent,
            scaling=record.scaling,
            mean=record.mean,
            std=record.std,
            multiple=multiple,
            min_size=min_size,
        )

    def replace(self, **changes: Any) -> InputSpec:
        """A copy with ``changes`` applied (validated again).

        Args:
            **changes: Field values, e.g. ``multiple=14``.

        Returns:
            The new spec.

        Example:
            >>> InputSpec.unknown(3).replace(multiple=16).multiple
            16
        """
        return replace(self, **changes)

    # -- queries ------------------------------------------------------------

    @property
    def known_bands(self) -> bool:
        """Whether the bands are named."""
        return self.bands is not None

    def round_size(self, size: int) -> int:
        """The largest valid input size not above ``size`` (at least :attr:`min_size`).

        Args:
            size: Wanted height or width in pixels.

        Returns:
            A multiple of :attr:`multiple`, ``>= min_size``.

        Example:
            >>> InputSpec.unknown(3, multiple=14).round_size(256)
            252
        """
        rounded = max(size // self.multiple * self.multiple, self.multiple)
        while rounded < self.min_size:
            rounded += self.multiple
        return rounded

    def check_size(self, height: int, width: int) -> None:
        """Raise unless ``(height, width)`` suits the model.

        Args:
            height: Input height in pixels.
            width: Input width in pixels.

        Raises:
            ShapeError: If a side is below :attr:`min_size` or not a multiple of
                :attr:`multiple`.

        Example:
            >>> InputSpec.unknown(3, multiple=14).check_size(28, 42)
        """
        for label, value in (("height", height), ("width", width)):
            if value < self.min_size or value % self.multiple:
                raise ShapeError(
                    f"Input {label} {value} does not suit the model: expected a multiple of "
                    f"{self.multiple} of at least {self.min_size} pixels."
                )

    def describe(self) -> str:
        """Multi-line human-readable form (model cards, ``geofm info``).

        Returns:
            The text.

        Example:
            >>> print(InputSpec.unknown(2).describe())
            bands: 2 (unnamed)
            value scaling: unknown (values used as stored)
            normalisation: none
            spatial multiple: 1, minimum size: 1
        """
        if self.bands is None:
            bands = f"{self.num_bands} (unnamed)"
        else:
            of = f" of {self.sensor}" if self.sensor else ""
            bands = f"{self.num_bands}{of}: {', '.join(self.bands)}"
        scaling = (
            "unknown (values used as stored)" if self.scaling is None else self.scaling.summary()
        )
        if self.mean is None or self.std is None:
            norm = "none"
        else:
            norm = "mean " + ", ".join(f"{m:.4g}" for m in self.mean)
            norm += "; std " + ", ".join(f"{s:.4g}" for s in self.std)
        return (
            f"bands: {bands}\nvalue scaling: {scaling}\nnormalisation: {norm}\n"
            f"spatial multiple: {self.multiple}, minimum size: {self.min_size}"
        )

    # -- applying it ----------------------------------------------------------

    def prepare(self, x: Tensor) -> Tensor:
        """Map stored values to model input: scaling, then standardisation.

        Args:
            x: Raw values ``(N, C, H, W)`` or ``(C, H, W)``, any real dtype.

        Returns:
            float32 tensor of the same shape.

        Raises:
            ShapeError: If the channel count is not :attr:`num_bands`.

        Shape:
            - Input: ``(N, C, H, W)`` or ``(C, H, W)``.
            - Output: same.

        Example:
            >>> spec = InputSpec(num_bands=1, scaling=ValueScaling.uniform(divisor=10.0),
            ...                  mean=(1.0,), std=(2.0,))
            >>> spec.prepare(torch.full((1, 1, 2, 2), 50.0))[0, 0, 0, 0].item()
            2.0
        """
        if x.dim() not in (3, 4) or x.shape[-3] != self.num_bands:
            raise ShapeError(
                f"InputSpec.prepare expected (N, {self.num_bands}, H, W) or "
                f"({self.num_bands}, H, W), got {tuple(x.shape)}."
            )
        out = x.to(torch.float32)
        c = self.num_bands
        if self.scaling is not None:
            rule = self.scaling
            offset = torch.tensor(rule.offset, dtype=torch.float32, device=x.device)
            divisor = torch.tensor(rule.divisor, dtype=torch.float32, device=x.device)
            offset = offset.expand(c) if offset.numel() == 1 else offset
            divisor = divisor.expand(c) if divisor.numel() == 1 else divisor
            out = (out - offset.reshape(c, 1, 1)) / divisor.reshape(c, 1, 1)  # (..., C, H, W)
            if rule.clip is not None:
                out = out.clamp(rule.clip[0], rule.clip[1])
        if self.mean is not None and self.std is not None:
            mean = torch.tensor(self.mean, dtype=torch.float32, device=x.device).reshape(c, 1, 1)
            std = torch.tensor(self.std, dtype=torch.float32, device=x.device).reshape(c, 1, 1)
            out = (out - mean) / std
        return out

    def band_positions(self, descriptions: Sequence[str | None]) -> list[int] | None:
        """Positions of this spec's bands among a raster's band descriptions.

        Descriptions are matched through the sensor's band names and aliases
        (``B4``, ``B04``, ``red``, ``SR_B4``); empty descriptions match nothing.

        Args:
            descriptions: One description per raster band (``None`` or ``""`` if absent).

        Returns:
            One raster index per spec band, or ``None`` when the spec's bands are
            unnamed or the raster does not describe all of them.

        Example:
            >>> spec = InputSpec.from_sensor("sentinel2_l2a", bands=["B04", "B03"])
            >>> spec.band_positions(["blue", "green", "red"])
            [2, 1]
            >>> spec.band_positions([None, None, None]) is None
            True
        """
        if self.bands is None:
            return None
        record = get_sensor(self.sensor) if self.sensor is not None else None
        found: dict[str, int] = {}
        for i, desc in enumerate(descriptions):
            if not desc:
                continue
            name = desc.strip()
            if record is not None:
                try:
                    name = record.bands[record.band_index(name)]
                except LookupError:
                    continue
            found.setdefault(name, i)
        if not all(b in found for b in self.bands):
            return None
        return [found[b] for b in self.bands]

    # -- serialisation ----------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``config.json``'s ``input_spec``).

        Returns:
            A dict of plain lists, numbers and strings.

        Example:
            >>> InputSpec.unknown(2).to_dict()["num_bands"]
            2
        """
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, ValueScaling):
                value = {
                    "offset": list(value.offset),
                    "divisor": list(value.divisor),
                    "clip": None if value.clip is None else list(value.clip),
                }
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "input_spec") -> InputSpec:
        """Inverse of :meth:`to_dict`, validating every field first.

        Args:
            data: The dict.
            where: Name of the source for error messages (e.g. a file and field).

        Returns:
            The spec.

        Raises:
            ValueError: If a field is unknown, missing, of the wrong type or out of range.

        Example:
            >>> InputSpec.from_dict({"num_bands": 3, "multiple": 14}).multiple
            14
        """
        names = [f.name for f in fields(cls)]
        _check_keys(data, names, where)
        if "num_bands" not in data:
            raise ValueError(f"{where}: missing field num_bands.")
        kwargs: dict[str, Any] = {
            "num_bands": _int(data["num_bands"], "num_bands", where, 1, _MAX_BANDS),
            "multiple": _int(data.get("multiple", 1), "multiple", where, 1, _MAX_SIZE),
            "min_size": _int(data.get("min_size", 1), "min_size", where, 1, _MAX_SIZE),
        }
        if data.get("bands") is not None:
            bands = data["bands"]
            if not isinstance(bands, list) or not all(isinstance(b, str) for b in bands):
                raise ValueError(f"{where}: bands must be a list of strings, got {bands!r}.")
            kwargs["bands"] = tuple(bands)
        for label in ("wavelengths", "mean", "std"):
            if data.get(label) is not None:
                kwargs[label] = _floats(data[label], label, where)
        if data.get("sensor") is not None:
            if not isinstance(data["sensor"], str):
                raise ValueError(f"{where}: sensor must be a string, got {data['sensor']!r}.")
            kwargs["sensor"] = data["sensor"]
        scaling = data.get("scaling")
        if scaling is not None:
            _check_keys(scaling, ("offset", "divisor", "clip"), f"{where}.scaling")
            clip = scaling.get("clip")
            kwargs["scaling"] = ValueScaling(
                offset=_floats(scaling.get("offset"), "offset", f"{where}.scaling"),
                divisor=_floats(scaling.get("divisor"), "divisor", f"{where}.scaling"),
                clip=None if clip is None else _floats(clip, "clip", f"{where}.scaling")[:2],  # type: ignore[arg-type]
            )
        try:
            return cls(**kwargs)
        except (ValueError, ShapeError) as exc:
            raise ValueError(f"{where}: {exc}") from exc

    def to_json(self) -> str:
        """:meth:`to_dict` as a JSON string.

        Returns:
            The JSON text.

        Example:
            >>> InputSpec.unknown(1).to_json().startswith('{"num_bands": 1')
            True
        """
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> InputSpec:
        """Inverse of :meth:`to_json`.

        Args:
            text: JSON text.

        Returns:
            The spec.

        Example:
            >>> InputSpec.from_json('{"num_bands": 2}').num_bands
            2
        """
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True)
class OutputSpec:
    """What a task model returns: its kind, class names, colours, units.

    Args:
        kind: ``"segmentation"``, ``"classification"``, ``"multilabel"``,
            ``"regression"`` or ``"embedding"``.
        num_outputs: Number of classes / targets / embedding size.
        class_names: One name per class, or ``None``.
        colors: One ``(r, g, b)`` (0-255) per class for maps, or ``None``.
        units: Unit of a regression target (e.g. ``"nW/cm2/sr"``), or ``None``.

    Raises:
        ValueError: If ``kind`` is unknown, sizes disagree, or a colour is out of range.

    Example:
        >>> out = OutputSpec("segmentation", 2, class_names=("land", "water"))
        >>> OutputSpec.from_dict(out.to_dict()) == out
        True
    """

    kind: OutputKind
    num_outputs: int
    class_names: tuple[str, ...] | None = None
    colors: tuple[tuple[int, int, int], ...] | None = None
    units: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in get_args(OutputKind):
            raise ValueError(
                f"OutputSpec kind must be one of {', '.join(get_args(OutputKind))}, "
                f"got {self.kind!r}."
            )
        _int(self.num_outputs, "num_outputs", "OutputSpec", 1, 1 << 20)
        for label in ("class_names", "colors"):
            values = getattr(self, label)
            if values is not None and len(values) != self.num_outputs:
                raise ValueError(
                    f"OutputSpec has {self.num_outputs} outputs but {len(values)} {label}."
                )
        if self.colors is not None and not all(
            len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c)
            for c in self.colors
        ):
            raise ValueError(f"OutputSpec colors must be (r, g, b) in 0-255, got {self.colors}.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``config.json``'s ``output_spec``).

        Returns:
            The dict.

        Example:
            >>> OutputSpec("regression", 1, units="m").to_dict()["units"]
            'm'
        """
        return {
            "kind": self.kind,
            "num_outputs": self.num_outputs,
            "class_names": None if self.class_names is None else list(self.class_names),
            "colors": None if self.colors is None else [list(c) for c in self.colors],
            "units": self.units,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "output_spec") -> OutputSpec:
        """Inverse of :meth:`to_dict`, validating every field.

        Args:
            data: The dict.
            where: Name of the source for error messages.

        Returns:
            The spec.

        Raises:
            ValueError: If a field is unknown, missing or invalid.

        Example:
            >>> OutputSpec.from_dict({"kind": "classification", "num_outputs": 3}).kind
            'classification'
        """
        _check_keys(data, ("kind", "num_outputs", "class_names", "colors", "units"), where)
        try:
            names = data.get("class_names")
            colors = data.get("colors")
            units = data.get("units")
            if names is not None and not (
                isinstance(names, list) and all(isinstance(n, str) for n in names)
            ):
                raise ValueError(f"class_names must be a list of strings, got {names!r}")
            if units is not None and not isinstance(units, str):
                raise ValueError(f"units must be a string, got {units!r}")
            if colors is not None and not (
                isinstance(colors, list) and all(isinstance(c, list) for c in colors)
            ):
                raise ValueError(f"colors must be a list of [r, g, b] lists, got {colors!r}")
            return cls(
                kind=data.get("kind"),  # type: ignore[arg-type]
                num_outputs=data.get("num_outputs"),  # type: ignore[arg-type]
                class_names=None if names is None else tuple(names),
                colors=None if colors is None else tuple(tuple(c) for c in colors),
                units=units,
            )
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{where}: {exc}") from exc
