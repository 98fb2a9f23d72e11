"""Swin Transformer V2 backbones: timm SwinV2-B and the torchvision layout used by Satlas.

Both return four maps as NCHW: 128 channels at stride 4, 256 at 8, 512 at 16
and 1024 at 32 for the base size.

``tv_swin_v2_b`` keeps torchvision's ``swin_v2_b`` parameter names
(``features.*``, ``norm.*``) so a SatlasPretrain checkpoint loads strictly
once its ``backbone.backbone.`` prefix is stripped (done on load; the unused
torchvision classifier ``head.*`` is dropped and listed in the report). A raw
SatlasPretrain file passed by path (keys under ``backbone.backbone.`` next to
its FPN ``intermediates.*`` and task ``heads.*``) is recognised from its keys
and goes through the ``satlas_backbone`` converter, as the catalog entries do.
It offers two tap sets (``taps=``), both without the final norm:

- ``"satlas"`` (default): the outputs of the four stages' blocks,
  ``features[1]``, ``[3]``, ``[5]``, ``[7]``, as SatlasPretrain's backbone
  returns them;
- ``"ml4earth"``: the torchvision nodes ``features.0.0`` (the patch-embedding
  conv, before its LayerNorm), ``features.2``, ``features.4`` and
  ``features.6`` (the three PatchMerging outputs), which the ML4Earth 2024
  team took with ``create_feature_extractor``. Stage 4's blocks
  (``features[7]``) never run in this mode.

This file also owns the SatlasPretrain converters (``satlas_backbone``,
``satlas_fpn``) and weights entries.

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
from typing import Any, ClassVar, Literal, cast

import timm
import torch
from torch import nn

from geofm.backbones.base import (
    Backbone,
    FeatureInfo,
    TimmBackbone,
    normalize_out_indices,
    register_backbone,
)
from geofm.weights.catalog import TORCHGEO_HASH_NOTE, WeightsSpec, register_weights
from geofm.weights.convert import register_converter, take_prefixed
from geofm.weights.load import LoadReport, StateDict

__all__ = [
    "SwinBackbone",
    "SwinTaps",
    "TorchvisionSwinBackbone",
    "is_satlas_checkpoint",
    "satlas_backbone",
    "satlas_fpn",
]

SwinTaps = Literal["satlas", "ml4earth"]
"""Which maps ``tv_swin_v2_b`` returns: Satlas' stage outputs or ML4Earth's nodes."""

_SATLAS_FPN = "intermediates.0.fpn."
_SATLAS_OTHER = ("intermediates.", "heads.")
# torchvision node names of the four maps per tap set (the modules whose outputs they are).
_TAP_NODES: dict[str, tuple[str, ...]] = {
    "satlas": ("features.1", "features.3", "features.5", "features.7"),
    "ml4earth": ("features.0.0", "features.2", "features.4", "features.6"),
}

_BASE_DEPTHS = (2, 2, 18, 2)
_BASE_HEADS = (4, 8, 16, 32)


def _stage_indices(out_indices: Sequence[int] | None) -> tuple[int, ...]:
    return normalize_out_indices(out_indices, 4, default=(0, 1, 2, 3), what="Swin with 4 stages")


def _check_taps(taps: str) -> SwinTaps:
    if taps not in _TAP_NODES:
        raise ValueError(
            f"taps must be one of {', '.join(map(repr, _TAP_NODES))}, got {taps!r}. "
            "'satlas': stage-block outputs features[1,3,5,7]; 'ml4earth': nodes "
            "features.0.0, features.2, features.4, features.6."
        )
    return cast(SwinTaps, taps)


def _check_depths(depths: Sequence[int]) -> tuple[int, ...]:
    if len(depths) != 4 or any(d <= 0 for d in depths):
        raise ValueError(f"depths must be 4 positive block counts, got {tuple(depths)}.")
    return tuple(depths)


class SwinBackbone(TimmBackbone):
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

    stem_weight_key = "model.patch_embed.proj.weight"
    size_divisor = 32

    def __init__(self, model: Any, *, out_indices: Sequence[int] | None = None) -> None:
        super().__init__(model)
        self.out_indices = _stage_indices(out_indices)
        self.in_chans = int(model.patch_embed.proj.in_channels)
        self.embed_dim = int(model.num_features)
        base = int(model.embed_dim)
        self.feature_info = [
            FeatureInfo(base * 2**i, 2 ** (i + 2), f"layers.{i}") for i in self.out_indices
        ]

    def forward_embed(self, x: torch.Tensor) -> torch.Tensor:
        """Mean over positions of the final-normed last stage, ``(N, D)``."""
        tokens: torch.Tensor = self.model.forward_features(x)  # (N, H', W', D), final norm
        return tokens.mean(dim=(1, 2))


class TorchvisionSwinBackbone(Backbone):
    """torchvision's ``swin_v2_b`` layout (SatlasPretrain / ML4Earth) as a :class:`Backbone`.

    Holds torchvision's ``features`` and ``norm`` under the same names, so
    torchvision and Satlas state dicts load without renaming. A raw
    SatlasPretrain file (see :func:`is_satlas_checkpoint`) is converted with
    :func:`satlas_backbone` on load; its FPN and heads are listed as ignored.

    Args:
        in_chans: Input bands (the 4x4 patch-embedding conv takes them).
        out_indices: Maps (0-3) to return, in the tap set ``taps``.
        depths: Blocks per stage (base: ``(2, 2, 18, 2)``).
        drop_path_rate: Stochastic depth (torchvision's ``swin_v2_b`` default 0.5).
        taps: ``"satlas"``: the stage-block outputs ``features[1]``, ``[3]``,
            ``[5]``, ``[7]`` (SatlasPretrain); ``"ml4earth"``: the outputs of
            ``features.0.0`` (patch-embedding conv), ``features.2``,
            ``features.4`` and ``features.6`` (PatchMerging), the nodes the
            ML4Earth 2024 team extracted.

    Shape:
        - Input: ``(N, C, H, W)``, ``H`` and ``W`` multiples of 32.
        - ``forward`` (both tap sets): ``(N, 128, H/4, W/4)``, ``(N, 256, H/8, W/8)``,
          ``(N, 512, H/16, W/16)``, ``(N, 1024, H/32, W/32)``.
        - ``embed``: ``(N, 1024)``, mean of the final-normed last stage (both tap sets).

    Raises:
        ValueError: If ``in_chans`` is not positive, ``depths`` are not four
            positive counts or ``taps`` is unknown.

    Example:
        >>> import torch
        >>> m = TorchvisionSwinBackbone(in_chans=9, depths=(1, 1, 1, 1), taps="ml4earth")
        >>> [f.module for f in m.feature_info]
        ['features.0.0', 'features.2', 'features.4', 'features.6']
        >>> m.embed(torch.randn(1, 9, 32, 32)).shape
        torch.Size([1, 1024])
    """

    stem_weight_key = "features.0.0.weight"
    source_prefixes = ("module.", "backbone.")
    classifier_prefixes: ClassVar[tuple[str, ...]] = ("head.",)
    size_divisor = 32

    def __init__(
        self,
        *,
        in_chans: int = 3,
        out_indices: Sequence[int] | None = None,
        depths: Sequence[int] = _BASE_DEPTHS,
        drop_path_rate: float = 0.5,
        taps: SwinTaps = "satlas",
    ) -> None:
        super().__init__()
        self.taps = _check_taps(taps)
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
        nodes = _TAP_NODES[self.taps]
        self.feature_info = [
            FeatureInfo(128 * 2**i, 2 ** (i + 2), nodes[i]) for i in self.out_indices
        ]

    def adapt_state_dict(self, state_dict: StateDict, report: LoadReport) -> StateDict:
        """Convert a raw SatlasPretrain file first, then align prefixes as every backbone does.

        Args:
            state_dict: Checkpoint tensors.
            report: Report to append notes to.

        Returns:
            The adapted state dict.
        """
        if is_satlas_checkpoint(state_dict):
            report.adapted.append(
                "recognised a raw SatlasPretrain file from its keys: applied 'satlas_backbone'"
            )
            state_dict = satlas_backbone(state_dict, report)
        return super().adapt_state_dict(state_dict, report)

    def _run(self, stage: nn.Module, x: torch.Tensor, is_blocks: bool) -> torch.Tensor:
        if is_blocks:  # odd entries of ``features`` are stages of Swin blocks
            return self.run_blocks(cast(nn.Sequential, stage), x)
        out: torch.Tensor = stage(x)
        return out

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The tapped maps at :attr:`out_indices`, NCHW."""
        if self.taps == "ml4earth":
            return self._ml4earth_maps(x)
        maps: list[torch.Tensor] = []
        last = 2 * max(self.out_indices) + 1
        for i, stage in enumerate(self.features[: last + 1]):
            x = self._run(stage, x, is_blocks=i % 2 == 1)  # (N, H', W', C) channels-last
            if i % 2 == 1 and (i - 1) // 2 in self.out_indices:
                maps.append(x.permute(0, 3, 1, 2).contiguous())  # (N, C, H', W')
        return maps

    def _ml4earth_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of ``features.0.0`` and of the PatchMerging layers ``features.{2,4,6}``."""
        stem = cast(nn.Sequential, self.features[0])  # Conv2d, Permute, LayerNorm
        x = stem[0](x)  # (N, 128, H/4, W/4): features.0.0, before the norm
        maps = [x] if 0 in self.out_indices else []
        x = stem[2](stem[1](x))  # (N, H/4, W/4, 128) channels-last, normed
        last = 2 * max(self.out_indices)
        for i in range(1, last + 1):
            x = self._run(self.features[i], x, is_blocks=i % 2 == 1)  # (N, H', W', C)
            if i % 2 == 0 and i // 2 in self.out_indices:
                maps.append(x.permute(0, 3, 1, 2).contiguous())  # (N, C, H', W')
        return maps

    def forward_embed(self, x: torch.Tensor) -> torch.Tensor:
        """Mean over positions of the final-normed last stage, ``(N, 1024)``."""
        for i, stage in enumerate(self.features):
            x = self._run(stage, x, is_blocks=i % 2 == 1)
        normed: torch.Tensor = self.norm(x)  # (N, H', W', C)
        return normed.mean(dim=(1, 2))  # (N, C)


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
    description=(
        "torchvision swin_v2_b layout of SatlasPretrain / ML4Earth, NCHW maps: "
        "taps='satlas' features[1,3,5,7] or taps='ml4earth' features.0.0, .2, .4, .6."
    ),
)
def tv_swin_v2_b(
    *,
    in_chans: int = 3,
    out_indices: Sequence[int] | None = None,
    depths: Sequence[int] = _BASE_DEPTHS,
    drop_path_rate: float = 0.5,
    taps: SwinTaps = "satlas",
) -> TorchvisionSwinBackbone:
    """Build the torchvision ``swin_v2_b`` layout of SatlasPretrain / ML4Earth as a backbone.

    Args:
        in_chans: Input bands (Satlas: 3 for RGB/aerial, 9 for Sentinel-2 MS).
        out_indices: Maps to return (default all four).
        depths: Blocks per stage.
        drop_path_rate: Stochastic depth rate.
        taps: ``"satlas"`` (stage-block outputs ``features[1,3,5,7]``) or
            ``"ml4earth"`` (nodes ``features.0.0``, ``features.2``,
            ``features.4``, ``features.6``); see :class:`TorchvisionSwinBackbone`.

    Returns:
        The backbone.

    Example:
        >>> tv_swin_v2_b(depths=(1, 1, 1, 1)).feature_info[-1]
        FeatureInfo(channels=1024, reduction=32, module='features.7')
        >>> tv_swin_v2_b(depths=(1, 1, 1, 1), taps="ml4earth").feature_info[-1]
        FeatureInfo(channels=1024, reduction=32, module='features.6')
    """
    return TorchvisionSwinBackbone(
        in_chans=in_chans,
        out_indices=out_indices,
        depths=depths,
        drop_path_rate=drop_path_rate,
        taps=taps,
    )


# --- converters -----------------------------------------------------------------------------
def _satlas_reason(key: str) -> str:
    if key.startswith(_SATLAS_FPN):
        return "Satlas FPN; load it into geofm.heads.FPN with the 'satlas_fpn' converter"
    if key.startswith("intermediates."):
        return "Satlas upsampling / intermediate module, not part of the backbone"
    return "task head, not part of the backbone"


def is_satlas_checkpoint(state_dict: StateDict) -> bool:
    """Whether ``state_dict`` is a raw SatlasPretrain file (not yet converted).

    True when some key starts with ``backbone.backbone.`` (Satlas' Swin
    models nest torchvision's keys twice), or when keys under ``backbone.``
    sit next to Satlas' ``intermediates.*`` (FPN, upsampling) or ``heads.*``.

    Args:
        state_dict: Checkpoint tensors.

    Returns:
        Whether :func:`satlas_backbone` applies.

    Example:
        >>> import torch
        >>> is_satlas_checkpoint({"backbone.backbone.norm.weight": torch.ones(2)})
        True
        >>> is_satlas_checkpoint({"features.0.0.weight": torch.ones(2)})
        False
    """
    keys = list(state_dict)
    if any(k.startswith("backbone.backbone.") for k in keys):
        return True
    return any(k.startswith("backbone.") for k in keys) and any(
        k.startswith(_SATLAS_OTHER) for k in keys
    )


@register_converter("satlas_backbone")
def satlas_backbone(state_dict: StateDict, report: LoadReport) -> StateDict:
    """SatlasPretrain file -> torchvision ``swin_v2_b`` / ResNet keys of its backbone.

    Keys that start with ``backbone.`` lose every leading ``backbone.``
    (two for single-image Swin files, three for multi-image ones, one for
    ResNets). Everything else (FPN, upsampling, task heads) goes to
    ``report.ignored`` with the reason.

    Args:
        state_dict: Raw Satlas checkpoint.
        report: Report that receives notes and ignored keys.

    Returns:
        The backbone tensors under torchvision names.

    Example:
        >>> import torch
        >>> sd = {"backbone.backbone.norm.weight": torch.ones(2)}
        >>> from geofm.weights.load import LoadReport
        >>> list(satlas_backbone(sd, LoadReport()))
        ['norm.weight']
    """
    out: StateDict = {}
    for key, value in state_dict.items():
        if not key.startswith("backbone."):
            report.ignored.append(f"{key} ({_satlas_reason(key)})")
            continue
        new = key
        while new.startswith("backbone."):
            new = new[len("backbone.") :]
        out[new] = value
    if out:
        report.adapted.append("satlas_backbone: stripped the leading 'backbone.' prefixes")
    return out


@register_converter("satlas_fpn")
def satlas_fpn(state_dict: StateDict, report: LoadReport) -> StateDict:
    """SatlasPretrain file -> the FPN keys ``inner_blocks.*`` / ``layer_blocks.*``.

    Loads strictly into ``geofm.heads.FPN(in_channels=[128, 256, 512, 1024],
    out_channels=128)`` for the Swin-B files (torchvision's key layout).

    Args:
        state_dict: Raw Satlas checkpoint.
        report: Report that receives notes and ignored keys.

    Returns:
        The FPN tensors with ``intermediates.0.fpn.`` stripped.

    Example:
        >>> import torch
        >>> sd = {"intermediates.0.fpn.inner_blocks.0.0.bias": torch.zeros(2)}
        >>> from geofm.weights.load import LoadReport
        >>> list(satlas_fpn(sd, LoadReport()))
        ['inner_blocks.0.0.bias']
    """
    return take_prefixed(
        state_dict,
        report,
        _SATLAS_FPN,
        converter="satlas_fpn",
        outside="not part of the Satlas FPN",
    )


# --- weights --------------------------------------------------------------------------------
_SATLAS_CITATION = "Bastani et al., SatlasPretrain, ICCV 2023 (arXiv 2211.15660)."
# --- SatlasPretrain Swin-B, single image (original files) -------------------------------
_SATLAS_NOTES = (
    "Original SatlasPretrain file: torchvision swin_v2_b keys under 'backbone.backbone.' "
    "plus FPN ('intermediates.0.fpn.*', loadable into geofm.heads.FPN with the 'satlas_fpn' "
    "converter) and head keys, which the 'satlas_backbone' converter lists as ignored. "
    "Branch main (no pinned revision) and no published hash; the pinned, hash-checked "
    "torchgeo re-host is the '_torchgeo' entry."
)
for _tag, _file, _sensor, _chans, _default in (
    ("sentinel2_si_rgb_satlas", "sentinel2_swinb_si_rgb.pth", "satlas_sentinel2_rgb", 3, True),
    ("sentinel2_si_ms_satlas", "sentinel2_swinb_si_ms.pth", "satlas_sentinel2_ms", 9, False),
    ("aerial_si_satlas", "aerial_swinb_si.pth", None, 3, False),
):
    register_weights(
        WeightsSpec(
            name=f"tv_swin_v2_b.{_tag}",
            repo_id="allenai/satlas-pretrain",
            filename=_file,
            url=f"https://huggingface.co/allenai/satlas-pretrain/resolve/main/{_file}",
            converter="satlas_backbone",
            sensor=_sensor,
            in_chans=_chans,
            license="ODC-BY",
            citation=_SATLAS_CITATION,
            default=_default,
            notes=_SATLAS_NOTES
            + (
                " Input: 8-bit aerial RGB (NAIP-like) /255; no registered 3-band sensor "
                "matches, so sensor is None."
                if _sensor is None
                else ""
            ),
        )
    )

# --- SatlasPretrain Swin-B re-hosted by torchgeo (plain torchvision keys) -------------------
_TG_SATLAS_REV = "081d6607431bf36bdb59c223777cbb267131b8f2"
for _tag, _file, _sensor, _chans in (
    ("sentinel2_si_rgb", "sentinel2_swinb_si_rgb-156a98d5.pth", "satlas_sentinel2_rgb", 3),
    ("sentinel2_si_ms", "sentinel2_swinb_si_ms-fe22a12c.pth", "satlas_sentinel2_ms", 9),
    ("aerial_si", "aerial_swinb_si-e4169eb1.pth", None, 3),
):
    register_weights(
        WeightsSpec(
            name=f"tv_swin_v2_b.{_tag}_satlas_torchgeo",
            repo_id="torchgeo/satlas",
            filename=_file,
            revision=_TG_SATLAS_REV,
            sha256=_file.rsplit("-", 1)[1].split(".")[0],
            sensor=_sensor,
            in_chans=_chans,
            license="ODC-BY",
            citation=_SATLAS_CITATION,
            notes=(
                "torchgeo's re-host of the SatlasPretrain backbone: plain torchvision "
                "swin_v2_b keys (incl. the unused classifier 'head.*', dropped on load). "
                + TORCHGEO_HASH_NOTE
            ),
        )
    )
