"""Adapt a pretrained first layer to another input band set.

timm only adapts from a 3-channel source and otherwise leaves the stem random
(timm issue #2445). geofm adapts from **any** source channel count:

1. When band names (or STAC common names) of source and target are known,
   a target band that exists in the source copies that source slice exactly.
2. A target band with a known centre wavelength that has no match is
   linearly interpolated between the two source bands whose wavelengths
   bracket it (the nearest source band outside the source range).
3. A target band with no name match and no wavelength gets the mean of the
   source slices.
4. When no band information is available at all, channels are repeated
   cyclically and the kernel is rescaled by ``C_src / C_dst`` (timm's rule),
   so the response to an input with equal values in every band is preserved.

Every choice is recorded in an :class:`AdaptationReport`; nothing is ever
re-initialised silently. Wavelengths are in nanometres (see :mod:`geofm.sensors`).

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

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from geofm.errors import ShapeError
from geofm.sensors import Sensor

__all__ = ["AdaptationReport", "BandInfo", "ChannelOrigin", "adapt_input_weight"]

BandInfo = Sensor | Sequence[str]
"""Band information: a :class:`~geofm.sensors.Sensor` or a sequence of band names."""

Method = Literal["copy", "interpolate", "nearest", "mean", "repeat"]


@dataclass(frozen=True)
class ChannelOrigin:
    """Where one target input channel's weights came from.

    Args:
        index: Target channel index.
        band: Target band name, if known.
        method: ``"copy"`` (same band in the source), ``"interpolate"``
            (between two source bands by wavelength), ``"nearest"`` (outside
            the source wavelength range), ``"mean"`` (no information), or
            ``"repeat"`` (no band information at all; cyclic repeat).
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
        rescale: Factor the whole kernel was multiplied by (``1.0`` unless
            the cyclic-repeat rule applied).

    Example:
        >>> import torch
        >>> _, r = adapt_input_weight(torch.ones(2, 3, 1, 1), target_in_chans=6)
        >>> r.new_channels
        (0, 1, 2, 3, 4, 5)
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

    def __str__(self) -> str:
        rows = [f"input channels {self.source_in_chans} -> {self.target_in_chans}"]
        for c in self.channels:
            src = ", ".join(f"{i}x{w:.3g}" for i, w in c.sources)
            rows.append(f"  [{c.index}] {c.band or '?'}: {c.method} from {src}")
        if self.rescale != 1.0:
            rows.append(f"  kernel rescaled by {self.rescale:.4g}")
        return "\n".join(rows)


def _names(info: BandInfo | None) -> list[tuple[str, ...]] | None:
    """Per band, the set of names it answers to (identifier + common name)."""
    if info is None:
        return None
    if isinstance(info, Sensor):
        common = info.common_names or (None,) * info.num_bands
        return [tuple(n for n in (b, c) if n) for b, c in zip(info.bands, common, strict=True)]
    return [(str(b),) for b in info]


def _wavelengths(info: BandInfo | None) -> list[float] | None:
    return list(info.wavelengths) if isinstance(info, Sensor) else None


def _interpolation(
    target_wl: float, source_wl: Sequence[float]
) -> tuple[Method, tuple[tuple[int, float], ...]]:
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


def adapt_input_weight(
    weight: torch.Tensor,
    *,
    target_in_chans: int,
    source_bands: BandInfo | None = None,
    target_bands: BandInfo | None = None,
) -> tuple[torch.Tensor, AdaptationReport]:
    """Build a first-layer kernel for ``target_in_chans`` inputs from a pretrained one.

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
        ShapeError: If ``weight`` has fewer than 2 dimensions, or a band list's
            length differs from the matching channel count.
        ValueError: If ``target_in_chans`` is not positive.

    Shape:
        - weight: ``(O, C_src, ...)``.
        - output: ``(O, C_dst, ...)``.

    Example:
        >>> import torch
        >>> w = torch.arange(13.0).reshape(1, 13, 1, 1)
        >>> from geofm.sensors import get_sensor
        >>> new, r = adapt_input_weight(w, target_in_chans=3,
        ...     source_bands=get_sensor("sentinel2_l1c"), target_bands=["B04", "B03", "B02"])
        >>> new.flatten().tolist()
        [3.0, 2.0, 1.0]
    """
    if weight.ndim < 2:
        raise ShapeError(
            f"expected a kernel of shape (O, C, ...), got shape {tuple(weight.shape)}."
        )
    if target_in_chans <= 0:
        raise ValueError(f"target_in_chans must be positive, got {target_in_chans}.")
    c_src = weight.shape[1]
    src_names, dst_names = _names(source_bands), _names(target_bands)
    if src_names is not None and len(src_names) != c_src:
        raise ShapeError(
            f"source_bands lists {len(src_names)} bands but the pretrained kernel has {c_src} "
            "input channels. Pass one band per pretrained channel."
        )
    if dst_names is not None and len(dst_names) != target_in_chans:
        raise ShapeError(
            f"target_bands lists {len(dst_names)} bands but target_in_chans is "
            f"{target_in_chans}. Pass one band per input channel."
        )
    src_wl, dst_wl = _wavelengths(source_bands), _wavelengths(target_bands)
    w32 = weight.detach().to(torch.float32)
    channels: list[ChannelOrigin] = []
    rescale = 1.0

    if src_names is None or dst_names is None:
        # No band information on one side: cyclic repeat with timm's rescale.
        rescale = c_src / target_in_chans
        for i in range(target_in_chans):
            band = dst_names[i][0] if dst_names is not None else None
            channels.append(ChannelOrigin(i, band, "repeat", ((i % c_src, rescale),)))
    else:
        lookup: dict[str, int] = {}
        for j, names in enumerate(src_names):
            for n in names:
                lookup.setdefault(n, j)
        for i, names in enumerate(dst_names):
            match = next((lookup[n] for n in names if n in lookup), None)
            if match is not None:
                channels.append(ChannelOrigin(i, names[0], "copy", ((match, 1.0),)))
            elif src_wl is not None and dst_wl is not None:
                method, sources = _interpolation(dst_wl[i], src_wl)
                channels.append(ChannelOrigin(i, names[0], method, sources))
            else:
                share = 1.0 / c_src
                channels.append(
                    ChannelOrigin(i, names[0], "mean", tuple((j, share) for j in range(c_src)))
                )

    out = torch.zeros((w32.shape[0], target_in_chans, *w32.shape[2:]), dtype=torch.float32)
    for c in channels:
        for j, coeff in c.sources:
            out[:, c.index] += coeff * w32[:, j]
    report = AdaptationReport(c_src, target_in_chans, tuple(channels), rescale)
    return out.to(dtype=weight.dtype, device=weight.device), report
