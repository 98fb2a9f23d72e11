"""LoRAConfig validation and serialisation; EcoVision and Fusion-LoRA presets."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import timm
import torch
from torch import nn

from geofm.errors import UnsupportedModuleError
from geofm.lora import (
    LoRAConfig,
    LoRAConv2d,
    LoRALinear,
    apply_lora,
    ecovision_config,
    fusion_lora_config,
    init_lora_pair,
    mark_only_lora_trainable,
)


def _trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_scaling_and_canonical_parts() -> None:
    assert LoRAConfig().scaling == 2.0
    assert LoRAConfig(rank=16, alpha=8.0, use_rslora=True).scaling == 2.0
    cfg = LoRAConfig(qkv_parts=("v", "q"), targets=["qkv", "proj"])  # type: ignore[arg-type]
    assert cfg.qkv_parts == ("q", "v")
    assert cfg.targets == ("qkv", "proj")
    assert not cfg.adapts_all_qkv_parts


def test_json_round_trip_with_types() -> None:
    cfg = LoRAConfig(
        rank=4, targets=("layers.2.*",), target_types=(nn.Linear, nn.Conv2d), also=("head",)
    )
    assert LoRAConfig.from_json(cfg.to_json()) == cfg


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rank": 0}, "rank must be an integer >= 1, got 0"),
        ({"alpha": -1.0}, "alpha must be > 0, got -1.0"),
        ({"dropout": 1.5}, r"dropout must be in \[0, 1\), got 1.5"),
        ({"targets": "qkv"}, "got the string 'qkv'. Write targets=\\('qkv',\\)"),
        ({"targets": ()}, "targets is empty"),
        ({"qkv_parts": ("q", "q")}, "distinct"),
        ({"qkv_parts": ("q", "x")}, r"unknown parts \['x'\]"),
    ],
)
def test_rejects_invalid_values(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LoRAConfig(**kwargs)  # type: ignore[arg-type]


def test_target_types_must_be_module_classes_and_storable() -> None:
    with pytest.raises(ValueError, match=r"nn.Module subclasses, got \['Linear'\]"):
        LoRAConfig(target_types=("Linear",))  # type: ignore[arg-type]

    class MyLinear(nn.Linear):
        pass

    with pytest.raises(UnsupportedModuleError, match="only torch.nn layer types are stored"):
        LoRAConfig(target_types=(MyLinear,)).to_json()
    text = LoRAConfig(target_types=(nn.Linear,)).to_json().replace('"Linear"', '"os"')
    with pytest.raises(UnsupportedModuleError, match="'os', which is not a torch.nn module"):
        LoRAConfig.from_json(text)


def test_from_json_rejects_unknown_fields() -> None:
    with pytest.raises(ValueError, match="incompatible geofm version"):
        LoRAConfig.from_json('{"rank": 8}')


def test_configs_stored_before_a_init_existed_still_load() -> None:
    data = json.loads(LoRAConfig(rank=4, a_init="kaiming_rank").to_json())
    assert data["a_init"] == "kaiming_rank"
    assert LoRAConfig.from_json(json.dumps(data)).a_init == "kaiming_rank"
    del data["a_init"]  # a file written by geofm before the field
    assert LoRAConfig.from_json(json.dumps(data)) == LoRAConfig(rank=4)


def test_unknown_a_init_is_refused_by_config_and_layer() -> None:
    with pytest.raises(ValueError, match="a_init must be one of"):
        LoRAConfig(a_init="gaussian")  # type: ignore[arg-type]
    layer = LoRALinear(nn.Linear(8, 8), rank=2)
    with pytest.raises(ValueError, match="a_init must be one of"):
        layer.add_adapter("other", rank=2, a_init="pissa")  # type: ignore[arg-type]
    assert list(layer.adapters) == ["default"]  # nothing half-added


def _uniform_bound(w: torch.Tensor) -> tuple[float, float]:
    """Largest |value| and the std of a sample that should be U(-b, b)."""
    return float(w.detach().abs().max()), float(w.detach().std())


@pytest.mark.parametrize("rank", [2, 8])
def test_a_init_bounds_follow_the_paper_and_the_ecovision_notebooks(rank: int) -> None:
    torch.manual_seed(0)
    fan_in = 512
    for a_init, fan in (("kaiming", fan_in), ("kaiming_rank", rank)):
        layer = LoRALinear(nn.Linear(fan_in, 256), rank=1)
        layer.add_adapter("x", rank=rank, a_init=a_init)  # type: ignore[arg-type]
        a = layer.adapter_modules("x")[0].weight
        # kaiming_uniform_(a=sqrt(5)): gain sqrt(2/6), bound = sqrt(3) * gain / sqrt(fan) = 1/sqrt(fan)
        bound = 1 / math.sqrt(fan)
        biggest, std = _uniform_bound(a)
        assert biggest <= bound + 1e-7
        assert biggest > 0.95 * bound
        assert std == pytest.approx(bound / math.sqrt(3), rel=0.1)
    conv = nn.Conv2d(16, 8, 3)
    lconv = LoRAConv2d(conv, rank=rank)
    init_lora_pair(lconv.lora_A, lconv.lora_B, "kaiming_rank")
    biggest, _ = _uniform_bound(lconv.lora_A.weight)
    assert biggest <= 1 / math.sqrt(rank * 9) + 1e-7  # fan-in rank * k * k
    assert torch.count_nonzero(lconv.lora_B.weight) == 0


def test_apply_lora_draws_a_as_the_config_says_and_starts_at_the_base() -> None:
    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(256, 64))
    x = torch.randn(3, 256)
    want = base(x)
    model = apply_lora(base, LoRAConfig(rank=8, targets=("0",), a_init="kaiming_rank"))
    assert model is base
    wide = base[0]
    assert isinstance(wide, LoRALinear)
    assert float(wide.lora_A.weight.detach().abs().max()) > 1 / math.sqrt(256)  # wider than PEFT's
    torch.testing.assert_close(model(x), want)  # B = 0: the adapted layer starts at its base
    with pytest.raises(ValueError, match="a_init must be 'kaiming' or 'kaiming_rank'"):
        init_lora_pair(wide.lora_A, wide.lora_B, "xavier")  # type: ignore[arg-type]


@pytest.mark.parametrize(("city", "lora_params"), [("shanghai", 442_368), ("las_vegas", 1_769_472)])
def test_ecovision_counts_on_vit_b14(city: str, lora_params: int) -> None:
    with torch.device("meta"):  # shapes only: no 86M-parameter init on CPU
        model: Any = timm.create_model("vit_base_patch14_dinov2", pretrained=False, num_classes=1)
        config = ecovision_config(city=city)  # type: ignore[arg-type]
        apply_lora(model, config)
    mark_only_lora_trainable(model, also=config.also)
    assert _trainable(model) == lora_params + 769  # + head Linear(768, 1)
    assert len([m for m in model.modules() if isinstance(m, LoRALinear)]) == 24
    assert config.dropout == 0.05
    assert not isinstance(model.patch_embed.proj, LoRALinear)


def test_ecovision_rejects_unknown_city() -> None:
    with pytest.raises(ValueError, match="Unknown EcoVision city 'paris'"):
        ecovision_config(city="paris")  # type: ignore[arg-type]


def test_fusion_lora_wraps_every_linear_of_stages_2_and_3() -> None:
    model = timm.create_model(
        "swinv2_tiny_window8_256", pretrained=False, img_size=64, window_size=2, embed_dim=8,
        depths=(1, 1, 2, 1), num_heads=(1, 1, 2, 2), num_classes=0,
    )  # fmt: skip
    expected = [
        (n, m.in_features, m.out_features)
        for n, m in model.named_modules()
        if isinstance(m, nn.Linear) and n.split(".")[:2] in (["layers", "2"], ["layers", "3"])
    ]
    config = fusion_lora_config()
    apply_lora(model, config)
    mark_only_lora_trainable(model, also=())
    wrapped = [n for n, m in model.named_modules() if isinstance(m, LoRALinear)]
    assert wrapped == [n for n, _, _ in expected]
    assert any(n.endswith("cpb_mlp.0") for n in wrapped)
    assert any(n.endswith("downsample.reduction") for n in wrapped)
    assert _trainable(model) == sum(8 * (i + o) for _, i, o in expected)
    assert math.isclose(config.scaling, 2.0)


@pytest.mark.parametrize(
    ("stages", "match"),
    [((-1,), "non-negative stage indices"), ((), "non-negative stage indices"),
     ((2, 2), "repeated indices")],
)  # fmt: skip
def test_fusion_lora_rejects_bad_stages(stages: tuple[int, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fusion_lora_config(stages=stages)


def test_fusion_lora_count_on_swinv2_base() -> None:
    with torch.device("meta"):
        model = timm.create_model("swinv2_base_window8_256", pretrained=False, num_classes=0)
        apply_lora(model, fusion_lora_config())
    mark_only_lora_trainable(model, also=())
    assert _trainable(model) == 1_645_632  # documented in docs/lora.md
    assert sum(isinstance(m, LoRALinear) for m in model.modules()) == 122
