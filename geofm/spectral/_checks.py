"""Input checks shared by the spectral modules: NCHW inputs and per-band values in nm.

Example:
    >>> import torch
    >>> band_values([842.0], label="wavelengths", owner="Doc", device=torch.device("cpu")).shape
    torch.Size([1])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from geofm.errors import ShapeError

__all__ = ["band_values", "check_nchw"]


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
    values: Tensor | Sequence[float], *, label: str, owner: str, device: torch.device
) -> Tensor:
    """Validate per-band wavelengths or bandwidths (nm) and return them as a float32 1-D tensor.

    Values on an accelerator are not checked for positivity (that would force a
    device sync on every call); values given as Python numbers always are.

    Args:
        values: One value per band, in nm.
        label: What the values are (``"wavelengths"``), for messages.
        owner: Module that received them, for messages.
        device: Device of the returned tensor.

    Returns:
        ``(C,)`` float32 tensor.

    Raises:
        ShapeError: If the values are not a non-empty 1-D sequence.
        ValueError: If a value is not positive and finite.

    Example:
        >>> band_values([490, 560], label="wavelengths", owner="Doc", device=torch.device("cpu"))
        tensor([490., 560.])
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
    # Checking values on an accelerator would force a device sync on every call.
    if tensor.device.type == "cpu" and not bool(torch.all(torch.isfinite(tensor) & (tensor > 0))):
        raise ValueError(
            f"{owner} expects positive, finite {label} in nanometres, got "
            f"{[round(v, 3) for v in tensor.tolist()]}."
        )
    return tensor
