"""Shared helpers for the head tests: a tiny fake backbone and a gradient check."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class FakeFeatureInfo:
    channels: int
    reduction: int


class TinyPyramidBackbone(nn.Module):
    """Strided convs giving maps at strides 4, 8, 16, 32 with 4, 8, 16, 32 channels."""

    def __init__(self, in_chans: int = 3, channels: tuple[int, ...] = (4, 8, 16, 32)) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_chans, channels[0], 4, stride=4)
        self.stages = nn.ModuleList(
            nn.Conv2d(a, b, 3, stride=2, padding=1) for a, b in pairwise(channels)
        )
        self.feature_info = [FakeFeatureInfo(c, 4 * 2**i) for i, c in enumerate(channels)]

    def forward(self, x: Tensor) -> list[Tensor]:
        out = [self.stem(x)]
        for stage in self.stages:
            out.append(stage(out[-1]))
        return out


class TinyViTBackbone(nn.Module):
    """A patch-4 'ViT' stand-in: one stride-4 map with 16 channels."""

    def __init__(self, in_chans: int = 3, dim: int = 16, patch: int = 4) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, patch, stride=patch)
        self.feature_info = [FakeFeatureInfo(dim, patch)]

    def forward(self, x: Tensor) -> list[Tensor]:
        return [self.proj(x)]


def assert_all_params_get_finite_grads(module: nn.Module, out: Tensor) -> None:
    module.zero_grad()
    out.float().pow(2).mean().backward()
    for name, p in module.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
