"""Tests of geofm.weights.load written against the mutants that test_load.py let survive.

Each test pins a behaviour that a plausible wrong version of the loader would
change: the exact error texts (the fix they name), the report's source and
notes, the sha256 of a whole file against hashlib, the summary's cut-off at
exactly ``max_keys``, the container search order and the model's
``adapt_state_dict`` hook (see reports/mutation.md, ``weights-load``).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from geofm.errors import WeightsError
from geofm.weights import load as load_module
from geofm.weights.load import (
    LoadReport,
    file_sha256,
    load_state_dict_into,
    load_weights,
    read_state_dict,
)

FIX_STRICT = (
    "\nPass strict=False (to load_weights / load_state_dict_into; create_backbone loads "
    "strictly: build it with pretrained=False, then call load_weights) to load the matching "
    "keys anyway, or convert the checkpoint to this model's layout and dtypes."
)


def linear_state(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {"weight": torch.randn(3, 2, generator=gen), "bias": torch.randn(3, generator=gen)}


def test_file_sha256_equals_hashlib_over_a_file_larger_than_one_chunk(tmp_path: Path) -> None:
    data = bytes(range(256)) * 5000 + b"tail"  # 1.28 MB: more than one 1 MiB chunk
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()
    small = tmp_path / "small.bin"
    small.write_bytes(b"geofm")
    assert file_sha256(small) == hashlib.sha256(b"geofm").hexdigest()


def test_sha256_mismatch_message_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "w.bin"
    path.write_bytes(b"payload")
    real = hashlib.sha256(b"payload").hexdigest()
    wrong = ("0" if real[5] != "0" else "1").join((real[:5], real[6:]))
    with pytest.raises(WeightsError) as info:
        load_module.verify_sha256(path, wrong.upper())
    assert str(info.value) == (
        f"sha256 mismatch for {path}: expected {wrong}, got {real}. "
        "The file is corrupt or not the published one; delete it and fetch it again."
    )


def test_flat_pickled_state_dict_keeps_its_keys_and_values(tmp_path: Path) -> None:
    state = linear_state()
    torch.save(state, tmp_path / "flat.pt")
    notes: list[str] = []
    got = read_state_dict(tmp_path / "flat.pt", notes=notes)
    assert list(got) == ["weight", "bias"] and notes == []
    for key, value in state.items():
        assert torch.equal(got[key], value)


@pytest.mark.parametrize(
    ("payload", "key"),
    [
        ({"model": "M", "epoch": 1}, "model"),  # first container key absent
        ({"state_dict": {}, "model": "M"}, "model"),  # empty container skipped
        ({"state_dict": {"lr": 0.1}, "teacher": "M"}, "teacher"),  # non-tensor container skipped
    ],
)
def test_container_search_skips_absent_empty_and_non_tensor_entries(
    tmp_path: Path, payload: dict[str, Any], key: str
) -> None:
    state = linear_state()
    payload = {k: (state if v == "M" else v) for k, v in payload.items()}
    torch.save(payload, tmp_path / "ckpt.pt")
    # Without notes: the default sink must accept the unwrapping note.
    got = read_state_dict(tmp_path / "ckpt.pt")
    assert list(got) == ["weight", "bias"] and torch.equal(got["weight"], state["weight"])
    notes: list[str] = []
    read_state_dict(tmp_path / "ckpt.pt", notes=notes)
    assert notes == [f"took the state dict stored under {key!r}"]


def test_non_state_dict_message_names_file_type_and_first_eight_keys(tmp_path: Path) -> None:
    path = tmp_path / "meta.pt"
    torch.save({f"k{i}": i for i in range(10)}, path)
    with pytest.raises(WeightsError) as info:
        read_state_dict(path)
    keys = [f"k{i}" for i in range(8)]
    assert str(info.value) == (
        f"{path} holds a dict that is not a state dict (top-level keys: {keys}). Expected a"
        " mapping of names to tensors, or one under one of"
        " ['state_dict', 'model', 'module', 'teacher', 'student']."
    )
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(
        WeightsError,
        match=re.escape("list.pt holds a list that is not a state dict (top-level keys: [])."),
    ):
        read_state_dict(tmp_path / "list.pt")


def test_empty_container_alone_is_not_a_state_dict(tmp_path: Path) -> None:
    torch.save({"state_dict": {}}, tmp_path / "empty.pt")
    with pytest.raises(WeightsError, match="not a state dict"):
        read_state_dict(tmp_path / "empty.pt")


def test_pickles_are_read_with_weights_only_onto_the_cpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The safety rule must not rest on torch's default for weights_only (False before 2.6).
    torch.save(linear_state(), tmp_path / "w.pt")
    calls: list[dict[str, Any]] = []
    real_load = torch.load

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    read_state_dict(tmp_path / "w.pt")
    assert calls == [{"map_location": "cpu", "weights_only": True}]


def test_refused_pickle_message_names_the_error_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "w.pt"
    torch.save(linear_state(), path)

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("first line\nsecond line")

    monkeypatch.setattr(torch, "load", fail)
    with pytest.raises(WeightsError) as info:
        read_state_dict(path)
    assert str(info.value) == (
        f"Refused to load {path}: it cannot be read with torch.load(weights_only=True) "
        "(RuntimeError: first line). geofm never unpickles arbitrary objects. Convert the file"
        " to safetensors in a trusted environment."
    )

    def fail_silently(*args: Any, **kwargs: Any) -> Any:
        raise EOFError

    monkeypatch.setattr(torch, "load", fail_silently)
    with pytest.raises(WeightsError, match=re.escape("weights_only=True) (EOFError: ). geofm")):
        read_state_dict(path)


def test_truncated_safetensors_message_ends_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_file(linear_state(), str(path))
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(WeightsError) as info:
        read_state_dict(path)
    message = str(info.value)
    assert message.startswith(f"Cannot read {path} as safetensors (")
    assert message.endswith("). The file is truncated or corrupt; fetch it again.")


def test_unknown_suffix_message_lists_every_format(tmp_path: Path) -> None:
    path = tmp_path / "w.npz"
    path.write_bytes(b"x")
    with pytest.raises(ValueError, match="Unknown checkpoint format") as info:
        read_state_dict(path)
    assert str(info.value) == (
        f"Unknown checkpoint format '.npz' for {path}. Expected .safetensors, .pt, .pth, .bin,"
        " .ckpt."
    )


def test_strict_failure_message_is_the_summary_between_the_lead_and_the_fix() -> None:
    state = linear_state()
    state.pop("bias")
    report = load_state_dict_into(nn.Linear(2, 3), state, strict=False, source="ckpt")
    with pytest.raises(WeightsError) as info:
        load_state_dict_into(nn.Linear(2, 3), state, source="ckpt")
    assert str(info.value) == "Strict loading failed. " + report.summary() + FIX_STRICT


def test_report_source_defaults_and_a_given_report_keeps_its_source() -> None:
    assert load_state_dict_into(nn.Linear(2, 3), linear_state()).source == "state dict"
    kept = LoadReport(source="from/file.pt")
    assert load_state_dict_into(nn.Linear(2, 3), linear_state(), report=kept, source="x") is kept
    assert kept.source == "from/file.pt"
    blank = LoadReport()
    load_state_dict_into(nn.Linear(2, 3), linear_state(), report=blank, source="given")
    assert blank.source == "given"


def test_converter_sees_the_report_with_its_source(tmp_path: Path) -> None:
    seen: list[str] = []

    def record(state: dict[str, torch.Tensor], report: LoadReport) -> dict[str, torch.Tensor]:
        seen.append(report.source)
        return state

    assert load_weights(nn.Linear(2, 3), linear_state(), converter=record).source == "state dict"
    path = tmp_path / "w.safetensors"
    save_file(linear_state(), str(path))
    assert load_weights(nn.Linear(2, 3), path, converter=record).source == str(path)
    assert seen == ["state dict", str(path)]


def test_load_weights_passes_sha256_and_strict_through(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_file({"weight": linear_state()["weight"]}, str(path))
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        load_weights(nn.Linear(2, 3), path, sha256="0" * 64, strict=False)
    model = nn.Linear(2, 3)
    report = load_weights(model, path, sha256=file_sha256(path), strict=False)
    assert report.missing == ["bias"] and not report.ok
    assert torch.equal(model.weight, linear_state()["weight"])


class _Renaming(nn.Module):
    """A model whose adapt_state_dict hook strips an ``encoder.`` prefix and notes it."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 3)
        self.calls = 0

    def adapt_state_dict(
        self, state_dict: dict[str, torch.Tensor], report: LoadReport
    ) -> dict[str, torch.Tensor]:
        self.calls += 1
        report.adapted.append(f"hook saw {sorted(state_dict)}")
        return {k.removeprefix("encoder."): v for k, v in state_dict.items()}


def test_the_models_adapt_state_dict_hook_runs_after_the_converter() -> None:
    state = {f"encoder.fc.{k}": v for k, v in linear_state().items()}

    def tag(state: dict[str, torch.Tensor], report: LoadReport) -> dict[str, torch.Tensor]:
        report.adapted.append("converter")
        return state

    model = _Renaming()
    report = load_weights(model, state, converter=tag)
    assert report.ok and model.calls == 1
    assert report.adapted == ["converter", "hook saw ['encoder.fc.bias', 'encoder.fc.weight']"]
    assert torch.equal(model.fc.weight, linear_state()["weight"])


def test_summary_cuts_off_only_beyond_max_keys() -> None:
    ten = [f"k{i}" for i in range(10)]
    eleven = [*ten, "k10"]
    assert LoadReport(source="s", missing=ten).summary().splitlines()[1] == (
        "  missing: " + ", ".join(ten)
    )
    assert LoadReport(source="s", missing=eleven).summary().splitlines()[1] == (
        "  missing: " + ", ".join(ten) + ", ... (+1 more)"
    )


def test_summary_lists_adapted_notes_and_ignored_keys() -> None:
    report = LoadReport(source="s", adapted=["a one", "a two"], ignored=["head.w", "head.b"])
    assert report.summary().splitlines()[1:] == [
        "  adapted: a one; a two",
        "  ignored: head.w, head.b",
    ]
