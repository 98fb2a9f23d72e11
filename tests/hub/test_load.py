from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from geofm.errors import WeightsError
from geofm.weights.load import (
    LoadReport,
    file_sha256,
    load_state_dict_into,
    load_weights,
    read_state_dict,
    verify_sha256,
)


def small_model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))


def conv_bn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))


def save_safetensors(model: nn.Module, path: Path) -> Path:
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


class _Exploit:
    """Unpickling this object would create a marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (os.rename, (self.marker + ".src", self.marker))


def test_safetensors_round_trip_is_strict_and_exact(tmp_path: Path) -> None:
    src, dst = conv_bn(), conv_bn()
    path = save_safetensors(src, tmp_path / "w.safetensors")
    report = load_weights(dst, path)
    assert report.ok and report.source == str(path)
    for (k, a), (_, b) in zip(src.state_dict().items(), dst.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_pt_files_load_through_weights_only_and_unwrap_containers(tmp_path: Path) -> None:
    src = conv_bn()
    torch.save({"state_dict": src.state_dict(), "epoch": 3}, tmp_path / "ckpt.pth")
    report = load_weights(conv_bn(), tmp_path / "ckpt.pth")
    assert report.ok
    assert any("'state_dict'" in note for note in report.adapted)


def test_malicious_pickle_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    Path(str(marker) + ".src").write_text("x")
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"weight": _Exploit(str(marker))}, fh)
    with pytest.raises(WeightsError, match="weights_only=True"):
        read_state_dict(path)
    assert not marker.exists(), "the pickle payload ran"


def test_truncated_safetensors_gives_a_clear_error(tmp_path: Path) -> None:
    path = save_safetensors(conv_bn(), tmp_path / "w.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="truncated or corrupt"):
        read_state_dict(path)


def test_hash_mismatch_names_both_hashes(tmp_path: Path) -> None:
    path = save_safetensors(conv_bn(), tmp_path / "w.safetensors")
    real = file_sha256(path)
    verify_sha256(path, real)
    verify_sha256(path, real[:8])
    wrong = ("0" if real[0] != "0" else "1") + real[1:]
    with pytest.raises(WeightsError) as info:
        read_state_dict(path, sha256=wrong)
    assert wrong in str(info.value) and real in str(info.value)
    with pytest.raises(ValueError, match="at least|>= 8"):
        verify_sha256(path, "abc")


def test_strict_failure_lists_missing_unexpected_and_mismatched_keys() -> None:
    model = conv_bn()
    state = dict(model.state_dict())
    state.pop("1.bias")
    state["extra.weight"] = torch.zeros(1)
    state["0.weight"] = torch.zeros(4, 3, 5, 5)
    with pytest.raises(WeightsError) as info:
        load_state_dict_into(model, state, source="ckpt")
    msg = str(info.value)
    assert "1 missing" in msg and "1.bias" in msg
    assert "1 unexpected" in msg and "extra.weight" in msg
    assert "0.weight (model [4, 3, 3, 3], checkpoint [4, 3, 5, 5])" in msg


def test_non_strict_loads_matching_keys_and_reports_the_rest() -> None:
    model = nn.Linear(2, 3)
    weight = torch.ones(3, 2)
    report = load_state_dict_into(model, {"weight": weight, "junk": torch.zeros(1)}, strict=False)
    assert torch.equal(model.weight, weight)
    assert report.missing == ["bias"] and report.unexpected == ["junk"] and not report.ok


def test_missing_file_and_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="does not exist"):
        read_state_dict(tmp_path / "nope.safetensors")
    other = tmp_path / "w.npz"
    other.write_bytes(b"x")
    with pytest.raises(ValueError, match="Unknown checkpoint format '.npz'"):
        read_state_dict(other)


def test_non_state_dict_payload_is_an_error(tmp_path: Path) -> None:
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(WeightsError, match="not a state dict"):
        read_state_dict(tmp_path / "list.pt")


def test_converter_runs_before_loading(tmp_path: Path) -> None:
    src = nn.Linear(2, 2)
    prefixed = {f"encoder.{k}": v for k, v in src.state_dict().items()}

    def strip(state: dict[str, torch.Tensor], report: LoadReport) -> dict[str, torch.Tensor]:
        report.adapted.append("stripped encoder.")
        return {k.removeprefix("encoder."): v for k, v in state.items()}

    dst = nn.Linear(2, 2)
    report = load_weights(dst, prefixed, converter=strip)
    assert report.ok and report.adapted == ["stripped encoder."]
    assert torch.equal(dst.weight, src.weight)
