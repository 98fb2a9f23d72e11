"""Fusion-LoRA's spectral tokenizer: a few bands to a pseudo-RGB image for a frozen RGB encoder.

Reference: https://github.com/Eyobed-Abby/fusion-lora-skysense
(``fusion_lora/spectral_tokenizer.py``).

Example:
    >>> import torch
    >>> SpectralTokenizer(in_channels=6)(torch.randn(1, 6, 8, 8)).shape
    torch.Size([1, 3, 8, 8])
"""

from __future__ import annotations

import torch  # noqa: F401  (doctests use it)
import torch.nn.functional as F
from torch import Tensor, nn

from geofm.errors import ShapeError
from geofm.spectral._checks import check_nchw

__all__ = ["SpectralTokenizer"]


def _as_size(size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    pair = (size, size) if isinstance(size, int) else tuple(size)
    if len(pair) != 2 or not all(isinstance(s, int) and s > 0 for s in pair):
        raise ValueError(
            f"output_size must be a positive int or a (height, width) pair, got {size!r}."
        )
    return (pair[0], pair[1])


class SpectralTokenizer(nn.Module):
    """Fusion-LoRA's spectral tokenizer: a few bands to a pseudo-RGB image.

    ``Conv2d(in -> hidden, 3x3, padding 1) -> ReLU -> Conv2d(hidden -> out, 1x1)``,
    then, if an output size is set, a bilinear resize (``align_corners=False``)
    to that size. With the source's defaults (6 bands, hidden 64, out 3) it has
    3,715 parameters. Keys ``proj.0.*`` / ``proj.2.*`` follow the source.

    Reference: Fusion-LoRA, ``fusion_lora/spectral_tokenizer.py`` of
    https://github.com/Eyobed-Abby/fusion-lora-skysense (re-implemented).

    Args:
        in_channels: Number of input bands ``C``.
        out_channels: Channels of the output image (3 for an RGB encoder).
        hidden_channels: Width of the hidden layer (source: 64).
        output_size: ``(height, width)`` or one side to resize the output
            to (source: 384 for SkySense-O), or ``None`` to keep ``H x W``.

    Shape:
        - Input: ``(N, C, H, W)``.
        - Output: ``(N, out_channels, H_out, W_out)`` where ``(H_out, W_out)`` is
          ``output_size`` or ``(H, W)``.

    Raises:
        ValueError: If a channel count is not positive or ``output_size`` is invalid.
        ShapeError: In ``forward``, if the input is not 4-D or has the wrong band count.

    Example:
        >>> tok = SpectralTokenizer(in_channels=6, output_size=(24, 24))
        >>> sum(p.numel() for p in tok.parameters())
        3715
        >>> tok(torch.randn(2, 6, 16, 16)).shape
        torch.Size([2, 3, 24, 24])
    """

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int = 3,
        hidden_channels: int = 64,
        output_size: int | tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        for label, value in (
            ("in_channels", in_channels),
            ("out_channels", out_channels),
            ("hidden_channels", hidden_channels),
        ):
            if value <= 0:
                raise ValueError(f"SpectralTokenizer {label} must be positive, got {value}.")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.output_size = _as_size(output_size)
        self.proj = nn.Sequential(
            nn.Conv2d(in_channels, hidden_channels, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden_channels, out_channels, kernel_size=1),
        )

    def forward(self, x: Tensor, *, output_size: int | tuple[int, int] | None = None) -> Tensor:
        """Map the bands of ``x`` to ``out_channels`` channels.

        Args:
            x: Input bands.
            output_size: Size to resize to for this call; ``None`` uses the
                constructor's ``output_size`` (which may be ``None`` too).

        Returns:
            The pseudo image.

        Raises:
            ShapeError: If ``x`` is not 4-D or does not have ``in_channels`` bands.

        Shape:
            - Input: ``(N, C, H, W)``.
            - Output: ``(N, out_channels, H_out, W_out)``.

        Example:
            >>> tok = SpectralTokenizer(in_channels=4)
            >>> tok(torch.randn(1, 4, 8, 8), output_size=12).shape
            torch.Size([1, 3, 12, 12])
        """
        check_nchw(x, "SpectralTokenizer")
        if x.shape[1] != self.in_channels:
            raise ShapeError(
                f"SpectralTokenizer got {x.shape[1]} bands (input shape {tuple(x.shape)}) "
                f"but was built for {self.in_channels}. Pass a (N, {self.in_channels}, H, W) "
                f"tensor or build it with in_channels={x.shape[1]}."
            )
        out: Tensor = self.proj(x)
        size = _as_size(output_size) if output_size is not None else self.output_size
        if size is not None and size != tuple(out.shape[-2:]):
            resized: Tensor = F.interpolate(out, size=size, mode="bilinear", align_corners=False)
            return resized
        return out
