"""Spectral tokenizers: turn a stack of bands into something a vision backbone eats.

Three modules, three ideas:

- :class:`SpectralAdapter` (SpectralEarth): per-pixel 1-D convolutions along the
  band axis compress ``C >= 75`` hyperspectral bands into 128 channels, so a
  backbone built for 128 channels accepts EnMAP (202 bands), DESIS (235),
  EO-1 Hyperion (198) or HYPERVIEW (150) without change.
- :class:`SpectralTokenizer` (Fusion-LoRA): a small 2-D CNN maps a few bands
  (e.g. Sentinel-2 R, G, B, NIR, SWIR1, SWIR2) to a pseudo-RGB image for a
  frozen RGB encoder, optionally resized to the encoder's input size.
- :class:`WavelengthPatchEmbed` (the DOFA idea): a patch embedding whose
  kernel for each band is generated from the band's central wavelength
  (and optionally its bandwidth), so one ViT accepts any band set, in any
  order, of any count.

Wavelengths and bandwidths are in **nanometres** everywhere (see
:mod:`geofm.sensors`).

References:
    SpectralEarth: Braham et al., "SpectralEarth: Training Hyperspectral
    Foundation Models at Scale", arXiv 2408.08447;
    code https://github.com/AABNassim/spectral_earth (``src/backbones/spectral_adapter.py``).
    Fusion-LoRA: https://github.com/Eyobed-Abby/fusion-lora-skysense
    (``fusion_lora/spectral_tokenizer.py``).
    DOFA: Xiong et al., "Neural Plasticity-Inspired Multimodal Foundation Model
    for Earth Observation", arXiv 2403.15356; code https://github.com/zhu-xlab/DOFA.
    Copernicus-FM: Wang et al., arXiv 2503.11849 (wavelength- and
    bandwidth-conditioned dynamic patch embedding).

Example:
    >>> import torch
    >>> from geofm.spectral import SpectralAdapter
    >>> SpectralAdapter()(torch.randn(2, 202, 8, 8)).shape
    torch.Size([2, 128, 8, 8])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geofm.errors import ShapeError
from geofm.sensors import Sensor, get_sensor

__all__ = [
    "SpectralAdapter",
    "SpectralTokenizer",
    "WavelengthPatchEmbed",
    "sincos_wavelength_embedding",
    "spectral_adapter_length",
]

# (kernel, stride, padding) of SpectralEarth's three spectral convolutions.
_ADAPTER_CONVS = ((7, 5, 1), (7, 5, 1), (5, 3, 1))


def _conv_length(length: int, kernel: int, stride: int, padding: int) -> int:
    return (length + 2 * padding - kernel) // stride + 1


def _as_size(size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    pair = (size, size) if isinstance(size, int) else tuple(size)
    if len(pair) != 2 or not all(isinstance(s, int) and s > 0 for s in pair):
        raise ValueError(
            f"output_size must be a positive int or a (height, width) pair, got {size!r}."
        )
    return (pair[0], pair[1])


def _check_nchw(x: Tensor, owner: str) -> None:
    if x.ndim != 4:
        raise ShapeError(
            f"{owner} expects a (N, C, H, W) tensor, got shape {tuple(x.shape)}. "
            "Add the missing batch dimension with x.unsqueeze(0)."
        )


def _band_values(
    values: Tensor | Sequence[float], *, label: str, owner: str, device: torch.device
) -> Tensor:
    """Validate per-band wavelengths or bandwidths (nm) and return a float32 1-D tensor."""
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


def sincos_wavelength_embedding(values: Tensor, dim: int, *, max_period: float = 10000.0) -> Tensor:
    """Sine-cosine embedding of wavelengths or bandwidths given in nanometres.

    Frequencies are geometric, ``f_k = max_period^(-k / (dim / 2))``, so with the
    default the periods run from ``2*pi`` nm to ``2*pi * 10^4`` nm and cover both
    neighbouring hyperspectral bands and the visible-to-thermal range.

    Args:
        values: Per-band values in nm.
        dim: Embedding size (even).
        max_period: Longest period divided by ``2*pi``, in nm.

    Returns:
        ``[sin(v * f), cos(v * f)]`` concatenated.

    Raises:
        ValueError: If ``dim`` is not a positive even number.

    Shape:
        - Input: ``(C,)``.
        - Output: ``(C, dim)``.

    Example:
        >>> sincos_wavelength_embedding(torch.tensor([490.0, 560.0]), 8).shape
        torch.Size([2, 8])
    """
    if dim <= 0 or dim % 2:
        raise ValueError(f"Embedding size must be a positive even number, got {dim}.")
    half = dim // 2
    exponent = torch.arange(half, dtype=torch.float32, device=values.device) / half
    freqs = max_period ** (-exponent)  # (dim/2,)
    angles = values.to(torch.float32)[:, None] * freqs[None, :]  # (C, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1)  # (C, dim)


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
        _check_nchw(x, "SpectralAdapter")
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
        _check_nchw(x, "SpectralTokenizer")
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


class WavelengthPatchEmbed(nn.Module):
    """Patch embedding whose kernel is generated from each band's wavelength.

    For every band ``b`` with central wavelength ``lambda_b`` (nm) and,
    optionally, bandwidth ``w_b`` (FWHM, nm), a small hypernetwork computes a
    kernel ``K_b`` of shape ``(D, p, p)``:

    ``e_b = [sincos(lambda_b), sincos(w_b)]``, ``h_b = MLP(e_b)``,
    ``K_b = reshape(G h_b)``, and the output is
    ``sum_b conv2d(x_b, K_b, stride=p) + bias`` (or the mean over bands).

    The bands interact only through that sum, so permuting bands together
    with their wavelengths leaves the output unchanged, any band count works,
    and a band subset gives the same result as the full set with the missing
    bands set to zero (``band_reduction="sum"``). One ViT can therefore take
    Sentinel-2, Landsat, RGB or hyperspectral input. The kernels are generated
    once per call (cost independent of batch and image size) and applied
    with a single ``conv2d``.

    The idea is DOFA's dynamic one-for-all patch embedding, here with a plain
    per-band MLP (DOFA uses a transformer across bands) and, as in
    Copernicus-FM, optional bandwidth conditioning. Wavelengths live in a
    non-persistent buffer: they are not part of the state dict, so one set of
    weights serves every band set.

    Reference: DOFA (arXiv 2403.15356, https://github.com/zhu-xlab/DOFA);
    Copernicus-FM (arXiv 2503.11849). Written for geofm; no code copied.

    Args:
        embed_dim: Output channels ``D``.
        patch_size: Patch side ``p`` (kernel size and stride).
        wavelengths: Default central wavelength of each band in nm, used when
            ``forward`` receives none.
        bandwidths: Default FWHM of each band in nm (needs ``use_bandwidth=True``).
        use_bandwidth: Condition the kernels on bandwidth as well; every call
            then needs bandwidths.
        wave_dim: Size of each sine-cosine embedding.
        hidden_dim: Width of the hypernetwork MLP.
        band_reduction: ``"sum"`` adds the per-band responses (DOFA); ``"mean"``
            divides them by the band count, so the output scale does not grow
            with the number of bands.
        use_bias: Add a learned bias of size ``D``.

    Shape:
        - Input: ``(N, C, H, W)`` with ``H`` and ``W`` multiples of ``p``.
        - Output: ``(N, D, H / p, W / p)``.

    Raises:
        ValueError: If a size is not positive, wavelengths / bandwidths are not
            positive, or bandwidths are given without ``use_bandwidth``.
        ShapeError: If default wavelengths and bandwidths differ in length.

    Example:
        >>> waves = [490.0, 560.0, 665.0]  # nm
        >>> embed = WavelengthPatchEmbed(embed_dim=32, patch_size=4, wavelengths=waves)
        >>> embed(torch.randn(2, 3, 16, 16)).shape
        torch.Size([2, 32, 4, 4])
        >>> embed(torch.randn(2, 2, 16, 16), wavelengths=[842.0, 1610.0]).shape
        torch.Size([2, 32, 4, 4])
    """

    wavelengths: Tensor | None
    bandwidths: Tensor | None

    def __init__(
        self,
        *,
        embed_dim: int,
        patch_size: int,
        wavelengths: Sequence[float] | None = None,
        bandwidths: Sequence[float] | None = None,
        use_bandwidth: bool = False,
        wave_dim: int = 128,
        hidden_dim: int = 128,
        band_reduction: Literal["sum", "mean"] = "sum",
        use_bias: bool = True,
    ) -> None:
        super().__init__()
        for label, value in (
            ("embed_dim", embed_dim),
            ("patch_size", patch_size),
            ("wave_dim", wave_dim),
            ("hidden_dim", hidden_dim),
        ):
            if value <= 0:
                raise ValueError(f"WavelengthPatchEmbed {label} must be positive, got {value}.")
        if wave_dim % 2:
            raise ValueError(f"WavelengthPatchEmbed wave_dim must be even, got {wave_dim}.")
        if band_reduction not in ("sum", "mean"):
            raise ValueError(
                "WavelengthPatchEmbed band_reduction must be 'sum' or 'mean', "
                f"got {band_reduction!r}."
            )
        if bandwidths is not None and not use_bandwidth:
            raise ValueError(
                "WavelengthPatchEmbed got bandwidths but use_bandwidth=False. Pass "
                "use_bandwidth=True to condition on them, or drop the bandwidths."
            )
        owner = "WavelengthPatchEmbed"
        cpu = torch.device("cpu")
        waves = (
            None
            if wavelengths is None
            else _band_values(wavelengths, label="wavelengths", owner=owner, device=cpu)
        )
        widths = (
            None
            if bandwidths is None
            else _band_values(bandwidths, label="bandwidths", owner=owner, device=cpu)
        )
        if waves is not None and widths is not None and waves.numel() != widths.numel():
            raise ShapeError(
                f"WavelengthPatchEmbed got {waves.numel()} wavelengths but {widths.numel()} "
                "bandwidths. Give one bandwidth per band."
            )
        self.embed_dim = embed_dim
        self.patch_size = (patch_size, patch_size)
        self.wave_dim = wave_dim
        self.use_bandwidth = use_bandwidth
        self.band_reduction = band_reduction
        self.register_buffer("wavelengths", waves, persistent=False)
        self.register_buffer("bandwidths", widths, persistent=False)

        in_dim = wave_dim * (2 if use_bandwidth else 1)
        self.band_mlp = nn.Sequential(
            nn.Linear(in_dim, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.LayerNorm(hidden_dim),
        )
        self.kernel_generator = nn.Linear(hidden_dim, embed_dim * patch_size * patch_size)
        self.bias = nn.Parameter(torch.zeros(embed_dim)) if use_bias else None
        # h_b has unit scale after the LayerNorm; this keeps each generated
        # kernel entry at std 1/p, i.e. unit output variance per band.
        nn.init.normal_(
            self.kernel_generator.weight, std=1.0 / (patch_size * math.sqrt(hidden_dim))
        )
        nn.init.zeros_(self.kernel_generator.bias)

    @classmethod
    def from_sensor(
        cls,
        sensor: Sensor | str,
        *,
        embed_dim: int,
        patch_size: int,
        use_bandwidth: bool = False,
        wave_dim: int = 128,
        hidden_dim: int = 128,
        band_reduction: Literal["sum", "mean"] = "sum",
        use_bias: bool = True,
    ) -> WavelengthPatchEmbed:
        """Build the embedding with a sensor's wavelengths (and bandwidths) as defaults.

        Args:
            sensor: A :class:`~geofm.sensors.Sensor` or a registered sensor name.
            embed_dim: Output channels ``D``.
            patch_size: Patch side ``p``.
            use_bandwidth: Condition on the sensor's bandwidths too.
            wave_dim: Size of each sine-cosine embedding.
            hidden_dim: Width of the hypernetwork MLP.
            band_reduction: ``"sum"`` or ``"mean"`` over bands.
            use_bias: Add a learned bias.

        Returns:
            The embedding.

        Raises:
            UnknownNameError: If ``sensor`` is an unknown name.
            ValueError: If ``use_bandwidth`` is set but the sensor has no bandwidths.

        Example:
            >>> embed = WavelengthPatchEmbed.from_sensor(
            ...     "sentinel2_l2a", embed_dim=16, patch_size=8
            ... )
            >>> embed(torch.randn(1, 12, 16, 16)).shape
            torch.Size([1, 16, 2, 2])
        """
        record = get_sensor(sensor) if isinstance(sensor, str) else sensor
        if use_bandwidth and record.bandwidths is None:
            raise ValueError(
                f"Sensor {record.name!r} has no bandwidths, so use_bandwidth=True cannot be "
                "honoured. Use use_bandwidth=False or a sensor with bandwidths."
            )
        return cls(
            embed_dim=embed_dim,
            patch_size=patch_size,
            wavelengths=record.wavelengths,
            bandwidths=record.bandwidths if use_bandwidth else None,
            use_bandwidth=use_bandwidth,
            wave_dim=wave_dim,
            hidden_dim=hidden_dim,
            band_reduction=band_reduction,
            use_bias=use_bias,
        )

    def _band_inputs(
        self,
        x: Tensor,
        wavelengths: Tensor | Sequence[float] | None,
        bandwidths: Tensor | Sequence[float] | None,
    ) -> tuple[Tensor, Tensor | None]:
        owner = "WavelengthPatchEmbed"
        num_bands = x.shape[1]
        if wavelengths is None:
            if bandwidths is not None:
                raise ValueError(
                    "WavelengthPatchEmbed got bandwidths but no wavelengths. Pass both for a "
                    "new band set, or neither to use the constructor's."
                )
            if self.wavelengths is None:
                raise ValueError(
                    "WavelengthPatchEmbed has no wavelengths: pass wavelengths= (nm, one per "
                    "band) to forward or to the constructor."
                )
            waves, widths = self.wavelengths, self.bandwidths
        else:
            waves = _band_values(wavelengths, label="wavelengths", owner=owner, device=x.device)
            widths = (
                None
                if bandwidths is None
                else _band_values(bandwidths, label="bandwidths", owner=owner, device=x.device)
            )
        if waves.numel() != num_bands:
            raise ShapeError(
                f"WavelengthPatchEmbed got {num_bands} bands (input shape {tuple(x.shape)}) "
                f"but {waves.numel()} wavelengths. Pass one wavelength per band."
            )
        if self.use_bandwidth:
            if widths is None:
                raise ValueError(
                    "WavelengthPatchEmbed was built with use_bandwidth=True but got no "
                    "bandwidths. Pass bandwidths= (FWHM in nm, one per band) with the wavelengths."
                )
            if widths.numel() != num_bands:
                raise ShapeError(
                    f"WavelengthPatchEmbed got {num_bands} bands (input shape {tuple(x.shape)}) "
                    f"but {widths.numel()} bandwidths. Pass one bandwidth per band."
                )
        elif widths is not None:
            raise ValueError(
                "WavelengthPatchEmbed got bandwidths but was built with use_bandwidth=False. "
                "Drop them or build it with use_bandwidth=True."
            )
        return waves, widths

    def generate_kernel(
        self,
        wavelengths: Tensor | Sequence[float],
        bandwidths: Tensor | Sequence[float] | None = None,
    ) -> Tensor:
        """The convolution kernel for a band set (band reduction included).

        Args:
            wavelengths: Central wavelength of each band in nm.
            bandwidths: FWHM of each band in nm (only with ``use_bandwidth``).

        Returns:
            Kernel for ``conv2d(x, kernel, stride=p)``.

        Raises:
            ValueError: If the values are not positive or bandwidths do not match the setting.
            ShapeError: If wavelengths and bandwidths differ in length.

        Shape:
            - Output: ``(D, C, p, p)`` with ``C = len(wavelengths)``.

        Example:
            >>> embed = WavelengthPatchEmbed(embed_dim=8, patch_size=2)
            >>> embed.generate_kernel([490.0, 560.0, 665.0]).shape
            torch.Size([8, 3, 2, 2])
        """
        device = self.kernel_generator.weight.device
        owner = "WavelengthPatchEmbed"
        waves = _band_values(wavelengths, label="wavelengths", owner=owner, device=device)
        dummy = torch.empty(1, waves.numel(), 1, 1, device=device)
        waves, widths = self._band_inputs(dummy, waves, bandwidths)
        return self._kernel(waves, widths)

    def _kernel(self, waves: Tensor, widths: Tensor | None) -> Tensor:
        features = sincos_wavelength_embedding(waves, self.wave_dim)  # (C, E)
        if self.use_bandwidth:
            assert widths is not None  # checked by _band_inputs
            width_features = sincos_wavelength_embedding(widths, self.wave_dim)  # (C, E)
            features = torch.cat([features, width_features], dim=1)  # (C, 2E)
        weight_dtype = self.kernel_generator.weight.dtype
        hidden = self.band_mlp(features.to(weight_dtype))  # (C, hidden)
        p_h, p_w = self.patch_size
        kernel: Tensor = self.kernel_generator(hidden)  # (C, D * p * p)
        kernel = kernel.view(-1, self.embed_dim, p_h, p_w).transpose(0, 1)  # (D, C, p, p)
        if self.band_reduction == "mean":
            kernel = kernel / waves.numel()
        return kernel

    def forward(
        self,
        x: Tensor,
        wavelengths: Tensor | Sequence[float] | None = None,
        bandwidths: Tensor | Sequence[float] | None = None,
    ) -> Tensor:
        """Embed non-overlapping patches of ``x`` given its band wavelengths.

        Args:
            x: Input image.
            wavelengths: Central wavelength of each band of ``x`` in nm;
                ``None`` uses the constructor's.
            bandwidths: FWHM of each band in nm; required with
                ``use_bandwidth=True`` whenever ``wavelengths`` is given.

        Returns:
            Patch embeddings as a feature map.

        Raises:
            ShapeError: If ``x`` is not 4-D, the wavelength (or bandwidth) count
                differs from the band count, or ``H`` / ``W`` is not a multiple of ``p``.
            ValueError: If no wavelengths are available, values are not positive,
                or bandwidths do not match ``use_bandwidth``.

        Shape:
            - Input: ``(N, C, H, W)``.
            - Output: ``(N, D, H / p, W / p)``.

        Example:
            >>> embed = WavelengthPatchEmbed(embed_dim=8, patch_size=4)
            >>> embed(torch.randn(1, 2, 8, 8), wavelengths=[560.0, 842.0]).shape
            torch.Size([1, 8, 2, 2])
        """
        _check_nchw(x, "WavelengthPatchEmbed")
        height, width = x.shape[-2:]
        p_h, p_w = self.patch_size
        if height % p_h or width % p_w:
            raise ShapeError(
                f"WavelengthPatchEmbed got an input of {height}x{width} pixels (shape "
                f"{tuple(x.shape)}), not a multiple of the patch size {p_h}. Crop or pad to "
                f"{height - height % p_h or p_h}x{width - width % p_w or p_w} or a larger multiple."
            )
        waves, widths = self._band_inputs(x, wavelengths, bandwidths)
        kernel = self._kernel(waves, widths).to(x.dtype)  # (D, C, p, p)
        bias = None if self.bias is None else self.bias.to(x.dtype)
        out: Tensor = F.conv2d(x, kernel, bias, stride=self.patch_size)  # (N, D, H/p, W/p)
        return out
