"""The torchgeo recipe of docs/torchgeo.md, without torchgeo.

torchgeo-style sample dicts (``RasterChipDataset`` and hand-made dicts shaped
like torchgeo 0.8's), collated with torchgeo's ``stack_samples`` semantics
(written out below), geofm transforms on the batch dict, a geofm backbone +
FPN + head, a loss step. The same code path with torchgeo's own datasets and
trainer runs in tests/test_torchgeo_trainer.py (``nox -s torchgeo``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import rasterio
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

import geofm
from geofm.datasets import RasterChipDataset
from geofm.datasets.synthetic import landcover_scene, write_landcover_scene
from geofm.heads import FPN, FPNSegmentationHead, SegmentationModel
from geofm.transforms import Compose, Normalize, RandomHorizontalFlip, RandomRotation90

NUM_CLASSES = 4


def stack_samples(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """torchgeo.datasets.stack_samples (0.8.1): stack tensors, keep other values as lists."""
    batch: dict[str, list[Any]] = {key: [sample[key] for sample in samples] for key in samples[0]}
    return {
        key: torch.stack(values) if isinstance(values[0], torch.Tensor) else values
        for key, values in batch.items()
    }


def build_model() -> SegmentationModel:
    backbone = geofm.create_backbone("resnet18", bands="rgb")
    return SegmentationModel(
        backbone,
        FPN(backbone.feature_info.channels(), out_channels=32),
        FPNSegmentationHead(32, num_classes=NUM_CLASSES),
    )


@pytest.fixture
def scene(tmp_path: Path) -> tuple[Path, Path]:
    """A 128 x 128 RGB scene with named bands and its 4-class label raster."""
    image, mask = write_landcover_scene(
        tmp_path, landcover_scene(size=128, bands="rgb", num_classes=NUM_CLASSES, seed=0)
    )
    with rasterio.open(image, "r+") as dst:
        for band, name in enumerate(("red", "green", "blue"), start=1):
            dst.set_band_description(band, name)
    return image, mask


def test_raster_chips_collate_like_torchgeo(scene: tuple[Path, Path]) -> None:
    model = build_model()
    chips = RasterChipDataset(*scene, size=64, input_spec=model.input_spec)
    loader = DataLoader(chips, batch_size=3, collate_fn=stack_samples)
    batch = next(iter(loader))
    assert batch["image"].shape == (3, 3, 64, 64) and batch["image"].dtype == torch.float32
    assert batch["mask"].shape == (3, 64, 64) and batch["mask"].dtype == torch.int64
    assert batch["crs"] == ["EPSG:32633"] * 3  # not a tensor: a list, as in torchgeo
    assert batch["bounds"].shape == (3, 4)  # RasterChipDataset's bounds are tensors: stacked
    assert batch["image"].max() > 1  # values as stored (uint8): the transform normalises


def test_transforms_take_the_batch_dict_and_pass_metadata_through() -> None:
    model = build_model()
    raw = torch.randint(0, 256, (2, 3, 32, 32)).float()
    # torchgeo 0.8 samples carry a CRS object and a slice query as "bounds": lists after collation.
    samples = [
        {
            "image": raw[i],
            "mask": torch.randint(0, NUM_CLASSES, (32, 32)),
            "crs": object(),
            "bounds": (slice(0.0, 320.0), slice(0.0, 320.0), slice(None)),
        }
        for i in range(2)
    ]
    batch = stack_samples(samples)
    out = Compose([Normalize.from_spec(model)])(batch)
    assert out["crs"] is batch["crs"] and out["bounds"] is batch["bounds"]
    assert torch.allclose(out["image"], model.input_spec.prepare(raw))  # what geofm predict does
    assert torch.equal(out["mask"], batch["mask"])


def test_recipe_trains(scene: tuple[Path, Path]) -> None:
    model = build_model().train()
    chips = RasterChipDataset(*scene, size=64, input_spec=model.input_spec)
    loader = DataLoader(chips, batch_size=4, shuffle=False, collate_fn=stack_samples)
    transform = Compose([Normalize.from_spec(model), RandomHorizontalFlip(), RandomRotation90()])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first_conv = model.backbone.parameters().__next__()
    before = first_conv.detach().clone()
    fixed = transform(next(iter(loader)), generator=torch.Generator().manual_seed(0))

    def loss_on(batch: dict[str, Any]) -> torch.Tensor:
        logits = model(batch["image"])
        assert logits.shape == (4, NUM_CLASSES, 64, 64)
        return F.cross_entropy(logits, batch["mask"], ignore_index=-100)

    for batch in loader:  # one epoch of the recipe's loop: gradients reach every part
        loss = loss_on(transform(batch))
        optimizer.zero_grad()
        loss.backward()
        assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0
        assert all(p.grad is not None for p in model.head.parameters())
        optimizer.step()
    assert not torch.equal(first_conv, before)  # the backbone learns too
    losses = []
    for _ in range(8):  # then the loss of one batch goes down
        loss = loss_on(fixed)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.1, losses
