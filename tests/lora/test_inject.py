"""apply_lora / merge_lora / unmerge_lora / mark_only_lora_trainable on timm models."""

from __future__ import annotations

import ast
import copy
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import geofm.lora
from geofm.errors import GeofmError, UnknownNameError, UnsupportedModuleError
from geofm.lora import (
    LoRAConfig,
    LoRAConv2d,
    LoRALinear,
    apply_lora,
    get_lora_config,
    mark_only_lora_trainable,
    merge_lora,
    unmerge_lora,
)

Factory = Callable[..., Any]
Randomize = Callable[[nn.Module], None]


def _lora_names(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, (LoRALinear, LoRAConv2d))]


def test_state_dict_keeps_original_keys_plus_lora_keys(tiny_vit: Factory) -> None:
    base = tiny_vit()
    model = apply_lora(copy.deepcopy(base), LoRAConfig(rank=2, qkv_parts=("q", "v")))
    lora_keys = {f"blocks.{i}.attn.qkv.lora_{ab}.weight" for i in range(2) for ab in "AB"}
    assert set(model.state_dict()) == set(base.state_dict()) | lora_keys
    for key, value in base.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(x), base(x))


def test_qkv_parts_without_module_surgery(tiny_vit: Factory, randomize: Randomize) -> None:
    base = tiny_vit()
    model = apply_lora(copy.deepcopy(base), LoRAConfig(rank=2, alpha=4.0, qkv_parts=("q", "v")))
    attn = model.blocks[0].attn
    assert isinstance(attn.qkv, LoRALinear)
    assert attn.qkv.chunks == (True, False, True)
    assert [n for n, _ in attn.named_children()] == [
        n for n, _ in base.blocks[0].attn.named_children()
    ]
    randomize(model)
    # Independent reference: add s * B_i A_i into the q and v rows of a plain copy.
    ref = copy.deepcopy(base)
    dim = 192
    with torch.no_grad():
        for i in range(2):
            layer = model.blocks[i].attn.qkv
            a, b = layer.lora_A.weight, layer.lora_B.weight
            w = ref.blocks[i].attn.qkv.weight
            w[:dim] += 2.0 * b[:dim] @ a[:2]
            w[2 * dim :] += 2.0 * b[dim:] @ a[2:]
        x = torch.randn(2, 3, 32, 32)
        torch.testing.assert_close(model(x), ref(x), rtol=1e-4, atol=1e-5)


def test_globs_types_and_exclude_select_modules(tiny_vit: Factory) -> None:
    model = apply_lora(tiny_vit(), LoRAConfig(targets=("blocks.*.attn.proj",)))
    assert _lora_names(model) == ["blocks.0.attn.proj", "blocks.1.attn.proj"]
    model = apply_lora(tiny_vit(), LoRAConfig(targets=("*.proj",), exclude=("blocks.1.*",)))
    assert _lora_names(model) == ["patch_embed.proj", "blocks.0.attn.proj"]
    assert isinstance(model.patch_embed.proj, LoRAConv2d)
    model = apply_lora(tiny_vit(), LoRAConfig(targets=("blocks.1.*",), target_types=(nn.Linear,)))
    assert _lora_names(model) == [
        f"blocks.1.{n}" for n in ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")
    ]


def test_pattern_matching_nothing_lists_close_names(tiny_vit: Factory) -> None:
    with pytest.raises(
        UnknownNameError, match=r"'qvk' matches no module\. Close module names: qkv"
    ):
        apply_lora(tiny_vit(), LoRAConfig(targets=("qvk",)))
    with pytest.raises(UnknownNameError, match="none left after exclude"):
        apply_lora(tiny_vit(), LoRAConfig(targets=("qkv",), exclude=("blocks.*",)))


SUPPORTED = r"Supported types: torch.nn.Linear, torch.nn.Conv2d"


def test_unsupported_type_lists_supported_types(tiny_vit: Factory) -> None:
    with pytest.raises(
        UnsupportedModuleError, match=rf"'blocks.0.norm1' has type LayerNorm.*{SUPPORTED}"
    ):
        apply_lora(tiny_vit(), LoRAConfig(targets=("blocks.0.norm1",)))
    # target_types is checked against the same table, before anything is selected.
    with pytest.raises(
        UnsupportedModuleError, match=rf"target_types entry has type Embedding.*{SUPPORTED}"
    ):
        apply_lora(tiny_vit(), LoRAConfig(targets=("qkv",), target_types=(nn.Linear, nn.Embedding)))


def test_table_rejects_subclasses_that_change_forward() -> None:
    class ScaledLinear(nn.Linear):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 2 * super().forward(x)

    class TaggedLinear(nn.Linear):
        pass

    model = nn.Sequential(ScaledLinear(2, 2), TaggedLinear(2, 2))
    with pytest.raises(UnsupportedModuleError, match=rf"'0' has type ScaledLinear.*{SUPPORTED}"):
        apply_lora(model, LoRAConfig(targets=("0",)))
    apply_lora(model, LoRAConfig(targets=("1",)))
    assert isinstance(model[1], LoRALinear) and isinstance(model[0], ScaledLinear)


def test_qkv_parts_need_a_fused_layer(tiny_vit: Factory) -> None:
    with pytest.raises(UnsupportedModuleError, match="no adapted Linear matches qkv_names"):
        apply_lora(tiny_vit(), LoRAConfig(targets=("fc1",), qkv_parts=("q",)))


def test_apply_twice_is_an_error(tiny_vit: Factory) -> None:
    model = apply_lora(tiny_vit(), LoRAConfig())
    with pytest.raises(GeofmError, match="already has a LoRA adapter named .default."):
        apply_lora(model, LoRAConfig(targets=("fc1",)))


def test_shared_module_is_rejected() -> None:
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    with pytest.raises(UnsupportedModuleError, match="shared under several names"):
        apply_lora(model, LoRAConfig(targets=("0",)))


def test_only_lora_and_also_get_gradients(tiny_vit: Factory, randomize: Randomize) -> None:
    model = apply_lora(tiny_vit(), LoRAConfig(targets=("qkv", "patch_embed.proj")))
    mark_only_lora_trainable(model, also=("head",))
    randomize(model)
    model.train()
    model(torch.randn(2, 3, 32, 32)).square().sum().backward()
    for name, param in model.named_parameters():
        trainable = ".lora_" in name or name.startswith("head.")
        assert param.requires_grad == trainable, name
        if trainable:
            assert param.grad is not None and torch.isfinite(param.grad).all(), name
        else:
            assert param.grad is None, name


def test_mark_only_lora_trainable_errors(tiny_vit: Factory) -> None:
    with pytest.raises(GeofmError, match="has no LoRA layers"):
        mark_only_lora_trainable(tiny_vit())
    model = apply_lora(tiny_vit(), LoRAConfig())
    with pytest.raises(UnknownNameError, match="also pattern 'haed' matches no module"):
        mark_only_lora_trainable(model, also=("haed",))


@pytest.mark.parametrize("parts", [("q", "k", "v"), ("k",)])
def test_merge_unmerge_model(
    tiny_vit: Factory, randomize: Randomize, parts: tuple[str, ...]
) -> None:
    config = LoRAConfig(rank=2, targets=("qkv", "fc2", "patch_embed.proj"), qkv_parts=parts)  # type: ignore[arg-type]
    model = apply_lora(tiny_vit(), config)
    randomize(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        unmerged = model(x)
        merged = merge_lora(model)(x)
    torch.testing.assert_close(merged, unmerged, rtol=1e-4, atol=1e-5)
    with pytest.raises(GeofmError, match="already"):
        merge_lora(model)
    unmerge_lora(model)
    with pytest.raises(GeofmError, match="not \\(fully\\) merged"):
        unmerge_lora(model)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=1e-6)


def test_swin_reading_qkv_weight_directly_sees_the_adapter(randomize: Randomize) -> None:
    # timm's SwinV2 calls F.linear(x, self.qkv.weight, qkv_bias) instead of self.qkv(x).
    import timm

    base: Any = timm.create_model(
        "swinv2_tiny_window8_256", pretrained=False, img_size=32, window_size=2, embed_dim=16,
        depths=(1, 1), num_heads=(1, 2), num_classes=0,
    ).eval()  # fmt: skip
    with torch.no_grad():  # timm zero-inits SwinV2's post-norms: blocks start as identities
        base.layers[1].blocks[0].norm1.weight.fill_(1.0)
    model = apply_lora(
        copy.deepcopy(base), LoRAConfig(rank=2, targets=("layers.1.blocks.0.attn.qkv",))
    )
    randomize(model)
    qkv = model.layers[1].blocks[0].attn.qkv
    ref = copy.deepcopy(base)
    with torch.no_grad():
        ref.layers[1].blocks[0].attn.qkv.weight += qkv.delta_weight()
        x = torch.randn(2, 3, 32, 32)
        out = model(x)
        torch.testing.assert_close(out, ref(x), rtol=1e-4, atol=1e-5)
        assert not torch.allclose(out, base(x))


def test_compile_fullgraph(tiny_vit: Factory, randomize: Randomize) -> None:
    model = apply_lora(
        tiny_vit(), LoRAConfig(rank=2, qkv_parts=("q", "v"), targets=("qkv", "proj"))
    )
    mark_only_lora_trainable(model, also=())
    randomize(model)
    x = torch.randn(2, 3, 32, 32)
    expected = model(x)
    expected.sum().backward()
    grad = model.blocks[0].attn.qkv.lora_A.weight.grad.clone()
    model.zero_grad()
    torch._dynamo.reset()
    compiled: Any = torch.compile(model, fullgraph=True, backend="aot_eager")
    out: Any = compiled(x)
    out.sum().backward()
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(model.blocks[0].attn.qkv.lora_A.weight.grad, grad)


def test_import_stays_light() -> None:
    code = (
        "import sys, geofm.lora; "
        "print([m for m in ('peft', 'rasterio', 'huggingface_hub') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_module_level_imports_respect_layering() -> None:
    # DESIGN.md: geofm.lora imports only torch (+ floor-1 geofm.errors and the atomic writer);
    # safetensors lazily in functions.
    allowed = {"__future__", "torch", "geofm.errors", "geofm.lora", "geofm._atomic"}
    allowed |= {"collections", "contextlib", "dataclasses", "difflib", "fnmatch", "glob", "json",
                "logging", "math", "os", "pathlib", "re", "typing"}  # fmt: skip
    for path in Path(geofm.lora.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level only
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert any(name == a or name.startswith(a + ".") for a in allowed), (
                    path.name,
                    name,
                )


def test_get_lora_config_round_trips_every_field(tiny_vit: Factory) -> None:
    config = LoRAConfig(
        rank=3, alpha=5.0, dropout=0.1, targets=("blocks.*", "patch_embed.proj"),
        target_types=(nn.Linear, nn.Conv2d), exclude=("fc2",), qkv_parts=("k",),
        qkv_names=("attn.qkv",), use_rslora=True, also=("head",), a_init="kaiming_rank",
    )  # fmt: skip
    defaults = LoRAConfig()
    changed = [
        f for f in LoRAConfig.__dataclass_fields__ if getattr(config, f) == getattr(defaults, f)
    ]
    assert changed == []  # every field differs from its default, so the round trip covers all
    model = tiny_vit()
    before = set(vars(model))
    apply_lora(model, config)
    assert set(vars(model)) == before  # nothing planted on the user's model
    got = get_lora_config(model)
    assert got == config
    assert got is not None
    for field in LoRAConfig.__dataclass_fields__:
        assert getattr(got, field) == getattr(config, field)
    assert model.blocks[0].attn.qkv.chunks == (False, True, False)
    assert model.blocks[0].attn.qkv.target_name == "blocks.0.attn.qkv"
    assert get_lora_config(copy.deepcopy(model)) == config


def test_get_lora_config_none_and_owner(tiny_vit: Factory) -> None:
    assert get_lora_config(tiny_vit()) is None
    config = LoRAConfig(rank=2, targets=("qkv",))
    backbone = apply_lora(tiny_vit(), config)
    outer = nn.Sequential(backbone, nn.Linear(3, 3))
    # The config belongs to the module apply_lora adapted, not to its parents.
    assert get_lora_config(backbone) == config and get_lora_config(outer) is None
    outer = nn.Sequential(tiny_vit(), nn.Linear(3, 3))
    outer_config = LoRAConfig(rank=2, targets=("0.blocks.*.attn.qkv",))
    apply_lora(outer, outer_config)
    vit: Any = outer[0]
    assert get_lora_config(outer) == outer_config and get_lora_config(vit) is None
    assert get_lora_config(vit.blocks[0].attn.qkv) is None  # the layer itself is a child


def test_get_lora_config_errors_when_layers_disagree(tiny_vit: Factory) -> None:
    with pytest.raises(GeofmError, match=r"'0' of Sequential was built directly \(LoRALinear"):
        get_lora_config(nn.Sequential(LoRALinear(nn.Linear(2, 2))))
    first, second = tiny_vit(), tiny_vit()
    apply_lora(first, LoRAConfig(rank=2, targets=("qkv",)))
    apply_lora(second, LoRAConfig(rank=4, targets=("fc1",)))
    two_calls = (
        r"2 apply_lora call\(s\) and hold 2 distinct config\(s\) \(submodule '0': "
        r"0.blocks.0.attn.qkv, 0.blocks.1.attn.qkv; submodule '1': 1.blocks.0.mlp.fc1"
    )
    with pytest.raises(GeofmError, match=two_calls):
        get_lora_config(nn.Sequential(first, second))
    moved = apply_lora(tiny_vit(), LoRAConfig(rank=2, targets=("blocks.0.attn.qkv",)))
    moved.blocks[0].mlp.fc1 = moved.blocks[0].attn.qkv
    moved.blocks[0].attn.qkv = nn.Linear(192, 576)
    with pytest.raises(GeofmError, match="adapted as 'blocks.0.attn.qkv' and has since been moved"):
        get_lora_config(moved)
