r"""Fusion-LoRA: 6-band Sentinel-2 into a frozen RGB SwinV2 with CAF + GLF, 19 labels.

What it shows (Eyobed-Abby/fusion-lora-skysense, SOURCES.md section 5): a
6-band BigEarthNet-S2 patch ``[B04, B03, B02, B08, B11, B12]`` (reflectance in
[0, 1]) goes through ``geofm.spectral.SpectralTokenizer`` (Conv3x3 6->64 ->
ReLU -> Conv1x1 64->3, bilinear resize) into a frozen Swin-V2 encoder whose
last stage is the visual map: ``--backbone skysense_o_swinv2_huge`` is the
source's SkySense-O visual encoder (2816 channels at stride 16, projected
per pixel to 1024 channels by SkySense-CLIP's frozen ``vision_projection``
[2816 x 1024]; 24 x 24 at 384 px, the source's grid), the default
``swinv2_base_window8`` is timm's SwinV2-B (1024 channels at stride 32, no
projection; 12 x 12 at 384 px). A spectral branch (Conv1x1 6->C on the raw
bands, bilinear to the visual grid) gives the keys/values of
``geofm.fusion.CrossAttentionFusion``; ``GatedLateFusion(fused, visual)`` ->
global average pool -> ``Linear(C, 19)``, trained with BCE-with-logits and
AdamW (wd 1e-4). With ``--lora`` (the default, the source's
``feature/clip-visual-lora`` branch) every ``nn.Linear`` of Swin stages 2 and
3 gets a rank-8 / alpha-16 LoRA adapter (``geofm.lora.fusion_lora_config``);
``--no-lora`` is the source's main branch (frozen encoder).

The CAF projections are plain trainable ``nn.Linear`` layers by default;
``--caf-projections random_lora`` uses the source's layers (frozen random
base weight, trainable bias, rank-8 / alpha-1 update with both factors from
N(0, 0.01^2): ``geofm.fusion.RandomBaseLoRALinear``), and ``--head
random_lora`` the main branch's classifier of the same kind (the LoRA branch
and the default use a plain ``Linear``).

Training evaluates the validation loss every ``--eval-every`` steps and keeps
the best-validation checkpoint (as the source does, by validation loss); the
reported numbers are those of that checkpoint, on the validation split (the
one it was selected on) and on the held-out test split: bit (element-wise)
accuracy, micro / macro F1 and per-class F1 (sigmoid > 0.5, ``geofm.metrics``),
next to two trivial baselines: all-negative, and "predict the k most frequent
training labels" (k = mean labels per training sample). The adapters and the
trained modules (tokenizer, spectral branch, CAF, GLF, head) are saved with
``save_lora`` and reloaded to check them.

Tiny default: timm initialises every SwinV2 block's post-norm weights
(``norm1``, ``norm2``) to zero, so with random weights each block is the
identity and its attention / MLP (and their LoRA adapters) get no gradient;
a trained checkpoint has non-zero post-norms. Without ``--weights`` the script
therefore sets those weights to 1 (LayerNorm's usual init) before adding the
adapters, so that every adapter trains (``tests/examples_real`` checks that
every LoRA ``B`` moves).

Tiny-default results (seed 0): validation micro-F1 0.51, macro-F1 0.45, bit accuracy
0.92, test micro-F1 0.58, against 0.11 micro-F1 for the label prior (measured
2026-12-06, torch 2.14.1, one thread, ``OMP_NUM_THREADS=1``, on a 2-core VM shared with
other jobs; times +-30%).

Run (tiny defaults: synthetic 6-band multi-label scenes from
``geofm.datasets.SyntheticMultilabel`` with the ``bigearthnet_s2_6band``
sensor, timm SwinV2-B with depths (1, 1, 1, 1), random init, 32 px input
resized to a 64 px encoder input, batch 16, 120 steps; about 2 minutes on a
2-core CPU)::

    python examples/fusion_lora_bigearthnet.py
    python examples/fusion_lora_bigearthnet.py --no-lora --steps 200

Real data: the folder Fusion-LoRA's ``prepare_spectral_data.py`` writes from
BigEarthNet v2.0 + ``metadata.parquet`` (``<split>_labels.csv`` and
``<split>_tensors/<patch>.pt``, see ``geofm.datasets.BigEarthNetS2``; the raw
v2.0 folder is not read directly), at the source's settings (SkySense-O, 256 px
input resized to 384 px, batch 8, lr 1e-4, 15 epochs of 29,734 steps, one
validation per epoch; needs the SkySense-CLIP checkpoint file)::

    python examples/fusion_lora_bigearthnet.py --data-dir /data/bigearthnet_6band \\
        --backbone skysense_o_swinv2_huge --depths 2,2,18,2 --weights /data/skysense_clip.pth \\
        --input-size 256 --img-size 384 --batch-size 8 --lr 1e-4 --steps 446010 \\
        --eval-every 29734 --workers 4

Deviations: the tokenizer output is fed as is (the source normalises its 0-1
output with 0-255 CLIP statistics, a quirk: ``--clip-normalize``); the CAF
projections and the classifier are plain trainable layers unless
``--caf-projections random_lora`` / ``--head random_lora``; the tiny default
uses lr 1e-3 and batch 16 (source 1e-4 and 8) because the run is 120 steps
long; no AMP; the test split is evaluated once, with the best-validation
checkpoint (the source's eval script does the same from the saved file).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from _cli import check_choices, progress, run
from torch import nn
from torch.utils.data import DataLoader, Dataset, default_collate

import geofm
from geofm.errors import MissingDependencyError
from geofm.fusion import CrossAttentionFusion, GatedLateFusion, RandomBaseLoRALinear
from geofm.lora import LoRAConfig, apply_lora, fusion_lora_config, load_lora, save_lora
from geofm.metrics import multilabel_accuracy, multilabel_f1_score
from geofm.spectral import SpectralTokenizer

NUM_LABELS = 19
NUM_BANDS = 6
TRAINED = ("tokenizer", "spectral_proj", "caf", "glf", "head")
SKYSENSE_CLIP_DIM = 1024  # SkySense-CLIP embed_dim: vision_projection is [2816 x 1024]
# SkySense-O's CLIP_PIXEL_MEAN / STD (0-255 scale), applied by the source to the 0-1 pseudo-RGB.
CLIP_PIXEL_MEAN = (123.675, 116.28, 103.53)
CLIP_PIXEL_STD = (58.395, 57.12, 57.375)

Sample = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Config:
    """Fusion-LoRA settings (every field is also a command-line flag)."""

    data_dir: str = ""  # prepared BigEarthNet-S2 6-band root; empty: synthetic scenes
    backbone: Literal["swinv2_base_window8", "skysense_o_swinv2_huge"] = "swinv2_base_window8"
    weights: str = ""  # encoder checkpoint (SkySense-O: skysense_clip.pth); empty: random init
    depths: tuple[int, ...] = (1, 1, 1, 1)  # source encoder: 2,2,18,2
    lora: bool = True  # LoRA r 8 / alpha 16 in Swin stages 2-3 (source branch); --no-lora: main
    caf_projections: Literal["linear", "random_lora"] = "linear"  # source: random_lora
    head: Literal["linear", "random_lora"] = "linear"  # main branch: random_lora
    clip_normalize: bool = False  # source quirk: CLIP 0-255 mean/std on the 0-1 pseudo-RGB
    input_size: int = 32  # source: 256
    img_size: int = 64  # tokenizer output / encoder input (>= 64: 2x2 last stage); source: 384
    num_heads: int = 8  # CAF heads
    train_samples: int = 256  # synthetic only
    val_samples: int = 128  # synthetic only
    test_samples: int = 128  # synthetic only
    batch_size: int = 16  # source: 8
    steps: int = 120
    eval_every: int = 30  # validation loss every n steps (source: every epoch)
    lr: float = 1e-3  # source: 1e-4
    weight_decay: float = 1e-4
    workers: int = 0  # DataLoader worker processes
    seed: int = 0
    plot: bool = True  # write fusion_lora.png (needs matplotlib, checked at start)
    progress: bool = True  # tqdm bars (if installed); --no-progress silences them
    output_dir: str = "runs/fusion_lora_bigearthnet"


class VisionProjection(nn.Module):
    """SkySense-CLIP's ``vision_projection``: a per-pixel ``x @ P`` with ``P`` ``(C, D)``, frozen.

    Args:
        projection: The ``(C, D)`` matrix (the checkpoint's ``clip.vision_projection``).
    """

    def __init__(self, projection: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(projection.detach().clone().float(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` -> ``(N, D, H, W)``."""
        return torch.einsum("nchw,cd->ndhw", x, self.weight)  # (N, D, H, W)


class FusionLoRAClassifier(nn.Module):
    """Tokenizer -> frozen Swin (last stage) + spectral branch -> CAF -> GLF -> pool -> head."""

    def __init__(
        self,
        backbone: geofm.Backbone,
        *,
        img_size: int,
        num_heads: int,
        projection: VisionProjection | None,
        caf_projections: Literal["linear", "random_lora"],
        head: Literal["linear", "random_lora"],
        clip_normalize: bool,
    ) -> None:
        super().__init__()
        channels = backbone.feature_info[-1].channels
        if projection is not None:
            if projection.weight.shape[0] != channels:
                raise ValueError(
                    f"vision_projection has {projection.weight.shape[0]} input channels, the "
                    f"encoder's last stage {channels}."
                )
            channels = projection.weight.shape[1]
        self.tokenizer = SpectralTokenizer(in_channels=NUM_BANDS, output_size=img_size)
        self.backbone = backbone
        self.vision_projection = projection
        self.spectral_proj = nn.Conv2d(NUM_BANDS, channels, kernel_size=1)
        self.caf = CrossAttentionFusion(
            embed_dim=channels, num_heads=num_heads, projection=caf_projections
        )
        self.glf = GatedLateFusion(channels=channels)
        self.head: nn.Module = (
            RandomBaseLoRALinear(channels, NUM_LABELS)
            if head == "random_lora"
            else nn.Linear(channels, NUM_LABELS)
        )
        self.clip_normalize = clip_normalize
        self.register_buffer("clip_mean", torch.tensor(CLIP_PIXEL_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("clip_std", torch.tensor(CLIP_PIXEL_STD).view(1, 3, 1, 1), False)

    def visual(self, x: torch.Tensor) -> torch.Tensor:
        """The (projected) last encoder map ``(N, C, h, w)`` for 6-band input ``(N, 6, H, W)``."""
        rgb = self.tokenizer(x)  # (N, 3, S, S)
        if self.clip_normalize:
            rgb = (rgb - self.clip_mean) / self.clip_std
        visual = self.backbone(rgb)[-1]  # (N, C_enc, h, w)
        if self.vision_projection is not None:
            visual = self.vision_projection(visual)  # (N, C, h, w)
        return visual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 19)`` for 6-band input ``(N, 6, H, W)``."""
        visual = self.visual(x)  # (N, C, h, w)
        spectral = F.interpolate(
            self.spectral_proj(x), size=visual.shape[-2:], mode="bilinear", align_corners=False
        )  # (N, C, h, w)
        fused = self.glf(self.caf(visual, spectral), visual)  # (N, C, h, w)
        logits: torch.Tensor = self.head(fused.mean(dim=(2, 3)))  # (N, 19)
        return logits


def load_vision_projection(path: str | Path) -> torch.Tensor:
    """SkySense-CLIP's ``vision_projection`` ``(2816, 1024)`` from ``skysense_clip.pth``.

    The file is a dict whose ``clip`` entry holds the CLIP tensors (SOURCES.md 5.4);
    read with ``torch.load(weights_only=True)``.
    """
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    clip = checkpoint.get("clip") if isinstance(checkpoint, dict) else None
    projection = clip.get("vision_projection") if isinstance(clip, dict) else None
    if not isinstance(projection, torch.Tensor) or projection.ndim != 2:
        raise ValueError(
            f"{path} has no 2-D 'clip' -> 'vision_projection' tensor, which SkySense-CLIP "
            "checkpoints (skysense_clip.pth) hold. Pass that file with --weights."
        )
    return projection


def init_post_norms(backbone: nn.Module) -> int:
    """Set timm SwinV2's zero-initialised block post-norm weights to 1; returns how many."""
    count = 0
    for name, module in backbone.named_modules():
        if name.rsplit(".", 1)[-1] in ("norm1", "norm2") and isinstance(module, nn.LayerNorm):
            with torch.no_grad():
                module.weight.fill_(1.0)
            count += 1
    return count


def build_model(cfg: Config) -> FusionLoRAClassifier:
    """The classifier with a frozen encoder (LoRA adapters added when ``cfg.lora``)."""
    torch.manual_seed(cfg.seed)  # a random-init encoder is reproducible, so the adapters reload
    common: dict[str, Any] = {"depths": cfg.depths, "out_indices": [3], "drop_path_rate": 0.0}
    if cfg.backbone == "swinv2_base_window8":
        common["img_size"] = cfg.img_size
    backbone = geofm.create_backbone(cfg.backbone, pretrained=cfg.weights or False, **common)
    projection = None
    if cfg.backbone == "skysense_o_swinv2_huge":
        if cfg.weights:
            matrix = load_vision_projection(cfg.weights)
        else:  # CLIP's init of the projection: N(0, width^-1/2)
            width = backbone.feature_info[-1].channels
            matrix = torch.randn(width, SKYSENSE_CLIP_DIM) * width**-0.5
        projection = VisionProjection(matrix)
    elif not cfg.weights:
        init_post_norms(backbone)  # see the module docstring (timm's zero post-norms)
    model = FusionLoRAClassifier(
        backbone,
        img_size=cfg.img_size,
        num_heads=cfg.num_heads,
        projection=projection,
        caf_projections=cfg.caf_projections,
        head=cfg.head,
        clip_normalize=cfg.clip_normalize,
    )
    model.backbone.requires_grad_(False)
    if cfg.lora:
        # Fusion-LoRA's placement (every Linear of stages 2-3), addressed from the full model;
        # the fusion modules and the head are trained and saved in full next to the adapters.
        base = fusion_lora_config()
        swin = cfg.backbone == "swinv2_base_window8"
        stages = "backbone.model.layers" if swin else "backbone.stages"
        lora_cfg: LoRAConfig = dataclasses.replace(
            base,
            targets=tuple(t.replace("layers", stages, 1) for t in base.targets),
            also=TRAINED,
        )
        apply_lora(model, lora_cfg)
    return model


class Tensors(Dataset[Sample]):
    """In-memory samples (the synthetic scenes are rendered once)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> Sample:
        return {"image": self.images[index], "label": self.labels[index]}


class Resized(Dataset[Sample]):
    """``base``'s samples with the image bilinearly resized to ``size`` (source: 256 px)."""

    def __init__(self, base: Any, size: int) -> None:
        self.base, self.size = base, size
        self.labels: torch.Tensor = base.labels

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> Sample:
        s = self.base[index]
        image = s["image"].float()
        if image.shape[-2:] != (self.size, self.size):
            image = F.interpolate(image[None], size=self.size, mode="bilinear")[0]
        return {"image": image, "label": s["label"].float()}


def load_data(cfg: Config) -> tuple[Resized | Tensors, Resized | Tensors, Resized | Tensors]:
    """Train / val / test sets: images ``(6, S, S)`` in [0, 1], multi-hot labels ``(19,)``."""
    from geofm.datasets import BigEarthNetS2, SyntheticMultilabel

    if cfg.data_dir:
        return (
            Resized(BigEarthNetS2(cfg.data_dir, split="train"), cfg.input_size),
            Resized(BigEarthNetS2(cfg.data_dir, split="val"), cfg.input_size),
            Resized(BigEarthNetS2(cfg.data_dir, split="test"), cfg.input_size),
        )

    def synthetic(length: int, seed: int) -> Tensors:
        ds = SyntheticMultilabel(
            length=length,
            size=cfg.input_size,
            bands="bigearthnet_s2_6band",
            num_labels=NUM_LABELS,
            max_classes=3,
            seed=seed,
        )
        batch = default_collate([ds[i] for i in range(len(ds))])
        return Tensors(batch["image"].float(), batch["label"].float())

    return (
        synthetic(cfg.train_samples, cfg.seed),
        synthetic(cfg.val_samples, cfg.seed + 1),
        synthetic(cfg.test_samples, cfg.seed + 2),
    )


def predict(model: nn.Module, data: Dataset[Sample], cfg: Config) -> tuple[torch.Tensor, ...]:
    """Logits and labels ``(N, 19)`` of a whole split, in eval mode."""
    model.eval()
    loader = DataLoader(data, batch_size=cfg.batch_size, num_workers=cfg.workers)
    logits, labels = [], []
    with torch.no_grad():
        for batch in progress(loader, desc="fusion-lora eval", show=cfg.progress):
            logits.append(model(batch["image"]))
            labels.append(batch["label"])
    return torch.cat(logits), torch.cat(labels)


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k in names}


def split_metrics(
    prefix: str, logits: torch.Tensor, labels: torch.Tensor, class_names: list[str]
) -> dict[str, Any]:
    """Bit accuracy, micro / macro F1 and per-class F1 (sigmoid > 0.5), keys ``<prefix>_*``."""
    probs = torch.sigmoid(logits)
    per_class = multilabel_f1_score(probs, labels, average="none")
    return {
        f"{prefix}_bit_accuracy": float(multilabel_accuracy(probs, labels, average="micro")),
        f"{prefix}_micro_f1": float(multilabel_f1_score(probs, labels, average="micro")),
        f"{prefix}_macro_f1": float(multilabel_f1_score(probs, labels, average="macro")),
        f"{prefix}_per_class_f1": dict(zip(class_names, per_class.tolist(), strict=True)),
        f"{prefix}_loss": float(F.binary_cross_entropy_with_logits(logits, labels)),
    }


def check_config(cfg: Config) -> None:
    """Reject bad settings before any work (and a missing matplotlib when plotting)."""
    check_choices(cfg)
    for name in ("input_size", "img_size", "steps", "batch_size", "eval_every"):
        if getattr(cfg, name) <= 0:
            raise ValueError(f"{name} must be positive, got {getattr(cfg, name)}.")
    multiple = 32 if cfg.backbone == "swinv2_base_window8" else 16
    if cfg.img_size % multiple:
        raise ValueError(
            f"img_size must be a multiple of {multiple} for {cfg.backbone}, got {cfg.img_size}."
        )
    if cfg.plot and importlib.util.find_spec("matplotlib") is None:
        raise MissingDependencyError(
            "fusion_lora_bigearthnet.py draws fusion_lora.png with matplotlib, which is not "
            "installed. Install it with: pip install matplotlib (or geofm[examples]), "
            "or pass --no-plot."
        )


def main(cfg: Config) -> dict[str, Any]:
    check_config(cfg)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_set, val_set, test_set = load_data(cfg)
    if cfg.data_dir:
        from geofm.datasets import BIGEARTHNET_19_CLASSES

        class_names = list(BIGEARTHNET_19_CLASSES)
    else:
        class_names = [f"label_{i}" for i in range(NUM_LABELS)]
    model = build_model(cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    loader = DataLoader(
        train_set,
        batch_size=cfg.batch_size,
        shuffle=True,
        drop_last=True,
        generator=gen,
        num_workers=cfg.workers,
    )
    if len(loader) == 0:
        raise ValueError(f"The training set ({len(train_set)}) is smaller than one batch.")

    def batches() -> Iterator[Sample]:
        for _ in itertools.count():  # epoch after epoch, reshuffled
            yield from loader

    losses: list[float] = []
    history: list[dict[str, float]] = []
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    steps = progress(range(1, cfg.steps + 1), desc="fusion-lora", show=cfg.progress)
    for step, batch in zip(steps, batches(), strict=False):  # stops after the steps
        model.train()
        model.backbone.eval()  # frozen encoder: no stochastic depth / dropout
        loss = F.binary_cross_entropy_with_logits(model(batch["image"]), batch["label"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step % cfg.eval_every == 0 or step == cfg.steps:
            val_logits, val_labels = predict(model, val_set, cfg)
            val_loss = float(F.binary_cross_entropy_with_logits(val_logits, val_labels))
            history.append({"step": step, "val_loss": val_loss})
            if best is None or val_loss < best[0]:
                best = (val_loss, step, trainable_state(model))
    assert best is not None  # the last step always evaluates
    model.load_state_dict(best[2], strict=False)  # the best-validation checkpoint

    val_logits, vy = predict(model, val_set, cfg)
    test_logits, test_y = predict(model, test_set, cfg)
    ty = train_set.labels
    # Baselines: all-negative, and the k most frequent training labels for every sample.
    k = max(1, round(float(ty.sum(1).mean())))
    top = ty.mean(0).topk(k).indices

    def prior(y: torch.Tensor) -> torch.Tensor:
        p = torch.zeros_like(y)
        p[:, top] = 1.0
        return p

    if cfg.lora:
        weights = save_lora(model, out / "adapter.safetensors")
        fresh = load_lora(build_model(cfg), weights)
    else:
        from safetensors.torch import load_file, save_file

        weights = out / "trained.safetensors"
        save_file(trainable_state(model), str(weights))
        fresh = build_model(cfg)
        missing, unexpected = fresh.load_state_dict(load_file(str(weights)), strict=False)
        if unexpected or any(not k.startswith("backbone.") for k in missing):
            raise RuntimeError(f"Reload mismatch: missing {missing}, unexpected {unexpected}.")
    reload_diff = float((predict(fresh, val_set, cfg)[0] - val_logits).abs().max())
    with torch.no_grad():
        grid = model.visual(torch.zeros(1, NUM_BANDS, cfg.input_size, cfg.input_size)).shape[-2:]
    metrics: dict[str, Any] = {
        **split_metrics("val", val_logits, vy, class_names),
        **split_metrics("test", test_logits, test_y, class_names),
        "best_step": best[1],
        "val_history": history,
        "all_negative_micro_f1": float(
            multilabel_f1_score(torch.zeros_like(vy), vy, average="micro")
        ),
        "prior_top_k_micro_f1": float(multilabel_f1_score(prior(vy), vy, average="micro")),
        "prior_top_k_macro_f1": float(multilabel_f1_score(prior(vy), vy, average="macro")),
        "test_prior_top_k_micro_f1": float(
            multilabel_f1_score(prior(test_y), test_y, average="micro")
        ),
        "backbone": cfg.backbone,
        "feature_grid": list(grid),  # the CAF token grid (source: 24 x 24)
        "lora": cfg.lora,
        "caf_projections": cfg.caf_projections,
        "trainable_parameters": sum(p.numel() for p in params),
        "total_parameters": sum(p.numel() for p in model.parameters()),
        "reload_max_abs_diff": reload_diff,
        "losses": losses,
        "weights": str(weights),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if cfg.plot:
        per_class = torch.tensor(list(metrics["val_per_class_f1"].values()))
        plot(out / "fusion_lora.png", losses, per_class)
    return metrics


def plot(path: Path, losses: list[float], per_class: torch.Tensor) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(losses)
    a.set(xlabel="step", ylabel="BCE", title="training loss")
    b.bar(range(len(per_class)), per_class.numpy())
    b.set(xlabel="label", ylabel="F1", title="validation F1 per label", ylim=(0, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    run(main, Config, hide=("losses", "val_history"))
