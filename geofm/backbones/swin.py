"""Swin Transformer V2 backbones: timm SwinV2-B and the torchvision layout used by Satlas.

Both return the four stage outputs as NCHW maps: 128 channels at stride 4,
256 at 8, 512 at 16 and 1024 at 32 for the base size.

``tv_swin_v2_b`` keeps torchvision's ``swin_v2_b`` parameter names
(``features.*``, ``norm.*``) so a SatlasPretrain checkpoint loads strictly
once its ``backbone.backbone.`` prefix is stripped (done on load; the unused
torchvision classifier ``head.*`` is dropped and listed in the report). Its
maps are Satlas' ``features[1]``, ``[3]``, ``[5]``, ``[7]`` permuted to NCHW,
without the final norm, as SatlasPretrain and ML4Earth use them.

References:
    Liu et al., "Swin Transformer V2: Scaling Up Capacity and Resolution", CVPR 2022.
    Bastani et al., "SatlasPretrain", ICCV 2023, https://github.com/allenai/satlaspretrain_models.
    Code: timm ``swin_transformer_v2.py``; torchvision ``models/swin_transformer.py``.

Example:
    >>> import torch, geofm
    >>> m = geofm.create_backbone("tv_swin_v2_b", depths=(1, 1, 1, 1))
    >>> [f.shape[1] for f in m(torch.randn(1, 3, 64, 64))]
    [128, 256, 512, 1024]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, cast

import timm
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from geofm.backbones.base import Backbone, FeatureInfo, normalize_out_indices, register_backbone
from geofm.hub.load import LoadReport, StateDict

__all__ = ["SwinBackbone", "TorchvisionSwinBackbone"]

_BASE_DEPTHS = (2, 2, 18, 2)
_BASE_HEADS = (4, 8, 16, 32)


def _stage_indices(out_indices: Sequence[int] | None) -> tuple[int, ...]:
    return normalize_out_indices(out_indices, 4, default=(0, 1, 2, 3), what="Swin with 4 stages")


def _check_depths(depths: Sequence[int]) -> tuple[int, ...]:
    if len(depths) != 4 or any(d <= 0 for d in depths):
        raise ValueError(f"depths must be 4 positive block counts, got {tuple(depths)}.")
    return tuple(depths)


class SwinBackbone(Backbone):
    """A timm SwinV2 behind the geofm :class:`Backbone` contract (NCHW outputs).

    Args:
        model: timm ``SwinTransformerV2`` built with ``num_classes=0`` and
            ``strict_img_size=False, dynamic_img_size=True``.
        out_indices: Stages (0-3) whose outputs :meth:`forward` returns.

    Shape:
        - Input: ``(N, C, H, W)``, ``H`` and ``W`` multiples of 32.
        - ``forward``: list of ``(N, 128 * 2^i, H / 2^(i+2), W / 2^(i+2))`` for SwinV2-B.
        - ``embed``: ``(N, 1024)``, mean of the final-normed last stage.

    Example:
        >>> import torch, geofm
        >>> m = geofm.create_backbone("swinv2_base_window8", depths=(1, 1, 1, 1), out_indices=[-1])
        >>> m(torch.randn(1, 3, 64, 64))[0].shape
        torch.Size([1, 1024, 2, 2])
    """

    stem_weight_key: ClassVar[str] = "model.patch_embed.proj.weight"
    key_prefix: ClassVar[str] = "model."
    size_divisor = 32

    def __init__(self, model: Any, *, out_indices: Sequence[int] | None = None) -> None:
        super().__init__()
        self.model: Any = model
        self.out_indices = _stage_indices(out_indices)
        self.in_chans = int(model.patch_embed.proj.in_channels)
        self.embed_dim = int(model.num_features)
        base = int(model.embed_dim)
        self.feature_info = [
            FeatureInfo(base * 2**i, 2 ** (i + 2), f"layers.{i}") for i in self.out_indices
        ]

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Stage outputs at :attr:`out_indices`, NCHW."""
        maps = self.model.forward_intermediates(
            x, indices=list(self.out_indices), stop_early=True, intermediates_only=True
        )
        return cast(list[torch.Tensor], maps)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Mean over positions of the final-normed last stage, ``(N, D)``.

        Args:
            x: Input ``(N, C, H, W)``.

        Returns:
            ``(N, D)`` embeddings.
        """
        self.check_input(x)
        tokens: torch.Tensor = self.model.forward_features(x)  # (N, H', W', D), final norm
        return tokens.mean(dim=(1, 2))

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Checkpoint every Swin block in backward.

        Args:
            enable: Turn checkpointing on or off.
        """
        self.model.set_grad_checkpointing(enable)

    def adapt_state_dict(self, state_dict: StateDict, report: LoadReport) -> StateDict:
        """Accept timm-layout checkpoints: add ``model.``, drop the classifier head.

        Buffers timm recomputes (``relative_position_index``, ``relative_coords_table``,
        ``attn_mask``) are non-persistent and never part of the key set.

        Args:
            state_dict: Checkpoint tensors.
            report: Report to append notes to.

        Returns:
            The state dict in this module's layout.
        """
        state_dict = super().adapt_state_dict(state_dict, report)
        return self._drop_keys(
            state_dict, ("model.head.",), "classifier head; the backbone has none", report
        )


class TorchvisionSwinBackbone(Backbone):
    """torchvision's ``swin_v2_b`` layout (SatlasPretrain / ML4Earth) as a :class:`Backbone`.

    Holds torchvision's ``features`` and ``norm`` under the same names, so
    torchvision and Satlas state dicts load without renaming.

    Args:
        in_chans: Input bands (the 4x4 patch-embedding conv takes them).
        out_indices: Stages (0-3) to return: Satlas' ``features[1]``, ``[3]``,
            ``[5]``, ``[7]``.
        depths: Blocks per stage (base: ``(2, 2, 18, 2)``).
        drop_path_rate: Stochastic depth (torchvision's ``swin_v2_b`` default 0.5).

    Shape:
        - Input: ``(N, C, H, W)``, ``H`` and ``W`` multiples of 32.
        - ``forward``: ``(N, 128, H/4, W/4)``, ``(N, 256, H/8, W/8)``,
          ``(N, 512, H/16, W/16)``, ``(N, 1024, H/32, W/32)``.
        - ``embed``: ``(N, 1024)``.

    Example:
        >>> import torch
        >>> m = TorchvisionSwinBackbone(in_chans=9, depths=(1, 1, 1, 1))
        >>> m.embed(torch.randn(1, 9, 32, 32)).shape
        torch.Size([1, 1024])
    """

    stem_weight_key: ClassVar[str] = "features.0.0.weight"
    source_prefixes: ClassVar[tuple[str, ...]] = ("module.", "backbone.")
    size_divisor = 32

    def __init__(
        self,
        *,
        in_chans: int = 3,
        out_indices: Sequence[int] | None = None,
        depths: Sequence[int] = _BASE_DEPTHS,
        drop_path_rate: float = 0.5,
    ) -> None:
        super().__init__()
        from torchvision.models.swin_transformer import (
            PatchMergingV2,
            SwinTransformer,
            SwinTransformerBlockV2,
        )

        if in_chans <= 0:
            raise ValueError(f"in_chans must be positive, got {in_chans}.")
        tv = SwinTransformer(
            patch_size=[4, 4],
            embed_dim=128,
            depths=list(_check_depths(depths)),
            num_heads=list(_BASE_HEADS),
            window_size=[8, 8],
            stochastic_depth_prob=drop_path_rate,
            block=SwinTransformerBlockV2,
            downsample_layer=PatchMergingV2,
        )
        if in_chans != 3:
            # Satlas' multispectral models replace the first conv the same way.
            tv.features[0][0] = nn.Conv2d(in_chans, 128, kernel_size=4, stride=4)
        self.features = tv.features
        self.norm = tv.norm
        self.out_indices = _stage_indices(out_indices)
        self.in_chans = in_chans
        self.embed_dim = 1024
        self.feature_info = [
            FeatureInfo(128 * 2**i, 2 ** (i + 2), f"features.{2 * i + 1}") for i in self.out_indices
        ]
        self.grad_checkpointing = False

    def _run(self, stage: nn.Module, x: torch.Tensor, is_blocks: bool) -> torch.Tensor:
        if self.grad_checkpointing and is_blocks and torch.is_grad_enabled():
            for block in cast(nn.Sequential, stage):
                x = cast(torch.Tensor, checkpoint(block, x, use_reentrant=False))
            return x
        out: torch.Tensor = stage(x)
        return out

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Stage-block outputs at :attr:`out_indices`, permuted to NCHW."""
        maps: list[torch.Tensor] = []
        last = 2 * max(self.out_indices) + 1
        for i, stage in enumerate(self.features[: last + 1]):
            x = self._run(stage, x, is_blocks=i % 2 == 1)  # (N, H', W', C) channels-last
            if i % 2 == 1 and (i - 1) // 2 in self.out_indices:
                maps.append(x.permute(0, 3, 1, 2).contiguous())  # (N, C, H', W')
        return maps

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Mean over positions of the final-normed last stage, ``(N, 1024)``.

        Args:
            x: Input ``(N, C, H, W)``.

        Returns:
            ``(N, 1024)`` embeddings.
        """
        self.check_input(x)
        for i, stage in enumerate(self.features):
            x = self._run(stage, x, is_blocks=i % 2 == 1)
        normed: torch.Tensor = self.norm(x)  # (N, H', W', C)
        return normed.mean(dim=(1, 2))  # (N, C)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Checkpoint every Swin block in backward.

        Args:
            enable: Turn checkpointing on or off.
        """
        self.grad_checkpointing = enable

    def adapt_state_dict(self, state_dict: StateDict, report: LoadReport) -> StateDict:
        """Accept torchvision and Satlas layouts: strip ``backbone.`` prefixes, drop ``head.*``.

        Args:
            state_dict: Checkpoint tensors.
            report: Report to append notes to.

        Returns:
            The state dict in this module's layout.
        """
        state_dict = super().adapt_state_dict(state_dict, report)
        return self._drop_keys(
            state_dict, ("head.",), "torchvision classifier head; the backbone has none", report
        )


@register_backbone(
    "swinv2_base_window8",
    family="swinv2",
    description="SwinV2-B, window 8 (timm swinv2_base_window8_256), NCHW stage outputs.",
)
def swinv2_base_window8(
    *,
    in_chans: int = 3,
    img_size: int = 256,
    out_indices: Sequence[int] | None = None,
    depths: Sequence[int] = _BASE_DEPTHS,
    drop_path_rate: float = 0.2,
) -> SwinBackbone:
    """Build timm's SwinV2-B (window 8) as a backbone; any input size that is a multiple of 32.

    Args:
        in_chans: Input bands.
        img_size: Native input size (sets the attention-mask cache; any
            multiple of 32 works at run time).
        out_indices: Stages to return (default all four).
        depths: Blocks per stage.
        drop_path_rate: Stochastic depth rate.

    Returns:
        The backbone.

    Example:
        >>> swinv2_base_window8(depths=(1, 1, 1, 1)).embed_dim
        1024
    """
    model = timm.create_model(
        "swinv2_base_window8_256",
        pretrained=False,
        num_classes=0,
        in_chans=in_chans,
        img_size=img_size,
        depths=_check_depths(depths),
        drop_path_rate=drop_path_rate,
        strict_img_size=False,
        dynamic_img_size=True,
    )
    return SwinBackbone(model, out_indices=out_indices)


@register_backbone(
    "tv_swin_v2_b",
    family="swinv2",
    description="torchvision swin_v2_b layout used by SatlasPretrain (features[1,3,5,7], NCHW).",
)
def tv_swin_v2_b(
    *,
    in_chans: int = 3,
    out_indices: Sequence[int] | None = None,
    depths: Sequence[int] = _BASE_DEPTHS,
    drop_path_rate: float = 0.5,
) -> TorchvisionSwinBackbone:
    """Build the torchvision ``swin_v2_b`` layout of SatlasPretrain as a backbone.

    Args:
        in_chans: Input bands (Satlas: 3 for RGB/aerial, 9 for Sentinel-2 MS).
        out_indices: Stages to return (default all four).
        depths: Blocks per stage.
        drop_path_rate: Stochastic depth rate.

    Returns:
        The backbone.

    Example:
        >>> tv_swin_v2_b(depths=(1, 1, 1, 1)).feature_info[-1]
        FeatureInfo(channels=1024, reduction=32, module='features.7')
    """
    return TorchvisionSwinBackbone(
        in_chans=in_chans, out_indices=out_indices, depths=depths, drop_path_rate=drop_path_rate
    )
