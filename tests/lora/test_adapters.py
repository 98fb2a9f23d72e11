"""PEFT users' habits: grouped convs, merge_and_unload/unload, safe merge, disabling, named adapters."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from geofm.errors import GeofmError, UnknownNameError
from geofm.lora import (
    LoRAConfig,
    LoRAConv2d,
    LoRALinear,
    apply_lora,
    delete_adapter,
    disable_adapters,
    get_active_adapter,
    get_lora_config,
    list_adapters,
    load_lora,
    lora_state_dict,
    mark_only_lora_trainable,
    merge_and_unload,
    merge_lora,
    save_lora,
    set_adapter,
    unload,
    unmerge_lora,
)
from geofm.lora.layers import LoRALayer

Factory = Callable[..., Any]
Randomize = Callable[[nn.Module], None]
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
# Tolerances of an unmerged-vs-merged comparison per dtype (the merge rounds W0 + dW once).
TOL = {torch.float32: 1e-5, torch.float16: 2e-2, torch.bfloat16: 1e-1}


def _convs() -> nn.Sequential:
    """A grouped conv (4 -> 6, groups 2) and a depthwise conv (6 -> 6, groups 6), non-square kernels."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(4, 6, (3, 2), padding=(1, 0), groups=2),
        nn.ReLU(),
        nn.Conv2d(6, 6, 3, padding=1, groups=6, bias=False),
    )


def _grouped_reference(layer: LoRAConv2d, x: torch.Tensor) -> torch.Tensor:
    """Written out per group: conv(x_g; W_g) + s * B_g (A_g * x_g), each with groups=1."""
    g = layer.groups
    xs = x.chunk(g, dim=1)
    ws = layer.base_weight.chunk(g, dim=0)
    bs = layer.bias.chunk(g) if layer.bias is not None else [None] * g
    a_s = layer.lora_A.weight.chunk(g, dim=0)  # (r/g, in/g, kh, kw) each
    b_s = layer.lora_B.weight.chunk(g, dim=0)  # (out/g, r/g, 1, 1) each
    outs = []
    for xg, wg, bg, ag, bbg in zip(xs, ws, bs, a_s, b_s, strict=True):
        base = F.conv2d(xg, wg, bg, layer.stride, layer.padding)
        outs.append(
            base
            + layer.scaling * F.conv2d(F.conv2d(xg, ag, None, layer.stride, layer.padding), bbg)
        )
    return torch.cat(outs, dim=1)


def test_grouped_and_depthwise_conv_follow_the_per_group_formula(randomize: Randomize) -> None:
    model = apply_lora(_convs(), LoRAConfig(rank=6, alpha=3.0, targets=("0", "2")))
    randomize(model)
    grouped, depthwise = model[0], model[2]
    assert isinstance(grouped, LoRAConv2d) and isinstance(depthwise, LoRAConv2d)
    assert grouped.lora_A.weight.shape == (6, 2, 3, 2)  # in / groups input channels
    assert grouped.lora_B.weight.shape == (6, 3, 1, 1)  # rank / groups per output
    assert depthwise.lora_A.weight.shape == (6, 1, 3, 3)
    assert depthwise.lora_B.weight.shape == (6, 1, 1, 1)
    x = torch.randn(2, 4, 7, 5)
    with torch.no_grad():
        hidden = grouped(x)
        torch.testing.assert_close(hidden, _grouped_reference(grouped, x))
        torch.testing.assert_close(depthwise(hidden), _grouped_reference(depthwise, hidden))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_grouped_conv_merge_unmerge_and_save_load(
    tmp_path: Path, randomize: Randomize, dtype: torch.dtype
) -> None:
    base = _convs().to(dtype)
    model = apply_lora(copy.deepcopy(base), LoRAConfig(rank=6, alpha=3.0, targets=("0", "2")))
    randomize(model)
    x = torch.randn(2, 4, 7, 5, dtype=dtype)
    path = save_lora(model, tmp_path / "grouped.safetensors")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        unmerged = model(x)
        assert not torch.allclose(unmerged, base(x), atol=TOL[dtype])  # the adapter acts
        merged = merge_lora(model)(x)
    assert model[0].base_weight.dtype == dtype
    tol = TOL[dtype]
    torch.testing.assert_close(merged, unmerged, rtol=tol, atol=tol)
    unmerge_lora(model)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=tol)
    fresh = load_lora(copy.deepcopy(base), path)
    assert fresh[0].lora_A.weight.dtype == dtype
    with torch.no_grad():
        assert torch.equal(fresh(x), unmerged)


def test_grouped_conv_rank_must_split_over_groups() -> None:
    with pytest.raises(ValueError, match=r"layer '2' \(adapter 'default'\) .*groups=6"):
        apply_lora(_convs(), LoRAConfig(rank=4, targets=("0", "2")))


def test_merge_and_unload_leaves_plain_layers_with_merged_weights(
    tiny_vit: Factory, randomize: Randomize
) -> None:
    base = tiny_vit()
    originals = {n: m for n, m in base.named_modules() if n.endswith(("qkv", "patch_embed.proj"))}
    model = apply_lora(base, LoRAConfig(rank=2, alpha=4.0, targets=("qkv", "patch_embed.proj")))
    randomize(model)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        adapted = model(x)
    plain_keys = {k for k in model.state_dict() if ".lora_" not in k}
    out = merge_and_unload(model)
    assert out is model
    assert not any(isinstance(m, LoRALayer) for m in model.modules())
    assert not any("lora" in n for n, _ in model.named_modules())
    for name, module in originals.items():
        assert model.get_submodule(name) is module  # the very objects that were wrapped
    assert type(model.blocks[0].attn.qkv) is nn.Linear
    assert set(model.state_dict()) == plain_keys
    with torch.no_grad():
        torch.testing.assert_close(model(x), adapted, rtol=1e-4, atol=1e-5)


def test_unload_drops_adapters_without_merging(tiny_vit: Factory, randomize: Randomize) -> None:
    base = tiny_vit()
    reference = copy.deepcopy(base)
    model = apply_lora(base, LoRAConfig(rank=2, targets=("qkv", "fc1")))
    randomize(model)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(model(x), reference(x))
        merge_lora(model)  # unload undoes a merge first
        unload(model)
        assert not any(isinstance(m, LoRALayer) for m in model.modules())
        torch.testing.assert_close(model(x), reference(x), rtol=1e-5, atol=1e-5)
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=1e-6)
    with pytest.raises(GeofmError, match="has no LoRA layers"):
        unload(model)
    with pytest.raises(GeofmError, match="got a LoRA layer itself"):
        merge_and_unload(LoRALinear(nn.Linear(3, 5), rank=2))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_safe_merge_refuses_non_finite_adapter_before_writing(bad: float) -> None:
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))
    apply_lora(model, LoRAConfig(rank=2, targets=("0", "2")))
    with torch.no_grad():
        model[0].lora_B.weight.normal_()
        model[2].lora_B.weight.normal_()
        model[2].lora_B.weight[1, 0] = bad  # the second layer is broken, the first is fine
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"adapter 'default' of layer '2' holds NaN/inf .*lora_B"):
        merge_lora(model)
    with pytest.raises(ValueError, match="holds NaN/inf"):
        merge_and_unload(model)
    for key, value in model.state_dict().items():  # not even the healthy first layer moved
        torch.testing.assert_close(value, before[key], equal_nan=True, rtol=0, atol=0)
    assert not any(m.merged for m in model.modules() if isinstance(m, LoRALayer))
    assert isinstance(model[0], LoRALinear)  # merge_and_unload changed nothing either


def test_safe_merge_refuses_float16_overflow() -> None:
    layer = LoRALinear(nn.Linear(4, 6).half(), rank=2, alpha=2.0)
    with torch.no_grad():
        layer.lora_A.weight.fill_(100.0)
        layer.lora_B.weight.fill_(400.0)  # 2 * 100 * 400 = 80,000 > float16 max 65,504
    w0 = layer.base_weight.detach().clone()
    with pytest.raises(ValueError, match=r"overflows torch.float16"):
        layer.merge()
    assert torch.equal(layer.base_weight, w0) and not layer.merged


def test_disable_adapters_runs_the_base_model_and_restores(
    tiny_vit: Factory, randomize: Randomize
) -> None:
    base = tiny_vit()
    model = apply_lora(copy.deepcopy(base), LoRAConfig(rank=2, targets=("qkv", "patch_embed.proj")))
    randomize(model)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        adapted = model(x)
        with disable_adapters(model):
            torch.testing.assert_close(model(x), base(x), rtol=0, atol=0)
            torch.testing.assert_close(
                model.blocks[0].attn.qkv.weight, base.blocks[0].attn.qkv.weight
            )
        assert torch.equal(model(x), adapted)
        with pytest.raises(RuntimeError, match="boom"), disable_adapters(model):
            raise RuntimeError("boom")
        assert torch.equal(model(x), adapted)  # restored after the exception too
    merge_lora(model)
    with pytest.raises(GeofmError, match="merged model"), disable_adapters(model):
        pass


def _delta(model: nn.Module, x: torch.Tensor, base: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(x) - base(x)


def test_named_adapters_load_switch_and_delete(tmp_path: Path, randomize: Randomize) -> None:
    base = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    x = torch.randn(4, 6)
    # Two adapters trained separately, each a reference of its own.
    first = apply_lora(copy.deepcopy(base), LoRAConfig(rank=2, alpha=4.0, targets=("0",)))
    second = apply_lora(copy.deepcopy(base), LoRAConfig(rank=3, alpha=3.0, targets=("0", "2")))
    randomize(first)
    randomize(second)
    path_a = save_lora(first, tmp_path / "a.safetensors")
    path_b = save_lora(second, tmp_path / "b.safetensors")

    model = load_lora(copy.deepcopy(base), path_a, adapter_name="city_a")
    load_lora(model, path_b, adapter_name="city_b")
    assert list_adapters(model) == ["city_a", "city_b"]
    assert get_active_adapter(model) == "city_a"  # like PEFT, loading does not switch
    assert get_lora_config(model, adapter_name="city_b") == get_lora_config(second)
    with torch.no_grad():
        torch.testing.assert_close(model(x), first(x))
        set_adapter(model, "city_b")
        torch.testing.assert_close(model(x), second(x))
        assert model[2].rank == 3 and model[0].rank == 3
    # Keys: a file holds the adapter under the "default" keys, whatever its name.
    assert set(lora_state_dict(model, adapter_name="city_a")) == set(lora_state_dict(first))
    assert "0.lora_adapters.city_b.lora_A.weight" in model.state_dict()
    mark_only_lora_trainable(model, also=())
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {
        f"{i}.lora_adapters.city_b.lora_{ab}.weight" for i in (0, 2) for ab in "AB"
    }

    set_adapter(model, "city_a")
    with torch.no_grad():
        assert torch.equal(model[2](torch.relu(model[0](x))), base[2](torch.relu(first[0](x))))
    delete_adapter(model, "city_a")
    assert list_adapters(model) == ["city_b"]
    assert get_active_adapter(model) == "city_b"
    with torch.no_grad():
        torch.testing.assert_close(model(x), second(x))
    delete_adapter(model, "city_b")
    assert type(model[0]) is nn.Linear and type(model[2]) is nn.Linear
    with torch.no_grad():
        torch.testing.assert_close(model(x), base(x))


def test_named_adapter_errors(tmp_path: Path) -> None:
    model = apply_lora(nn.Sequential(nn.Linear(4, 6)), LoRAConfig(rank=2, targets=("0",)))
    with pytest.raises(UnknownNameError, match=r"no adapter 'b'; it has \['default'\]"):
        set_adapter(model, "b")
    with pytest.raises(UnknownNameError, match="no adapter 'b'"):
        delete_adapter(model, "b")
    with pytest.raises(ValueError, match="adapter_name must be a non-empty string without '.'"):
        apply_lora(model, LoRAConfig(rank=2, targets=("0",)), adapter_name="a.b")
    with pytest.raises(GeofmError, match="also modules exist once in the model"):
        apply_lora(model, LoRAConfig(rank=2, targets=("0",), also=("0",)), adapter_name="b")
    apply_lora(model, LoRAConfig(rank=2, targets=("0",)), adapter_name="b")
    merge_lora(model)
    with pytest.raises(GeofmError, match="merged"):
        set_adapter(model, "b")
    with pytest.raises(GeofmError, match="is merged"):
        delete_adapter(model, "default")


def test_mark_only_lora_trainable_honours_config_also_and_bare_backbones(tiny_vit: Factory) -> None:
    # A "neck" listed in LoRAConfig.also is saved with the adapter, so it must train.
    model = nn.Sequential()
    model.add_module("backbone", tiny_vit(num_classes=0))
    model.add_module("neck", nn.Linear(192, 16))
    apply_lora(model, LoRAConfig(rank=2, targets=("qkv",), also=("neck",)))
    for also in (None, ()):
        mark_only_lora_trainable(model, also=also)
        trainable = {n.split(".")[0] + ("/lora" if ".lora_" in n else "")
                     for n, p in model.named_parameters() if p.requires_grad}  # fmt: skip
        assert trainable == {"backbone/lora", "neck"}, also
    # Configs applied to submodules: each also is found inside its own module.
    twins = nn.Sequential(tiny_vit(num_classes=0), tiny_vit(num_classes=0))
    apply_lora(twins[0], LoRAConfig(rank=2, targets=("qkv",), also=("norm",)))
    apply_lora(twins[1], LoRAConfig(rank=4, targets=("fc1",)))
    mark_only_lora_trainable(twins, also=())
    assert {n for n, p in twins.named_parameters() if p.requires_grad and "lora" not in n} == {
        "0.norm.weight",
        "0.norm.bias",
    }
    # A bare backbone: timm's num_classes=0 head is an Identity without parameters; no raise.
    bare = apply_lora(tiny_vit(num_classes=0), LoRAConfig(rank=2, targets=("qkv",)))
    mark_only_lora_trainable(bare)
    assert all(".lora_" in n for n, p in bare.named_parameters() if p.requires_grad)
    # The default still trains a `head` where there is one.
    headed = apply_lora(tiny_vit(), LoRAConfig(rank=2, targets=("qkv",)))
    mark_only_lora_trainable(headed)
    assert {n for n, p in headed.named_parameters() if p.requires_grad and "lora" not in n} == {
        "head.weight",
        "head.bias",
    }
