from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file
from torchvision.models import resnet18 as tv_resnet18

import geofm
from geofm.errors import ShapeError, WeightsError

BEN6 = ["B04", "B03", "B02", "B08", "B11", "B12"]


def test_torchvision_layout_checkpoint_loads_and_matches(tmp_path: Path) -> None:
    # VICReg saves torchvision-layout ResNets; fc is dropped and reported.
    ref = tv_resnet18().eval()
    torch.save(ref.state_dict(), tmp_path / "resnet18.pth")
    model = geofm.create_backbone("resnet18", pretrained=tmp_path / "resnet18.pth").eval()
    assert model.load_report is not None and model.load_report.ok
    assert {k.split(" ")[0] for k in model.load_report.ignored} == {
        "model.fc.weight",
        "model.fc.bias",
    }
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref_emb = torch.flatten(ref.avgpool(ref.layer4(ref.layer3(ref.layer2(ref.layer1(
            ref.maxpool(ref.relu(ref.bn1(ref.conv1(x))))))))), 1)  # fmt: skip
        torch.testing.assert_close(model.embed(x), ref_emb)


def test_three_to_thirteen_bands_by_name(tmp_path: Path) -> None:
    ref = timm.create_model("resnet18", pretrained=False, num_classes=0)
    save_file(
        {k: v.contiguous() for k, v in ref.state_dict().items()}, str(tmp_path / "r.safetensors")
    )
    model = geofm.create_backbone(
        "resnet18", bands="sentinel2_l1c", pretrained=tmp_path / "r.safetensors"
    )
    report = model.adaptation_report
    assert report is not None
    assert report.copied == {1: 2, 2: 1, 3: 0}
    assert len(report.new_channels) == 10
    w = model.model.conv1.weight
    assert w.shape == (64, 13, 7, 7)
    assert torch.equal(w[:, 3], ref.conv1.weight[:, 0])
    assert torch.equal(w[:, 2], ref.conv1.weight[:, 1])
    assert torch.equal(w[:, 1], ref.conv1.weight[:, 2])
    assert model.load_report is not None
    assert any("input channels 3 -> 13 (3 copied, 10 new)" in n for n in model.load_report.adapted)


def test_thirteen_to_six_bands_by_name(tmp_path: Path) -> None:
    src = geofm.create_backbone("resnet18", in_chans=13)
    save_file(
        {k: v.contiguous() for k, v in src.state_dict().items()}, str(tmp_path / "s2.safetensors")
    )
    model = geofm.create_backbone(
        "resnet18",
        bands=BEN6,
        pretrained=tmp_path / "s2.safetensors",
        pretrained_bands="sentinel2_l1c",
    )
    report = model.adaptation_report
    assert report is not None
    assert report.copied == {0: 3, 1: 2, 2: 1, 3: 7, 4: 11, 5: 12}
    assert report.new_channels == ()
    assert torch.equal(model.model.conv1.weight, src.model.conv1.weight[:, [3, 2, 1, 7, 11, 12]])


def test_unknown_band_layout_without_band_information_raises(tmp_path: Path) -> None:
    src = geofm.create_backbone("resnet18", in_chans=5)
    save_file(
        {k: v.contiguous() for k, v in src.state_dict().items()}, str(tmp_path / "x.safetensors")
    )
    with pytest.raises(ShapeError, match=r"pretrained_bands=.*bands=|bands=.*pretrained_bands="):
        geofm.create_backbone("resnet18", in_chans=2, pretrained=tmp_path / "x.safetensors")


def test_pretrained_path_errors(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="is not a file"):
        geofm.create_backbone("resnet18", pretrained=tmp_path / "missing.safetensors")
    with pytest.raises(
        LookupError, match="No pretrained weights are registered for backbone 'resnet18'"
    ):
        geofm.create_backbone("resnet18", pretrained=True)
