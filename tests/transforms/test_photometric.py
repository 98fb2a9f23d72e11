from __future__ import annotations

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from geofm.errors import ShapeError
from geofm.transforms import (
    ColorJitter,
    RandomBandDropout,
    RandomBrightnessContrast,
    RandomGaussianBlur,
    RandomGrayscale,
    RandomSolarize,
)


def _rgb(n: int = 3, size: int = 12) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("sigma", [0.5, 1.7])
@pytest.mark.parametrize("kernel_size", [3, 7])
def test_gaussian_blur_matches_torchvision(kernel_size: int, sigma: float) -> None:
    image = torch.rand(2, 6, 16, 14)
    blur = RandomGaussianBlur(kernel_size, sigma=(sigma, sigma), p=1.0)
    want = TF.gaussian_blur(image, kernel_size=[kernel_size, kernel_size], sigma=[sigma, sigma])
    torch.testing.assert_close(blur({"image": image})["image"], want, atol=1e-5, rtol=1e-5)


def test_gaussian_blur_draws_sigma_per_sample() -> None:
    image = torch.rand(1, 2, 16, 16).expand(6, 2, 16, 16)
    out = RandomGaussianBlur(5, sigma=(0.1, 3.0), p=1.0)({"image": image})["image"]
    assert not torch.allclose(out[0], out[1])


@pytest.mark.parametrize("factor", [0.3, 1.6])
def test_brightness_matches_torchvision(factor: float) -> None:
    image = _rgb()
    out = ColorJitter(brightness=(factor, factor))({"image": image})["image"]
    torch.testing.assert_close(out, TF.adjust_brightness(image, factor))


@pytest.mark.parametrize("factor", [0.3, 1.6])
def test_contrast_matches_torchvision(factor: float) -> None:
    image = _rgb()
    out = ColorJitter(contrast=(factor, factor))({"image": image})["image"]
    torch.testing.assert_close(out, TF.adjust_contrast(image, factor), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("factor", [0.0, 0.5, 1.8])
def test_saturation_matches_torchvision(factor: float) -> None:
    image = _rgb()
    out = ColorJitter(saturation=(factor, factor))({"image": image})["image"]
    torch.testing.assert_close(out, TF.adjust_saturation(image, factor), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("shift", [-0.4, 0.1, 0.5])
def test_hue_matches_torchvision(shift: float) -> None:
    image = _rgb()
    image[0, :, 0, 0] = torch.tensor([0.5, 0.5, 0.5])  # grey pixel (zero saturation)
    image[0, :, 0, 1] = 0.0  # black pixel
    out = ColorJitter(hue=(shift, shift))({"image": image})["image"]
    torch.testing.assert_close(out, TF.adjust_hue(image, shift), atol=1e-5, rtol=1e-5)


def test_grayscale_matches_torchvision() -> None:
    image = _rgb()
    out = RandomGrayscale(p=1.0)({"image": image})["image"]
    torch.testing.assert_close(out, TF.rgb_to_grayscale(image, num_output_channels=3))


def test_solarize_matches_torchvision_for_any_band_count() -> None:
    image = torch.rand(2, 7, 5, 5)
    out = RandomSolarize(0.4, p=1.0)({"image": image})["image"]
    torch.testing.assert_close(out, TF.solarize(image, 0.4))


def test_color_jitter_is_reproducible_and_respects_p() -> None:
    image = _rgb(n=8)
    jitter = ColorJitter(0.4, 0.4, 0.2, 0.1, p=0.5)
    a = jitter({"image": image}, generator=torch.Generator().manual_seed(3))["image"]
    b = jitter({"image": image}, generator=torch.Generator().manual_seed(3))["image"]
    torch.testing.assert_close(a, b)
    unchanged = (a == image).flatten(1).all(1)
    assert 0 < int(unchanged.sum()) < 8
    assert a.min() >= 0
    assert a.max() <= 1


@pytest.mark.parametrize(
    "transform",
    [ColorJitter(brightness=0.2), RandomGrayscale(p=1.0)],
    ids=["jitter", "grayscale"],
)
def test_rgb_only_operations_reject_other_band_counts(transform: torch.nn.Module) -> None:
    with pytest.raises(ShapeError, match="RGB images \\(3 bands\\), got 12 bands"):
        transform({"image": torch.rand(2, 12, 4, 4)})


def test_brightness_contrast_formula_per_band() -> None:
    image = torch.randn(2, 13, 6, 6)
    aug = RandomBrightnessContrast(brightness=0.5, contrast=0.5, p=1.0)
    g = torch.Generator().manual_seed(0)
    out = aug({"image": image}, generator=g)["image"]
    # Recover each band's affine map out = a * x + b and check it is mean-centred scaling.
    x = image.flatten(2)
    y = out.flatten(2)
    a = ((y - y.mean(-1, keepdim=True)) * (x - x.mean(-1, keepdim=True))).sum(-1) / (
        (x - x.mean(-1, keepdim=True)) ** 2
    ).sum(-1)
    offset = y.mean(-1) - x.mean(-1)
    assert ((a > 0.5 - 1e-4) & (a < 1.5 + 1e-4)).all()
    assert (offset.abs() <= 0.5 + 1e-5).all()
    assert a.std() > 0  # different factors per band
    torch.testing.assert_close(
        y,
        a[..., None] * (x - x.mean(-1, keepdim=True))
        + x.mean(-1, keepdim=True)
        + offset[..., None],
        atol=1e-4,
        rtol=1e-4,
    )


def test_brightness_contrast_shared_across_bands() -> None:
    image = torch.randn(2, 4, 6, 6)
    out = RandomBrightnessContrast(brightness=(0.0, 0.0), contrast=0.5, per_band=False)(
        {"image": image}
    )["image"]
    centred_in = image - image.mean(dim=(2, 3), keepdim=True)
    ratio = (out - image.mean(dim=(2, 3), keepdim=True)) / centred_in
    assert torch.allclose(ratio[0], ratio[0, 0, 0, 0].expand_as(ratio[0]), atol=1e-3)


def test_band_dropout_keeps_at_least_one_band_and_leaves_mask() -> None:
    image = torch.rand(16, 5, 4, 4) + 1
    mask = torch.randint(0, 3, (16, 4, 4))
    out = RandomBandDropout(drop_prob=0.9)({"image": image, "mask": mask})
    kept = (out["image"] != 0).flatten(2).all(-1)
    dropped = (out["image"] == 0).flatten(2).all(-1)
    assert bool((kept | dropped).all())
    assert bool((kept.sum(1) >= 1).all())
    assert torch.equal(out["mask"], mask)


def test_band_dropout_rate() -> None:
    image = torch.ones(200, 10, 2, 2)
    out = RandomBandDropout(drop_prob=0.3, fill=-1.0)({"image": image})["image"]
    assert (out[:, :, 0, 0] == -1).float().mean().item() == pytest.approx(0.3, abs=0.05)


def test_photometric_rejects_integer_images() -> None:
    with pytest.raises(TypeError, match="floating-point image"):
        RandomGaussianBlur(3)({"image": torch.zeros(2, 4, 4, dtype=torch.int16)})


def test_bad_parameters_raise() -> None:
    with pytest.raises(ValueError, match="odd and positive"):
        RandomGaussianBlur(4)
    with pytest.raises(ValueError, match="hue shifts must lie"):
        ColorJitter(hue=0.7)
    with pytest.raises(ValueError, match="non-negative"):
        ColorJitter(brightness=-0.1)
