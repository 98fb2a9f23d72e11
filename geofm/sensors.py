"""Sensor catalog: band names, centre wavelengths, bandwidths, GSD and normalisation.

Units, used everywhere in geofm:

- wavelengths and bandwidths (FWHM) in **nanometres** (nm);
- ground sample distance (GSD) in **metres**;
- ``scale``: raw digital numbers are divided by ``scale`` before the per-band
  ``mean`` / ``std`` apply, i.e. ``normalised = (raw / scale - mean) / std``.

Band names are the sensor's own identifiers (``"B04"`` for Sentinel-2);
``common_names`` follow the STAC ``eo:common_name`` vocabulary (``"red"``,
``"nir"``, ``"swir16"``, ...) so bands of different sensors can be matched.

References:
    Sentinel-2 MSI spectral response (ESA, S2-PDGS-TAS-DI-PSD, S2A values);
    STAC electro-optical extension, https://github.com/stac-extensions/eo.

Example:
    >>> from geofm.sensors import get_sensor
    >>> s2 = get_sensor("sentinel2_l2a")
    >>> len(s2.bands), s2.bands[3], s2.wavelengths[3]
    (12, 'B04', 664.6)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from geofm._registry import Registry
from geofm.errors import ShapeError

__all__ = ["Sensor", "get_sensor", "list_sensors", "register_sensor", "resolve_bands"]

SENSORS: Registry[Sensor] = Registry("sensor")


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
        scale: Divisor that maps raw values to the range ``mean``/``std`` are
            defined on (``10000`` for Sentinel-2 reflectance, ``255`` for
            8-bit RGB, ``1`` when the statistics are on raw values).
        mean: Per-band mean after division by ``scale``, or ``None``.
        std: Per-band standard deviation after division by ``scale``, or ``None``.
        description: One line on what the record describes.
        citation: Where the numbers come from.

    Raises:
        ShapeError: If any per-band field has a length other than ``len(bands)``.
        ValueError: If a wavelength, bandwidth, std or ``scale`` is not positive.

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
    scale: float = 1.0
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
        for label in ("wavelengths", "bandwidths", "std"):
            values = getattr(self, label)
            if values is not None and not all(math.isfinite(v) and v > 0 for v in values):
                raise ValueError(f"Sensor {self.name!r}: all {label} must be positive numbers.")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"Sensor {self.name!r}: scale must be positive, got {self.scale}.")
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
            KeyError: If no band has that name.

        Example:
            >>> get_sensor("sentinel2_l2a").band_index("nir")
            7
        """
        return self._index[name]

    def select(self, bands: Sequence[str], name: str | None = None) -> Sensor:
        """A new sensor record holding only ``bands``, in the given order.

        Args:
            bands: Band identifiers or common names of this sensor.
            name: Name of the new record (default: ``"<name>[b1,b2,...]"``).

        Returns:
            The subset sensor, with every per-band field sliced alike.

        Raises:
            ValueError: If a band is not part of this sensor.

        Example:
            >>> get_sensor("sentinel2_l2a").select(["B04", "B03", "B02"]).wavelengths
            (664.6, 559.8, 492.4)
        """
        idx: list[int] = []
        for b in bands:
            if b not in self._index:
                raise ValueError(
                    f"Band {b!r} is not a band of sensor {self.name!r}. "
                    f"Expected one of {', '.join(self.bands)}."
                )
            idx.append(self._index[b])

        def pick(values: tuple[object, ...] | None) -> tuple[object, ...] | None:
            return None if values is None else tuple(values[i] for i in idx)

        return Sensor(
            name=name or f"{self.name}[{','.join(bands)}]",
            bands=tuple(self.bands[i] for i in idx),
            wavelengths=tuple(self.wavelengths[i] for i in idx),
            bandwidths=pick(self.bandwidths),  # type: ignore[arg-type]
            common_names=pick(self.common_names),  # type: ignore[arg-type]
            gsd=self.gsd,
            scale=self.scale,
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


# ---------------------------------------------------------------------------
# Catalog entries
# ---------------------------------------------------------------------------

_S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
# Sentinel-2A centre wavelengths and FWHM in nm (ESA MSI spectral response).
_S2_WAVELENGTHS = (442.7, 492.4, 559.8, 664.6, 704.1, 740.5, 782.8, 832.8, 864.7, 945.1, 1373.5, 1613.7, 2202.4)
_S2_BANDWIDTHS = (21.0, 66.0, 36.0, 31.0, 15.0, 15.0, 20.0, 106.0, 21.0, 20.0, 31.0, 91.0, 175.0)
_S2_COMMON: tuple[str | None, ...] = (
    "coastal", "blue", "green", "red", "rededge", "rededge", "rededge",
    "nir", "nir08", "nir09", "cirrus", "swir16", "swir22",
)

register_sensor(
    Sensor(
        name="sentinel2_l1c",
        bands=_S2_BANDS,
        wavelengths=_S2_WAVELENGTHS,
        bandwidths=_S2_BANDWIDTHS,
        common_names=_S2_COMMON,
        gsd=10.0,
        scale=10000.0,
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
        scale=10000.0,
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
        scale=255.0,
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        description="Plain 8-bit RGB with ImageNet statistics; wavelengths are nominal (Sentinel-2 R/G/B).",
        citation="ImageNet mean/std as used by torchvision and timm.",
    )
)
