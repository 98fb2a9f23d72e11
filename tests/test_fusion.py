"""Tests of geofm.fusion: CrossAttentionFusion (CAF) and GatedLateFusion (GLF)."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
from torch import Tensor, nn

from geofm.errors import ShapeError
from geofm.fusion import CrossAttentionFusion, GatedLateFusion, RandomBaseLoRALinear


def _reference_caf(caf: CrossAttentionFusion, visual: Tensor, spectral: Tensor) -> Tensor:
    """The Fusion-LoRA formula written out head by head, with explicit softmax."""
    n, c, h, w = visual.shape
    q_tokens = visual.flatten(2).transpose(1, 2)
    s_tokens = spectral.flatten(2).transpose(1, 2)
    qn = caf.norm1(q_tokens)
    sn = caf.norm1(s_tokens) if caf.norm_kv is None else caf.norm_kv(s_tokens)
    q, k, v = caf.q_proj(qn), caf.k_proj(sn), caf.v_proj(sn)
    d = caf.head_dim
    heads = []
    for i in range(caf.num_heads):
        sl = slice(i * d, (i + 1) * d)
        scores = q[..., sl] @ k[..., sl].transpose(1, 2) / math.sqrt(d)
        heads.append(torch.softmax(scores, dim=-1) @ v[..., sl])
    attended = caf.out_proj(torch.cat(heads, dim=-1))
    base = qn if caf.query_residual == "normalized" else q_tokens
    out = base + attended
    out = out + caf.ffn(caf.norm2(out))
    result: Tensor = out.transpose(1, 2).reshape(n, c, h, w)
    return result


# ---------------------------------------------------------------------------
# CrossAttentionFusion
# ---------------------------------------------------------------------------


def test_caf_output_has_the_visual_shape() -> None:
    caf = CrossAttentionFusion(embed_dim=32, num_heads=4)
    assert caf(torch.randn(2, 32, 4, 4), torch.randn(2, 32, 4, 4)).shape == (2, 32, 4, 4)


@pytest.mark.parametrize(
    ("share_norm", "query_residual", "spectral_hw"),
    [(True, "normalized", (4, 4)), (False, "input", (2, 3)), (True, "input", (5, 5))],
)
def test_caf_matches_reference_formula(
    share_norm: bool, query_residual: str, spectral_hw: tuple[int, int]
) -> None:
    caf = CrossAttentionFusion(
        embed_dim=16,
        num_heads=4,
        share_norm=share_norm,
        query_residual=query_residual,  # type: ignore[arg-type]
    )
    visual, spectral = torch.randn(2, 16, 4, 4), torch.randn(2, 16, *spectral_hw)
    torch.testing.assert_close(
        caf(visual, spectral), _reference_caf(caf, visual, spectral), atol=1e-5, rtol=1e-4
    )


def test_caf_parameter_count_and_source_trainable_count() -> None:
    caf = CrossAttentionFusion(embed_dim=1024, num_heads=8)
    total = sum(p.numel() for p in caf.parameters())
    assert total == 6_301_696
    # Fusion-LoRA freezes the four 1024x1024 projection weights and trains
    # rank-8 A [8, 1024] and B [1024, 8] factors on each: 2,172,928 trainable.
    frozen = sum(getattr(caf, n).weight.numel() for n in ("q_proj", "k_proj", "v_proj", "out_proj"))
    lora = 4 * (8 * 1024 + 1024 * 8)
    assert total - frozen + lora == 2_172_928
    assert {"q_proj.weight", "norm1.weight", "ffn.0.weight", "ffn.2.bias"} <= set(caf.state_dict())


def test_caf_ffn_width_is_configurable() -> None:
    caf = CrossAttentionFusion(embed_dim=8, num_heads=2, ffn_hidden_dim=32, act_layer=nn.GELU)
    assert caf.ffn[0].out_features == 32 and isinstance(caf.ffn[1], nn.GELU)


def test_caf_backward_reaches_every_parameter_and_both_inputs() -> None:
    caf = CrossAttentionFusion(embed_dim=8, num_heads=2, share_norm=False)
    visual = torch.randn(2, 8, 3, 3, requires_grad=True)
    spectral = torch.randn(2, 8, 2, 2, requires_grad=True)
    caf(visual, spectral).square().sum().backward()
    for name, p in caf.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert visual.grad is not None and spectral.grad is not None
    assert spectral.grad.abs().sum() > 0


def test_caf_rejects_bad_inputs() -> None:
    caf = CrossAttentionFusion(embed_dim=8, num_heads=2)
    with pytest.raises(ShapeError, match="built for 8 channels but the spectral map has 6"):
        caf(torch.randn(1, 8, 2, 2), torch.randn(1, 6, 2, 2))
    with pytest.raises(ShapeError, match="batch sizes 2 \\(visual\\) and 1"):
        caf(torch.randn(2, 8, 2, 2), torch.randn(1, 8, 2, 2))
    with pytest.raises(ShapeError, match=r"visual map as a \(N, C, H, W\)"):
        caf(torch.randn(4, 8), torch.randn(1, 8, 2, 2))
    strict = CrossAttentionFusion(embed_dim=8, num_heads=2, require_equal_tokens=True)
    with pytest.raises(ShapeError, match="2x2 visual map and a 3x3 spectral map"):
        strict(torch.randn(1, 8, 2, 2), torch.randn(1, 8, 3, 3))
    with pytest.raises(ValueError, match="not divisible by num_heads=3"):
        CrossAttentionFusion(embed_dim=8, num_heads=3)
    with pytest.raises(ValueError, match="query_residual"):
        CrossAttentionFusion(embed_dim=8, num_heads=2, query_residual="raw")  # type: ignore[arg-type]


def test_caf_random_lora_projections_have_the_source_trainable_count() -> None:
    caf = CrossAttentionFusion(embed_dim=1024, num_heads=8, projection="random_lora")
    trainable = sum(p.numel() for p in caf.parameters() if p.requires_grad)
    assert trainable == 2_172_928  # SOURCES.md 5.1: CAF trainable with frozen random bases
    for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
        layer = getattr(caf, name)
        assert isinstance(layer, RandomBaseLoRALinear)
        assert not layer.weight.requires_grad and layer.bias.requires_grad
    assert {"q_proj.weight", "q_proj.lora_A", "q_proj.lora_B"} <= set(caf.state_dict())


@pytest.mark.parametrize("spectral_hw", [(4, 4), (2, 3)])
def test_caf_with_random_lora_projections_matches_reference_formula(
    spectral_hw: tuple[int, int],
) -> None:
    caf = CrossAttentionFusion(embed_dim=16, num_heads=4, projection="random_lora", lora_rank=2)
    visual, spectral = torch.randn(2, 16, 4, 4), torch.randn(2, 16, *spectral_hw)
    torch.testing.assert_close(
        caf(visual, spectral), _reference_caf(caf, visual, spectral), atol=1e-5, rtol=1e-4
    )


def test_caf_random_lora_training_leaves_the_base_weights_and_moves_the_factors() -> None:
    caf = CrossAttentionFusion(embed_dim=8, num_heads=2, projection="random_lora", lora_rank=2)
    before = {k: v.clone() for k, v in caf.state_dict().items()}
    opt = torch.optim.SGD([p for p in caf.parameters() if p.requires_grad], lr=0.1)
    caf(torch.randn(2, 8, 3, 3), torch.randn(2, 8, 2, 2)).square().sum().backward()
    opt.step()
    after = caf.state_dict()
    for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
        assert torch.equal(after[f"{name}.weight"], before[f"{name}.weight"]), name
        for part in ("bias", "lora_A", "lora_B"):
            assert not torch.equal(after[f"{name}.{part}"], before[f"{name}.{part}"]), part


def test_caf_rejects_an_unknown_projection() -> None:
    with pytest.raises(ValueError, match="projection must be 'linear' or 'random_lora'"):
        CrossAttentionFusion(embed_dim=8, num_heads=2, projection="lora")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# RandomBaseLoRALinear
# ---------------------------------------------------------------------------


def test_random_base_lora_linear_matches_its_formula() -> None:
    layer = RandomBaseLoRALinear(6, 5, rank=3, alpha=1.5)
    x = torch.randn(2, 4, 6)
    w, b, a, bb = layer.weight, layer.bias, layer.lora_A, layer.lora_B
    assert b is not None
    expected = x @ w.T + b + (1.5 / 3) * ((x @ a.T) @ bb.T)
    torch.testing.assert_close(layer(x), expected)


def test_random_base_lora_linear_init_follows_the_source() -> None:
    torch.manual_seed(1)
    layer = RandomBaseLoRALinear(1024, 512, rank=8)
    # Base weight: nn.Linear's Kaiming-uniform bound 1/sqrt(in), frozen.
    bound = 1 / math.sqrt(1024)
    assert float(layer.weight.abs().max()) <= bound
    assert float(layer.weight.abs().max()) > 0.99 * bound
    assert not layer.weight.requires_grad
    # A and B from N(0, 0.01^2): 8192 / 4096 samples, so the std is within a few percent.
    for factor in (layer.lora_A, layer.lora_B):
        assert factor.requires_grad
        assert abs(float(factor.std()) - 0.01) < 0.0005
        assert abs(float(factor.mean())) < 0.0005
    assert layer.lora_A.shape == (8, 1024) and layer.lora_B.shape == (512, 8)
    assert layer.scaling == 1.0 / 8
    assert RandomBaseLoRALinear(4, 4, use_bias=False).bias is None


def test_random_base_lora_linear_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="rank=0"):
        RandomBaseLoRALinear(4, 4, rank=0)
    with pytest.raises(ValueError, match="dropout=1.0"):
        RandomBaseLoRALinear(4, 4, dropout=1.0)


# ---------------------------------------------------------------------------
# GatedLateFusion
# ---------------------------------------------------------------------------


def test_glf_parameter_count_matches_source() -> None:
    glf = GatedLateFusion(channels=1024)
    assert sum(p.numel() for p in glf.parameters()) == 2_098_176
    assert set(glf.state_dict()) == {"gate_conv.0.weight", "gate_conv.0.bias"}


def test_glf_matches_gate_formula() -> None:
    glf = GatedLateFusion(channels=4)
    fused, visual = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    conv = glf.gate_conv[0]
    assert isinstance(conv, nn.Conv2d) and conv.bias is not None
    logits = torch.einsum("oi,nihw->nohw", conv.weight[:, :, 0, 0], torch.cat([fused, visual], 1))
    g = torch.sigmoid(logits + conv.bias[None, :, None, None])
    torch.testing.assert_close(glf(fused, visual), g * fused + (1 - g) * visual)
    torch.testing.assert_close(glf.gate(fused, visual), g)


@pytest.mark.parametrize(("bias", "expect_fused"), [(1e4, True), (-1e4, False)])
def test_glf_gate_limits(bias: float, expect_fused: bool) -> None:
    glf = GatedLateFusion(channels=4)
    conv = glf.gate_conv[0]
    assert isinstance(conv, nn.Conv2d) and conv.bias is not None
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.fill_(bias)
    fused, visual = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    out = glf(fused, visual)
    torch.testing.assert_close(out, fused if expect_fused else visual, atol=0, rtol=0)


def test_glf_gate_is_per_pixel_and_per_channel() -> None:
    glf = GatedLateFusion(channels=3)
    g = glf.gate(torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4))
    assert g.shape == (1, 3, 4, 4)
    assert g.flatten(2).std(dim=2).min() > 0  # varies over pixels
    assert g.std(dim=1).min() > 0  # varies over channels


def test_glf_backward_reaches_every_parameter() -> None:
    glf = GatedLateFusion(channels=4)
    glf(torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)).square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in glf.parameters())


def test_glf_rejects_bad_inputs() -> None:
    glf = GatedLateFusion(channels=4)
    with pytest.raises(ShapeError, match=r"shape \(1, 4, 3, 3\) and a visual map of shape"):
        glf(torch.randn(1, 4, 3, 3), torch.randn(1, 4, 2, 2))
    with pytest.raises(ShapeError, match="built for 4 channels but the visual map has 5"):
        glf(torch.randn(1, 4, 3, 3), torch.randn(1, 5, 3, 3))
    with pytest.raises(ValueError, match="channels must be positive"):
        GatedLateFusion(channels=0)


def test_caf_then_glf_pipeline() -> None:
    caf, glf = CrossAttentionFusion(embed_dim=16, num_heads=2), GatedLateFusion(channels=16)
    visual, spectral = torch.randn(2, 16, 6, 6), torch.randn(2, 16, 3, 3)
    assert glf(caf(visual, spectral), visual).shape == (2, 16, 6, 6)


def test_import_stays_light() -> None:
    code = (
        "import sys, geofm.fusion; "
        "bad = [m for m in ('geofm.sensors', 'geofm.hub', 'geofm.backbones', 'timm', "
        "'rasterio', 'huggingface_hub') if m in sys.modules]; sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
