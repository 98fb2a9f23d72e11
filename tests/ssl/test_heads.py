from __future__ import annotations

import warnings

import pytest
import torch
from lightly.models.modules import heads as lightly_heads
from torch import nn

from geofm.ssl import (
    DINOProjectionHead,
    MoCoProjectionHead,
    SimCLRProjectionHead,
    VICRegProjectionHead,
)


def _assert_same_outputs(ours: nn.Module, theirs: nn.Module, input_dim: int) -> None:
    x = torch.randn(6, input_dim)
    for train in (True, False):
        ours.train(train)
        theirs.train(train)
        torch.testing.assert_close(ours(x), theirs(x))


@pytest.mark.parametrize("batch_norm", [False, True])
def test_moco_head_has_lightly_layout(batch_norm: bool) -> None:
    theirs = lightly_heads.MoCoProjectionHead(16, 32, 8, num_layers=2, batch_norm=batch_norm)
    ours = MoCoProjectionHead(input_dim=16, hidden_dim=32, output_dim=8, use_batch_norm=batch_norm)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    _assert_same_outputs(ours, theirs, 16)
    assert (ours.layers[0].bias is None) == batch_norm  # no Linear bias in front of BN


def test_spectral_earth_moco_head_shapes() -> None:
    head = MoCoProjectionHead(input_dim=2048, hidden_dim=2048, output_dim=128, use_batch_norm=True)
    kinds = [type(m).__name__ for m in head.layers]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d"]
    assert head(torch.randn(2, 2048)).shape == (2, 128)


def test_simclr_head_has_lightly_layout() -> None:
    theirs = lightly_heads.SimCLRProjectionHead(16, 32, 8, num_layers=3)
    ours = SimCLRProjectionHead(input_dim=16, hidden_dim=32, output_dim=8, num_layers=3)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    _assert_same_outputs(ours, theirs, 16)


def test_contrastive_heads_reject_one_layer() -> None:
    with pytest.raises(ValueError, match="num_layers=1"):
        SimCLRProjectionHead(input_dim=4, num_layers=1)


def _reference_vicreg_projector(embedding: int, mlp: str) -> nn.Sequential:
    """The VICReg reference's Projector(args, embedding), rewritten for the test."""
    sizes = [embedding, *map(int, mlp.split("-"))]
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 2):
        layers += [nn.Linear(sizes[i], sizes[i + 1]), nn.BatchNorm1d(sizes[i + 1]), nn.ReLU(True)]
    layers.append(nn.Linear(sizes[-2], sizes[-1], bias=False))
    return nn.Sequential(*layers)


def test_vicreg_head_from_spec_matches_reference_projector() -> None:
    reference = _reference_vicreg_projector(16, "64-64-32")
    ours = VICRegProjectionHead.from_spec("64-64-32", input_dim=16)
    ours.layers.load_state_dict(reference.state_dict(), strict=True)
    _assert_same_outputs(ours, reference, 16)
    assert ours.layers[-1].bias is None


def test_vicreg_head_single_layer_and_bad_specs() -> None:
    head = VICRegProjectionHead(input_dim=8, dims=[4])
    assert [type(m).__name__ for m in head.layers] == ["Linear"]
    for spec in ("8192-x-8192", "", "8192--8192", "-5"):
        with pytest.raises(ValueError, match="positive integers joined by '-'"):
            VICRegProjectionHead.from_spec(spec, input_dim=8)
    with pytest.raises(ValueError, match="at least one layer"):
        VICRegProjectionHead(input_dim=8, dims=[])


def _lightly_dino_head(**kwargs: int | bool) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.nn.utils.weight_norm is deprecated
        head: nn.Module = lightly_heads.DINOProjectionHead(**kwargs)
        return head


def test_dino_head_matches_lightly() -> None:
    theirs = _lightly_dino_head(input_dim=16, hidden_dim=32, bottleneck_dim=8, output_dim=64)
    ours = DINOProjectionHead(input_dim=16, hidden_dim=32, bottleneck_dim=8, output_dim=64)
    state = {
        key.replace("last_layer.weight_g", "last_layer.parametrizations.weight.original0").replace(
            "last_layer.weight_v", "last_layer.parametrizations.weight.original1"
        ): value
        for key, value in theirs.state_dict().items()
    }
    ours.load_state_dict(state, strict=True)
    _assert_same_outputs(ours, theirs, 16)


def test_dino_head_last_layer_is_normalised_and_its_norm_frozen() -> None:
    head = DINOProjectionHead(input_dim=8, hidden_dim=16, bottleneck_dim=4, output_dim=32)
    torch.testing.assert_close(head.last_layer.weight.norm(dim=1), torch.ones(32))
    trainable = {name for name, p in head.named_parameters() if p.requires_grad}
    assert "last_layer.parametrizations.weight.original0" not in trainable
    assert "last_layer.parametrizations.weight.original1" in trainable
    free = DINOProjectionHead(
        input_dim=8, hidden_dim=16, bottleneck_dim=4, output_dim=32, normalize_last_layer=False
    )
    assert all(p.requires_grad for p in free.parameters())


def test_dino_head_init_is_truncated_normal_with_zero_bias() -> None:
    head = DINOProjectionHead(input_dim=256, hidden_dim=512, bottleneck_dim=256, output_dim=8)
    first = head.layers[0]
    assert isinstance(first, nn.Linear)
    assert abs(first.weight.std().item() - 0.02) < 0.002
    assert torch.count_nonzero(first.bias) == 0
    kinds = [type(m).__name__ for m in head.layers]
    assert kinds == ["Linear", "GELU", "Linear", "GELU", "Linear"]


def test_dino_head_cancels_last_layer_gradients_only_during_frozen_epochs() -> None:
    head = DINOProjectionHead(
        input_dim=8,
        hidden_dim=16,
        bottleneck_dim=4,
        output_dim=32,
        normalize_last_layer=False,
        freeze_last_layer_epochs=2,
    )
    for epoch, frozen in [(0, True), (1, True), (2, False)]:
        head.zero_grad()
        head(torch.randn(3, 8)).square().sum().backward()
        head.cancel_last_layer_gradients(epoch=epoch)
        last = [p.grad for p in head.last_layer.parameters()]
        assert all((g is None) == frozen for g in last)
        assert head.layers[0].weight.grad is not None


def test_dino_head_options_and_errors() -> None:
    head = DINOProjectionHead(
        input_dim=8,
        hidden_dim=16,
        bottleneck_dim=4,
        output_dim=32,
        num_layers=1,
        use_batch_norm=True,
    )
    assert [type(m).__name__ for m in head.layers] == ["Linear"]
    with_bn = DINOProjectionHead(
        input_dim=8, hidden_dim=16, bottleneck_dim=4, output_dim=32, use_batch_norm=True
    )
    assert sum(isinstance(m, nn.BatchNorm1d) for m in with_bn.layers) == 2
    with pytest.raises(ValueError, match="num_layers >= 1"):
        DINOProjectionHead(input_dim=8, num_layers=0)


def test_every_head_gets_finite_gradients() -> None:
    heads: list[nn.Module] = [
        VICRegProjectionHead(input_dim=8, dims=(16, 16, 16)),
        MoCoProjectionHead(input_dim=8, hidden_dim=16, output_dim=4, use_batch_norm=True),
        SimCLRProjectionHead(input_dim=8, hidden_dim=16, output_dim=4),
        DINOProjectionHead(input_dim=8, hidden_dim=16, bottleneck_dim=4, output_dim=32),
    ]
    for head in heads:
        head(torch.randn(4, 8)).square().mean().backward()
        for name, parameter in head.named_parameters():
            if parameter.requires_grad:
                assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
