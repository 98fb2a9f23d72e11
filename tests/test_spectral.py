"""Tests of geofm.spectral: SpectralAdapter, SpectralTokenizer, WavelengthPatchEmbed."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from geofm.errors import ShapeError, UnknownNameError
from geofm.sensors import get_sensor
from geofm.spectral import (
    SpectralAdapter,
    SpectralTokenizer,
    WavelengthPatchEmbed,
    sincos_wavelength_embedding,
    spectral_adapter_length,
)

# ---------------------------------------------------------------------------
# SpectralAdapter
# ---------------------------------------------------------------------------


def _conv3d(adapter: SpectralAdapter, index: int) -> torch.nn.Conv3d:
    layer = adapter[index]
    assert isinstance(layer, torch.nn.Conv3d)
    return layer


def _bn3d(adapter: SpectralAdapter, index: int) -> torch.nn.BatchNorm3d:
    layer = adapter[index]
    assert isinstance(layer, torch.nn.BatchNorm3d)
    return layer


def _linear(module: torch.nn.Module) -> torch.nn.Linear:
    assert isinstance(module, torch.nn.Linear)
    return module


def _randomise_batchnorm(module: torch.nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            assert m.running_mean is not None and m.running_var is not None
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)


def _reference_adapter(adapter: SpectralAdapter, x: Tensor) -> Tensor:
    """Independent form: every pixel's spectrum through three 1-D convs (eval-mode BN)."""
    n, c, h, w = x.shape
    spectra = x.permute(0, 2, 3, 1).reshape(n * h * w, 1, c)
    for conv_i, bn_i, (stride, pad) in ((0, 1, (5, 1)), (3, 4, (5, 1)), (6, 7, (3, 1))):
        conv, bn = _conv3d(adapter, conv_i), _bn3d(adapter, bn_i)
        assert bn.running_mean is not None and bn.running_var is not None
        spectra = F.conv1d(spectra, conv.weight[..., 0, 0], conv.bias, stride=stride, padding=pad)
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        spectra = (spectra - bn.running_mean[:, None]) * scale[:, None] + bn.bias[:, None]
        spectra = spectra.clamp_min(0)
    pooled = spectra.mean(dim=2)  # (N*H*W, 128)
    return pooled.reshape(n, h, w, 128).permute(0, 3, 1, 2)


def test_adapter_has_spectral_earth_parameter_count() -> None:
    assert sum(p.numel() for p in SpectralAdapter().parameters()) == 56_192


@pytest.mark.parametrize("bands", [202, 235, 198, 150, 75])
def test_adapter_gives_128_channels_for_every_source_sensor(bands: int) -> None:
    out = SpectralAdapter()(torch.randn(2, bands, 3, 4))
    assert out.shape == (2, 128, 3, 4)


def test_adapter_matches_independent_per_pixel_formula() -> None:
    adapter = SpectralAdapter()
    _randomise_batchnorm(adapter)
    adapter.eval()
    x = torch.randn(2, 202, 3, 3)
    torch.testing.assert_close(adapter(x), _reference_adapter(adapter, x), atol=1e-5, rtol=1e-4)


def test_adapter_state_dict_keys_match_spectral_earth_layout() -> None:
    shapes = {"0": (32, 1, 7, 1, 1), "3": (64, 32, 7, 1, 1), "6": (128, 64, 5, 1, 1)}
    checkpoint: dict[str, Tensor] = {}
    for idx, shape in shapes.items():
        checkpoint[f"spectral_adapter.{idx}.weight"] = torch.randn(shape)
        checkpoint[f"spectral_adapter.{idx}.bias"] = torch.randn(shape[0])
    for idx, ch in (("1", 32), ("4", 64), ("7", 128)):
        for name in ("weight", "bias", "running_mean", "running_var"):
            checkpoint[f"spectral_adapter.{idx}.{name}"] = torch.rand(ch) + 0.5
        checkpoint[f"spectral_adapter.{idx}.num_batches_tracked"] = torch.tensor(7)
    stripped = {k.removeprefix("spectral_adapter."): v for k, v in checkpoint.items()}
    adapter = SpectralAdapter()
    adapter.load_state_dict(stripped, strict=True)
    assert set(adapter.state_dict()) == set(stripped)
    torch.testing.assert_close(_conv3d(adapter, 6).weight, checkpoint["spectral_adapter.6.weight"])


def test_adapter_length_formula_matches_the_layers() -> None:
    adapter = SpectralAdapter().eval()
    for bands in range(70, 90):
        if spectral_adapter_length(bands) >= 1:
            assert adapter(torch.randn(1, bands, 1, 1)).shape == (1, 128, 1, 1)
    assert next(b for b in range(60, 90) if spectral_adapter_length(b) >= 1) == 75


def test_adapter_backward_reaches_every_parameter() -> None:
    adapter = SpectralAdapter()
    adapter(torch.randn(2, 150, 2, 2)).square().mean().backward()
    for name, p in adapter.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_adapter_rejects_too_few_bands_and_says_why() -> None:
    with pytest.raises(ShapeError, match="got 74 bands .* needs at least 75"):
        SpectralAdapter()(torch.randn(1, 74, 2, 2))
    with pytest.raises(ShapeError, match="strided spectral convolutions"):
        SpectralAdapter()(torch.randn(1, 13, 2, 2))


def test_adapter_rejects_non_4d_input() -> None:
    with pytest.raises(ShapeError, match=r"\(N, C, H, W\)"):
        SpectralAdapter()(torch.randn(202, 4, 4))


# ---------------------------------------------------------------------------
# SpectralTokenizer
# ---------------------------------------------------------------------------


def test_tokenizer_has_fusion_lora_parameter_count_and_keys() -> None:
    tok = SpectralTokenizer(in_channels=6)
    assert sum(p.numel() for p in tok.parameters()) == 3_715
    assert set(tok.state_dict()) == {"proj.0.weight", "proj.0.bias", "proj.2.weight", "proj.2.bias"}


def test_tokenizer_matches_conv_relu_conv_resize() -> None:
    tok = SpectralTokenizer(in_channels=6, output_size=(24, 20))
    x = torch.randn(2, 6, 16, 16)
    conv1, conv2 = tok.proj[0], tok.proj[2]
    assert isinstance(conv1, torch.nn.Conv2d) and isinstance(conv2, torch.nn.Conv2d)
    hidden = F.relu(F.conv2d(x, conv1.weight, conv1.bias, padding=1))
    expected = F.conv2d(hidden, conv2.weight, conv2.bias)
    expected = F.interpolate(expected, size=(24, 20), mode="bilinear", align_corners=False)
    torch.testing.assert_close(tok(x), expected)


def test_tokenizer_general_channels_and_call_time_size() -> None:
    tok = SpectralTokenizer(in_channels=10, out_channels=4, hidden_channels=8)
    assert tok(torch.randn(1, 10, 8, 8)).shape == (1, 4, 8, 8)
    assert tok(torch.randn(1, 10, 8, 8), output_size=5).shape == (1, 4, 5, 5)


def test_tokenizer_backward_reaches_every_parameter() -> None:
    tok = SpectralTokenizer(in_channels=6, output_size=12)
    tok(torch.randn(2, 6, 8, 8)).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in tok.parameters())


def test_tokenizer_rejects_bad_input() -> None:
    tok = SpectralTokenizer(in_channels=6)
    with pytest.raises(ShapeError, match="got 4 bands .* built for 6"):
        tok(torch.randn(1, 4, 8, 8))
    with pytest.raises(ShapeError, match=r"\(N, C, H, W\)"):
        tok(torch.randn(6, 8, 8))
    with pytest.raises(ValueError, match="output_size must be"):
        SpectralTokenizer(in_channels=6, output_size=(0, 3))
    with pytest.raises(ValueError, match="in_channels must be positive"):
        SpectralTokenizer(in_channels=0)


# ---------------------------------------------------------------------------
# WavelengthPatchEmbed
# ---------------------------------------------------------------------------

S2_WAVES = [442.7, 492.4, 559.8, 664.6, 704.1, 740.5, 782.8, 832.8, 864.7, 945.1, 1613.7, 2202.4]
S2_WIDTHS = [21.0, 66.0, 36.0, 31.0, 15.0, 15.0, 20.0, 106.0, 21.0, 20.0, 91.0, 175.0]


def _reference_embed(embed: WavelengthPatchEmbed, x: Tensor, waves: list[float]) -> Tensor:
    """Straightforward form: one generated kernel per band, one conv per band, summed."""
    p = embed.patch_size[0]
    half = embed.wave_dim // 2
    out = torch.zeros(())
    for band, wave in enumerate(waves):
        freqs = torch.tensor([10000.0 ** (-k / half) for k in range(half)])
        enc = torch.cat([torch.sin(wave * freqs), torch.cos(wave * freqs)])
        lin1, lin2 = _linear(embed.band_mlp[0]), _linear(embed.band_mlp[2])
        norm = embed.band_mlp[3]
        assert isinstance(norm, torch.nn.LayerNorm)
        h = F.gelu(enc @ lin1.weight.T + lin1.bias) @ lin2.weight.T + lin2.bias
        h = (h - h.mean()) / torch.sqrt(h.var(unbiased=False) + norm.eps) * norm.weight + norm.bias
        kernel = (h @ embed.kernel_generator.weight.T + embed.kernel_generator.bias).view(
            embed.embed_dim, 1, p, p
        )
        out = out + F.conv2d(x[:, band : band + 1], kernel, stride=p)
    assert embed.bias is not None
    return out + embed.bias[None, :, None, None]


def test_embed_output_shape() -> None:
    embed = WavelengthPatchEmbed(embed_dim=32, patch_size=4, wavelengths=S2_WAVES)
    assert embed(torch.randn(2, 12, 16, 16)).shape == (2, 32, 4, 4)


def test_embed_matches_per_band_reference() -> None:
    embed = WavelengthPatchEmbed(embed_dim=16, patch_size=4, wave_dim=16, hidden_dim=8)
    with torch.no_grad():
        embed.bias.normal_()  # type: ignore[union-attr]
        embed.kernel_generator.bias.normal_()
    x = torch.randn(2, 3, 8, 12)
    waves = [490.0, 842.0, 2190.0]
    torch.testing.assert_close(
        embed(x, wavelengths=waves), _reference_embed(embed, x, waves), atol=1e-4, rtol=1e-4
    )


@pytest.mark.parametrize("use_bandwidth", [False, True])
def test_embed_is_invariant_to_band_permutation(use_bandwidth: bool) -> None:
    embed = WavelengthPatchEmbed(embed_dim=16, patch_size=4, use_bandwidth=use_bandwidth)
    x = torch.randn(2, 12, 8, 8)
    perm = torch.randperm(12)
    waves = torch.tensor(S2_WAVES)
    widths = torch.tensor(S2_WIDTHS) if use_bandwidth else None
    out = embed(x, waves, widths)
    out_perm = embed(x[:, perm], waves[perm], None if widths is None else widths[perm])
    torch.testing.assert_close(out_perm, out, atol=1e-5, rtol=1e-5)
    # Permuting the bands but not their wavelengths must change the output.
    assert not torch.allclose(embed(x[:, perm], waves, widths), out, atol=1e-3)


def test_embed_band_subset_equals_full_set_with_missing_bands_zeroed() -> None:
    embed = WavelengthPatchEmbed(embed_dim=16, patch_size=4, wavelengths=S2_WAVES)
    x = torch.randn(2, 12, 8, 8)
    keep = [3, 2, 1, 7]
    subset = embed(x[:, keep], wavelengths=[S2_WAVES[i] for i in keep])
    zeroed = x.clone()
    zeroed[:, [i for i in range(12) if i not in keep]] = 0
    torch.testing.assert_close(subset, embed(zeroed), atol=1e-5, rtol=1e-5)


def test_embed_mean_reduction_is_invariant_to_duplicated_bands() -> None:
    embed = WavelengthPatchEmbed(embed_dim=8, patch_size=2, band_reduction="mean")
    x = torch.randn(1, 1, 4, 4)
    once = embed(x, wavelengths=[665.0])
    twice = embed(x.repeat(1, 2, 1, 1), wavelengths=[665.0, 665.0])
    torch.testing.assert_close(once, twice, atol=1e-6, rtol=1e-5)


def test_embed_bandwidth_changes_the_kernel() -> None:
    embed = WavelengthPatchEmbed(embed_dim=8, patch_size=2, use_bandwidth=True)
    narrow = embed.generate_kernel([665.0], [10.0])
    wide = embed.generate_kernel([665.0], [100.0])
    assert narrow.shape == (8, 1, 2, 2) and not torch.allclose(narrow, wide)


def test_embed_wavelengths_are_not_in_the_state_dict() -> None:
    embed = WavelengthPatchEmbed(embed_dim=8, patch_size=2, wavelengths=S2_WAVES)
    keys = set(embed.state_dict())
    assert not any("wavelength" in k or "bandwidth" in k for k in keys)
    other = WavelengthPatchEmbed(embed_dim=8, patch_size=2, wavelengths=[490.0, 560.0])
    other.load_state_dict(embed.state_dict(), strict=True)
    x = torch.randn(1, 2, 4, 4)
    torch.testing.assert_close(other(x), embed(x, wavelengths=[490.0, 560.0]))


def test_embed_from_sensor_uses_catalog_wavelengths() -> None:
    embed = WavelengthPatchEmbed.from_sensor("landsat89_oli", embed_dim=8, patch_size=2)
    x = torch.randn(1, 9, 4, 4)
    torch.testing.assert_close(
        embed(x), embed(x, wavelengths=list(get_sensor("landsat89_oli").wavelengths))
    )
    with pytest.raises(UnknownNameError):
        WavelengthPatchEmbed.from_sensor("landsat_99", embed_dim=8, patch_size=2)
    with pytest.raises(ValueError, match="has no bandwidths"):
        WavelengthPatchEmbed.from_sensor("naip", embed_dim=8, patch_size=2, use_bandwidth=True)


def test_embed_backward_reaches_every_parameter() -> None:
    embed = WavelengthPatchEmbed(embed_dim=8, patch_size=2, use_bandwidth=True)
    embed(torch.randn(2, 3, 4, 4), [490.0, 560.0, 665.0], [66.0, 36.0, 31.0]).sum().backward()
    for name, p in embed.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_embed_runs_in_float64() -> None:
    embed = WavelengthPatchEmbed(embed_dim=8, patch_size=2, wavelengths=[490.0]).double()
    assert embed(torch.randn(1, 1, 4, 4, dtype=torch.float64)).dtype == torch.float64


def test_embed_rejects_band_count_mismatch() -> None:
    embed = WavelengthPatchEmbed(embed_dim=8, patch_size=4, wavelengths=S2_WAVES)
    with pytest.raises(ShapeError, match=r"got 10 bands \(input shape .*\) but 12 wavelengths"):
        embed(torch.randn(2, 10, 8, 8))
    bw = WavelengthPatchEmbed(embed_dim=8, patch_size=4, use_bandwidth=True)
    with pytest.raises(ShapeError, match="got 2 bands .* but 3 bandwidths"):
        bw(torch.randn(1, 2, 4, 4), [490.0, 560.0], [1.0, 2.0, 3.0])


def test_embed_rejects_sizes_that_are_not_patch_multiples() -> None:
    embed = WavelengthPatchEmbed(embed_dim=8, patch_size=4, wavelengths=[490.0])
    with pytest.raises(ShapeError, match="10x8 pixels .* not a multiple of the patch size 4"):
        embed(torch.randn(1, 1, 10, 8))


def test_embed_rejects_missing_or_bad_spectral_metadata() -> None:
    embed = WavelengthPatchEmbed(embed_dim=8, patch_size=2)
    with pytest.raises(ValueError, match="has no wavelengths"):
        embed(torch.randn(1, 1, 2, 2))
    with pytest.raises(ValueError, match=r"in \[100, 20000\] nm.*got \(490.0, -1.0\)\.$"):
        embed(torch.randn(1, 2, 2, 2), wavelengths=[490.0, -1.0])
    with pytest.raises(ValueError, match="use_bandwidth=False"):
        embed(torch.randn(1, 1, 2, 2), wavelengths=[490.0], bandwidths=[10.0])
    with pytest.raises(ValueError, match="use_bandwidth=False"):
        WavelengthPatchEmbed(embed_dim=8, patch_size=2, bandwidths=[10.0])
    bw = WavelengthPatchEmbed(embed_dim=8, patch_size=2, use_bandwidth=True)
    with pytest.raises(ValueError, match="got no bandwidths"):
        bw(torch.randn(1, 1, 2, 2), wavelengths=[490.0])
    with pytest.raises(ShapeError, match="2 wavelengths but 1 bandwidths"):
        WavelengthPatchEmbed(
            embed_dim=8,
            patch_size=2,
            wavelengths=[490.0, 560.0],
            bandwidths=[10.0],
            use_bandwidth=True,
        )
    with pytest.raises(ValueError, match="band_reduction"):
        WavelengthPatchEmbed(embed_dim=8, patch_size=2, band_reduction="max")  # type: ignore[arg-type]
    with pytest.raises(ShapeError, match=r"\(N, C, H, W\)"):
        embed(torch.randn(1, 2, 2), wavelengths=[490.0])


MICROMETRES = [0.4924, 0.5598, 0.6646]  # Sentinel-2 B02-B04 in um: 1000x too small


def _embed(**kwargs: object) -> WavelengthPatchEmbed:
    return WavelengthPatchEmbed(embed_dim=8, patch_size=2, **kwargs)  # type: ignore[arg-type]


UM_HINT = r"centre wavelengths in nanometres, in \[100, 20000\] nm.*micrometres: multiply by 1000"


def test_constructor_refuses_micrometre_wavelengths() -> None:
    with pytest.raises(ValueError, match=f"^WavelengthPatchEmbed: .*{UM_HINT}"):
        _embed(wavelengths=MICROMETRES)


def test_forward_refuses_micrometre_wavelengths_as_list_and_tensor() -> None:
    embed = _embed(wavelengths=[490.0, 560.0, 665.0])
    x = torch.randn(2, 3, 4, 6)
    with pytest.raises(ValueError, match=UM_HINT):
        embed(x, wavelengths=MICROMETRES)
    with pytest.raises(ValueError, match=UM_HINT):
        embed(x, wavelengths=torch.tensor(MICROMETRES))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_accelerator_tensors_are_checked_too() -> None:
    embed = _embed(wavelengths=[490.0, 560.0, 665.0]).cuda()
    x = torch.randn(2, 3, 4, 6, device="cuda")
    with pytest.raises(ValueError, match=UM_HINT):
        embed(x, wavelengths=torch.tensor(MICROMETRES, device="cuda"))
    good = embed(x, wavelengths=torch.tensor([490.0, 560.0, 665.0], device="cuda"))
    torch.testing.assert_close(good, embed(x))


def test_generate_and_generate_kernel_refuse_micrometre_wavelengths() -> None:
    with pytest.raises(ValueError, match=UM_HINT):
        _embed().generate(MICROMETRES)
    with pytest.raises(ValueError, match=UM_HINT):
        _embed(generator="dofa").generate_kernel(MICROMETRES)


@pytest.mark.parametrize("bad", [99.0, 20001.0, float("nan"), float("inf")])
def test_wavelengths_outside_100_to_20000_nm_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match=r"nanometres, in \[100, 20000\] nm") as info:
        _embed().generate([490.0, bad])
    assert "micrometres" not in str(info.value)  # only one value is off: no unit hint


def test_range_ends_are_accepted() -> None:
    kernel = _embed().generate_kernel([100.0, 20000.0])
    assert kernel.shape == (8, 2, 2, 2) and torch.isfinite(kernel).all()


def test_micrometre_bandwidths_are_refused_with_the_unit() -> None:
    embed = _embed(use_bandwidth=True)
    with pytest.raises(ValueError, match=r"bandwidths must be full widths at half maximum in nano"):
        embed.generate([490.0, 560.0], [0.066, 0.036])
    with pytest.raises(ValueError, match="micrometres: multiply by 1000"):
        embed.generate([490.0, 560.0], [0.066, 0.036])
    with pytest.raises(ValueError, match=r"in \[1, 20000\] nm"):
        _embed(use_bandwidth=True, wavelengths=[490.0], bandwidths=[0.0])
    with pytest.raises(ValueError, match=r"got \(66.0, 25000.0\)\.$"):
        embed.generate([490.0, 560.0], [66.0, 25000.0])


def test_sincos_embedding_formula_and_errors() -> None:
    values = torch.tensor([500.0, 10895.0])
    emb = sincos_wavelength_embedding(values, 4)
    expected = torch.tensor(
        [
            [math.sin(v), math.sin(v / 100.0), math.cos(v), math.cos(v / 100.0)]
            for v in (500.0, 10895.0)
        ]
    )
    torch.testing.assert_close(emb, expected)
    with pytest.raises(ValueError, match="positive even"):
        sincos_wavelength_embedding(values, 3)


def test_import_stays_light() -> None:
    code = (
        "import sys, geofm.spectral; "
        "bad = [m for m in ('geofm.hub', 'geofm.backbones', 'rasterio', 'huggingface_hub') "
        "if m in sys.modules]; sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
