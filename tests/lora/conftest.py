"""Fixtures shared by the LoRA tests: tiny timm models and adapter randomisation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import timm
import torch
from torch import nn


def _tiny_vit(**kwargs: Any) -> Any:
    kwargs = {"img_size": 32, "depth": 2, "num_classes": 3, **kwargs}
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, **kwargs).eval()


@pytest.fixture
def tiny_vit() -> Callable[..., Any]:
    """Factory of a 2-block timm ViT-Tiny at 32 px (192-d, 3 heads, 3 classes)."""
    return _tiny_vit


@pytest.fixture
def randomize() -> Callable[[nn.Module], None]:
    """Give every LoRA A/B in a model random values so adapters change the output."""

    def _randomize(model: nn.Module) -> None:
        with torch.no_grad():
            for name, param in model.named_parameters():
                if ".lora_A." in name or ".lora_B." in name or name.startswith("lora_"):
                    param.normal_(std=0.2)

    return _randomize
