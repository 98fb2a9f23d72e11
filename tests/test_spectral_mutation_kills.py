"""Tests written against the surviving mutants of ``geofm.spectral`` (see reports/mutation.md).

Each test checks documented behaviour: exact values against an independent
computation, the ends of the accepted ranges, and the error type with the
owner, the value that came and the value that was expected in its message.
"""

from __future__ import annotations

import math
import re

import pytest
import torch

from geofm.errors import ShapeError
from geofm.sensors import get_sensor
from geofm.spectral import (
    SpectralAdapter,
    SpectralTokenizer,
    WavelengthPatchEmbed,
    sincos_wavelength_embedding,
    spectral_adapter_length,
)
from geofm.spectral._checks import band_values, check_nchw
from geofm.spectral.wavelength import DOFAWeightGenerator

CPU = torch.device("cpu")


def _exact(message: str) -> str:
    """A ``match`` pattern for exactly ``message``."""
    return f"^{re.escape(message)}$"


# --- _checks -----------------------------------------------------------------------------
def test_check_nchw_message_names_owner_shape_and_fix() -> None:
    with pytest.raises(ShapeError) as info:
        check_nchw(torch.zeros(3, 4, 5), "Owner")
    assert str(info.value) == (
        "Owner expects a (N, C, H, W) tensor, got shape (3, 4, 5). "
        "Add the missing batch dimension with x.unsqueeze(0)."
    )


def test_band_values_returns_float32_from_float64_tensors_and_ints() -> None:
    from_tensor = band_values(
        torch.tensor([490.0, 560.0], dtype=torch.float64),
        label="wavelengths",
        owner="O",
        device=CPU,
    )
    assert from_tensor.dtype == torch.float32
    torch.testing.assert_close(from_tensor, torch.tensor([490.0, 560.0]))
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        from_list = band_values([490, 560], label="bandwidths", owner="O", device=CPU)
    finally:
        torch.set_default_dtype(previous)
    assert from_list.dtype == torch.float32
    assert from_list.tolist() == [490.0, 560.0]


@pytest.mark.parametrize("label", ["wavelengths", "bandwidths"])
def test_band_values_refuses_empty_and_2d_values_as_shape_errors(label: str) -> None:
    with pytest.raises(ShapeError) as info:
        band_values([], label=label, owner="Doc", device=CPU)  # type: ignore[arg-type]
    assert str(info.value) == (
        f"Doc expects {label} as a non-empty 1-D sequence (one value per band, in nm), "
        "got shape (0,)."
    )
    with pytest.raises(ShapeError, match=r"^Doc expects .* got shape \(1, 2\)\.$"):
        band_values(torch.tensor([[490.0, 560.0]]), label=label, owner="Doc", device=CPU)  # type: ignore[arg-type]


def test_bandwidth_range_ends_are_accepted() -> None:
    out = band_values([1.0, 20000.0], label="bandwidths", owner="Doc", device=CPU)
    assert out.tolist() == [1.0, 20000.0]


def test_bandwidth_error_names_owner_range_values_and_micrometre_hint() -> None:
    message = (
        "Doc: bandwidths must be full widths at half maximum in nanometres, in [1, 20000] nm, "
        "one per band; got (0.066, 0.036). They look like micrometres: multiply by 1000."
    )
    with pytest.raises(ValueError, match=_exact(message)):
        band_values([0.066, 0.036], label="bandwidths", owner="Doc", device=CPU)


@pytest.mark.parametrize(
    "values",
    [
        [0.0, 0.5],  # zero is not a micrometre value
        [1.0, 0.5],  # 1 nm is in range: not every value looks like micrometres
        [20001.0],
    ],
)
def test_bandwidth_micrometre_hint_only_when_every_value_is_in_0_to_1(values: list[float]) -> None:
    with pytest.raises(ValueError, match=r"^Doc: bandwidths .*\)\.$") as info:
        band_values(values, label="bandwidths", owner="Doc", device=CPU)
    assert "micrometres" not in str(info.value)


def test_wavelength_errors_name_the_owner() -> None:
    with pytest.raises(ValueError, match=r"^Doc: .*nanometres"):
        band_values([0.49], label="wavelengths", owner="Doc", device=CPU)


# --- SpectralAdapter ---------------------------------------------------------------------
def _independent_length(bands: int) -> int:
    length = bands
    for kernel, stride in ((7, 5), (7, 5), (5, 3)):
        length = (length + 2 - kernel) // stride + 1
        if length <= 0:
            return length
    return length


def test_adapter_length_is_an_int_matching_the_conv_formula() -> None:
    for bands in range(300):
        got = spectral_adapter_length(bands)
        assert type(got) is int and got == _independent_length(bands), bands
    # Short band counts end at the second convolution with length 0.
    assert [spectral_adapter_length(c) for c in (5, 9, 10, 74, 75, 202)] == [0, 0, 0, 0, 1, 2]


def test_adapter_non_4d_message_names_the_adapter() -> None:
    with pytest.raises(ShapeError, match=r"^SpectralAdapter expects a \(N, C, H, W\) tensor"):
        SpectralAdapter()(torch.randn(80, 2, 2))


def test_adapter_too_few_bands_message() -> None:
    with pytest.raises(ShapeError) as info:
        SpectralAdapter()(torch.randn(1, 13, 2, 2))
    assert str(info.value) == (
        "SpectralAdapter got 13 bands (input shape (1, 13, 2, 2)) but needs at least 75: its "
        "three strided spectral convolutions (strides 5, 5, 3) shrink 13 bands to length 0. "
        "Use a hyperspectral input or a tokenizer for few bands (SpectralTokenizer, "
        "WavelengthPatchEmbed)."
    )


# --- SpectralTokenizer -------------------------------------------------------------------
def test_tokenizer_accepts_sizes_and_channels_of_one() -> None:
    tok = SpectralTokenizer(in_channels=1, out_channels=1, hidden_channels=1, output_size=(1, 3))
    assert tok.in_channels == 1 and tok.out_channels == 1 and tok.output_size == (1, 3)
    assert tok(torch.randn(2, 1, 4, 4)).shape == (2, 1, 1, 3)
    assert SpectralTokenizer(in_channels=2).out_channels == 3


@pytest.mark.parametrize("label", ["in_channels", "out_channels", "hidden_channels"])
def test_tokenizer_names_the_channel_count_that_is_not_positive(label: str) -> None:
    kwargs = {"in_channels": 2, label: 0}
    with pytest.raises(
        ValueError, match=_exact(f"SpectralTokenizer {label} must be positive, got 0.")
    ):
        SpectralTokenizer(**kwargs)


def test_tokenizer_messages_name_the_tokenizer_and_the_band_counts() -> None:
    tok = SpectralTokenizer(in_channels=5)
    with pytest.raises(ShapeError, match=r"^SpectralTokenizer expects a \(N, C, H, W\) tensor"):
        tok(torch.randn(5, 4, 6))
    with pytest.raises(ShapeError) as info:
        tok(torch.randn(1, 3, 4, 6))
    assert str(info.value) == (
        "SpectralTokenizer got 3 bands (input shape (1, 3, 4, 6)) but was built for 5. "
        "Pass a (N, 5, H, W) tensor or build it with in_channels=3."
    )
    with pytest.raises(ValueError, match=re.escape("got (2, 0).")):
        SpectralTokenizer(in_channels=5, output_size=(2, 0))


# --- sincos_wavelength_embedding ---------------------------------------------------------
def test_sincos_smallest_size_and_zero_size() -> None:
    emb = sincos_wavelength_embedding(torch.tensor([490.0, 842.0]), 2)
    expected = torch.tensor(
        [[math.sin(490.0), math.cos(490.0)], [math.sin(842.0), math.cos(842.0)]]
    )
    torch.testing.assert_close(emb, expected)
    for bad in (0, -2, 5):
        message = f"Embedding size must be a positive even number, got {bad}."
        with pytest.raises(ValueError, match=_exact(message)):
            sincos_wavelength_embedding(torch.tensor([490.0]), bad)


def test_sincos_is_float32_whatever_the_input_and_default_dtype() -> None:
    values = torch.tensor([490.0, 10895.0], dtype=torch.float64)
    half = 3
    freqs = [10000.0 ** (-k / half) for k in range(half)]
    expected = torch.tensor(
        [
            [math.sin(v * f) for f in freqs] + [math.cos(v * f) for f in freqs]
            for v in (490.0, 10895.0)
        ]
    )
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        emb = sincos_wavelength_embedding(values, 2 * half)
    finally:
        torch.set_default_dtype(previous)
    assert emb.dtype == torch.float32
    torch.testing.assert_close(emb, expected, atol=2e-3, rtol=0)


# --- WavelengthPatchEmbed ----------------------------------------------------------------
@pytest.mark.parametrize("label", ["embed_dim", "patch_size", "wave_dim", "hidden_dim"])
def test_embed_names_the_size_that_is_not_positive(label: str) -> None:
    kwargs = {"embed_dim": 8, "patch_size": 2, label: 0}
    message = f"WavelengthPatchEmbed {label} must be positive, got 0."
    with pytest.raises(ValueError, match=_exact(message)):
        WavelengthPatchEmbed(**kwargs)  # type: ignore[arg-type]


def test_embed_accepts_sizes_of_one_and_has_the_documented_defaults() -> None:
    tiny = WavelengthPatchEmbed(embed_dim=1, patch_size=1, wave_dim=2, hidden_dim=1)
    assert tiny(torch.randn(2, 3, 2, 2), wavelengths=[490.0, 560.0, 665.0]).shape == (2, 1, 2, 2)
    embed = WavelengthPatchEmbed(embed_dim=8, patch_size=2)
    first = embed.band_mlp[0]
    assert isinstance(first, torch.nn.Linear)
    assert (first.in_features, first.out_features) == (128, 128)  # wave_dim, hidden_dim
    assert embed.generator == "mlp" and embed.padding == 0 and embed.bias is not None


def test_embed_without_bias_has_none() -> None:
    embed = WavelengthPatchEmbed(embed_dim=8, patch_size=2, use_bias=False)
    assert embed.bias is None and "bias" not in embed.state_dict()
    kernel, bias = embed.generate([490.0])
    assert bias is None
    x = torch.randn(1, 1, 4, 4)
    torch.testing.assert_close(
        embed(x, wavelengths=[490.0]), torch.nn.functional.conv2d(x, kernel, stride=2)
    )


def test_embed_kernel_generator_init_gives_unit_scale_kernels() -> None:
    torch.manual_seed(0)
    embed = WavelengthPatchEmbed(embed_dim=32, patch_size=4, hidden_dim=64)
    weight = embed.kernel_generator.weight
    assert weight.shape == (32 * 4 * 4, 64)
    assert abs(float(weight.detach().std()) - 1.0 / (4 * math.sqrt(64))) < 0.004
    assert float(embed.kernel_generator.bias.detach().abs().max()) == 0.0


def test_embed_default_bandwidths_are_used_and_not_saved() -> None:
    waves, widths = [490.0, 560.0], [66.0, 36.0]
    embed = WavelengthPatchEmbed(
        embed_dim=8, patch_size=2, wavelengths=waves, bandwidths=widths, use_bandwidth=True
    )
    assert set(embed.state_dict()).isdisjoint({"wavelengths", "bandwidths"})
    x = torch.randn(1, 2, 4, 4)
    torch.testing.assert_close(embed(x), embed(x, waves, widths))
    assert not torch.allclose(embed(x), embed(x, waves, [10.0, 10.0]))


def test_embed_from_sensor_forwards_the_options() -> None:
    embed = WavelengthPatchEmbed.from_sensor(
        "sentinel2_l2a",
        embed_dim=8,
        patch_size=2,
        use_bandwidth=True,
        hidden_dim=16,
        band_reduction="mean",
        use_bias=False,
    )
    sensor = get_sensor("sentinel2_l2a")
    assert embed.wavelengths is not None and embed.bandwidths is not None
    assert embed.wavelengths.tolist() == pytest.approx(list(sensor.wavelengths))
    assert embed.bandwidths.tolist() == pytest.approx(list(sensor.bandwidths or ()))
    assert embed.band_reduction == "mean" and embed.bias is None and embed.use_bandwidth
    dofa = WavelengthPatchEmbed.from_sensor("rgb", embed_dim=8, patch_size=2, generator="dofa")
    assert dofa.generator == "dofa" and dofa.padding == 1
    with pytest.raises(ValueError, match=r"^Sensor 'naip' has no bandwidths"):
        WavelengthPatchEmbed.from_sensor("naip", embed_dim=8, patch_size=2, use_bandwidth=True)


@pytest.mark.parametrize("where", ["constructor", "forward"])
def test_empty_bandwidths_are_named_as_bandwidths(where: str) -> None:
    message = r"^WavelengthPatchEmbed expects bandwidths as a non-empty 1-D sequence"
    embed = WavelengthPatchEmbed(embed_dim=8, patch_size=2, use_bandwidth=True)
    if where == "constructor":
        with pytest.raises(ShapeError, match=message):
            WavelengthPatchEmbed(embed_dim=8, patch_size=2, bandwidths=[], use_bandwidth=True)
    else:
        with pytest.raises(ShapeError, match=message):
            embed(torch.randn(1, 1, 2, 2), wavelengths=[490.0], bandwidths=[])


def test_generate_bandwidth_count_message_has_no_input_shape() -> None:
    embed = WavelengthPatchEmbed(embed_dim=8, patch_size=2, use_bandwidth=True)
    with pytest.raises(ShapeError) as info:
        embed.generate([490.0, 560.0], [10.0])
    assert str(info.value) == (
        "WavelengthPatchEmbed got 2 bands but 1 bandwidths. Pass one bandwidth per band."
    )
    with pytest.raises(ShapeError) as info:
        embed(torch.randn(1, 2, 2, 2), [490.0, 560.0], [10.0])
    assert str(info.value) == (
        "WavelengthPatchEmbed got 2 bands (input shape (1, 2, 2, 2)) but 1 bandwidths. "
        "Pass one bandwidth per band."
    )


@pytest.mark.parametrize(
    "option", [{"use_bandwidth": True}, {"band_reduction": "mean"}, {"use_bias": False}]
)
def test_dofa_refuses_each_mlp_only_option_alone(option: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"^WavelengthPatchEmbed\(generator='dofa'\) reproduces"):
        WavelengthPatchEmbed(embed_dim=8, patch_size=2, generator="dofa", **option)  # type: ignore[arg-type]


def test_dofa_generator_init_follows_dofa() -> None:
    torch.manual_seed(0)
    embed = WavelengthPatchEmbed(embed_dim=8, patch_size=2, generator="dofa")
    gen = embed.weight_generator
    assert gen.weight_tokens.shape == (128, 128) and gen.bias_token.shape == (1, 128)
    assert abs(float(gen.weight_tokens.detach().std()) - 0.02) < 0.002
    assert abs(float(gen.bias_token.detach().std()) - 0.02) < 0.008
    linears = [m for m in gen.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 5  # attention out_proj, linear1, linear2, fc_weight, fc_bias
    for layer in linears:
        assert layer.bias is not None and bool((layer.bias == 0.01).all())
        bound = math.sqrt(6.0 / (layer.in_features + layer.out_features))  # Xavier uniform
        assert float(layer.weight.detach().abs().max()) <= bound


def test_dofa_generator_has_no_dropout() -> None:
    embed = WavelengthPatchEmbed(embed_dim=8, patch_size=2, generator="dofa")
    with torch.no_grad():
        train = embed.train().generate([490.0, 842.0])
        evaluated = embed.eval().generate([490.0, 842.0])
    # DOFA's encoder layer has dropout 0: training mode gives the evaluation values.
    torch.testing.assert_close(train, evaluated, atol=1e-6, rtol=1e-5)


def test_from_sensor_takes_a_sensor_record_and_needs_bandwidths_only_when_asked() -> None:
    record = get_sensor("sentinel2_l2a").select(["B04", "B08"])  # not a registered name
    embed = WavelengthPatchEmbed.from_sensor(record, embed_dim=8, patch_size=2)
    assert embed.wavelengths is not None
    assert embed.wavelengths.tolist() == pytest.approx([664.6, 832.8])
    naip = WavelengthPatchEmbed.from_sensor("naip", embed_dim=8, patch_size=2)  # no bandwidths
    assert naip.bandwidths is None and not naip.use_bandwidth


def test_dofa_generator_wiring_with_fewer_weight_tokens_than_features() -> None:
    torch.manual_seed(0)
    gen = DOFAWeightGenerator(
        wave_dim=8, kernel_numel=6, embed_dim=3, num_weight_tokens=5, num_heads=2
    ).eval()
    waves = torch.randn(4, 8)
    with torch.no_grad():
        weight, bias = gen(waves)
        seq = torch.cat([gen.weight_tokens, waves, gen.bias_token])  # (5 + 4 + 1, 8)
        out = gen.transformer_encoder(seq)
        want_weight = gen.fc_weight(out[5:9] + waves)
        want_bias = gen.fc_bias(out[9])
    assert weight.shape == (4, 6) and bias.shape == (3,)
    torch.testing.assert_close(weight, want_weight)
    torch.testing.assert_close(bias, want_bias)


def test_dofa_embed_with_a_non_default_wave_dim() -> None:
    embed = WavelengthPatchEmbed(embed_dim=8, patch_size=2, generator="dofa", wave_dim=16)
    assert embed.weight_generator.fc_weight.in_features == 16
    assert embed.weight_generator.weight_tokens.shape == (128, 16)
    kernel, bias = embed.generate([490.0, 842.0])
    assert kernel.shape == (8, 2, 2, 2) and bias is not None and bias.shape == (8,)


def test_float32_embed_accepts_float64_input() -> None:
    embed = WavelengthPatchEmbed(embed_dim=8, patch_size=2, wavelengths=[490.0, 842.0])
    x = torch.randn(1, 2, 4, 4)
    out = embed(x.double())
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, embed(x).double(), atol=1e-5, rtol=1e-5)


# Full messages of WavelengthPatchEmbed's errors: each names what came and what is expected.
def _message(call: object, error: type[Exception] = ValueError) -> str:
    with pytest.raises(error) as info:
        call()  # type: ignore[operator]
    return str(info.value)


def test_constructor_error_messages() -> None:
    assert _message(lambda: WavelengthPatchEmbed(embed_dim=8, patch_size=2, wave_dim=6 + 1)) == (
        "WavelengthPatchEmbed wave_dim must be even, got 7."
    )
    assert (
        _message(
            lambda: WavelengthPatchEmbed(embed_dim=8, patch_size=2, generator="conv")  # type: ignore[arg-type]
        )
        == "WavelengthPatchEmbed generator must be 'mlp' or 'dofa', got 'conv'."
    )
    assert _message(lambda: WavelengthPatchEmbed(embed_dim=8, patch_size=2, bandwidths=[10.0])) == (
        "WavelengthPatchEmbed got bandwidths but use_bandwidth=False. Pass use_bandwidth=True "
        "to condition on them, or drop the bandwidths."
    )
    assert _message(
        lambda: WavelengthPatchEmbed(embed_dim=8, patch_size=2, generator="dofa", use_bias=False)
    ) == (
        "WavelengthPatchEmbed(generator='dofa') reproduces DOFA, which sums over bands, generates "
        "its bias and takes no bandwidths: leave use_bandwidth, band_reduction and use_bias at "
        "their defaults, or use generator='mlp'."
    )
    assert (
        _message(
            lambda: WavelengthPatchEmbed(
                embed_dim=8,
                patch_size=2,
                wavelengths=[490.0, 560.0],
                bandwidths=[10.0],
                use_bandwidth=True,
            ),
            ShapeError,
        )
        == "WavelengthPatchEmbed got 2 wavelengths but 1 bandwidths. Give one bandwidth per band."
    )
    assert _message(
        lambda: WavelengthPatchEmbed.from_sensor(
            "naip", embed_dim=8, patch_size=2, use_bandwidth=True
        )
    ) == (
        "Sensor 'naip' has no bandwidths, so use_bandwidth=True cannot be honoured. "
        "Use use_bandwidth=False or a sensor with bandwidths."
    )


def test_call_error_messages() -> None:
    plain = WavelengthPatchEmbed(embed_dim=8, patch_size=2)
    with_widths = WavelengthPatchEmbed(embed_dim=8, patch_size=2, use_bandwidth=True)
    x = torch.randn(1, 2, 4, 4)
    assert _message(lambda: plain(x)) == (
        "WavelengthPatchEmbed has no wavelengths: pass wavelengths= (nm, one per band) to "
        "forward or to the constructor."
    )
    assert _message(lambda: plain(x, bandwidths=[10.0, 10.0])) == (
        "WavelengthPatchEmbed got bandwidths but no wavelengths. Pass both for a new band "
        "set, or neither to use the constructor's."
    )
    assert _message(lambda: plain(x, [490.0, 560.0, 665.0]), ShapeError) == (
        "WavelengthPatchEmbed got 2 bands (input shape (1, 2, 4, 4)) but 3 wavelengths. Pass one "
        "wavelength per band."
    )
    assert _message(lambda: plain(x, [490.0, 560.0], [10.0, 10.0])) == (
        "WavelengthPatchEmbed got bandwidths but was built with use_bandwidth=False. Drop "
        "them or build it with use_bandwidth=True."
    )
    assert _message(lambda: with_widths(x, [490.0, 560.0])) == (
        "WavelengthPatchEmbed was built with use_bandwidth=True but got no bandwidths. Pass "
        "bandwidths= (FWHM in nm, one per band) with the wavelengths."
    )
    assert _message(lambda: plain(torch.randn(1, 1, 3, 2), [490.0]), ShapeError) == (
        "WavelengthPatchEmbed got an input of 3x2 pixels (shape (1, 1, 3, 2)), not a multiple "
        "of the patch size 2. Crop or pad to 2x2 or a larger multiple."
    )
    large = WavelengthPatchEmbed(embed_dim=8, patch_size=4)
    assert _message(lambda: large(torch.randn(1, 1, 2, 9), [490.0]), ShapeError) == (
        "WavelengthPatchEmbed got an input of 2x9 pixels (shape (1, 1, 2, 9)), not a multiple "
        "of the patch size 4. Crop or pad to 4x8 or a larger multiple."
    )
    assert _message(lambda: plain(torch.randn(2, 4, 4), [490.0, 560.0]), ShapeError).startswith(
        "WavelengthPatchEmbed expects a (N, C, H, W) tensor, got shape (2, 4, 4)."
    )
