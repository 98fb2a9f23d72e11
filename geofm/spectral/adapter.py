"""SpectralEarth's spectral adapter: ``C >= 75`` hyperspectral bands to 128 channels.

Reference: Braham et al., "SpectralEarth: Training Hyperspectral Foundation
Models at Scale", arXiv 2408.08447; code https://github.com/AABNassim/spectral_earth
(``src/backbones/spectral_adapter.py``).

Example:
    >>> import torch
    >>> SpectralAdapter()(torch.randn(2, 202, 8, 8)).shape
    torch.Size([2, 128, 8, 8])
"""

from __future__ import annotations

import torch  # noqa: F401  (doctests use it)
from torch import Tensor, nn

from geofm.errors import ShapeError
from geofm.spectral._checks import check_nchw

__all__ = ["SpectralAdapter", "spectral_adapter_length"]

# (kernel, stride, padding) of SpectralEarth's three spectral convolutions.
_ADAPTER_CONVS = ((7, 5, 1), (7, 5, 1), (5, 3, 1))


def _conv_length(length: int, kernel: int, stride: int, padding: int) -> int:
    return (length + 2 * padding - kernel) // stride + 1


def spectral_adapter_length(num_bands: int) -> int:
    """Spectral length left after :class:`SpectralAdapter`'s three convolutions.

    ``L1 = (C - 5) // 5 + 1``, ``L2 = (L1 - 5) // 5 + 1``, ``L3 = (L2 - 3) // 3 + 1``;
    the adapter needs ``L3 >= 1``, which holds exactly for ``C >= 75``.

    Args:
        num_bands: Number of input bands ``C``.

    Returns:
        ``L3`` (``<= 0`` means the input is too short).

    Example:
        >>> [spectral_adapter_length(c) for c in (202, 235, 198, 150, 75, 74)]
        [2, 3, 2, 2, 1, 0]
    """
    length = num_bands
    for kernel, stride, padding in _ADAPTER_CONVS:
        length = _conv_length(length, kernel, stride, padding)
        if length <= 0:
            return length
    return length


class SpectralAdapter(nn.Sequential):
    """SpectralEarth's spectral adapter: ``C >= 75`` bands to 128 channels, per pixel.

    Three ``Conv3d`` layers slide along the band axis only (spatial kernel
    ``1x1``), each followed by ``BatchNorm3d`` and ``ReLU``: ``1 -> 32``
    (kernel 7, stride 5, padding 1), ``32 -> 64`` (7, 5, 1), ``64 -> 128``
    (5, 3, 1); an adaptive average pool then reduces the remaining spectral
    length to one. Spatial size is unchanged. The layers sit at indices
    ``0..9`` of this ``nn.Sequential``, so the state-dict keys
    (``0.weight``, ``1.running_mean``, ``3.weight``, ...) match SpectralEarth's
    ``spectral_adapter.{0,1,3,4,6,7}.*`` once the prefix is removed. 56,192
    parameters.

    Inputs should be standardised per band (SpectralEarth uses raw EnMAP
    digital numbers with the mean / std of ``get_sensor("enmap_spectral_earth")``).

    Reference: SpectralEarth, ``src/backbones/spectral_adapter.py`` of
    https://github.com/AABNassim/spectral_earth (layout re-implemented).

    Shape:
        - Input: ``(N, C, H, W)`` with ``C >= 75``.
        - Output: ``(N, 128, H, W)``.

    Raises:
        ShapeError: If the input is not 4-D or has fewer than 75 bands.

    Example:
        >>> adapter = SpectralAdapter()
        >>> sum(p.numel() for p in adapter.parameters())
        56192
        >>> adapter(torch.randn(2, 235, 4, 4)).shape
        torch.Size([2, 128, 4, 4])
    """

    min_bands: int = 75
    out_channels: int = 128

    def __init__(self) -> None:
        layers: list[nn.Module] = []
        channels = (1, 32, 64, 128)
        for i, (kernel, stride, padding) in enumerate(_ADAPTER_CONVS):
            layers += [
                nn.Conv3d(
                    channels[i],
                    channels[i + 1],
                    kernel_size=(kernel, 1, 1),
                    stride=(stride, 1, 1),
                    padding=(padding, 0, 0),
                ),
                nn.BatchNorm3d(channels[i + 1]),
                nn.ReLU(inplace=True),
            ]
        layers.append(nn.AdaptiveAvgPool3d((1, None, None)))
        super().__init__(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Compress the band axis of ``x`` to 128 channels.

        Args:
            x: Per-band standardised image.

        Returns:
            The 128-channel map.

        Raises:
            ShapeError: If ``x`` is not 4-D or has fewer than 75 bands.

        Shape:
            - Input: ``(N, C, H, W)``, ``C >= 75``.
            - Output: ``(N, 128, H, W)``.

        Example:
            >>> SpectralAdapter()(torch.randn(1, 75, 2, 2)).shape
            torch.Size([1, 128, 2, 2])
        """
        check_nchw(x, "SpectralAdapter")
        num_bands = x.shape[1]
        if num_bands < self.min_bands:
            raise ShapeError(
                f"SpectralAdapter got {num_bands} bands (input shape {tuple(x.shape)}) but "
                f"needs at least {self.min_bands}: its three strided spectral convolutions "
                f"(strides 5, 5, 3) shrink {num_bands} bands to length "
                f"{spectral_adapter_length(num_bands)}. Use a hyperspectral input or a "
                "tokenizer for few bands (SpectralTokenizer, WavelengthPatchEmbed)."
            )
        out = x.unsqueeze(1)  # (N, 1, C, H, W)
        for layer in self:
            out = layer(out)  # ends at (N, 128, 1, H, W)
        return out.squeeze(2)  # (N, 128, H, W)
