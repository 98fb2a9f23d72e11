"""Tests of geofm.lora written against the mutants that the other LoRA tests let survive.

They pin the one-line ``repr`` of the wrappers (rank, alpha, chunks, groups,
named adapters, merged state), adapter switching on plain and merged layers,
the stored-config reader's refusal of non-string layer types and the function
named in the unload errors (see reports/mutation.md, ``lora``).
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from geofm.errors import GeofmError, UnknownNameError, UnsupportedModuleError, WeightsError
from geofm.lora import (
    LoRAConfig,
    apply_lora,
    ecovision_config,
    from_peft,
    fusion_lora_config,
    get_active_adapter,
    get_lora_config,
    load_lora,
    merge_and_unload,
    save_lora,
    set_adapter,
    to_peft,
    unload,
)
from geofm.lora.layers import LoRAConv2d, LoRALayer, LoRALinear, lora_layers, wrapper_for


def test_linear_repr_shows_rank_alpha_and_named_adapters() -> None:
    layer = LoRALinear(nn.Linear(4, 6), rank=2, alpha=3.0)
    assert layer.extra_repr() == "in_features=4, out_features=6, rank=2, alpha=3.0, merged=False"
    layer.add_adapter("other", rank=3)
    assert layer.extra_repr() == (
        "in_features=4, out_features=6, rank=2, alpha=3.0, adapters=['default', 'other'],"
        " active='default', merged=False"
    )
    layer.set_adapter("other")
    assert layer.extra_repr() == (
        "in_features=4, out_features=6, rank=3, alpha=16.0, adapters=['default', 'other'],"
        " active='other', merged=False"
    )
    layer.set_adapter(None)
    assert layer.extra_repr() == (
        "in_features=4, out_features=6, adapters=['default', 'other'], active=None, merged=False"
    )


def test_linear_repr_shows_the_adapted_qkv_chunks_of_the_active_adapter() -> None:
    layer = LoRALinear(nn.Linear(4, 12), rank=2, chunks=(True, False, True))
    assert layer.extra_repr() == (
        "in_features=4, out_features=12, chunks=(True, False, True), rank=2, alpha=16.0,"
        " merged=False"
    )
    layer.set_adapter(None)
    assert layer.extra_repr() == "in_features=4, out_features=12, merged=False"


def test_conv_repr_shows_groups_only_when_grouped_and_the_merged_state() -> None:
    grouped = LoRAConv2d(nn.Conv2d(4, 6, 3, groups=2), rank=2)
    assert grouped.extra_repr() == (
        "4, 6, kernel_size=(3, 3), groups=2, rank=2, alpha=16.0, merged=False"
    )
    plain = LoRAConv2d(nn.Conv2d(4, 6, (3, 1)), rank=2)
    plain.merge()
    assert plain.extra_repr() == "4, 6, kernel_size=(3, 1), rank=2, alpha=16.0, merged=True"


def test_set_adapter_checks_the_name_and_a_merged_layer_keeps_its_adapter() -> None:
    layer = LoRALinear(nn.Linear(4, 6), rank=2)
    layer.add_adapter("other", rank=3)
    with pytest.raises(UnknownNameError):
        layer.set_adapter("nope")
    assert layer.active_adapter == "default"
    layer.merge()
    layer.set_adapter("default")  # the merged adapter itself: allowed
    with pytest.raises(GeofmError, match="^Cannot switch adapters of merged .*Unmerge first.$"):
        layer.set_adapter("other")
    assert layer.active_adapter == "default" and layer.merged


@pytest.mark.parametrize("function", [unload, merge_and_unload])
def test_unload_errors_name_the_function_called(function: object) -> None:
    assert callable(function)
    name = getattr(function, "__name__", "")
    message = (
        f"{name} replaces LoRA layers inside a model, but got a LoRA layer itself. Use"
        " layer.merge() / layer.unmerge() and layer.to_base_layer()."
    )
    with pytest.raises(GeofmError, match=f"^{re.escape(message)}$"):
        function(LoRALinear(nn.Linear(4, 6), rank=2))


def test_stored_config_with_a_non_string_layer_type_is_refused() -> None:
    data = json.loads(LoRAConfig(rank=2, targets=("0",), target_types=(nn.Linear,)).to_json())
    data["target_types"] = [5]
    with pytest.raises(UnsupportedModuleError, match="names the layer type 5, which is not"):
        LoRAConfig.from_json(json.dumps(data))


PEFT_DEFAULTS: dict[str, object] = {
    "alpha_pattern": {},
    "base_model_name_or_path": None,
    "bias": "none",
    "exclude_modules": None,
    "fan_in_fan_out": False,
    "inference_mode": True,
    "init_lora_weights": True,
    "layer_replication": None,
    "layers_pattern": None,
    "layers_to_transform": None,
    "lora_bias": False,
    "peft_type": "LORA",
    "rank_pattern": {},
    "revision": None,
    "target_parameters": None,
    "task_type": None,
    "trainable_token_indices": None,
    "use_dora": False,
    "use_qalora": False,
}


def four_layers() -> nn.Sequential:
    return nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3), nn.Linear(3, 2))


def test_to_peft_writes_the_whole_peft_config_in_peft_layout(tmp_path: Path) -> None:
    model = apply_lora(
        four_layers(),
        LoRAConfig(rank=2, alpha=6.5, dropout=0.1, targets=("0", "2"), also=("3",)),
    )
    out = to_peft(model, tmp_path / "nested" / "adapter")  # parents are created
    expected = {
        **PEFT_DEFAULTS,
        "lora_alpha": 6.5,
        "lora_dropout": 0.1,
        "modules_to_save": ["3"],
        "r": 2,
        "target_modules": ["0", "2"],
        "use_rslora": False,
    }
    text = (out / "adapter_config.json").read_text()
    assert text == json.dumps(expected, indent=2, sort_keys=True) + "\n"
    with safe_open(str(out / "adapter_model.safetensors"), framework="pt") as handle:
        assert handle.metadata() == {"format": "pt"}
        assert sorted(handle.keys()) == [
            "base_model.model.0.lora_A.weight",
            "base_model.model.0.lora_B.weight",
            "base_model.model.2.lora_A.weight",
            "base_model.model.2.lora_B.weight",
            "base_model.model.3.bias",
            "base_model.model.3.weight",
        ]


def test_to_peft_writes_an_integer_alpha_as_an_integer_and_rslora(tmp_path: Path) -> None:
    model = apply_lora(
        four_layers(), LoRAConfig(rank=4, alpha=16.0, targets=("0",), use_rslora=True)
    )
    data = json.loads((to_peft(model, tmp_path) / "adapter_config.json").read_text())
    assert data["lora_alpha"] == 16 and isinstance(data["lora_alpha"], int)
    assert data["use_rslora"] is True and data["modules_to_save"] is None


def test_to_peft_uses_an_anchored_regex_when_a_name_list_would_select_more(tmp_path: Path) -> None:
    model = nn.Sequential(
        nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4), nn.Sequential(nn.Linear(4, 4))
    )
    apply_lora(model, LoRAConfig(rank=2, targets=("0", "2"), exclude=("3.*",)))
    data = json.loads((to_peft(model, tmp_path) / "adapter_config.json").read_text())
    assert data["target_modules"] == "^(?:0|2)$"  # the list ["0", "2"] would also take "3.0"


def test_to_peft_writes_the_named_adapter_with_its_own_config(tmp_path: Path) -> None:
    model = apply_lora(four_layers(), LoRAConfig(rank=2, targets=("0",)))
    apply_lora(model, LoRAConfig(rank=3, alpha=5.0, targets=("2",)), adapter_name="other")
    data = json.loads(
        (to_peft(model, tmp_path, adapter_name="other") / "adapter_config.json").read_text()
    )
    assert data["r"] == 3 and data["lora_alpha"] == 5 and data["target_modules"] == ["2"]


def test_wrapper_defaults_and_options_reach_the_adapter() -> None:
    linear = LoRALinear(nn.Linear(4, 6))
    conv = LoRAConv2d(nn.Conv2d(4, 6, 3))
    for layer in (linear, conv):
        assert (layer.rank, layer.alpha, layer.scaling) == (8, 16.0, 2.0)
    tuned = LoRAConv2d(nn.Conv2d(4, 6, 3), rank=4, alpha=6.0, dropout=0.25, use_rslora=True)
    assert tuned.use_rslora and tuned.scaling == pytest.approx(6.0 / math.sqrt(4))
    assert isinstance(tuned.lora_dropout, nn.Dropout) and tuned.lora_dropout.p == 0.25


@pytest.mark.parametrize(
    "make",
    [
        lambda: LoRALinear(nn.Linear(4, 6), rank=2),
        lambda: LoRALinear(nn.Linear(4, 12), rank=2, chunks=(True, False, True)),
        lambda: LoRAConv2d(nn.Conv2d(4, 6, 3), rank=2),
        lambda: LoRAConv2d(nn.Conv2d(4, 6, 3, groups=2), rank=2),
    ],
    ids=["linear", "qkv", "conv", "grouped"],
)
def test_delta_weight_of_a_named_adapter_uses_that_adapters_matrices(
    make: Callable[[], LoRALayer],
) -> None:
    layer = make()  # a fresh layer per run: the test adds an adapter to it
    if isinstance(layer, LoRALinear):
        layer.add_adapter("other", rank=2, alpha=3.0, chunks=layer.chunks)
    else:
        layer.add_adapter("other", rank=2, alpha=3.0)
    for name in layer.adapters:
        a, b = layer.adapter_modules(name)[:2]
        torch.nn.init.normal_(a.weight)
        torch.nn.init.normal_(b.weight)
    active = layer.delta_weight()
    other = layer.delta_weight(adapter_name="other")
    layer.set_adapter("other")
    torch.testing.assert_close(other, layer.delta_weight())
    assert not torch.allclose(other, active)


def test_delete_adapter_checks_the_name_and_hands_over_the_active_role() -> None:
    layer = LoRALinear(nn.Linear(4, 6), rank=2)
    layer.add_adapter("b", rank=3)
    layer.add_adapter("c", rank=4)
    with pytest.raises(UnknownNameError):
        layer.delete_adapter("nope")
    layer.delete_adapter("c")  # not active: the active adapter stays
    assert layer.active_adapter == "default" and list(layer.adapters) == ["default", "b"]
    layer.delete_adapter("default")  # active: the first remaining one takes over
    assert layer.active_adapter == "b" and layer.rank == 3


def test_unsupported_layer_error_lists_the_supported_types() -> None:
    message = (
        "Module 'norm' has type LayerNorm, which LoRA cannot wrap. Supported types:"
        " torch.nn.Linear, torch.nn.Conv2d (subclasses that keep their forward). Narrow"
        " targets, add exclude patterns or pass target_types=(nn.Linear,)."
    )
    with pytest.raises(UnsupportedModuleError, match=f"^{re.escape(message)}$"):
        wrapper_for(nn.LayerNorm, where="Module 'norm'")


def test_wrapping_the_wrong_layer_type_names_the_wrapper_table() -> None:
    message = (
        "LoRALinear wraps torch.nn.Linear, got Conv2d. Wrappers by layer type:"
        " torch.nn.Linear -> LoRALinear, torch.nn.Conv2d -> LoRAConv2d."
    )
    with pytest.raises(UnsupportedModuleError, match=f"^{re.escape(message)}$"):
        LoRALinear(nn.Conv2d(3, 4, 3))  # type: ignore[arg-type]


def write_peft(folder: Path, tensors: dict[str, torch.Tensor], **config: object) -> Path:
    """A PEFT adapter folder as PEFT's save_pretrained lays it out."""
    folder.mkdir(parents=True, exist_ok=True)
    raw: dict[str, object] = {"peft_type": "LORA", "r": 2, "lora_alpha": 4, **config}
    (folder / "adapter_config.json").write_text(json.dumps(raw))
    save_file(
        {f"base_model.model.{k}": v.contiguous() for k, v in tensors.items()},
        str(folder / "adapter_model.safetensors"),
    )
    return folder


def peft_pair(name: str, fan_in: int, fan_out: int, rank: int = 2) -> dict[str, torch.Tensor]:
    return {
        f"{name}.lora_A.weight": torch.randn(rank, fan_in),
        f"{name}.lora_B.weight": torch.randn(fan_out, rank),
    }


def test_from_peft_honours_exclude_modules_and_the_optional_fields(tmp_path: Path) -> None:
    folder = write_peft(
        tmp_path / "a", peft_pair("0", 4, 5), target_modules=["0", "2"], exclude_modules=["2"]
    )
    model = from_peft(four_layers(), folder)
    assert [n for n, _ in lora_layers(model)] == ["0"]
    config = get_lora_config(model)
    assert config is not None and config.dropout == 0.0 and config.use_rslora is False
    folder = write_peft(
        tmp_path / "b",
        peft_pair("0", 4, 5),
        target_modules=["0"],
        lora_dropout=0.2,
        use_rslora=True,
    )
    config = get_lora_config(from_peft(four_layers(), folder))
    assert config is not None and config.dropout == 0.2 and config.use_rslora is True


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"peft_type": "IA3"}, "has peft_type 'IA3'; expected 'LORA'."),
        ({"target_modules": None}, "has target_modules=None; list the modules explicitly."),
        (
            {"target_modules": "all-linear"},
            "has target_modules='all-linear'; list the modules explicitly.",
        ),
        (
            {"target_modules": ["0"], "use_dora": True},
            "uses PEFT options geofm does not support: {'use_dora': True}. Only plain LoRA"
            " adapters (one rank/alpha, no DoRA, no trained biases) can be loaded.",
        ),
    ],
)
def test_from_peft_refuses_what_it_cannot_load_with_its_reason(
    tmp_path: Path, config: dict[str, object], message: str
) -> None:
    folder = write_peft(tmp_path, peft_pair("0", 4, 5), **config)
    with pytest.raises(GeofmError, match=f"^{re.escape(str(folder / 'adapter_config.json'))} "):
        from_peft(four_layers(), folder)
    with pytest.raises(GeofmError, match=f"{re.escape(message)}$"):
        from_peft(four_layers(), folder)


def test_from_peft_names_a_non_object_config_by_its_type(tmp_path: Path) -> None:
    folder = write_peft(tmp_path, peft_pair("0", 4, 5))
    (folder / "adapter_config.json").write_text("[1, 2]")
    with pytest.raises(GeofmError, match=r"has peft_type 'list'; expected 'LORA'\.$"):
        from_peft(four_layers(), folder)


def test_from_peft_names_the_damaged_weights_file(tmp_path: Path) -> None:
    folder = write_peft(tmp_path, peft_pair("0", 4, 5), target_modules=["0"])
    (folder / "adapter_model.safetensors").write_bytes(b"\x01\x02")
    with pytest.raises(WeightsError, match=r"^PEFT adapter weights .* cannot be read"):
        from_peft(four_layers(), folder)


class Wrapped(nn.Module):
    def __init__(self, *names: str) -> None:
        super().__init__()
        for name in names:
            self.add_module(name, four_layers())


def test_from_peft_remaps_under_the_one_wrapping_module_and_logs_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = write_peft(
        tmp_path, {**peft_pair("0", 4, 5), **peft_pair("2", 5, 3)}, target_modules=["0", "2"]
    )
    with caplog.at_level(logging.INFO, logger="geofm.lora.io"):
        model = from_peft(Wrapped("model"), folder)
    assert [n for n, _ in lora_layers(model)] == ["model.0", "model.2"]
    assert caplog.messages == [
        "from_peft: Wrapped holds the adapter's 2 modules under 'model'; remapped 0 -> model.0, ..."
    ]
    single = write_peft(tmp_path / "one", peft_pair("0", 4, 5), target_modules=["0"])
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="geofm.lora.io"):
        from_peft(Wrapped("model"), single)
    assert caplog.messages == [
        "from_peft: Wrapped holds the adapter's 1 modules under 'model'; remapped 0 -> model.0"
    ]


def test_from_peft_prefix_is_explicit_or_ambiguous(tmp_path: Path) -> None:
    folder = write_peft(tmp_path, peft_pair("0", 4, 5), target_modules=["0"])
    for prefix in ("b", "b."):
        model = from_peft(Wrapped("a", "b"), folder, prefix=prefix)
        assert [n for n, _ in lora_layers(model)] == ["b.0"]
    with pytest.raises(
        WeightsError, match=r"found under several modules of Wrapped: \['a\.', 'b\.'\]"
    ):
        from_peft(Wrapped("a", "b"), folder)
    with pytest.raises(UnknownNameError, match=r"^prefix='c' names no module of Wrapped\.$"):
        from_peft(Wrapped("a", "b"), folder, prefix="c.")


def test_from_peft_shape_errors_name_the_folder(tmp_path: Path) -> None:
    folder = write_peft(tmp_path, peft_pair("0", 4, 5, rank=3), target_modules=["0"], r=2)
    with pytest.raises(WeightsError, match=f"in {re.escape(str(folder))} have another shape"):
        from_peft(four_layers(), folder)


def test_adapter_name_errors_say_which_adapter_is_missing(tmp_path: Path) -> None:
    model = apply_lora(four_layers(), LoRAConfig(rank=2, targets=("0",)))
    apply_lora(model, LoRAConfig(rank=2, targets=("2",)), adapter_name="other")
    message = (
        "Sequential has no adapter 'nope' (adapters: ['default', 'other']). Call"
        " apply_lora(model, config) first, or pass adapter_name."
    )
    with pytest.raises(GeofmError, match=f"^{re.escape(message)}$"):
        save_lora(model, tmp_path / "x.safetensors", adapter_name="nope")
    for _, layer in lora_layers(model):
        layer.set_adapter(None)
    with pytest.raises(GeofmError, match=r"^Sequential has no active adapter \(adapters: "):
        save_lora(model, tmp_path / "x.safetensors")


def test_the_only_adapter_is_used_when_none_is_active(tmp_path: Path) -> None:
    model = apply_lora(four_layers(), LoRAConfig(rank=3, targets=("0",)))
    for _, layer in lora_layers(model):
        layer.set_adapter(None)
    data = json.loads((to_peft(model, tmp_path) / "adapter_config.json").read_text())
    assert data["r"] == 3


def test_load_lora_mismatch_messages_list_three_tensors_then_an_ellipsis(tmp_path: Path) -> None:
    # Two adapted layers: 4 tensors of another shape, one more than listed.
    source = apply_lora(
        nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4)), LoRAConfig(rank=2, targets=("0", "1"))
    )
    path = save_lora(source, tmp_path / "a.safetensors")
    with pytest.raises(WeightsError) as info:
        load_lora(nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3)), path)
    message = str(info.value)
    assert message.startswith(f"4 tensor(s) in {path} have another shape than the model's (")
    assert message.count("file (") == 3 and message.endswith(
        " ...). The adapter was made for another architecture (layer sizes, number of classes"
        " or rank): load it into the model it was trained on."
    )

    # One adapted layer and one saved module with a weight only: exactly 3, all listed.
    def pair() -> nn.Sequential:
        return nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4, bias=False))

    three = apply_lora(pair(), LoRAConfig(rank=2, targets=("0",), also=("1",)))
    path = save_lora(three, tmp_path / "b.safetensors")
    with pytest.raises(WeightsError) as info:
        load_lora(pair().double(), path)
    message = str(info.value)
    assert message.startswith(f"3 tensor(s) in {path} have another dtype than the model's (")
    assert message.endswith(
        "torch.float64). Cast the model to the adapter's dtype (or the other way round) before"
        " loading; nothing is cast silently."
    )


def test_preset_configs_hold_their_documented_values() -> None:
    shanghai = ecovision_config()
    assert shanghai == ecovision_config(city="shanghai")
    assert (shanghai.rank, shanghai.alpha, shanghai.dropout) == (8, 16.0, 0.05)
    vegas = ecovision_config(city="las_vegas")
    assert (vegas.rank, vegas.alpha) == (32, 64.0)
    fusion = fusion_lora_config(stages=(0, 3))
    assert (fusion.rank, fusion.alpha, fusion.dropout) == (8, 16.0, 0.0)
    assert fusion.targets == ("layers.0.*", "layers.3.*")
    for bad in ((-1,), (True,), ()):
        with pytest.raises(ValueError, match="stages"):
            fusion_lora_config(stages=bad)


def test_config_validation_names_the_config_and_normalises_types() -> None:
    with pytest.raises(ValueError, match=r"^LoRAConfig\.rank must be an integer >= 1, got 0\."):
        LoRAConfig(rank=0)
    with pytest.raises(ValueError, match="qkv_parts must be a non-empty tuple"):
        LoRAConfig(qkv_parts=())
    config = LoRAConfig(target_types=[nn.Linear])  # type: ignore[arg-type]
    assert config.target_types == (nn.Linear,)


def test_save_lora_writes_the_named_adapter_into_a_new_folder(tmp_path: Path) -> None:
    model = apply_lora(four_layers(), LoRAConfig(rank=2, targets=("0",)))
    apply_lora(model, LoRAConfig(rank=3, targets=("2",)), adapter_name="other")
    path = save_lora(model, tmp_path / "deep" / "er" / "other.safetensors", adapter_name="other")
    fresh = load_lora(four_layers(), path)
    assert [(n, m.rank) for n, m in lora_layers(fresh)] == [("2", 3)]
    source = dict(lora_layers(model))["2"]
    loaded = dict(lora_layers(fresh))["2"]
    torch.testing.assert_close(
        loaded.delta_weight(), source.delta_weight(adapter_name="other"), rtol=0, atol=0
    )


def test_get_lora_config_follows_the_active_or_only_adapter() -> None:
    model = apply_lora(four_layers(), LoRAConfig(rank=2, targets=("0",)))
    apply_lora(model, LoRAConfig(rank=3, targets=("2",)), adapter_name="other")
    set_adapter(model, "other")
    config = get_lora_config(model)
    assert config is not None and config.rank == 3
    single = apply_lora(four_layers(), LoRAConfig(rank=4, targets=("0",)))
    for _, layer in lora_layers(single):
        layer.set_adapter(None)
    config = get_lora_config(single)
    assert config is not None and config.rank == 4


def test_dilated_conv_adapter_keeps_the_dilation_and_has_no_bias() -> None:
    layer = LoRAConv2d(nn.Conv2d(3, 4, 3, dilation=2, padding=2), rank=2)
    assert layer.lora_A.dilation == (2, 2)
    assert layer.lora_A.bias is None and layer.lora_B.bias is None
    torch.nn.init.normal_(layer.lora_B.weight)
    x = torch.randn(2, 3, 9, 7)
    base = torch.nn.functional.conv2d(x, layer.base_weight, layer.bias, padding=2, dilation=2)
    expected = base + layer.scaling * layer.lora_B(
        torch.nn.functional.conv2d(x, layer.lora_A.weight, padding=2, dilation=2)
    )
    torch.testing.assert_close(layer(x), expected)


def test_unmatched_target_message_lists_eight_modules_and_close_names() -> None:
    message = (
        "targets pattern 'zz' matches no module. Patterns are globs on full dotted names or their"
        " suffixes (modules: 0, 1, 2, 3, 4, 5, 6, 7, ...)."
    )
    with pytest.raises(UnknownNameError, match=f"^{re.escape(message)}$"):
        apply_lora(nn.Sequential(*[nn.Linear(2, 2) for _ in range(9)]), LoRAConfig(targets=("zz",)))
    message = (
        "targets pattern '1x' matches no module. Close module names: 1. Patterns are globs on full"
        " dotted names or their suffixes (modules: 0, 1, 2, 3, 4, 5, 6, 7)."
    )
    with pytest.raises(UnknownNameError, match=f"^{re.escape(message)}$"):
        apply_lora(nn.Sequential(*[nn.Linear(2, 2) for _ in range(8)]), LoRAConfig(targets=("1x",)))


def test_hyperparameter_edges() -> None:
    config = LoRAConfig(rank=1, alpha=0.5)
    assert (config.rank, config.alpha, config.scaling) == (1, 0.5, 0.5)
    with pytest.raises(ValueError, match=r"^LoRAConfig\.rank must be an integer >= 1, got True\."):
        LoRAConfig(rank=True)


def test_config_json_has_sorted_keys() -> None:
    text = LoRAConfig(rank=2).to_json()
    assert list(json.loads(text)) == sorted(json.loads(text))
    assert text == json.dumps(json.loads(text), sort_keys=True)


def test_lora_a_starts_kaiming_uniform_with_a_sqrt5_and_b_at_zero() -> None:
    # kaiming_uniform_(a=sqrt(5)) draws from U(-1/sqrt(fan_in), 1/sqrt(fan_in)), like nn.Linear.
    layer = LoRALinear(nn.Linear(64, 8), rank=64)
    a = layer.lora_A.weight.detach()
    bound = 1 / math.sqrt(64)
    assert a.abs().max() <= bound and a.abs().max() > 0.97 * bound
    assert torch.count_nonzero(layer.lora_B.weight) == 0


@pytest.mark.parametrize(
    ("junk", "listed"),
    [(5, "j0, j1, j2, j3, j4"), (6, "j0, j1, j2, j3, j4 (+1 more)")],
)
def test_key_mismatch_message_previews_five_keys(tmp_path: Path, junk: int, listed: str) -> None:
    tensors = {**peft_pair("0", 4, 5), **{f"j{i}": torch.zeros(1) for i in range(junk)}}
    folder = write_peft(tmp_path, tensors, target_modules=["0"])
    message = (
        f"Adapter keys in {folder} do not match the model: missing 0 [], unexpected {junk}"
        f" [{listed}]. Load into the same architecture the adapter was trained on."
    )
    with pytest.raises(WeightsError, match=f"^{re.escape(message)}$"):
        from_peft(four_layers(), folder)


def test_pattern_lists_and_names_must_hold_non_empty_strings() -> None:
    for bad in ([""], ["ok", 3]):
        with pytest.raises(ValueError, match=r"^LoRAConfig\.targets must hold non-empty strings"):
            LoRAConfig(targets=bad)  # type: ignore[arg-type]
    for name in ("", "a.b", 3):
        with pytest.raises(ValueError, match="^adapter_name must be a non-empty string without"):
            LoRALinear(nn.Linear(2, 2), adapter_name=name)  # type: ignore[arg-type]


def test_stored_config_that_is_not_an_object_is_named_by_its_type() -> None:
    with pytest.raises(ValueError, match=r"^Stored LoRA config has fields list, expected \["):
        LoRAConfig.from_json("[1]")
    with pytest.raises(ValueError, match=r"^Stored LoRA config has fields \['rank'\], expected"):
        LoRAConfig.from_json('{"rank": 2}')


def test_close_names_are_five_suffixes_at_a_similarity_of_one_half() -> None:
    model = nn.ModuleDict({"enc": nn.ModuleDict({f"proj{i}": nn.Linear(2, 2) for i in range(7)})})
    suffixes = sorted({"enc", *(f"enc.proj{i}" for i in range(7)), *(f"proj{i}" for i in range(7))})
    close = difflib.get_close_matches("proj", suffixes, n=5, cutoff=0.5)
    assert len(close) == 5
    with pytest.raises(
        UnknownNameError, match=re.escape(f"Close module names: {', '.join(close)}.")
    ):
        apply_lora(model, LoRAConfig(targets=("proj",)))
    # "abcd" and "abxy" have a similarity of exactly 0.5.
    with pytest.raises(UnknownNameError, match=re.escape("Close module names: abxy.")):
        apply_lora(nn.ModuleDict({"abxy": nn.Linear(2, 2)}), LoRAConfig(targets=("abcd",)))


def test_add_adapter_defaults_and_disagreeing_active_adapters() -> None:
    layer = LoRALinear(nn.Linear(4, 6), rank=2)
    layer.add_adapter("other")
    info = layer.adapters["other"]
    assert (info.rank, info.alpha, info.use_rslora) == (8, 16.0, False)
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    apply_lora(model, LoRAConfig(rank=2, targets=("0", "1")))
    apply_lora(model, LoRAConfig(rank=2, targets=("0", "1")), adapter_name="b")
    second = model[1]
    assert isinstance(second, LoRALayer)
    second.set_adapter("b")
    with pytest.raises(GeofmError, match=r"use different adapters \['b', 'default'\]"):
        get_active_adapter(model)


def test_from_peft_refuses_keys_outside_the_peft_prefix_and_takes_long_prefixes(
    tmp_path: Path,
) -> None:
    folder = write_peft(tmp_path / "a", peft_pair("0", 4, 5), target_modules=["0"])
    model = from_peft(Wrapped("backbone", "other"), folder, prefix="backbone")
    assert [n for n, _ in lora_layers(model)] == ["backbone.0"]
    save_file(
        {"base_model.model.0.lora_A.weight": torch.zeros(2, 4), "stray.weight": torch.zeros(1)},
        str(folder / "adapter_model.safetensors"),
    )
    with pytest.raises(WeightsError, match=r"has keys without the 'base_model\.model\.' prefix"):
        from_peft(four_layers(), folder)
