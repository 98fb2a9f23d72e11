"""LoRALinear / LoRAConv2d: formula parity, init identity, merge exactness, errors."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from geofm.errors import GeofmError, ShapeError, UnsupportedModuleError
from geofm.lora import LoRAConfig, LoRAConv2d, LoRALinear
from geofm.lora.layers import LORA_WRAPPERS, wrapper_for


def _randomize(layer: LoRALinear | LoRAConv2d) -> None:
    with torch.no_grad():
        layer.lora_A.weight.normal_(std=0.2)
        layer.lora_B.weight.normal_(std=0.2)


def test_linear_equals_base_at_init_and_shares_parameters() -> None:
    base = nn.Linear(8, 6)
    layer = LoRALinear(base, rank=2, alpha=4.0)
    x = torch.randn(2, 5, 8)
    assert torch.equal(layer(x), base(x))
    assert layer.base_weight is base.weight
    assert layer.bias is base.bias
    assert list(layer.state_dict()) == ["weight", "bias", "lora_A.weight", "lora_B.weight"]
    assert torch.count_nonzero(layer.lora_B.weight) == 0
    assert torch.count_nonzero(layer.lora_A.weight) == layer.lora_A.weight.numel()


@pytest.mark.parametrize("use_rslora", [False, True])
def test_linear_matches_lora_formula(use_rslora: bool) -> None:
    base = nn.Linear(8, 6)
    layer = LoRALinear(base, rank=3, alpha=6.0, use_rslora=use_rslora)
    _randomize(layer)
    x = torch.randn(4, 8)
    a, b = layer.lora_A.weight, layer.lora_B.weight
    scale = 6.0 / (3**0.5 if use_rslora else 3)
    # Hu et al. eq. (3): h = W0 x + (alpha / r) B A x, written independently.
    expected = x @ base.weight.T + base.bias + scale * (x @ a.T) @ b.T
    torch.testing.assert_close(layer(x), expected)
    torch.testing.assert_close(layer.weight, base.weight + scale * b @ a)


def test_linear_chunks_adapt_only_selected_parts() -> None:
    base = nn.Linear(4, 9)  # fused (q, k, v), 3 features each
    layer = LoRALinear(base, rank=2, alpha=2.0, chunks=(True, False, True))
    _randomize(layer)
    assert layer.lora_A.weight.shape == (4, 4)
    assert layer.lora_B.weight.shape == (6, 2)
    x = torch.randn(5, 4)
    a_q, a_v = layer.lora_A.weight[:2], layer.lora_A.weight[2:]
    b_q, b_v = layer.lora_B.weight[:3], layer.lora_B.weight[3:]
    ref = base(x)
    expected = torch.cat(
        [ref[:, :3] + (x @ a_q.T) @ b_q.T, ref[:, 3:6], ref[:, 6:] + (x @ a_v.T) @ b_v.T], dim=1
    )
    torch.testing.assert_close(layer(x), expected)
    delta = layer.delta_weight()
    assert torch.count_nonzero(delta[3:6]) == 0
    torch.testing.assert_close(delta[6:], b_v @ a_v)


def _layers() -> list[LoRALinear | LoRAConv2d]:
    return [
        LoRALinear(nn.Linear(6, 9), rank=2, alpha=3.0),
        LoRALinear(nn.Linear(6, 9), rank=2, alpha=3.0, chunks=(False, True, True)),
        LoRAConv2d(nn.Conv2d(3, 5, (3, 1), stride=(2, 1), padding=(1, 0)), rank=2, alpha=3.0),
        LoRAConv2d(nn.Conv2d(4, 6, 3, padding=1, groups=2), rank=4, alpha=3.0),
    ]


@pytest.mark.parametrize("index", [0, 1, 2, 3], ids=["linear", "qkv-parts", "conv", "grouped"])
def test_merged_equals_unmerged_and_unmerge_restores(index: int) -> None:
    layer = _layers()[index]
    _randomize(layer)
    if isinstance(layer, LoRALinear):
        x = torch.randn(3, 6)
    else:
        x = torch.randn(2, layer.in_channels, 8, 5)
    original = layer.base_weight.detach().clone()
    with torch.no_grad():
        unmerged = layer(x)
        layer.merge()
        merged = layer(x)
    assert layer.merged
    torch.testing.assert_close(merged, unmerged, rtol=1e-5, atol=1e-5)
    assert torch.equal(layer.weight, layer.base_weight)  # merged: weight is W0 + dW already
    layer.unmerge()
    torch.testing.assert_close(layer.base_weight, original, rtol=0, atol=1e-6)


def test_merge_runs_in_float32_and_casts_back() -> None:
    layer = LoRALinear(nn.Linear(16, 12).to(torch.bfloat16), rank=4, alpha=8.0)
    _randomize(layer)
    w0 = layer.base_weight.detach().clone()
    delta32 = (layer.lora_B.weight.float() @ layer.lora_A.weight.float()) * 2.0
    layer.merge()
    assert layer.base_weight.dtype == torch.bfloat16
    assert torch.equal(layer.base_weight, (w0.float() + delta32).to(torch.bfloat16))


def test_conv_matches_two_convolutions() -> None:
    # Non-square kernel, stride and input: swapping H and W anywhere changes the result.
    base = nn.Conv2d(3, 5, (3, 2), stride=(2, 1), padding=(1, 0))
    layer = LoRAConv2d(base, rank=2, alpha=4.0)
    x = torch.randn(2, 3, 9, 7)
    assert torch.equal(layer(x), base(x))
    _randomize(layer)
    a, b = layer.lora_A.weight, layer.lora_B.weight
    assert a.shape == (2, 3, 3, 2)
    expected = base(x) + 2.0 * F.conv2d(F.conv2d(x, a, stride=(2, 1), padding=(1, 0)), b)
    torch.testing.assert_close(layer(x), expected)
    assert list(layer.state_dict()) == ["weight", "bias", "lora_A.weight", "lora_B.weight"]


def test_gradients_reach_only_adapters_when_base_frozen() -> None:
    base = nn.Linear(6, 9).requires_grad_(False)
    layer = LoRALinear(base, rank=2, chunks=(True, False, True), dropout=0.1).train()
    _randomize(layer)
    layer(torch.randn(3, 6)).square().sum().backward()
    assert base.weight.grad is None
    assert base.bias is not None and base.bias.grad is None
    for param in (layer.lora_A.weight, layer.lora_B.weight):
        assert param.grad is not None
        assert torch.isfinite(param.grad).all()
        assert param.grad.abs().sum() > 0


def test_weight_property_is_differentiable() -> None:
    # Models that call F.linear(x, layer.weight) themselves must still train the adapter.
    layer = LoRALinear(nn.Linear(6, 9).requires_grad_(False), rank=2)
    _randomize(layer)
    x = torch.randn(3, 6)
    torch.testing.assert_close(F.linear(x, layer.weight, layer.bias), layer(x))
    out: Any = F.linear(x, layer.weight)
    out.sum().backward()
    assert layer.lora_A.weight.grad is not None


def test_dropout_touches_only_the_adapter_path() -> None:
    base = nn.Linear(6, 5)
    layer = LoRALinear(base, rank=2, alpha=4.0, dropout=0.5).train()
    _randomize(layer)  # a zero B would hide where the dropout acts
    x = torch.randn(4, 6)
    torch.manual_seed(0)
    out = layer(x)
    torch.manual_seed(0)
    dropped = F.dropout(x, p=0.5, training=True)  # the same mask
    a, b = layer.lora_A.weight, layer.lora_B.weight
    torch.testing.assert_close(out, base(x) + 2.0 * (dropped @ a.T) @ b.T)
    assert not torch.allclose(out, layer.eval()(x))  # the mask did change the adapter path


def test_linear_rejects_wrong_type() -> None:
    with pytest.raises(
        UnsupportedModuleError,
        match=r"LoRALinear wraps torch.nn.Linear, got Conv2d.*torch.nn.Conv2d -> LoRAConv2d",
    ):
        LoRALinear(nn.Conv2d(3, 3, 1))  # type: ignore[arg-type]


def test_conv_rejects_wrong_type_padding_mode_and_rank_not_split_by_groups() -> None:
    with pytest.raises(
        UnsupportedModuleError,
        match=r"LoRAConv2d wraps torch.nn.Conv2d, got Linear.*torch.nn.Linear -> LoRALinear",
    ):
        LoRAConv2d(nn.Linear(3, 3))  # type: ignore[arg-type]
    with pytest.raises(UnsupportedModuleError, match="padding_mode='reflect'"):
        LoRAConv2d(nn.Conv2d(4, 6, 3, padding_mode="reflect"))
    with pytest.raises(ValueError, match="groups=4: .* multiple of 4, got rank=6. Use rank=8"):
        LoRAConv2d(nn.Conv2d(4, 8, 3, groups=4), rank=6)


def test_chunks_must_split_evenly_and_select_something() -> None:
    with pytest.raises(ShapeError, match="Cannot split 10 output features of .* into 3"):
        LoRALinear(nn.Linear(4, 10), chunks=(True, False, True))
    with pytest.raises(ValueError, match="adapts nothing"):
        LoRALinear(nn.Linear(4, 9), chunks=(False, False, False))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"rank": 0}, "rank must be an integer >= 1, got 0"), ({"alpha": 0.0}, "alpha must be > 0"),
     ({"dropout": 1.0}, r"dropout must be in \[0, 1\), got 1.0")],
)  # fmt: skip
def test_rejects_bad_hyperparameters(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LoRALinear(nn.Linear(4, 4), **kwargs)  # type: ignore[arg-type]


def test_merge_state_errors() -> None:
    layer = LoRALinear(nn.Linear(4, 4))
    with pytest.raises(GeofmError, match="not merged"):
        layer.unmerge()
    layer.merge()
    with pytest.raises(GeofmError, match="already merged"):
        layer.merge()


def test_type_table_decides_support_and_builds_from_config() -> None:
    assert {nn.Linear: LoRALinear, nn.Conv2d: LoRAConv2d} == LORA_WRAPPERS
    assert wrapper_for(nn.Conv2d, where="x") is LoRAConv2d
    with pytest.raises(
        UnsupportedModuleError, match="Supported types: torch.nn.Linear, torch.nn.Conv2d"
    ):
        wrapper_for(nn.Embedding, where="Module 'emb'")
    cfg = LoRAConfig(rank=4, alpha=2.0, dropout=0.1, use_rslora=True, qkv_parts=("q", "v"))
    fused = LoRALinear.from_config(nn.Linear(4, 6), cfg, name="attn.qkv")
    plain = LoRALinear.from_config(nn.Linear(4, 6), cfg, name="attn.proj")
    assert (fused.chunks, plain.chunks) == ((True, False, True), None)
    assert fused.scaling == cfg.scaling == 2.0 / math.sqrt(4)
    assert isinstance(fused.lora_dropout, nn.Dropout) and fused.lora_dropout.p == 0.1
    assert (fused.config, fused.target_name) == (cfg, "attn.qkv")
    conv = LoRAConv2d.from_config(nn.Conv2d(2, 3, 1), cfg, name="stem")
    assert conv.rank == 4 and conv.config is cfg
    assert LoRALinear(nn.Linear(2, 2)).config is None
