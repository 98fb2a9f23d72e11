r"""ML4Earth 2024 land cover: SwinV2-B (torchvision layout) + FPN + head on LandCover.ai.

What it shows (tangos974/ml4earth + allenai/satlaspretrain_models, SOURCES.md
section 3): the torchvision ``swin_v2_b`` layout (``tv_swin_v2_b``, optionally
with a SatlasPretrain checkpoint) tapped where ML4Earth tapped it
(``taps="ml4earth"``: the patch-embedding conv ``features.0.0`` and the
PatchMerging outputs ``features.2``, ``.4``, ``.6``), an ``FPN`` (256 channels)
and ``FPNSegmentationHead`` (Conv3x3 -> 128 -> ReLU -> Conv1x1), cross-entropy
with the source's class weights and label smoothing 0.1, Adam (lr 1e-4, wd
1e-4) with ReduceLROnPlateau on the validation IoU (factor 0.1, patience 5) and
early stopping (patience 15), gradient clipping 1.0. Training augmentation as
the source's ``TrainTransform``: /255, horizontal flip (p 0.5), rotation +-15
degrees (p 0.5, bilinear; mask nearest, filled with background),
RandomResizedCrop to ``--image-size`` (scale 0.66-1, ratio 0.75-1.33),
ColorJitter 0.2 (brightness, contrast, saturation and hue; image only),
LandCover.ai mean / std. Validation as its ``ValTestTransform``: each chip
resized to ``--image-size`` (bilinear, antialiased; mask nearest). Metrics on the
validation chips at that size: IoU / F1 / precision / recall (macro, background
included, as the source reports), macro accuracy (mean class recall: the
source's torchmetrics ``Accuracy(average="macro")``, its reported 0.683) and
micro (pixel) accuracy beside it, next to the majority-class baseline. The model
is saved with ``save_pretrained``; ``metrics.json`` is written before the map.
The model carries its input spec (values / 255, LandCover.ai's mean / std), so
``geofm predict <output>/model scene.tif map.tif`` prepares scenes as training did.
A land-cover map of a whole georeferenced scene is written with
``geofm.geo.predict_raster`` from that spec: the synthetic validation scene (kept
as ``<output>/scene/image.tif``), ``--map-scene``,
the scene of the first validation chip (GeoTIFF scenes), or the first validation
chip when it is georeferenced. LandCover.ai's jpg chips (``split.py`` output)
carry no georeference: the map is then skipped (``metrics.json`` says why) and
the PNG shows the first validation chip's prediction instead.

Data (``--data-dir``), two layouts (``--layout``; ``auto``: ``scenes`` when
``<root>/images/`` exists):

- ``scenes``: LandCover.ai as downloaded, ``<root>/images/<scene>.tif``
  orthophotos, ``<root>/masks/<scene>.tif`` masks and ``<root>/{train,val}.txt``.
  Chips are the 512 px grid of every scene read straight from the GeoTIFFs by
  ``geofm.datasets.RasterChipDataset`` (one windowed read per chip, no jpg
  re-encoding). A line of a split file names a chip as ``split.py`` does,
  ``<scene>_<k>`` (``k`` counts 512 px tiles row by row, partial edge tiles
  included, which ``split.py`` does not write), or a whole ``<scene>`` (all its
  grid chips, the last of each axis shifted back to end at the edge); the
  dataset's own split files list ``split.py``'s chips, so this is its split.
- ``chips``: ``split.py`` output, ``<root>/output/<name>.jpg`` + ``_m.png``
  (``geofm.datasets.LandCoverAI``).

Run (tiny defaults: 8 synthetic 5-class RGB chips of 256 px for training and 2
for validation, Swin depths (1, 1, 1, 1), 128 px inputs, 30 steps; about 12 s
(measured 2026-12-06, torch 2.14.1, one thread, ``OMP_NUM_THREADS=1``, on a 2-core
VM shared with other jobs; times +-30%); validation IoU 0.24 against
0.10 for the majority class, macro accuracy 0.33 (majority 0.20), micro 0.61
(0.50))::

    python examples/landcover_swin_fpn.py
    python examples/landcover_swin_fpn.py --epochs 20 --steps-per-epoch 20

Real data (LandCover.ai v1, either layout above) at the source's settings (full
depths, Satlas weights, first 5 ``features`` children frozen, stochastic depth 0.5,
coarsest FPN level only, 256 px, batch 16, 50 epochs of 7,470 / 16 steps)::

    python examples/landcover_swin_fpn.py --data-dir /data/landcover.ai \\
        --weights /data/weights/sentinel2_swinb_si_rgb.pth --depths 2,2,18,2 \\
        --freeze-layers 5 --drop-path-rate 0.5 --fuse coarsest --image-size 256 \\
        --batch-size 16 --epochs 50 --steps-per-epoch 467 --num-workers 8 \\
        --output-dir runs/landcover_ai

Deviations of the tiny default (random-init backbone, 30 steps): stochastic
depth 0 (torchvision's 0.5 on a random one-block-per-stage Swin made the
features change wildly from step to step and the model did not learn); the
whole backbone frozen (``--freeze-layers 8``; source 5 on a pretrained one:
training random stages 3-4 cost about 3x the CPU and learned less in 40
steps); the FPN head sees all pyramid levels (``--fuse sum``; the source uses
only the coarsest, ``--fuse coarsest``, which cannot resolve small inputs);
128 px inputs from 256 px chips (source 256 from 512). Kept departures on every
run: the source's LightningModule rebuilt its model from a raw ``swin_v2_b``
(a bug at its HEAD); geofm uses the model it builds. RandomResizedCrop
resamples with ``grid_sample`` (no antialiasing; torchvision antialiases).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from _cli import check_choices, progress, run
from torch import nn
from torch.utils.data import DataLoader, Dataset, RandomSampler, Subset

import geofm
from geofm.datasets import collate_chips
from geofm.hub import ModuleSpec, build_segmentation_model, save_pretrained
from geofm.metrics import ConfusionMatrix
from geofm.sensors import ValueScaling
from geofm.transforms import (
    ColorJitter,
    Compose,
    Normalize,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomRotation,
)

CLASSES = ("background", "building", "woodland", "water", "road")
LANDCOVER_AI_MEAN = (0.3686, 0.3971, 0.3442)
LANDCOVER_AI_STD = (0.1015, 0.0897, 0.0739)
SCENE_CHIP = 512  # split.py's TARGET_SIZE: grid chips of the GeoTIFF scenes


@dataclass(frozen=True)
class Config:
    """Land-cover settings (every field is also a command-line flag)."""

    data_dir: str = ""  # LandCover.ai root; empty: synthetic chips
    layout: Literal["auto", "scenes", "chips"] = "auto"  # scenes: images/+masks/ GeoTIFFs
    weights: str = ""  # Satlas checkpoint (raw file or catalog tag); empty: random init
    depths: tuple[int, ...] = (1, 1, 1, 1)  # source: 2,2,18,2
    taps: Literal["ml4earth", "satlas"] = "ml4earth"  # feature nodes; ml4earth: the source's
    freeze_layers: int = 8  # leading children of features frozen (source: 5)
    drop_path_rate: float = 0.0  # source: 0.5 (torchvision swin_v2_b default)
    fuse: Literal["sum", "coarsest"] = "sum"  # coarsest: the source's
    class_weights: tuple[float, ...] = (0.5, 1.5, 0.7, 1.0, 1.3)  # source's CE weights
    image_size: int = 128  # train crop and validation resize; source: 256
    rotation_degrees: float = 15.0  # source: 15 (applied with p 0.5)
    crop_scale: tuple[float, ...] = (0.66, 1.0)  # RandomResizedCrop area; source: 0.66,1
    crop_ratio: tuple[float, ...] = (0.75, 1.33)  # source: 0.75,1.33
    color_jitter: float = 0.2  # brightness, contrast, saturation, hue; source: 0.2
    batch_size: int = 2  # source: 16
    epochs: int = 3  # source: 50
    steps_per_epoch: int = 10
    lr: float = 1e-4  # source: 1e-4
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    plateau_patience: int = 5
    early_stopping_patience: int = 15
    train_chips: int = 8  # synthetic training chips
    val_chips: int = 2  # synthetic validation chips
    chip_size: int = 256  # synthetic chip side; LandCover.ai: 512
    map_scene: str = ""  # GeoTIFF to map; empty: synthetic scene or first val chip
    num_workers: int = 0  # data-loading processes (real data)
    seed: int = 0
    progress: bool = True  # tqdm bars (if installed); --no-progress silences them
    output_dir: str = "runs/landcover_swin_fpn"


# ---------------------------------------------------------------- data


class ChipList(Dataset[dict[str, torch.Tensor]]):
    """In-memory chips as samples ``{"image": (3, H, W) in [0, 255], "mask": (H, W)}``."""

    def __init__(self, images: list[torch.Tensor], masks: list[torch.Tensor]) -> None:
        self.images, self.masks = images, masks

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[index], "mask": self.masks[index]}


def synthetic_chip(size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """A synthetic RGB chip ``(3, H, W)`` in [0, 255], its LandCover.ai-order mask, the scene."""
    from geofm.datasets import landcover_scene

    # Class areas like LandCover.ai: background and woodland dominate, roads are rare.
    scene = landcover_scene(
        size=size,
        bands="rgb",
        num_classes=5,
        seed=seed,
        scale=12.0,
        class_weights=(1.0, 2.0, 3.0, 1.0, 0.5),
    )
    # Synthetic classes (water, vegetation, soil, built-up, extra) in LandCover.ai's order:
    # background=soil, building=built-up, woodland=vegetation, water, road=extra.
    mask = torch.tensor([3, 2, 0, 1, 4])[torch.from_numpy(scene.mask)]
    return torch.from_numpy(scene.image * 255.0).float(), mask, scene


def _chip_names(chips: Any, scenes: list[Path]) -> Iterator[tuple[str, int]]:
    """``(name, index)`` of every grid chip: its scene's name, and split.py's chip name.

    split.py numbers the 512 px tiles of a scene row by row, ``k = row * columns + col``
    with ``columns = ceil(width / 512)``, counting the partial edge tiles it does not
    write; a grid window starting on that lattice is the tile of the same number.
    """
    import rasterio

    columns = {}
    for path in scenes:
        with rasterio.open(path) as src:
            columns[path] = -(-src.width // SCENE_CHIP)
    for index in range(len(chips)):
        path, row, col = chips.window(index)
        yield path.stem, index
        if row % SCENE_CHIP == 0 and col % SCENE_CHIP == 0:
            tile = row // SCENE_CHIP * columns[path] + col // SCENE_CHIP
            yield f"{path.stem}_{tile}", index


def load_scenes(root: Path) -> tuple[Subset[Any], Subset[Any], Path]:
    """512 px grid chips of ``images/*.tif`` + ``masks/*.tif`` split by ``{train,val}.txt``.

    Returns the training and validation chips (``RasterChipDataset`` samples: ``image``
    ``(3, 512, 512)`` float32 in [0, 255], ``mask`` ``(512, 512)`` int64, -100 where a
    mask declares nodata, which the loss, the class counts and the metrics skip) and the
    scene of the first validation chip.
    """
    from geofm.datasets import RasterChipDataset

    layout = "images/<scene>.tif, masks/<scene>.tif and train.txt / val.txt"
    scenes = sorted((root / "images").glob("*.tif"))
    if not scenes:
        raise FileNotFoundError(f"No GeoTIFF scenes in {root / 'images'}; expected {layout}.")
    masks = [root / "masks" / path.name for path in scenes]
    missing = [str(m) for m in masks if not m.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(scenes)} scenes have no mask (e.g. {missing[0]}); "
            f"expected {layout}."
        )
    chips = RasterChipDataset(scenes, masks, size=SCENE_CHIP, rank=0, world_size=1)
    indices: dict[str, list[int]] = {}
    for name, index in _chip_names(chips, scenes):
        indices.setdefault(name, []).append(index)
    parts = []
    for split in ("train", "val"):
        listed = root / f"{split}.txt"
        if not listed.is_file():
            raise FileNotFoundError(f"Split file {listed} is missing; expected {layout}.")
        wanted = [line.strip() for line in listed.read_text().splitlines() if line.strip()]
        unknown = [name for name in wanted if name not in indices]
        if unknown or not wanted:
            raise ValueError(
                f"{listed} names {len(unknown)} of {len(wanted)} chips that are neither a scene "
                f"of images/ nor a whole 512 px chip <scene>_<k> of one (e.g. "
                f"{(unknown or ['<empty file>'])[0]!r}). List split.py's chip names or scene "
                "names, one per line."
            )
        parts.append(Subset(chips, [index for name in wanted for index in indices[name]]))
    train, val = parts
    return train, val, chips.window(val.indices[0])[0]


def load_data(cfg: Config, workdir: Path) -> tuple[Dataset[Any], Dataset[Any], Path | None]:
    """Training and validation chips, and a georeferenced scene to map (or ``None``)."""
    if cfg.data_dir:
        from geofm.datasets import LandCoverAI

        root = Path(cfg.data_dir)
        layout = cfg.layout
        if layout == "auto":
            layout = "scenes" if (root / "images").is_dir() else "chips"
        if layout == "scenes":
            train_chips, val_chips, first = load_scenes(root)
            return train_chips, val_chips, Path(cfg.map_scene) if cfg.map_scene else first

        train = LandCoverAI(cfg.data_dir, split="train")
        val = LandCoverAI(cfg.data_dir, split="val")
        scene = (
            Path(cfg.map_scene) if cfg.map_scene else val.root / "output" / f"{val.names[0]}.jpg"
        )
        return train, val, scene
    from geofm.datasets import write_landcover_scene

    chips = [synthetic_chip(cfg.chip_size, cfg.seed + i) for i in range(cfg.train_chips)]
    held_out = [synthetic_chip(cfg.chip_size, cfg.seed + 10_000 + i) for i in range(cfg.val_chips)]
    train = ChipList([c[0] for c in chips], [c[1] for c in chips])
    val = ChipList([c[0] for c in held_out], [c[1] for c in held_out])
    workdir.mkdir(parents=True, exist_ok=True)  # only the synthetic default writes a scene
    image_path, _ = write_landcover_scene(workdir, held_out[0][2])  # EPSG:32633, 10 m
    return train, val, Path(cfg.map_scene) if cfg.map_scene else image_path


def is_georeferenced(path: Path) -> bool:
    """Whether ``path`` has a CRS and a non-identity transform (jpg chips have neither)."""
    import warnings

    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            return src.crs is not None and not src.transform.is_identity


def train_augmentation(cfg: Config) -> Compose:
    """The source's TrainTransform on [0, 1] images (normalisation follows separately)."""
    j = cfg.color_jitter
    return Compose(
        [
            RandomHorizontalFlip(p=0.5),
            RandomRotation(cfg.rotation_degrees, p=0.5, fill=0.0, mask_fill=0),
            RandomResizedCrop(
                cfg.image_size,
                scale=(cfg.crop_scale[0], cfg.crop_scale[1]),
                ratio=(cfg.crop_ratio[0], cfg.crop_ratio[1]),
            ),
            ColorJitter(brightness=j, contrast=j, saturation=j, hue=j),
        ]
    )


def resize_for_validation(
    image: torch.Tensor, mask: torch.Tensor, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The source's ValTestTransform resize: image bilinear (antialiased), mask nearest."""
    image = F.interpolate(image, size=(size, size), mode="bilinear", antialias=True)  # (N, 3, S, S)
    mask = F.interpolate(mask[:, None].float(), size=(size, size), mode="nearest")[:, 0].long()
    return image, mask


# ---------------------------------------------------------------- model


def build_model(cfg: Config) -> nn.Module:
    """Swin (torchvision layout, ``cfg.taps``) -> FPN(256) -> FPNSegmentationHead."""
    backbone = geofm.create_backbone(
        "tv_swin_v2_b",
        depths=cfg.depths,
        drop_path_rate=cfg.drop_path_rate,
        taps=cfg.taps,
        pretrained=cfg.weights or False,
    )
    # What the model expects, saved with it: 8-bit RGB / 255, then LandCover.ai's
    # statistics (the training normalisation), so `geofm predict` prepares scenes alike.
    backbone.input_spec = geofm.InputSpec(
        num_bands=3,
        scaling=ValueScaling.uniform(divisor=255.0),
        mean=LANDCOVER_AI_MEAN,
        std=LANDCOVER_AI_STD,
        multiple=backbone.input_spec.multiple,
        min_size=backbone.input_spec.min_size,
    )
    channels = [f.channels for f in backbone.feature_info]
    model = build_segmentation_model(
        backbone,
        neck=ModuleSpec("FPN", {"in_channels": channels, "out_channels": 256}),
        head=ModuleSpec(
            "FPNSegmentationHead", {"in_channels": 256, "num_classes": 5, "fuse": cfg.fuse}
        ),
    )
    # Source: the first 5 children of ``features`` (patch embed, stage 1, merge, stage 2,
    # merge) are frozen.
    for child in list(backbone.features.children())[: cfg.freeze_layers]:
        child.requires_grad_(False)
    return model


def evaluate(
    model: nn.Module, norm: Normalize, val: Dataset[Any], cfg: Config, baseline_class: int = 0
) -> tuple[ConfusionMatrix, ConfusionMatrix, torch.Tensor]:
    """Validation confusion matrices (model, always ``baseline_class``) and first prediction.

    The chips are resized to ``image_size`` first, as the source's ValTestTransform does.
    """
    # -100: RasterChipDataset's label for mask pixels a scene's mask marks as nodata.
    cm = ConfusionMatrix(num_classes=len(CLASSES), ignore_index=-100)
    base = ConfusionMatrix(num_classes=len(CLASSES), ignore_index=-100)
    first: torch.Tensor | None = None
    loader = DataLoader(
        val, batch_size=cfg.batch_size, num_workers=cfg.num_workers, collate_fn=collate_chips
    )
    model.eval()
    with torch.no_grad():
        for batch in progress(loader, desc="landcover eval", show=cfg.progress):
            image, mask = resize_for_validation(
                batch["image"] / 255.0, batch["mask"], cfg.image_size
            )
            prediction = model(norm(image)).argmax(1)  # (N, S, S)
            cm.update(prediction, mask)
            base.update(torch.full_like(mask, baseline_class), mask)
            first = prediction[0] if first is None else first
    assert first is not None  # the validation set is never empty
    return cm, base, first


def check_config(cfg: Config) -> torch.Tensor:
    check_choices(cfg)
    class_weights = torch.tensor(cfg.class_weights, dtype=torch.float32)
    if class_weights.shape != (len(CLASSES),) or bool((class_weights <= 0).any()):
        raise ValueError(
            f"class_weights must be {len(CLASSES)} positive numbers, got {cfg.class_weights!r}."
        )
    if cfg.image_size <= 0 or cfg.image_size % 32:
        raise ValueError(f"image_size must be a positive multiple of 32, got {cfg.image_size}.")
    for name in ("crop_scale", "crop_ratio"):
        pair = getattr(cfg, name)
        if len(pair) != 2 or not 0 < pair[0] <= pair[1]:
            raise ValueError(f"{name} must be an increasing pair low,high > 0, got {pair!r}.")
    if not cfg.data_dir and (cfg.train_chips < 1 or cfg.val_chips < 1):
        raise ValueError("train_chips and val_chips must be at least 1.")
    if cfg.map_scene and not Path(cfg.map_scene).is_file():
        raise FileNotFoundError(f"--map-scene {cfg.map_scene!r} is not a file.")
    try:  # the PNG is drawn after training: fail now, not then
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError(
            "matplotlib is required for the example's figure. Install it with: "
            "pip install matplotlib (or pip install 'geofm[examples]')."
        ) from None
    return class_weights


def main(cfg: Config) -> dict[str, Any]:
    class_weights = check_config(cfg)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    # The synthetic default writes its held-out scene to <output>/scene/ (kept: it is the
    # scene mapped, and `geofm predict <output>/model <output>/scene/image.tif` redoes the map).
    train, val, scene_path = load_data(cfg, out / "scene")
    model = build_model(cfg)
    augment = train_augmentation(cfg)
    # (x - mean) / std with LandCover.ai's statistics, on x in [0, 1].
    norm = Normalize(LANDCOVER_AI_MEAN, LANDCOVER_AI_STD)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=0.1, patience=cfg.plateau_patience, min_lr=1e-8
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    sampler = RandomSampler(
        train, replacement=True, num_samples=cfg.steps_per_epoch * cfg.batch_size, generator=gen
    )
    loader = DataLoader(
        train,
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.num_workers,
        collate_fn=collate_chips,  # a batch's chips are read into one buffer: no stacking copy
    )
    history: list[dict[str, float]] = []
    counts = torch.zeros(len(CLASSES), dtype=torch.long)  # training labels seen (raw chips)
    best_iou, best_state, stale = -1.0, None, 0
    for epoch in progress(range(cfg.epochs), desc="landcover", show=cfg.progress):
        model.train()
        losses = []
        for batch in loader:
            labelled = batch["mask"][batch["mask"] >= 0]  # cross_entropy skips -100 too
            counts += torch.bincount(labelled, minlength=len(CLASSES))
            sample = augment(
                {"image": batch["image"] / 255.0, "mask": batch["mask"]}, generator=gen
            )
            loss = F.cross_entropy(
                model(norm(sample["image"])),
                sample["mask"],
                weight=class_weights,
                label_smoothing=cfg.label_smoothing,
            )
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            losses.append(loss.item())
        val_iou = float(evaluate(model, norm, val, cfg)[0].iou(average="macro"))
        scheduler.step(val_iou)
        history.append(
            {
                "epoch": epoch,
                "train_loss": float(np.mean(losses)),
                "val_iou": val_iou,
                "lr": optimizer.param_groups[0]["lr"],
            }
        )
        if val_iou > best_iou:
            best_iou, stale = val_iou, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= cfg.early_stopping_patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    majority = int(counts.argmax())  # most frequent class of the training chips drawn
    cm, base, first_prediction = evaluate(model, norm, val, cfg, baseline_class=majority)
    model_dir = save_pretrained(model.eval(), out / "model")
    metrics: dict[str, Any] = {
        "val_iou": float(cm.iou(average="macro")),
        "val_f1": float(cm.f1_score(average="macro")),
        "val_precision": float(cm.precision(average="macro")),
        "val_recall": float(cm.recall(average="macro")),
        "val_accuracy_macro": float(cm.accuracy(average="macro")),
        "val_accuracy_micro": float(cm.accuracy(average="micro")),
        "per_class_iou": dict(zip(CLASSES, cm.iou(average="none").tolist(), strict=True)),
        "majority_class": CLASSES[majority],
        "majority_baseline_iou": float(base.iou(average="macro")),
        "majority_baseline_accuracy_macro": float(base.accuracy(average="macro")),
        "majority_baseline_accuracy_micro": float(base.accuracy(average="micro")),
        "trainable_parameters": sum(p.numel() for p in params),
        "history": history,
        "model": str(model_dir),
        "map": None,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))  # before the map
    metrics |= write_map(cfg, model, scene_path, out)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    plot(out / "landcover.png", history, metrics["map"], first_prediction)
    return metrics


def write_map(cfg: Config, model: nn.Module, scene: Path | None, out: Path) -> dict[str, Any]:
    """Map the georeferenced ``scene`` with ``predict_raster``, or say why there is no map."""
    if scene is None or not is_georeferenced(scene):
        return {
            "map": None,
            "map_skipped": (
                f"{scene} has no georeference (LandCover.ai's split.py writes plain jpg chips); "
                "pass a GeoTIFF with --map-scene (e.g. one of LandCover.ai's images/*.tif)."
            ),
        }
    from geofm.geo import predict_raster

    # Rasters hold 0-255; the model's saved input spec gives (x / 255 - mean) / std,
    # as in training, so this map equals `geofm predict <out>/model <scene>`.
    path = predict_raster(
        model.eval(),
        scene,
        out / "landcover_map.tif",
        tile=max(64, cfg.image_size),
        overlap=max(64, cfg.image_size) // 4,
        overwrite=True,
    )
    return {"map": str(path), "map_scene": str(scene)}


def plot(
    path: Path, history: list[dict[str, float]], map_path: str | None, chip: torch.Tensor
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 4))
    a.plot([h["train_loss"] for h in history], label="train loss")
    a.plot([h["val_iou"] for h in history], label="val IoU")
    a.set(xlabel="epoch", title="curves")
    a.legend()
    if map_path is not None:
        from geofm.geo import read_raster

        shown, title = read_raster(map_path).array[0], "predicted land-cover map"
    else:
        shown, title = chip.numpy(), "prediction, first validation chip"
    b.imshow(shown, vmin=0, vmax=4, cmap="tab10", interpolation="nearest")
    b.set(title=title)
    b.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    run(main, Config, hide=("history",))
