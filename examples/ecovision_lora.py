r"""EcoVision-LoRA: night-time lights from building tiles with a frozen DINOv2 + LoRA.

What it shows (bayramos/Ecovision-LoRA, SOURCES.md section 1): image tiles and
a VIIRS night-light raster aligned in UTM (``geofm.geo.tile_raster`` +
``align_target``: the raster is warped to the tiles' UTM zone with bilinear
resampling, negatives clipped, summed per tile = ``lights_sum``), a frozen
DINOv2 ViT with LoRA on every ``attn.qkv`` and ``attn.proj``
(``geofm.lora.ecovision_config``: Shanghai r 8 / alpha 16, Las Vegas r 32 /
alpha 64, dropout 0.05) and a ``Linear(D, 1)`` head on the CLS embedding,
trained with Huber (Shanghai, delta 5) or L1 (Las Vegas) on z-scored targets
with AdamW (wd 1e-6). It reports MAE and R^2 on a seeded 80/20 split next to
two baselines: the train-mean predictor and a ridge regression on the frozen
backbone's embeddings (the source's "backbone-only" setting). The adapter
(+ head) is saved with ``save_lora`` and reloaded to check it.

Run (tiny defaults: synthetic Las Vegas scene, DINOv2-S with 2 blocks, random
init, 28 px tiles; about 30-60 s on 2 CPU cores)::

    python examples/ecovision_lora.py
    python examples/ecovision_lora.py --loss mae --city las_vegas --steps 200

Real data (SpaceNet-2 AOI folder + the VIIRS VNL v2 raster, see
``geofm.datasets.SpaceNet2NightLights``), at the source's scale::

    python examples/ecovision_lora.py --data-dir /data/AOI_2_Vegas_Train \\
        --viirs /data/VNL_v2_npp_2021_global_vcmslcfg_c202205302300.average_masked.tif \\
        --backbone dinov2_vit_base_patch14 --depth 12 --tile 518 --city las_vegas \\
        --loss mae --lr 3e-5 --batch-size 8 --steps 20000 \\
        --weights ~/.cache/geofm/weights/dinov2_vit_base_patch14.lvd142m/model.safetensors

Deviations: the loss always sees z-scored targets (the Huber ``delta`` is
given in target units and divided by the target std); the tiny default uses a
higher learning rate (3e-3) than the source (3e-5) because the backbone is
random and the run is 60 steps long.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from _cli import check_choices, progress, run

import geofm
from geofm.heads import PooledModel, RegressionHead
from geofm.lora import apply_lora, ecovision_config, load_lora, mark_only_lora_trainable, save_lora
from geofm.metrics import mean_absolute_error, r2_score
from geofm.transforms import Normalize

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Config:
    """EcoVision-LoRA settings (every field is also a command-line flag)."""

    data_dir: str = ""  # SpaceNet-2 AOI folder; empty: synthetic scene
    viirs: str = ""  # VIIRS raster for --data-dir
    backbone: str = "dinov2_vit_small_patch14"  # source: ViT-B/14 (dinov2_vit_base_patch14)
    depth: int = 2  # source: 12
    weights: str = ""  # pretrained backbone file; empty: random init
    tile: int = 28  # source: 518 px
    scene_size: int = 448  # synthetic scene side (pixels, 10 m)
    city: Literal["shanghai", "las_vegas"] = "shanghai"  # r 8 / alpha 16 | r 32 / alpha 64
    loss: Literal["huber", "mae"] = "huber"  # huber (Shanghai, delta 5) | mae (Las Vegas)
    huber_delta: float = 5.0
    lr: float = 3e-3  # source: 3e-5
    weight_decay: float = 1e-6
    batch_size: int = 16  # source: 4 (Shanghai) / 8 (Las Vegas)
    steps: int = 60
    seed: int = 0
    progress: bool = False
    output_dir: str = "runs/ecovision_lora"


def load_tiles(cfg: Config, workdir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Tiles ``(N, 3, tile, tile)`` in [0, 255] and their night-light sums ``(N,)``."""
    if cfg.data_dir:
        from geofm.datasets import SpaceNet2NightLights

        ds = SpaceNet2NightLights(cfg.data_dir, cfg.viirs)
        images, targets = [], []
        for i in range(len(ds)):
            s = ds[i]
            img = s["image"][:3]
            img = img / max(float(img.max()), 1.0) * 255.0  # per-tile min-max as in 1b
            images.append(F.interpolate(img[None], size=(cfg.tile, cfg.tile), mode="bilinear")[0])
            targets.append(s["target"])
        return torch.stack(images), torch.stack(targets)
    from geofm.datasets import write_nightlight_scene
    from geofm.geo import align_target, read_raster, tile_raster

    image_path, lights_path = write_nightlight_scene(workdir, size=cfg.scene_size, seed=cfg.seed)
    tiles = tile_raster(image_path, size=cfg.tile)
    targets = align_target(tiles, lights_path, reduce="sum", resampling="bilinear")
    images = [read_raster(image_path, window=t.window).array for t in tiles]
    return torch.from_numpy(np.stack(images).astype(np.float32)), torch.from_numpy(targets).float()


def ridge_baseline(
    train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor, alpha: float = 1.0
) -> torch.Tensor:
    """Closed-form ridge regression on frozen embeddings; returns validation predictions."""
    mu, sd = train_x.mean(0), train_x.std(0) + 1e-6
    a = torch.cat([(train_x - mu) / sd, torch.ones(len(train_x), 1)], dim=1).double()
    reg = alpha * torch.eye(a.shape[1], dtype=torch.float64)
    w = torch.linalg.solve(a.T @ a + reg, a.T @ train_y.double())
    b = torch.cat([(val_x - mu) / sd, torch.ones(len(val_x), 1)], dim=1).double()
    return (b @ w).float()


def build_model(cfg: Config) -> PooledModel:
    """Backbone CLS embedding -> ``Linear(D, 1)`` (EcoVision's LoRA config names it ``head``)."""
    torch.manual_seed(cfg.seed)  # a random-init base is reproducible, so the adapter reloads
    backbone = geofm.create_backbone(
        cfg.backbone, depth=cfg.depth, img_size=cfg.tile, pretrained=cfg.weights or False
    )
    return PooledModel(backbone, RegressionHead(backbone.embed_dim, 1))


def main(cfg: Config) -> dict[str, Any]:
    check_choices(cfg)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        images, targets = load_tiles(cfg, Path(tmp))
    norm = Normalize(IMAGENET_MEAN, IMAGENET_STD, divisor=255.0, clip=(0.0, 1.0))
    x = norm(images)  # (N, 3, tile, tile): clip(x / 255, 0, 1), then ImageNet statistics
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(42))
    n_train = int(0.8 * len(x))
    tr, va = perm[:n_train], perm[n_train:]
    t_mean, t_std = targets[tr].mean(), targets[tr].std() + 1e-6

    model = build_model(cfg)
    model.eval()
    with torch.no_grad():
        emb = model.embed(x)
    ridge = ridge_baseline(emb[tr], targets[tr], emb[va])

    apply_lora(model, ecovision_config(city=cfg.city))  # type: ignore[arg-type]
    mark_only_lora_trainable(model, also=("head",))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    losses = []
    for _ in progress(range(cfg.steps), desc="ecovision", show=cfg.progress):
        model.train()
        idx = tr[torch.randint(0, len(tr), (cfg.batch_size,), generator=gen)]
        pred, y = model(x[idx])[:, 0], (targets[idx] - t_mean) / t_std  # (N,)
        if cfg.loss == "huber":
            loss = F.huber_loss(pred, y, delta=cfg.huber_delta / float(t_std))
        else:
            loss = F.l1_loss(pred, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())

    model.eval()
    with torch.no_grad():
        pred = model(x[va])[:, 0] * t_std + t_mean  # (N,)
    y_val = targets[va]
    adapter = save_lora(model, out / "adapter.safetensors")
    fresh = load_lora(build_model(cfg), adapter).eval()
    with torch.no_grad():
        reload_diff = float((fresh(x[va])[:, 0] * t_std + t_mean - pred).abs().max())
    metrics = {
        "tiles": len(x),
        "val_mae": float(mean_absolute_error(pred, y_val)),
        "val_r2": float(r2_score(pred, y_val)),
        "mean_baseline_mae": float(
            mean_absolute_error(torch.full_like(y_val, float(t_mean)), y_val)
        ),
        "frozen_ridge_mae": float(mean_absolute_error(ridge, y_val)),
        "frozen_ridge_r2": float(r2_score(ridge, y_val)),
        "trainable_parameters": sum(p.numel() for p in params),
        "adapter_reload_max_abs_diff": reload_diff,
        "losses": losses,
        "adapter": str(adapter),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    plot(out / "ecovision.png", losses, y_val, pred)
    return metrics


def plot(path: Path, losses: list[float], truth: torch.Tensor, pred: torch.Tensor) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 4))
    a.plot(losses)
    a.set(xlabel="step", ylabel="loss", title="training loss")
    b.scatter(truth.numpy(), pred.numpy(), s=8)
    lim = float(max(truth.max(), pred.max()))
    b.plot([0, lim], [0, lim], "k--", lw=1)
    b.set(xlabel="night-light sum", ylabel="predicted", title="validation tiles")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    run(main, Config, hide=("losses",))
