"""PEFT's LoRA tests on custom models, ported to geofm.lora.

Upstream: huggingface/peft @ 5d602fdbff04c33c1c4de55cda9d4ae1d7cb7e40 (2026-08-21).

Cases (``tests/test_custom_models.py::TEST_CASES``, LoRA rows on the MLP and Conv2d models):
"Vanilla MLP 1 LoRA" ... "Vanilla MLP 6 LoRA", "Conv2d 1 LoRA", "Conv2d 2 LoRA",
"Conv2d Groups LoRA", "Conv2d Groups2 LoRA", on ``MLP``, ``ModelConv2D``,
``ModelConv2DGroups`` and ``ModelConv2DGroups2`` (rewritten here with the same layers, seed
and input ``torch.arange(90).view(9, 10)``). The DoRA and ``lora_bias`` rows of the same
models are listed as missing features (``test_lora_variant_rows``).

Tests followed (``TestPeftCustomModel`` and the ``PeftCommonTester`` helpers of
``tests/testing_common.py`` they call): ``test_adapter_name``, ``test_save_pretrained``,
``test_save_pretrained_pickle``, ``test_save_pretrained_adapter_name_substring``,
``test_load_multiple_adapters``, ``test_merge_layers``, ``test_merge_layers_fp16``,
``test_merge_layers_is_idempotent``, ``test_safe_merge``, ``_test_merge_layers_nan`` (run by
``test_decoder_models.py`` upstream), ``test_training_custom_models``,
``test_inference_safetensors``, ``test_in_features_out_features_exposed``,
``test_forward_output_finite``, ``test_forward_float16`` / ``test_forward_bfloat16`` (and their
``_no_autocast`` twins), ``test_only_params_are_updated``, ``test_save_load_roundtrip``,
``test_parameters_after_loading_model``, ``test_disable_adapters``,
``test_disable_adapters_with_merging``,
``test_disable_adapters_exiting_context_restores_previous_state``, ``test_active_adapter``,
``test_delete_adapter``, ``test_delete_inactive_adapter``,
``test_delete_unknown_adapter_raises``, ``test_delete_merged_adapter_raises_without_mutation``
and ``_test_unload_adapter`` (run by ``test_unload_adapter_multihead_attention`` upstream).

Adaptations:

- ``get_peft_model(model, LoraConfig(...))`` -> ``apply_lora(model, LoRAConfig(...))`` then
  ``mark_only_lora_trainable(model, also=())`` (PEFT freezes in ``get_peft_model``).
  ``r`` -> ``rank``, ``lora_alpha`` -> ``alpha`` (PEFT's default 8 passed explicitly: geofm's
  default is 16), ``lora_dropout`` -> ``dropout``, ``target_modules`` -> ``targets``,
  ``modules_to_save`` -> ``also``.
- ``init_lora_weights=False`` (upstream ``set_init_weights_false``: both factors keep
  ``nn.Linear`` / ``nn.Conv2d``'s default init) -> ``lora_B.reset_parameters()`` on every
  adapted layer (geofm's ``lora_A`` already has that init).
- ``merge_adapter`` / ``unmerge_adapter`` -> ``merge_lora`` / ``unmerge_lora``;
  ``merge_and_unload(safe_merge=True)`` -> ``merge_and_unload`` (always safe); ``unload`` ->
  ``unload``; ``with model.disable_adapter()`` -> ``with disable_adapters(model)``;
  ``add_adapter(name, config)`` -> ``apply_lora(model, config, adapter_name=name)``;
  ``set_adapter`` / ``delete_adapter`` / ``active_adapter`` -> the geofm functions of those
  names and ``get_active_adapter``; ``model.disable_adapter_layers()`` -> an enclosing
  ``disable_adapters`` block; ``BaseTunerLayer`` -> ``LoRALinear`` / ``LoRAConv2d``; the
  ``"lora_"`` / ``"modules_to_save"`` parameter names -> adapter parameters and the ``also``
  module's parameters (geofm trains the ``also`` module in place; PEFT trains a copy).
- ``save_pretrained(dir)`` / ``PeftModel.from_pretrained(base, dir)`` / ``load_adapter`` ->
  ``save_lora(model, file)`` / ``load_lora(base, file, adapter_name=...)``: one safetensors
  file with the config in its metadata, instead of ``adapter_model.safetensors`` plus
  ``adapter_config.json``.
- A second adapter is added with ``also=()``: geofm refuses ``also`` modules on a second
  adapter (they exist once in the model).
- Error messages are matched on geofm's wording (e.g. "holds NaN/inf" for PEFT's "NaNs
  detected in the merged weights").
- PEFT skips every merge test on grouped convolutions ("Merging conv layers with groups>1
  and LoRA is not supported"); geofm merges them, so they run here, with upstream's Conv2d
  tolerances.
- ``test_forward_*16``: geofm keeps the adapter in the base layer's dtype (what PEFT calls
  ``autocast_adapter_dtype=False``); the two upstream variants are one geofm code path.
- ADDED (not upstream): ``to_peft`` -> real ``PeftModel.from_pretrained`` and real PEFT
  ``save_pretrained`` -> ``from_peft`` on every case, with equal outputs; a PEFT adapter
  trained on a plain timm ViT loaded into the geofm backbone wrapping it (prefix remap).

Not ported (no geofm counterpart, by design): ``test_attributes_parametrized`` (PEFT's
``PeftModel`` methods; geofm has free functions), ``test_load_model_low_cpu_mem_usage``
(meta-device injection), ``test_from_pretrained_config_construction`` (``config=`` override of
a saved adapter), ``test_peft_model_device_map``.

Every intended difference or missing feature is a strict ``xfail`` with its reason.
"""

from __future__ import annotations

import copy
import pickle
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import timm
import torch
from _peers import xfail
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

import geofm
from geofm.errors import GeofmError, UnknownNameError
from geofm.lora import (
    LoRAConfig,
    LoRAConv2d,
    LoRALinear,
    apply_lora,
    delete_adapter,
    disable_adapters,
    from_peft,
    get_active_adapter,
    list_adapters,
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

peft = pytest.importorskip("peft")


# --- the upstream custom models (same layers and seed) ------------------------------------
class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin0 = nn.Linear(10, 20)
        self.relu = nn.ReLU()
        self.drop = nn.Dropout(0.5)
        self.lin1 = nn.Linear(20, 2)
        self.sm = nn.LogSoftmax(dim=-1)
        self.dtype = torch.float

    def forward(self, x: Tensor) -> Tensor:
        return self.sm(self.lin1(self.drop(self.relu(self.lin0(x.to(self.dtype))))))


class ModelConv2D(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv2d = nn.Conv2d(5, 10, 3)
        self.relu = nn.ReLU()
        self.flat = nn.Flatten()
        self.lin0 = nn.Linear(10, 2)
        self.sm = nn.LogSoftmax(dim=-1)
        self.dtype = torch.float

    def forward(self, x: Tensor) -> Tensor:
        x = x.to(self.dtype).reshape(-1, 5, 3, 3)  # (2, 5, 3, 3) from the (9, 10) input
        return self.sm(self.lin0(self.flat(self.relu(self.conv2d(x)))))


class ModelConv2DGroups(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin0 = nn.Linear(90, 288)
        self.conv2d = nn.Conv2d(16, 16, 3, groups=8)  # groups divides PEFT's default r=8
        self.relu = nn.ReLU()
        self.flat = nn.Flatten()
        self.lin1 = nn.Linear(16, 2)
        self.sm = nn.LogSoftmax(dim=-1)
        self.dtype = torch.float

    def forward(self, x: Tensor) -> Tensor:
        x = self.lin0(x.to(self.dtype).flatten()).reshape(2, 16, 3, 3)  # (2, 16, 3, 3)
        return self.sm(self.lin1(self.flat(self.relu(self.conv2d(x)))))


class ModelConv2DGroups2(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv2d = nn.Conv2d(16, 32, 3, padding=1, groups=2)
        self.relu = nn.ReLU()
        self.flat = nn.Flatten()
        self.lin0 = nn.Linear(12800, 2)
        self.sm = nn.LogSoftmax(dim=-1)
        self.dtype = torch.float

    def forward(self, x: Tensor) -> Tensor:
        # Upstream ignores the input here and feeds its own (9, 16, 20, 20) ramp.
        ramp = torch.arange(9 * 16 * 20 * 20).view(9, 16, 20, 20).to(self.conv2d.weight.device)
        return self.sm(self.lin0(self.flat(self.relu(self.conv2d(ramp.to(self.dtype))))))


MODELS: dict[str, Callable[[], nn.Module]] = {
    "MLP": MLP,
    "Conv2d": ModelConv2D,
    "Conv2dGroups": ModelConv2DGroups,
    "Conv2dGroups2": ModelConv2DGroups2,
}


def base_model(model_id: str, dtype: torch.dtype = torch.float32) -> nn.Module:
    """Upstream's ``MockTransformerWrapper.from_pretrained``: same seed, same model."""
    torch.manual_seed(0)
    model = MODELS[model_id]().to(dtype)
    model.dtype = dtype
    return model


def inputs() -> Tensor:
    return torch.arange(90).view(9, 10)


# --- the cases -----------------------------------------------------------------------------
CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("Vanilla MLP 1 LoRA", "MLP", {"target_modules": "lin0"}),
    ("Vanilla MLP 2 LoRA", "MLP", {"target_modules": ["lin0"]}),
    ("Vanilla MLP 3 LoRA", "MLP", {"target_modules": ["lin1"]}),
    ("Vanilla MLP 4 LoRA", "MLP", {"target_modules": ["lin0", "lin1"]}),
    ("Vanilla MLP 5 LoRA", "MLP", {"target_modules": ["lin0"], "modules_to_save": ["lin1"]}),
    (
        "Vanilla MLP 6 LoRA",
        "MLP",
        {"target_modules": ["lin0"], "lora_alpha": 4, "lora_dropout": 0.1},
    ),
    ("Conv2d 1 LoRA", "Conv2d", {"target_modules": ["conv2d"]}),
    ("Conv2d 2 LoRA", "Conv2d", {"target_modules": ["conv2d", "lin0"]}),
    ("Conv2d Groups LoRA", "Conv2dGroups", {"target_modules": ["conv2d"]}),
    ("Conv2d Groups2 LoRA", "Conv2dGroups2", {"target_modules": ["conv2d"]}),
]
CONV_IDS = ("Conv2d", "Conv2dGroups", "Conv2dGroups2")  # upstream's wider Conv tolerances


def cases_with(**marks_by_name: pytest.MarkDecorator) -> list[Any]:
    """CASES as pytest params, with a mark on the named cases."""
    return [
        pytest.param(
            *case, marks=[marks_by_name[case[0]]] if case[0] in marks_by_name else [], id=case[0]
        )
        for case in CASES
    ]


def config_for(kwargs: dict[str, Any], **changes: Any) -> LoRAConfig:
    """PEFT ``LoraConfig`` kwargs -> ``LoRAConfig`` (PEFT's defaults r=8, lora_alpha=8)."""
    targets = kwargs["target_modules"]
    fields: dict[str, Any] = {
        "rank": kwargs.get("r", 8),
        "alpha": float(kwargs.get("lora_alpha", 8)),
        "dropout": kwargs.get("lora_dropout", 0.0),
        "targets": (targets,) if isinstance(targets, str) else tuple(targets),
        "also": tuple(kwargs.get("modules_to_save", ())),
    }
    return LoRAConfig(**{**fields, **changes})


def lora_layers(model: nn.Module) -> list[LoRALinear | LoRAConv2d]:
    return [m for m in model.modules() if isinstance(m, (LoRALinear, LoRAConv2d))]


def randomize_b(model: nn.Module) -> None:
    """``init_lora_weights=False``: ``lora_B`` gets the layer's default (non-zero) init too."""
    torch.manual_seed(1)
    for layer in lora_layers(model):
        layer.lora_B.reset_parameters()


def adapted(
    model_id: str, kwargs: dict[str, Any], *, init_weights: bool = True, **apply: Any
) -> nn.Module:
    """``get_peft_model(base, LoraConfig(**kwargs))``."""
    model = apply_lora(base_model(model_id), config_for(kwargs), **apply)
    mark_only_lora_trainable(model, also=())
    if not init_weights:
        randomize_b(model)
    return model


def is_adapter_parameter(model: nn.Module, name: str, kwargs: dict[str, Any]) -> bool:
    """PEFT's ``model.prefix in name or "modules_to_save" in name``."""
    saved = tuple(f"{m}." for m in kwargs.get("modules_to_save", ()))
    return "lora_" in name or name.startswith(saved)


def train_steps(
    model: nn.Module, optimizer: torch.optim.Optimizer, loss_of: Callable[[Tensor], Tensor]
) -> None:
    for _ in range(3):  # at least 3 steps: B starts at zero, A gets a gradient from step 2
        optimizer.zero_grad()
        loss_of(model(inputs())).backward()
        optimizer.step()


def nll(y_pred: Tensor) -> Tensor:
    return nn.functional.nll_loss(y_pred, torch.arange(len(y_pred)) % 2)


PARAMS = ("test_name", "model_id", "config_kwargs")


# --- adapter names, saving and loading ------------------------------------------------------
@pytest.mark.parametrize(PARAMS, cases_with())
def test_adapter_name(test_name: str, model_id: str, config_kwargs: dict[str, Any]) -> None:
    model = adapted(model_id, config_kwargs, adapter_name="test-adapter")
    assert any("test-adapter" in n for n, _ in model.named_parameters())


@pytest.mark.parametrize(PARAMS, cases_with())
def test_save_pretrained(
    test_name: str, model_id: str, config_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    model = adapted(model_id, config_kwargs, init_weights=False)
    path = save_lora(model, tmp_path / "adapter_model.safetensors")
    loaded = load_lora(base_model(model_id), path)
    state, state_loaded = model.state_dict(), loaded.state_dict()
    assert state.keys() == state_loaded.keys()
    for key, value in state.items():
        assert torch.allclose(value, state_loaded[key])
    assert path.is_file()
    assert not (tmp_path / "model.safetensors").exists()  # only the adapter is written
    assert not (tmp_path / "config.json").exists()


@pytest.mark.parametrize(PARAMS, cases_with())
@xfail(
    "intended difference: adapters are written as safetensors only (no pickle .bin; "
    "save_lora has no safe_serialization)",
    raises=TypeError,
)
def test_save_pretrained_pickle(
    test_name: str, model_id: str, config_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    model = adapted(model_id, config_kwargs, init_weights=False)
    path = save_lora(model, tmp_path / "adapter_model.bin", safe_serialization=False)  # type: ignore[call-arg]
    assert path.is_file()


@pytest.mark.parametrize(PARAMS, cases_with())
def test_save_pretrained_adapter_name_substring(
    test_name: str, model_id: str, config_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    model = adapted(model_id, config_kwargs, init_weights=False)
    expected = len(lora_state_dict(model))
    others = config_for(config_kwargs, also=())
    for name in ("default2", "other_default", "foodefault_bar", "efaul"):
        apply_lora(model, others, adapter_name=name)
    path = save_lora(model, tmp_path / "adapter.safetensors", adapter_name="default")
    assert len(load_file(str(path))) == expected


SECOND_ALSO = xfail(
    "intended difference: also (modules_to_save) modules exist once in the model, so a "
    "second adapter may not list them (apply_lora raises GeofmError); PEFT keeps one copy "
    "per adapter",
    raises=GeofmError,
)


@pytest.mark.parametrize(PARAMS, cases_with(**{"Vanilla MLP 5 LoRA": SECOND_ALSO}))
def test_load_multiple_adapters(
    test_name: str, model_id: str, config_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    path = save_lora(adapted(model_id, config_kwargs), tmp_path / "adapter.safetensors")
    model = load_lora(base_model(model_id), path)
    load_lora(model, path, adapter_name="other")  # raises on a missing or unexpected key
    load_lora(model, path, adapter_name="yet-another")
    assert list_adapters(model) == ["default", "other", "yet-another"]


# --- merging ---------------------------------------------------------------------------------
def _tolerance(model_id: str, *, conv: float, other: float) -> dict[str, float]:
    """Upstream's atol = rtol, wider for the Conv models."""
    value = conv if model_id in CONV_IDS else other
    return {"atol": value, "rtol": value}


def _merge_tolerance(model_id: str) -> dict[str, float]:
    return {"atol": 0.3, "rtol": 0.01} if model_id in CONV_IDS else {"atol": 1e-4, "rtol": 1e-4}


@pytest.mark.parametrize(PARAMS, cases_with())
def test_merge_layers(test_name: str, model_id: str, config_kwargs: dict[str, Any]) -> None:
    model = adapted(model_id, config_kwargs, init_weights=False).eval()
    x = inputs()
    logits = model(x)[0]
    merge_lora(model)
    logits_merged = model(x)[0]
    unmerge_lora(model)
    logits_unmerged = model(x)[0]
    model = merge_and_unload(model)
    assert not lora_layers(model)  # the LoRA wrappers are gone
    logits_merged_unloaded = model(x)[0]

    tolerance = _merge_tolerance(model_id)
    assert torch.allclose(logits, logits_merged, **tolerance)
    assert torch.allclose(logits, logits_unmerged, **tolerance)
    assert torch.allclose(logits, logits_merged_unloaded, **tolerance)
    # B is not zero, so the adapter changes the output
    logits_base = base_model(model_id)(x)[0]
    assert not torch.allclose(logits_merged, logits_base, atol=1e-10, rtol=1e-10)
    # a plain nn.Module survives pickling with the same outputs
    from_pickle = pickle.loads(pickle.dumps(model))
    assert torch.allclose(logits_merged, from_pickle(x)[0], **tolerance)


@pytest.mark.parametrize(PARAMS, cases_with())
def test_merge_layers_fp16(test_name: str, model_id: str, config_kwargs: dict[str, Any]) -> None:
    model = apply_lora(base_model(model_id, torch.float16), config_for(config_kwargs))
    randomize_b(model)
    model = model.to(dtype=torch.float16).eval()
    merge_and_unload(model)  # this should simply work


@pytest.mark.parametrize(PARAMS, cases_with())
@xfail(
    "intended difference: a second merge_lora raises GeofmError ('already merged'); PEFT "
    "warns 'All adapters are already merged, nothing to do' and does nothing",
    raises=GeofmError,
)
def test_merge_layers_is_idempotent(
    test_name: str, model_id: str, config_kwargs: dict[str, Any]
) -> None:
    model = adapted(model_id, config_kwargs, init_weights=False).eval()
    merge_lora(model)
    logits_0 = model(inputs())[0]
    with warnings.catch_warnings(record=True) as caught:  # pytest.warns would mask the error
        warnings.simplefilter("always")
        merge_lora(model)
    assert any("already merged" in str(w.message) for w in caught)
    assert torch.allclose(logits_0, model(inputs())[0], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize(PARAMS, cases_with())
def test_safe_merge(
    test_name: str, model_id: str, config_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    base = base_model(model_id).eval()
    logits_base = base(inputs())[0]
    model = apply_lora(base, config_for(config_kwargs)).eval()
    randomize_b(model)
    logits_adapted = model(inputs())[0]
    tolerance = _tolerance(model_id, conv=1e-3, other=1e-6)
    assert not torch.allclose(logits_base, logits_adapted, atol=1e-6, rtol=1e-6)
    unloaded = merge_and_unload(model)  # safe merge is always on
    assert torch.allclose(logits_adapted, unloaded(inputs())[0], **tolerance)
    # the merged weights serialise (they must be contiguous for safetensors)
    torch.save(unloaded.state_dict(), tmp_path / "model.bin")
    save_file(unloaded.state_dict(), str(tmp_path / "model.safetensors"))


@pytest.mark.parametrize(PARAMS, cases_with())
def test_merge_layers_nan(test_name: str, model_id: str, config_kwargs: dict[str, Any]) -> None:
    model = apply_lora(base_model(model_id), config_for(config_kwargs)).eval()
    logits_unmerged = model(inputs())[0]
    model = merge_and_unload(model)
    assert torch.allclose(logits_unmerged, model(inputs())[0], atol=1e-3, rtol=1e-3)

    model = apply_lora(base_model(model_id), config_for(config_kwargs))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_" in name:
                parameter.data[0] = torch.nan
    base_before = {k: v.clone() for k, v in model.state_dict().items() if "lora_" not in k}
    # upstream matches PEFT's "NaNs detected in the merged weights" message
    with pytest.raises(ValueError, match="holds NaN/inf"):
        merge_and_unload(model)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_A" in name or "lora_B" in name:
                parameter.data[0] = torch.inf
    with pytest.raises(ValueError, match="holds NaN/inf"):
        merge_and_unload(model)
    # ADDED: nothing was written (geofm checks every merged weight before writing any)
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in base_before.items())
    assert lora_layers(model)


# --- training and inference --------------------------------------------------------------
@pytest.mark.parametrize(PARAMS, cases_with())
def test_training_custom_models(
    test_name: str, model_id: str, config_kwargs: dict[str, Any]
) -> None:
    model = adapted(model_id, config_kwargs)
    model(inputs())[0].sum().backward()
    for name, parameter in model.named_parameters():
        if is_adapter_parameter(model, name, config_kwargs):
            assert parameter.grad is not None
        else:
            assert parameter.grad is None


@pytest.mark.parametrize(PARAMS, cases_with())
def test_inference_safetensors(
    test_name: str, model_id: str, config_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    model = adapted(model_id, config_kwargs)
    model(inputs())[0].sum().backward()
    model.eval()
    logits = model(inputs())[0][0]
    path = save_lora(model, tmp_path / "adapter_model.safetensors")
    assert [p.name for p in tmp_path.iterdir()] == ["adapter_model.safetensors"]
    loaded = load_lora(base_model(model_id), path).eval()
    assert torch.allclose(logits, loaded(inputs())[0][0], atol=1e-4, rtol=1e-4)


CONV_FEATURES = xfail(
    "intended difference: LoRAConv2d exposes torch.nn.Conv2d's in_channels / out_channels; "
    "PEFT's conv LoRA layers also expose in_features / out_features"
)


@pytest.mark.parametrize(
    PARAMS,
    cases_with(**{name: CONV_FEATURES for name, model_id, _ in CASES if model_id in CONV_IDS}),
)
def test_in_features_out_features_exposed(
    test_name: str, model_id: str, config_kwargs: dict[str, Any]
) -> None:
    for layer in lora_layers(adapted(model_id, config_kwargs)):
        assert hasattr(layer, "in_features")
        assert hasattr(layer, "out_features")


@pytest.mark.parametrize(PARAMS, cases_with())
def test_forward_output_finite(
    test_name: str, model_id: str, config_kwargs: dict[str, Any]
) -> None:
    model = adapted(model_id, config_kwargs).eval()
    with torch.no_grad():
        assert torch.isfinite(model(inputs())).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize(PARAMS, cases_with())
def test_forward_half_precision(
    test_name: str, model_id: str, config_kwargs: dict[str, Any], dtype: torch.dtype
) -> None:
    model = apply_lora(base_model(model_id, dtype), config_for(config_kwargs)).eval()
    x = inputs()
    model(x)  # none of this raises
    merge_lora(model)
    model(x)
    unmerge_lora(model)
    model(x)
    merge_lora(model)  # upstream merges once unsafe and once safe: geofm's merge is always safe
    model(x)
    unmerge_lora(model)
    model(x)
    merge_and_unload(model)(x)


@pytest.mark.parametrize(PARAMS, cases_with())
def test_only_params_are_updated(
    test_name: str, model_id: str, config_kwargs: dict[str, Any]
) -> None:
    model = adapted(model_id, config_kwargs)
    before = copy.deepcopy(model)
    model.train()
    train_steps(model, torch.optim.SGD(model.parameters(), lr=0.5), lambda y: y.sum())
    params_before = dict(before.named_parameters())
    params_after = dict(model.named_parameters())
    assert params_before.keys() == params_after.keys()
    tol = 1e-4
    for name, old in params_before.items():
        new = params_after[name]
        if is_adapter_parameter(model, name, config_kwargs):
            assert not torch.allclose(old, new, atol=tol, rtol=tol), name
        else:
            assert torch.allclose(old, new, atol=tol, rtol=tol), name


@pytest.mark.parametrize(PARAMS, cases_with())
def test_save_load_roundtrip(
    test_name: str, model_id: str, config_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    x = inputs()
    with torch.inference_mode():
        output_base = base_model(model_id)(x)
    torch.manual_seed(0)
    model = adapted(model_id, config_kwargs, init_weights=False).eval()
    with torch.inference_mode():
        output_before = model(x)
    assert not torch.allclose(output_base, output_before, atol=1e-5, rtol=1e-5)
    path = save_lora(model, tmp_path / "adapter.safetensors")
    base = base_model(model_id)
    torch.manual_seed(54321)  # another seed than the one the adapter was built with
    loaded = load_lora(base, path).eval()
    with torch.inference_mode():
        assert torch.allclose(output_before, loaded(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(PARAMS, cases_with())
def test_parameters_after_loading_model(
    test_name: str, model_id: str, config_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    model = adapted(model_id, config_kwargs)
    model.train()
    train_steps(model, torch.optim.SGD(model.parameters(), lr=0.5), lambda y: y.sum())
    before = model.state_dict()
    path = save_lora(model, tmp_path / "adapter.safetensors")
    after = load_lora(base_model(model_id), path).state_dict()
    assert before.keys() == after.keys()
    for name, value in before.items():
        assert torch.allclose(value, after[name], atol=1e-4, rtol=1e-4), name


# --- disabling, switching and deleting adapters --------------------------------------------
ALSO_TRAINED_IN_PLACE = xfail(
    "intended difference: geofm trains the also (modules_to_save) module in place, so "
    "disable_adapters turns off the LoRA layers but keeps the trained lin1; PEFT swaps back "
    "its frozen original copy"
)


@pytest.mark.parametrize(PARAMS, cases_with(**{"Vanilla MLP 5 LoRA": ALSO_TRAINED_IN_PLACE}))
def test_disable_adapters(test_name: str, model_id: str, config_kwargs: dict[str, Any]) -> None:
    x = inputs()
    outputs_base = base_model(model_id).eval()(x)
    model = adapted(model_id, config_kwargs).eval()
    outputs_before = model(x)
    assert torch.allclose(outputs_base, outputs_before)
    model.train()
    train_steps(model, torch.optim.SGD(model.parameters(), lr=0.01), nll)
    model.eval()
    outputs_after = model(x)
    with disable_adapters(model):
        outputs_disabled = model(x)
    outputs_enabled_after_disable = model(x)  # enabled again after the block
    assert not torch.allclose(outputs_before, outputs_after, rtol=1e-8, atol=1e-8)
    assert torch.allclose(outputs_before, outputs_disabled)
    assert torch.allclose(outputs_after, outputs_enabled_after_disable)


@pytest.mark.parametrize(PARAMS, cases_with())
@xfail(
    "intended difference: disable_adapters refuses a merged model (GeofmError: the adapter "
    "is part of the base weights; unmerge first); PEFT unmerges inside the block",
    raises=GeofmError,
)
def test_disable_adapters_with_merging(
    test_name: str, model_id: str, config_kwargs: dict[str, Any]
) -> None:
    x = inputs()
    model = adapted(model_id, config_kwargs).eval()
    outputs_before = model(x)
    model.train()
    train_steps(model, torch.optim.Adam(model.parameters(), lr=0.01), nll)
    model.eval()
    outputs_unmerged = model(x)
    merge_lora(model)
    outputs_after = model(x)
    with disable_adapters(model):
        outputs_disabled = model(x)
    outputs_enabled_after_disable = model(x)
    tolerance = _tolerance(model_id, conv=1e-3, other=1e-5)
    assert not torch.allclose(outputs_before, outputs_after, **tolerance)
    assert torch.allclose(outputs_after, outputs_unmerged, **tolerance)
    assert torch.allclose(outputs_before, outputs_disabled, **tolerance)
    assert torch.allclose(outputs_after, outputs_enabled_after_disable, **tolerance)


@pytest.mark.parametrize(PARAMS, cases_with())
def test_disable_adapters_exiting_context_restores_previous_state(
    test_name: str, model_id: str, config_kwargs: dict[str, Any]
) -> None:
    model = adapted(model_id, config_kwargs)
    layers = lora_layers(model)
    assert all(not layer.adapters_disabled for layer in layers)
    with disable_adapters(model):
        pass
    assert all(not layer.adapters_disabled for layer in layers)
    with disable_adapters(model):  # upstream: model.disable_adapter_layers()
        assert all(layer.adapters_disabled for layer in layers)
        with disable_adapters(model):
            pass
        assert all(layer.adapters_disabled for layer in layers)


@pytest.mark.parametrize(PARAMS, cases_with())
def test_active_adapter(test_name: str, model_id: str, config_kwargs: dict[str, Any]) -> None:
    if config_kwargs.get("modules_to_save"):
        pytest.skip("upstream skips: multiple adapters with modules_to_save")
    model = adapted(model_id, config_kwargs)
    assert get_active_adapter(model) == "default"
    apply_lora(model, config_for(config_kwargs), adapter_name="other")
    assert get_active_adapter(model) == "default"  # a new adapter is not active
    set_adapter(model, "other")
    assert get_active_adapter(model) == "other"


@xfail(
    "missing feature: one active adapter at a time; set_adapter takes one name "
    "(UnknownNameError for a list), PEFT's base_model.set_adapter takes several",
    raises=UnknownNameError,
)
def test_active_adapter_several_active() -> None:
    _, model_id, config_kwargs = CASES[0]
    model = adapted(model_id, config_kwargs)
    apply_lora(model, config_for(config_kwargs), adapter_name="other")
    set_adapter(model, ["default", "other"])  # type: ignore[arg-type]
    assert get_active_adapter(model) == ["default", "other"]


def _assert_deleted(model: nn.Module, name: str) -> None:
    assert name not in list_adapters(model)
    assert not any(name in n for n, _ in model.named_parameters())
    assert not any(name in n for n in model.state_dict())


@pytest.mark.parametrize("activate", [True, False], ids=["delete_adapter", "delete_inactive"])
@pytest.mark.parametrize(PARAMS, cases_with())
def test_delete_adapter(
    test_name: str, model_id: str, config_kwargs: dict[str, Any], activate: bool
) -> None:
    model = adapted(model_id, config_kwargs)
    apply_lora(model, config_for(config_kwargs, also=()), adapter_name="delete_me")
    if activate:
        set_adapter(model, "delete_me")
    delete_adapter(model, "delete_me")
    _assert_deleted(model, "delete_me")
    assert get_active_adapter(model) == "default"
    # the last remaining adapter can be deleted too; the base model still runs
    delete_adapter(model, "default")
    assert list_adapters(model) == []
    assert get_active_adapter(model) is None
    model(inputs())


@pytest.mark.parametrize(PARAMS, cases_with())
@xfail(
    "intended difference: an unknown adapter name raises UnknownNameError (a LookupError, "
    "with the known names); PEFT raises ValueError",
    raises=UnknownNameError,
)
def test_delete_unknown_adapter_raises(
    test_name: str, model_id: str, config_kwargs: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match="unknown-adapter"):
        delete_adapter(adapted(model_id, config_kwargs), "unknown-adapter")


@pytest.mark.parametrize(PARAMS, cases_with())
def test_added_delete_unknown_adapter_raises_lookup_error(
    test_name: str, model_id: str, config_kwargs: dict[str, Any]
) -> None:
    with pytest.raises(LookupError, match="unknown-adapter"):
        delete_adapter(adapted(model_id, config_kwargs), "unknown-adapter")


@pytest.mark.parametrize(PARAMS, cases_with())
@xfail(
    "intended difference: deleting a merged adapter raises GeofmError (not a ValueError); "
    "test_added_delete_merged_adapter_leaves_model_untouched checks the rest",
    raises=GeofmError,
)
def test_delete_merged_adapter_raises_without_mutation(
    test_name: str, model_id: str, config_kwargs: dict[str, Any]
) -> None:
    model = adapted(model_id, config_kwargs, init_weights=False)
    merge_lora(model)
    with pytest.raises(ValueError, match="merged"):
        delete_adapter(model, "default")


@pytest.mark.parametrize(PARAMS, cases_with())
def test_added_delete_merged_adapter_leaves_model_untouched(
    test_name: str, model_id: str, config_kwargs: dict[str, Any]
) -> None:
    model = adapted(model_id, config_kwargs, init_weights=False)
    layers = lora_layers(model)
    merge_lora(model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(GeofmError, match="merged"):
        delete_adapter(model, "default")
    assert list_adapters(model) == ["default"]
    assert all(layer.merged for layer in layers)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    unmerge_lora(model)  # after unmerging, the same deletion goes through
    delete_adapter(model, "default")
    assert list_adapters(model) == []


@pytest.mark.parametrize(PARAMS, cases_with())
def test_unload_adapter(test_name: str, model_id: str, config_kwargs: dict[str, Any]) -> None:
    # transformers' from_pretrained returns a model in eval mode; the MLP's dropout needs it
    base = base_model(model_id).eval()
    num_params_base = len(base.state_dict())
    with torch.inference_mode():
        logits_base = base(inputs())[0]
    model = adapted(model_id, config_kwargs, init_weights=False).eval()
    with torch.inference_mode():
        logits_with_adapter = model(inputs())[0]
    model = unload(model)
    with torch.inference_mode():
        logits_unload = model(inputs())[0]
    assert not lora_layers(model)
    assert not torch.allclose(logits_with_adapter, logits_unload, atol=1e-10, rtol=1e-10)
    assert torch.allclose(logits_base, logits_unload, atol=1e-4, rtol=1e-4)
    assert len(model.state_dict()) == num_params_base


# --- missing LoRA variants of the same upstream rows ---------------------------------------
@pytest.mark.parametrize(
    ("test_name", "option"),
    [
        ("Vanilla MLP 7 LoRA with DoRA", {"use_dora": True}),
        ("Vanilla MLP 8 LoRA with DoRA", {"use_dora": True}),
        ("Conv2d 1 LoRA with DoRA", {"use_dora": True}),
        ("Conv2d 2 LoRA with DoRA", {"use_dora": True}),
        ("Conv2d Groups LoRA with DoRA", {"use_dora": True}),
        ("Conv2d Groups2 LoRA with DoRA", {"use_dora": True}),
        ("Vanilla MLP 1 LoRA with lora_b bias", {"lora_bias": True}),
        ("Conv2d 1 LoRA with lora_b bias", {"lora_bias": True}),
    ],
)
@xfail(
    "missing feature: LoRAConfig has no DoRA (use_dora) and no trained lora_B bias "
    "(lora_bias); from_peft refuses such adapters",
    raises=TypeError,
)
def test_lora_variant_rows(test_name: str, option: dict[str, bool]) -> None:
    LoRAConfig(rank=8, alpha=8.0, targets=("lin0",), **option)


# --- ADDED: the adapter files through the installed PEFT, both ways ------------------------
def _peft_config(kwargs: dict[str, Any]) -> Any:
    return peft.LoraConfig(**{"r": 8, "lora_alpha": 8, **kwargs})


@pytest.mark.filterwarnings("ignore:LoRA adapter added to ConvNd layer with groups")
@pytest.mark.parametrize(PARAMS, cases_with())
def test_added_to_peft_loads_in_peft(
    test_name: str, model_id: str, config_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    model = adapted(model_id, config_kwargs, init_weights=False).eval()
    folder = to_peft(model, tmp_path / "adapter")
    theirs = peft.PeftModel.from_pretrained(base_model(model_id), folder).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(inputs()), theirs(inputs()), rtol=1e-5, atol=1e-5)


PEFT_CROSS_GROUP = xfail(
    "intended difference: PEFT's lora_A of a grouped conv reads every input channel; a "
    "trained (random) PEFT adapter has weights across groups, which a grouped convolution "
    "cannot hold, so from_peft raises GeofmError (PEFT cannot merge it either)",
    raises=GeofmError,
)


@pytest.mark.filterwarnings("ignore:LoRA adapter added to ConvNd layer with groups")
@pytest.mark.parametrize(
    PARAMS,
    cases_with(**{"Conv2d Groups LoRA": PEFT_CROSS_GROUP, "Conv2d Groups2 LoRA": PEFT_CROSS_GROUP}),
)
def test_added_peft_adapter_loads_through_from_peft(
    test_name: str, model_id: str, config_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    torch.manual_seed(2)
    theirs = peft.get_peft_model(
        base_model(model_id), _peft_config({**config_kwargs, "init_lora_weights": False})
    ).eval()
    theirs.save_pretrained(tmp_path / "adapter")
    ours = from_peft(base_model(model_id), tmp_path / "adapter").eval()
    with torch.no_grad():
        torch.testing.assert_close(ours(inputs()), theirs(inputs()), rtol=1e-5, atol=1e-5)


def test_added_timm_adapter_loads_into_geofm_backbone(tmp_path: Path) -> None:
    # A PEFT adapter trained on a plain timm ViT loads into the geofm backbone that wraps the
    # same ViT as ``model.`` (from_peft detects the prefix; ecosystem review C2).
    backbone = geofm.create_backbone("vit_small_patch16", depth=1).eval()
    plain = timm.create_model(
        "vit_small_patch16_224", pretrained=False, num_classes=0, depth=1, dynamic_img_size=True
    )
    plain.load_state_dict(backbone.model.state_dict())
    torch.manual_seed(3)
    theirs = peft.get_peft_model(
        plain, _peft_config({"target_modules": ["qkv"], "init_lora_weights": False})
    ).eval()
    theirs.save_pretrained(tmp_path / "adapter")
    from_peft(backbone, tmp_path / "adapter")
    assert isinstance(backbone.model.blocks[0].attn.qkv, LoRALinear)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(backbone.model(x), theirs(x), rtol=1e-5, atol=1e-5)
