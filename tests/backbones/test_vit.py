from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

import geofm
from geofm.backbones.vit import default_out_indices
from geofm.errors import ShapeError, WeightsError


def timm_dinov2(depth: int = 2, **kwargs: object) -> torch.nn.Module:
    return timm.create_model(
        "vit_small_patch14_dinov2", pretrained=False, num_classes=0, depth=depth,
        dynamic_img_size=True, **kwargs,
    )  # fmt: skip


def save(model: torch.nn.Module, path: Path) -> Path:
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def test_dinov2_parity_with_plain_timm_on_the_same_weights(tmp_path: Path) -> None:
    ref = timm_dinov2().eval()
    path = save(ref, tmp_path / "dinov2.safetensors")
    ours = geofm.create_backbone(
        "dinov2_vit_small_patch14", depth=2, pretrained=path, out_indices=[0, 1]
    ).eval()
    assert ours.load_report is not None and ours.load_report.ok
    assert "added prefix 'model.' to keys" in ours.load_report.adapted
    x = torch.randn(2, 3, 42, 56)
    with torch.no_grad():
        maps = ours(x)
        ref_maps = ref.forward_intermediates(x, indices=[0, 1], norm=True, intermediates_only=True)
        cls = ref.forward_features(x)[:, 0]
        emb = ours.embed(x)
    assert [m.shape for m in maps] == [torch.Size([2, 384, 3, 4])] * 2
    for a, b in zip(maps, ref_maps, strict=True):
        assert torch.equal(a, b)
    assert torch.equal(emb, cls)


def test_mean_pool_excludes_the_class_token() -> None:
    model = geofm.create_backbone("dinov2_vit_small_patch14", depth=1, pool="mean").eval()
    x = torch.randn(1, 3, 28, 28)
    with torch.no_grad():
        tokens = model.model.forward_features(x)
        assert torch.allclose(model.embed(x), tokens[:, 1:].mean(1))


def test_position_embedding_is_resampled_for_another_native_size(tmp_path: Path) -> None:
    ref = timm_dinov2()  # 518 px native: 37 x 37 grid
    path = save(ref, tmp_path / "dinov2.safetensors")
    small = geofm.create_backbone(
        "dinov2_vit_small_patch14", depth=2, img_size=224, pretrained=path
    )
    assert small.load_report is not None
    assert any("37x37 to a 16x16 grid" in note for note in small.load_report.adapted)
    assert small.model.pos_embed.shape == (1, 1 + 16 * 16, 384)
    # At 224 px, the run-time interpolation of the 518 model and the stored
    # resampled grid of the 224 model are the same bicubic resampling.
    x = torch.randn(1, 3, 224, 224)
    big = geofm.create_backbone("dinov2_vit_small_patch14", depth=2, pretrained=path).eval()
    with torch.no_grad():
        torch.testing.assert_close(small.eval().embed(x), big.embed(x), rtol=1e-4, atol=1e-4)


def test_timm_classifier_keys_are_dropped_and_reported(tmp_path: Path) -> None:
    ref = timm.create_model("vit_small_patch16_224", pretrained=False, depth=1, num_classes=10)
    path = save(ref, tmp_path / "vit.safetensors")
    model = geofm.create_backbone("vit_small_patch16", depth=1, pretrained=path)
    assert model.load_report is not None
    assert sorted(k.split(" ")[0] for k in model.load_report.ignored) == [
        "model.head.bias", "model.head.weight",
    ]  # fmt: skip


def test_in_chans_adaptation_of_a_pretrained_vit(tmp_path: Path) -> None:
    ref = timm_dinov2(depth=1)
    path = save(ref, tmp_path / "dinov2.safetensors")
    model = geofm.create_backbone(
        "dinov2_vit_small_patch14", depth=1, pretrained=path, bands="sentinel2_l2a"
    )
    report = model.adaptation_report
    assert report is not None and report.copied == {1: 2, 2: 1, 3: 0}
    w_ref = ref.patch_embed.proj.weight
    w_new = model.model.patch_embed.proj.weight
    assert w_new.shape == (384, 12, 14, 14)
    assert torch.equal(w_new[:, 3], w_ref[:, 0])
    assert torch.equal(w_new[:, 1], w_ref[:, 2])


def test_strict_load_failure_lists_keys(tmp_path: Path) -> None:
    ref = timm_dinov2(depth=2)
    path = save(ref, tmp_path / "dinov2.safetensors")
    with pytest.raises(WeightsError, match=r"unexpected: model\.blocks\.1\."):
        geofm.create_backbone("dinov2_vit_small_patch14", depth=1, pretrained=path)


def test_out_indices_validation() -> None:
    with pytest.raises(ValueError, match="out of range for a ViT with 2 blocks"):
        geofm.create_backbone("vit_small_patch16", depth=2, out_indices=[2])
    with pytest.raises(ValueError, match="must not repeat"):
        geofm.create_backbone("vit_small_patch16", depth=2, out_indices=[1, -1])
    model = geofm.create_backbone("vit_small_patch16", depth=4, out_indices=[-1, 0])
    assert model.out_indices == (0, 3)


def test_default_out_indices_are_evenly_spaced() -> None:
    assert default_out_indices(12) == (2, 5, 8, 11)
    assert default_out_indices(24) == (5, 11, 17, 23)
    assert default_out_indices(1) == (0,)


def test_huge_is_patch16() -> None:
    model = geofm.create_backbone("vit_huge_patch16", depth=1)
    assert model.patch_size == 16 and model.embed_dim == 1280


def test_wavelength_vit_accepts_any_band_set_in_any_order() -> None:
    from geofm.sensors import get_sensor

    s2 = get_sensor("sentinel2_l2a")
    model = geofm.create_backbone(
        "vit_small_patch16", depth=1, bands="sentinel2_l2a", generator="mlp"
    ).eval()
    assert model.in_chans == 12
    assert model.wavelength_embed is not None
    x = torch.randn(2, 12, 32, 32)
    perm = torch.randperm(12)

    def rebuilt(waves: list[float]) -> geofm.Backbone:
        """The same weights for another band set (wavelengths are not in the state dict)."""
        other = geofm.create_backbone("vit_small_patch16", depth=1, bands=waves, generator="mlp")
        other.load_state_dict(model.state_dict())
        return other.eval()

    with torch.no_grad():
        ref = model.embed(x)
        permuted = rebuilt([s2.wavelengths[i] for i in perm.tolist()])
        torch.testing.assert_close(permuted.embed(x[:, perm]), ref, rtol=1e-4, atol=1e-5)
        # A subset of bands works with its own wavelengths.
        subset = rebuilt([s2.wavelengths[i] for i in (3, 2, 1)])
        assert subset(x[:, [3, 2, 1]])[0].shape == (2, 384, 2, 2)
        # A band count that differs from the wavelength count is an error.
        with pytest.raises(ShapeError, match="expected 3 bands, got 12"):
            subset(x)


def test_wavelength_count_must_match_in_chans() -> None:
    with pytest.raises(ShapeError, match="in_chans=4 but bands lists 3 bands"):
        geofm.create_backbone(
            "vit_small_patch16", depth=1, in_chans=4, bands=[500.0, 600.0, 700.0], generator="mlp"
        )
    with pytest.raises(ValueError, match="nm"):
        geofm.create_backbone("vit_small_patch16", depth=1, bands=[500.0, -1.0], generator="mlp")
    with pytest.raises(ValueError, match="pass bands="):
        geofm.create_backbone("vit_small_patch16", depth=1, generator="mlp")
    with pytest.raises(TypeError, match="unknown keyword argument.*wavelengths"):
        geofm.create_backbone("resnet18", wavelengths=[500.0])
