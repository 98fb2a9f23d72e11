"""The ``geofm demo`` pipeline: registry backbone + LoRA + FPN head on the embedded GeoTIFF.

:func:`run_demo` composes the library end to end on the Landsat 7 window that
ships with geofm (CC0, EPSG:32618, 300 m pixels):

1. read it with :func:`geofm.geo.read_raster` (nodata as a mask);
2. derive a 3-class reference map (dark / medium / bright terciles of the
   pixel brightness: the scene has no labels, so this stands in for them);
3. build ``create_backbone`` + :func:`geofm.lora.apply_lora` (convolution
   adapters in ``layer3`` / ``layer4``) + ``FPN`` + ``FPNSegmentationHead``
   as a :class:`~geofm.heads.SegmentationModel` whose backbone carries an
   :class:`~geofm.InputSpec` (the scene's per-band mean and std), and train the
   adapters and the head on seeded random chips of the upper rows, read by a
   :class:`~geofm.datasets.RasterChipDataset` (``roi``: the upper rows) from the
   GeoTIFF and the reference labels written as a label raster to a temporary
   folder, normalised by that spec, through a ``DataLoader``;
4. evaluate on the bottom rows (mean IoU and pixel accuracy against the
   majority-class baseline);
5. save with :func:`geofm.hub.save_pretrained`, reload with
   :func:`geofm.hub.from_pretrained` and check the outputs are identical;
6. write a georeferenced class map of the whole scene with
   :func:`geofm.geo.predict_raster` on the reloaded model, which prepares the raw
   scene from the saved spec (so ``geofm predict model/ scene.tif map.tif`` gives
   the same map), ``metrics.json`` and ``demo.png``.

Runs in well under a minute on a laptop CPU with the defaults.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from geofm.errors import MissingDependencyError

if TYPE_CHECKING:
    from geofm.datasets import RasterChipDataset
    from geofm.geo import RasterProfile
    from geofm.input_spec import InputSpec

__all__ = ["run_demo"]

logger = logging.getLogger(__name__)

_VAL_ROWS = 64  # bottom rows of the 224 px scene held out for evaluation


def _reference_labels(array: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Brightness terciles (0 dark, 1 medium, 2 bright) over valid pixels; 255 where invalid."""
    brightness = array.astype(np.float32).mean(axis=0)  # (H, W)
    lo, hi = np.quantile(brightness[valid], [1 / 3, 2 / 3])
    labels: np.ndarray = np.digitize(brightness, [lo, hi]).astype(np.int64)
    labels[~valid] = 255
    return labels


def _write_labels(path: Path, labels: np.ndarray, profile: RasterProfile) -> Path:
    """Write ``labels`` ``(H, W)`` (255: no label) as a uint8 GeoTIFF on ``profile``'s grid."""
    from geofm.geo import import_rasterio

    rasterio = import_rasterio("run_demo", package="geofm.demo")
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=profile.width,
        height=profile.height,
        count=1,
        dtype="uint8",
        crs=profile.crs,
        transform=profile.transform,
        nodata=255,
    ) as dst:
        dst.write(labels.astype(np.uint8)[None])
    return path


def _training_chips(
    scene: Path,
    labels: Path,
    *,
    profile: RasterProfile,
    input_spec: InputSpec,
    rows: int,
    crop: int,
    length: int,
    seed: int,
) -> RasterChipDataset:
    """``length`` seeded random ``crop`` px chips of the upper ``rows`` rows of ``scene``.

    Samples hold ``image`` ``(C, crop, crop)`` normalised by ``input_spec`` and ``mask``
    ``(crop, crop)`` from the ``labels`` raster (255: no label). ``profile`` is the
    scene's (a north-up grid).
    """
    from geofm.datasets import RasterChipDataset

    left, top = profile.transform @ (0, 0)
    right, bottom = profile.transform @ (profile.width, rows)
    return RasterChipDataset(
        scene,
        labels,
        size=crop,
        sampler="random",
        length=length,
        seed=seed,
        roi=(min(left, right), min(top, bottom), max(left, right), max(top, bottom)),
        input_spec=input_spec,
        normalize=True,
        ignore_index=255,
        align_to_blocks=False,  # any offset, like a random crop
        rank=0,  # one process: every rank of a surrounding job trains the same demo
        world_size=1,
    )


def _mean_iou(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> float:
    from geofm.metrics import iou

    return float(iou(pred, target, num_classes=num_classes, ignore_index=255, average="macro"))


def _save_plot(
    path: Path, rgb: np.ndarray, labels: np.ndarray, pred: np.ndarray, losses: list[float]
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(16, 4))
    show = rgb.transpose(1, 2, 0).astype(np.float32)
    axes[0].imshow(np.clip(show / max(float(show.max()), 1.0), 0, 1))
    axes[0].set_title("embedded Landsat 7 scene")
    axes[1].imshow(np.ma.masked_equal(labels, 255), vmin=0, vmax=2, cmap="viridis")
    axes[1].set_title("reference (brightness terciles)")
    axes[2].imshow(np.ma.masked_equal(pred, 255), vmin=0, vmax=2, cmap="viridis")
    axes[2].set_title("predicted map (predict_raster)")
    for ax in axes[:3]:
        ax.axhline(rgb.shape[1] - _VAL_ROWS - 0.5, color="red", lw=1)
        ax.axis("off")
    axes[3].plot(losses)
    axes[3].set_xlabel("step")
    axes[3].set_ylabel("cross-entropy")
    axes[3].set_title("training loss")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def run_demo(
    output_dir: str | os.PathLike[str],
    *,
    steps: int = 60,
    backbone: str = "resnet18",
    batch_size: int = 8,
    crop: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    plot: bool = True,
) -> dict[str, Any]:
    """Train, save, reload and map with the quickstart pipeline on the embedded GeoTIFF.

    Args:
        output_dir: Folder for ``metrics.json``, ``landcover_map.tif``,
            ``demo.png`` and the saved model (``model/``); created if needed.
        steps: Training steps.
        backbone: A ResNet name of the backbone registry (``resnet18``, ``resnet50``).
        batch_size: Chips per step.
        crop: Chip size in pixels (a multiple of 32).
        lr: AdamW learning rate.
        seed: Seed of the initialisation and the chips' random windows.
        plot: Write ``demo.png`` (image, reference, predicted map, loss curve);
            needs matplotlib (``pip install "geofm[examples]"``).

    Returns:
        The metrics written to ``metrics.json`` (validation mean IoU and pixel
        accuracy, the majority-class baseline, loss curve, trainable
        parameters, paths of the outputs).

    Raises:
        ValueError: If ``steps < 1`` or ``crop`` is not a positive multiple of 32
            no larger than the training rows.
        MissingDependencyError: If ``plot=True`` and matplotlib is not
            installed (checked before training).

    Example:
        >>> import tempfile
        >>> result = run_demo(tempfile.mkdtemp(), steps=1, batch_size=2)  # doctest: +SKIP
        >>> sorted(result["outputs"])  # doctest: +SKIP
        ['map', 'metrics', 'model', 'plot']
    """
    from torch.utils.data import DataLoader

    from geofm.backbones import create_backbone
    from geofm.data import sample_raster
    from geofm.datasets import collate_chips
    from geofm.geo import predict_raster, read_raster
    from geofm.heads import FPN, FPNSegmentationHead, SegmentationModel
    from geofm.hub import from_pretrained, save_pretrained
    from geofm.input_spec import InputSpec, OutputSpec
    from geofm.lora import LoRAConfig, apply_lora, mark_only_lora_trainable

    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}.")
    if plot and importlib.util.find_spec("matplotlib") is None:
        raise MissingDependencyError(
            "run_demo(plot=True) writes demo.png with matplotlib, which is not installed. "
            'Install the examples extra (pip install "geofm[examples]") or pass plot=False '
            "(geofm demo --no-plot)."
        )
    out = Path(os.fspath(output_dir))
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)

    scene = sample_raster()
    raster = read_raster(scene)
    valid = np.asarray(raster.mask.all(axis=0))
    labels = _reference_labels(raster.array, valid)
    height = raster.array.shape[1]
    train_rows = height - _VAL_ROWS
    if crop % 32 or not 32 <= crop <= train_rows:
        raise ValueError(f"crop must be a multiple of 32 in [32, {train_rows}], got {crop}.")
    pixels = raster.array.astype(np.float32)
    net = create_backbone(backbone, in_chans=pixels.shape[0])
    # The model's input contract: the scene's own per-band statistics (raw values in).
    net.input_spec = InputSpec(
        num_bands=pixels.shape[0],
        mean=tuple(float(m) for m in pixels[:, valid].mean(axis=1)),
        std=tuple(float(s) + 1e-6 for s in pixels[:, valid].std(axis=1)),
        multiple=net.input_spec.multiple,
    )
    image = net.input_spec.prepare(torch.from_numpy(pixels))  # (C, H, W), for validation
    target = torch.from_numpy(labels)

    apply_lora(net, LoRAConfig(rank=4, alpha=8.0, targets=("layer3.*.conv2", "layer4.*.conv2")))
    model = SegmentationModel(
        net,
        FPN(net.feature_info.channels(), out_channels=64),
        FPNSegmentationHead(64, num_classes=3, hidden_channels=64, fuse="sum"),
        output_spec=OutputSpec(
            "segmentation",
            3,
            class_names=("dark", "medium", "bright"),
            colors=((38, 70, 83), (233, 196, 106), (231, 111, 81)),
        ),
    )
    mark_only_lora_trainable(model, also=("neck", "head"))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=1e-4)

    losses: list[float] = []
    model.train()
    with tempfile.TemporaryDirectory(prefix="geofm-demo-") as tmp:
        chips = _training_chips(
            scene,
            _write_labels(Path(tmp) / "reference_labels.tif", labels, raster.profile),
            profile=raster.profile,
            input_spec=net.input_spec,
            rows=train_rows,
            crop=crop,
            length=steps * batch_size,
            seed=seed,
        )
        loader = DataLoader(chips, batch_size=batch_size, collate_fn=collate_chips)
        for batch in loader:  # steps batches, in order
            loss = F.cross_entropy(model(batch["image"]), batch["mask"], ignore_index=255)
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            losses.append(loss.item())
        chips.close()  # before the folder goes (open files cannot be deleted on Windows)

    model.eval()
    val_x, val_y = image[None, :, train_rows:, :], target[None, train_rows:, :]
    with torch.no_grad():
        val_pred = model(val_x).argmax(dim=1)
    train_labels = target[:train_rows][target[:train_rows] != 255]
    majority = int(torch.bincount(train_labels, minlength=3).argmax())
    metrics: dict[str, Any] = {
        "val_miou": _mean_iou(val_pred, val_y, 3),
        "val_pixel_accuracy": float((val_pred == val_y)[val_y != 255].float().mean()),
        "majority_baseline_miou": _mean_iou(torch.full_like(val_y, majority), val_y, 3),
        "losses": losses,
        "trainable_parameters": sum(p.numel() for p in trainable),
        "total_parameters": sum(p.numel() for p in model.parameters()),
    }

    model_dir = save_pretrained(model, out / "model", metrics={"val_miou": metrics["val_miou"]})
    reloaded = from_pretrained(model_dir)
    with torch.no_grad():
        metrics["reload_max_abs_diff"] = float((reloaded(val_x) - model(val_x)).abs().max())
    # predict_raster's defaults, so `geofm predict model/ scene.tif map.tif` gives this map.
    map_path = predict_raster(
        reloaded, sample_raster(), out / "landcover_map.tif", output="class", overwrite=True
    )
    predicted = read_raster(map_path).array[0].astype(np.int64)
    metrics["outputs"] = {
        "metrics": str(out / "metrics.json"),
        "map": str(map_path),
        "model": str(model_dir),
    }
    if plot:
        plot_path = out / "demo.png"
        _save_plot(plot_path, raster.array, labels, predicted, losses)
        metrics["outputs"]["plot"] = str(plot_path)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    logger.info(
        "demo: val mIoU %.3f (majority %.3f)",
        metrics["val_miou"],
        metrics["majority_baseline_miou"],
    )
    return metrics
