"""geofm models inside torchgeo's SemanticSegmentationTask and Lightning's Trainer.

Skipped unless torchgeo is installed (it is not a test dependency): run
``nox -s torchgeo``, which installs torchgeo 0.8.1 (and Lightning with it).
Two checks: every python block of docs/torchgeo.md runs, the torchgeo ones
included; and the page's task trains from a torchgeo datamodule whose
normalisation is replaced by the model's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("torchgeo")

from lightning.pytorch import Trainer  # torchgeo requires lightning
from test_docs import DOCS, extract_blocks
from torchgeo.datamodules import NonGeoDataModule
from torchgeo.datasets import NonGeoDataset

from geofm.hub import from_pretrained
from geofm.transforms import Normalize

PAGE = DOCS / "torchgeo.md"
NUM_CLASSES = 4


def run_page(workdir: Path) -> dict[str, Any]:
    """Run the page's python blocks in order in ``workdir``; return their namespace."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    blocks = [
        b
        for b in extract_blocks(PAGE)
        if b.lang == "python"
        and (b.run or (b.skip_reason is not None and "nox -s torchgeo" in b.skip_reason))
    ]
    assert sum(not b.run for b in blocks) >= 3, "the torchgeo blocks of the page are missing"
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        for block in blocks:
            exec(compile("\n" * block.line + block.code, str(PAGE), "exec"), namespace)
    finally:
        os.chdir(cwd)
    return namespace


def test_every_block_of_the_page_runs_with_torchgeo(tmp_path: Path) -> None:
    ns = run_page(tmp_path)
    task = ns["task"]
    assert ns["trainer"].state.finished
    assert task.hparams["bands"] == "rgb" and task.hparams["backbone"] == "resnet18"
    assert type(task.model).__name__ == "SegmentationModel"
    saved = from_pretrained(tmp_path / "torchgeo-model")
    assert saved.input_spec == task.model.input_spec
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(saved.eval()(x), task.model.eval()(x), atol=1e-5)


class ConstantChips(NonGeoDataset):
    """In-memory torchgeo dataset: every image has the same raw value per band."""

    raw = (40.0, 120.0, 200.0)

    def __init__(self, split: str = "train", length: int = 8) -> None:
        self.split, self.length = split, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(index)
        image = torch.tensor(self.raw).view(3, 1, 1).expand(3, 32, 32).clone()
        return {"image": image, "mask": torch.randint(0, NUM_CLASSES, (32, 32), generator=g)}


def test_task_trains_from_a_datamodule_with_the_models_normalisation(tmp_path: Path) -> None:
    ns = run_page(tmp_path)  # defines GeofmSegmentationTask as the page does
    task = ns["GeofmSegmentationTask"](
        backbone="resnet18", bands="rgb", num_classes=NUM_CLASSES, fpn_channels=16
    )
    datamodule = NonGeoDataModule(ConstantChips, batch_size=4)
    normalize = Normalize.from_spec(task.model)
    datamodule.aug = normalize  # instead of torchgeo's default division by 255
    seen: list[torch.Tensor] = []
    task.model.register_forward_pre_hook(lambda _, args: seen.append(args[0].detach().clone()))
    before = [p.detach().clone() for p in task.model.parameters()]
    trainer = Trainer(
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(task, datamodule=datamodule)
    assert trainer.state.finished and len(seen) >= 2
    expected = task.model.input_spec.prepare(torch.tensor(ConstantChips.raw).view(1, 3, 1, 1))
    for batch in seen:  # the model saw the spec's numbers, as geofm predict will give it
        assert torch.allclose(batch, expected.expand_as(batch), atol=1e-5)
    changed = [not torch.equal(a, b) for a, b in zip(before, task.model.parameters(), strict=True)]
    assert all(changed[:1]) and sum(changed) > len(changed) // 2  # the backbone stem trained
