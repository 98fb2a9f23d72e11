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
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any

from geofm._registry import Registry
from geofm.errors import ShapeError, UnknownNameError

__all__ = [
    "Sensor",
    "ValueScaling",
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

    Raises:
        ShapeError: If any per-band field (``scaling`` included, unless it has one
            band) has a length other than ``len(bands)``.
        ValueError: If a wavelength is not in ``[100, 20000]`` nm, or a bandwidth or
            std is not positive.

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
    _index: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.bands)
        if n == 0:
            raise ShapeError(f"Sensor {self.name!r} has no bands; expected at least one.")
        if len(set(self.bands)) != n:
            raise ValueError(f"Sensor {self.name!r} has duplicate band names: {self.bands}.")
        for label in ("wavelengths", "bandwidths", "common_names", "mean", "std"):
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
        index = {b: i for i, b in enumerate(self.bands)}
        if self.common_names is not None:
            for i, c in enumerate(self.common_names):
                if c is not None and c not in index:
                    index[c] = i
        object.__setattr__(self, "_index", index)

    @property
    def num_bands(self) -> int:
        """Number of bands."""
        return len(self.bands)

    def band_index(self, name: str) -> int:
        """Position of a band given its identifier or its STAC common name.

        Args:
            name: Band identifier (``"B04"``) or common name (``"red"``).

        Returns:
            Zero-based index into :attr:`bands`.

        Raises:
            UnknownNameError: If no band has that name (with suggestions).

        Example:
            >>> get_sensor("sentinel2_l2a").band_index("nir")
            7
        """
        if name not in self._index:
            close = difflib.get_close_matches(name, list(self._index), n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise UnknownNameError(
                f"Band {name!r} is not a band of sensor {self.name!r}.{hint} "
                f"Expected one of: {', '.join(self.bands)} (or their common names)."
            )
        return self._index[name]

    def select(self, bands: Sequence[str], name: str | None = None) -> Sensor:
        """A new sensor record holding only ``bands``, in the given order.

        Args:
            bands: Band identifiers or common names of this sensor.
            name: Name of the new record (default: ``"<name>[b1,b2,...]"``).

        Returns:
            The subset sensor, with every per-band field sliced alike.

        Raises:
            UnknownNameError: If a band is not part of this sensor.

        Example:
            >>> get_sensor("sentinel2_l2a").select(["B04", "B03", "B02"]).wavelengths
            (664.6, 559.8, 492.4)
        """
        idx = [self.band_index(b) for b in bands]

        def pick(values: tuple[object, ...] | None) -> tuple[object, ...] | None:
            return None if values is None else tuple(values[i] for i in idx)

        return Sensor(
            name=name or f"{self.name}[{','.join(bands)}]",
            bands=tuple(self.bands[i] for i in idx),
            wavelengths=tuple(self.wavelengths[i] for i in idx),
            bandwidths=pick(self.bandwidths),  # type: ignore[arg-type]
            common_names=pick(self.common_names),  # type: ignore[arg-type]
            gsd=self.gsd,
            scaling=self.scaling.select(idx),
            mean=pick(self.mean),  # type: ignore[arg-type]
            std=pick(self.std),  # type: ignore[arg-type]
            description=self.description,
            citation=self.citation,
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


def resolve_bands(bands: str | Sensor | Sequence[str]) -> Sensor | tuple[str, ...]:
    """Turn a sensor name, a sensor record or a list of band names into band info.

    A string is looked up as a sensor name; a sequence of strings is returned
    as a tuple of band names (whose wavelengths are unknown).

    Args:
        bands: Sensor name, :class:`Sensor`, or sequence of band names.

    Returns:
        The :class:`Sensor` or the tuple of names.

    Raises:
        UnknownNameError: If a string is not a registered sensor name.

    Example:
        >>> resolve_bands(["B04", "B03"])
        ('B04', 'B03')
        >>> resolve_bands("rgb").name
        'rgb'
    """
    if isinstance(bands, Sensor):
        return bands
    if isinstance(bands, str):
        return get_sensor(bands)
    return tuple(bands)


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

register_sensor(
    Sensor(
        name="sentinel2_l1c",
        bands=_S2_BANDS,
        wavelengths=_S2_WAVELENGTHS,
        bandwidths=_S2_BANDWIDTHS,
        common_names=_S2_COMMON,
        gsd=10.0,
        scaling=ValueScaling.uniform(divisor=10000.0),
        description="Sentinel-2 MSI Level-1C top-of-atmosphere reflectance, 13 bands.",
        citation="ESA Sentinel-2 MSI spectral response functions (S2A).",
    )
)
_L2A = [i for i, b in enumerate(_S2_BANDS) if b != "B10"]
register_sensor(
    Sensor(
        name="sentinel2_l2a",
        bands=tuple(_S2_BANDS[i] for i in _L2A),
        wavelengths=tuple(_S2_WAVELENGTHS[i] for i in _L2A),
        bandwidths=tuple(_S2_BANDWIDTHS[i] for i in _L2A),
        common_names=tuple(_S2_COMMON[i] for i in _L2A),
        gsd=10.0,
        scaling=ValueScaling.uniform(divisor=10000.0),
        description="Sentinel-2 MSI Level-2A surface reflectance, 12 bands (no B10 cirrus).",
        citation="ESA Sentinel-2 MSI spectral response functions (S2A).",
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

# --- SpectralEarth hyperspectral sensors ----------------------------------------
_SE_CITATION = (
    "SpectralEarth (Braham et al., arXiv 2408.08447); statistics from "
    "https://github.com/AABNassim/spectral_earth data/*statistics*."
)
_SE_STATS: dict[str, dict[str, list[float]]] = _read_package_json("spectral_earth_stats.json")[
    "sensors"
]


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


_ENMAP_ROWS = _read_package_csv("enmap_spectral_earth_bands.csv")
_register_spectral_earth(
    "enmap_spectral_earth",
    "enmap",
    bands=tuple(f"B{int(r['original_idx']) + 1:03d}" for r in _ENMAP_ROWS),
    wavelengths=tuple(float(r["center_nm"]) for r in _ENMAP_ROWS),
    bandwidths=tuple(float(r["fwhm_nm"]) for r in _ENMAP_ROWS),
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
    bands=tuple(f"B{i + 1:03d}" for i in range(235)),
    wavelengths=tuple(round(401.275 + 2.553 * i, 3) for i in range(235)),
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
_HYPERION_ROWS = _read_package_csv("hyperion_usgs_bands.csv")
_register_spectral_earth(
    "eo1_hyperion_spectral_earth",
    "eo1",
    bands=tuple(r["band"] for r in _HYPERION_ROWS),
    wavelengths=tuple(float(r["center_nm"]) for r in _HYPERION_ROWS),
    bandwidths=tuple(float(r["fwhm_nm"]) for r in _HYPERION_ROWS),
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
    bands=tuple(f"B{i + 1:03d}" for i in range(150)),
    wavelengths=tuple(round(462.0 + i * (942.0 - 462.0) / 149, 3) for i in range(150)),
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
_S2_L1C = get_sensor("sentinel2_l1c")
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
