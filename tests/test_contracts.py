"""Contract every registered backbone must satisfy (parametrised over the registry)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import torch

import geofm
from geofm.backbones import Backbone, get_backbone_entry
from geofm.errors import ShapeError

NAMES = geofm.list_backbones()


def tiny_kwargs(name: str) -> dict[str, Any]:
    """Shrink depth so huge families stay fast; widths stay the real ones."""
    params = inspect.signature(get_backbone_entry(name).builder).parameters
    kwargs: dict[str, Any] = {}
    if "depth" in params:
        kwargs["depth"] = 2
    if "depths" in params:
        kwargs["depths"] = (1, 1, 1, 1)
    if "layers" in params:
        kwargs["layers"] = (1, 1, 1, 1)
    return kwargs


def tiny_input(model: Backbone, batch: int = 2) -> torch.Tensor:
    side = max(2 * model.size_divisor, 32)
    side = -(-side // model.size_divisor) * model.size_divisor
    return torch.randn(batch, model.in_chans, side, side)


@pytest.fixture(scope="module", params=NAMES)
def built(request: pytest.FixtureRequest) -> tuple[str, Backbone]:
    name = request.param
    torch.manual_seed(0)
    return name, geofm.create_backbone(name, **tiny_kwargs(name))


def test_registry_is_not_empty_and_has_the_required_families() -> None:
    required = {
        "dinov2_vit_small_patch14", "dinov2_vit_base_patch14", "dinov2_vit_large_patch14",
        "dinov2_vit_giant_patch14", "vit_small_patch16", "vit_base_patch16",
        "vit_large_patch16", "vit_huge_patch16", "swinv2_base_window8", "tv_swin_v2_b",
        "resnet18", "resnet50", "spec_vit_small_patch4", "spec_resnet50",
        "skysense_o_swinv2_huge", "dofa_vit_base_patch16",
    }  # fmt: skip
    assert required <= set(NAMES)


def test_forward_returns_nchw_maps_described_by_feature_info(built: tuple[str, Backbone]) -> None:
    name, model = built
    model.eval()
    x = tiny_input(model)
    with torch.no_grad():
        maps = model(x)
    assert isinstance(maps, list) and len(maps) == len(model.feature_info) > 0
    assert len(model.out_indices) == len(maps)
    for fmap, info in zip(maps, model.feature_info, strict=True):
        assert fmap.ndim == 4, name
        assert fmap.shape[0] == x.shape[0]
        assert fmap.shape[1] == info.channels, (name, info)
        assert fmap.shape[2] == x.shape[2] // info.reduction, (name, info)
        assert fmap.shape[3] == x.shape[3] // info.reduction, (name, info)
        assert torch.isfinite(fmap).all()


def test_embed_is_pooled_n_by_d(built: tuple[str, Backbone]) -> None:
    _, model = built
    model.eval()
    with torch.no_grad():
        emb = model.embed(tiny_input(model, batch=3))
    assert emb.shape == (3, model.embed_dim)
    assert torch.isfinite(emb).all()


def test_backward_gives_finite_gradients(built: tuple[str, Backbone]) -> None:
    name, model = built
    model.train()
    model.zero_grad(set_to_none=True)
    x = tiny_input(model)
    loss = sum(f.square().mean() for f in model(x)) + model.embed(x).square().mean()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads, name
    assert all(torch.isfinite(g).all() for g in grads), name
    if model.stem_weight_key:
        stem = dict(model.named_parameters())[model.stem_weight_key]
        assert stem.grad is not None and stem.grad.abs().sum() > 0, name


def test_grad_checkpointing_gives_the_same_outputs_and_grads(built: tuple[str, Backbone]) -> None:
    name, model = built
    model.eval()  # no dropout / drop-path randomness, BN in inference mode
    x = tiny_input(model)
    try:
        model.set_grad_checkpointing(False)
    except ValueError:
        pytest.skip(f"{name} does not support gradient checkpointing")

    def run() -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        model.zero_grad(set_to_none=True)
        maps = model(x)
        sum(f.sum() for f in maps).backward()
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        return [m.detach() for m in maps], grads

    plain_maps, plain_grads = run()
    model.set_grad_checkpointing(True)
    ckpt_maps, ckpt_grads = run()
    model.set_grad_checkpointing(False)
    for a, b in zip(plain_maps, ckpt_maps, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert len(plain_grads) == len(ckpt_grads)
    for a, b in zip(plain_grads, ckpt_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_wrong_band_count_is_a_shape_error(built: tuple[str, Backbone]) -> None:
    _, model = built
    x = tiny_input(model)
    bad = torch.randn(x.shape[0], model.in_chans + 1, *x.shape[2:])
    with pytest.raises(
        ShapeError, match=f"expected {model.in_chans} bands, got {model.in_chans + 1}"
    ):
        model(bad)
    with pytest.raises(ShapeError, match=r"\(N, C, H, W\)"):
        model(x[0])


def test_size_not_a_multiple_is_a_shape_error(built: tuple[str, Backbone]) -> None:
    _, model = built
    if model.size_divisor == 1:
        pytest.skip("any size works")
    x = tiny_input(model)
    odd = x[..., : x.shape[-1] - 1]
    with pytest.raises(ShapeError, match=f"multiples of {model.size_divisor}"):
        model(odd)


def test_unknown_kwarg_lists_the_accepted_ones() -> None:
    with pytest.raises(TypeError, match="unknown keyword argument.*colour") as info:
        geofm.create_backbone("resnet18", colour="red")
    assert "in_chans" in str(info.value) and "out_indices" in str(info.value)


def test_unknown_name_suggests() -> None:
    with pytest.raises(LookupError, match="Did you mean 'resnet18'"):
        geofm.create_backbone("resnet19")


def test_unsupported_common_argument_is_an_error() -> None:
    with pytest.raises(TypeError, match="does not support img_size="):
        geofm.create_backbone("resnet18", img_size=64)


def test_in_chans_must_agree_with_bands() -> None:
    with pytest.raises(ShapeError, match="in_chans=4 but bands lists 13 bands"):
        geofm.create_backbone("resnet18", in_chans=4, bands="sentinel2_l1c")
    model = geofm.create_backbone("resnet18", bands="sentinel2_l1c")
    assert model.in_chans == 13
