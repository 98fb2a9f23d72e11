"""Spectral tokenizers: turn a stack of bands into something a vision backbone eats.

Three modules, three ideas:

- :class:`SpectralAdapter` (SpectralEarth, :mod:`geofm.spectral.adapter`):
  per-pixel 1-D convolutions along the band axis compress ``C >= 75``
  hyperspectral bands into 128 channels, so a backbone built for 128 channels
  accepts EnMAP (202 bands), DESIS (235), EO-1 Hyperion (198) or HYPERVIEW (150).
- :class:`SpectralTokenizer` (Fusion-LoRA, :mod:`geofm.spectral.tokenizer`): a
  small 2-D CNN maps a few bands (e.g. Sentinel-2 R, G, B, NIR, SWIR1, SWIR2)
  to a pseudo-RGB image for a frozen RGB encoder.
- :class:`WavelengthPatchEmbed` (:mod:`geofm.spectral.wavelength`): a patch
  embedding whose kernel for each band is generated from the band's central
  wavelength, so one ViT accepts any band set; geofm's MLP generator or
  DOFA's (``generator="dofa"``, DOFA's parameter names).

Wavelengths and bandwidths are in **nanometres** everywhere (see :mod:`geofm.sensors`).

Example:
    >>> import torch
    >>> from geofm.spectral import SpectralAdapter
    >>> SpectralAdapter()(torch.randn(2, 202, 8, 8)).shape
    torch.Size([2, 128, 8, 8])
"""

from __future__ import annotations

from geofm.spectral.adapter import SpectralAdapter, spectral_adapter_length
from geofm.spectral.tokenizer import SpectralTokenizer
from geofm.spectral.wavelength import WavelengthPatchEmbed, sincos_wavelength_embedding

__all__ = [
    "SpectralAdapter",
    "SpectralTokenizer",
    "WavelengthPatchEmbed",
    "sincos_wavelength_embedding",
    "spectral_adapter_length",
]
