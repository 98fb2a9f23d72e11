"""Input checks shared by the spectral modules: NCHW inputs and per-band values in nm.

Wavelengths are checked by :func:`geofm.sensors.resolve_wavelengths` (the one
wavelength check of geofm); bandwidths by a range check in nm.

Example:
    >>> import torch
    >>> band_values([842.0], label="wavelengths", owner="Doc", device=torch.device("cpu")).shape
    torch.Size([1])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from geofm.errors import ShapeError
from geofm.sensors import resolve_wavelengths

__all__ = ["band_values", "check_nchw"]

# Band FWHM in nm: the narrowest imaging-spectrometer bands are a few nm wide
# (DESIS ~2.5 nm); below 1 nm the values are micrometres.
_BANDWIDTH_RANGE_NM = (1.0, 20000.0)


def check_nchw(x: Tensor, owner: str) -> None:
    """Raise :class:`~geofm.errors.ShapeError` unless ``x`` is a 4-D ``(N, C, H, W)`` tensor.

    Args:
        x: Candidate input.
        owner: Name of the module that received it, for the message.

    Raises:
        ShapeError: If ``x`` is not 4-D.

    Example:
        >>> check_nchw(torch.zeros(1, 3, 4, 4), "Doc")
    """
    if x.ndim != 4:
        raise ShapeError(
            f"{owner} expects a (N, C, H, W) tensor, got shape {tuple(x.shape)}. "
            "Add the missing batch dimension with x.unsqueeze(0)."
        )


def band_values(
    values: Tensor | Sequence[float],
    *,
    label: Literal["wavelengths", "bandwidths"],
    owner: str,
    device: torch.device,
) -> Tensor:
    """Validate per-band wavelengths or bandwidths (nm) and return them as a float32 1-D tensor.

    Wavelengths go through :func:`geofm.sensors.resolve_wavelengths`, geofm's
    one wavelength check: each in ``[100, 20000]`` nm (near ultraviolet to
    thermal infrared), with a hint when they look like micrometres.
    Bandwidths (FWHM) must lie in ``[1, 20000]`` nm: real sensors' bands are
    at least a few nm wide, so values below 1 are micrometres. Every call
    checks, wherever the values live; values in an accelerator tensor cost
    one small copy to the host (pass Python numbers to avoid it).

    Args:
        values: One value per band, in nm.
        label: What the values are, ``"wavelengths"`` or ``"bandwidths"``.
        owner: Module that received them, for messages.
        device: Device of the returned tensor.

    Returns:
        ``(C,)`` float32 tensor.

    Raises:
        ShapeError: If the values are not a non-empty 1-D sequence.
        ValueError: If a value is not finite or outside its plausible range in nm;
            the message names the unit and, for micrometres, how to convert.

    Example:
        >>> band_values([490, 560], label="wavelengths", owner="Doc", device=torch.device("cpu"))
        tensor([490., 560.])
        >>> try:
        ...     band_values([0.49], label="wavelengths", owner="Doc", device=torch.device("cpu"))
        ... except ValueError as err:
        ...     print(str(err).split("; ")[-1])
        got (0.49,). They look like micrometres: multiply by 1000.
    """
    if isinstance(values, Tensor):
        tensor = values.detach().to(device=device, dtype=torch.float32)
    else:
        tensor = torch.as_tensor([float(v) for v in values], dtype=torch.float32, device=device)
    if tensor.ndim != 1 or tensor.numel() == 0:
        raise ShapeError(
            f"{owner} expects {label} as a non-empty 1-D sequence (one value per band, "
            f"in nm), got shape {tuple(tensor.shape)}."
        )
    # One host copy for accelerator tensors; 7 significant digits print float32 values as given.
    numbers = [float(f"{v:.7g}") for v in tensor.tolist()]
    if label == "wavelengths":
        try:
            resolve_wavelengths(numbers)
        except ValueError as err:
            raise ValueError(f"{owner}: {err}") from None
    else:
        _check_bandwidths(numbers, owner)
    return tensor


def _check_bandwidths(values: list[float], owner: str) -> None:
    low, high = _BANDWIDTH_RANGE_NM
    if all(math.isfinite(w) and low <= w <= high for w in values):
        return
    hint = (
        " They look like micrometres: multiply by 1000."
        if all(0.0 < w < low for w in values)
        else ""
    )
    raise ValueError(
        f"{owner}: bandwidths must be full widths at half maximum in nanometres, in "
        f"[{low:g}, {high:g}] nm, one per band; got {tuple(values)}.{hint}"
    )
