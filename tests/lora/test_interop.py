"""Parity with PEFT and PEFT adapter-folder round trips, both ways."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file
from torch import nn

from geofm.errors import GeofmError, WeightsError
from geofm.lora import (
    LoRAConfig,
    LoRAConv2d,
    LoRALinear,
    apply_lora,
    from_peft,
    get_lora_config,
    to_peft,
)

Factory = Callable[..., Any]
Randomize = Callable[[nn.Module], None]
X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def _copy_into_peft(ours: nn.Module, peft_model: Any) -> None:
    with torch.no_grad():
        for name, module in ours.named_modules():
            if isinstance(module, (LoRALinear, LoRAConv2d)):
                twin = peft_model.base_model.model.get_submodule(name)
                twin.lora_A["default"].weight.copy_(module.lora_A.weight)
                twin.lora_B["default"].weight.copy_(module.lora_B.weight)


@pytest.mark.parametrize("use_rslora", [False, True])
def test_same_weights_same_outputs_as_peft(
    tiny_vit: Factory, randomize: Randomize, use_rslora: bool
) -> None:
    base = tiny_vit()
    targets = ["qkv", "fc1", "patch_embed.proj"]
    ours = apply_lora(copy.deepcopy(base), LoRAConfig(rank=3, alpha=5.0, targets=tuple(targets),
                                                      use_rslora=use_rslora))  # fmt: skip
    peft_model = get_peft_model(
        copy.deepcopy(base),
        LoraConfig(r=3, lora_alpha=5, target_modules=targets, use_rslora=use_rslora),
    ).eval()
    randomize(ours)
    _copy_into_peft(ours, peft_model)
    with torch.no_grad():  # same math; only the float summation order differs
        torch.testing.assert_close(ours(X), peft_model(X), rtol=1e-5, atol=1e-6)


def test_to_peft_loads_in_peft(tmp_path: Path, tiny_vit: Factory, randomize: Randomize) -> None:
    base = tiny_vit()
    config = LoRAConfig(rank=2, alpha=4.0, dropout=0.05, targets=("qkv", "patch_embed.proj"),
                        also=("head",))  # fmt: skip
    ours = apply_lora(copy.deepcopy(base), config).eval()
    randomize(ours)
    with torch.no_grad():
        ours.head.bias.add_(3.0)
    folder = to_peft(ours, tmp_path / "adapter")
    raw = json.loads((folder / "adapter_config.json").read_text())
    assert (raw["r"], raw["lora_alpha"], raw["lora_dropout"]) == (2, 4, 0.05)
    assert raw["modules_to_save"] == ["head"]
    keys = set(load_file(str(folder / "adapter_model.safetensors")))
    assert "base_model.model.blocks.1.attn.qkv.lora_B.weight" in keys
    assert "base_model.model.patch_embed.proj.lora_A.weight" in keys
    assert "base_model.model.head.bias" in keys
    peft_model = PeftModel.from_pretrained(copy.deepcopy(base), str(folder)).eval()
    with torch.no_grad():
        torch.testing.assert_close(peft_model(X), ours(X), rtol=1e-5, atol=1e-6)


def test_from_peft_loads_peft_adapter(tmp_path: Path, tiny_vit: Factory) -> None:
    base = tiny_vit()
    peft_model = get_peft_model(
        copy.deepcopy(base),
        LoraConfig(r=2, lora_alpha=8, target_modules=r".*\.attn\.(qkv|proj)",
                   modules_to_save=["head"]),
    )  # fmt: skip
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name or "modules_to_save" in name:
                param.normal_(std=0.2)
    peft_model.save_pretrained(str(tmp_path))
    ours = from_peft(copy.deepcopy(base), tmp_path)
    names = [n for n, m in ours.named_modules() if isinstance(m, LoRALinear)]
    assert names == [f"blocks.{i}.attn.{p}" for i in range(2) for p in ("qkv", "proj")]
    with torch.no_grad():
        torch.testing.assert_close(ours(X), peft_model.eval()(X), rtol=1e-5, atol=1e-6)


def test_to_peft_disambiguates_suffix_names(tmp_path: Path, randomize: Randomize) -> None:
    # PEFT's list rule would also match "1.0" for a target "0"; to_peft then writes a regex.
    base = nn.Sequential(nn.Linear(4, 6), nn.Sequential(nn.Linear(6, 3)))
    ours = apply_lora(copy.deepcopy(base), LoRAConfig(rank=2, targets=("0",), exclude=("1.*",)))
    randomize(ours)
    folder = to_peft(ours, tmp_path)
    spec = json.loads((folder / "adapter_config.json").read_text())["target_modules"]
    assert isinstance(spec, str)
    peft_model = PeftModel.from_pretrained(copy.deepcopy(base), str(folder))
    x = torch.randn(3, 4)
    with torch.no_grad():
        torch.testing.assert_close(peft_model(x), ours(x), rtol=1e-5, atol=1e-6)
    back: Any = from_peft(copy.deepcopy(base), folder)
    assert isinstance(back[0], LoRALinear)
    assert isinstance(back[1][0], nn.Linear)


def test_to_peft_rejects_partial_qkv(tmp_path: Path, tiny_vit: Factory) -> None:
    ours = apply_lora(tiny_vit(), LoRAConfig(qkv_parts=("q", "v")))
    with pytest.raises(GeofmError, match=r"PEFT cannot express qkv_parts=\('q', 'v'\).*#691"):
        to_peft(ours, tmp_path)


def test_from_peft_rejects_unsupported_options(tmp_path: Path, tiny_vit: Factory) -> None:
    peft_model = get_peft_model(tiny_vit(), LoraConfig(r=2, target_modules=["qkv"], use_dora=True))
    peft_model.save_pretrained(str(tmp_path))
    with pytest.raises(GeofmError, match="does not support: {'use_dora': True}"):
        from_peft(tiny_vit(), tmp_path)


def test_from_peft_needs_both_files(tmp_path: Path, tiny_vit: Factory) -> None:
    with pytest.raises(WeightsError, match="adapter_config.json not found"):
        from_peft(tiny_vit(), tmp_path)
    folder = to_peft(apply_lora(tiny_vit(), LoRAConfig(rank=2)), tmp_path / "a")
    (folder / "adapter_model.safetensors").unlink()
    with pytest.raises(WeightsError, match="adapter_model.safetensors not found"):
        from_peft(tiny_vit(), folder)


def test_from_peft_applies_use_rslora(tmp_path: Path, tiny_vit: Factory) -> None:
    # r=4, alpha=8: rsLoRA scales by 8 / 2 = 4, plain LoRA by 8 / 4 = 2; ignoring the field fails.
    base = tiny_vit()
    peft_model = get_peft_model(
        copy.deepcopy(base),
        LoraConfig(r=4, lora_alpha=8, target_modules=["qkv", "fc2"], use_rslora=True),
    )
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.normal_(std=0.2)
    peft_model.save_pretrained(str(tmp_path))
    ours: Any = from_peft(copy.deepcopy(base), tmp_path)
    assert ours.blocks[0].attn.qkv.scaling == 4.0
    assert get_lora_config(ours).use_rslora  # type: ignore[union-attr]
    with torch.no_grad():
        expected = peft_model.eval()(X)
        assert not torch.allclose(expected, base(X), atol=1e-3)
        torch.testing.assert_close(ours(X), expected, rtol=1e-5, atol=1e-6)


def _grouped_model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(4, 6, (3, 2), padding=(1, 0), groups=2), nn.ReLU(),
        nn.Conv2d(6, 6, 3, padding=1, groups=6),
    )  # fmt: skip


def test_grouped_conv_adapter_round_trips_through_peft(
    tmp_path: Path, randomize: Randomize
) -> None:
    base = _grouped_model()
    ours = apply_lora(copy.deepcopy(base), LoRAConfig(rank=6, alpha=3.0, targets=("0", "2")))
    randomize(ours)
    folder = to_peft(ours, tmp_path)
    dense = load_file(str(folder / "adapter_model.safetensors"))["base_model.model.0.lora_A.weight"]
    assert dense.shape == (6, 4, 3, 2)  # PEFT's layout: every input channel
    torch.testing.assert_close(dense[:3, :2], ours[0].lora_A.weight[:3])  # group 0 block
    assert torch.count_nonzero(dense[:3, 2:]) == 0 and torch.count_nonzero(dense[3:, :2]) == 0
    with pytest.warns(UserWarning, match="groups > 1"):
        peft_model = PeftModel.from_pretrained(copy.deepcopy(base), str(folder)).eval()
    x = torch.randn(2, 4, 7, 5)
    with torch.no_grad():
        expected = ours(x)
        assert not torch.allclose(expected, base(x), atol=1e-3)
        torch.testing.assert_close(peft_model(x), expected, rtol=1e-5, atol=1e-6)
        back = from_peft(copy.deepcopy(base), folder)
        torch.testing.assert_close(back(x), expected, rtol=0, atol=0)


def test_from_peft_refuses_cross_group_adapter_and_leaves_model(tmp_path: Path) -> None:
    base = _grouped_model()
    with pytest.warns(UserWarning, match="groups > 1"):
        peft_model = get_peft_model(copy.deepcopy(base), LoraConfig(r=6, target_modules=["2"]))
    peft_model.save_pretrained(str(tmp_path))  # PEFT's A is Kaiming-random across groups
    target = copy.deepcopy(base)
    modules = list(target.modules())
    with pytest.raises(
        GeofmError, match=r"Layer '2' is a convolution with groups=6.*across groups"
    ):
        from_peft(target, tmp_path)
    assert list(target.modules()) == modules  # transactional: the very same plain modules


def test_to_peft_refuses_dilated_conv(tmp_path: Path) -> None:
    model = apply_lora(nn.Sequential(nn.Conv2d(3, 4, 3, dilation=2)), LoRAConfig(targets=("0",)))
    with pytest.raises(GeofmError, match=r"'0' is a dilated convolution \(dilation=\(2, 2\)\)"):
        to_peft(model, tmp_path)


def test_from_peft_remaps_timm_adapter_into_geofm_backbone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import geofm

    backbone: Any = geofm.create_backbone("vit_small_patch16", depth=2, img_size=32).eval()
    timm_model = copy.deepcopy(backbone.model)  # the plain timm model a PEFT user adapted
    with torch.no_grad():
        plain_out = timm_model(X)
    peft_model = get_peft_model(
        timm_model, LoraConfig(r=2, lora_alpha=8, target_modules=r".*\.attn\.(qkv|proj)")
    )
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.normal_(std=0.2)
    peft_model.save_pretrained(str(tmp_path))
    with caplog.at_level(logging.INFO, logger="geofm.lora.io"):
        from_peft(backbone, tmp_path)
    assert "under 'model'; remapped blocks.0.attn.proj -> model.blocks.0.attn.proj" in caplog.text
    names = [n for n, m in backbone.named_modules() if isinstance(m, LoRALinear)]
    assert names == [f"model.blocks.{i}.attn.{p}" for i in range(2) for p in ("qkv", "proj")]
    with torch.no_grad():
        expected = peft_model.eval()(X)
        assert not torch.allclose(expected, plain_out, atol=1e-3)
        torch.testing.assert_close(backbone.model(X), expected, rtol=1e-5, atol=1e-6)


def test_from_peft_prefix_ambiguous_or_explicit(
    tmp_path: Path, tiny_vit: Factory, randomize: Randomize
) -> None:
    plain = tiny_vit()
    adapted = apply_lora(copy.deepcopy(plain), LoRAConfig(rank=2, targets=("qkv",)))
    randomize(adapted)
    folder = to_peft(adapted, tmp_path)
    twins: Any = nn.ModuleDict({"a": copy.deepcopy(plain), "b": copy.deepcopy(plain)})
    with pytest.raises(
        WeightsError, match=r"under several modules .*\['a\.', 'b\.'\]. Pass prefix="
    ):
        from_peft(twins, folder)
    from_peft(twins, folder, prefix="b")
    assert not any(isinstance(m, LoRALinear) for m in twins["a"].modules())
    with torch.no_grad():
        torch.testing.assert_close(twins["b"](X), adapted(X))
