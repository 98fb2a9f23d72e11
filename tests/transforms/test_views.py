from __future__ import annotations

import pytest
import torch

from geofm.transforms import (
    ColorJitter,
    DINOTransform,
    MoCoTransform,
    MultiViewTransform,
    Normalize,
    RandomGaussianBlur,
    RandomResizedCrop,
    RandomSolarize,
    VICRegTransform,
    blur_kernel_size,
)


def _modules(view: torch.nn.Module, kind: type) -> list:  # type: ignore[type-arg]
    return [m for m in view.modules() if isinstance(m, kind)]


def test_vicreg_views_follow_vicreg_settings() -> None:
    vicreg = VICRegTransform(size=224)
    blur_p = [_modules(v, RandomGaussianBlur)[0].p for v in vicreg.views]
    solar_p = [_modules(v, RandomSolarize)[0].p for v in vicreg.views]
    assert blur_p == [1.0, 0.1]
    assert solar_p == [0.0, 0.2]
    jitter = _modules(vicreg.views[0], ColorJitter)[0]
    assert jitter.p == 0.8
    assert jitter.brightness == (0.6, 1.4)
    assert jitter.hue == (-0.1, 0.1)
    crop = _modules(vicreg.views[0], RandomResizedCrop)[0]
    assert crop.interpolation == "bicubic"
    assert _modules(vicreg.views[0], RandomGaussianBlur)[0].kernel_size == 23


def test_vicreg_views_are_reproducible_and_different() -> None:
    sample = {"image": torch.rand(2, 3, 40, 40)}
    vicreg = VICRegTransform(size=16)
    a = vicreg(sample, generator=torch.Generator().manual_seed(0))
    b = vicreg(sample, generator=torch.Generator().manual_seed(0))
    assert len(a) == 2
    for va, vb in zip(a, b, strict=True):
        torch.testing.assert_close(va["image"], vb["image"])
    assert not torch.allclose(a[0]["image"], a[1]["image"])


def test_moco_views_any_band_count_with_spectral_earth_settings() -> None:
    moco = MoCoTransform(size=128)
    assert _modules(moco.views[0], RandomGaussianBlur)[0].kernel_size == 13
    assert _modules(moco.views[0], RandomResizedCrop)[0].scale == (0.08, 1.0)
    assert not _modules(moco, ColorJitter)
    small = MoCoTransform(size=8, normalize=Normalize([0.0] * 20, [2.0] * 20))
    views = small({"image": torch.rand(3, 20, 16, 16)}, generator=torch.Generator().manual_seed(1))
    assert [tuple(v["image"].shape) for v in views] == [(3, 20, 8, 8)] * 2


def test_dino_global_and_local_views() -> None:
    dino = DINOTransform(global_size=16, local_size=8, num_local_views=3)
    views = dino({"image": torch.rand(2, 5, 32, 32)}, generator=torch.Generator().manual_seed(2))
    assert [v["image"].shape[-1] for v in views] == [16, 16, 8, 8, 8]
    assert _modules(dino.views[0], RandomResizedCrop)[0].scale == (0.05, 1.0)
    assert _modules(dino.views[2], RandomResizedCrop)[0].scale == (0.05, 0.4)
    assert len(DINOTransform().views) == 2  # SpectralEarth: multi-crop off


def test_blur_kernel_size_rule() -> None:
    assert [blur_kernel_size(s) for s in (48, 128, 224)] == [5, 13, 23]


def test_bad_view_configuration_raises() -> None:
    with pytest.raises(ValueError, match="num_local_views"):
        DINOTransform(num_local_views=-1)
    with pytest.raises(ValueError, match="at least one view"):
        MultiViewTransform([])


def _normalizers(transform: MultiViewTransform) -> list[Normalize]:
    found = [_modules(view, Normalize) for view in transform.views]
    assert all(len(f) == len(found[0]) for f in found)  # every view alike
    return found[0]


def test_normalize_none_always_skips_and_the_defaults_are_explicit() -> None:
    for transform in (
        VICRegTransform(size=8, normalize=None),
        MoCoTransform(size=8),
        MoCoTransform(size=8, normalize=None),
        DINOTransform(global_size=8, local_size=4, num_local_views=1, normalize=None),
    ):
        assert _normalizers(transform) == []
    # VICReg's default is ImageNet mean/std, spelled out
    for transform in (VICRegTransform(size=8), VICRegTransform(size=8, normalize="imagenet")):
        (norm,) = _normalizers(transform)
        torch.testing.assert_close(norm.mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))
        torch.testing.assert_close(norm.std.flatten(), torch.tensor([0.229, 0.224, 0.225]))
    custom = Normalize([0.5] * 3, [0.1] * 3)
    assert _normalizers(VICRegTransform(size=8, normalize=custom)) == [custom]
    assert _normalizers(DINOTransform(global_size=8, normalize=custom)) == [custom]


def test_normalize_none_leaves_values_unnormalised() -> None:
    # bilinear crops, Gaussian blur and flips average or move values: [0, 1] stays [0, 1]
    sample = {"image": torch.rand(2, 4, 16, 16)}
    for transform in (MoCoTransform(size=8), DINOTransform(global_size=8)):
        for view in transform(sample, generator=torch.Generator().manual_seed(0)):
            assert view["image"].min() >= 0.0 and view["image"].max() <= 1.0


def test_vicreg_rejects_an_unknown_normalize() -> None:
    with pytest.raises(ValueError, match="normalize='imagenet1k'.*or None"):
        VICRegTransform(normalize="imagenet1k")  # type: ignore[arg-type]
