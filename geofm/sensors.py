"""Sensor catalog: band names, centre wavelengths, bandwidths, GSD and normalisation.

Units, used everywhere in geofm:

- wavelengths and bandwidths (FWHM) in **nanometres** (nm);
- ground sample distance (GSD) in **metres**;
- value scaling: every sensor carries one :class:`ValueScaling` record,
  :attr:`Sensor.scaling`, with a per-band ``offset`` and ``divisor`` and an
  optional ``clip``; the per-band ``mean`` / ``std`` apply after it, i.e.
  ``normalised = (clip((raw - offset) / divisor) - mean) / std``. Most sensors
  need one divisor (``10000`` for Sentinel-2 reflectance, ``255`` for 8-bit
  RGB); Satlas needs per-band rules (``/255`` for the 8-bit TCI bands, ``/8160``
  clipped to ``[0, 1]`` for the others; Landsat ``(raw - 4000) / 16320``).

Band names are the sensor's own identifiers (``"B04"`` for Sentinel-2);
``common_names`` follow the STAC ``eo:common_name`` vocabulary (``"red"``,
``"nir"``, ``"swir16"``, ...) so bands of different sensors can be matched.
One resolver, :meth:`Sensor.band_index`, turns any spelling users meet into a
catalog band: the identifier, its common name, the record's ``aliases``
(Landsat Collection-2 ``SR_B4`` / ``ST_B10``, Earth Search ``rededge1``), all
case-insensitive and with or without zero padding (``B4``, ``b04``, ``B8a``:
torchgeo and Google Earth Engine spellings). An unknown or ambiguous name is an
error, never a guess.

References:
    Sentinel-2 MSI spectral response (ESA, S2-PDGS-TAS-DI-PSD, S2A values);
    STAC electro-optical extension, https://github.com/stac-extensions/eo.
    Each catalog entry's ``citation`` names the source of its numbers; the
    hyperspectral tables ship as package data in :mod:`geofm.data`.

Example:
    >>> from geofm.sensors import get_sensor
    >>> s2 = get_sensor("sentinel2_l2a")
    >>> len(s2.bands), s2.bands[3], s2.wavelengths[3]
    (12, 'B04', 664.6)
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any

from geofm._registry import Registry
from geofm.errors import ShapeError, UnknownNameError

__all__ = [
    "Sensor",
    "ValueScaling",
    "band_name_key",
    "get_sensor",
    "list_sensors",
    "register_sensor",
    "resolve_bands",
    "resolve_wavelengths",
]

SENSORS: Registry[Sensor] = Registry("sensor")


def _read_package_text(filename: str) -> str:
    """Text of one file of the :mod:`geofm.data` package."""
    return resources.files("geofm.data").joinpath(filename).read_text(encoding="utf-8")


def _read_package_json(filename: str) -> Any:
    return json.loads(_read_package_text(filename))


def _read_package_csv(filename: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(_read_package_text(filename))))


@dataclass(frozen=True)
class ValueScaling:
    """Per-band rule that maps stored values to the range the statistics use.

    ``scaled = clip((raw - offset) / divisor, low, high)`` band by band, with
    ``offset`` and ``divisor`` in the raw unit of each band (digital numbers).
    One divisor covers most sensors (``ValueScaling.uniform(divisor=10000.0)``);
    per-band values describe rules such as Satlas' Sentinel-2 input (8-bit TCI
    bands ``/255``, other bands ``/8160`` clipped to ``[0, 1]``) or its Landsat
    input (``(raw - 4000) / 16320`` clipped). A one-band rule given to a
    :class:`Sensor` applies to every band.

    Reference: Satlas normalisation rules,
    https://github.com/allenai/satlas/blob/main/Normalization.md.

    Args:
        offset: Value subtracted from each band before division.
        divisor: Positive divisor of each band.
        clip: ``(low, high)`` bounds applied after division, or ``None``.

    Raises:
        ShapeError: If ``offset`` and ``divisor`` differ in length or are empty.
        ValueError: If a divisor is not positive, an offset is not finite, or
            ``clip`` is not an increasing pair.

    Example:
        >>> rule = ValueScaling(offset=(4000.0,), divisor=(16320.0,), clip=(0.0, 1.0))
        >>> rule.num_bands, rule.clip
        (1, (0.0, 1.0))
    """

    offset: tuple[float, ...]
    divisor: tuple[float, ...]
    clip: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if len(self.offset) != len(self.divisor) or not self.divisor:
            raise ShapeError(
                f"ValueScaling got {len(self.offset)} offsets and {len(self.divisor)} "
                "divisors. Give one offset and one divisor per band (at least one band)."
            )
        if not all(math.isfinite(d) and d > 0 for d in self.divisor):
            raise ValueError(f"ValueScaling divisors must be positive numbers, got {self.divisor}.")
        if not all(math.isfinite(o) for o in self.offset):
            raise ValueError(f"ValueScaling offsets must be finite, got {self.offset}.")
        if self.clip is not None and not (len(self.clip) == 2 and self.clip[0] < self.clip[1]):
            raise ValueError(
                f"ValueScaling clip must be a (low, high) pair with low < high, got {self.clip}."
            )

    @classmethod
    def uniform(
        cls,
        num_bands: int = 1,
        *,
        divisor: float,
        offset: float = 0.0,
        clip: tuple[float, float] | None = None,
    ) -> ValueScaling:
        """The same rule for ``num_bands`` bands.

        Args:
            num_bands: Number of bands (1: a rule a :class:`Sensor` applies to every band).
            divisor: Divisor of every band.
            offset: Offset of every band.
            clip: ``(low, high)`` after division, or ``None``.

        Returns:
            The rule.

        Example:
            >>> ValueScaling.uniform(2, divisor=255.0).divisor
            (255.0, 255.0)
        """
        return cls(
            offset=(float(offset),) * num_bands, divisor=(float(divisor),) * num_bands, clip=clip
        )

    @property
    def num_bands(self) -> int:
        """Number of bands the rule covers."""
        return len(self.divisor)

    def summary(self) -> str:
        """A short text form of the rule, e.g. ``"raw / 10000"``.

        Returns:
            ``"none (raw values)"``, ``"raw / d"`` or ``"(raw - o) / d"`` when every
            band shares the rule (plus ``", clipped to [lo, hi]"``), else ``"per-band rule"``.

        Example:
            >>> ValueScaling.uniform(divisor=16320.0, offset=4000.0, clip=(0.0, 1.0)).summary()
            '(raw - 4000) / 16320, clipped to [0.0, 1.0]'
            >>> ValueScaling(offset=(0.0, 0.0), divisor=(255.0, 8160.0)).summary()
            'per-band rule'
        """
        if len(set(self.offset)) > 1 or len(set(self.divisor)) > 1:
            return "per-band rule"
        offset, divisor = self.offset[0], self.divisor[0]
        clip = "" if self.clip is None else f", clipped to {list(self.clip)}"
        if offset == 0.0 and divisor == 1.0:
            return "none (raw values)" + clip
        raw = "raw" if offset == 0.0 else f"(raw - {offset:g})"
        return f"{raw} / {divisor:g}{clip}"

    def select(self, indices: Sequence[int]) -> ValueScaling:
        """The rule of the bands at ``indices``, in that order.

        Args:
            indices: Zero-based band positions.

        Returns:
            The sliced rule.

        Example:
            >>> ValueScaling(offset=(0.0, 1.0), divisor=(2.0, 3.0)).select([1]).divisor
            (3.0,)
        """
        return ValueScaling(
            offset=tuple(self.offset[i] for i in indices),
            divisor=tuple(self.divisor[i] for i in indices),
            clip=self.clip,
        )


_RAW_VALUES = ValueScaling.uniform(divisor=1.0)

# Earth-observation bands lie between the near ultraviolet and the thermal infrared.
_WAVELENGTH_RANGE_NM = (100.0, 20000.0)


def _check_wavelengths(values: tuple[float, ...], where: str) -> tuple[float, ...]:
    """Raise unless ``values`` is a non-empty tuple of wavelengths in [100, 20000] nm."""
    low, high = _WAVELENGTH_RANGE_NM
    if not values or not all(math.isfinite(w) and low <= w <= high for w in values):
        hint = (
            " They look like micrometres: multiply by 1000."
            if values and all(0.0 < w < 30.0 for w in values)
            else ""
        )
        raise ValueError(
            f"{where} must be centre wavelengths in nanometres, in [{low:g}, {high:g}] nm, "
            f"one per band; got {values}.{hint}"
        )
    return values


_BAND_NUMBER = re.compile(r"([a-z_]*?)(\d+)([a-z]?)")


def band_name_key(name: str) -> str:
    """The spelling-insensitive key under which band names are matched.

    Lower-cases the name and drops the zero padding of its band number, so
    ``"B04"``, ``"B4"`` and ``"b04"`` share the key ``"b4"``, and ``"B8A"`` /
    ``"B8a"`` / ``"B08A"`` share ``"b8a"``. Prefixes are kept (``"SR_B4"`` gives
    ``"sr_b4"``); names without a trailing number are only lower-cased.

    Args:
        name: A band name in any spelling.

    Returns:
        The key.

    Raises:
        TypeError: If ``name`` is not a string.

    Example:
        >>> [band_name_key(n) for n in ("B04", "b4", "B8a", "SR_B4", "Red")]
        ['b4', 'b4', 'b8a', 'sr_b4', 'red']
    """
    if not isinstance(name, str):
        raise TypeError(f"Band names must be strings, got {name!r} ({type(name).__name__}).")
    key = name.strip().lower()
    match = _BAND_NUMBER.fullmatch(key)
    if match is not None:
        key = f"{match[1]}{int(match[2])}{match[3]}"
    return key


@dataclass(frozen=True)
class Sensor:
    """Typed description of one sensor's band set.

    Args:
        name: Registry name, e.g. ``"sentinel2_l2a"``.
        bands: Band identifiers in the order the data stores them.
        wavelengths: Centre wavelength of each band in nanometres.
        bandwidths: Full width at half maximum of each band in nanometres,
            or ``None`` where the source gives none.
        common_names: STAC ``eo:common_name`` of each band (``None`` entries
            where no common name exists), or ``None``.
        gsd: Ground sample distance in metres (finest band), or ``None``.
        scaling: The rule mapping stored values to the range ``mean`` / ``std``
            are defined on (``ValueScaling.uniform(divisor=10000.0)`` for
            Sentinel-2 reflectance); a one-band rule applies to every band.
            Default: raw values (divisor 1).
        mean: Per-band mean after :attr:`scaling`, or ``None``.
        std: Per-band standard deviation after :attr:`scaling`, or ``None``.
        description: One line on what the record describes.
        citation: Where the numbers come from.
        aliases: Further names of each band (a tuple per band, possibly empty),
            e.g. Landsat Collection-2 product names ``("SR_B4",)``, or ``None``.

    Raises:
        ShapeError: If any per-band field (``scaling`` included, unless it has one
            band) has a length other than ``len(bands)``.
        ValueError: If a wavelength is not in ``[100, 20000]`` nm, a bandwidth or
            std is not positive, or two bands have the same identifier in another
            spelling (``"B4"`` and ``"B04"``).

    Example:
        >>> s = Sensor("toy", bands=("a", "b"), wavelengths=(500.0, 600.0))
        >>> s.num_bands
        2
    """

    name: str
    bands: tuple[str, ...]
    wavelengths: tuple[float, ...]
    bandwidths: tuple[float, ...] | None = None
    common_names: tuple[str | None, ...] | None = None
    gsd: float | None = None
    scaling: ValueScaling = _RAW_VALUES
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    description: str = ""
    citation: str = ""
    aliases: tuple[tuple[str, ...], ...] | None = None
    _by_key: dict[str, tuple[int, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        n = len(self.bands)
        if n == 0:
            raise ShapeError(f"Sensor {self.name!r} has no bands; expected at least one.")
        if len(set(self.bands)) != n:
            raise ValueError(f"Sensor {self.name!r} has duplicate band names: {self.bands}.")
        for label in ("wavelengths", "bandwidths", "common_names", "mean", "std", "aliases"):
            values = getattr(self, label)
            if values is not None and len(values) != n:
                raise ShapeError(
                    f"Sensor {self.name!r} has {n} bands but {len(values)} {label}. "
                    f"Give one value per band."
                )
        _check_wavelengths(tuple(self.wavelengths), f"Sensor {self.name!r} wavelengths")
        for label in ("bandwidths", "std"):
            values = getattr(self, label)
            if values is not None and not all(math.isfinite(v) and v > 0 for v in values):
                raise ValueError(f"Sensor {self.name!r}: all {label} must be positive numbers.")
        rule = self.scaling
        if rule.num_bands == 1 and n > 1:
            rule = ValueScaling.uniform(
                n, divisor=rule.divisor[0], offset=rule.offset[0], clip=rule.clip
            )
            object.__setattr__(self, "scaling", rule)
        if rule.num_bands != n:
            raise ShapeError(
                f"Sensor {self.name!r} has {n} bands but its scaling rule covers "
                f"{rule.num_bands}. Give one offset and divisor per band, or one for all."
            )
        if len({band_name_key(b) for b in self.bands}) != n:
            raise ValueError(
                f"Sensor {self.name!r} has band identifiers that differ only in case or "
                f"zero padding: {self.bands}. Give every band a distinct name."
            )
        by_key: dict[str, list[int]] = {}
        for i in range(n):
            for alias in self.names_of(i):
                hits = by_key.setdefault(band_name_key(alias), [])
                if i not in hits:
                    hits.append(i)
        object.__setattr__(self, "_by_key", {k: tuple(v) for k, v in by_key.items()})

    @property
    def num_bands(self) -> int:
        """Number of bands."""
        return len(self.bands)

    def names_of(self, index: int) -> tuple[str, ...]:
        """Every name band ``index`` answers to: identifier, common name, aliases.

        Args:
            index: Zero-based band position.

        Returns:
            The names, identifier first.

        Example:
            >>> get_sensor("landsat89_oli_tirs").names_of(3)
            ('B4', 'red', 'SR_B4')
        """
        names = [self.bands[index]]
        if self.common_names is not None and self.common_names[index] is not None:
            names.append(str(self.common_names[index]))
        if self.aliases is not None:
            names.extend(self.aliases[index])
        return tuple(dict.fromkeys(names))

    def band_index(self, name: str) -> int:
        """Position of a band given any of its names: the one band resolver of geofm.

        Accepts the identifier (``"B04"``), its STAC common name (``"red"``), the
        record's aliases (``"SR_B4"`` for Landsat, ``"rededge1"`` for Sentinel-2),
        case-insensitively and with or without zero padding (``"B4"``, ``"b04"``,
        ``"B8a"``), as torchgeo and Google Earth Engine spell them. The exact
        identifier always wins; a name shared by several bands (``"rededge"`` for
        Sentinel-2 B05, B06 and B07) is refused rather than guessed.

        Args:
            name: Band identifier, common name or alias, in any spelling.

        Returns:
            Zero-based index into :attr:`bands`.

        Raises:
            UnknownNameError: If no band has that name (with close names), or
                several bands do (naming them).
            TypeError: If ``name`` is not a string.

        Example:
            >>> s2 = get_sensor("sentinel2_l2a")
            >>> s2.band_index("nir"), s2.band_index("B4"), s2.band_index("b8a")
            (7, 3, 8)
            >>> s2.band_index("rededge")
            Traceback (most recent call last):
            ...
            geofm.errors.UnknownNameError: Band 'rededge' is ambiguous ... B05, B06, B07. ...
        """
        if name in self.bands:
            return self.bands.index(name)
        hits = self._by_key.get(band_name_key(name), ())
        if len(hits) == 1:
            return hits[0]
        if hits:
            raise UnknownNameError(
                f"Band {name!r} is ambiguous in sensor {self.name!r}: it names "
                f"{', '.join(self.bands[i] for i in hits)}. Pass one of those identifiers."
            )
        every = [n for i in range(self.num_bands) for n in self.names_of(i)]
        lowered = {n.lower(): n for n in reversed(every)}
        close = difflib.get_close_matches(name.lower(), list(lowered), n=3)
        hint = f" Did you mean {', '.join(repr(lowered[c]) for c in close)}?" if close else ""
        raise UnknownNameError(
            f"Band {name!r} is not a band of sensor {self.name!r}.{hint} "
            f"Expected one of: {', '.join(self.bands)} (or their common names and aliases)."
        )

    def canonical(self, names: Sequence[str]) -> tuple[str, ...]:
        """The catalog identifiers of ``names`` (any spelling :meth:`band_index` takes).

        Args:
            names: Band names, common names or aliases.

        Returns:
            One identifier of :attr:`bands` per name, in the given order.

        Raises:
            UnknownNameError: If a name is unknown or ambiguous.
            TypeError: If ``names`` is a single string.

        Example:
            >>> get_sensor("sentinel2_l2a").canonical(["red", "B3", "b02", "B8a"])
            ('B04', 'B03', 'B02', 'B8A')
            >>> get_sensor("landsat89_oli_tirs").canonical(["SR_B4", "ST_B10"])
            ('B4', 'B10')
        """
        if isinstance(names, str):
            raise TypeError(
                f"canonical() takes a sequence of band names, got the string {names!r}. "
                f"Wrap it in a list: [{names!r}]."
            )
        return tuple(self.bands[self.band_index(n)] for n in names)

    def select(self, bands: Sequence[str], name: str | None = None) -> Sensor:
        """A new sensor record holding only ``bands``, in the given order.

        Args:
            bands: Band names of this sensor, in any spelling :meth:`band_index` takes.
            name: Name of the new record (default: ``"<name>[b1,b2,...]"`` with
                the canonical identifiers).

        Returns:
            The subset sensor, with every per-band field sliced alike and
            canonical band identifiers.

        Raises:
            UnknownNameError: If a band is unknown or ambiguous in this sensor.

        Example:
            >>> sub = get_sensor("sentinel2_l2a").select(["red", "B3", "b02"])
            >>> sub.name, sub.wavelengths
            ('sentinel2_l2a[B04,B03,B02]', (664.6, 559.8, 492.4))
        """
        idx = [self.band_index(b) for b in bands]

        def pick(values: tuple[object, ...] | None) -> tuple[object, ...] | None:
            return None if values is None else tuple(values[i] for i in idx)

        picked = tuple(self.bands[i] for i in idx)
        return Sensor(
            name=name or f"{self.name}[{','.join(picked)}]",
            bands=picked,
            wavelengths=tuple(self.wavelengths[i] for i in idx),
            bandwidths=pick(self.bandwidths),  # type: ignore[arg-type]
            common_names=pick(self.common_names),  # type: ignore[arg-type]
            gsd=self.gsd,
            scaling=self.scaling.select(idx),
            mean=pick(self.mean),  # type: ignore[arg-type]
            std=pick(self.std),  # type: ignore[arg-type]
            description=self.description,
            citation=self.citation,
            aliases=pick(self.aliases),  # type: ignore[arg-type]
        )


def register_sensor(sensor: Sensor) -> Sensor:
    """Add ``sensor`` to the catalog under ``sensor.name`` and return it.

    Args:
        sensor: The record to register.

    Returns:
        The same record.

    Raises:
        ValueError: If the name is already registered.

    Example:
        >>> _ = register_sensor(Sensor("doc_toy", bands=("x",), wavelengths=(550.0,)))
        >>> "doc_toy" in list_sensors("doc_*")
        True
    """
    SENSORS.add(sensor.name, sensor)
    return sensor


def get_sensor(name: str) -> Sensor:
    """Look up a sensor record by name.

    Args:
        name: Registered name, e.g. ``"sentinel2_l1c"``.

    Returns:
        The :class:`Sensor`.

    Raises:
        UnknownNameError: If no sensor has that name (with suggestions).

    Example:
        >>> get_sensor("rgb").bands
        ('red', 'green', 'blue')
    """
    return SENSORS.get(name)


def list_sensors(pattern: str = "*") -> list[str]:
    """Sorted names of registered sensors matching an ``fnmatch`` glob.

    Args:
        pattern: Glob such as ``"sentinel2*"``.

    Returns:
        Sorted sensor names.

    Example:
        >>> list_sensors("sentinel2_l*")
        ['sentinel2_l1c', 'sentinel2_l2a']
    """
    return SENSORS.list(pattern)


def resolve_bands(
    bands: str | Sensor | Sequence[str], *, sensor: str | Sensor | None = None
) -> Sensor | tuple[str, ...]:
    """Turn a sensor name, a sensor record or a list of band names into band info.

    A string is looked up as a sensor name. A sequence of band names becomes,
    with ``sensor``, that sensor's record of those bands (canonical identifiers,
    wavelengths and statistics; any spelling :meth:`Sensor.band_index` takes);
    without ``sensor`` it is returned as a tuple of names whose wavelengths are
    unknown.

    Args:
        bands: Sensor name, :class:`Sensor`, or sequence of band names.
        sensor: Sensor (or its name) the band names belong to, or ``None``.

    Returns:
        The :class:`Sensor` or the tuple of names.

    Raises:
        UnknownNameError: If a string is not a registered sensor name, or a band
            name is unknown or ambiguous in ``sensor``.
        ValueError: If ``sensor`` is given with a sensor name or record as ``bands``.

    Example:
        >>> resolve_bands(["B04", "B03"])
        ('B04', 'B03')
        >>> resolve_bands(["SR_B4", "nir08"], sensor="landsat89_oli").bands
        ('B4', 'B5')
        >>> resolve_bands("rgb").name
        'rgb'
    """
    if isinstance(bands, (str, Sensor)):
        if sensor is not None:
            raise ValueError(
                f"resolve_bands got a sensor as bands ({bands!r}) and sensor={sensor!r}. "
                "Pass band names with sensor=, or the sensor alone."
            )
        return bands if isinstance(bands, Sensor) else get_sensor(bands)
    if sensor is None:
        return tuple(bands)
    record = get_sensor(sensor) if isinstance(sensor, str) else sensor
    return record.select(list(bands))


def resolve_wavelengths(
    spec: str | Sensor | Sequence[float] | Sequence[str], *, sensor: str | Sensor | None = None
) -> tuple[float, ...]:
    """Centre wavelengths in nm of a band set: the one wavelength resolver of geofm.

    Accepts a registered sensor name, a :class:`Sensor`, wavelengths in nm, or
    band names (identifiers or STAC common names) of ``sensor``. Every result
    passes one check: at least one value, each in ``[100, 20000]`` nm (near
    ultraviolet to thermal infrared).

    Args:
        spec: Sensor name, :class:`Sensor`, centre wavelengths (nm), or band names.
        sensor: Sensor (or its name) whose bands ``spec`` names; needed only for band names.

    Returns:
        One centre wavelength per band, in nm.

    Raises:
        UnknownNameError: If a sensor or band name is unknown (with suggestions).
        ValueError: If a value is not a wavelength in ``[100, 20000]`` nm (micrometres
            are named in the message), none is given, or band names come without
            ``sensor``.

    Example:
        >>> resolve_wavelengths("rgb")
        (664.6, 559.8, 492.4)
        >>> resolve_wavelengths(["B04", "nir"], sensor="sentinel2_l2a")
        (664.6, 832.8)
        >>> resolve_wavelengths([490, 560.0])
        (490.0, 560.0)
    """
    if isinstance(spec, str):
        return get_sensor(spec).wavelengths
    if isinstance(spec, Sensor):
        return spec.wavelengths
    values: list[float | str] = list(spec)
    names = [v for v in values if isinstance(v, str)]
    if names and len(names) == len(values):
        if sensor is None:
            raise ValueError(
                f"Band names {names} need a sensor to look up their wavelengths. "
                "Pass sensor='sentinel2_l2a' (or another name from list_sensors()), or "
                "give the wavelengths in nm."
            )
        record = get_sensor(sensor) if isinstance(sensor, str) else sensor
        return record.select(names).wavelengths
    if names:
        raise ValueError(
            f"wavelengths mix band names and numbers: {values}. Give either band "
            "names (with sensor=) or centre wavelengths in nm."
        )
    return _check_wavelengths(tuple(float(w) for w in values), "wavelengths")


# ---------------------------------------------------------------------------
# Catalog entries
# ---------------------------------------------------------------------------

# Sentinel-2A centre wavelengths and FWHM in nm (ESA MSI spectral response).
_S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11",
             "B12")  # fmt: skip
_S2_WAVELENGTHS = (442.7, 492.4, 559.8, 664.6, 704.1, 740.5, 782.8, 832.8, 864.7, 945.1, 1373.5,
                   1613.7, 2202.4)  # fmt: skip
_S2_BANDWIDTHS = (21.0, 66.0, 36.0, 31.0, 15.0, 15.0, 20.0, 106.0, 21.0, 20.0, 31.0, 91.0, 175.0)
_S2_COMMON: tuple[str | None, ...] = ("coastal", "blue", "green", "red", "rededge", "rededge",
                                       "rededge", "nir", "nir08", "nir09", "cirrus", "swir16",
                                       "swir22")  # fmt: skip
# The three red-edge bands share the STAC common name "rededge"; Earth Search's
# asset keys (also Clay's and Awesome Spectral Indices' names) tell them apart.
_S2_ALIASES: tuple[tuple[str, ...], ...] = ((), (), (), (), ("rededge1",), ("rededge2",),
                                            ("rededge3",), (), (), (), (), (), ())  # fmt: skip

# SSL4EO-S12 band statistics (Wang et al., "SSL4EO-S12", IEEE GRSM 2023), computed on
# 50k of its patches and published in zhu-xlab/SSL4EO-S12
# src/benchmark/pretrain_ssl/datasets/SSL4EO/ssl4eo_dataset.py (commit 1dc0c83), the
# file torchgeo's SSL4EO-S12 code cites. Units: stored DN (reflectance x 10000); the
# catalog divides them by 10000 to match the records' scaling. Band order B01-B12 with
# B8A after B08 (L1C with B10, L2A without), as in the catalog.
_SSL4EO_S12_CITATION = (
    "Statistics: SSL4EO-S12 (Wang et al. 2023), zhu-xlab/SSL4EO-S12 "
    "src/benchmark/pretrain_ssl/datasets/SSL4EO/ssl4eo_dataset.py (S2C_* for L1C, S2A_* "
    "for L2A; 50k patches), divided by 10000."
)
_SSL4EO_L1C_MEAN_DN = (1605.57504906, 1390.78157673, 1314.8729939, 1363.52445545, 1549.44374991,
                       2091.74883118, 2371.7172463, 2299.90463006, 2560.29504086, 830.06605044,
                       22.10351321, 2177.07172323, 1524.06546312)  # fmt: skip
_SSL4EO_L1C_STD_DN = (786.78685367, 850.34818441, 875.06484736, 1138.84957046, 1122.17775652,
                      1161.59187054, 1274.39184232, 1248.42891965, 1345.52684884, 577.31607053,
                      51.15431158, 1336.09932639, 1136.53823676)  # fmt: skip
_SSL4EO_L2A_MEAN_DN = (752.40087073, 884.29673756, 1144.16202635, 1297.47289228, 1624.90992062,
                       2194.6423161, 2422.21248945, 2517.76053101, 2581.64687018, 2645.51888987,
                       2368.51236873, 1805.06846033)  # fmt: skip
_SSL4EO_L2A_STD_DN = (1108.02887453, 1155.15170768, 1183.6292542, 1368.11351514, 1370.265037,
                      1355.55390699, 1416.51487101, 1474.78900051, 1439.3086061, 1582.28010962,
                      1455.52084939, 1343.48379601)  # fmt: skip


def _per_reflectance(values: tuple[float, ...]) -> tuple[float, ...]:
    """Sentinel-2 DN statistics in reflectance units (the records' ``/10000`` scaling)."""
    return tuple(v / 10000.0 for v in values)


_S2_L1C = register_sensor(
    Sensor(
        name="sentinel2_l1c",
        bands=_S2_BANDS,
        wavelengths=_S2_WAVELENGTHS,
        bandwidths=_S2_BANDWIDTHS,
        common_names=_S2_COMMON,
        aliases=_S2_ALIASES,
        gsd=10.0,
        scaling=ValueScaling.uniform(divisor=10000.0),
        mean=_per_reflectance(_SSL4EO_L1C_MEAN_DN),
        std=_per_reflectance(_SSL4EO_L1C_STD_DN),
        description=(
            "Sentinel-2 MSI Level-1C top-of-atmosphere reflectance, 13 bands, /10000; "
            "SSL4EO-S12 statistics."
        ),
        citation="ESA Sentinel-2 MSI spectral response functions (S2A). " + _SSL4EO_S12_CITATION,
    )
)
# torchgeo's SSL4EO-S12 weights (MoCo, DINO; ResNet and ViT) take L1C divided by 10000
# and nothing else (torchgeo/models/resnet.py, _ssl4eo_s12_transforms_s2_10k): weights
# entries name this record so their input spec does not standardise.
register_sensor(
    replace(
        _S2_L1C,
        name="ssl4eo_s12_sentinel2_l1c",
        mean=None,
        std=None,
        description=(
            "Sentinel-2 L1C, 13 bands, as torchgeo's SSL4EO-S12 weights take it: /10000, "
            "no standardisation."
        ),
        citation=(
            "ESA Sentinel-2 MSI spectral response functions (S2A). Input rule: torchgeo "
            "torchgeo/models/resnet.py _ssl4eo_s12_transforms_s2_10k (Normalize(0, 10000))."
        ),
    )
)
register_sensor(
    replace(
        _S2_L1C.select([b for b in _S2_BANDS if b != "B10"], name="sentinel2_l2a"),
        mean=_per_reflectance(_SSL4EO_L2A_MEAN_DN),
        std=_per_reflectance(_SSL4EO_L2A_STD_DN),
        description=(
            "Sentinel-2 MSI Level-2A surface reflectance, 12 bands (no B10 cirrus), /10000; "
            "SSL4EO-S12 statistics."
        ),
    )
)
register_sensor(
    Sensor(
        name="rgb",
        bands=("red", "green", "blue"),
        wavelengths=(664.6, 559.8, 492.4),
        common_names=("red", "green", "blue"),
        scaling=ValueScaling.uniform(divisor=255.0),
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        description=(
            "Plain 8-bit RGB with ImageNet statistics; wavelengths are nominal (Sentinel-2 R/G/B)."
        ),
        citation="ImageNet mean/std as used by torchvision and timm.",
    )
)

# --- Landsat 8/9 -------------------------------------------------------------
# OLI centre wavelengths and FWHM in nm: Barsi et al., "The Spectral Response of
# the Landsat-8 Operational Land Imager", Remote Sensing 6(10), 2014 (Landsat 9
# OLI-2 has the same nominal bands). TIRS B10/B11: centres and widths of the
# USGS band edges 10600-11190 nm and 11500-12510 nm.
_LANDSAT_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9", "B10", "B11")
_LANDSAT_WAVELENGTHS = (442.96, 482.04, 561.41, 654.59, 864.67, 1608.86, 2200.73, 589.50, 1373.43,
                        10895.0, 12005.0)  # fmt: skip
_LANDSAT_BANDWIDTHS = (15.98, 60.04, 57.33, 37.47, 28.25, 84.72, 186.66, 172.40, 20.39, 590.0,
                       1010.0)  # fmt: skip
_LANDSAT_COMMON: tuple[str | None, ...] = ("coastal", "blue", "green", "red", "nir08", "swir16",
                                            "swir22", "pan", "cirrus", "lwir11",
                                            "lwir12")  # fmt: skip
# Collection-2 product names (Level-2 surface reflectance SR_B1-SR_B7, surface
# temperature ST_B10; also torchgeo's and Google Earth Engine's band names).
_LANDSAT_ALIASES: tuple[tuple[str, ...], ...] = tuple(
    (f"SR_{b}",) if i < 7 else (("ST_B10",) if b == "B10" else ())
    for i, b in enumerate(_LANDSAT_BANDS)
)
_LANDSAT_CITATION = (
    "Barsi et al. 2014, Remote Sens. 6(10):10232 (OLI); USGS Landsat 8/9 band designations (TIRS)."
)
_LANDSAT = register_sensor(
    Sensor(
        name="landsat89_oli_tirs",
        bands=_LANDSAT_BANDS,
        wavelengths=_LANDSAT_WAVELENGTHS,
        bandwidths=_LANDSAT_BANDWIDTHS,
        common_names=_LANDSAT_COMMON,
        aliases=_LANDSAT_ALIASES,
        gsd=15.0,
        description=(
            "Landsat 8 OLI/TIRS and Landsat 9 OLI-2/TIRS-2, bands B1-B11 as stored "
            "(raw DN, no statistics); 30 m, pan B8 15 m, thermal 100 m."
        ),
        citation=_LANDSAT_CITATION,
    )
)
register_sensor(
    _LANDSAT.select(
        _LANDSAT_BANDS[:9],
        name="landsat89_oli",
    )
)

# Landsat 8/9 Collection-2 Level-2 surface reflectance, the six bands Clay v1 trains
# on (its only published Landsat 8/9 statistics). USGS scaling of the stored uint16
# values: reflectance = DN * 2.75e-5 - 0.2, i.e. (DN - 7272.72...) / 36363.63...
# Clay publishes mean/std on the stored DN (Clay-foundation/model configs/metadata.yaml,
# "landsat-c2l2-sr"); the catalog maps them linearly to reflectance units.
_C2L2_SR_GAIN, _C2L2_SR_ADD = 2.75e-5, -0.2
_CLAY_LANDSAT_SR_DN = {  # band: (mean, std) in stored DN
    "B2": (12474.0, 10144.0),  # blue
    "B3": (13310.0, 9408.0),  # green
    "B4": (13705.0, 9578.0),  # red
    "B5": (17801.0, 8277.0),  # nir08
    "B6": (14615.0, 5300.0),  # swir16
    "B7": (12701.0, 4522.0),  # swir22
}
register_sensor(
    replace(
        _LANDSAT.select(tuple(_CLAY_LANDSAT_SR_DN), name="landsat89_c2l2_sr"),
        gsd=30.0,
        scaling=ValueScaling.uniform(
            divisor=1 / _C2L2_SR_GAIN, offset=-_C2L2_SR_ADD / _C2L2_SR_GAIN
        ),
        mean=tuple(m * _C2L2_SR_GAIN + _C2L2_SR_ADD for m, _ in _CLAY_LANDSAT_SR_DN.values()),
        std=tuple(s * _C2L2_SR_GAIN for _, s in _CLAY_LANDSAT_SR_DN.values()),
        description=(
            "Landsat 8/9 Collection-2 Level-2 surface reflectance, bands B2-B7 (SR_B2-SR_B7) "
            "as stored (uint16); USGS scale DN * 2.75e-5 - 0.2; Clay v1 statistics."
        ),
        citation=(
            _LANDSAT_CITATION + " Scaling: USGS Landsat Collection 2 Level-2 Science Product "
            "Guide. Statistics: Clay-foundation/model configs/metadata.yaml "
            "(landsat-c2l2-sr; Clay v1 training data, Landsat 8 and 9), mapped to reflectance."
        ),
    )
)

# --- SpectralEarth hyperspectral sensors ----------------------------------------
_SE_CITATION = (
    "SpectralEarth (Braham et al., arXiv 2408.08447); statistics from "
    "https://github.com/AABNassim/spectral_earth data/*statistics*."
)
_SE_STATS: dict[str, dict[str, list[float]]] = _read_package_json("spectral_earth_stats.json")[
    "sensors"
]


def _band_table(filename: str) -> dict[str, Any]:
    """``bands``, ``wavelengths`` and ``bandwidths`` of a packaged band table (CSV).

    Rows carry ``center_nm`` and ``fwhm_nm`` and name the band either directly
    (``band``) or by its zero-based position in the sensor (``original_idx``,
    named ``B<1-based, 3 digits>``).
    """
    rows = _read_package_csv(filename)
    return {
        "bands": tuple(
            r["band"] if "band" in r else f"B{int(r['original_idx']) + 1:03d}" for r in rows
        ),
        "wavelengths": tuple(float(r["center_nm"]) for r in rows),
        "bandwidths": tuple(float(r["fwhm_nm"]) for r in rows),
    }


def _numbered_bands(wavelengths: Iterable[float]) -> dict[str, Any]:
    """``bands`` ``B001``, ``B002``, ... and ``wavelengths`` of a sensor without a band table."""
    centres = tuple(wavelengths)
    return {"bands": tuple(f"B{i + 1:03d}" for i in range(len(centres))), "wavelengths": centres}


def _register_spectral_earth(
    name: str,
    stats_key: str,
    *,
    bands: tuple[str, ...],
    wavelengths: tuple[float, ...],
    bandwidths: tuple[float, ...] | None = None,
    gsd: float | None = 30.0,
    description: str,
    band_source: str,
) -> None:
    """Register a hyperspectral sensor with SpectralEarth's statistics on raw values."""
    stats = _SE_STATS[stats_key]
    register_sensor(
        Sensor(
            name=name,
            bands=bands,
            wavelengths=wavelengths,
            bandwidths=bandwidths,
            gsd=gsd,
            mean=tuple(stats["mean"]),
            std=tuple(stats["std"]),
            description=description,
            citation=f"{_SE_CITATION} {band_source}",
        )
    )


_register_spectral_earth(
    "enmap_spectral_earth",
    "enmap",
    **_band_table("enmap_spectral_earth_bands.csv"),
    description=(
        "EnMAP L2A, the 202 of 224 bands SpectralEarth keeps (names are 1-based "
        "EnMAP band numbers); statistics on raw int16 reflectance DN."
    ),
    band_source="Band table: data/enmap_bands_remapped.csv.",
)

# DESIS: SpectralEarth gives statistics but no band table. Centres are the
# nominal DESIS sampling (235 bands from 401.275 nm every 2.553 nm, as used by
# RemoteSensingToolbox.jl); per-product centres differ slightly. No FWHM given.
_register_spectral_earth(
    "desis_spectral_earth",
    "desis",
    **_numbered_bands(round(401.275 + 2.553 * i, 3) for i in range(235)),
    description=(
        "DESIS (ISS) 235 VNIR bands with SpectralEarth's statistics on raw DN; "
        "centre wavelengths are nominal (401.275 nm + 2.553 nm per band)."
    ),
    band_source=(
        "Wavelengths: DESIS nominal sampling (DLR; 2.55 nm), as in RemoteSensingToolbox.jl."
    ),
)

# EO-1 Hyperion: the 198 calibrated bands (B008-B057 VNIR, B077-B224 SWIR) of
# the USGS table, in L1 band order. SpectralEarth does not publish its band
# list; 198 is the USGS calibrated count and the statistics' absorption dips
# (near 1400 and 1900 nm) fall on these positions.
_register_spectral_earth(
    "eo1_hyperion_spectral_earth",
    "eo1",
    **_band_table("hyperion_usgs_bands.csv"),
    description=(
        "EO-1 Hyperion, the 198 USGS-calibrated bands in L1 order (VNIR B008-B057, "
        "then SWIR B077-B224), with SpectralEarth's statistics on raw DN."
    ),
    band_source="Wavelengths/FWHM: USGS Hyperion spectral coverage table (eo1.usgs.gov).",
)

# HYPERVIEW (AI4EO challenge, airborne data for the Intuition-1 mission): the
# organisers give 150 contiguous bands over 462-942 nm at 3.2 nm resolution but
# no per-band table; centres here are spread evenly over that range.
_register_spectral_earth(
    "hyperview_spectral_earth",
    "hyperview",
    **_numbered_bands(round(462.0 + i * (942.0 - 462.0) / 149, 3) for i in range(150)),
    gsd=None,
    description=(
        "HYPERVIEW challenge airborne hyperspectral data, 150 bands 462-942 nm "
        "(nominal, evenly spaced centres) with SpectralEarth's statistics on raw values."
    ),
    band_source=(
        "Band range: AI4EO HYPERVIEW challenge description (150 bands, 462-942 nm, 3.2 nm)."
    ),
)

# --- WorldView-3 (SpaceNet-2) ----------------------------------------------------
# Centres and widths from the band edges of the DigitalGlobe WorldView-3
# datasheet (coastal 400-450, blue 450-510, green 510-580, yellow 585-625,
# red 630-690, red edge 705-745, NIR1 770-895, NIR2 860-1040 nm).
_WV3_EDGES = (
    (400.0, 450.0),
    (450.0, 510.0),
    (510.0, 580.0),
    (585.0, 625.0),
    (630.0, 690.0),
    (705.0, 745.0),
    (770.0, 895.0),
    (860.0, 1040.0),
)
_WV3_CITATION = (
    "DigitalGlobe WorldView-3 datasheet (band edges); SpaceNet-2 (van Etten et al. 2018)."
)
_WV3_MS = register_sensor(
    Sensor(
        name="worldview3_spacenet2_ms",
        bands=("coastal", "blue", "green", "yellow", "red", "rededge", "nir1", "nir2"),
        wavelengths=tuple((lo + hi) / 2 for lo, hi in _WV3_EDGES),
        bandwidths=tuple(hi - lo for lo, hi in _WV3_EDGES),
        common_names=("coastal", "blue", "green", "yellow", "red", "rededge", "nir08", "nir09"),
        gsd=1.24,
        description=(
            "WorldView-3 8-band multispectral as in SpaceNet-2 MUL (16-bit, 11-bit range; "
            "raw DN, no statistics)."
        ),
        citation=_WV3_CITATION,
    )
)
register_sensor(
    replace(
        _WV3_MS.select(("red", "green", "blue"), name="worldview3_spacenet2_rgb"),
        gsd=0.3,
        scaling=ValueScaling.uniform(divisor=255.0, clip=(0.0, 1.0)),
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        description=(
            "WorldView-3 RGB pan-sharpened (SpaceNet-2 RGB-PanSharpen / PS-RGB, 0.3 m) as "
            "EcoVision-LoRA feeds it: raw values clipped to 0-255, /255, ImageNet statistics."
        ),
        citation=_WV3_CITATION + " Scaling: bayramos/Ecovision-LoRA notebooks 4a/4b.",
    )
)

# --- NAIP --------------------------------------------------------------------------
# USDA publishes no single band table (cameras change by year and vendor).
# Centres are the midpoints of the STAC eo:common_name ranges (blue 450-500,
# green 500-600, red 600-700, nir 750-1000 nm): nominal, not measured.
register_sensor(
    Sensor(
        name="naip",
        bands=("red", "green", "blue", "nir"),
        wavelengths=(650.0, 550.0, 475.0, 875.0),
        common_names=("red", "green", "blue", "nir"),
        gsd=1.0,
        scaling=ValueScaling.uniform(divisor=255.0),
        description=(
            "USDA NAIP aerial RGBN, 8-bit (1 m GSD, 0.6 m in recent years); nominal "
            "centre wavelengths; /255 as Satlas feeds aerial imagery; no statistics."
        ),
        citation=(
            "USDA FSA NAIP (stactools-packages/naip band names); wavelengths: STAC eo "
            "common-name ranges; scaling: allenai/satlas Normalization.md."
        ),
    )
)

# --- Fusion-LoRA BigEarthNet-S2 6-band subset ---------------------------------------
_BEN = _read_package_json("bigearthnet_s2_6band_stats.json")["bigearthnet_s2"]
register_sensor(
    replace(
        get_sensor("sentinel2_l2a").select(
            tuple(_BEN["channel_order"]), name="bigearthnet_s2_6band"
        ),
        scaling=ValueScaling.uniform(divisor=10000.0, clip=(0.0, 1.0)),
        mean=tuple(float(v) for v in _BEN["mean"]),
        std=tuple(float(v) for v in _BEN["std"]),
        description=(
            "BigEarthNet-S2 (v2, L2A) bands [B04, B03, B02, B08, B11, B12] as Fusion-LoRA "
            "stores them: /10000, clipped to [0, 1]; mean/std from its config.json."
        ),
        citation=(
            "Eyobed-Abby/fusion-lora-skysense datasets/config.json and prepare_spectral_data.py."
        ),
    )
)

# --- Satlas input rules ---------------------------------------------------------------
_SATLAS_CITATION = "allenai/satlaspretrain_models README and allenai/satlas Normalization.md."
_TCI = ("B04", "B03", "B02")
_SATLAS_S2_MS_SOURCE = _S2_L1C.select((*_TCI, "B05", "B06", "B07", "B08", "B11", "B12"))
register_sensor(
    replace(
        _SATLAS_S2_MS_SOURCE,
        name="satlas_sentinel2_ms",
        bands=("TCI_B04", "TCI_B03", "TCI_B02", "B05", "B06", "B07", "B08", "B11", "B12"),
        scaling=ValueScaling(
            offset=(0.0,) * 9, divisor=(255.0,) * 3 + (8160.0,) * 6, clip=(0.0, 1.0)
        ),
        mean=None,  # Satlas standardises nothing: the SSL4EO-S12 statistics do not apply
        std=None,
        description=(
            "Satlas Sentinel-2 multispectral input: 8-bit true-colour image (TCI R, G, B) "
            "/255, then B05, B06, B07, B08, B11, B12 /8160, all clipped to [0, 1]."
        ),
        citation=_SATLAS_CITATION,
    )
)
register_sensor(
    replace(
        _S2_L1C.select(_TCI),
        name="satlas_sentinel2_rgb",
        bands=("TCI_B04", "TCI_B03", "TCI_B02"),
        scaling=ValueScaling.uniform(divisor=255.0, clip=(0.0, 1.0)),
        mean=None,
        std=None,
        description="Satlas Sentinel-2 RGB input: 8-bit true-colour image (TCI) /255.",
        citation=_SATLAS_CITATION,
    )
)
register_sensor(
    replace(
        _LANDSAT,
        name="satlas_landsat",
        scaling=ValueScaling.uniform(divisor=16320.0, offset=4000.0, clip=(0.0, 1.0)),
        description=(
            "Satlas Landsat 8/9 input: bands B1-B11, (raw - 4000) / 16320 clipped to [0, 1]."
        ),
        citation=_SATLAS_CITATION + " " + _LANDSAT_CITATION,
    )
)
