"""Benchmark geofm heads, metrics and transforms against their peers, side by side (CPU).

Cases (each on identical inputs, geofm and the peer alternating per repeat so
background load hits both alike; median and best over repeats, ratio = peer / geofm):

- ``fpn``: ``geofm.heads.FPN`` vs ``torchvision.ops.FeaturePyramidNetwork``
  (same weights; SatlasPretrain's Swin-B channels, out 128, N=4, 256 px input). Target: ~1x.
- ``iou``: streaming ``ConfusionMatrix`` over 8 batches of 8x256x256 labels
  (10 classes, ignore_index) then macro IoU, vs scikit-learn ``jaccard_score`` on
  the whole epoch at once. Target: faster than scikit-learn.
- ``map``: exact multi-label macro average precision (20,000 x 19) vs
  scikit-learn ``average_precision_score``; plus the histogram mode (1,000 bins).
- ``geometric``: batched RandomResizedCrop(96) + H/V flips on image and mask
  (N=32, 12 bands, 128 px) vs torchvision.transforms.v2 applied per sample.
- ``blur``: batched Gaussian blur (kernel 13, per-sample sigma) vs torchvision's
  ``gaussian_blur`` per sample (N=32, 12 bands, 128 px).

Threads default to 1 (scikit-learn is single-threaded; on a shared 2-core
machine, two torch threads also suffer from oversubscription); pass
``--threads`` to change it.

Run:
    python benchmarks/bench_heads_metrics_transforms.py
    python benchmarks/bench_heads_metrics_transforms.py --cases iou map --repeats 7
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torchvision.transforms.v2 as T
import torchvision.transforms.v2.functional as TF
from sklearn import metrics as skm
from torchvision import tv_tensors
from torchvision.ops import FeaturePyramidNetwork

from geofm.heads import FPN
from geofm.metrics import ConfusionMatrix, multilabel_average_precision
from geofm.transforms import (
    Compose,
    RandomGaussianBlur,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomVerticalFlip,
)

Step = Callable[[], object]


@dataclass(frozen=True)
class Case:
    """One comparison: a geofm step and a peer step on the same inputs."""

    name: str
    setting: str
    geofm: Step
    peer: Step
    peer_name: str
    target: str


def _fpn() -> Case:
    channels = [128, 256, 512, 1024]
    reference = FeaturePyramidNetwork(channels, 128).eval()
    ours = FPN(channels, out_channels=128).eval()
    ours.load_state_dict(reference.state_dict())
    feats = [torch.randn(4, c, 64 // 2**i, 64 // 2**i) for i, c in enumerate(channels)]
    named = OrderedDict((f"feat{i}", f) for i, f in enumerate(feats))

    @torch.no_grad()
    def geofm_step() -> object:
        return ours(feats)

    @torch.no_grad()
    def peer_step() -> object:
        return reference(named)

    return Case("fpn", "Swin-B channels, out 128, N=4", geofm_step, peer_step, "torchvision", "~1x")


def _iou() -> Case:
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 10, (8, 8, 256, 256), generator=g)
    preds = torch.where(torch.rand(target.shape, generator=g) < 0.7, target, 3)
    target[:, :, :8] = 255
    keep = (target != 255).numpy().ravel()
    y_true, y_pred = target.numpy().ravel()[keep], preds.numpy().ravel()[keep]

    def geofm_step() -> object:
        cm = ConfusionMatrix(10, ignore_index=255)
        for p, t in zip(preds, target, strict=True):
            cm.update(p, t)
        return cm.iou(average="macro")

    def peer_step() -> object:
        return skm.jaccard_score(y_true, y_pred, labels=list(range(10)), average="macro")

    return Case("iou", "8 x (8,256,256), 10 classes", geofm_step, peer_step, "sklearn", "> 1x")


def _map(num_bins: int | None) -> Case:
    g = torch.Generator().manual_seed(0)
    target = (torch.rand(20000, 19, generator=g) < 0.2).long()
    scores = (0.3 * target + 0.7 * torch.rand(20000, 19, generator=g)).clamp(0, 1)
    t_np, s_np = target.numpy(), scores.numpy()

    def geofm_step() -> object:
        return multilabel_average_precision(scores, target, num_bins=num_bins)

    def peer_step() -> object:
        return skm.average_precision_score(t_np, s_np, average="macro")

    mode = "exact" if num_bins is None else f"{num_bins} bins"
    return Case(f"map ({mode})", "20000 x 19", geofm_step, peer_step, "sklearn", "> 1x")


def _geometric() -> Case:
    image = torch.rand(32, 12, 128, 128)
    mask = torch.randint(0, 5, (32, 128, 128))
    ours = Compose([RandomResizedCrop(96), RandomHorizontalFlip(), RandomVerticalFlip()])
    theirs = T.Compose(
        [T.RandomResizedCrop(96, antialias=False), T.RandomHorizontalFlip(), T.RandomVerticalFlip()]
    )

    def geofm_step() -> object:
        return ours({"image": image, "mask": mask})

    def peer_step() -> object:
        return [
            theirs(tv_tensors.Image(image[i]), tv_tensors.Mask(mask[i])) for i in range(len(image))
        ]

    return Case("geometric", "N=32, 12 bands, 128 px", geofm_step, peer_step, "torchvision", "> 1x")


def _blur() -> Case:
    image = torch.rand(32, 12, 128, 128)
    ours = RandomGaussianBlur(13, sigma=(0.1, 2.0), p=1.0)
    sigmas = np.random.default_rng(0).uniform(0.1, 2.0, 32)

    def geofm_step() -> object:
        return ours({"image": image})

    def peer_step() -> object:
        return [
            TF.gaussian_blur(image[i], [13, 13], [float(s), float(s)]) for i, s in enumerate(sigmas)
        ]

    setting = "N=32, 12 bands, 128 px, k=13"
    return Case("blur", setting, geofm_step, peer_step, "torchvision", "> 1x")


CASES: dict[str, Callable[[], list[Case]]] = {
    "fpn": lambda: [_fpn()],
    "iou": lambda: [_iou()],
    "map": lambda: [_map(None), _map(1000)],
    "geometric": lambda: [_geometric()],
    "blur": lambda: [_blur()],
}


def _time(step: Step) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{'case':<18}{'setting':<32}{'geofm ms':>10}{'peer ms':>10}{'ratio':>8}  peer / target")
    for key in args.cases:
        for case in CASES[key]():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                case.geofm()
                case.peer()  # warm-up
                ours, theirs = [], []
                for _ in range(args.repeats):
                    ours.append(_time(case.geofm))
                    theirs.append(_time(case.peer))
            g, p = statistics.median(ours), statistics.median(theirs)
            print(
                f"{case.name:<18}{case.setting:<32}{1e3 * g:>10.1f}{1e3 * p:>10.1f}"
                f"{p / g:>7.2f}x  {case.peer_name} / {case.target}"
                f"   (best: {1e3 * min(ours):.1f} vs {1e3 * min(theirs):.1f} ms)"
            )


if __name__ == "__main__":
    main()
