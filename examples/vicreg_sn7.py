r"""VICReg on SpaceNet-7 countries: ResNet-18 pretraining, linear evaluation, 1% / 10% fine-tuning.

What it shows (citiies_contrastive_learning + the VICReg reference, SOURCES.md
sections 4.1-4.2): a geofm ``resnet18`` backbone and a VICReg expander
(``geofm.ssl.VICRegProjectionHead``, source "8192-8192-8192") trained with
``geofm.losses.VICRegLoss(gather_distributed=True)`` (25 / 25 / 1) on two
views of each patch. The views follow the SN7 adaptation: RandomCrop instead
of RandomResizedCrop, ColorJitter(0.6, 0.6, 0.4, 0.2) p 0.8, grayscale p 0.3,
a 3-tap Gaussian blur (p 1.0 / 0.1), solarisation (p 0.0 / 0.3), ImageNet
normalisation (``--views reference`` uses ``geofm.transforms.VICRegTransform``
instead). The optimiser is the source's **LARS** (momentum 0.9, eta 0.001,
biases and norms excluded from weight decay and the trust ratio;
``geofm.ssl.LARS``) with ``lr = base_lr * batch / 256``, a linear warm-up and a
cosine decay to 0.001 x; ``--optimizer adamw`` is the alternative. Then:

- linear evaluation: frozen backbone (eval mode), ``ClassificationHead`` with
  N(0, 0.01) weights, SGD momentum 0.9 + cosine; the same probe on the
  randomly initialised backbone is reported as the baseline;
- semi-supervised fine-tuning on 1% and 10% of the labelled training set
  (backbone and head, separate learning rates);
- top-1 / top-5 accuracy with ``geofm.metrics.topk_accuracy`` on a held-out split
  (top-5 only with more than 5 classes: with 5 or fewer it is 1.0 by construction,
  so it is left out and ``top5_omitted`` says why).

Pixel values: SpaceNet-7 mosaics are divided by their value range and clipped
to [0, 1]: 255 for 8-bit files, ``2**n - 1`` for files that declare
``NBITS=n``; 16-bit files without that tag need ``--value-range`` (e.g. 2047
for 11-bit DN), instead of being divided by 255 (which saturates them).
``input_saturated_fraction`` reports the share of training pixels at full
scale.

Patches (``--data-dir``): ``geofm.datasets.RasterChipDataset`` over the mosaics
(bands 1-3, the country of each mosaic's AOI as ``image_labels``), each patch one
windowed read of 256 x 256 px. The mosaics are split per AOI (a seeded 75/25
split of each AOI's months). Training patches are seeded random windows of the
training mosaics, 16 per mosaic and epoch, redrawn every epoch (``set_epoch``);
validation patches are the 256 px grid of the held-out mosaics (16 of a 1024 px
mosaic). Both pretraining and the probes' training set use the random windows.

Distributed: under ``torchrun`` (``WORLD_SIZE > 1``) the script joins a gloo
process group (CPU works), wraps the model in ``DistributedDataParallel`` and
shards the data with a ``DistributedSampler``; ``--batch-size`` is the
**global** batch, as in the reference. ``VICRegLoss`` gathers the embeddings of
all ranks for the variance and covariance terms (the invariance term is local
and DDP averages it). BatchNorm would still see only the local batch, so the
2-rank run would not equal the 1-rank run (the reference uses SyncBatchNorm,
which does not run on CPU): every BatchNorm is therefore replaced by
``geofm.ssl.GlobalBatchNorm`` (``convert_to_global_batchnorm``), which all-reduces
the batch sums with an autograd-aware collective, so statistics and their
gradients are those of the global batch.
Each sample's two views are drawn from a generator seeded by (seed, epoch,
sample index), independent of the rank. Together this makes 2 ranks x batch
``b`` reproduce 1 rank x batch ``2 b`` up to float rounding: with
``--precision float64`` the loss curves agree to 1e-8 (checked in
``tests/test_examples.py``); in float32 the rounding differences of the two
summation orders grow to about 1% within a few steps of the tiny,
high-learning-rate default, so the check runs in double. Only rank 0
evaluates and writes files.

Run (tiny defaults: synthetic "country" scenes from
``geofm.datasets.SyntheticSceneClassification``, 8 classes, 32 px crops from
40 px scenes, "256-256-256" expander, 30 steps; about 25 s on a 2-core CPU)::

    python examples/vicreg_sn7.py
    torchrun --nproc_per_node=2 examples/vicreg_sn7.py   # gloo on CPU

Real data (``geofm.datasets.SpaceNet7Patches`` layout, which gives the mosaics,
countries and value range: ``<root>/train/<AOI>/images`` + ``<root>/countries.csv``;
16 patches of 256 px per mosaic and epoch, 31 countries; the 8-bit SN7 mosaics need
no ``--value-range``), at the source's scale (2 GPUs, batch 256, base lr 0.3, 100
epochs)::

    torchrun --nproc_per_node=2 examples/vicreg_sn7.py --data-dir /data/spacenet7 \\
        --image-size 224 --projector 8192-8192-8192 --batch-size 256 --base-lr 0.3 \\
        --pretrain-steps 6700 --warmup-steps 670 --linear-steps 2700 --finetune-steps 700

Deviations: the split is a seeded 75/25 split of each AOI's mosaics (the source
ships CSV files of patches), and training patches are random 256 px windows of the
training mosaics instead of the fixed grid of the zero-padded mosaic (the same number
per epoch, never padding); linear evaluation trains on precomputed, standardised features of the
un-augmented training images (the reference crops and flips and feeds raw
features; MAE-style standardisation keeps lr 0.3 stable for any feature scale,
and, at base lr 3.0, lifted the tiny run's probe from 0.30 to 0.57 top-1); the fine-tuning
head has an affine-free BatchNorm in front for the same reason; the learning rate follows
the VICReg reference (``base_lr * batch / 256``), not the SN7 code's
``* 8 / 256`` with its warm-up quirk; no AMP.

Tiny-default results (about 25 s, 2 minutes while the VM was busy; measured 2026-12-06,
torch 2.14.1, ``OMP_NUM_THREADS=1`` (the script sets its own thread count: both cores),
on a 2-core VM shared with other jobs, times +-30%; seeds 0 / 1 / 2): linear top-1
0.59 / 0.57 / 0.56 (top-5 0.94-0.97) against 0.33 / 0.31 / 0.20 for the same probe on the
random-init backbone, chance 0.125. The 1% / 10% fine-tuning runs stay near chance
(0.07-0.18 top-1) at this scale. What was measured: 32
px crops reach layer4 as 1 x 1 maps, whose BatchNorm running variances end near 2e-3,
and in eval mode the pretrained embedding moves about 35x more under a small conv-weight
perturbation than the freshly initialised network's; every backbone update tried (SGD
1e-2 to 1e-4, AdamW to 1e-5, LARS; BatchNorm in train or eval mode; gradient clipping)
wiped out what a head alone learns from the same 8-29 labelled scenes (0.62 with the
backbone frozen). Fine-tuning needs the real run's scale.
"""

from __future__ import annotations

import copy
import importlib.util
import itertools
import json
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from _cli import check_choices, config_from_argv, progress
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, default_collate

import geofm
from geofm._dist import all_reduce_sum, rank, world_size
from geofm.datasets import RasterChipDataset
from geofm.errors import MissingDependencyError
from geofm.heads import ClassificationHead, PooledModel
from geofm.hub import save_pretrained
from geofm.losses import VICRegLoss
from geofm.metrics import topk_accuracy
from geofm.ssl import LARS, VICRegProjectionHead, convert_to_global_batchnorm
from geofm.transforms import (
    ColorJitter,
    Compose,
    MultiViewTransform,
    Normalize,
    RandomGaussianBlur,
    RandomGrayscale,
    RandomHorizontalFlip,
    RandomSolarize,
    Transform,
    VICRegTransform,
)

Sample = dict[str, torch.Tensor]

PATCH = 256  # SN7 code: 16 patches of 256 px per 1024 px mosaic
PATCHES_PER_MOSAIC = 16


@dataclass(frozen=True)
class Config:
    """VICReg-SN7 settings (every field is also a command-line flag)."""

    data_dir: str = ""  # SpaceNet7Patches root; empty: synthetic scenes
    num_classes: int = 8  # synthetic only (SN7: 31 countries, read from countries.csv)
    value_range: float = 0.0  # raw full-scale value; 0: from the mosaics (uint8 255, NBITS)
    samples: int = 384  # synthetic scenes
    scene_size: int = 40  # synthetic scene side (SN7 patches: 256)
    image_size: int = 32  # crop side (source: 224)
    val_fraction: float = 0.25
    projector: str = "256-256-256"  # source: 8192-8192-8192
    views: Literal["sn7", "reference"] = "sn7"  # reference: geofm's VICRegTransform
    optimizer: Literal["lars", "adamw"] = "lars"  # lars: the source's
    base_lr: float = 0.3  # source (x global batch / 256)
    weight_decay: float = 1e-6
    batch_size: int = 64  # global batch (source: 256 on 2 GPUs)
    pretrain_steps: int = 30
    warmup_steps: int = 4  # source: 10 epochs
    linear_steps: int = 300
    linear_lr: float = 0.3  # source lr_head 0.3
    finetune_steps: int = 40
    finetune_lr_head: float = 0.3
    finetune_lr_backbone: float = 0.01
    eval_batch_size: int = 64
    seed: int = 0
    precision: Literal["float32", "float64"] = "float32"  # float64: the 2-rank == 1-rank test
    pretrain_only: bool = False
    plot: bool = True  # write vicreg_sn7.png (needs matplotlib, checked at start)
    progress: bool = True  # tqdm bars (if installed); --no-progress silences them
    output_dir: str = "runs/vicreg_sn7"


class BothViews(nn.Module):
    """Runs ``model`` on both views in one forward call, as DDP expects."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x_a: torch.Tensor, x_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``model``'s outputs for both views (here expander outputs ``(N, D)``)."""
        return self.model(x_a), self.model(x_b)


class InMemory(Dataset[Sample]):
    """Materialised samples (the synthetic scenes are rendered once)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> Sample:
        return {"image": self.images[index], "label": self.labels[index]}


class Subset(Dataset[Sample]):
    """Samples ``indices`` of ``base``, with images scaled to ``[0, 1]``."""

    def __init__(self, base: Dataset[Sample], indices: list[int], scale: float) -> None:
        self.base, self.indices, self.scale = base, indices, scale

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Sample:
        s = self.base[self.indices[index]]
        return {"image": (s["image"].float() / self.scale).clamp(0, 1), "label": s["label"]}

    def set_epoch(self, epoch: int) -> None:
        """Draw the epoch's random windows (chip datasets; in-memory samples stay)."""
        if isinstance(self.base, RasterChipDataset):
            self.base.set_epoch(epoch)


class TwoViews(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Two augmented views per sample, seeded by (seed, epoch, index): independent of the rank."""

    def __init__(self, base: Dataset[Sample], views: MultiViewTransform, seed: int) -> None:
        self.base, self.views, self.seed, self.epoch = base, views, seed, 0

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def set_epoch(self, epoch: int) -> None:
        """New views (and, from chip datasets, new windows) for ``epoch``."""
        self.epoch = epoch
        if isinstance(self.base, Subset):
            self.base.set_epoch(epoch)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        seed = int(np.random.SeedSequence([self.seed, self.epoch, index]).generate_state(1)[0])
        a, b = self.views(
            {"image": self.base[index]["image"]}, generator=torch.Generator().manual_seed(seed)
        )
        return a["image"], b["image"]


class RandomCrop(Transform):
    """Random ``size`` x ``size`` crop without resizing (the SN7 code's RandomCrop(224))."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, sample: Sample, *, generator: torch.Generator | None = None) -> Sample:
        """Crop ``image`` ``(..., H, W)``: one offset for the whole sample."""
        image = sample["image"]
        h, w = image.shape[-2:]
        if h < self.size or w < self.size:
            raise ValueError(f"RandomCrop({self.size}) got an image of {h} x {w} pixels.")
        top = int(torch.randint(0, h - self.size + 1, (1,), generator=generator))
        left = int(torch.randint(0, w - self.size + 1, (1,), generator=generator))
        crop = image[..., top : top + self.size, left : left + self.size]  # (..., s, s)
        return {**sample, "image": crop}


def sn7_views(image_size: int) -> MultiViewTransform:
    """The SN7 adaptation's two views."""

    def view(blur_p: float, solarize_p: float) -> Compose:
        return Compose(
            [
                RandomCrop(image_size),
                RandomHorizontalFlip(p=0.5),
                ColorJitter(0.6, 0.6, 0.4, 0.2, p=0.8),
                RandomGrayscale(p=0.3),
                RandomGaussianBlur(3, sigma=(0.1, 2.0), p=blur_p),
                RandomSolarize(0.5, p=solarize_p),
                Normalize.from_sensor("rgb"),
            ]
        )

    return MultiViewTransform([view(1.0, 0.0), view(0.1, 0.3)])


def split_mosaics(
    files: list[tuple[Path, int]], val_fraction: float
) -> tuple[list[tuple[Path, int]], list[tuple[Path, int]]]:
    """A seeded split of each AOI's mosaics: ``val_fraction`` of them held out.

    An AOI with two or more mosaics holds out at least one, so every country with
    such an AOI is in both parts; an AOI with one mosaic only trains.
    """
    by_aoi: dict[Path, list[tuple[Path, int]]] = {}
    for path, label in files:
        by_aoi.setdefault(path.parent.parent, []).append((path, label))  # <AOI>/images/x.tif
    gen = torch.Generator().manual_seed(42)
    train: list[tuple[Path, int]] = []
    val: list[tuple[Path, int]] = []
    for aoi in sorted(by_aoi):
        mosaics = by_aoi[aoi]
        perm = torch.randperm(len(mosaics), generator=gen).tolist()
        n_val = max(1, int(val_fraction * len(mosaics))) if len(mosaics) > 1 else 0
        val += [mosaics[i] for i in perm[:n_val]]
        train += [mosaics[i] for i in perm[n_val:]]
    if not val:
        raise ValueError(
            f"No mosaic to hold out: each of the {len(by_aoi)} AOIs has one mosaic. The "
            "per-AOI split needs two or more mosaics in some AOI."
        )
    return train, val


def mosaic_chips(files: list[tuple[Path, int]], **sampling: Any) -> RasterChipDataset:
    """256 px RGB patches of ``files`` (mosaic, country) with the country as ``label``."""
    return RasterChipDataset(
        [path for path, _ in files],
        image_labels=[label for _, label in files],
        size=PATCH,
        bands=[1, 2, 3],
        rank=0,  # one shard for all: the DistributedSampler splits the patches
        world_size=1,
        **sampling,
    )


def load_data(cfg: Config) -> tuple[Subset, Subset, int]:
    """Train and validation sets (images in [0, 1]) and the number of classes."""
    if cfg.data_dir:
        from geofm.datasets import SpaceNet7Patches

        sn7 = SpaceNet7Patches(cfg.data_dir)  # the layout, the countries, the value range
        # The sensor's full scale (8-bit: 255; NBITS tag; or --value-range), read up front.
        scale = cfg.value_range if cfg.value_range > 0 else sn7.value_range
        train_files, val_files = split_mosaics(sn7.files, cfg.val_fraction)
        train_chips = mosaic_chips(
            train_files,
            sampler="random",
            length=PATCHES_PER_MOSAIC * len(train_files),
            seed=cfg.seed,
        )
        val_chips = mosaic_chips(val_files)  # the grid: 16 patches of a 1024 px mosaic
        return (
            Subset(train_chips, list(range(len(train_chips))), scale),
            Subset(val_chips, list(range(len(val_chips))), scale),
            len(sn7.countries),
        )
    from geofm.datasets import SyntheticSceneClassification

    synth = SyntheticSceneClassification(
        length=cfg.samples, num_classes=cfg.num_classes, size=cfg.scene_size, seed=cfg.seed
    )
    batch = default_collate([synth[i] for i in range(len(synth))])
    base = InMemory(batch["image"], batch["label"])  # rendered once
    n = len(base)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(42)).tolist()
    n_val = max(1, int(cfg.val_fraction * n))
    return Subset(base, perm[n_val:], 1.0), Subset(base, perm[:n_val], 1.0), cfg.num_classes


def lr_at(step: int, *, peak: float, warmup: int, total: int) -> float:
    """Linear warm-up from 0, then cosine to ``0.001 * peak`` (VICReg reference)."""
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    end = 0.001 * peak
    return end + (peak - end) * 0.5 * (1 + math.cos(math.pi * t))


def pretrain(cfg: Config, train_set: Subset) -> tuple[geofm.Backbone, list[float]]:
    """VICReg pretraining; returns the (unwrapped) backbone and the global loss per step."""
    world = world_size()
    if cfg.batch_size % world:
        raise ValueError(
            f"batch_size (global) must be divisible by the {world} ranks, got {cfg.batch_size}."
        )
    torch.manual_seed(cfg.seed)
    backbone = geofm.create_backbone("resnet18")
    projector = VICRegProjectionHead.from_spec(cfg.projector, input_dim=backbone.embed_dim)
    dtype = torch.float64 if cfg.precision == "float64" else torch.float32
    encoder = PooledModel(backbone, projector)  # pooled embedding -> VICReg expander
    model: nn.Module = convert_to_global_batchnorm(BothViews(encoder)).to(dtype)
    if world > 1:
        model = DistributedDataParallel(model)
    if cfg.views == "sn7":
        views = sn7_views(cfg.image_size)
    else:
        views = VICRegTransform(cfg.image_size, normalize=Normalize.from_sensor("rgb"))
    pairs = TwoViews(train_set, views, cfg.seed)
    sampler: DistributedSampler[tuple[torch.Tensor, torch.Tensor]] = DistributedSampler(
        pairs, num_replicas=world, rank=rank(), shuffle=True, seed=cfg.seed, drop_last=True
    )
    # One worker (one thread) augments while the main process trains.
    loader = DataLoader(
        pairs, batch_size=cfg.batch_size // world, sampler=sampler, drop_last=True, num_workers=1
    )
    if len(loader) == 0:
        raise ValueError(f"The training set ({len(pairs)}) is smaller than one batch.")
    criterion = VICRegLoss(gather_distributed=True)
    peak = cfg.base_lr * cfg.batch_size / 256
    params = list(model.parameters())
    optimizer: torch.optim.Optimizer
    if cfg.optimizer == "lars":
        optimizer = LARS(params, lr=peak, weight_decay=cfg.weight_decay)
    else:
        optimizer = torch.optim.AdamW(params, lr=peak, weight_decay=cfg.weight_decay)

    def batches() -> Iterator[list[torch.Tensor]]:
        """The loader's batches, epoch after epoch (reshuffled and re-augmented each epoch)."""
        for epoch in itertools.count():
            sampler.set_epoch(epoch)
            pairs.set_epoch(epoch)  # new views, and new windows of the mosaics
            yield from loader

    losses: list[float] = []
    model.train()
    steps = progress(range(cfg.pretrain_steps), desc="vicreg", show=cfg.progress)
    for step, (x_a, x_b) in zip(steps, batches(), strict=False):  # stops after the steps
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, peak=peak, warmup=cfg.warmup_steps, total=cfg.pretrain_steps)
        loss = criterion(*model(x_a.to(dtype), x_b.to(dtype)))
        optimizer.zero_grad()
        torch.autograd.backward(loss)
        optimizer.step()
        # Global loss = mean over ranks (the invariance term is local, the rest global).
        losses.append(float(all_reduce_sum(loss.detach())) / world)
    return backbone, losses  # converted in place: GlobalBatchNorm layers, trained weights


def plain_backbone(trained: nn.Module) -> geofm.Backbone:
    """A registry ``resnet18`` (plain BatchNorm) holding ``trained``'s weights."""
    fresh = geofm.create_backbone("resnet18")
    fresh.load_state_dict(trained.state_dict())
    return fresh


def eval_transform(image_size: int) -> Callable[[torch.Tensor], torch.Tensor]:
    norm = Normalize.from_sensor("rgb")

    def apply(images: torch.Tensor) -> torch.Tensor:
        top = (images.shape[-1] - image_size) // 2
        crop = images[..., top : top + image_size, top : top + image_size]  # centre crop
        return norm(crop)

    return apply


def collect(dataset: Dataset[Sample], batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    loader = DataLoader(dataset, batch_size=batch_size)
    images, labels = zip(*[(b["image"], b["label"]) for b in loader], strict=True)
    return torch.cat(images), torch.cat(labels)


def scores(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, bs: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(x[i : i + bs]) for i in range(0, len(x), bs)])


def linear_eval(
    cfg: Config, backbone: geofm.Backbone, data: dict[str, torch.Tensor], num_classes: int
) -> torch.Tensor:
    """Frozen backbone (eval mode) + N(0, 0.01) linear head; returns validation logits."""
    backbone.eval()
    feats_tr = scores(backbone.embed, data["x_train"], cfg.eval_batch_size)
    feats_va = scores(backbone.embed, data["x_val"], cfg.eval_batch_size)
    # Standardise with the training features' statistics (MAE's linear probe puts a
    # BatchNorm without affine before the head): the same lr suits any feature scale,
    # so the random-init baseline does not diverge on its large activations.
    mean, std = feats_tr.mean(0), feats_tr.std(0) + 1e-6  # (D,)
    feats_tr, feats_va = (feats_tr - mean) / std, (feats_va - mean) / std
    torch.manual_seed(cfg.seed)
    head = ClassificationHead(backbone.embed_dim, num_classes, init_std=0.01)
    optimizer = torch.optim.SGD(
        head.parameters(), lr=cfg.linear_lr, momentum=0.9, weight_decay=cfg.weight_decay
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, cfg.linear_steps))
    gen = torch.Generator().manual_seed(cfg.seed)
    y = data["y_train"]
    for _ in range(cfg.linear_steps):
        idx = torch.randint(0, len(y), (cfg.eval_batch_size,), generator=gen)
        loss = F.cross_entropy(head(feats_tr[idx]), y[idx])
        optimizer.zero_grad()
        torch.autograd.backward(loss)
        optimizer.step()
        sched.step()
    return scores(head, feats_va, cfg.eval_batch_size)


def finetune(
    cfg: Config,
    backbone: geofm.Backbone,
    data: dict[str, torch.Tensor],
    num_classes: int,
    percent: float,
    raw_train: torch.Tensor,
) -> torch.Tensor:
    """Fine-tune a copy of the backbone + a new head on ``percent`` % of the labels; val logits."""
    gen = torch.Generator().manual_seed(cfg.seed)
    y_all = data["y_train"]
    n = max(num_classes, round(len(y_all) * percent / 100))
    subset = torch.randperm(len(y_all), generator=gen)[:n]
    torch.manual_seed(cfg.seed)
    # BatchNorm without affine before the head: as in the linear probe, the head's lr
    # then suits the features' scale.
    head = nn.Sequential(
        nn.BatchNorm1d(backbone.embed_dim, affine=False),
        ClassificationHead(backbone.embed_dim, num_classes, init_std=0.01),
    )
    model = PooledModel(copy.deepcopy(backbone), head)
    optimizer = torch.optim.SGD(
        [
            {"params": model.backbone.parameters(), "lr": cfg.finetune_lr_backbone},
            {"params": model.head.parameters(), "lr": cfg.finetune_lr_head},
        ],
        momentum=0.9,
        weight_decay=cfg.weight_decay,
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, cfg.finetune_steps))
    aug = Compose(
        [
            RandomCrop(cfg.image_size),
            RandomHorizontalFlip(),
            Normalize.from_sensor("rgb"),
        ]
    )
    batch = min(cfg.eval_batch_size, n)
    for _ in range(cfg.finetune_steps):
        model.train()
        idx = subset[torch.randint(0, n, (batch,), generator=gen)]
        x = aug({"image": raw_train[idx]}, generator=gen)["image"]
        loss = F.cross_entropy(model(x), y_all[idx])
        optimizer.zero_grad()
        torch.autograd.backward(loss)
        optimizer.step()
        sched.step()
    return scores(model.eval(), data["x_val"], cfg.eval_batch_size)


def main(cfg: Config) -> dict[str, Any]:
    check_choices(cfg)
    if cfg.value_range < 0:
        raise ValueError(f"value_range must be >= 0 (0: from the files), got {cfg.value_range}.")
    if cfg.plot and importlib.util.find_spec("matplotlib") is None:
        raise MissingDependencyError(
            "vicreg_sn7.py draws vicreg_sn7.png with matplotlib, which is not installed. "
            "Install it with: pip install matplotlib (or geofm[examples]), or pass --no-plot."
        )
    started_group = False
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
        started_group = True
    world, is_main = world_size(), rank() == 0  # read before the group is destroyed
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    out = Path(cfg.output_dir)
    train_set, val_set, num_classes = load_data(cfg)
    trained, losses = pretrain(cfg, train_set)
    if started_group:
        dist.barrier()
        dist.destroy_process_group()
    metrics: dict[str, Any] = {"world_size": world, "pretrain_losses": losses}
    if not is_main:
        return metrics
    out.mkdir(parents=True, exist_ok=True)
    backbone = plain_backbone(trained)
    saved = save_pretrained(backbone.eval(), out / "backbone")
    metrics["backbone"] = str(saved)
    if not cfg.pretrain_only:
        prep = eval_transform(cfg.image_size)
        raw_tr, y_tr = collect(train_set, cfg.eval_batch_size)
        raw_va, y_va = collect(val_set, cfg.eval_batch_size)
        data = {"x_train": prep(raw_tr), "y_train": y_tr, "x_val": prep(raw_va), "y_val": y_va}
        metrics |= {
            "num_classes": num_classes,
            "chance_top1": 1.0 / num_classes,
            "train_samples": len(y_tr),
            "val_samples": len(y_va),
            "value_range": train_set.scale,
            # Subset clips at 1: the share of training pixels at (or above) full scale.
            "input_saturated_fraction": float((raw_tr >= 1.0).float().mean()),
        }
        torch.manual_seed(cfg.seed)
        random_init = geofm.create_backbone("resnet18")
        logits = {  # validation logits of each protocol
            "random_init_linear": linear_eval(cfg, random_init, data, num_classes),
            "linear": linear_eval(cfg, backbone, data, num_classes),
        }
        for percent in (1, 10):
            logits[f"finetune_{percent}pct"] = finetune(
                cfg, backbone, data, num_classes, percent, raw_tr
            )
        # Top-5 of 5 or fewer classes is 1.0 whatever the model: reported only above 5.
        ks = (1, 5) if num_classes > 5 else (1,)
        if num_classes <= 5:
            metrics["top5_omitted"] = (
                f"{num_classes} classes: top-5 accuracy would be 1.0 by construction"
            )
        for name, scores_val in logits.items():
            for k in ks:
                metrics[f"{name}_top{k}"] = float(topk_accuracy(scores_val, y_va, k=k))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if cfg.plot:
        plot(out / "vicreg_sn7.png", metrics)
    return metrics


def plot(path: Path, metrics: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 4))
    a.plot(metrics["pretrain_losses"])
    a.set(xlabel="step", ylabel="VICReg loss", title=f"pretraining ({metrics['world_size']} rank)")
    names = ["linear", "finetune_1pct", "finetune_10pct", "random_init_linear"]
    values = [metrics.get(f"{n}_top1", float("nan")) for n in names]
    b.bar(range(len(names)), values)
    if "chance_top1" in metrics:
        b.axhline(metrics["chance_top1"], color="k", ls="--", lw=1, label="chance")
        b.legend()
    b.set_xticks(range(len(names)), ["linear", "1%", "10%", "random init"])
    b.set(ylabel="top-1", title="validation top-1")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    result = main(config_from_argv(Config))
    if result.get("backbone"):
        print(json.dumps({k: v for k, v in result.items() if k != "pretrain_losses"}, indent=2))
