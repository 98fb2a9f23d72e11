"""DOFA: the ViT with DOFA's wavelength-generated patch embedding, torchgeo's layout, strict load."""

from __future__ import annotations

import functools
import math

import pytest
import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Block
from torch import Tensor

import geofm
from geofm.backbones.vit import ViTBackbone
from geofm.errors import ShapeError
from geofm.spectral import WavelengthPatchEmbed
from geofm.weights import get_converter, load_weights

StateDict = dict[str, Tensor]

# torchgeo/models/dofa.py (DOFA, DOFAEmbedding, TransformerWeightGenerator, FCResLayer):
# every key of the encoder as the published files hold it, with its shape for width D,
# patch p = 16, wavelength dim E = 128, feed-forward 2048 and 128 weight tokens.
_GEN = "patch_embed.weight_generator."
_ENC = _GEN + "transformer_encoder.layers.0."


def _torchgeo_shapes(dim: int, depth: int, patch: int = 16) -> dict[str, tuple[int, ...]]:
    e = 128
    shapes: dict[str, tuple[int, ...]] = {
        "cls_token": (1, 1, dim),
        "pos_embed": (1, 197, dim),
        "patch_embed.fclayer.w1.weight": (e, e),
        "patch_embed.fclayer.w1.bias": (e,),
        "patch_embed.fclayer.w2.weight": (e, e),
        "patch_embed.fclayer.w2.bias": (e,),
        _GEN + "weight_tokens": (128, e),
        _GEN + "bias_token": (1, e),
        _GEN + "fc_weight.weight": (patch * patch * dim, e),
        _GEN + "fc_weight.bias": (patch * patch * dim,),
        _GEN + "fc_bias.weight": (dim, e),
        _GEN + "fc_bias.bias": (dim,),
        _ENC + "self_attn.in_proj_weight": (3 * e, e),
        _ENC + "self_attn.in_proj_bias": (3 * e,),
        _ENC + "self_attn.out_proj.weight": (e, e),
        _ENC + "self_attn.out_proj.bias": (e,),
        _ENC + "linear1.weight": (2048, e),
        _ENC + "linear1.bias": (2048,),
        _ENC + "linear2.weight": (e, 2048),
        _ENC + "linear2.bias": (e,),
        _ENC + "norm1.weight": (e,),
        _ENC + "norm1.bias": (e,),
        _ENC + "norm2.weight": (e,),
        _ENC + "norm2.bias": (e,),
    }
    for i in range(depth):
        b = f"blocks.{i}."
        shapes |= {
            b + "norm1.weight": (dim,),
            b + "norm1.bias": (dim,),
            b + "attn.qkv.weight": (3 * dim, dim),
            b + "attn.qkv.bias": (3 * dim,),
            b + "attn.proj.weight": (dim, dim),
            b + "attn.proj.bias": (dim,),
            b + "norm2.weight": (dim,),
            b + "norm2.bias": (dim,),
            b + "mlp.fc1.weight": (4 * dim, dim),
            b + "mlp.fc1.bias": (4 * dim,),
            b + "mlp.fc2.weight": (dim, 4 * dim),
            b + "mlp.fc2.bias": (dim,),
        }
    return shapes


def _random_torchgeo_state(dim: int, depth: int) -> StateDict:
    """Random tensors in torchgeo's layout; the huge fc_weight is a cheap expanded row."""
    out: StateDict = {}
    for key, shape in _torchgeo_shapes(dim, depth).items():
        if key.endswith("fc_weight.weight"):
            out[key] = (0.05 * torch.randn(shape[-1])).expand(shape)
        else:
            out[key] = 0.05 * torch.randn(shape)
    return out


# --- an independent reference of DOFA's patch embedding, written from the paper / code ---
def _reference_patch_embed(sd: StateDict, x: Tensor, waves_nm: list[float], patch: int) -> Tensor:
    """DOFA's dynamic patch embedding step by step from a torchgeo-layout state dict."""
    e = sd["patch_embed.fclayer.w1.weight"].shape[0]
    dim = sd[_GEN + "fc_bias.weight"].shape[0]
    # 1-D sin-cos encoding of the wavelength in nm (DOFA: um * 1000).
    pos = torch.tensor(waves_nm)
    omega = 1.0 / 10000 ** (torch.arange(e // 2, dtype=torch.float32) / (e / 2))
    ang = pos[:, None] * omega[None]
    w = torch.cat([ang.sin(), ang.cos()], dim=1)
    # FC residual layer.
    h = F.relu(F.linear(w, sd["patch_embed.fclayer.w1.weight"], sd["patch_embed.fclayer.w1.bias"]))
    h = F.relu(F.linear(h, sd["patch_embed.fclayer.w2.weight"], sd["patch_embed.fclayer.w2.bias"]))
    w = w + h
    # One post-norm transformer encoder layer, 4 heads, GELU, over [weight tokens, waves, bias].
    seq = torch.cat([sd[_GEN + "weight_tokens"], w, sd[_GEN + "bias_token"]])
    q, k, v = F.linear(
        seq, sd[_ENC + "self_attn.in_proj_weight"], sd[_ENC + "self_attn.in_proj_bias"]
    ).chunk(3, -1)
    heads = 4
    split = [t.reshape(len(seq), heads, e // heads).transpose(0, 1) for t in (q, k, v)]
    att = (split[0] @ split[1].transpose(1, 2) / math.sqrt(e // heads)).softmax(-1) @ split[2]
    att = att.transpose(0, 1).reshape(len(seq), e)
    att = F.linear(
        att, sd[_ENC + "self_attn.out_proj.weight"], sd[_ENC + "self_attn.out_proj.bias"]
    )
    y = F.layer_norm(seq + att, (e,), sd[_ENC + "norm1.weight"], sd[_ENC + "norm1.bias"])
    ff = F.linear(
        F.gelu(F.linear(y, sd[_ENC + "linear1.weight"], sd[_ENC + "linear1.bias"])),
        sd[_ENC + "linear2.weight"],
        sd[_ENC + "linear2.bias"],
    )
    y = F.layer_norm(y + ff, (e,), sd[_ENC + "norm2.weight"], sd[_ENC + "norm2.bias"])
    n = sd[_GEN + "weight_tokens"].shape[0]
    rows = F.linear(y[n:-1] + w, sd[_GEN + "fc_weight.weight"], sd[_GEN + "fc_weight.bias"])
    bias = F.linear(y[-1], sd[_GEN + "fc_bias.weight"], sd[_GEN + "fc_bias.bias"]) * 0.01
    kernel = rows.view(len(waves_nm), patch, patch, dim).permute(3, 0, 1, 2) * 0.01
    return F.conv2d(x, kernel, bias, stride=patch, padding=1)


def _tiny_embed(**kwargs: object) -> WavelengthPatchEmbed:
    return WavelengthPatchEmbed(
        embed_dim=16,
        patch_size=4,
        generator="dofa",
        **kwargs,  # type: ignore[arg-type]
    )


def _own_key(key: str) -> str:
    """Where a torchgeo-layout key sits in geofm's DOFA: under ``model.``, generator in ``proj``."""
    return "model." + key.replace("patch_embed.", "patch_embed.proj.")


def _prefixed(module: WavelengthPatchEmbed) -> StateDict:
    return {f"patch_embed.{k}": v for k, v in module.state_dict().items()}


# --- patch embedding ------------------------------------------------------------------
def test_patch_embed_matches_independent_reference() -> None:
    embed = _tiny_embed().eval()
    waves = [490.0, 665.0, 842.0, 1610.0]
    x = torch.randn(2, 4, 16, 16)
    with torch.no_grad():
        got = embed(x, wavelengths=waves)
        want = _reference_patch_embed(_prefixed(embed), x, waves, patch=4)
    assert got.shape == (2, 16, 4, 4)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_patch_embed_is_invariant_to_band_permutation_with_wavelengths() -> None:
    embed = _tiny_embed().eval()
    waves = [490.0, 560.0, 665.0, 842.0, 2190.0]
    x = torch.randn(1, 5, 16, 16)
    perm = [3, 0, 4, 2, 1]
    with torch.no_grad():
        base = embed(x, wavelengths=waves)
        permuted = embed(x[:, perm], wavelengths=[waves[i] for i in perm])
    torch.testing.assert_close(permuted, base, rtol=1e-4, atol=1e-5)


def test_patch_embed_pads_like_dofa_on_sizes_that_are_not_multiples() -> None:
    embed = _tiny_embed(wavelengths=[665.0, 842.0])
    # DOFA's padded convolution: H' = (H + 2 - p) // p + 1.
    assert embed(torch.randn(1, 2, 12, 8)).shape == (1, 16, 3, 2)


def test_patch_embed_errors() -> None:
    with pytest.raises(ValueError, match="no wavelengths"):
        _tiny_embed()(torch.randn(1, 2, 8, 8))
    with pytest.raises(ShapeError, match="3 wavelengths"):
        _tiny_embed()(torch.randn(1, 2, 8, 8), wavelengths=[490.0, 560.0, 665.0])
    # DOFA's own API takes micrometres: geofm refuses them and says how to convert.
    with pytest.raises(ValueError, match="in nanometres.*micrometres: multiply by 1000"):
        _tiny_embed(wavelengths=[0.665, 0.842])
    with pytest.raises(ValueError, match="embed_dim must be positive"):
        WavelengthPatchEmbed(embed_dim=0, patch_size=4, generator="dofa")
    with pytest.raises(ValueError, match="reproduces DOFA"):
        _tiny_embed(band_reduction="mean")


# --- backbone ---------------------------------------------------------------------------
def test_backbone_shapes_and_feature_info() -> None:
    m = geofm.create_backbone("dofa_vit_base_patch16", depth=2, bands="rgb").eval()
    assert isinstance(m, ViTBackbone) and m.in_chans == 3 and m.size_divisor == 16
    assert m.wavelength_embed is not None and m.wavelength_embed.generator == "dofa"
    maps = m(torch.randn(2, 3, 32, 48))
    assert [tuple(f.shape) for f in maps] == [(2, 768, 2, 3), (2, 768, 2, 3)]
    assert [f.reduction for f in m.feature_info] == [16, 16]
    assert m.embed(torch.randn(2, 3, 32, 32)).shape == (2, 768)


def test_backbone_embed_is_invariant_to_band_permutation() -> None:
    torch.manual_seed(0)
    m = geofm.create_backbone("dofa_vit_base_patch16", depth=1, bands=[490.0, 842.0, 1610.0])
    m.eval()
    # The band set is a build-time choice; the weights do not depend on it.
    other = geofm.create_backbone("dofa_vit_base_patch16", depth=1, bands=[1610.0, 490.0, 842.0])
    other.load_state_dict(m.state_dict())
    other.eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        base = m.embed(x)
        permuted = other.embed(x[:, [2, 0, 1]])
    torch.testing.assert_close(permuted, base, rtol=1e-4, atol=1e-4)


def test_bands_set_the_band_count_and_are_validated() -> None:
    m = geofm.create_backbone("dofa_vit_base_patch16", depth=1, bands="sentinel2_l1c")
    assert m.in_chans == 13
    assert m.embed(torch.randn(1, 13, 16, 16)).shape == (1, 768)
    with pytest.raises(ValueError, match="nm"):
        geofm.create_backbone("dofa_vit_base_patch16", depth=1, bands=[0.0])
    with pytest.raises(ShapeError, match="expected 13 bands"):
        m.embed(torch.randn(1, 3, 16, 16))
    with pytest.raises(TypeError, match="bands="):
        geofm.create_backbone("dofa_vit_base_patch16", depth=1, wavelengths=[490.0])
    # Names without a sensor have no wavelengths; the message names what create_backbone takes.
    with pytest.raises(ValueError, match=r"bands=get_sensor\('sentinel2_l2a'\)\.select\("):
        geofm.create_backbone("dofa_vit_base_patch16", depth=1, bands=["B04", "B03"])
    from geofm.sensors import get_sensor

    picked = get_sensor("sentinel2_l2a").select(["B04", "B03"])
    two = geofm.create_backbone("dofa_vit_base_patch16", depth=1, bands=picked)
    assert two.in_chans == 2 and two.input_spec.wavelengths == (664.6, 559.8)


def test_builder_rejects_in_chans_that_disagree_with_wavelengths() -> None:
    with pytest.raises(ShapeError, match="in_chans=4 but 3 wavelengths"):
        geofm.create_backbone("dofa_vit_base_patch16", depth=1, in_chans=4)


def test_gradients_reach_the_weight_generator() -> None:
    m = geofm.create_backbone("dofa_vit_base_patch16", depth=1, grad_checkpointing=True)
    m.embed(torch.randn(1, 3, 16, 16)).sum().backward()  # type: ignore[no-untyped-call]
    for name, p in m.named_parameters():
        if name.startswith("model.patch_embed.proj."):
            assert p.grad is not None and torch.isfinite(p.grad).all(), name


# --- torchgeo layout: strict loading and output parity ------------------------------------
def test_torchgeo_layout_loads_strictly_and_matches_reference() -> None:
    torch.manual_seed(0)
    sd = _random_torchgeo_state(768, depth=1)
    original = dict(sd)
    sd |= {"head.weight": torch.randn(45, 768), "head.bias": torch.zeros(45)}
    m = geofm.create_backbone("dofa_vit_base_patch16", depth=1, bands=[665.0, 842.0])
    report = load_weights(m, sd, converter=get_converter("dofa"))
    assert report.ok
    assert sorted(k.split(" ")[0] for k in report.ignored) == ["head.bias", "head.weight"]
    own = m.state_dict()
    for key, value in original.items():
        torch.testing.assert_close(own[_own_key(key)], value.contiguous())

    # torchgeo's DOFA forward_features (global_pool=True, fresh fc_norm) written out by hand.
    m.eval()
    x = torch.randn(1, 2, 224, 224)
    block = Block(
        768,
        12,
        4.0,
        qkv_bias=True,
        norm_layer=functools.partial(torch.nn.LayerNorm, eps=1e-6),  # type: ignore[arg-type]
    )
    block.load_state_dict(
        {k[len("blocks.0.") :]: v for k, v in original.items() if k.startswith("blocks.0.")}
    )
    block.eval()
    with torch.no_grad():
        tokens = _reference_patch_embed(original, x, [665.0, 842.0], patch=16)
        tokens = tokens.flatten(2).transpose(1, 2) + original["pos_embed"][:, 1:]
        cls = original["cls_token"] + original["pos_embed"][:, :1]
        out = block(torch.cat([cls, tokens], dim=1))
        want = F.layer_norm(out[:, 1:].mean(dim=1), (768,), eps=1e-6)
        got = m.embed(x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_converter_drops_final_norms_and_keeps_unknown_keys() -> None:
    from geofm.weights.load import LoadReport

    report = LoadReport()
    sd = {
        "fc_norm.weight": torch.ones(2),
        "norm.bias": torch.ones(2),
        "blocks.0.norm1.weight": torch.ones(2),
        "decoder_embed.weight": torch.ones(2),
    }
    out = get_converter("dofa")(sd, report)
    assert sorted(out) == ["blocks.0.norm1.weight", "decoder_embed.weight"]
    assert len(report.ignored) == 2


def test_position_grid_is_resampled_for_another_img_size() -> None:
    sd = _random_torchgeo_state(768, depth=1)
    m = geofm.create_backbone("dofa_vit_base_patch16", depth=1, img_size=64)
    report = load_weights(m, sd, converter=get_converter("dofa"))
    assert report.ok and any("14x14 to a 4x4" in note for note in report.adapted)
