"""lora_state_dict / save_lora / load_lora round trips and errors."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from geofm.errors import GeofmError, WeightsError
from geofm.lora import (
    LoRAConfig,
    apply_lora,
    list_adapters,
    load_lora,
    lora_state_dict,
    merge_lora,
    save_lora,
)

Factory = Callable[..., Any]
Randomize = Callable[[nn.Module], None]
CONFIG = LoRAConfig(rank=2, alpha=4.0, targets=("qkv", "patch_embed.proj"), also=("head",))


def _trained(tiny_vit: Factory, randomize: Randomize) -> tuple[nn.Module, nn.Module]:
    base = tiny_vit()
    model = apply_lora(copy.deepcopy(base), CONFIG)
    randomize(model)
    with torch.no_grad():
        model.head.weight.add_(1.0)
    return base, model


def test_lora_state_dict_holds_adapters_and_also(tiny_vit: Factory) -> None:
    model = apply_lora(tiny_vit(), CONFIG)
    keys = list(lora_state_dict(model))
    lora = [f"blocks.{i}.attn.qkv.lora_{ab}.weight" for i in range(2) for ab in "AB"]
    assert set(keys) == {"patch_embed.proj.lora_A.weight", "patch_embed.proj.lora_B.weight",
                         *lora, "head.weight", "head.bias"}  # fmt: skip
    assert "head.weight" not in lora_state_dict(model, also=())


def test_save_load_round_trip(tmp_path: Path, tiny_vit: Factory, randomize: Randomize) -> None:
    base, model = _trained(tiny_vit, randomize)
    path = save_lora(model, tmp_path / "sub" / "adapter.safetensors")
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    assert LoRAConfig.from_json(metadata["geofm.lora.config"]) == CONFIG
    fresh = load_lora(copy.deepcopy(base), path)  # plain base: config applied from the file
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(fresh(x), model(x))
    again = load_lora(apply_lora(copy.deepcopy(base), CONFIG), path)  # already adapted
    with torch.no_grad():
        assert torch.equal(again(x), model(x))


def test_load_rejects_other_config_and_merged_models(
    tmp_path: Path, tiny_vit: Factory, randomize: Randomize
) -> None:
    base, model = _trained(tiny_vit, randomize)
    path = save_lora(model, tmp_path / "a.safetensors")
    other = apply_lora(copy.deepcopy(base), LoRAConfig(rank=4, targets=("qkv",)))
    with pytest.raises(GeofmError, match="rank: model 4 vs file 2"):
        load_lora(other, path)
    merged = merge_lora(apply_lora(copy.deepcopy(base), CONFIG))
    with pytest.raises(GeofmError, match="merged model"):
        load_lora(merged, path)


def test_load_rejects_other_architecture(
    tmp_path: Path, tiny_vit: Factory, randomize: Randomize
) -> None:
    _, model = _trained(tiny_vit, randomize)
    path = save_lora(model, tmp_path / "a.safetensors")
    with pytest.raises(WeightsError, match=r"missing 2 \[blocks.2.attn.qkv.lora_A.weight"):
        load_lora(tiny_vit(depth=3), path)
    with pytest.raises(
        WeightsError, match=r"another shape .*head.weight: file \(3, 192\), model \(5, 192\)"
    ):
        load_lora(tiny_vit(num_classes=5), path)


def test_load_rejects_dtype_mismatch(
    tmp_path: Path, tiny_vit: Factory, randomize: Randomize
) -> None:
    base, model = _trained(tiny_vit, randomize)
    path = save_lora(model, tmp_path / "a.safetensors")
    with pytest.raises(
        WeightsError, match="another dtype .*: file torch.float32, model torch.float64"
    ):
        load_lora(copy.deepcopy(base).double(), path)


def test_load_rejects_foreign_file(tmp_path: Path, tiny_vit: Factory) -> None:
    path = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(1)}, str(path))
    with pytest.raises(WeightsError, match="is not a geofm LoRA file"):
        load_lora(tiny_vit(), path)


def test_save_needs_apply_lora(tmp_path: Path, tiny_vit: Factory) -> None:
    with pytest.raises(GeofmError, match="has no LoRA config"):
        save_lora(tiny_vit(), tmp_path / "a.safetensors")


def test_failed_load_injects_nothing(
    tmp_path: Path, tiny_vit: Factory, randomize: Randomize
) -> None:
    _, model = _trained(tiny_vit, randomize)
    path = save_lora(model, tmp_path / "a.safetensors")
    for target in (tiny_vit(num_classes=5), tiny_vit(depth=3), tiny_vit().double()):
        modules = list(target.modules())
        state = {k: v.clone() for k, v in target.state_dict().items()}
        with pytest.raises(WeightsError):
            load_lora(target, path)
        assert list(target.modules()) == modules  # the same plain modules, no wrapper left
        assert list_adapters(target) == []
        for key, value in target.state_dict().items():
            assert torch.equal(value, state[key]), key


def test_unreadable_paths_name_the_file(tmp_path: Path, tiny_vit: Factory) -> None:
    model = apply_lora(tiny_vit(), CONFIG)
    good = save_lora(model, tmp_path / "good.safetensors")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    cases = [
        (tmp_path, "is a directory"),
        (tmp_path / "missing.safetensors", "not found"),
        (truncated, "cannot be read as safetensors .*truncated or corrupt"),
    ]
    for path, reason in cases:
        target = tiny_vit()
        with pytest.raises(WeightsError, match=rf"LoRA adapter file {path} {reason}"):
            load_lora(target, path)
        assert list_adapters(target) == []


@pytest.mark.parametrize("writer", ["save_lora", "to_peft"])
def test_adapter_files_are_replaced_atomically_with_umask_permissions(
    writer: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    import safetensors.torch

    from geofm.lora import to_peft

    model = apply_lora(nn.Sequential(nn.Linear(4, 4)), LoRAConfig(rank=2, targets=("0",)))
    target = tmp_path / ("adapter.safetensors" if writer == "save_lora" else "peft")
    weights = target if writer == "save_lora" else target / "adapter_model.safetensors"

    def write() -> None:
        if writer == "save_lora":
            save_lora(model, target)
        else:
            to_peft(model, target)

    old_umask = os.umask(0o022)
    try:
        write()
    finally:
        os.umask(old_umask)
    files = [weights] if writer == "save_lora" else sorted(target.iterdir())
    assert all(f.stat().st_mode & 0o777 == 0o644 for f in files)  # not mkstemp's 0o600
    before = {f: f.read_bytes() for f in files}

    def crash(tensors: dict[str, torch.Tensor], filename: str, **_: Any) -> None:
        Path(filename).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        write()
    assert {f: f.read_bytes() for f in files} == before  # the previous adapter survives
    leftovers = [p.name for p in weights.parent.iterdir() if p not in before]
    assert leftovers == []  # no partial file, no temporary file
