from __future__ import annotations

import pytest
import torch

from geofm.errors import ShapeError
from geofm.heads import ClassificationHead

from ._helpers import assert_all_params_get_finite_grads


def test_linear_eval_init_is_normal_001_with_zero_bias() -> None:
    head = ClassificationHead(512, num_classes=64)
    w = head.linear.weight.detach()
    assert w.std().item() == pytest.approx(0.01, rel=0.05)
    assert abs(w.mean().item()) < 1e-3
    assert torch.count_nonzero(head.linear.bias) == 0


def test_default_init_can_be_kept() -> None:
    head = ClassificationHead(512, num_classes=64, init_std=None)
    assert torch.count_nonzero(head.linear.bias) > 0


def test_multiclass_predict_is_argmax() -> None:
    head = ClassificationHead(8, num_classes=5)
    x = torch.randn(4, 8)
    assert torch.equal(head.predict(x), head(x).argmax(dim=1))


def test_multilabel_predict_thresholds_sigmoid() -> None:
    head = ClassificationHead(8, num_classes=5, multi_label=True, threshold=0.3)
    x = torch.randn(4, 8)
    assert torch.equal(head.predict(x), torch.sigmoid(head(x)) > 0.3)


@pytest.mark.parametrize("pool", ["avg", "max"])
def test_pooled_maps_equal_linear_on_pooled(pool: str) -> None:
    head = ClassificationHead(6, num_classes=3, pool=pool)  # type: ignore[arg-type]
    x = torch.randn(2, 6, 4, 5)
    pooled = x.mean(dim=(2, 3)) if pool == "avg" else x.amax(dim=(2, 3))
    torch.testing.assert_close(head(x), head.linear(pooled))
    assert_all_params_get_finite_grads(head, head(x))


def test_rejects_maps_without_pool() -> None:
    with pytest.raises(ShapeError, match=r"expects \(N, D\) input with D=6"):
        ClassificationHead(6, num_classes=3)(torch.randn(2, 6, 4, 4))


def test_rejects_unknown_pool() -> None:
    with pytest.raises(ValueError, match="pool must be"):
        ClassificationHead(6, num_classes=3, pool="mean")  # type: ignore[arg-type]
