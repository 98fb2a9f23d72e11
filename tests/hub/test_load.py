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
    """Conv + BatchNorm with random running statistics (defaults would match in any two copies)."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    norm = model[1]
    assert isinstance(norm, nn.BatchNorm2d)
    assert norm.running_mean is not None and norm.running_var is not None
    assert norm.num_batches_tracked is not None
    norm.running_mean.normal_()
    norm.running_var.uniform_(0.5, 2.0)
    norm.weight.data.normal_()
    norm.bias.data.normal_()
    norm.num_batches_tracked.fill_(int(torch.randint(1, 100, ())))
    return model


def assert_same_state(a: nn.Module, b: nn.Module) -> None:
    for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), k


def replace_char(digest: str, index: int) -> str:
    """``digest`` with the hex digit at ``index`` changed, nothing else."""
    old = digest[index]
    return digest[:index] + ("0" if old != "0" else "1") + digest[index + 1 :]


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
    assert not report.converted and not report.dtype_mismatched
    assert_same_state(src, dst)


def test_pt_files_load_through_weights_only_and_unwrap_containers(tmp_path: Path) -> None:
    src = conv_bn()
    torch.save({"state_dict": src.state_dict(), "epoch": 3}, tmp_path / "ckpt.pth")
    dst = conv_bn()
    report = load_weights(dst, tmp_path / "ckpt.pth")
    assert report.ok
    assert any("'state_dict'" in note for note in report.adapted)
    assert_same_state(src, dst)


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


def test_matching_hash_and_prefix_pass(tmp_path: Path) -> None:
    path = save_safetensors(conv_bn(), tmp_path / "w.safetensors")
    real = file_sha256(path)
    verify_sha256(path, real)
    verify_sha256(path, real.upper())
    verify_sha256(path, real[:8])
    assert read_state_dict(path, sha256=real).keys() == conv_bn().state_dict().keys()


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_hash_differing_in_one_digit_is_refused_and_names_both(tmp_path: Path, where: str) -> None:
    path = save_safetensors(conv_bn(), tmp_path / "w.safetensors")
    real = file_sha256(path)
    index = {"first": 0, "middle": 32, "last": 63}[where]
    wrong = replace_char(real, index)
    assert wrong[:index] == real[:index] and wrong[index + 1 :] == real[index + 1 :]
    with pytest.raises(WeightsError, match="sha256 mismatch") as info:
        read_state_dict(path, sha256=wrong)
    assert wrong in str(info.value) and real in str(info.value)


def test_hash_prefix_differing_in_its_last_digit_is_refused(tmp_path: Path) -> None:
    path = save_safetensors(conv_bn(), tmp_path / "w.safetensors")
    prefix = replace_char(file_sha256(path)[:10], 9)
    with pytest.raises(WeightsError, match=f"expected {prefix}, got"):
        verify_sha256(path, prefix)


def test_hash_shorter_than_eight_digits_is_refused(tmp_path: Path) -> None:
    path = save_safetensors(conv_bn(), tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match=">= 8 hex digits, got 'e3b0c44'"):
        verify_sha256(path, "e3b0c44")


def test_hash_with_a_non_hex_digit_is_refused(tmp_path: Path) -> None:
    path = save_safetensors(conv_bn(), tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match="hex digest"):
        verify_sha256(path, file_sha256(path)[:63] + "g")


def _strict_error(state: dict[str, torch.Tensor]) -> str:
    model = conv_bn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(WeightsError, match="Strict loading failed") as info:
        load_state_dict_into(model, state, source="ckpt")
    for key, value in model.state_dict().items():  # nothing loaded on failure
        assert torch.equal(value, before[key]), key
    return str(info.value)


def test_strict_refuses_a_missing_key_alone() -> None:
    state = dict(conv_bn().state_dict())
    state.pop("1.bias")
    msg = _strict_error(state)
    assert "1 missing, 0 unexpected, 0 shape-mismatched, 0 dtype-mismatched" in msg
    assert "missing: 1.bias" in msg


def test_strict_refuses_an_unexpected_key_alone() -> None:
    state = dict(conv_bn().state_dict())
    state["extra.weight"] = torch.zeros(1)
    msg = _strict_error(state)
    assert "0 missing, 1 unexpected, 0 shape-mismatched, 0 dtype-mismatched" in msg
    assert "unexpected: extra.weight" in msg


def test_strict_refuses_a_shape_mismatch_alone() -> None:
    state = dict(conv_bn().state_dict())
    state["0.weight"] = torch.zeros(4, 3, 3, 5)  # H and W differ: a transposed kernel is caught
    msg = _strict_error(state)
    assert "0 missing, 0 unexpected, 1 shape-mismatched, 0 dtype-mismatched" in msg
    assert "0.weight (model [4, 3, 3, 3], checkpoint [4, 3, 3, 5])" in msg


@pytest.mark.parametrize("dtype", [torch.int8, torch.bool, torch.int64, torch.uint8])
def test_strict_refuses_a_non_float_tensor_into_a_float_parameter(dtype: torch.dtype) -> None:
    state = dict(conv_bn().state_dict())
    state["0.weight"] = torch.ones(4, 3, 3, 3).to(dtype)
    msg = _strict_error(state)
    assert "0 missing, 0 unexpected, 0 shape-mismatched, 1 dtype-mismatched" in msg
    name = str(dtype).removeprefix("torch.")
    assert f"0.weight (model float32, checkpoint {name})" in msg


def test_strict_refuses_a_float_tensor_into_an_integer_buffer() -> None:
    state = dict(conv_bn().state_dict())
    state["1.num_batches_tracked"] = torch.tensor(3.5)
    msg = _strict_error(state)
    assert "1.num_batches_tracked (model int64, checkpoint float32)" in msg


def test_strict_refuses_another_integer_width() -> None:
    state = dict(conv_bn().state_dict())
    state["1.num_batches_tracked"] = torch.tensor(3, dtype=torch.int32)
    assert "(model int64, checkpoint int32)" in _strict_error(state)


def test_float_to_float_conversion_loads_and_is_reported() -> None:
    src = conv_bn()
    state = {k: v.half() if v.is_floating_point() else v for k, v in src.state_dict().items()}
    dst = conv_bn()
    report = load_state_dict_into(dst, state, source="ckpt")
    assert report.ok and not report.dtype_mismatched
    assert ("0.weight", "float32", "float16") in report.converted
    assert len(report.converted) == len(src.state_dict()) - 1  # all but num_batches_tracked
    for key, value in dst.state_dict().items():
        assert value.dtype == src.state_dict()[key].dtype
        torch.testing.assert_close(value, state[key].to(value.dtype), rtol=0, atol=0)
    assert "converted: 0.weight (float16 -> float32)" in report.summary()


def test_float_narrowing_that_overflows_is_refused() -> None:
    model = nn.Linear(2, 3).half()
    weight = torch.randn(3, 2)
    weight[1, 0] = 1e6  # beyond float16's 65504
    with pytest.raises(WeightsError, match=r"weight \(model float16, checkpoint float32\)"):
        load_state_dict_into(model, {"weight": weight, "bias": torch.zeros(3)})


def test_float_narrowing_without_overflow_loads_and_is_reported() -> None:
    model = nn.Linear(2, 3).half()
    weight = torch.randn(3, 2, dtype=torch.float64)
    report = load_state_dict_into(model, {"weight": weight, "bias": torch.zeros(3).half()})
    assert report.ok and report.converted == [("weight", "float16", "float64")]
    assert torch.equal(model.weight.data, weight.half())


def test_non_strict_skips_and_reports_a_refused_dtype_but_loads_the_rest() -> None:
    src = nn.Linear(2, 3)
    dst = nn.Linear(2, 3)
    before = dst.weight.detach().clone()
    state = {"weight": torch.ones(3, 2, dtype=torch.int8), "bias": src.bias.detach().clone()}
    report = load_state_dict_into(dst, state, strict=False)
    assert not report.ok and report.dtype_mismatched == [("weight", "float32", "int8")]
    assert torch.equal(dst.weight, before) and torch.equal(dst.bias, src.bias)


def test_strict_failure_lists_every_kind_together() -> None:
    model = conv_bn()
    state = dict(model.state_dict())
    state.pop("1.bias")
    state["extra.weight"] = torch.zeros(1)
    state["0.weight"] = torch.zeros(4, 3, 5, 5)
    state["1.weight"] = torch.ones(4, dtype=torch.bool)
    with pytest.raises(WeightsError) as info:
        load_state_dict_into(model, state, source="ckpt")
    msg = str(info.value)
    assert "ckpt: 1 missing, 1 unexpected, 1 shape-mismatched, 1 dtype-mismatched" in msg
    assert "1.bias" in msg and "extra.weight" in msg
    assert "0.weight (model [4, 3, 3, 3], checkpoint [4, 3, 5, 5])" in msg
    assert "1.weight (model float32, checkpoint bool)" in msg


def test_non_strict_loads_matching_keys_and_reports_the_rest() -> None:
    model = nn.Linear(2, 3)
    bias = model.bias.detach().clone()
    weight = torch.randn(3, 2)
    report = load_state_dict_into(model, {"weight": weight, "junk": torch.zeros(1)}, strict=False)
    assert torch.equal(model.weight, weight) and torch.equal(model.bias, bias)
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
    assert_same_state(src, dst)


def test_load_weights_from_a_file_refuses_a_non_float_tensor(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_file({"weight": torch.ones(3, 2, dtype=torch.int8), "bias": torch.zeros(3)}, str(path))
    with pytest.raises(WeightsError, match=r"weight \(model float32, checkpoint int8\)"):
        load_weights(nn.Linear(2, 3), path)


def test_summary_lists_ten_keys_per_kind_by_default_then_counts_the_rest() -> None:
    keys = [f"layer{i}.weight" for i in range(12)]
    report = LoadReport(source="ckpt", missing=keys, unexpected=keys[:3])
    lines = report.summary().splitlines()
    assert lines[0] == "ckpt: 12 missing, 3 unexpected, 0 shape-mismatched, 0 dtype-mismatched"
    assert lines[1] == "  missing: " + ", ".join(keys[:10]) + ", ... (+2 more)"
    assert lines[2] == "  unexpected: layer0.weight, layer1.weight, layer2.weight"
    assert report.summary(max_keys=2).splitlines()[1] == (
        "  missing: layer0.weight, layer1.weight, ... (+10 more)"
    )
