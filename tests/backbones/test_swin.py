from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torchvision.models import swin_v2_b
from torchvision.models.feature_extraction import create_feature_extractor

import geofm

SATLAS_NODES = {"features.1": "s1", "features.3": "s2", "features.5": "s3", "features.7": "s4"}


@pytest.fixture(scope="module")
def torchvision_swin() -> torch.nn.Module:
    torch.manual_seed(0)
    return swin_v2_b().eval()


def test_satlas_checkpoint_loads_strictly_and_matches_torchvision_features(
    torchvision_swin: torch.nn.Module, tmp_path: Path
) -> None:
    state = {
        f"backbone.backbone.{k}": v.contiguous() for k, v in torchvision_swin.state_dict().items()
    }
    path = tmp_path / "satlas_swinb.safetensors"
    save_file(state, str(path))
    ours = geofm.create_backbone("tv_swin_v2_b", pretrained=path).eval()
    report = ours.load_report
    assert report is not None and report.ok
    assert "stripped leading 'backbone.' from keys" in report.adapted
    assert sorted(k.split(" ")[0] for k in report.ignored) == ["head.bias", "head.weight"]

    extractor = create_feature_extractor(torchvision_swin, return_nodes=SATLAS_NODES)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        ref = extractor(x)
        maps = ours(x)
    assert [tuple(m.shape) for m in maps] == [
        (1, 128, 16, 24), (1, 256, 8, 12), (1, 512, 4, 6), (1, 1024, 2, 3),
    ]  # fmt: skip
    for m, key in zip(maps, ["s1", "s2", "s3", "s4"], strict=True):
        assert torch.equal(m, ref[key].permute(0, 3, 1, 2))


def test_satlas_multispectral_stem_has_nine_bands(tmp_path: Path) -> None:
    ms = geofm.create_backbone("tv_swin_v2_b", in_chans=9, depths=(1, 1, 1, 1))
    assert ms.features[0][0].weight.shape == (128, 9, 4, 4)
    state = {f"backbone.backbone.{k}": v for k, v in ms.state_dict().items()}
    save_file(state, str(tmp_path / "ms.safetensors"))
    again = geofm.create_backbone(
        "tv_swin_v2_b", in_chans=9, depths=(1, 1, 1, 1), pretrained=tmp_path / "ms.safetensors"
    )
    assert again.load_report is not None and again.load_report.ok
    assert again.adaptation_report is None


def test_timm_swinv2_stage_layout() -> None:
    model = geofm.create_backbone("swinv2_base_window8", depths=(1, 1, 1, 1)).eval()
    with torch.no_grad():
        maps = model(torch.randn(1, 3, 96, 64))
    assert [tuple(m.shape) for m in maps] == [
        (1, 128, 24, 16), (1, 256, 12, 8), (1, 512, 6, 4), (1, 1024, 3, 2),
    ]  # fmt: skip
    assert [f.reduction for f in model.feature_info] == [4, 8, 16, 32]


def test_depths_validation() -> None:
    with pytest.raises(ValueError, match="4 positive block counts"):
        geofm.create_backbone("tv_swin_v2_b", depths=(1, 1, 1))
