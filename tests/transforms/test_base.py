"""Every transform takes a bare image tensor or a sample dict, and says so when given anything else."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import geofm.transforms as T
from geofm.transforms import Transform

# One configured instance of every public transform. p=1 everywhere so the bare-tensor
# path cannot pass by leaving the image unchanged.
TRANSFORMS: dict[str, Transform] = {
    "ColorJitter": T.ColorJitter(0.4, 0.4, 0.2, 0.1, p=1.0),
    "Compose": T.Compose([T.RandomHorizontalFlip(p=1.0), T.RandomSolarize(0.5, p=1.0)]),
    "Normalize": T.Normalize([0.1, 0.2, 0.3], [0.5, 0.25, 2.0], divisor=2.0),
    "RandomBandDropout": T.RandomBandDropout(0.5, p=1.0),
    "RandomBrightnessContrast": T.RandomBrightnessContrast(p=1.0),
    "RandomGaussianBlur": T.RandomGaussianBlur(3, sigma=(1.0, 2.0), p=1.0),
    "RandomGrayscale": T.RandomGrayscale(p=1.0),
    "RandomHorizontalFlip": T.RandomHorizontalFlip(p=1.0),
    "RandomResizedCrop": T.RandomResizedCrop((6, 5), scale=(0.3, 0.9)),
    "RandomRotation": T.RandomRotation(30.0),
    "RandomRotation90": T.RandomRotation90(),
    "RandomSolarize": T.RandomSolarize(0.5, p=1.0),
    "RandomVerticalFlip": T.RandomVerticalFlip(p=1.0),
}
VIEWS: dict[str, T.MultiViewTransform] = {
    "DINOTransform": T.DINOTransform(global_size=6, local_size=4, num_local_views=1),
    "MoCoTransform": T.MoCoTransform(size=6),
    "MultiViewTransform": T.MultiViewTransform([T.RandomVerticalFlip(p=1.0)]),
    "VICRegTransform": T.VICRegTransform(size=6),
}


def _image(*shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(7))


def test_every_public_transform_is_covered() -> None:
    public = {
        name
        for name in T.__all__
        if isinstance(getattr(T, name), type)
        and issubclass(getattr(T, name), (Transform, T.MultiViewTransform))
        and getattr(T, name) is not Transform
    }
    assert public == set(TRANSFORMS) | set(VIEWS)


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
@pytest.mark.parametrize("shape", [(3, 8, 8), (2, 3, 8, 8)])
def test_bare_tensor_gives_the_image_of_the_sample_path(name: str, shape: tuple[int, ...]) -> None:
    transform = TRANSFORMS[name]
    x = _image(*shape)
    out = transform(x, generator=torch.Generator().manual_seed(3))
    want = transform({"image": x}, generator=torch.Generator().manual_seed(3))["image"]
    assert isinstance(out, torch.Tensor)
    assert torch.equal(out, want)
    # The comparison is not vacuous: some draw changes the image.
    draws = [transform(x, generator=torch.Generator().manual_seed(s)) for s in range(4)]
    assert any(d.shape != x.shape or not torch.equal(d, x) for d in draws)


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_multi_view_pipelines_take_a_bare_tensor(name: str) -> None:
    views = VIEWS[name]
    x = _image(2, 3, 12, 12)
    out = views(x, generator=torch.Generator().manual_seed(5))
    want = views({"image": x}, generator=torch.Generator().manual_seed(5))
    assert len(out) == len(want) >= 1
    assert all(torch.equal(a, b["image"]) for a, b in zip(out, want, strict=True))


@pytest.mark.parametrize("name", sorted(TRANSFORMS) + sorted(VIEWS))
@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        (
            [torch.zeros(3, 4, 4)],
            TypeError,
            "expects a sample dict .* or an image tensor, got list",
        ),
        ({"image": np.zeros((3, 4, 4))}, TypeError, r"sample\['image'\] must be a torch.Tensor"),
        ({"mask": torch.zeros(4, 4).long()}, KeyError, "needs an 'image' key"),
    ],
)
def test_anything_else_raises_a_clear_error(
    name: str, bad: object, error: type[Exception], match: str
) -> None:
    transform = TRANSFORMS.get(name) or VIEWS[name]
    with pytest.raises(error, match=match):
        transform(bad)  # type: ignore[call-overload]


def test_forward_on_a_bare_tensor_points_to_calling_the_transform() -> None:
    with pytest.raises(TypeError, match=r"got a bare tensor of shape \(3, 4, 4\). Call the"):
        T.RandomHorizontalFlip().forward(torch.zeros(3, 4, 4))  # type: ignore[arg-type]
