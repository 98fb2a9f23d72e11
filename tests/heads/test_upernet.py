from __future__ import annotations

import pytest
import torch

from geofm.errors import ShapeError
from geofm.heads import UPerNetHead

from ._helpers import assert_all_params_get_finite_grads


def _maps(n: int = 2) -> list[torch.Tensor]:
    return [
        torch.randn(n, 4, 16, 16),
        torch.randn(n, 8, 8, 8),
        torch.randn(n, 16, 4, 4),
        torch.randn(n, 32, 2, 2),
    ]


def test_upernet_logits_at_finest_level() -> None:
    head = UPerNetHead([4, 8, 16, 32], num_classes=5, channels=8)
    out = head(_maps())
    assert out.shape == (2, 5, 16, 16)
    assert_all_params_get_finite_grads(head, out)


def test_upernet_every_level_influences_output() -> None:
    head = UPerNetHead([4, 8, 16, 32], num_classes=3, channels=8).eval()
    feats = _maps()
    base = head(feats)
    for i in range(4):
        changed = list(feats)
        changed[i] = feats[i] + 1.0
        assert not torch.allclose(head(changed), base), f"level {i} has no effect"


def test_upernet_single_level_and_custom_pool_scales() -> None:
    head = UPerNetHead([8], num_classes=2, channels=4, pool_scales=(1, 2))
    assert len(head.pool_branches) == 2
    assert head([torch.randn(2, 8, 6, 6)]).shape == (2, 2, 6, 6)


def test_upernet_rejects_mismatched_features() -> None:
    head = UPerNetHead([4, 8], num_classes=2, channels=4)
    with pytest.raises(ShapeError, match=r"channels \[4, 8\]"):
        head([torch.randn(1, 4, 8, 8)])


def test_upernet_rejects_empty_pool_scales() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        UPerNetHead([4], num_classes=2, pool_scales=())
