from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

import geofm
from geofm.errors import ShapeError
from geofm.heads import ClassificationHead, EmbeddingBackbone, PooledModel, RegressionHead


class TinyEmbedder(nn.Module):
    """A conv then global average pooling: ``embed(x) -> (N, 8)``."""

    embed_dim = 8

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 4, stride=4)

    def embed(self, x: Tensor) -> Tensor:
        return self.conv(x).mean(dim=(2, 3))  # (N, 8)


@pytest.mark.parametrize(
    ("head", "out_dim"),
    [
        (ClassificationHead(8, 5), 5),
        (ClassificationHead(8, 4, multi_label=True), 4),
        (RegressionHead(8, 2, hidden_features=(6,)), 2),
        (nn.Linear(8, 3), 3),
    ],
)
def test_forward_is_head_of_pooled_embedding(head: nn.Module, out_dim: int) -> None:
    backbone = TinyEmbedder()
    model = PooledModel(backbone, head).eval()
    x = torch.randn(2, 3, 16, 16)
    out = model(x)
    assert out.shape == (2, out_dim)
    torch.testing.assert_close(out, head(backbone.embed(x)))
    assert model.backbone is backbone and model.head is head
    model.train()
    model(x).pow(2).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_multilabel_training_and_state_dict_keys() -> None:
    model = PooledModel(TinyEmbedder(), ClassificationHead(8, 3, multi_label=True))
    target = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    loss = nn.functional.binary_cross_entropy_with_logits(model(torch.randn(2, 3, 8, 8)), target)
    loss.backward()
    assert sorted(model.state_dict()) == [
        "backbone.conv.bias",
        "backbone.conv.weight",
        "head.linear.bias",
        "head.linear.weight",
    ]
    assert model.head.predict(model.embed(torch.randn(2, 3, 8, 8))).dtype == torch.bool


def test_input_spec_only_when_the_backbone_has_one() -> None:
    model = PooledModel(TinyEmbedder(), nn.Linear(8, 1))
    assert not hasattr(model, "input_spec")
    backbone = TinyEmbedder()
    backbone.input_spec = "spec"  # type: ignore[assignment]
    assert not hasattr(PooledModel(backbone, nn.Linear(8, 1)), "input_spec")  # not an InputSpec
    spec = geofm.InputSpec.unknown(3, multiple=4)
    backbone.input_spec = spec  # type: ignore[assignment]
    model = PooledModel(backbone, nn.Linear(8, 1))
    assert model.input_spec is spec
    other = spec.replace(multiple=8)
    model.input_spec = other
    assert backbone.input_spec is other


def test_registry_backbone() -> None:
    backbone = geofm.create_backbone("resnet18", in_chans=4)
    assert isinstance(backbone, EmbeddingBackbone)
    model = PooledModel(backbone, ClassificationHead(backbone.embed_dim, 6))
    x = torch.randn(2, 4, 32, 32)
    with torch.no_grad():
        out = model.eval()(x)
        torch.testing.assert_close(out, model.head(backbone.embed(x)))
    assert out.shape == (2, 6)


def test_errors() -> None:
    with pytest.raises(TypeError, match=r"embed\(x\) -> \(N, D\).*Linear"):
        PooledModel(nn.Linear(3, 3), nn.Linear(3, 3))
    with pytest.raises(TypeError, match="nn.Module head, got builtin_function_or_method"):
        PooledModel(TinyEmbedder(), torch.sigmoid)  # type: ignore[arg-type]
    model = PooledModel(TinyEmbedder(), nn.Linear(8, 1))
    with pytest.raises(ShapeError, match=r"\(N, C, H, W\) batch, got shape \(3, 16, 16\)"):
        model(torch.randn(3, 16, 16))

    class Maps(nn.Module):
        def embed(self, x: Tensor) -> Tensor:
            return x

    with pytest.raises(ShapeError, match=r"\(N, D\) embeddings, got \(1, 3, 4, 4\)"):
        PooledModel(Maps(), nn.Linear(4, 1))(torch.randn(1, 3, 4, 4))
