from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from geofm.errors import ShapeError
from geofm.transforms import (
    Compose,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomRotation,
    RandomRotation90,
    RandomVerticalFlip,
    Transform,
)

FILL = -1


def _scene(n: int = 4, size: int = 32, bands: int = 5, seed: int = 0) -> dict[str, torch.Tensor]:
    """Blocky label map and an image whose band 0 encodes the label (label + 1)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randint(0, 5, (n, 1, size // 8, size // 8), generator=g).float()
    mask = F.interpolate(coarse, size=(size, size), mode="nearest")[:, 0].long()  # (N, H, W)
    image = torch.rand(n, bands, size, size, generator=g)
    image[:, 0] = mask.float() + 1
    return {"image": image, "mask": mask, "label": torch.arange(n)}


def _mask_from_image(image: torch.Tensor) -> torch.Tensor:
    return (image[..., 0, :, :] - 1).round().long()  # outside (fill 0) -> -1


ALIGNED: dict[str, Transform] = {
    "crop": RandomResizedCrop(24, scale=(0.2, 1.0), interpolation="nearest"),
    "hflip": RandomHorizontalFlip(),
    "vflip": RandomVerticalFlip(),
    "rot90": RandomRotation90(),
    "rotation": RandomRotation(45.0, interpolation="nearest", mask_fill=FILL),
    "all": Compose(
        [
            RandomResizedCrop(24, scale=(0.2, 1.0), interpolation="nearest"),
            RandomHorizontalFlip(),
            RandomVerticalFlip(),
            RandomRotation90(),
            RandomRotation(30.0, p=0.5, interpolation="nearest", mask_fill=FILL),
        ]
    ),
}


@pytest.mark.parametrize("name", list(ALIGNED))
def test_mask_stays_aligned_with_image(name: str) -> None:
    out = ALIGNED[name](_scene(), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(_mask_from_image(out["image"]), out["mask"])
    assert torch.equal(out["label"], torch.arange(4))


@pytest.mark.parametrize("name", list(ALIGNED))
def test_unbatched_sample_stays_aligned(name: str) -> None:
    scene = _scene(n=1)
    sample = {"image": scene["image"][0], "mask": scene["mask"][0]}
    out = ALIGNED[name](sample, generator=torch.Generator().manual_seed(2))
    assert out["image"].ndim == 3
    assert out["mask"].ndim == 2
    torch.testing.assert_close(_mask_from_image(out["image"]), out["mask"])


@pytest.mark.parametrize(
    "transform",
    [RandomResizedCrop(64, scale=(0.3, 1.0)), RandomRotation(20.0, mask_fill=FILL)],
    ids=["crop", "rotation"],
)
def test_bilinear_image_matches_mask_inside_regions(transform: Transform) -> None:
    out = transform(_scene(size=64), generator=torch.Generator().manual_seed(3))
    mask = out["mask"].float()[:, None]
    # Pixels whose 5x5 neighbourhood has one label are far from label and image edges.
    uniform = (F.max_pool2d(mask, 5, 1, 2) == -F.max_pool2d(-mask, 5, 1, 2))[:, 0]
    uniform &= out["mask"] != FILL
    uniform[:, :2] = uniform[:, -2:] = uniform[:, :, :2] = uniform[:, :, -2:] = False
    assert uniform.float().mean() > 0.1
    torch.testing.assert_close(
        out["image"][:, 0][uniform], out["mask"][uniform].float() + 1, atol=1e-4, rtol=0
    )


@pytest.mark.parametrize("name", list(ALIGNED))
def test_reproducible_with_seed(name: str) -> None:
    a = ALIGNED[name](_scene(), generator=torch.Generator().manual_seed(7))
    b = ALIGNED[name](_scene(), generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(a["image"], b["image"])
    torch.testing.assert_close(a["mask"], b["mask"])
    torch.manual_seed(5)
    c = ALIGNED[name](_scene())
    torch.manual_seed(5)
    d = ALIGNED[name](_scene())
    torch.testing.assert_close(c["image"], d["image"])


def test_different_seeds_differ() -> None:
    crop = ALIGNED["crop"]
    a = crop(_scene(), generator=torch.Generator().manual_seed(1))
    b = crop(_scene(), generator=torch.Generator().manual_seed(2))
    assert not torch.equal(a["image"], b["image"])


def test_flip_parameters_are_drawn_per_sample() -> None:
    image = torch.arange(16.0).reshape(1, 1, 4, 4).expand(16, 3, 4, 4)
    out = RandomHorizontalFlip()({"image": image}, generator=torch.Generator().manual_seed(0))
    flipped = (out["image"] == image.flip(-1)).flatten(1).all(1)
    kept = (out["image"] == image).flatten(1).all(1)
    assert bool((flipped | kept).all())
    assert 0 < int(flipped.sum()) < 16


def test_full_crop_is_identity() -> None:
    scene = _scene()
    crop = RandomResizedCrop(32, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    out = crop(scene)
    torch.testing.assert_close(out["image"], scene["image"])
    torch.testing.assert_close(out["mask"], scene["mask"])


def test_nearest_quarter_crop_is_a_window_of_the_input() -> None:
    image = torch.randn(1, 2, 16, 16)
    crop = RandomResizedCrop(8, scale=(0.25, 0.25), ratio=(1.0, 1.0), interpolation="nearest")
    out = crop({"image": image}, generator=torch.Generator().manual_seed(4))["image"]
    windows = [image[..., i : i + 8, j : j + 8] for i in range(9) for j in range(9)]
    assert any(torch.equal(out, w) for w in windows)


def test_crop_falls_back_to_centre_when_ratio_is_impossible() -> None:
    image = torch.randn(1, 1, 16, 16)
    crop = RandomResizedCrop((8, 16), scale=(1.0, 1.0), ratio=(2.0, 2.0), interpolation="nearest")
    out = crop({"image": image})["image"]
    torch.testing.assert_close(out, image[..., 4:12, :])


def test_rotation_by_90_equals_rot90() -> None:
    scene = _scene()
    rot = RandomRotation((90.0, 90.0), interpolation="nearest")
    out = rot(scene)
    torch.testing.assert_close(out["image"], scene["image"].rot90(1, dims=(-2, -1)))
    torch.testing.assert_close(out["mask"], scene["mask"].rot90(1, dims=(-2, -1)))


def test_rotation_by_180_on_non_square_equals_double_flip() -> None:
    image = torch.randn(2, 3, 6, 10)
    out = RandomRotation((180.0, 180.0), interpolation="nearest")({"image": image})["image"]
    torch.testing.assert_close(out, image.flip(-1).flip(-2))


def test_rotation_fills_corners() -> None:
    scene = _scene(n=1)
    rot = RandomRotation((45.0, 45.0), fill=-7.0, mask_fill=255)
    out = rot(scene)
    assert out["mask"][0, 0, 0] == 255
    assert out["image"][0, 1, 0, 0] == pytest.approx(-7.0)
    assert out["mask"][0, 16, 16] != 255


def test_rotation90_applies_the_same_k_to_image_and_mask() -> None:
    scene = _scene(n=8)
    out = RandomRotation90()(scene, generator=torch.Generator().manual_seed(0))
    ks = []
    for i in range(8):
        k = next(
            k
            for k in range(4)
            if torch.equal(out["image"][i], scene["image"][i].rot90(k, (-2, -1)))
        )
        assert torch.equal(out["mask"][i], scene["mask"][i].rot90(k, (-2, -1)))
        ks.append(k)
    assert len(set(ks)) > 1


def test_mask_with_channel_axis_is_supported() -> None:
    scene = _scene()
    scene["mask"] = scene["mask"][:, None]
    out = ALIGNED["all"](scene, generator=torch.Generator().manual_seed(0))
    assert out["mask"].shape == (4, 1, 24, 24)
    torch.testing.assert_close(_mask_from_image(out["image"]), out["mask"][:, 0])


def test_rotation90_rejects_non_square() -> None:
    with pytest.raises(ShapeError, match="square"):
        RandomRotation90()({"image": torch.zeros(1, 4, 6)})


def test_resampling_rejects_integer_images() -> None:
    with pytest.raises(TypeError, match="floating-point image"):
        RandomResizedCrop(4)({"image": torch.zeros(1, 8, 8, dtype=torch.uint8)})


def test_rejects_mismatched_mask() -> None:
    with pytest.raises(ShapeError, match="does not match 'image'"):
        RandomHorizontalFlip()(
            {"image": torch.zeros(2, 3, 8, 8), "mask": torch.zeros(2, 8, 9).long()}
        )


def test_rejects_float_mask() -> None:
    with pytest.raises(TypeError, match="integer labels"):
        RandomHorizontalFlip()({"image": torch.zeros(3, 8, 8), "mask": torch.zeros(8, 8)})


def test_rejects_missing_image_and_bad_dims() -> None:
    with pytest.raises(KeyError, match="'image' key"):
        RandomHorizontalFlip()({"mask": torch.zeros(8, 8).long()})
    with pytest.raises(ShapeError, match=r"\(C, H, W\) or \(N, C, H, W\)"):
        RandomHorizontalFlip()({"image": torch.zeros(8, 8)})


def test_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="probability p must be in"):
        RandomHorizontalFlip(p=1.5)
    with pytest.raises(ValueError, match="increasing positive pairs"):
        RandomResizedCrop(8, scale=(0.9, 0.1))
    with pytest.raises(ValueError, match="low <= high"):
        RandomRotation((10.0, -10.0))
