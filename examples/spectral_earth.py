r"""SpectralEarth: self-supervised hyperspectral backbones, then segmentation / labels / regression.

What it shows (AABNassim/spectral_earth, SOURCES.md section 2): 202-band EnMAP
patches (raw int16 DN, standardised per band with SpectralEarth's mu / sigma,
``Normalize.from_sensor("enmap_spectral_earth")``) go through the spectral
adapter (``geofm.spectral.SpectralAdapter``: three strided ``Conv3d`` along the
bands, any count >= 75 -> 128 channels) into Spec-ViT-S (patch 4, 384-d, 6
heads) or Spec-RN50 (no stem, output stride 16), built with
``geofm.create_backbone``. Two subcommands:

- ``pretrain --method moco|dino|mae`` with the source's recipe per method.
  MoCo-v2: ``MoCoProjectionHead`` (2048 -> 128, BatchNorm), ``InfoNCELoss``
  (tau 0.1) against a ``MemoryBank`` queue, key encoder EMA 0.999, SGD lr 1e-3
  (momentum 0.9, wd 1e-4), MultiStepLR at 60 % / 80 % of the epochs. DINO:
  ``DINOProjectionHead`` (2048 -> 256 -> 128), ``DINOLoss`` (teacher 0.04,
  student 0.1, centre momentum 0.9), teacher EMA ``cosine_schedule`` 0.996 -> 1
  over 10 epochs, last layer frozen in epoch 0, AdamW lr 1e-3 (wd 1e-5) with a
  linear warm-up (20 % of the epochs, from 1/20) then cosine. MAE (Spec-ViT only):
  mask ratio 0.9 on the patch tokens (CLS kept), ``MAEDecoder`` (512-d, 1 block,
  16 heads) predicting the ``4 x 4 x 202`` values of every patch, ``MAELoss``
  with per-patch normalised targets on the standardised 202-band image, AdamW lr
  1e-4 with cosine decay. Views: ``MoCoTransform`` / ``DINOTransform`` (crops,
  blur, flips; no colour jitter, which would distort the spectra); MAE uses
  RandomResizedCrop (scale 0.4-1) and flips. The backbone is saved with
  ``save_pretrained`` (it reloads strictly with ``from_pretrained`` or
  ``create_backbone(..., pretrained="<dir>/model.safetensors")``), with the loss
  curve (JSON + PNG) and a linear probe of the frozen embedding (ridge
  classifier of each patch's dominant class) next to the same probe on the
  random initialisation the run started from.
- ``finetune --task segmentation|multilabel|regression --protocol
  linear|finetune_adapter|finetune_first_n_layers|finetune``: the source's
  protocols (its ``freeze_backbone``, ``finetune_adapter`` and
  ``finetune_first_n_layers`` flags): ``linear`` trains the head only (the
  backbone frozen and kept in eval mode; the head trains on its cached
  features), ``finetune_adapter`` also the spectral adapter,
  ``finetune_first_n_layers`` also the first ``--finetune-first-n-layers``
  transformer blocks (Spec-ViT) or ResNet layers (Spec-RN50), never the adapter,
  ``finetune`` everything.
  Segmentation: Spec-ViT last-block tokens (final norm) -> ``ConvHead`` (two x2
  upsampling stages), or the fully dilated Spec-RN50 -> ``FCNHead`` (2048 -> 256);
  cross-entropy with ``ignore_index`` = the background class (moved to the last
  index, as the source does); overall accuracy, mIoU (macro) and the source's
  micro IoU, next to the majority-class baseline; AdamW lr 1e-3 (wd 1e-4), cosine.
  Multi-label (EnMAP-CORINE, 19 labels): linear ``ClassificationHead`` on the
  pooled embedding (CLS / global average), BCE-with-logits; the source's six
  metrics: multi-label accuracy (micro = overall, macro = average), F1 (micro,
  macro), average precision micro and macro (``val_map``: labels without a
  positive sample left out; ``val_map_source``: counted as 0, torchmetrics'
  value), each next to the label-prior baseline; AdamW lr 1e-3 (wd 1e-5).
  Regression (Hyperview: 150 bands, 4 standardised soil targets): the
  ``RegressionHead`` of ``RegressionHead.spectral_earth`` (BN1d -> 2048 -> 1024,
  dropout 0.2) trained on ``relative_mse_loss`` (MSE / MSE of predicting 0, so
  the trivial baseline scores 1); RMSE and relative MSE; AdamW lr 1e-3 (wd
  1e-4); early stopping on the validation loss after every epoch
  (``--early-stopping-patience`` epochs, 5 by default; the source's patience is
  in a callbacks file absent from its repository), and the best epoch's weights
  are evaluated and saved. Every task model is built with
  ``build_segmentation_model`` / ``build_pooled_model`` and saved with
  ``save_pretrained`` (``from_pretrained`` rebuilds it; the run checks the
  reloaded outputs). ``--pretrained`` takes a backbone folder written by
  ``pretrain`` (rebuilt with ``from_pretrained``) or a weights file.

Each run writes ``metrics.json``, a PNG and the model to its own folder:
``--output-dir``, by default ``runs/spectral_earth/<mode>_<method>`` or
``runs/spectral_earth/<mode>_<task>_<protocol>`` (``_rn50`` for Spec-RN50,
``_from_<run>`` with ``--pretrained``), so the commands below do not overwrite
each other.

Run (tiny defaults: synthetic patches whose cover types have distinct reflectance
spectra over the sensor's wavelengths (``geofm.datasets.spectral_signatures``),
scaled to raw DN; Spec-ViT-S with 2 blocks, 32 px, batch 8, 10 epochs of 5 steps;
wall-clock seconds with one thread, ``OMP_NUM_THREADS=1``, in brackets, measured
2026-12-06 with torch 2.14.1 on a 2-core VM shared with other jobs, times +-30%; results
in docs/tutorials/spectral-earth.md)::

    python examples/spectral_earth.py                      # = pretrain --method mae   [64 s]
    python examples/spectral_earth.py pretrain --method moco                          # [67 s]
    python examples/spectral_earth.py pretrain --method dino                          # [111 s]
    python examples/spectral_earth.py finetune --task segmentation \\
        --pretrained runs/spectral_earth/pretrain_mae/backbone                        # [18 s]
    python examples/spectral_earth.py finetune --task segmentation                    # [15 s]
    python examples/spectral_earth.py finetune --task segmentation --protocol finetune  # [59 s]
    python examples/spectral_earth.py finetune --task segmentation --protocol finetune_adapter \\
        --pretrained runs/spectral_earth/pretrain_mae/backbone                        # [40 s]
    python examples/spectral_earth.py finetune --task segmentation \\
        --protocol finetune_first_n_layers --finetune-first-n-layers 1 \\
        --pretrained runs/spectral_earth/pretrain_mae/backbone                        # [25 s]
    python examples/spectral_earth.py finetune --task multilabel                      # [10 s]
    python examples/spectral_earth.py finetune --task multilabel --protocol finetune  # [36 s]
    python examples/spectral_earth.py finetune --task regression                      # [9 s]

Real data, at the source's settings:

- Pre-training on the SpectralEarth archive (``geofm.datasets.SpectralEarth``:
  ``<root>/enmap/<location>/*.tif``, 202 x 128 x 128 int16; two acquisitions of a
  location are the two views), 128 px, batch 64 per GPU, 100 epochs (MAE 200),
  full depth (the number of steps per epoch is yours to set: 538,974 patches / 64).
  Files with all 224 EnMAP L2A bands are reduced to SpectralEarth's 202 with its
  band table (``SPECTRAL_EARTH_ENMAP_BANDS``, ``original_idx``); any other band
  count is an error before training. The probe needs labels, which the archive
  does not have, so it is skipped::

      python examples/spectral_earth.py pretrain --method moco --data-dir /data/spectral_earth \\
          --depth 12 --img-size 128 --batch-size 64 --epochs 100 --steps-per-epoch 8422 \\
          --memory-bank-size 32768 --lr 0.001 --output-dir runs/se_pretrain_moco
      python examples/spectral_earth.py pretrain --method dino --data-dir /data/spectral_earth \\
          --depth 12 --img-size 128 --batch-size 64 --epochs 100 --steps-per-epoch 8422 \\
          --output-dir runs/se_pretrain_dino
      python examples/spectral_earth.py pretrain --method mae --data-dir /data/spectral_earth \\
          --depth 12 --img-size 128 --batch-size 64 --epochs 200 --steps-per-epoch 8422 \\
          --output-dir runs/se_pretrain_mae

- EnMAP-CORINE multi-label (``geofm.datasets.EnMAPCorine``: ``<root>/enmap/<id>``,
  ``<root>/corine/<id>``, ``<root>/splits/enmap_corine/<split>.txt``), batch 32,
  100 epochs, linear protocol at the source's lr::

      python examples/spectral_earth.py finetune --task multilabel --data-dir /data/enmap_corine \\
          --img-size 128 --batch-size 32 --epochs 100 --steps-per-epoch 500 --lr 0.001 \\
          --pretrained runs/se_pretrain_mae/backbone --output-dir runs/se_corine_linear

- Segmentation: the source's EnMAP-CDL / NLCD / ... files have no reader here. The
  supported layout is the EnMAP-Box "EnMAP Potsdam" tiles (224-band EnMAP L2A GeoTIFFs,
  nodata -32768, reduced to SpectralEarth's 202 bands; labels 1-6 = roof, pavement,
  low vegetation, tree, soil, water, 0 = background, ignored)::

      <root>/{train,validation,test}_files.csv   columns image,mask (paths relative to root)
      <root>/images/*.tif, <root>/labels/*.tif

      python examples/spectral_earth.py finetune --task segmentation \\
          --data-dir /data/enmap_potsdam --img-size 32 --epochs 3 \\
          --steps-per-epoch 10 --output-dir runs/se_potsdam

- Regression: Hyperview's files have no reader in geofm; ``--data-dir`` with
  ``--task regression`` raises an error saying so (the synthetic 150-band data
  stands in).

Deviations of the tiny default: depth 2 (source 12), 32 px (128), batch 8 (64 per
GPU on 4 GPUs), 10 epochs of 5 steps (100 / 200 epochs), MoCo queue 512 (32,768).
MoCo's lr is 0.06 (source 1e-3, which moves a random network too little in 50
steps to show a falling loss; 0.06 is the source's model yaml value; ``--lr
0.001`` restores it). Synthetic pre-training patches hold 1-3 of 19 cover types
(so two crops of one patch share spectra that other patches lack). The linear
multi-label probe uses lr 1e-2 (source 1e-3; ``--lr 0.001``). Kept on every run:
the linear protocol trains the heads on features computed once (no augmentation;
the source augments every step and, in Lightning's train mode, lets a frozen
Spec-RN50 update its BatchNorm statistics); downstream inputs skip the source's
resize / random-crop pipeline and the other protocols use flips only; schedules
(MoCo steps, DINO warm-up and teacher momentum) run per epoch as in the source,
the downstream cosine decay per step; one process (no DDP).
"""

from __future__ import annotations

import copy
import csv
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torch
import torch.nn.functional as F
from _cli import check_choices, progress, run
from torch import nn
from torch.utils.data import default_collate

import geofm
from geofm.backbones import Backbone
from geofm.hub import (
    ModuleSpec,
    build_pooled_model,
    build_segmentation_model,
    from_pretrained,
    save_pretrained,
)
from geofm.hub.rebuild import WEIGHTS_NAME
from geofm.losses import relative_mse_loss
from geofm.transforms import Normalize

ENMAP = "enmap_spectral_earth"  # 202 bands, SpectralEarth's mu / sigma on raw DN
HYPERVIEW = "hyperview_spectral_earth"  # 150 bands, 462-942 nm
DN_PER_REFLECTANCE = {ENMAP: 10000.0, HYPERVIEW: 3000.0}  # raw values of the sensors' statistics
RGB_BANDS = (43, 28, 10)  # SpectralEarth's display bands
NUM_LABELS = 19  # EnMAP-CORINE (BigEarthNet-19)
NUM_TARGETS = 4  # Hyperview: P, K, Mg, pH
POTSDAM_CLASSES = ("roof", "pavement", "low vegetation", "tree", "soil", "water")
SOURCE_LR = {"moco": 1e-3, "dino": 1e-3, "mae": 1e-4}
SOURCE_WD = {"moco": 1e-4, "dino": 1e-5, "mae": 1e-2, "segmentation": 1e-4}
SOURCE_WD |= {"multilabel": 1e-5, "regression": 1e-4}


@dataclass(frozen=True)
class Config:
    """SpectralEarth settings (every field is also a command-line flag)."""

    mode: Literal["pretrain", "finetune"] = "pretrain"  # the subcommand
    method: Literal["mae", "moco", "dino"] = "mae"  # pretrain
    task: Literal["segmentation", "multilabel", "regression"] = "segmentation"  # finetune
    # finetune: what trains besides the head (the source's freeze_backbone /
    # finetune_adapter / finetune_first_n_layers flags): nothing | the spectral adapter |
    # the first N blocks (ViT) or layers (ResNet) | everything
    protocol: Literal["linear", "finetune_adapter", "finetune_first_n_layers", "finetune"] = (
        "linear"
    )
    finetune_first_n_layers: int = 1  # protocol finetune_first_n_layers: N
    backbone: Literal["spec_vit_small_patch4", "spec_resnet50"] = "spec_vit_small_patch4"
    depth: int = 2  # Spec-ViT blocks; source: 12
    pretrained: str = ""  # finetune: folder from `pretrain` or a .safetensors file
    data_dir: str = ""  # real data root; empty: synthetic patches
    img_size: int = 32  # source: 128
    batch_size: int = 8  # source: 64 per GPU (pretrain), 8-32 (downstream)
    epochs: int = 10  # source: 100 (MoCo, DINO, segmentation, multilabel), 200 (MAE), 400
    steps_per_epoch: int = 5
    lr: float = 0.0  # 0: source's (MoCo 1e-3 -> 0.06 here, DINO 1e-3, MAE 1e-4, heads 1e-3)
    memory_bank_size: int = 512  # MoCo queue; source: 32768
    mask_ratio: float = 0.9  # MAE
    momentum_epochs: int = 10  # DINO teacher EMA 0.996 -> 1 over these epochs
    warmup_fraction: float = 0.2  # DINO linear warm-up: 20 of 100 epochs
    num_classes: int = 6  # synthetic segmentation classes (+ 1 ignored background)
    train_samples: int = 128  # synthetic patches
    val_samples: int = 64
    probe_samples: int = 128  # pretrain, synthetic data: patches of the linear probe (0: skip)
    early_stopping_patience: int = 5  # regression: epochs without a lower validation loss
    seed: int = 12345  # source's seed
    progress: bool = True  # tqdm bars (if installed); --no-progress silences them
    # empty: runs/spectral_earth/<mode>_<method | task_protocol>[_rn50][_from_<pretrained run>]
    output_dir: str = ""


# ---------------------------------------------------------------- data


def synthetic_scenes(
    count: int, size: int, *, bands: str, num_classes: int, seed: int, background: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw-DN patches ``(N, C, S, S)`` of class regions with distinct spectra, and their masks.

    With ``background`` the last class covers more area (the ignored background).
    """
    from geofm.datasets import landcover_scene

    weights = [1.0] * (num_classes - 1) + [2.0] if background else None
    images, masks = [], []
    for i in range(count):
        scene = landcover_scene(
            size=size,
            bands=bands,
            num_classes=num_classes,
            seed=seed * 100_003 + i,
            scale=size / 3,
            class_weights=weights,
        )
        images.append(torch.from_numpy(scene.image * DN_PER_REFLECTANCE[bands]).round())
        masks.append(torch.from_numpy(scene.mask))
    return torch.stack(images), torch.stack(masks)


def synthetic_multilabel(
    count: int, size: int, *, bands: str, num_labels: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Raw-DN patches of 1-3 classes, their multi-hot labels and class fractions."""
    from geofm.datasets import SyntheticMultilabel

    ds = SyntheticMultilabel(
        length=count,
        size=size,
        bands=bands,
        num_labels=num_labels,
        max_classes=min(3, num_labels) if num_labels > 4 else num_labels,
        seed=seed,
    )
    batch = default_collate([ds[i] for i in range(len(ds))])
    images = batch["image"] * DN_PER_REFLECTANCE[bands]
    return images.round(), batch["label"], batch["target"]


def read_potsdam(root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """EnMAP-Potsdam tiles of a split as 202-band raw DN ``(N, 202, 32, 32)`` and masks.

    Labels 1-6 become 0-5; background (0) and nodata pixels become 6 (ignored).
    """
    import rasterio

    table = root / f"{split}_files.csv"
    if not table.is_file():
        raise FileNotFoundError(
            f"{table} not found. --task segmentation --data-dir expects the EnMAP Potsdam "
            "layout: <root>/{train,validation,test}_files.csv (columns image,mask) with "
            "224-band EnMAP GeoTIFFs under <root>/images and label rasters under <root>/labels. "
            "The source's EnMAP-CDL / NLCD files have no reader in geofm."
        )
    keep = band_indices_224_to_202()
    images, masks = [], []
    with table.open(newline="") as f:
        for row in csv.DictReader(f):
            with rasterio.open(root / row["image"]) as src:
                image = src.read().astype(np.float32)  # (224, H, W)
                nodata = src.nodata
            if image.shape[0] != 224:
                raise ValueError(
                    f"{row['image']} has {image.shape[0]} bands; expected 224 EnMAP L2A bands."
                )
            with rasterio.open(root / row["mask"]) as src:
                mask = src.read(1).astype(np.int64)  # (H, W)
            image = image[keep]  # (202, H, W); EnMAP's bad bands (all nodata) are not kept
            invalid = (image == nodata).any(axis=0) if nodata is not None else mask < 0
            image[:, invalid] = 0.0
            label = np.where((mask >= 1) & (mask <= 6) & ~invalid, mask - 1, 6)
            images.append(torch.from_numpy(image))
            masks.append(torch.from_numpy(label))
    return torch.stack(images), torch.stack(masks)


def band_indices_224_to_202() -> list[int]:
    """Indices of SpectralEarth's 202 bands among EnMAP's 224 (``original_idx``)."""
    from geofm.datasets.spectral_earth import SPECTRAL_EARTH_ENMAP_BANDS

    return list(SPECTRAL_EARTH_ENMAP_BANDS)


def enmap_band_selection(count: int, where: str) -> tuple[int, ...] | None:
    """``None`` for 202-band SpectralEarth patches, the 202 of 224 for EnMAP L2A files."""
    from geofm.datasets.spectral_earth import ENMAP_L2A_BAND_COUNT, SPECTRAL_EARTH_ENMAP_BANDS

    if count == len(SPECTRAL_EARTH_ENMAP_BANDS):
        return None
    if count == ENMAP_L2A_BAND_COUNT:  # reduced as the source's band table does
        return SPECTRAL_EARTH_ENMAP_BANDS
    raise ValueError(
        f"{where} has {count} bands; expected 202 (SpectralEarth patches) or "
        f"{ENMAP_L2A_BAND_COUNT} (EnMAP L2A, reduced to SpectralEarth's 202 bands)."
    )


def output_folder(cfg: Config) -> Path:
    """``--output-dir``, or a folder of its own per documented command."""
    if cfg.output_dir:
        return Path(cfg.output_dir)
    what = cfg.method if cfg.mode == "pretrain" else f"{cfg.task}_{cfg.protocol}"
    suffix = "_rn50" if cfg.backbone == "spec_resnet50" else ""
    if cfg.mode == "finetune" and cfg.pretrained:
        weights = Path(cfg.pretrained)
        suffix += f"_from_{weights.parent.name if weights.name == 'backbone' else weights.stem}"
    return Path("runs") / "spectral_earth" / f"{cfg.mode}_{what}{suffix}"


# ---------------------------------------------------------------- models


def check_config(cfg: Config) -> None:
    check_choices(cfg)
    for name in (
        "img_size", "batch_size", "epochs", "steps_per_epoch", "depth",
        "finetune_first_n_layers", "early_stopping_patience",
    ):  # fmt: skip
        if getattr(cfg, name) <= 0:
            raise ValueError(f"{name} must be positive, got {getattr(cfg, name)}.")
    divisor = 4 if cfg.backbone == "spec_vit_small_patch4" else 16
    if cfg.img_size % divisor:
        raise ValueError(f"img_size must be a multiple of {divisor} for {cfg.backbone}.")
    if cfg.mode == "pretrain" and cfg.method == "mae" and cfg.backbone != "spec_vit_small_patch4":
        raise ValueError(
            f"MAE masks patch tokens, so it needs the Spec-ViT; got --backbone {cfg.backbone}. "
            "Use --backbone spec_vit_small_patch4, or --method moco / dino for Spec-RN50."
        )
    if cfg.mode == "finetune" and cfg.task == "regression" and cfg.data_dir:
        raise ValueError(
            "Hyperview (the source's regression task) has no reader in geofm, so --data-dir is "
            "not supported with --task regression. Drop --data-dir to run on the synthetic "
            "150-band data, or load your arrays and call the functions of this script."
        )
    if cfg.pretrained and not Path(cfg.pretrained).exists():
        raise FileNotFoundError(
            f"--pretrained {cfg.pretrained!r} does not exist; pass the backbone folder a "
            "`pretrain` run wrote (<output-dir>/backbone) or a weights file."
        )
    try:  # the PNG is drawn after training: fail now, not then
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError(
            "matplotlib is required for the example's figures. Install it with: "
            "pip install matplotlib (or pip install 'geofm[examples]')."
        ) from None


def backbone_kwargs(cfg: Config) -> dict[str, Any]:
    if cfg.backbone == "spec_vit_small_patch4":
        return {"depth": cfg.depth, "img_size": cfg.img_size}
    return {}


def resolve_pretrained(cfg: Config) -> tuple[str, dict[str, Any], str | bool]:
    """Backbone name, its architecture kwargs and the weights file of ``cfg.pretrained``."""
    if not cfg.pretrained:
        return cfg.backbone, backbone_kwargs(cfg), False
    path = Path(cfg.pretrained)
    if path.is_dir():
        # A folder from `pretrain` (save_pretrained): geofm rebuilds it, and the
        # backbone's recorded configuration gives the architecture.
        saved = from_pretrained(path)
        config = getattr(saved, "config", None)
        if not isinstance(saved, Backbone) or config is None:
            raise ValueError(
                f"--pretrained {path} holds a {type(saved).__name__}, not a backbone; pass the "
                "backbone folder a `pretrain` run wrote (<output-dir>/backbone)."
            )
        keep = {k: v for k, v in config.kwargs.items() if k in ("depth", "img_size")}
        return config.name, keep, str(path / WEIGHTS_NAME)
    return cfg.backbone, backbone_kwargs(cfg), str(path)


def build_downstream(cfg: Config, in_chans: int, num_outputs: int) -> nn.Module:
    """Backbone (+ pretrained weights) and the task head."""
    name, kwargs, weights = resolve_pretrained(cfg)
    torch.manual_seed(cfg.seed)
    if cfg.task == "segmentation":
        if name == "spec_resnet50":
            backbone = geofm.create_backbone(
                name,
                in_chans=in_chans,
                out_indices=[3],
                replace_stride_with_dilation=(True, True, True, True),
                pretrained=weights,
                **kwargs,
            )
            head = ModuleSpec("FCNHead", {"in_channels": 2048, "num_classes": num_outputs})
        else:
            backbone = geofm.create_backbone(
                name, in_chans=in_chans, out_indices=[-1], pretrained=weights, **kwargs
            )
            head = ModuleSpec(
                "ConvHead",
                {"in_channels": backbone.embed_dim, "num_classes": num_outputs, "num_stages": 2},
            )
        return build_segmentation_model(backbone, head=head)
    backbone = geofm.create_backbone(name, in_chans=in_chans, pretrained=weights, **kwargs)
    if cfg.task == "multilabel":
        # A linear layer on the pooled embedding (the source's timm classifier: default init).
        pooled = ModuleSpec(
            "ClassificationHead",
            {
                "in_features": backbone.embed_dim,
                "num_classes": num_outputs,
                "multi_label": True,
                "init_std": None,
            },
        )
    else:
        # RegressionHead.spectral_earth: BN1d -> 2048 -> 1024 (ReLU, dropout 0.2) -> outputs.
        pooled = ModuleSpec(
            "RegressionHead",
            {
                "in_features": backbone.embed_dim,
                "out_features": num_outputs,
                "hidden_features": [2048, 1024],
                "dropout": 0.2,
                "use_input_norm": True,
            },
        )
    return build_pooled_model(backbone, head=pooled)


def set_protocol(cfg: Config, backbone: nn.Module) -> None:
    """Freeze the backbone and unfreeze what ``cfg.protocol`` trains, as the source's flags do.

    ``finetune_adapter``: the spectral adapter; ``finetune_first_n_layers``: the first
    N transformer blocks (Spec-ViT) or ResNet layers (Spec-RN50), never the adapter.
    """
    if cfg.protocol == "finetune":
        backbone.requires_grad_(True)
        return
    backbone.requires_grad_(False)
    spec_vit = hasattr(backbone, "model")
    if cfg.protocol == "finetune_adapter":
        adapter = backbone.stem if spec_vit else backbone.spectral_adapter
        cast(nn.Module, adapter).requires_grad_(True)
    elif cfg.protocol == "finetune_first_n_layers":
        layers = list(backbone.model.blocks if spec_vit else backbone.resnet.layers())
        n = cfg.finetune_first_n_layers
        if n > len(layers):
            kind = "transformer blocks" if spec_vit else "ResNet layers"
            raise ValueError(
                f"finetune_first_n_layers={n}, but the backbone has {len(layers)} {kind}. "
                f"Pass --finetune-first-n-layers 1..{len(layers)}."
            )
        for layer in layers[:n]:
            layer.requires_grad_(True)


# ---------------------------------------------------------------- helpers


def iterate(cfg: Config, desc: str) -> Iterable[int]:
    return progress(range(cfg.epochs * cfg.steps_per_epoch), desc=desc, show=cfg.progress)


def flips(x: torch.Tensor, y: torch.Tensor | None, gen: torch.Generator) -> tuple[Any, Any]:
    """Random horizontal / vertical flips of images (and masks), per batch."""
    for dim in (-1, -2):
        if bool(torch.rand((), generator=gen) < 0.5):
            x = x.flip(dim)
            y = y.flip(dim) if y is not None else None
    return x, y


def state_copy(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def max_change(before: dict[str, torch.Tensor], module: nn.Module) -> float:
    """Largest absolute change of any parameter (buffers such as BN statistics excluded)."""
    return max(float((p.detach() - before[n]).abs().max()) for n, p in module.named_parameters())


@torch.no_grad()
def batched(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, size: int) -> torch.Tensor:
    return torch.cat([fn(x[i : i + size]) for i in range(0, len(x), size)])


def ridge_probe(
    train: torch.Tensor, ytrain: torch.Tensor, test: torch.Tensor, ytest: torch.Tensor
) -> float:
    """Accuracy of a closed-form ridge classifier on standardised embeddings."""
    mean, std = train.mean(0), train.std(0) + 1e-6
    a, b = (train - mean) / std, (test - mean) / std
    a = torch.cat([a, torch.ones(len(a), 1)], dim=1)  # (N, D + 1) with bias
    b = torch.cat([b, torch.ones(len(b), 1)], dim=1)
    onehot = F.one_hot(ytrain, int(max(ytrain.max(), ytest.max())) + 1).float()  # (N, K)
    gram = a.T @ a + 1.0 * len(a) * torch.eye(a.shape[1])
    weights = torch.linalg.solve(gram, a.T @ onehot)  # (D + 1, K)
    return float(((b @ weights).argmax(1) == ytest).float().mean())


def plot_curves(path: Path, curves: dict[str, list[float]], title: str, image: Any = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 1 + (len(image) if image is not None else 0)
    fig, axes = plt.subplots(1, panels, figsize=(4.5 * panels, 4), squeeze=False)
    for label, values in curves.items():
        axes[0, 0].plot(values, label=label)
    axes[0, 0].set(xlabel="step", title=title)
    axes[0, 0].legend()
    for ax, (name, array, kwargs) in zip(axes[0, 1:], image or [], strict=False):
        ax.imshow(array, interpolation="nearest", **kwargs)
        ax.set(title=name)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


# ---------------------------------------------------------------- pretrain


def pretrain_views(
    cfg: Config, data: Any, norm: Normalize, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two standardised, augmented views of a batch: ``(N, 202, S, S)`` each."""
    from geofm.transforms import (
        Compose,
        DINOTransform,
        MoCoTransform,
        RandomHorizontalFlip,
        RandomResizedCrop,
        RandomVerticalFlip,
    )

    first, second = data(gen)
    if cfg.method == "mae":
        aug = Compose(
            [
                RandomResizedCrop(cfg.img_size, scale=(0.4, 1.0)),
                RandomHorizontalFlip(),
                RandomVerticalFlip(),
                norm,
            ]
        )
        image = aug({"image": first}, generator=gen)["image"]
        return image, image
    views: Any = (
        MoCoTransform(size=cfg.img_size, normalize=norm)
        if cfg.method == "moco"
        else DINOTransform(global_size=cfg.img_size, normalize=norm)
    )
    # One view per acquisition (the same patch twice when a location has only one).
    a = views.views[0]({"image": first}, generator=gen)["image"]
    b = views.views[1]({"image": second}, generator=gen)["image"]
    return a, b


def pretrain_data(cfg: Config) -> Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]]:
    """A sampler of raw-DN batches (two acquisitions each)."""
    if cfg.data_dir:
        from geofm.datasets import SpectralEarth

        ds = SpectralEarth(cfg.data_dir, two_views=True, seed=cfg.seed)
        bands = enmap_band_selection(ds.stored_bands, f"{cfg.data_dir} (first patch)")
        if bands is not None:
            ds = SpectralEarth(cfg.data_dir, two_views=True, seed=cfg.seed, band_indices=bands)

        def real(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
            idx = torch.randint(0, len(ds), (cfg.batch_size,), generator=gen).tolist()
            batch = default_collate([ds[i] for i in idx])
            return batch["image1"].float(), batch["image2"].float()

        return real
    # Patches of 1-3 of 19 cover types: two crops of a patch share its spectra.
    images, _, _ = synthetic_multilabel(
        cfg.train_samples, cfg.img_size, bands=ENMAP, num_labels=NUM_LABELS, seed=cfg.seed
    )

    def synthetic(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        batch = images[torch.randint(0, len(images), (cfg.batch_size,), generator=gen)]
        return batch, batch

    return synthetic


class MAEModel(nn.Module):
    """Spec-ViT encoder on the kept tokens + ``MAEDecoder``; returns the loss."""

    def __init__(self, backbone: Any, *, img_size: int, mask_ratio: float) -> None:
        super().__init__()
        from geofm.ssl import MAEDecoder

        self.backbone = backbone
        self.mask_ratio = mask_ratio
        grid = img_size // backbone.patch_size
        self.decoder = MAEDecoder(
            embed_dim=backbone.embed_dim,
            num_patches=(grid, grid),
            patch_size=backbone.patch_size,
            in_chans=backbone.in_chans,
        )

    def forward(self, image: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Masked-patch loss on the standardised image ``(N, C, H, W)``."""
        from geofm.losses import MAELoss
        from geofm.ssl import patchify, random_masking

        vit = self.backbone.model  # the timm VisionTransformer
        tokens = vit.patch_embed(self.backbone.stem(image))  # adapter, (N, h, w, D)
        tokens = vit._pos_embed(tokens)  # (N, 1 + L, D), CLS + position embedding
        masked = random_masking(
            tokens,
            mask_ratio=self.mask_ratio,
            num_prefix_tokens=vit.num_prefix_tokens,
            generator=gen,
        )
        encoded = vit.norm(vit.blocks(vit.norm_pre(masked.tokens)))  # (N, 1 + K, D)
        prediction = self.decoder(encoded, masked.keep_index)  # (N, L, p * p * C)
        target = patchify(image, patch_size=self.backbone.patch_size)  # (N, L, p * p * C)
        loss: torch.Tensor = MAELoss(normalize_targets=True)(prediction, target, masked.mask)
        return loss


def pretrain(cfg: Config, out: Path) -> dict[str, Any]:
    from geofm.losses import DINOLoss, InfoNCELoss
    from geofm.ssl import (
        DINOProjectionHead,
        MemoryBank,
        MoCoProjectionHead,
        cosine_schedule,
        update_momentum,
    )

    data = pretrain_data(cfg)  # checks the real files' band count before any training
    torch.manual_seed(cfg.seed)
    backbone = geofm.create_backbone(cfg.backbone, **backbone_kwargs(cfg))
    initial = copy.deepcopy(backbone)
    norm = Normalize.from_sensor(ENMAP)
    epochs, steps = cfg.epochs, cfg.steps_per_epoch
    lr = cfg.lr or (0.06 if cfg.method == "moco" else SOURCE_LR[cfg.method])
    wd = SOURCE_WD[cfg.method]
    trained: nn.Module
    if cfg.method == "moco":
        head = MoCoProjectionHead(input_dim=backbone.embed_dim, output_dim=128, use_batch_norm=True)
        trained = nn.ModuleDict({"backbone": backbone, "head": head})
        key = copy.deepcopy(trained).requires_grad_(False)
        criterion: nn.Module = InfoNCELoss(
            temperature=0.1, memory_bank=MemoryBank(size=cfg.memory_bank_size, dim=128)
        )
        optimizer: torch.optim.Optimizer = torch.optim.SGD(
            trained.parameters(), lr=lr, momentum=0.9, weight_decay=wd
        )
        scheduler: Any = torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones=[round(0.6 * epochs), round(0.8 * epochs)], gamma=0.1
        )
    elif cfg.method == "dino":
        head = DINOProjectionHead(
            input_dim=backbone.embed_dim, hidden_dim=2048, bottleneck_dim=256, output_dim=128
        )
        trained = nn.ModuleDict({"backbone": backbone, "head": head})
        key = copy.deepcopy(trained).requires_grad_(False)
        criterion = DINOLoss(output_dim=128, warmup_epochs=10)
        optimizer = torch.optim.AdamW(trained.parameters(), lr=lr, weight_decay=wd)
        warmup = max(1, round(cfg.warmup_fraction * epochs))
        scheduler = torch.optim.lr_scheduler.SequentialLR(
            optimizer,
            [
                torch.optim.lr_scheduler.LinearLR(
                    optimizer, start_factor=1 / 20, total_iters=warmup
                ),
                torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs),
            ],
            milestones=[warmup],
        )
    else:
        trained = MAEModel(backbone, img_size=cfg.img_size, mask_ratio=cfg.mask_ratio)
        optimizer = torch.optim.AdamW(trained.parameters(), lr=lr, weight_decay=wd)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    gen = torch.Generator().manual_seed(cfg.seed)
    losses: list[float] = []
    trained.train()
    for step in iterate(cfg, f"pretrain {cfg.method}"):
        epoch = step // steps
        view_a, view_b = pretrain_views(cfg, data, norm, gen)
        if cfg.method == "moco":
            query = trained["head"](trained["backbone"].embed(view_a))
            with torch.no_grad():
                keys = key["head"](key["backbone"].embed(view_b))
            loss = criterion(query, keys)
        elif cfg.method == "dino":
            student = [trained["head"](trained["backbone"].embed(v)) for v in (view_a, view_b)]
            with torch.no_grad():
                teacher = [key["head"](key["backbone"].embed(v)) for v in (view_a, view_b)]
            loss = criterion(teacher, student, epoch=epoch)
        else:
            loss = trained(view_a, gen)
        optimizer.zero_grad()
        loss.backward()
        if cfg.method == "dino":
            trained["head"].cancel_last_layer_gradients(epoch=epoch)
        optimizer.step()
        if cfg.method == "moco":
            update_momentum(trained, key, momentum=0.999)
            criterion.update_memory_bank(keys)
        elif cfg.method == "dino":
            momentum = cosine_schedule(
                epoch, max_steps=cfg.momentum_epochs, start_value=0.996, end_value=1.0
            )
            update_momentum(trained, key, momentum=momentum)
            criterion.update_center(teacher)
        losses.append(loss.item())
        if (step + 1) % steps == 0:
            scheduler.step()

    backbone.eval()
    folder = save_pretrained(backbone, out / "backbone")
    probe_x = norm(data(torch.Generator().manual_seed(cfg.seed + 1))[0][:4])
    reloaded = from_pretrained(folder)
    with torch.no_grad():
        reload_diff = float((reloaded.embed(probe_x) - backbone.embed(probe_x)).abs().max())
    metrics: dict[str, Any] = {
        "mode": "pretrain",
        "method": cfg.method,
        "backbone": cfg.backbone,
        "learning_rate": lr,
        "first_loss": losses[0],
        "final_loss": losses[-1],
        "reload_max_abs_diff": reload_diff,
        "backbone_dir": str(folder),
        "losses": losses,
    }
    if cfg.data_dir:
        metrics["probe"] = "skipped: the probe's labels exist for the synthetic patches only"
    elif cfg.probe_samples >= 8:
        metrics |= probe(cfg, backbone, initial.eval(), norm)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    plot_curves(out / "pretrain_loss.png", {f"{cfg.method} loss": losses}, "pre-training loss")
    return metrics


def probe(cfg: Config, backbone: Any, initial: Any, norm: Normalize) -> dict[str, float]:
    """Ridge probe of each patch's dominant class on frozen embeddings (trained vs initial)."""
    images, _, fractions = synthetic_multilabel(
        cfg.probe_samples, cfg.img_size, bands=ENMAP, num_labels=NUM_LABELS, seed=cfg.seed + 7
    )
    labels = fractions.argmax(1)  # dominant cover type
    x = norm(images)
    half = len(x) // 2
    out = {}
    for name, model in (("probe_accuracy", backbone), ("probe_accuracy_initial", initial)):
        emb = batched(model.embed, x, cfg.batch_size)
        out[name] = ridge_probe(emb[:half], labels[:half], emb[half:], labels[half:])
    out["probe_majority_accuracy"] = float(
        (labels[half:] == torch.bincount(labels[:half]).argmax()).float().mean()
    )
    return out


# ---------------------------------------------------------------- finetune


def finetune_data(cfg: Config) -> tuple[torch.Tensor, ...]:
    """Standardised train / validation inputs and targets for the task."""
    if cfg.task == "segmentation":
        if cfg.data_dir:
            root = Path(cfg.data_dir)
            tx, ty = read_potsdam(root, "train")
            vx, vy = read_potsdam(root, "validation")
        else:
            k = cfg.num_classes + 1
            kwargs: dict[str, Any] = {"bands": ENMAP, "num_classes": k, "background": True}
            tx, ty = synthetic_scenes(cfg.train_samples, cfg.img_size, seed=cfg.seed, **kwargs)
            vx, vy = synthetic_scenes(cfg.val_samples, cfg.img_size, seed=cfg.seed + 1, **kwargs)
        norm = Normalize.from_sensor(ENMAP)
        return norm(tx), ty, norm(vx), vy
    if cfg.task == "multilabel":
        if cfg.data_dir:
            from geofm.datasets import EnMAPCorine

            first = EnMAPCorine(cfg.data_dir, split="train")[0]["image"]
            bands = enmap_band_selection(first.shape[0], f"{cfg.data_dir} (first patch)")

            def stack(split: str) -> tuple[torch.Tensor, torch.Tensor]:
                ds = EnMAPCorine(cfg.data_dir, split=split, band_indices=bands)  # type: ignore[arg-type]
                batch = default_collate([ds[i] for i in range(len(ds))])
                images = batch["image"].float()
                if images.shape[-1] != cfg.img_size:
                    images = F.interpolate(images, size=cfg.img_size, mode="bilinear")
                return images, batch["label"]

            tx, ty = stack("train")
            vx, vy = stack("val")
        else:
            tx, ty, _ = synthetic_multilabel(
                cfg.train_samples, cfg.img_size, bands=ENMAP, num_labels=NUM_LABELS, seed=cfg.seed
            )
            vx, vy, _ = synthetic_multilabel(
                cfg.val_samples, cfg.img_size, bands=ENMAP, num_labels=NUM_LABELS, seed=cfg.seed + 1
            )
        norm = Normalize.from_sensor(ENMAP)
        return norm(tx), ty, norm(vx), vy
    # Regression: 150-band Hyperview-like patches; targets = the 4 class fractions, standardised.
    tx, _, ty = synthetic_multilabel(
        cfg.train_samples, cfg.img_size, bands=HYPERVIEW, num_labels=NUM_TARGETS, seed=cfg.seed
    )
    vx, _, vy = synthetic_multilabel(
        cfg.val_samples, cfg.img_size, bands=HYPERVIEW, num_labels=NUM_TARGETS, seed=cfg.seed + 1
    )
    mean, std = ty.mean(0), ty.std(0)
    norm = Normalize.from_sensor(HYPERVIEW)
    return norm(tx), (ty - mean) / std, norm(vx), (vy - mean) / std


def task_loss(cfg: Config, out: torch.Tensor, y: torch.Tensor, ignore: int) -> torch.Tensor:
    if cfg.task == "segmentation":
        return F.cross_entropy(out, y, ignore_index=ignore)
    if cfg.task == "multilabel":
        return F.binary_cross_entropy_with_logits(out, y)
    return relative_mse_loss(out, y)


def split_model(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(backbone, head) of a segmentation or pooled model."""
    return model.backbone, model.head  # type: ignore[return-value]


def features(cfg: Config, backbone: Any, x: torch.Tensor) -> torch.Tensor:
    """Frozen-backbone features: last map (segmentation) or pooled embedding."""
    if cfg.task == "segmentation":
        return batched(lambda b: backbone(b)[-1], x, cfg.batch_size)
    return batched(backbone.embed, x, cfg.batch_size)


def finetune(cfg: Config, out: Path) -> dict[str, Any]:
    tx, ty, vx, vy = finetune_data(cfg)
    classes = 6 if (cfg.task == "segmentation" and cfg.data_dir) else cfg.num_classes
    num_outputs = {"segmentation": classes, "multilabel": NUM_LABELS, "regression": NUM_TARGETS}
    model = build_downstream(cfg, tx.shape[1], num_outputs[cfg.task])
    backbone, head = split_model(model)
    ignore = classes  # background index (segmentation)
    before = state_copy(backbone)
    set_protocol(cfg, backbone)
    linear = cfg.protocol == "linear"
    if linear:
        backbone.eval()
        train_in, val_in = features(cfg, backbone, tx), features(cfg, backbone, vx)

        # Only the head runs per step; segmentation logits are resized to the input.
        def run(batch: torch.Tensor) -> torch.Tensor:
            if cfg.task != "segmentation":
                return head(batch)  # type: ignore[no-any-return]
            logits = head([batch])
            return F.interpolate(logits, size=tx.shape[-2:], mode="bilinear", align_corners=False)
    else:
        train_in, val_in = tx, vx
        run = model
    params = [p for p in model.parameters() if p.requires_grad]
    # Source: 1e-3; a linear multi-label probe needs more than 30 steps at that rate.
    lr = cfg.lr or (1e-2 if (linear and cfg.task == "multilabel") else 1e-3)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=SOURCE_WD[cfg.task])
    total = cfg.epochs * cfg.steps_per_epoch
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    gen = torch.Generator().manual_seed(cfg.seed)
    losses: list[float] = []
    val_losses: list[float] = []  # regression: relative MSE after each epoch
    best_state, stale, stopped_epoch = None, 0, None
    for step in iterate(cfg, f"{cfg.task} ({cfg.protocol})"):
        model.train()
        if linear:
            backbone.eval()
        idx = torch.randint(0, len(train_in), (cfg.batch_size,), generator=gen)
        x, y = train_in[idx], ty[idx]
        if not linear and cfg.task == "segmentation":
            x, y = flips(x, y, gen)
        elif not linear:
            x, _ = flips(x, None, gen)
        loss = task_loss(cfg, run(x), y, ignore)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        if cfg.task == "regression" and (step + 1) % cfg.steps_per_epoch == 0:
            # Early stopping on the validation loss, as the source's Hyperview runs; the
            # best epoch's weights are evaluated and saved.
            model.eval()
            val_losses.append(float(relative_mse_loss(batched(run, val_in, cfg.batch_size), vy)))
            if val_losses[-1] == min(val_losses):
                best_state, stale = state_copy(model), 0
            else:
                stale += 1
                if stale >= cfg.early_stopping_patience:
                    stopped_epoch = len(val_losses) - 1
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    prediction = batched(run, val_in, cfg.batch_size)
    metrics: dict[str, Any] = {
        "mode": "finetune",
        "task": cfg.task,
        "protocol": cfg.protocol,
        "backbone": type(backbone).__name__,
        "pretrained": cfg.pretrained,
        "trainable_parameters": sum(p.numel() for p in params),
        "trainable_backbone_parameters": sum(
            p.numel() for p in backbone.parameters() if p.requires_grad
        ),
        "backbone_max_change": max_change(before, backbone),
        "steps": len(losses),
    }
    if cfg.task == "regression":
        metrics |= {
            "val_losses": val_losses,
            "best_epoch": int(np.argmin(val_losses)) if val_losses else None,
            "stopped_epoch": stopped_epoch,
        }
    metrics |= evaluate(cfg, prediction, ty, vy, ignore)
    metrics |= save_model(model, out, vx[:2])
    metrics["losses"] = losses
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    image = None
    if cfg.task == "segmentation":
        rgb = vx[0, list(RGB_BANDS)].permute(1, 2, 0)  # (H, W, 3)
        rgb = ((rgb - rgb.amin()) / (rgb.amax() - rgb.amin() + 1e-6)).numpy()
        shown = {"vmin": 0, "vmax": classes, "cmap": "tab10"}
        image = [
            ("RGB (bands 43, 28, 10)", rgb, {}),
            ("reference (background = last)", vy[0].numpy(), shown),
            ("prediction", prediction[0].argmax(0).numpy(), shown),
        ]
    plot_curves(out / f"{cfg.task}.png", {f"{cfg.task} loss": losses}, cfg.task, image)
    return metrics


def evaluate(
    cfg: Config, prediction: torch.Tensor, ty: torch.Tensor, vy: torch.Tensor, ignore: int
) -> dict[str, Any]:
    """Task metrics on the validation set and the trivial baseline's."""
    if cfg.task == "segmentation":
        from geofm.metrics import ConfusionMatrix

        classes = prediction.shape[1]
        cm = ConfusionMatrix(num_classes=classes, ignore_index=ignore)
        cm.update(prediction.argmax(1), vy)
        labelled = ty[ty != ignore]
        majority = int(torch.bincount(labelled, minlength=classes).argmax())
        base = ConfusionMatrix(num_classes=classes, ignore_index=ignore)
        base.update(torch.full_like(vy, majority), vy)
        return {
            "val_overall_accuracy": float(cm.accuracy()),
            "val_miou": float(cm.iou(average="macro")),
            "val_micro_iou": float(cm.iou(average="micro")),
            "per_class_iou": cm.iou(average="none").tolist(),
            "majority_overall_accuracy": float(base.accuracy()),
            "majority_miou": float(base.iou(average="macro")),
        }
    if cfg.task == "multilabel":
        from geofm.metrics import (
            multilabel_accuracy,
            multilabel_average_precision,
            multilabel_f1_score,
        )

        probs = torch.sigmoid(prediction)
        k = max(1, round(float(ty.sum(1).mean())))
        prior = torch.zeros_like(vy)
        prior[:, ty.mean(0).topk(k).indices] = 1.0  # the k most frequent training labels
        prior_scores = ty.mean(0).expand_as(vy)
        out: dict[str, Any] = {}
        # The source's six metrics (torchmetrics names: OverallAccuracy, AverageAccuracy,
        # F1Score, AverageF1Score, Precision = micro AP, AveragePrecision = macro AP).
        for name, hard, soft in (("val", probs, probs), ("prior", prior, prior_scores)):
            out |= {
                f"{name}_accuracy_micro": float(multilabel_accuracy(hard, vy, average="micro")),
                f"{name}_accuracy_macro": float(multilabel_accuracy(hard, vy, average="macro")),
                f"{name}_micro_f1": float(multilabel_f1_score(hard, vy, average="micro")),
                f"{name}_macro_f1": float(multilabel_f1_score(hard, vy, average="macro")),
                f"{name}_micro_ap": float(multilabel_average_precision(soft, vy, average="micro")),
                f"{name}_map": float(multilabel_average_precision(soft, vy, average="macro")),
                # torchmetrics (the source) averages AP 0 for labels without positives in.
                f"{name}_map_source": float(
                    multilabel_average_precision(soft, vy, average="macro", absent="include")
                ),
            }
        return out
    from geofm.metrics import root_mean_squared_error

    zeros = torch.zeros_like(vy)
    return {
        "val_rmse": float(root_mean_squared_error(prediction, vy)),
        "val_relative_mse": float(relative_mse_loss(prediction, vy)),
        "zero_rmse": float(root_mean_squared_error(zeros, vy)),
        "zero_relative_mse": float(relative_mse_loss(zeros, vy)),
    }


def save_model(model: nn.Module, out: Path, x: torch.Tensor) -> dict[str, Any]:
    """Save the task model (``save_pretrained``), rebuild it (``from_pretrained``), compare."""
    model.eval()
    with torch.no_grad():
        reference = model(x)
    folder = save_pretrained(model, out / "model")
    again = from_pretrained(folder)
    with torch.no_grad():
        diff = float((again(x) - reference).abs().max())
    return {"model_dir": str(folder), "reload_max_abs_diff": diff}


# ---------------------------------------------------------------- entry points


def main(cfg: Config) -> dict[str, Any]:
    check_config(cfg)
    out = output_folder(cfg)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    if cfg.mode == "pretrain":
        return pretrain(cfg, out)
    return finetune(cfg, out)


if __name__ == "__main__":
    # `pretrain` / `finetune` sub-commands; none given: MAE pre-training + its probe.
    run(main, Config, subcommand="mode", hide=("losses",))
