"""Adapt a pretrained first layer to another input band set.

Two regimes, chosen by what is known about the bands:

**Band information on both sides** (a :class:`~geofm.sensors.Sensor` or band
names for the pretrained kernel *and* for the new input). Names go through the
one band resolver of :mod:`geofm.sensors` (``B4``, ``B04``, ``red``, ``SR_B4``
... all name the same band, so they pick the same kernel):

1. A target band that is a band of the source copies that source slice exactly.
   Between two sensor records a band counts as the same when it answers to the
   same identifier with centre wavelengths within 5 nm, or when its STAC
   common name names exactly one source band.
2. A target band of a sensor record (so with a known centre wavelength) that
   has no counterpart is linearly interpolated between the two source bands
   whose wavelengths bracket it, or copies the nearest source band outside the
   source range. Every such channel is listed in the report
   (``"interpolate"`` / ``"nearest"``).
3. A target band given only by name that matches no source band is an error
   (with close names). Nothing is averaged or guessed.

**No band information on one side**: timm's ``adapt_input_conv`` exactly,
which needs a 3-channel (RGB) source: one target channel gets the sum of the
three kernels; any other count repeats them cyclically and rescales by
``3 / C_dst``. Any other source channel count is an error that says which band
information to pass.

Every choice is recorded in an :class:`AdaptationReport`; nothing is ever
re-initialised silently. Wavelengths are in nanometres (see :mod:`geofm.sensors`).

Reference: timm ``timm/models/_manipulate.py`` ``adapt_input_conv``
(https://github.com/huggingface/pytorch-image-models).

Example:
    >>> import torch
    >>> from geofm.sensors import get_sensor
    >>> w = torch.randn(8, 3, 4, 4)
    >>> new, report = adapt_input_weight(
    ...     w, target_in_chans=13, source_bands=get_sensor("rgb"),
    ...     target_bands=get_sensor("sentinel2_l1c"))
    >>> new.shape
    torch.Size([8, 13, 4, 4])
    >>> torch.equal(new[:, 3], w[:, 0])  # B04 <- red
    True
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from geofm.errors import ShapeError, UnknownNameError
from geofm.sensors import Sensor, band_name_key

__all__ = ["AdaptationReport", "BandInfo", "ChannelOrigin", "adapt_input_weight"]

BandInfo = Sensor | Sequence[str]
"""Band information: a :class:`~geofm.sensors.Sensor` or a sequence of band names."""

Method = Literal["copy", "interpolate", "nearest", "sum", "repeat"]

# Centre wavelengths of "the same band" in two sensor records differ by less than
# this (S2A vs S2B differ by < 5 nm; different bands of one sensor by far more).
_SAME_BAND_NM = 5.0
# timm's adapt_input_conv knows only RGB sources.
_TIMM_SOURCE_CHANS = 3


@dataclass(frozen=True)
class ChannelOrigin:
    """Where one target input channel's weights came from.

    Args:
        index: Target channel index.
        band: Target band name, if known.
        method: ``"copy"`` (same band in the source), ``"interpolate"``
            (between two source bands by wavelength), ``"nearest"`` (outside
            the source wavelength range), ``"sum"`` (timm: one channel from RGB),
            or ``"repeat"`` (timm: cyclic repeat, rescaled).
        sources: ``(source_index, weight)`` pairs combined for this channel.

    Example:
        >>> ChannelOrigin(0, "B04", "copy", ((0, 1.0),)).is_new
        False
    """

    index: int
    band: str | None
    method: Method
    sources: tuple[tuple[int, float], ...]

    @property
    def is_new(self) -> bool:
        """True when the channel has no exact counterpart in the source."""
        return self.method != "copy"


@dataclass(frozen=True)
class AdaptationReport:
    """Record of an input-layer adaptation.

    Args:
        source_in_chans: Channel count of the pretrained layer.
        target_in_chans: Channel count after adaptation.
        channels: One :class:`ChannelOrigin` per target channel.
        rescale: Factor the repeated kernels were multiplied by (``1.0`` unless
            timm's cyclic-repeat rule applied).

    Example:
        >>> import torch
        >>> _, r = adapt_input_weight(torch.ones(2, 3, 1, 1), target_in_chans=6)
        >>> r.new_channels, r.rescale
        ((0, 1, 2, 3, 4, 5), 0.5)
    """

    source_in_chans: int
    target_in_chans: int
    channels: tuple[ChannelOrigin, ...]
    rescale: float = 1.0

    @property
    def copied(self) -> dict[int, int]:
        """Map target channel -> source channel for exact copies."""
        return {c.index: c.sources[0][0] for c in self.channels if c.method == "copy"}

    @property
    def new_channels(self) -> tuple[int, ...]:
        """Target channels that did not exist in the source."""
        return tuple(c.index for c in self.channels if c.is_new)

    @property
    def is_identity(self) -> bool:
        """True when every channel copies the source channel of the same index."""
        return self.source_in_chans == self.target_in_chans and self.copied == {
            i: i for i in range(self.target_in_chans)
        }

    def summary(self) -> str:
        """One line: how many channels each method produced.

        Returns:
            E.g. ``"3 copied, 8 interpolated by wavelength, 2 nearest by wavelength"``.

        Example:
            >>> import torch
            >>> from geofm.sensors import get_sensor
            >>> _, r = adapt_input_weight(torch.ones(1, 9, 1, 1), target_in_chans=12,
            ...     source_bands=get_sensor("landsat89_oli"),
            ...     target_bands=get_sensor("sentinel2_l2a"))
            >>> r.summary()
            '7 copied, 5 interpolated by wavelength'
        """
        labels = {
            "copy": "copied",
            "interpolate": "interpolated by wavelength",
            "nearest": "nearest by wavelength",
            "sum": "summed (timm)",
            "repeat": "repeated (timm)",
        }
        counts = {m: sum(c.method == m for c in self.channels) for m in labels}
        return ", ".join(f"{n} {labels[m]}" for m, n in counts.items() if n)

    def __str__(self) -> str:
        rows = [f"input channels {self.source_in_chans} -> {self.target_in_chans}"]
        for c in self.channels:
            src = ", ".join(f"{i}x{w:.3g}" for i, w in c.sources)
            rows.append(f"  [{c.index}] {c.band or '?'}: {c.method} from {src}")
        if self.rescale != 1.0:
            rows.append(f"  kernel rescaled by {self.rescale:.4g}")
        return "\n".join(rows)


def _count(info: BandInfo) -> int:
    return info.num_bands if isinstance(info, Sensor) else len(info)


def _interpolation(
    target_wl: float, source_wl: Sequence[float]
) -> tuple[Method, tuple[tuple[int, float], ...]]:
    """Linear interpolation weights of ``target_wl`` between the bracketing source bands."""
    order = sorted(range(len(source_wl)), key=lambda i: source_wl[i])
    lo, hi = order[0], order[-1]
    if target_wl <= source_wl[lo]:
        return "nearest", ((lo, 1.0),)
    if target_wl >= source_wl[hi]:
        return "nearest", ((hi, 1.0),)
    for a, b in itertools.pairwise(order):
        wa, wb = source_wl[a], source_wl[b]
        if wa <= target_wl <= wb:
            t = (target_wl - wa) / (wb - wa) if wb > wa else 0.0
            return "interpolate", ((a, 1.0 - t), (b, t))
    raise AssertionError("unreachable: target wavelength is inside the source range")


def _same_band(source: Sensor, target: Sensor, i: int) -> int | None:
    """The source band that is target band ``i``, or ``None`` (see the module docstring)."""
    try:
        j = source.band_index(target.bands[i])
    except UnknownNameError:
        pass
    else:
        if abs(source.wavelengths[j] - target.wavelengths[i]) <= _SAME_BAND_NM:
            return j
    common = target.common_names[i] if target.common_names is not None else None
    if common is not None:
        try:
            return source.band_index(common)
        except UnknownNameError:  # no such band, or several (e.g. "rededge"): by wavelength
            return None
    return None


def _match_sensors(source: Sensor, target: Sensor) -> list[ChannelOrigin]:
    channels: list[ChannelOrigin] = []
    for i, band in enumerate(target.bands):
        j = _same_band(source, target, i)
        if j is not None:
            channels.append(ChannelOrigin(i, band, "copy", ((j, 1.0),)))
        else:
            method, sources = _interpolation(target.wavelengths[i], source.wavelengths)
            channels.append(ChannelOrigin(i, band, method, sources))
    return channels


def _match_names_to_sensor(source: Sensor, names: Sequence[str]) -> list[ChannelOrigin]:
    channels = []
    for i, name in enumerate(names):
        try:
            j = source.band_index(name)
        except UnknownNameError as exc:
            raise UnknownNameError(
                f"target_bands: {exc} Band names are looked up among the pretrained bands; "
                "to interpolate a band the checkpoint lacks by wavelength, pass the bands as "
                "a sensor record, e.g. get_sensor('sentinel2_l2a').select([...])."
            ) from exc
        channels.append(ChannelOrigin(i, source.bands[j], "copy", ((j, 1.0),)))
    return channels


def _match_names(source: Sequence[str], target: Sequence[str]) -> list[ChannelOrigin]:
    """Match bare names by their spelling-insensitive key (no sensor known)."""
    by_key: dict[str, list[int]] = {}
    for j, name in enumerate(source):
        by_key.setdefault(band_name_key(name), []).append(j)
    channels = []
    for i, name in enumerate(target):
        hits = by_key.get(band_name_key(name), [])
        if len(hits) > 1:
            raise UnknownNameError(
                f"target_bands: band {name!r} matches several pretrained bands "
                f"({', '.join(source[j] for j in hits)}). Name the source bands distinctly."
            )
        if not hits:
            close = difflib.get_close_matches(name, list(source), n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise UnknownNameError(
                f"target_bands: band {name!r} is not among the pretrained bands "
                f"{', '.join(source)}.{hint} Give the bands as sensor records (with "
                "wavelengths) to interpolate new bands."
            )
        channels.append(ChannelOrigin(i, name, "copy", ((hits[0], 1.0),)))
    return channels


def _match(source: BandInfo, target: BandInfo) -> list[ChannelOrigin]:
    if isinstance(source, Sensor):
        if isinstance(target, Sensor):
            return _match_sensors(source, target)
        return _match_names_to_sensor(source, list(target))
    if isinstance(target, Sensor):
        # The checkpoint's bands are named, the model's are a sensor record: read the
        # names as bands of that sensor, which gives them wavelengths too.
        try:
            named = target.select(list(source), name=f"{target.name}[pretrained]")
        except UnknownNameError as exc:
            raise UnknownNameError(
                f"source_bands: {exc} Describe the pretrained bands as a sensor record "
                "(pretrained_bands= in create_backbone) to map them."
            ) from exc
        return _match_sensors(named, target)
    return _match_names(list(source), list(target))


def _timm_channels(
    weight: torch.Tensor, target_in_chans: int, target_bands: BandInfo | None, missing: str
) -> tuple[torch.Tensor, list[ChannelOrigin], float]:
    """Apply timm's ``adapt_input_conv`` to a float32 kernel; also return the report rows."""
    c_src = weight.shape[1]
    if c_src != _TIMM_SOURCE_CHANS:
        raise ShapeError(
            f"Cannot map a pretrained first layer with {c_src} input channels to "
            f"{target_in_chans} channels: the bands of {missing} are unknown, and without "
            f"band information only a {_TIMM_SOURCE_CHANS}-channel (RGB) kernel can be "
            "adapted (timm's rule). Pass the bands of both sides: source_bands= / "
            "target_bands= here; in create_backbone, pretrained_bands= for the weights "
            "file's bands and bands= for the model's bands."
        )
    names: list[str | None] = [None] * target_in_chans
    if isinstance(target_bands, Sensor):
        names = [*target_bands.bands]
    elif target_bands is not None:
        names = [*target_bands]
    if target_in_chans == 1:
        out = weight.sum(dim=1, keepdim=True)  # (O, 1, ...)
        rows = [ChannelOrigin(0, names[0], "sum", tuple((j, 1.0) for j in range(c_src)))]
        return out, rows, 1.0
    repeat = -(-target_in_chans // c_src)
    rescale = c_src / float(target_in_chans)
    tiled = weight.repeat(1, repeat, *([1] * (weight.ndim - 2)))[:, :target_in_chans]
    out = tiled * rescale  # (O, C_dst, ...)
    rows = [
        ChannelOrigin(i, names[i], "repeat", ((i % c_src, rescale),))
        for i in range(target_in_chans)
    ]
    return out, rows, rescale


def adapt_input_weight(
    weight: torch.Tensor,
    *,
    target_in_chans: int,
    source_bands: BandInfo | None = None,
    target_bands: BandInfo | None = None,
) -> tuple[torch.Tensor, AdaptationReport]:
    """Build a first-layer kernel for ``target_in_chans`` inputs from a pretrained one.

    See the module docstring for the rules. Without band information on one
    side the result equals timm's ``adapt_input_conv(target_in_chans, weight)``.

    Args:
        weight: Pretrained kernel of shape ``(O, C_src, *k)`` (a conv or a
            linear patch projection).
        target_in_chans: Wanted input channel count ``C_dst``.
        source_bands: Bands of the pretrained kernel (sensor or names), or ``None``.
        target_bands: Bands of the new input (sensor or names), or ``None``.

    Returns:
        The new kernel of shape ``(O, C_dst, *k)`` (same dtype and device) and
        the :class:`AdaptationReport`.

    Raises:
        ShapeError: If ``weight`` has fewer than 2 dimensions, a band list's
            length differs from the matching channel count, or band information
            is missing and the source is not a 3-channel kernel.
        UnknownNameError: If a band name matches no band (or several) of the other side.
        ValueError: If ``target_in_chans`` is not positive.

    Shape:
        - weight: ``(O, C_src, ...)``.
        - output: ``(O, C_dst, ...)``.

    Example:
        >>> import torch
        >>> w = torch.arange(13.0).reshape(1, 13, 1, 1)
        >>> from geofm.sensors import get_sensor
        >>> new, r = adapt_input_weight(w, target_in_chans=3,
        ...     source_bands=get_sensor("sentinel2_l1c"), target_bands=["B4", "green", "b02"])
        >>> new.flatten().tolist()
        [3.0, 2.0, 1.0]
        >>> rgb = torch.tensor([[[[1.0]], [[2.0]], [[4.0]]]])  # (1, 3, 1, 1)
        >>> adapt_input_weight(rgb, target_in_chans=1)[0].flatten().tolist()  # timm: sum
        [7.0]
    """
    if weight.ndim < 2:
        raise ShapeError(
            f"expected a kernel of shape (O, C, ...), got shape {tuple(weight.shape)}."
        )
    if target_in_chans <= 0:
        raise ValueError(f"target_in_chans must be positive, got {target_in_chans}.")
    c_src = weight.shape[1]
    if source_bands is not None and _count(source_bands) != c_src:
        raise ShapeError(
            f"source_bands lists {_count(source_bands)} bands but the pretrained kernel has "
            f"{c_src} input channels. Pass one band per pretrained channel."
        )
    if target_bands is not None and _count(target_bands) != target_in_chans:
        raise ShapeError(
            f"target_bands lists {_count(target_bands)} bands but target_in_chans is "
            f"{target_in_chans}. Pass one band per input channel."
        )
    w32 = weight.detach().to(torch.float32)

    if source_bands is None or target_bands is None:
        if c_src == target_in_chans:
            out = w32
            rescale = 1.0
            channels = [ChannelOrigin(i, None, "copy", ((i, 1.0),)) for i in range(c_src)]
        else:
            if source_bands is None and target_bands is None:
                missing = "both sides"
            elif source_bands is None:
                missing = "the pretrained kernel (source_bands)"
            else:
                missing = "the new input (target_bands)"
            out, channels, rescale = _timm_channels(w32, target_in_chans, target_bands, missing)
    else:
        channels = _match(source_bands, target_bands)
        rescale = 1.0
        out = torch.zeros((w32.shape[0], target_in_chans, *w32.shape[2:]), dtype=torch.float32)
        for c in channels:
            for j, coeff in c.sources:
                out[:, c.index] += coeff * w32[:, j]
    report = AdaptationReport(c_src, target_in_chans, tuple(channels), rescale)
    return out.to(dtype=weight.dtype, device=weight.device), report
