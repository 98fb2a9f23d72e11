"""ResNet-18 and ResNet-50 backbones (timm), four stages at strides 4, 8, 16, 32.

timm's ResNet keeps torchvision's parameter names (``conv1``, ``bn1``,
``layer1.0.conv1`` ...), so torchvision-layout checkpoints such as VICReg's
``resnet50.pth`` load after the ``model.`` prefix is added (done on load).

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

from collections.abc import Sequence
from typing import Any, ClassVar, cast

import timm
import torch
from timm.models.resnet import ResNet

from geofm.backbones.base import Backbone, FeatureInfo, normalize_out_indices, register_backbone
from geofm.hub.load import LoadReport, StateDict

__all__ = ["ResNetBackbone"]


class ResNetBackbone(Backbone):
    """A timm ResNet behind the geofm :class:`Backbone` contract.

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

    stem_weight_key: ClassVar[str] = "model.conv1.weight"
    key_prefix: ClassVar[str] = "model."
    size_divisor = 32

    def __init__(self, model: ResNet, *, out_indices: Sequence[int] | None = None) -> None:
        super().__init__()
        self.model = model
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

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Stage outputs at :attr:`out_indices`, NCHW."""
        # timm counts the stem as feature index 0, so stage i is index i + 1.
        maps = self.model.forward_intermediates(
            x, indices=[i + 1 for i in self.out_indices], stop_early=True, intermediates_only=True
        )
        return cast(list[torch.Tensor], maps)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Global-average-pooled last stage, ``(N, D)``.

        Args:
            x: Input ``(N, C, H, W)``.

        Returns:
            ``(N, D)`` embeddings.
        """
        self.check_input(x)
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Checkpoint every residual block in backward.

        Args:
            enable: Turn checkpointing on or off.
        """
        self.model.set_grad_checkpointing(enable)

    def adapt_state_dict(self, state_dict: StateDict, report: LoadReport) -> StateDict:
        """Accept timm / torchvision layouts: add ``model.`` and drop the ``fc`` classifier.

        Args:
            state_dict: Checkpoint tensors.
            report: Report to append notes to.

        Returns:
            The state dict in this module's layout.
        """
        state_dict = super().adapt_state_dict(state_dict, report)
        return self._drop_keys(
            state_dict, ("model.fc.",), "classifier head; the backbone has none", report
        )


def _resnet(
    timm_name: str, in_chans: int, out_indices: Sequence[int] | None, drop_path_rate: float
) -> ResNetBackbone:
    model = timm.create_model(
        timm_name, pretrained=False, num_classes=0, in_chans=in_chans, drop_path_rate=drop_path_rate
    )
    return ResNetBackbone(cast(ResNet, model), out_indices=out_indices)


@register_backbone("resnet18", family="resnet", description="ResNet-18 (timm), 512-d.")
def resnet18(
    *, in_chans: int = 3, out_indices: Sequence[int] | None = None, drop_path_rate: float = 0.0
) -> ResNetBackbone:
    """Build a ResNet-18 backbone (channels 64/128/256/512 at strides 4/8/16/32).

    Args:
        in_chans: Input bands.
        out_indices: Stages to return (default all four).
        drop_path_rate: Stochastic depth rate.

    Returns:
        The backbone.

    Example:
        >>> resnet18().embed_dim
        512
    """
    return _resnet("resnet18", in_chans, out_indices, drop_path_rate)


@register_backbone("resnet50", family="resnet", description="ResNet-50 (timm), 2048-d.")
def resnet50(
    *, in_chans: int = 3, out_indices: Sequence[int] | None = None, drop_path_rate: float = 0.0
) -> ResNetBackbone:
    """Build a ResNet-50 backbone (channels 256/512/1024/2048 at strides 4/8/16/32).

    Args:
        in_chans: Input bands.
        out_indices: Stages to return (default all four).
        drop_path_rate: Stochastic depth rate.

    Returns:
        The backbone.

    Example:
        >>> resnet50().embed_dim
        2048
    """
    return _resnet("resnet50", in_chans, out_indices, drop_path_rate)
