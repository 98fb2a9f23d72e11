"""ResNet-18 and ResNet-50 backbones (timm), four stages at strides 4, 8, 16, 32.

timm's ResNet keeps torchvision's parameter names (``conv1``, ``bn1``,
``layer1.0.conv1`` ...), so torchvision-layout checkpoints such as VICReg's
``resnet50.pth`` load after the ``model.`` prefix is added (done on load). This file also owns
the ResNet weights entries (SSL4EO-S12 on Sentinel-2 L1C, VICReg on ImageNet).

References:
    He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.
    Code: https://github.com/huggingface/pytorch-image-models (timm ``resnet.py``).

Example:
    >>> import torch, geofm
    >>> m = geofm.create_backbone("resnet50", out_indices=[3])
    >>> m(torch.randn(1, 3, 64, 64))[0].shape
    torch.Size([1, 2048, 2, 2])
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, ClassVar, cast

import timm
import torch
from timm.models.resnet import ResNet

from geofm.backbones.base import FeatureInfo, TimmBackbone, normalize_out_indices, register_backbone
from geofm.weights.catalog import TORCHGEO_HASH_NOTE, WeightsSpec, register_weights

__all__ = ["ResNetBackbone"]


class ResNetBackbone(TimmBackbone):
    """A timm ResNet behind the geofm :class:`~geofm.backbones.Backbone` contract.

    Args:
        model: timm ``ResNet`` built with ``num_classes=0``.
        out_indices: Stages (0-3 for ``layer1``-``layer4``) whose outputs
            :meth:`forward` returns; negative values count from the end.

    Shape:
        - Input: ``(N, C, H, W)``, ``H`` and ``W`` multiples of 32.
        - ``forward``: list of ``(N, C_i, H / 2^(i+2), W / 2^(i+2))``.
        - ``embed``: ``(N, D)``, global average pool of the last stage.

    Example:
        >>> import torch, geofm
        >>> geofm.create_backbone("resnet18").feature_info[0]
        FeatureInfo(channels=64, reduction=4, module='layer1')
    """

    stem_weight_key = "model.conv1.weight"
    classifier_prefixes: ClassVar[tuple[str, ...]] = ("model.fc.",)
    stage_offset: ClassVar[int] = 1  # timm counts the stem as feature 0
    size_divisor = 32

    def __init__(self, model: ResNet, *, out_indices: Sequence[int] | None = None) -> None:
        super().__init__(model)
        self.out_indices = normalize_out_indices(
            out_indices, 4, default=(0, 1, 2, 3), what="ResNet with 4 stages"
        )
        conv1: Any = model.conv1
        self.in_chans = int(conv1.in_channels)
        self.embed_dim = int(model.num_features)
        info: list[dict[str, Any]] = list(model.feature_info)
        channels = [int(i["num_chs"]) for i in info[1:]]
        self.feature_info = [
            FeatureInfo(channels[i], 2 ** (i + 2), f"layer{i + 1}") for i in self.out_indices
        ]

    def forward_embed(self, x: torch.Tensor) -> torch.Tensor:
        """Global-average-pooled last stage, ``(N, D)``."""
        pooled: torch.Tensor = self.model.forward_head(
            self.model.forward_features(x), pre_logits=True
        )
        return pooled


def _build(
    timm_name: str,
    *,
    in_chans: int = 3,
    out_indices: Sequence[int] | None = None,
    drop_path_rate: float = 0.0,
) -> ResNetBackbone:
    """Build timm's ``timm_name`` ResNet (no classifier) as a backbone."""
    model = timm.create_model(
        timm_name, pretrained=False, num_classes=0, in_chans=in_chans, drop_path_rate=drop_path_rate
    )
    return ResNetBackbone(cast(ResNet, model), out_indices=out_indices)


# name -> (timm name, description)
_VARIANTS = {
    "resnet18": ("resnet18", "ResNet-18 (timm), 512-d, channels 64/128/256/512."),
    "resnet50": ("resnet50", "ResNet-50 (timm), 2048-d, channels 256/512/1024/2048."),
}
for _name, (_timm_name, _description) in _VARIANTS.items():
    register_backbone(_name, family="resnet", description=_description)(
        functools.partial(_build, _timm_name)
    )


# --- weights --------------------------------------------------------------------------------
_SSL4EO_CITATION = "Wang et al., SSL4EO-S12, IEEE GRSM 2023 (arXiv 2211.07044)."

# SSL4EO-S12 (torchgeo re-hosts), Sentinel-2 L1C, 13 bands.
for _tag, _rev, _file, _default in (
    ("sentinel2_all_moco", "da4f3c9dbe09272eb902f3b37f46635fa4726879",
     "resnet50_sentinel2_all_moco-df8b932e.pth", True),
    ("sentinel2_all_dino", "d7f14bf5530d70ac69d763e58e77e44dbecfec7c",
     "resnet50_sentinel2_all_dino-d6c330e9.pth", False),
):  # fmt: skip
    register_weights(
        WeightsSpec(
            name=f"resnet50.{_tag}",
            repo_id=f"torchgeo/resnet50_{_tag}",
            filename=_file,
            revision=_rev,
            sha256=_file.rsplit("-", 1)[1].split(".")[0],
            sensor="ssl4eo_s12_sentinel2_l1c",
            in_chans=13,
            license="CC-BY-4.0",
            citation=_SSL4EO_CITATION,
            default=_default,
            notes=(
                "SSL4EO-S12 weights as torchgeo hosts them: plain timm keys; inputs are the "
                "13 L1C bands B01-B12 (with B8A, B10) divided by 10000. " + TORCHGEO_HASH_NOTE
            ),
        )
    )

# --- VICReg ResNet-50 (ImageNet), backbone-only file -----------------------------------------
register_weights(
    WeightsSpec(
        name="resnet50.imagenet_vicreg",
        filename="resnet50.pth",
        url="https://dl.fbaipublicfiles.com/vicreg/resnet50.pth",
        sha256="c843e76524",
        sensor="rgb",
        in_chans=3,
        license="MIT",
        citation="Bardes et al., VICReg, ICLR 2022 (arXiv 2105.04906).",
        notes=(
            "Backbone-only torchvision ResNet-50 keys (no fc); VICReg's ConstantPad2d(1) + "
            "conv1 padding 2 equals padding 3, so the timm ResNet-50 computes the same. Not on "
            "a hub: download the file and put it where the error message says. The sha256 "
            "prefix is the one two independent third-party loaders check (the authors "
            "publish none)."
        ),
    )
)
