r"""Fusion-LoRA: 6-band Sentinel-2 into a frozen RGB SwinV2 with CAF + GLF, 19 labels.

What it shows (Eyobed-Abby/fusion-lora-skysense, SOURCES.md section 5): a
6-band BigEarthNet-S2 patch ``[B04, B03, B02, B08, B11, B12]`` (reflectance in
[0, 1]) goes through ``geofm.spectral.SpectralTokenizer`` (Conv3x3 6->64 ->
ReLU -> Conv1x1 64->3, bilinear resize) into a frozen SwinV2-B whose last
stage (1024 channels) is the visual map; a spectral branch (Conv1x1 6->1024
on the raw bands, bilinear to the visual grid) gives the keys/values of
``geofm.fusion.CrossAttentionFusion``; ``GatedLateFusion(fused, visual)`` ->
global average pool -> ``Linear(1024, 19)``, trained with BCE-with-logits and
AdamW (wd 1e-4). Optionally (``--lora``, the source's
``feature/clip-visual-lora`` branch) every ``nn.Linear`` of Swin stages 2 and
3 gets a rank-8 / alpha-16 LoRA adapter (``geofm.lora.fusion_lora_config``).
Validation micro / macro F1 (sigmoid > 0.5, ``geofm.metrics``) are reported
next to two trivial baselines: all-negative, and "predict the k most frequent
training labels" (k = mean labels per training sample). The adapters and the
trained modules (tokenizer, spectral branch, CAF, GLF, head) are saved with
``save_lora`` and reloaded to check them.

Run (tiny defaults: synthetic 6-band multi-label scenes from
``geofm.datasets.SyntheticMultilabel`` with the ``bigearthnet_s2_6band``
sensor, timm SwinV2-B with depths (1, 1, 1, 1), random init, 32 px input
and encoder input, batch 16, 120 steps; about 40 s on 2 CPU cores)::

    python examples/fusion_lora_bigearthnet.py
    python examples/fusion_lora_bigearthnet.py --no-lora --steps 200

Real data (BigEarthNet-S2 tensors as Fusion-LoRA prepares them, see
``geofm.datasets.BigEarthNetS2``), at the source's settings (SwinV2-B full
depths, 256 px input resized to 384 px, batch 8, lr 1e-4, 15 epochs of about
29,700 steps)::

    python examples/fusion_lora_bigearthnet.py --data-dir /data/bigearthnet_6band \\
        --depths 2,2,18,2 --input-size 256 --img-size 384 --batch-size 8 \\
        --lr 1e-4 --steps 446000 --weights /path/to/swinv2_base_window8_256.safetensors

Deviations: the frozen encoder is timm's SwinV2-B (window 8), not SkySense-O's
SwinV2-huge CLIP encoder (geofm has it as ``skysense_o_swinv2_huge``, but its
weights cannot be fetched for a quick run); SwinV2-B's last stage has 1024
channels, so no ``vision_projection`` is needed. The tokenizer output is fed
as is (the source normalises its 0-1 output with 0-255 CLIP statistics, a
quirk). The classifier is a plain ``Linear`` (the LoRA branch's choice; main
uses a random-frozen-base LoRA layer). The tiny default uses lr 1e-3 and batch 16
(source 1e-4 and 8) because the run is 120 steps long; no AMP.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from _cli import progress, run
from torch import nn
from torch.utils.data import default_collate

import geofm
from geofm.fusion import CrossAttentionFusion, GatedLateFusion
from geofm.lora import apply_lora, fusion_lora_config, load_lora, save_lora
from geofm.metrics import multilabel_f1_score
from geofm.spectral import SpectralTokenizer

NUM_LABELS = 19
NUM_BANDS = 6
TRAINED = ("tokenizer", "spectral_proj", "caf", "glf", "head")


@dataclass(frozen=True)
class Config:
    """Fusion-LoRA settings (every field is also a command-line flag)."""

    data_dir: str = ""  # BigEarthNet-S2 6-band root; empty: synthetic scenes
    weights: str = ""  # SwinV2-B checkpoint; empty: random init
    depths: tuple[int, ...] = (1, 1, 1, 1)  # source encoder: 2,2,18,2
    lora: bool = True  # LoRA r 8 / alpha 16 in Swin stages 2-3 (source); --no-lora: main branch
    input_size: int = 32  # source: 256
    img_size: int = 32  # tokenizer output / encoder input; source: 384
    num_heads: int = 8  # CAF heads
    train_samples: int = 256
    val_samples: int = 128
    batch_size: int = 16  # source: 8
    steps: int = 120
    lr: float = 1e-3  # source: 1e-4
    weight_decay: float = 1e-4
    seed: int = 0
    progress: bool = False
    output_dir: str = "runs/fusion_lora_bigearthnet"


class FusionLoRAClassifier(nn.Module):
    """Tokenizer -> frozen Swin (last stage) + spectral branch -> CAF -> GLF -> pool -> Linear."""

    def __init__(self, backbone: geofm.Backbone, *, img_size: int, num_heads: int) -> None:
        super().__init__()
        channels = backbone.feature_info[-1].channels
        self.tokenizer = SpectralTokenizer(in_channels=NUM_BANDS, output_size=img_size)
        self.backbone = backbone
        self.spectral_proj = nn.Conv2d(NUM_BANDS, channels, kernel_size=1)
        self.caf = CrossAttentionFusion(embed_dim=channels, num_heads=num_heads)
        self.glf = GatedLateFusion(channels=channels)
        self.head = nn.Linear(channels, NUM_LABELS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 19)`` for 6-band input ``(N, 6, H, W)``."""
        visual = self.backbone(self.tokenizer(x))[-1]  # (N, C, h, w)
        spectral = F.interpolate(
            self.spectral_proj(x), size=visual.shape[-2:], mode="bilinear", align_corners=False
        )  # (N, C, h, w)
        fused = self.glf(self.caf(visual, spectral), visual)  # (N, C, h, w)
        return self.head(fused.mean(dim=(2, 3)))  # (N, 19)


def build_model(cfg: Config) -> FusionLoRAClassifier:
    """The classifier with a frozen encoder (LoRA adapters added when ``cfg.lora``)."""
    torch.manual_seed(cfg.seed)  # a random-init encoder is reproducible, so the adapters reload
    backbone = geofm.create_backbone(
        "swinv2_base_window8",
        depths=cfg.depths,
        img_size=cfg.img_size,
        out_indices=[3],
        drop_path_rate=0.0,
        pretrained=cfg.weights or False,
    )
    model = FusionLoRAClassifier(backbone, img_size=cfg.img_size, num_heads=cfg.num_heads)
    model.backbone.requires_grad_(False)
    if cfg.lora:
        # Fusion-LoRA's placement (every Linear of stages 2-3), addressed from the full model;
        # the fusion modules and the head are trained and saved in full next to the adapters.
        base = fusion_lora_config()
        lora_cfg = dataclasses.replace(
            base, targets=tuple(f"backbone.model.{t}" for t in base.targets), also=TRAINED
        )
        apply_lora(model, lora_cfg)
    return model


def load_data(cfg: Config) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Train / validation images ``(N, 6, S, S)`` in [0, 1] and multi-hot labels ``(N, 19)``."""
    from geofm.datasets import BigEarthNetS2, SyntheticMultilabel

    def stack(split: Literal["train", "val"], length: int, seed: int) -> list[torch.Tensor]:
        if cfg.data_dir:
            ds: Any = BigEarthNetS2(cfg.data_dir, split=split)
        else:
            ds = SyntheticMultilabel(
                length=length,
                size=cfg.input_size,
                bands="bigearthnet_s2_6band",
                num_labels=NUM_LABELS,
                max_classes=3,
                seed=seed,
            )
        batch = default_collate([ds[i] for i in range(len(ds))])
        images = batch["image"].float()
        if images.shape[-1] != cfg.input_size:
            images = F.interpolate(images, size=cfg.input_size, mode="bilinear")
        return [images, batch["label"].float()]

    tx, ty = stack("train", cfg.train_samples, cfg.seed)
    vx, vy = stack("val", cfg.val_samples, cfg.seed + 1)
    return tx, ty, vx, vy


def predict(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k in names}


def main(cfg: Config) -> dict[str, Any]:
    for name in ("input_size", "img_size", "steps", "batch_size"):
        if getattr(cfg, name) <= 0:
            raise ValueError(f"{name} must be positive, got {getattr(cfg, name)}.")
    if cfg.img_size % 32:
        raise ValueError(f"img_size must be a multiple of 32 (Swin), got {cfg.img_size}.")
    torch.manual_seed(cfg.seed)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    tx, ty, vx, vy = load_data(cfg)
    model = build_model(cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    losses = []
    for _ in progress(range(cfg.steps), desc="fusion-lora", show=cfg.progress):
        model.train()
        model.backbone.eval()  # frozen encoder: no stochastic depth / dropout
        idx = torch.randint(0, len(tx), (cfg.batch_size,), generator=gen)
        loss = F.binary_cross_entropy_with_logits(model(tx[idx]), ty[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())

    logits = predict(model, vx, cfg.batch_size)
    probs = torch.sigmoid(logits)
    # Baselines: all-negative, and the k most frequent training labels for every sample.
    k = max(1, round(float(ty.sum(1).mean())))
    prior = torch.zeros_like(vy)
    prior[:, ty.mean(0).topk(k).indices] = 1.0
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
    reload_diff = float((predict(fresh, vx, cfg.batch_size) - logits).abs().max())
    metrics = {
        "val_micro_f1": float(multilabel_f1_score(probs, vy, average="micro")),
        "val_macro_f1": float(multilabel_f1_score(probs, vy, average="macro")),
        "all_negative_micro_f1": float(
            multilabel_f1_score(torch.zeros_like(vy), vy, average="micro")
        ),
        "prior_top_k_micro_f1": float(multilabel_f1_score(prior, vy, average="micro")),
        "prior_top_k_macro_f1": float(multilabel_f1_score(prior, vy, average="macro")),
        "lora": cfg.lora,
        "trainable_parameters": sum(p.numel() for p in params),
        "total_parameters": sum(p.numel() for p in model.parameters()),
        "reload_max_abs_diff": reload_diff,
        "losses": losses,
        "weights": str(weights),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    per_class = multilabel_f1_score(probs, vy, average="none")
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
    run(main, Config, hide=("losses",))
