"""Wavelength-conditioned patch embedding: one ViT stem for any band set, order or count.

:class:`WavelengthPatchEmbed` generates the patch kernel of every band from the
band's centre wavelength (nm) and, optionally, its bandwidth. Two generators
share the module, chosen by ``generator=``:

- ``"mlp"`` (default): geofm's per-band MLP hypernetwork with a learned bias,
  optionally conditioned on bandwidth as in Copernicus-FM;
- ``"dofa"``: DOFA's generator, reproduced with DOFA's parameter names
  (``fclayer.*``, ``weight_generator.*``): a residual MLP on the wavelength
  embedding, a one-layer transformer across bands that also generates the
  bias, both scaled by 0.01, and a convolution padded by one pixel.

Wavelengths and bandwidths are in **nanometres** (see :mod:`geofm.sensors`).
Every wavelength the module receives (constructor, ``forward``, ``generate``)
must lie in ``[100, 20000]`` nm (:func:`geofm.sensors.resolve_wavelengths`)
and every bandwidth in ``[1, 20000]`` nm; micrometres are refused with a hint
to multiply by 1000. DOFA's own API takes micrometres and multiplies them by 1000 inline; its
sine-cosine encoding therefore already works in nm, and geofm feeds nm to it
directly.

References:
    DOFA: Xiong et al., "Neural Plasticity-Inspired Multimodal Foundation Model
    for Earth Observation", arXiv 2403.15356; code https://github.com/zhu-xlab/DOFA
    and torchgeo's ``torchgeo/models/dofa.py`` (layout followed, code written for geofm).
    Copernicus-FM: Wang et al., arXiv 2503.11849 (bandwidth conditioning).

Example:
    >>> import torch
    >>> embed = WavelengthPatchEmbed(embed_dim=16, patch_size=4, wavelengths=[665.0, 842.0])
    >>> embed(torch.randn(2, 2, 16, 16)).shape
    torch.Size([2, 16, 4, 4])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, TypedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geofm.errors import ShapeError
from geofm.sensors import Sensor, get_sensor
from geofm.spectral._checks import band_values, check_nchw

if TYPE_CHECKING:  # Python 3.10's typing has no Unpack
    from typing_extensions import Unpack

__all__ = [
    "DOFAResidualMLP",
    "DOFAWeightGenerator",
    "KernelGenerator",
    "WavelengthEmbedOptions",
    "WavelengthPatchEmbed",
    "sincos_wavelength_embedding",
]

KernelGenerator = Literal["mlp", "dofa"]
"""Which hypernetwork generates the kernels: geofm's per-band MLP or DOFA's transformer."""

# DOFA's constants (torchgeo ``DOFAEmbedding`` / ``TransformerWeightGenerator``).
_WAVE_DIM = 128  # size of the wavelength embedding ("dynamic_embed_dim" / "wv_planes")
_NUM_WEIGHT_TOKENS = 128  # learned tokens prepended to the wavelength tokens ("wt_num")
_GENERATOR_HEADS = 4
_DOFA_SCALER = 0.01  # DOFA multiplies the generated kernel and bias by this
_DOFA_PADDING = 1  # DOFA's patch convolution pads by one pixel
_OWNER = "WavelengthPatchEmbed"


def sincos_wavelength_embedding(values: Tensor, dim: int, *, max_period: float = 10000.0) -> Tensor:
    """Sine-cosine embedding of wavelengths or bandwidths given in nanometres.

    Frequencies are geometric, ``f_k = max_period^(-k / (dim / 2))``, so with the
    default the periods run from ``2*pi`` nm to ``2*pi * 10^4`` nm and cover both
    neighbouring hyperspectral bands and the visible-to-thermal range.

    A pure encoding: the values are not range-checked here (they may be
    wavelengths or bandwidths); :class:`WavelengthPatchEmbed` checks them
    where they enter.

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


def _init_linear(module: nn.Module) -> None:
    """DOFA's init of the generator's linear layers: Xavier-uniform weights, biases 0.01."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.constant_(module.bias, 0.01)


class DOFAResidualMLP(nn.Module):
    """DOFA's fully-connected residual layer on the wavelength embeddings.

    Computes ``x + relu(w2(relu(w1(x))))``. Parameter names ``w1``, ``w2``
    match DOFA's ``FCResLayer``.

    Args:
        dim: Feature size (DOFA: 128).

    Shape:
        - Input: ``(C, dim)``.
        - Output: ``(C, dim)``.

    Example:
        >>> DOFAResidualMLP(dim=8)(torch.zeros(3, 8)).shape
        torch.Size([3, 8])
    """

    def __init__(self, *, dim: int = _WAVE_DIM) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, dim)
        self.w2 = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        """Residual two-layer ReLU MLP, ``(C, dim)`` to ``(C, dim)``."""
        return x + F.relu(self.w2(F.relu(self.w1(x))))


class DOFAWeightGenerator(nn.Module):
    """DOFA's transformer weight generator: wavelength tokens to kernel rows and a bias.

    The sequence ``[weight_tokens (T), wavelength tokens (C), bias_token (1)]``
    runs through a one-layer post-norm ``nn.TransformerEncoder`` (GELU, no
    dropout, feed-forward width 2048, unbatched). Each band's output token plus
    its input token goes through ``fc_weight`` (one kernel slice per band);
    the bias token's output goes through ``fc_bias``. No positional encoding
    is used, so the generated kernel follows each band when bands are reordered.
    Parameter names match DOFA's ``TransformerWeightGenerator``.

    Args:
        wave_dim: Size of the wavelength tokens (DOFA: 128).
        kernel_numel: Outputs of ``fc_weight`` per band (``patch * patch * D``).
        embed_dim: ViT width ``D`` (outputs of ``fc_bias``).
        num_weight_tokens: Learned tokens prepended to the sequence (DOFA: 128).
        num_heads: Attention heads of the encoder layer (DOFA: 4).

    Shape:
        - Input: ``(C, wave_dim)``.
        - Output: ``((C, kernel_numel), (embed_dim,))``.

    Example:
        >>> gen = DOFAWeightGenerator(wave_dim=8, kernel_numel=12, embed_dim=3, num_heads=2)
        >>> [t.shape for t in gen(torch.randn(5, 8))]
        [torch.Size([5, 12]), torch.Size([3])]
    """

    def __init__(
        self,
        *,
        wave_dim: int = _WAVE_DIM,
        kernel_numel: int,
        embed_dim: int,
        num_weight_tokens: int = _NUM_WEIGHT_TOKENS,
        num_heads: int = _GENERATOR_HEADS,
    ) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            d_model=wave_dim,
            nhead=num_heads,
            activation="gelu",
            norm_first=False,
            batch_first=False,
            dropout=0.0,
        )
        self.transformer_encoder = nn.TransformerEncoder(
            layer, num_layers=1, enable_nested_tensor=False
        )
        self.fc_weight = nn.Linear(wave_dim, kernel_numel)
        self.fc_bias = nn.Linear(wave_dim, embed_dim)
        self.weight_tokens = nn.Parameter(torch.empty(num_weight_tokens, wave_dim))
        self.bias_token = nn.Parameter(torch.empty(1, wave_dim))
        self.apply(_init_linear)
        nn.init.normal_(self.weight_tokens, std=0.02)
        nn.init.normal_(self.bias_token, std=0.02)

    def forward(self, waves: Tensor) -> tuple[Tensor, Tensor]:
        """Per-band kernel rows ``(C, kernel_numel)`` and the bias ``(embed_dim,)``."""
        num_tokens = self.weight_tokens.shape[0]
        seq = torch.cat([self.weight_tokens, waves, self.bias_token], dim=0)  # (T + C + 1, E)
        out = self.transformer_encoder(seq)  # (T + C + 1, E)
        weight = self.fc_weight(out[num_tokens:-1] + waves)  # (C, kernel_numel)
        bias = self.fc_bias(out[-1])  # (embed_dim,)
        return weight, bias


class WavelengthEmbedOptions(TypedDict, total=False):
    """Optional keyword arguments of :class:`WavelengthPatchEmbed` besides the bands.

    What :meth:`WavelengthPatchEmbed.from_sensor` passes on; see the class for
    each argument's meaning and default.

    Example:
        >>> options: WavelengthEmbedOptions = {"band_reduction": "mean", "use_bias": False}
        >>> embed = WavelengthPatchEmbed.from_sensor("rgb", embed_dim=8, patch_size=4, **options)
        >>> embed.band_reduction, embed.bias is None
        ('mean', True)
    """

    generator: KernelGenerator
    wave_dim: int
    hidden_dim: int
    band_reduction: Literal["sum", "mean"]
    use_bias: bool


class WavelengthPatchEmbed(nn.Module):
    """Patch embedding whose kernel is generated from each band's wavelength.

    For every band ``b`` with central wavelength ``lambda_b`` (nm), a
    hypernetwork computes a kernel ``K_b`` of shape ``(D, p, p)`` and the
    output is ``sum_b conv2d(x_b, K_b, stride=p) + bias`` (or the mean over
    bands). With ``generator="mlp"``: ``e_b = [sincos(lambda_b), sincos(w_b)]``
    (bandwidth ``w_b`` only with ``use_bandwidth``), ``K_b = reshape(G MLP(e_b))``
    and a learned bias. With ``generator="dofa"``: DOFA's residual MLP and
    transformer across bands generate kernel and bias, both scaled by 0.01,
    and the convolution pads by one pixel (DOFA's layout and parameter names).

    The bands interact only through that sum (the DOFA transformer uses no
    positional encoding), so permuting bands together with their wavelengths
    leaves the output unchanged and any band count works. Kernels are
    generated once per call (cost independent of batch and image size) and
    applied with one ``conv2d``. Wavelengths live in a non-persistent buffer:
    they are not part of the state dict, so one set of weights serves every
    band set.

    Args:
        embed_dim: Output channels ``D``.
        patch_size: Patch side ``p`` (kernel size and stride).
        wavelengths: Default central wavelength of each band in nm
            (``[100, 20000]``), used when ``forward`` receives none.
        bandwidths: Default FWHM of each band in nm (``[1, 20000]``; needs
            ``use_bandwidth=True``).
        use_bandwidth: Condition the kernels on bandwidth as well (``"mlp"`` only);
            every call then needs bandwidths.
        generator: ``"mlp"`` (geofm's) or ``"dofa"`` (DOFA's, loads DOFA weights).
        wave_dim: Size of each sine-cosine embedding (DOFA: 128).
        hidden_dim: Width of the ``"mlp"`` hypernetwork.
        band_reduction: ``"sum"`` adds the per-band responses (DOFA); ``"mean"``
            divides them by the band count, so the output scale does not grow
            with the number of bands (``"mlp"`` only).
        use_bias: Add a learned bias of size ``D`` (``"mlp"`` only; DOFA generates its bias).

    Shape:
        - Input: ``(N, C, H, W)`` with ``H`` and ``W`` multiples of ``p``
          (``"dofa"``: any size, ``H' = (H + 2 - p) // p + 1``).
        - Output: ``(N, D, H / p, W / p)``.

    Raises:
        ValueError: If a size is not positive, wavelengths / bandwidths are not
            in their range in nm (e.g. micrometres), bandwidths are given
            without ``use_bandwidth``, or an
            ``"mlp"``-only option is set with ``generator="dofa"``.
        ShapeError: If default wavelengths and bandwidths differ in length.

    Example:
        >>> waves = [490.0, 560.0, 665.0]  # nm
        >>> embed = WavelengthPatchEmbed(embed_dim=32, patch_size=4, wavelengths=waves)
        >>> embed(torch.randn(2, 3, 16, 16)).shape
        torch.Size([2, 32, 4, 4])
        >>> embed(torch.randn(2, 2, 16, 16), wavelengths=[842.0, 1610.0]).shape
        torch.Size([2, 32, 4, 4])
        >>> dofa = WavelengthPatchEmbed(embed_dim=16, patch_size=4, generator="dofa")
        >>> sorted({k.split(".")[0] for k in dofa.state_dict()})
        ['fclayer', 'weight_generator']
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
        generator: KernelGenerator = "mlp",
        wave_dim: int = _WAVE_DIM,
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
                raise ValueError(f"{_OWNER} {label} must be positive, got {value}.")
        if wave_dim % 2:
            raise ValueError(f"{_OWNER} wave_dim must be even, got {wave_dim}.")
        if generator not in ("mlp", "dofa"):
            raise ValueError(f"{_OWNER} generator must be 'mlp' or 'dofa', got {generator!r}.")
        if band_reduction not in ("sum", "mean"):
            raise ValueError(
                f"{_OWNER} band_reduction must be 'sum' or 'mean', got {band_reduction!r}."
            )
        if bandwidths is not None and not use_bandwidth:
            raise ValueError(
                f"{_OWNER} got bandwidths but use_bandwidth=False. Pass use_bandwidth=True "
                "to condition on them, or drop the bandwidths."
            )
        if generator == "dofa" and (use_bandwidth or band_reduction != "sum" or not use_bias):
            raise ValueError(
                f"{_OWNER}(generator='dofa') reproduces DOFA, which sums over bands, generates "
                "its bias and takes no bandwidths: leave use_bandwidth, band_reduction and "
                "use_bias at their defaults, or use generator='mlp'."
            )
        cpu = torch.device("cpu")
        waves = None if wavelengths is None else self._values(wavelengths, "wavelengths", cpu)
        widths = None if bandwidths is None else self._values(bandwidths, "bandwidths", cpu)
        if waves is not None and widths is not None and waves.numel() != widths.numel():
            raise ShapeError(
                f"{_OWNER} got {waves.numel()} wavelengths but {widths.numel()} bandwidths. "
                "Give one bandwidth per band."
            )
        self.embed_dim = embed_dim
        self.patch_size = (patch_size, patch_size)
        self.wave_dim = wave_dim
        self.use_bandwidth = use_bandwidth
        self.band_reduction = band_reduction
        self.generator: KernelGenerator = generator
        self.padding = _DOFA_PADDING if generator == "dofa" else 0
        self.register_buffer("wavelengths", waves, persistent=False)
        self.register_buffer("bandwidths", widths, persistent=False)
        if generator == "dofa":
            self.fclayer = DOFAResidualMLP(dim=wave_dim)
            self.weight_generator = DOFAWeightGenerator(
                wave_dim=wave_dim,
                kernel_numel=patch_size * patch_size * embed_dim,
                embed_dim=embed_dim,
            )
            return
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

    @staticmethod
    def _values(
        values: Tensor | Sequence[float],
        label: Literal["wavelengths", "bandwidths"],
        device: torch.device,
    ) -> Tensor:
        return band_values(values, label=label, owner=_OWNER, device=device)

    @classmethod
    def from_sensor(
        cls,
        sensor: Sensor | str,
        *,
        embed_dim: int,
        patch_size: int,
        use_bandwidth: bool = False,
        **options: Unpack[WavelengthEmbedOptions],
    ) -> WavelengthPatchEmbed:
        """Build the embedding with a sensor's wavelengths (and bandwidths) as defaults.

        Args:
            sensor: A :class:`~geofm.sensors.Sensor` or a registered sensor name.
            embed_dim: Output channels ``D``.
            patch_size: Patch side ``p``.
            use_bandwidth: Condition on the sensor's bandwidths too.
            **options: The other keyword arguments of :class:`WavelengthPatchEmbed`
                (``generator``, ``wave_dim``, ``hidden_dim``, ``band_reduction``,
                ``use_bias``), see :class:`WavelengthEmbedOptions`.

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
            **options,
        )

    def _band_inputs(
        self,
        shape: tuple[int, ...] | None,
        wavelengths: Tensor | Sequence[float] | None,
        bandwidths: Tensor | Sequence[float] | None,
        device: torch.device,
    ) -> tuple[Tensor, Tensor | None]:
        """Wavelengths and bandwidths of a call, checked against the band count (if known)."""
        if wavelengths is None:
            if bandwidths is not None:
                raise ValueError(
                    f"{_OWNER} got bandwidths but no wavelengths. Pass both for a new band "
                    "set, or neither to use the constructor's."
                )
            if self.wavelengths is None:
                raise ValueError(
                    f"{_OWNER} has no wavelengths: pass wavelengths= (nm, one per band) to "
                    "forward or to the constructor."
                )
            waves, widths = self.wavelengths, self.bandwidths
        else:
            waves = self._values(wavelengths, "wavelengths", device)
            widths = None if bandwidths is None else self._values(bandwidths, "bandwidths", device)
        count = waves.numel() if shape is None else shape[1]
        given = "" if shape is None else f" (input shape {shape})"
        if waves.numel() != count:
            raise ShapeError(
                f"{_OWNER} got {count} bands{given} but {waves.numel()} wavelengths. Pass one "
                "wavelength per band."
            )
        if not self.use_bandwidth:
            if widths is not None:
                raise ValueError(
                    f"{_OWNER} got bandwidths but was built with use_bandwidth=False. Drop "
                    "them or build it with use_bandwidth=True."
                )
            return waves, None
        if widths is None:
            raise ValueError(
                f"{_OWNER} was built with use_bandwidth=True but got no bandwidths. Pass "
                "bandwidths= (FWHM in nm, one per band) with the wavelengths."
            )
        if widths.numel() != count:
            raise ShapeError(
                f"{_OWNER} got {count} bands{given} but {widths.numel()} bandwidths. Pass one "
                "bandwidth per band."
            )
        return waves, widths

    def generate(
        self,
        wavelengths: Tensor | Sequence[float] | None = None,
        bandwidths: Tensor | Sequence[float] | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Kernel ``(D, C, p, p)`` and bias ``(D,)`` (or ``None``) for a band set.

        Band reduction (``"mean"``) and DOFA's 0.01 scale are included, so
        ``conv2d(x, kernel, bias, stride=p, padding=self.padding)`` is the
        embedding.

        Args:
            wavelengths: Central wavelength of each band in nm (default: the stored ones).
            bandwidths: FWHM of each band in nm (only with ``use_bandwidth``).

        Returns:
            ``(kernel, bias)``.

        Raises:
            ValueError: If the values are not in their range in nm (e.g. micrometres)
                or bandwidths do not match the setting.
            ShapeError: If wavelengths and bandwidths differ in length.

        Example:
            >>> embed = WavelengthPatchEmbed(embed_dim=8, patch_size=2, generator="dofa")
            >>> [t.shape for t in embed.generate([842.0, 1610.0, 2190.0])]
            [torch.Size([8, 3, 2, 2]), torch.Size([8])]
        """
        device = next(self.parameters()).device
        waves, widths = self._band_inputs(None, wavelengths, bandwidths, device)
        return self._generate(waves, widths)

    def generate_kernel(
        self,
        wavelengths: Tensor | Sequence[float],
        bandwidths: Tensor | Sequence[float] | None = None,
    ) -> Tensor:
        """The convolution kernel ``(D, C, p, p)`` of :meth:`generate`, without the bias.

        Args:
            wavelengths: Central wavelength of each band in nm.
            bandwidths: FWHM of each band in nm (only with ``use_bandwidth``).

        Returns:
            The kernel.

        Example:
            >>> embed = WavelengthPatchEmbed(embed_dim=8, patch_size=2)
            >>> embed.generate_kernel([490.0, 560.0, 665.0]).shape
            torch.Size([8, 3, 2, 2])
        """
        return self.generate(wavelengths, bandwidths)[0]

    def _generate(self, waves: Tensor, widths: Tensor | None) -> tuple[Tensor, Tensor | None]:
        p_h, p_w = self.patch_size
        features = sincos_wavelength_embedding(waves, self.wave_dim)  # (C, E)
        if self.generator == "dofa":
            tokens = self.fclayer(features)  # (C, E)
            weight, bias = self.weight_generator(tokens)  # (C, p*p*D), (D,)
            kernel = weight.view(waves.numel(), p_h, p_w, self.embed_dim)  # (C, p, p, D)
            kernel = kernel.permute(3, 0, 1, 2)  # (D, C, p, p)
            return kernel * _DOFA_SCALER, bias * _DOFA_SCALER
        if widths is not None:
            width_features = sincos_wavelength_embedding(widths, self.wave_dim)  # (C, E)
            features = torch.cat([features, width_features], dim=1)  # (C, 2E)
        hidden = self.band_mlp(features.to(self.kernel_generator.weight.dtype))  # (C, hidden)
        kernel = self.kernel_generator(hidden)  # (C, D * p * p)
        kernel = kernel.view(-1, self.embed_dim, p_h, p_w).transpose(0, 1)  # (D, C, p, p)
        if self.band_reduction == "mean":
            kernel = kernel / waves.numel()
        return kernel, self.bias

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
                differs from the band count, or ``H`` / ``W`` is not a multiple
                of ``p`` (``"mlp"``).
            ValueError: If no wavelengths are available, values are not in their
                range in nm (e.g. micrometres), or bandwidths do not match
                ``use_bandwidth``.

        Shape:
            - Input: ``(N, C, H, W)``.
            - Output: ``(N, D, H / p, W / p)``.

        Example:
            >>> embed = WavelengthPatchEmbed(embed_dim=8, patch_size=4)
            >>> embed(torch.randn(1, 2, 8, 8), wavelengths=[560.0, 842.0]).shape
            torch.Size([1, 8, 2, 2])
        """
        check_nchw(x, _OWNER)
        height, width = x.shape[-2:]
        p_h, p_w = self.patch_size
        if not self.padding and (height % p_h or width % p_w):
            raise ShapeError(
                f"{_OWNER} got an input of {height}x{width} pixels (shape {tuple(x.shape)}), "
                f"not a multiple of the patch size {p_h}. Crop or pad to "
                f"{height - height % p_h or p_h}x{width - width % p_w or p_w} or a larger multiple."
            )
        waves, widths = self._band_inputs(tuple(x.shape), wavelengths, bandwidths, x.device)
        kernel, bias = self._generate(waves, widths)
        out: Tensor = F.conv2d(
            x,
            kernel.to(x.dtype),
            None if bias is None else bias.to(x.dtype),
            stride=self.patch_size,
            padding=self.padding,
        )  # (N, D, H/p, W/p)
        return out
