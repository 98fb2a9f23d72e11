"""More tests of geofm.lora written against mutants the other LoRA tests let survive.

They cover re-applying apply_lora to a model that already holds adapters (the
state new wrappers join, the rollback on failure), an ``adapter_name`` passed
explicitly that is not the active one, several apply_lora calls seen from one
module, the ``also`` modules of adapters applied to submodules, and the wording
of the errors (what was expected and what came; see reports/mutation.md,
``lora``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from geofm.errors import (
    GeofmError,
    ShapeError,
    UnknownNameError,
    UnsupportedModuleError,
    WeightsError,
)
from geofm.lora import (
    LoRAConfig,
    apply_lora,
    delete_adapter,
    disable_adapters,
    ecovision_config,
    from_peft,
    get_active_adapter,
    get_lora_config,
    load_lora,
    lora_state_dict,
    mark_only_lora_trainable,
    merge_and_unload,
    merge_lora,
    save_lora,
    set_adapter,
    to_peft,
    unload,
    unmerge_lora,
)
from geofm.lora._match import match_modules
from geofm.lora.layers import LoRAConv2d, LoRALinear, init_lora_pair, lora_layers


def _exact(message: str) -> str:
    """A ``pytest.raises`` pattern matching ``message`` whole."""
    return "^" + re.escape(message) + "$"


def _linears(n: int, size: int = 4) -> nn.Sequential:
    return nn.Sequential(*(nn.Linear(size, size) for _ in range(n)))


def _randomize(model: nn.Module) -> None:
    with torch.no_grad():
        for name, param in model.named_parameters():
            if ".lora_" in name:
                param.normal_(std=0.5)


def _trainable(model: nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


# -- re-applying apply_lora ------------------------------------------------------------------


def test_failed_second_adapter_is_removed_from_the_layers_that_got_it() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.Conv2d(4, 4, 1, groups=2))
    apply_lora(model, LoRAConfig(rank=2, targets=("0", "1")))
    # Layer 0 gets adapter "b" first; layer 1 (groups=2) cannot take rank 3.
    with pytest.raises(ValueError, match=r"^layer '1' \(adapter 'b'\) is a convolution"):
        apply_lora(model, LoRAConfig(rank=3, targets=("0", "1")), adapter_name="b")
    assert [list(m.adapters) for _, m in lora_layers(model)] == [["default"], ["default"]]
    assert [m.active_adapter for _, m in lora_layers(model)] == ["default", "default"]


def test_new_layer_of_a_second_adapter_is_inactive_and_enabled() -> None:
    model = apply_lora(_linears(2), LoRAConfig(rank=2, targets=("0",)))
    apply_lora(model, LoRAConfig(rank=2, targets=("1",)), adapter_name="b")
    assert model[1].active_adapter is None
    assert model[1].adapters_disabled is False
    assert get_active_adapter(model) == "default"


def test_adapter_added_to_wrapped_layers_without_adapters_is_active_on_new_layers() -> None:
    model = apply_lora(_linears(2), LoRAConfig(rank=2, targets=("0",)))
    model[0].delete_adapter("default")  # layer 0 stays wrapped, with no adapter
    apply_lora(model, LoRAConfig(rank=2, targets=("0", "1")), adapter_name="b")
    assert [m.active_adapter for _, m in lora_layers(model)] == ["b", "b"]
    assert get_active_adapter(model) == "b"


def test_layer_wrapped_inside_disable_adapters_is_disabled_there_and_enabled_after() -> None:
    model = apply_lora(_linears(2), LoRAConfig(rank=2, targets=("0",)))
    x = torch.randn(3, 4)
    with disable_adapters(model):
        apply_lora(model, LoRAConfig(rank=2, targets=("1",)), adapter_name="b")
        assert model[1].adapters_disabled is True
    assert [m.adapters_disabled for _, m in lora_layers(model)] == [False, False]
    set_adapter(model, "b")
    _randomize(model)
    with torch.no_grad():
        base = model[1].to_base_layer()(model[0].to_base_layer()(x))
        assert not torch.allclose(model(x), base)
        with disable_adapters(model):
            torch.testing.assert_close(model(x), base)


def test_layer_wrapped_inside_nested_disable_adapters_follows_each_exit() -> None:
    model = apply_lora(_linears(2), LoRAConfig(rank=2, targets=("0",)))
    with disable_adapters(model):
        with disable_adapters(model):
            apply_lora(model, LoRAConfig(rank=2, targets=("1",)), adapter_name="b")
        assert [m.adapters_disabled for _, m in lora_layers(model)] == [True, True]
    assert [m.adapters_disabled for _, m in lora_layers(model)] == [False, False]


def test_reapplying_with_target_types_grows_the_wrapped_layers() -> None:
    model = apply_lora(_linears(2), LoRAConfig(rank=2, targets=("0",)))
    config = LoRAConfig(rank=3, targets=("0",), target_types=(nn.Linear,))
    apply_lora(model, config, adapter_name="b")
    assert list(model[0].adapters) == ["default", "b"]


def test_reapplying_with_a_wildcard_does_not_wrap_the_adapters_own_layers() -> None:
    model = apply_lora(_linears(2), LoRAConfig(rank=2, targets=("0",)))
    config = LoRAConfig(rank=2, targets=("*",), target_types=(nn.Linear,))
    apply_lora(model, config, adapter_name="b")
    assert [n for n, _ in lora_layers(model)] == ["0", "1"]
    assert list(model[0].adapters) == ["default", "b"]


def test_shared_module_is_refused_with_all_its_names() -> None:
    shared = nn.Linear(4, 4)
    with pytest.raises(UnsupportedModuleError) as err:
        apply_lora(nn.Sequential(shared, shared), LoRAConfig(rank=2, targets=("0",)))
    assert re.match(
        _exact(
            "Module '0' is shared under several names ['0', '1']; LoRA cannot wrap a shared"
            " module. Exclude it."
        ),
        str(err.value),
    )


def test_target_types_entry_lora_cannot_wrap_is_named_in_the_error() -> None:
    config = LoRAConfig(rank=2, targets=("0",), target_types=(nn.LayerNorm,))
    with pytest.raises(UnsupportedModuleError, match=r"^LoRAConfig\.target_types entry has type"):
        apply_lora(_linears(1), config)


# -- get_lora_config over several apply_lora calls ----------------------------------------------


def test_layers_from_a_parent_call_and_a_child_call_raise_naming_each_call() -> None:
    config = LoRAConfig(rank=2, targets=("0",))
    inner = nn.Sequential(nn.Linear(4, 4))
    apply_lora(nn.ModuleDict({"encX": inner}), LoRAConfig(rank=2, targets=("encX.0",)))
    child = apply_lora(nn.Sequential(nn.Linear(4, 4)), config)
    inner.append(child)  # inner: "0" adapted from a parent, "1.0" from a call on its child
    assert get_lora_config(inner.get_submodule("1")) == config
    with pytest.raises(GeofmError) as err:
        get_lora_config(inner)
    assert str(err.value) == (
        "The LoRA layers of Sequential come from 2 apply_lora call(s) and hold 2 distinct"
        " config(s) (a parent, which names this module 'encX': 0; submodule '1': 1.0); one"
        " LoRAConfig cannot describe them. Adapt the model with a single apply_lora call."
    )


def test_layers_from_two_calls_with_equal_configs_raise() -> None:
    config = LoRAConfig(rank=2, targets=("0",))
    first = apply_lora(nn.Sequential(nn.Linear(4, 4)), config)
    second = apply_lora(nn.Sequential(nn.Linear(4, 4)), config)
    model = nn.Sequential(first, second)
    with pytest.raises(GeofmError, match=r"come from 2 apply_lora call\(s\) and hold 1 distinct"):
        get_lora_config(model)


def test_layers_of_one_module_with_two_configs_raise_naming_two_paths_per_call() -> None:
    one, two = LoRAConfig(rank=2, targets=("*",)), LoRAConfig(rank=3, targets=("*",))
    first, second = apply_lora(_linears(3), one), apply_lora(_linears(3), two)
    model = nn.Sequential(first[0], first[1], second[2])
    with pytest.raises(GeofmError) as err:
        get_lora_config(model)
    assert re.match(
        _exact(
            "The LoRA layers of Sequential come from 1 apply_lora call(s) and hold 2 distinct"
            " config(s) (this module: 0, 1); one LoRAConfig cannot describe them. Adapt the"
            " model with a single apply_lora call."
        ),
        str(err.value),
    )


def _hand_built(config: LoRAConfig | None, target_name: str | None) -> LoRALinear:
    layer = LoRALinear(nn.Linear(4, 4), rank=2)
    layer.delete_adapter("default")
    layer.add_adapter("default", rank=2, config=config, target_name=target_name)
    return layer


@pytest.mark.parametrize(
    ("config", "target_name"),
    [(None, None), (LoRAConfig(rank=2, targets=("0",)), None)],
    ids=["no-config", "no-target-name"],
)
def test_layer_without_a_recorded_config_or_name_raises(
    config: LoRAConfig | None, target_name: str | None
) -> None:
    model = nn.Sequential(_hand_built(config, target_name))
    with pytest.raises(GeofmError) as err:
        get_lora_config(model)
    assert str(err.value) == (
        "LoRA layer '0' of Sequential was built directly (LoRALinear(...)), not by apply_lora,"
        " so it records no LoRAConfig. Adapt models with apply_lora(model, config)."
    )


def test_moved_layer_error_says_what_to_do() -> None:
    inner = apply_lora(_linears(2), LoRAConfig(rank=2, targets=("1",)))
    with pytest.raises(GeofmError) as err:
        get_lora_config(nn.Sequential(inner[1]))
    assert str(err.value) == (
        "LoRA layer '0' was adapted as '1' and has since been moved to another name, so geofm"
        " cannot tell which module its config applies to. Call apply_lora on the model in its"
        " final layout."
    )


# -- merge_and_unload, mark_only_lora_trainable ---------------------------------------------


def test_merge_and_unload_of_a_merged_model_only_unloads() -> None:
    model = apply_lora(_linears(2), LoRAConfig(rank=2, targets=("0",)))
    _randomize(model)
    x = torch.randn(3, 4)
    with torch.no_grad():
        expected = model(x)
    merge_lora(model)
    merge_and_unload(model)
    assert type(model[0]) is nn.Linear
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected)


def test_merge_and_unload_of_a_merged_model_with_layers_lacking_the_adapter() -> None:
    model = apply_lora(_linears(2), LoRAConfig(rank=2, targets=("0",)))
    apply_lora(model, LoRAConfig(rank=2, targets=("1",)), adapter_name="b")
    merge_lora(model)
    merge_and_unload(model)
    assert [type(m) for m in model] == [nn.Linear, nn.Linear]


def test_mark_only_lora_trainable_without_a_head_freezes_all_but_the_adapter() -> None:
    model = apply_lora(_linears(2), LoRAConfig(rank=2, targets=("0",)))
    mark_only_lora_trainable(model)
    assert _trainable(model) == ["0.lora_A.weight", "0.lora_B.weight"]


def test_also_modules_of_an_inactive_adapter_are_frozen() -> None:
    model = _linears(3)
    apply_lora(model, LoRAConfig(rank=2, targets=("0",), also=("2",)), adapter_name="XXXX")
    apply_lora(model, LoRAConfig(rank=2, targets=("1",)), adapter_name="b")
    set_adapter(model, "b")  # layer 0 lacks "b": no active adapter there
    mark_only_lora_trainable(model, also=())
    assert _trainable(model) == [
        "1.lora_adapters.b.lora_A.weight",
        "1.lora_adapters.b.lora_B.weight",
    ]


@pytest.mark.parametrize(
    ("config", "target_name"),
    [(None, None), (LoRAConfig(rank=2, targets=("0",), also=("1",)), None)],
    ids=["no-config", "no-target-name"],
)
def test_hand_built_layers_keep_only_their_adapter_trainable(
    config: LoRAConfig | None, target_name: str | None
) -> None:
    model = nn.Sequential(_hand_built(config, target_name), nn.Linear(4, 4))
    mark_only_lora_trainable(model, also=())
    assert _trainable(model) == ["0.lora_A.weight", "0.lora_B.weight"]


def test_also_modules_of_a_submodule_after_a_hand_built_layer_stay_trainable() -> None:
    sub = apply_lora(_linears(2), LoRAConfig(rank=2, targets=("0",), also=("1",)))
    model = nn.ModuleDict({"direct": LoRALinear(nn.Linear(4, 4), rank=2), "encX": sub})
    mark_only_lora_trainable(model, also=())
    assert _trainable(model) == [
        "direct.lora_A.weight",
        "direct.lora_B.weight",
        "encX.0.lora_A.weight",
        "encX.0.lora_B.weight",
        "encX.1.weight",
        "encX.1.bias",
    ]


def test_also_modules_of_two_submodules_with_equal_inner_names_stay_trainable() -> None:
    config = LoRAConfig(rank=2, targets=("0",), also=("1",))
    model = nn.ModuleDict(
        {"a": apply_lora(_linears(2), config), "b": apply_lora(_linears(2), config)}
    )
    mark_only_lora_trainable(model, also=())
    assert [n for n in _trainable(model) if ".lora_" not in n] == [
        "a.1.weight",
        "a.1.bias",
        "b.1.weight",
        "b.1.bias",
    ]


@pytest.mark.parametrize("pattern", ["hed", "lora_B"])
def test_config_also_matching_no_module_of_the_model_raises(pattern: str) -> None:
    model = apply_lora(_linears(2), LoRAConfig(rank=2, targets=("0",), also=(pattern,)))
    with pytest.raises(
        UnknownNameError, match=rf"^LoRAConfig\.also pattern '{pattern}' matches no"
    ):
        mark_only_lora_trainable(model, also=())
    with pytest.raises(UnknownNameError, match=rf"^also pattern '{pattern}' matches no module\."):
        lora_state_dict(model)


@pytest.mark.parametrize("pattern", ["hed", "lora_B"])
def test_explicit_also_matching_no_module_of_the_model_raises(pattern: str) -> None:
    model = apply_lora(_linears(2), LoRAConfig(rank=2, targets=("0",)))
    with pytest.raises(UnknownNameError, match=rf"^also pattern '{pattern}' matches no module\."):
        mark_only_lora_trainable(model, also=(pattern,))
    with pytest.raises(UnknownNameError, match=rf"^also pattern '{pattern}' matches no module\."):
        lora_state_dict(model, also=(pattern,))


def test_to_peft_names_the_also_field_of_an_unmatched_pattern(tmp_path: Path) -> None:
    model = apply_lora(_linears(2), LoRAConfig(rank=2, targets=("0",), also=("hed",)))
    with pytest.raises(UnknownNameError, match=r"^also pattern 'hed' matches no module\."):
        to_peft(model, tmp_path)


def test_close_names_in_an_error_are_dotted_suffixes() -> None:
    block = nn.Module()
    block.attn = nn.Linear(2, 2)
    with pytest.raises(UnknownNameError, match=r" Close module names: 0\.attn, attn\. "):
        match_modules(nn.Sequential(block), ("0.atn",), field_name="targets")


# -- an adapter_name that is not the active adapter -----------------------------------------


def _two_adapters() -> nn.Sequential:
    """Adapter "default" (active) on layer 0 with also=("2",), adapter "b" on layers 0 and 1."""
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 2))
    apply_lora(model, LoRAConfig(rank=2, targets=("0",), also=("2",)))
    apply_lora(model, LoRAConfig(rank=3, targets=("0", "1")), adapter_name="b")
    _randomize(model)
    return model


_B_KEYS = ["0.lora_A.weight", "0.lora_B.weight", "1.lora_A.weight", "1.lora_B.weight"]


def _b_tensors(model: nn.Module) -> list[torch.Tensor]:
    return [model[i].adapter_modules("b")[j].weight for i in (0, 1) for j in (0, 1)]


def test_lora_state_dict_of_a_named_inactive_adapter() -> None:
    model = _two_adapters()
    state = lora_state_dict(model, adapter_name="b")
    assert list(state) == _B_KEYS
    for got, expected in zip(state.values(), _b_tensors(model), strict=True):
        assert torch.equal(got, expected)


def test_lora_state_dict_defaults_to_the_active_adapter_among_several() -> None:
    model = _two_adapters()
    set_adapter(model, "b")
    assert list(lora_state_dict(model)) == _B_KEYS


def test_load_lora_into_a_named_adapter_that_is_not_active(tmp_path: Path) -> None:
    model = _two_adapters()
    file = save_lora(model, tmp_path / "b.safetensors", adapter_name="b")
    other = _two_adapters()
    default_before = [t.clone() for t in lora_state_dict(other).values()]
    load_lora(other, file, adapter_name="b")
    for got, expected in zip(_b_tensors(other), _b_tensors(model), strict=True):
        assert torch.equal(got, expected)
    for got, expected in zip(lora_state_dict(other).values(), default_before, strict=True):
        assert torch.equal(got, expected)
    assert get_active_adapter(other) == "default"


def test_to_peft_of_a_named_adapter_that_is_not_active(tmp_path: Path) -> None:
    model = _two_adapters()
    to_peft(model, tmp_path, adapter_name="b")
    stored = load_file(str(tmp_path / "adapter_model.safetensors"))
    assert sorted(stored) == ["base_model.model." + k for k in _B_KEYS]
    for key, expected in zip(_B_KEYS, _b_tensors(model), strict=True):
        assert torch.equal(stored["base_model.model." + key], expected)
    assert json.loads((tmp_path / "adapter_config.json").read_text())["r"] == 3


def test_to_peft_target_modules_is_the_list_of_adapted_layers(tmp_path: Path) -> None:
    # The adapter is named like a layer: its inner modules ("head.lora_adapters.fc") are no
    # layers of the model, so the plain list still selects exactly the adapted ones.
    model = nn.ModuleDict({"fc": nn.Linear(4, 4), "head": nn.Linear(4, 4)})
    apply_lora(model, LoRAConfig(rank=2, targets=("head",)))
    apply_lora(model, LoRAConfig(rank=2, targets=("fc", "head")), adapter_name="fc")
    to_peft(model, tmp_path, adapter_name="fc")
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["target_modules"] == ["fc", "head"]


def test_from_peft_next_to_another_adapter_on_other_layers(tmp_path: Path) -> None:
    source = apply_lora(_linears(2), LoRAConfig(rank=2, targets=("0",)))
    _randomize(source)
    to_peft(source, tmp_path)
    model = apply_lora(_linears(2), LoRAConfig(rank=2, targets=("1",)))
    from_peft(model, tmp_path, adapter_name="b")
    assert torch.equal(model[0].adapter_modules("b")[0].weight, source[0].lora_A.weight)
    assert list(model[1].adapters) == ["default"]


def test_from_peft_regex_targets_skip_the_inner_modules_of_lora_layers(tmp_path: Path) -> None:
    source = apply_lora(_linears(2), LoRAConfig(rank=2, targets=("0",)))
    to_peft(source, tmp_path)
    config_file = tmp_path / "adapter_config.json"
    raw = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**raw, "target_modules": "0.*"}))
    model = apply_lora(_linears(2), LoRAConfig(rank=2, targets=("0",)))
    from_peft(model, tmp_path, adapter_name="b")
    assert [n for n, _ in lora_layers(model)] == ["0"]
    assert list(model[0].adapters) == ["default", "b"]


def test_from_peft_prefix_ending_in_a_capital_letter(tmp_path: Path) -> None:
    source = apply_lora(_linears(1), LoRAConfig(rank=2, targets=("0",)))
    to_peft(source, tmp_path)
    model = nn.ModuleDict({"encX": _linears(1), "enc": _linears(1)})
    from_peft(model, tmp_path, prefix="encX")
    assert [n for n, _ in lora_layers(model)] == ["encX.0"]


def test_from_peft_logs_module_names_holding_lora_in_their_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def base() -> nn.ModuleDict:
        return nn.ModuleDict({"enc": nn.ModuleDict({"lora_proj": nn.Linear(4, 4)})})

    to_peft(apply_lora(base(), LoRAConfig(rank=2, targets=("enc.lora_proj",))), tmp_path)
    model = nn.ModuleDict({"model": base()})
    with caplog.at_level(logging.INFO, logger="geofm.lora.io"):
        from_peft(model, tmp_path)
    assert "remapped enc.lora_proj -> model.enc.lora_proj" in caplog.text
    assert [n for n, _ in lora_layers(model)] == ["model.enc.lora_proj"]


# -- layers -----------------------------------------------------------------------------------


def test_new_layer_is_enabled_and_uses_identity_without_dropout() -> None:
    layer = LoRALinear(nn.Linear(4, 4), rank=2)
    assert layer.adapters_disabled is False
    assert type(layer.lora_dropout) is nn.Identity
    layer.add_adapter("b", dropout=0.0)
    assert type(layer.adapter_modules("b")[2]) is nn.Identity
    layer.add_adapter("c", dropout=0.1)
    assert type(layer.adapter_modules("c")[2]) is nn.Dropout


def test_adapter_added_to_a_layer_without_active_adapter_stays_inactive() -> None:
    layer = LoRALinear(nn.Linear(4, 4), rank=2)
    layer.set_adapter(None)
    layer.add_adapter("b", rank=2)
    assert layer.active_adapter is None


def test_repr_without_active_adapter_shows_no_chunks() -> None:
    layer = LoRALinear(nn.Linear(4, 12), rank=2, chunks=(True, False, True), adapter_name="XXXX")
    layer.set_adapter(None)
    assert layer.extra_repr() == "in_features=4, out_features=12, merged=False"


def test_scattered_b_of_three_adapted_chunks_is_block_diagonal() -> None:
    layer = LoRALinear(nn.Linear(4, 6), rank=1, chunks=(True, True, True))
    _randomize(nn.Sequential(layer))
    b = layer.lora_B.weight  # (3 chunks * 2 rows, rank 1)
    torch.testing.assert_close(layer.scattered_b(), torch.block_diag(*b.split(2)))
    x = torch.randn(5, 4)
    expected = layer.to_base_layer()(x) + layer.scaling * x @ layer.lora_A.weight.t() @ (
        torch.block_diag(*b.split(2)).t()
    )
    torch.testing.assert_close(layer(x), expected)


# -- error messages: what was expected and what came --------------------------------------------


class _OwnLinear(nn.Linear):
    pass


def _merged() -> nn.Sequential:
    return merge_lora(apply_lora(_linears(1), LoRAConfig(rank=2, targets=("0",))))


def _adapted(n: int = 1) -> nn.Sequential:
    return apply_lora(_linears(n), LoRAConfig(rank=2, targets=("*",)))


def _disabled_merge() -> None:
    model = _adapted()
    with disable_adapters(model):
        merge_lora(model)


def _mixed_active() -> None:
    model = _adapted(2)
    apply_lora(model, LoRAConfig(rank=2, targets=("*",)), adapter_name="b")
    model[1].set_adapter("b")
    get_active_adapter(model)


def _delete_merged_layer_adapter() -> None:
    _merged()[0].delete_adapter("default")


def _no_active() -> None:
    layer = LoRALinear(nn.Linear(4, 4), rank=2)
    layer.set_adapter(None)
    _ = layer.lora_A


_MESSAGES = {
    # config.py
    "targets-empty-string": (
        lambda: LoRAConfig(targets=("",)),
        ValueError,
        "LoRAConfig.targets must hold non-empty strings, got ['']. Pass module-name patterns"
        " such as 'blocks.*.attn.qkv'.",
    ),
    "targets-empty": (
        lambda: LoRAConfig(targets=()),
        ValueError,
        "LoRAConfig.targets is empty. Pass at least one module-name pattern.",
    ),
    "qkv-parts-unknown": (
        lambda: LoRAConfig(qkv_parts=("q", "x")),  # type: ignore[arg-type]
        ValueError,
        "LoRAConfig.qkv_parts has unknown parts ['x']; expected a subset of ('q', 'k', 'v').",
    ),
    "target-types-not-modules": (
        lambda: LoRAConfig(target_types=(int,)),  # type: ignore[arg-type]
        ValueError,
        "LoRAConfig.target_types must hold nn.Module subclasses, got [<class 'int'>]. Pass"
        " layer classes such as (nn.Linear,).",
    ),
    "type-not-storable": (
        lambda: LoRAConfig(target_types=(_OwnLinear,)).to_json(),
        UnsupportedModuleError,
        "Layer type _OwnLinear cannot be stored in a LoRA config: only torch.nn layer types are"
        " stored, by name. Use target_types=(nn.Linear,) or (nn.Conv2d,).",
    ),
    "type-name-unknown": (
        lambda: LoRAConfig.from_json(
            LoRAConfig(target_types=(nn.Linear,)).to_json().replace('"Linear"', '"Lin"')
        ),
        UnsupportedModuleError,
        "Stored LoRA config names the layer type 'Lin', which is not a torch.nn module type."
        " Expected names such as 'Linear' or 'Conv2d'; the file is damaged or was written by an"
        " incompatible geofm version.",
    ),
    # inject.py
    "no-lora-layers-merge": (
        lambda: merge_lora(_linears(1)),
        GeofmError,
        "Sequential has no LoRA layers. Call apply_lora(model, config) first.",
    ),
    "no-lora-layers-unload": (
        lambda: unload(_linears(1)),
        GeofmError,
        "Sequential has no LoRA layers. Call apply_lora(model, config) first.",
    ),
    "config-of-unknown-adapter": (
        lambda: get_lora_config(_adapted(), adapter_name="zz"),
        UnknownNameError,
        "Sequential has no adapter 'zz'; it has ['default'].",
    ),
    "set-unknown-adapter": (
        lambda: set_adapter(_adapted(), "zz"),
        UnknownNameError,
        "Sequential has no adapter 'zz'; it has ['default'].",
    ),
    "delete-unknown-adapter": (
        lambda: delete_adapter(_adapted(), "zz"),
        UnknownNameError,
        "Sequential has no adapter 'zz'; it has ['default'].",
    ),
    "adapter-taken": (
        lambda: apply_lora(_adapted(4), LoRAConfig(rank=2, targets=("*",))),
        GeofmError,
        "Sequential already has a LoRA adapter named 'default' (0, 1, 2...). apply_lora adds"
        " each adapter once: put every target in one LoRAConfig, or pass another adapter_name.",
    ),
    "apply-to-merged": (
        lambda: apply_lora(_merged(), LoRAConfig(rank=2, targets=("0",)), adapter_name="b"),
        GeofmError,
        "Cannot add an adapter to a merged model. Call unmerge_lora(model) first.",
    ),
    "second-adapter-also": (
        lambda: apply_lora(
            _adapted(2), LoRAConfig(rank=2, targets=("0",), also=("1",)), adapter_name="b"
        ),
        GeofmError,
        "Adapter 'b' lists also=('1',), but the model already holds adapters ['default']: also"
        " modules exist once in the model, so two adapters would overwrite each other's. Pass"
        " also=() for this adapter (and load its head yourself), or use a separate model.",
    ),
    "different-active-adapters": (
        _mixed_active,
        GeofmError,
        "The LoRA layers of Sequential use different adapters ['b', 'default']; call"
        " set_adapter(model, name) to pick one.",
    ),
    "also-string": (
        lambda: mark_only_lora_trainable(_adapted(), also="head"),
        ValueError,
        "also must be a sequence of patterns, got 'head'; write ('head',).",
    ),
    "merge-twice": (
        lambda: merge_lora(_merged()),
        GeofmError,
        "Model is already (partly) merged. Call unmerge_lora(model) first.",
    ),
    "merge-disabled": (
        _disabled_merge,
        GeofmError,
        "Cannot merge inside disable_adapters(model).",
    ),
    "unmerge-unmerged": (
        lambda: unmerge_lora(_adapted()),
        GeofmError,
        "Model is not (fully) merged. Call merge_lora(model) first.",
    ),
    "switch-merged": (
        lambda: set_adapter(_merged(), "default"),
        GeofmError,
        "Cannot switch adapters of a merged model. Call unmerge_lora(model) first.",
    ),
    # layers.py
    "adapter-name-dot": (
        lambda: apply_lora(_linears(1), LoRAConfig(rank=2, targets=("0",)), adapter_name="a.b"),
        ValueError,
        "adapter_name must be a non-empty string without '.', got 'a.b'. Pass a name such as"
        " 'default' or 'city_a'.",
    ),
    "linear-unknown-option": (
        lambda: LoRALinear(nn.Linear(4, 4)).add_adapter("b", groups=2),
        TypeError,
        "LoRALinear got unexpected adapter options ['groups'].",
    ),
    "conv-unknown-option": (
        lambda: LoRAConv2d(nn.Conv2d(4, 4, 1)).add_adapter("b", chunks=(True,)),
        TypeError,
        "LoRAConv2d got unexpected adapter options ['chunks'].",
    ),
    "conv-rank-below-groups": (
        lambda: LoRAConv2d(nn.Conv2d(4, 4, 1, groups=4), rank=1),
        ValueError,
        "LoRAConv2d (adapter 'default') is a convolution with groups=4: the rank is split"
        " evenly over the groups, so it must be a multiple of 4, got rank=1. Use rank=4 or"
        " exclude this layer.",
    ),
    "chunks-do-not-split": (
        lambda: LoRALinear(nn.Linear(4, 6)).add_adapter("b", chunks=(True,) * 4),
        ShapeError,
        "Cannot split 6 output features of LoRALinear (adapter 'b') into 4 equal chunks"
        " (chunks=(True, True, True, True)). Is this really a fused projection?",
    ),
    "layer-rank": (
        lambda: LoRALinear(nn.Linear(4, 4)).add_adapter("b", rank=0),
        ValueError,
        "LoRALinear.rank must be an integer >= 1, got 0. Pass a rank such as 8.",
    ),
    "layer-adapter-taken": (
        lambda: LoRALinear(nn.Linear(4, 4)).add_adapter("default"),
        GeofmError,
        "LoRALinear already has an adapter named 'default' (adapters: ['default']). Pick"
        " another adapter_name or delete it first.",
    ),
    "layer-no-active": (
        _no_active,
        GeofmError,
        "LoRALinear has no active adapter (adapters: ['default']). Pass adapter_name or call"
        " set_adapter.",
    ),
    "layer-unknown-adapter": (
        lambda: LoRALinear(nn.Linear(4, 4)).adapter_modules("zz"),
        UnknownNameError,
        "LoRALinear has no adapter 'zz'; it has ['default'].",
    ),
    "layer-delete-merged": (
        _delete_merged_layer_adapter,
        GeofmError,
        "adapter 'default' of layer '0' is merged. Unmerge before deleting it.",
    ),
}


@pytest.mark.parametrize("case", list(_MESSAGES))
def test_error_message_names_what_was_expected_and_what_came(case: str) -> None:
    call, error, message = _MESSAGES[case]
    with pytest.raises(error, match=_exact(message)):
        call()


def test_stored_config_with_missing_fields_names_them() -> None:
    with pytest.raises(
        ValueError,
        match=r"^Stored LoRA config has fields \['rank'\], expected \[.*'targets'.*\]\. It was"
        r" written by an incompatible geofm version\.$",
    ):
        LoRAConfig.from_json('{"rank": 2}')


# -- io error messages ------------------------------------------------------------------------


def test_save_lora_without_adapters_or_from_a_parent_says_where_to_apply(tmp_path: Path) -> None:
    message = (
        "Sequential has no LoRA config. Call apply_lora(model, config) on this same module first"
        " (not on a parent or child of it)."
    )
    with pytest.raises(GeofmError, match=_exact(message)):
        save_lora(_linears(1), tmp_path / "a.safetensors")
    with pytest.raises(GeofmError, match=_exact(message)):
        save_lora(nn.Sequential(_adapted()), tmp_path / "a.safetensors")


def test_load_lora_with_another_config_lists_the_differences(tmp_path: Path) -> None:
    file = save_lora(
        apply_lora(_linears(2), LoRAConfig(rank=3, targets=("0",), also=("1",))),
        tmp_path / "a.safetensors",
    )
    model = _adapted(2)
    with pytest.raises(GeofmError, match=_exact(
        f"The model's LoRA config of adapter 'default' differs from the one in {file} (rank:"
        " model 2 vs file 3; targets: model ('*',) vs file ('0',); also: model () vs file"
        " ('1',)). Load into the plain base model instead (or under another adapter_name), and"
        " the stored config is applied."
    )):  # fmt: skip
        load_lora(model, file)


def test_load_lora_into_a_merged_model_says_to_unmerge(tmp_path: Path) -> None:
    model = _merged()
    file = save_lora(model, tmp_path / "a.safetensors")
    with pytest.raises(GeofmError, match=_exact(
        "Cannot load adapters into a merged model. Call unmerge_lora(model) first."
    )):  # fmt: skip
        load_lora(model, file)


def test_load_lora_of_another_dtype_lists_each_tensor(tmp_path: Path) -> None:
    file = save_lora(_adapted().double(), tmp_path / "a.safetensors")
    with pytest.raises(WeightsError, match=_exact(
        f"2 tensor(s) in {file} have another dtype than the model's (0.lora_A.weight: file"
        " torch.float64, model torch.float32; 0.lora_B.weight: file torch.float64, model"
        " torch.float32). Cast the model to the adapter's dtype (or the other way round) before"
        " loading; nothing is cast silently."
    )):  # fmt: skip
        load_lora(_linears(1), file)


@pytest.mark.parametrize(
    ("metadata", "got"),
    [
        ({}, "None and no"),
        ({"geofm.lora.format": "1"}, "'1' and no"),
        ({"geofm.lora.format": "2", "geofm.lora.config": LoRAConfig().to_json()}, "'2' and a"),
    ],
    ids=["no-metadata", "no-config", "other-format"],
)
def test_load_lora_refuses_a_file_not_written_by_save_lora(
    tmp_path: Path, metadata: dict[str, str], got: str
) -> None:
    file = tmp_path / "a.safetensors"
    save_file({"0.lora_A.weight": torch.zeros(8, 4)}, str(file), metadata=metadata)
    model = _linears(1)
    with pytest.raises(WeightsError, match=_exact(
        f"{file} is not a geofm LoRA file: its metadata has 'geofm.lora.format'={got}"
        " 'geofm.lora.config', expected '1' and a config. Use from_peft for PEFT adapter"
        " folders, or save the adapter with save_lora."
    )):  # fmt: skip
        load_lora(model, file)
    assert not list(lora_layers(model))


def test_load_lora_of_a_damaged_file_says_so(tmp_path: Path) -> None:
    file = tmp_path / "a.safetensors"
    file.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}")
    with pytest.raises(WeightsError) as err:
        load_lora(_linears(1), file)
    assert re.fullmatch(
        rf"LoRA adapter file {re.escape(str(file))} cannot be read as safetensors \(SafetensorError:"
        r" .*\); the file is truncated or corrupt\. Save or download it again\.",
        str(err.value),
        flags=re.DOTALL,
    )


def test_to_peft_of_a_dilated_convolution_says_why(tmp_path: Path) -> None:
    model = apply_lora(
        nn.Sequential(nn.Conv2d(2, 2, 3, dilation=2)), LoRAConfig(rank=2, targets=("0",))
    )
    with pytest.raises(GeofmError, match=_exact(
        "Layer '0' is a dilated convolution (dilation=(2, 2)); PEFT builds lora_A without the"
        " base's dilation, so PEFT and geofm would compute different outputs. Exclude it from the"
        " PEFT adapter, or use save_lora/load_lora."
    )):  # fmt: skip
        to_peft(model, tmp_path)


def test_to_peft_of_partial_qkv_names_three_layers(tmp_path: Path) -> None:
    model = nn.Sequential(*(nn.Linear(4, 12) for _ in range(4)))
    apply_lora(model, LoRAConfig(rank=2, targets=("*",), qkv_parts=("q", "v"), qkv_names=("*",)))
    with pytest.raises(GeofmError, match=_exact(
        "PEFT cannot express qkv_parts=('q', 'v'): it adapts a fused qkv Linear only as a whole"
        " (peft issue #691). Affected layers: 0, 1, 2. Use qkv_parts=('q', 'k', 'v') for a"
        " PEFT-compatible adapter, or save_lora for this one."
    )):  # fmt: skip
        to_peft(model, tmp_path)


def _peft_folder(tmp_path: Path, model: nn.Module | None = None) -> Path:
    source = model if model is not None else _adapted()
    return to_peft(source, tmp_path / "peft")


def test_from_peft_without_its_files_names_them(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=_exact(
        f"{tmp_path / 'adapter_config.json'} not found. from_peft reads a PEFT adapter folder"
        " with adapter_config.json and adapter_model.safetensors (re-save .bin adapters with"
        " PEFT's save_pretrained)."
    )):  # fmt: skip
        from_peft(_linears(1), tmp_path)


def test_from_peft_with_a_broken_config_says_it_is_not_json(tmp_path: Path) -> None:
    folder = _peft_folder(tmp_path)
    (folder / "adapter_config.json").write_text("{")
    with pytest.raises(WeightsError, match=r"^\S+adapter_config\.json is not valid JSON \("):
        from_peft(_linears(1), folder)


def test_from_peft_with_foreign_keys_shows_three(tmp_path: Path) -> None:
    folder = _peft_folder(tmp_path)
    weights = folder / "adapter_model.safetensors"
    save_file({k: torch.zeros(1) for k in ("a", "b", "c", "d")}, str(weights))
    with pytest.raises(WeightsError, match=_exact(
        f"{weights} has keys without the 'base_model.model.' prefix: ['a', 'b', 'c']. Is it a"
        " PEFT LoRA adapter of a plain (non-task) model?"
    )):  # fmt: skip
        from_peft(_linears(1), folder)


def test_from_peft_with_an_unknown_prefix_names_it(tmp_path: Path) -> None:
    folder = _peft_folder(tmp_path)
    with pytest.raises(UnknownNameError, match=_exact(
        "prefix='nope' names no module of Sequential."
    )):  # fmt: skip
        from_peft(_linears(1), folder, prefix="nope.")


def test_from_peft_matching_no_module_says_where_it_looked(tmp_path: Path) -> None:
    folder = _peft_folder(tmp_path)
    config = tmp_path / "peft" / "adapter_config.json"
    with pytest.raises(UnknownNameError, match=_exact(
        f"target_modules=['0'] in {config} matches no module of ModuleDict."
    )):  # fmt: skip
        from_peft(nn.ModuleDict({"fc": nn.Linear(4, 4)}), folder)
    with pytest.raises(UnknownNameError, match=_exact(
        f"target_modules=['0'] in {config} matches no module of ModuleDict under 'encX'."
    )):  # fmt: skip
        from_peft(nn.ModuleDict({"encX": nn.ModuleDict({"fc": nn.Linear(4, 4)})}), folder,
                  prefix="encX")  # fmt: skip


def test_from_peft_with_weights_across_groups_says_why(tmp_path: Path) -> None:
    source = apply_lora(
        nn.Sequential(nn.Conv2d(4, 4, 1, groups=2)), LoRAConfig(rank=2, targets=("0",))
    )
    folder = _peft_folder(tmp_path, source)
    weights = folder / "adapter_model.safetensors"
    with safe_open(str(weights), framework="pt") as handle:
        stored = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    stored["base_model.model.0.lora_A.weight"] = torch.ones(2, 4, 1, 1)
    save_file(stored, str(weights))
    with pytest.raises(GeofmError, match=_exact(
        "Layer '0' is a convolution with groups=2. PEFT's lora_A for it reads every input"
        " channel, and this adapter has non-zero weights across groups (max 1): an update a"
        " grouped convolution cannot hold, so it cannot be loaded or merged (PEFT cannot merge"
        " it either). Exclude the layer when training with PEFT, or train the adapter with"
        " geofm."
    )):  # fmt: skip
        from_peft(nn.Sequential(nn.Conv2d(4, 4, 1, groups=2)), folder)


# -- files written twice, defaults, read-only attributes ---------------------------------------


def test_save_lora_replaces_an_earlier_file(tmp_path: Path) -> None:
    model = _adapted()
    file = save_lora(model, tmp_path / "a.safetensors")
    _randomize(model)
    assert save_lora(model, file) == file
    assert torch.equal(load_file(str(file))["0.lora_A.weight"], model[0].lora_A.weight)


def test_to_peft_replaces_an_earlier_folder(tmp_path: Path) -> None:
    model = _adapted()
    to_peft(model, tmp_path)
    _randomize(model)
    to_peft(model, tmp_path)
    stored = load_file(str(tmp_path / "adapter_model.safetensors"))
    assert torch.equal(stored["base_model.model.0.lora_B.weight"], model[0].lora_B.weight)
    assert json.loads((tmp_path / "adapter_config.json").read_text())["r"] == 2


def test_ecovision_config_keeps_the_a_init_asked_for() -> None:
    assert ecovision_config(a_init="kaiming_rank").a_init == "kaiming_rank"


def test_init_lora_pair_draws_a_over_the_input_width_by_default() -> None:
    torch.manual_seed(0)
    a, b = nn.Linear(64, 4, bias=False), nn.Linear(4, 8, bias=False)
    nn.init.ones_(b.weight)
    init_lora_pair(a, b)
    assert 0.1 < a.weight.abs().max().item() <= 0.125  # U(-1/sqrt(64), 1/sqrt(64))
    assert not b.weight.any()


def test_active_adapter_fields_are_read_only() -> None:
    layer = LoRALinear(nn.Linear(4, 4), rank=2)
    with pytest.raises(AttributeError, match=_exact(
        "LoRALinear.rank is read-only: it is the active adapter's; add an adapter with other"
        " settings instead."
    )):  # fmt: skip
        layer.rank = 3  # type: ignore[misc]
    assert layer.rank == 2


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: LoRAConfig(a_init="x"),  # type: ignore[arg-type]
            "LoRAConfig.a_init must be one of ('kaiming', 'kaiming_rank'), got 'x'.",
        ),
        (
            lambda: LoRALinear(nn.Linear(4, 4)).add_adapter("b", a_init="x"),  # type: ignore[arg-type]
            "a_init must be one of ('kaiming', 'kaiming_rank'), got 'x'.",
        ),
    ],
    ids=["config", "layer"],
)
def test_unknown_a_init_lists_the_known_ones(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=_exact(message)):
        call()


def test_adapter_cannot_be_added_to_a_merged_layer() -> None:
    layer = LoRALinear(nn.Linear(4, 4), rank=2)
    layer.merge()
    with pytest.raises(GeofmError, match=_exact(
        "Cannot add adapter 'b' to merged LoRALinear. Unmerge first."
    )):  # fmt: skip
        layer.add_adapter("b")
