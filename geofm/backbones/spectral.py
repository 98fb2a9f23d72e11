"""SpectralEarth backbones: Spec-ViT-T/S/B/L/H/g and Spec-RN50 for hyperspectral input.

Both put SpectralEarth's :class:`~geofm.spectral.SpectralAdapter` (``C >= 75``
bands to 128 channels, per pixel) in front of a standard trunk:

- **Spec-ViT**: a timm ``VisionTransformer`` on 128 channels with patch 4 and a
  128 px native grid (class token + learned position embedding
  ``[1, 1025, D]``, ``qkv_bias``, LayerNorm eps 1e-6, MLP ratio 4). Other
  input sizes (multiples of 4) interpolate the position embedding.
- **Spec-RN50**: a ResNet-50 without stem: the adapter output goes straight into
  ``layer1``, whose first block is a width-256 bottleneck ``128 -> 256`` with
  stride 2, so the output stride is 16 (``2, 4, 8, 16`` for ``layer1..4``).
  ``replace_stride_with_dilation`` turns strides into dilations (1, 2, 4, 8 for
  flagged layers, as in the source), giving full-resolution features for FCN heads.

Spec-ViT is a configuration of the one ViT (:class:`~geofm.backbones.vit.ViTBackbone`)
with the adapter as its ``stem``. SpectralEarth checkpoints (keys
``spectral_adapter.*``, ``vit_core.*`` / ``resnet.*``) load strictly: Spec-RN50
keeps those attribute names, Spec-ViT maps ``spectral_adapter.`` -> ``stem.``
and ``vit_core.`` -> ``model.`` on load; Lightning / DDP prefixes
(``backbone.``, ``student_backbone.``, ``module.``) are stripped and the
classifier keys (``vit_core.head.*``, ``resnet.fc.*``) are dropped and reported.
This file also owns the ``spectral_earth`` converter and the SpectralEarth
weights entries.

References:
    Braham et al., "SpectralEarth: Training Hyperspectral Foundation Models at
    Scale", arXiv 2408.08447. Code: https://github.com/AABNassim/spectral_earth
    (``src/backbones/spec_vit.py``, ``spec_resnet.py``); layout re-implemented on timm.

Example:
    >>> import torch, geofm
    >>> m = geofm.create_backbone("spec_vit_small_patch4", depth=1, out_indices=[-1])
    >>> m(torch.randn(1, 202, 16, 16))[0].shape
    torch.Size([1, 384, 4, 4])
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, ClassVar, cast

import timm
import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from geofm.backbones.base import Backbone, FeatureInfo, normalize_out_indices, register_backbone
from geofm.backbones.vit import Pool, ViTBackbone
from geofm.spectral import SpectralAdapter
from geofm.weights.catalog import WeightsSpec, register_weights
from geofm.weights.convert import register_converter
from geofm.weights.load import LoadReport, StateDict

__all__ = [
    "SPEC_VIT_SIZES",
    "SpecBottleneck",
    "SpecResNetBackbone",
    "SpecResNetTrunk",
    "spectral_earth",
]

# embed_dim, depth, heads of SpectralEarth's Spec-ViT variants (src/backbones/spec_vit.py).
SPEC_VIT_SIZES: dict[str, tuple[int, int, int]] = {
    "tiny": (192, 12, 3),
    "small": (384, 12, 6),
    "base": (768, 12, 12),
    "large": (1024, 24, 16),
    "huge": (1280, 32, 16),
    "giant": (1536, 40, 24),
}
_SOURCE_PREFIXES = ("module.", "backbone.", "student_backbone.", "model.")
_SPEC_VIT_RENAMES = (("spectral_adapter.", "stem."), ("vit_core.", "model."))
_PRETRAINED_BANDS = "enmap_spectral_earth"
_SE_TARGETS = ("spectral_adapter.", "vit_core.", "resnet.")
# Wrappers around the backbone in SpectralEarth's Lightning modules, most specific first.
_SE_WRAPPERS = ("student_backbone.", "backbone.", "encoder.", "")
_SE_ALIASES = (
    ("vit.", "vit_core."),  # lightly's MaskedVisionTransformerTIMM stores the ViT as ``vit``
    ("vit_core.patch_embed.spectral_adapter.", "spectral_adapter."),
    ("vit_core.patch_embed.original_patch_embed.", "vit_core.patch_embed."),
)
_SE_HEADS = ("vit_core.head.", "resnet.fc.")


def _check_in_chans(in_chans: int) -> None:
    if in_chans < SpectralAdapter.min_bands:
        raise ValueError(
            f"SpectralEarth backbones need at least {SpectralAdapter.min_bands} bands "
            f"(the spectral adapter's strided convolutions), got in_chans={in_chans}. "
            "Use a backbone with a patch embedding for multispectral input."
        )


class SpecBottleneck(nn.Module):
    """SpectralEarth's first ``layer1`` block: a width-``C_out`` bottleneck (no 4x expansion).

    ``conv1`` 1x1 ``C_in -> C_out``, ``conv2`` 3x3 ``C_out -> C_out`` (stride
    ``stride``), ``conv3`` 1x1 ``C_out -> C_out``, BatchNorm after each, ReLU,
    residual through ``downsample`` (1x1 conv with the same stride + BatchNorm).
    Parameter names match the source (``conv1``, ``bn1``, ..., ``downsample.0``).

    Reference: ``CustomBottleneck`` in ``src/backbones/spec_resnet.py`` of
    https://github.com/AABNassim/spectral_earth.

    Args:
        in_channels: Input channels ``C_in`` (128 after the adapter).
        out_channels: Width and output channels ``C_out`` (256).
        stride: Stride of ``conv2`` and of the residual projection.

    Shape:
        - Input: ``(N, C_in, H, W)``.
        - Output: ``(N, C_out, H / stride, W / stride)``.

    Example:
        >>> block = SpecBottleneck(in_channels=128, out_channels=256, stride=2)
        >>> block(torch.randn(1, 128, 8, 8)).shape
        torch.Size([1, 256, 4, 4])
    """

    def __init__(self, *, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(
            out_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False
        )
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv3 = nn.Conv2d(out_channels, out_channels, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Bottleneck with projected residual.

        Args:
            x: Input map.

        Returns:
            Output map.
        """
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return cast(torch.Tensor, self.relu(out + self.downsample(x)))


class SpecResNetTrunk(nn.Module):
    """Stem-less ResNet-50 trunk of Spec-RN50: ``layer1`` .. ``layer4`` on 128 channels.

    ``layer1`` = :class:`SpecBottleneck` ``128 -> 256`` (stride 2) followed by
    timm ResNet-50's ``layer1[1:]``; ``layer2`` .. ``layer4`` are timm's. For every
    flagged layer in ``replace_stride_with_dilation``, all its blocks get stride 1
    and ``conv2`` dilation (and padding) 1, 2, 4, 8, ... doubling per flagged layer
    (the source's rule). 24,146,432 parameters.

    Args:
        replace_stride_with_dilation: One flag per layer (``layer1`` .. ``layer4``).

    Shape:
        - Input: ``(N, 128, H, W)``.
        - Output of ``layer4``: ``(N, 2048, H / 16, W / 16)`` without dilation.

    Example:
        >>> trunk = SpecResNetTrunk()
        >>> sum(p.numel() for p in trunk.parameters())
        24146432
    """

    def __init__(
        self, *, replace_stride_with_dilation: tuple[bool, bool, bool, bool] = (False,) * 4
    ) -> None:
        super().__init__()
        base = cast(Any, timm.create_model("resnet50", pretrained=False, num_classes=0))
        first = SpecBottleneck(in_channels=128, out_channels=256, stride=2)
        self.layer1 = nn.Sequential(first, *list(base.layer1)[1:])
        self.layer2: nn.Sequential = base.layer2
        self.layer3: nn.Sequential = base.layer3
        self.layer4: nn.Sequential = base.layer4
        dilation = 1
        for layer, flag in zip(self.layers(), replace_stride_with_dilation, strict=True):
            if not flag:
                continue
            blocks: list[Any] = list(layer)
            for block in blocks:
                if block.downsample is not None:
                    block.downsample[0].stride = (1, 1)
                block.conv2.stride = (1, 1)
                block.conv2.dilation = (dilation, dilation)
                block.conv2.padding = (dilation, dilation)
            dilation *= 2

    def layers(self) -> list[nn.Sequential]:
        """``[layer1, layer2, layer3, layer4]``.

        Returns:
            The four stages.
        """
        return [self.layer1, self.layer2, self.layer3, self.layer4]


class SpecResNetBackbone(Backbone):
    """SpectralEarth Spec-RN50: spectral adapter + stem-less ResNet-50 (output stride 16).

    Args:
        in_chans: Number of input bands ``C`` (>= 75; 202 for EnMAP).
        out_indices: Stages (0-3 for ``layer1``-``layer4``) whose outputs
            :meth:`forward` returns; negative values count from the end.
        replace_stride_with_dilation: One flag per stage; flagged stages keep
            their input resolution (all four: full-resolution features).

    Shape:
        - Input: ``(N, C, H, W)``, ``H`` and ``W`` multiples of :attr:`size_divisor`
          (16 without dilation).
        - ``forward``: list of ``(N, C_i, H / r_i, W / r_i)`` with ``C_i`` 256, 512,
          1024, 2048 and ``r_i`` 2, 4, 8, 16 (1 for stages that no longer stride).
        - ``embed``: ``(N, 2048)``, global average pool of ``layer4``.

    Raises:
        ValueError: If ``in_chans < 75`` or ``out_indices`` is invalid.

    Example:
        >>> import torch, geofm
        >>> m = geofm.create_backbone(
        ...     "spec_resnet50", replace_stride_with_dilation=(True, True, True, True)
        ... )
        >>> m(torch.randn(1, 202, 8, 8))[-1].shape
        torch.Size([1, 2048, 8, 8])
    """

    source_prefixes = _SOURCE_PREFIXES
    classifier_prefixes: ClassVar[tuple[str, ...]] = ("resnet.fc.",)

    def __init__(
        self,
        *,
        in_chans: int = 202,
        out_indices: Sequence[int] | None = None,
        replace_stride_with_dilation: tuple[bool, bool, bool, bool] = (False,) * 4,
    ) -> None:
        super().__init__()
        _check_in_chans(in_chans)
        flags = tuple(bool(f) for f in replace_stride_with_dilation)
        if len(flags) != 4:
            raise ValueError(
                f"replace_stride_with_dilation needs one flag per stage (4), got {len(flags)}."
            )
        self.spectral_adapter = SpectralAdapter()
        self.resnet = SpecResNetTrunk(replace_stride_with_dilation=cast(Any, flags))
        self.in_chans = in_chans
        self.embed_dim = 2048
        self.out_indices = normalize_out_indices(
            out_indices, 4, default=(0, 1, 2, 3), what="ResNet with 4 stages"
        )
        reductions, total = [], 1
        for flag in flags:
            total *= 1 if flag else 2
            reductions.append(total)
        self.size_divisor = total
        channels = (256, 512, 1024, 2048)
        self.feature_info = [
            FeatureInfo(channels[i], reductions[i], f"resnet.layer{i + 1}")
            for i in self.out_indices
        ]

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Stage outputs at :attr:`out_indices`, NCHW."""
        out = self.spectral_adapter(x)  # (N, 128, H, W)
        maps = []
        for i, stage in enumerate(self.resnet.layers()[: self.out_indices[-1] + 1]):
            out = self.run_blocks(stage, out)
            if i in self.out_indices:
                maps.append(out)
        return maps

    def forward_embed(self, x: torch.Tensor) -> torch.Tensor:
        """Global-average-pooled ``layer4``, ``(N, 2048)``."""
        out = self.spectral_adapter(x)  # (N, 128, H, W)
        for stage in self.resnet.layers():
            out = self.run_blocks(stage, out)
        pooled: torch.Tensor = out.mean(dim=(2, 3))  # (N, 2048)
        return pooled


def _build_spec_vit(
    size: str,
    *,
    in_chans: int = 202,
    img_size: int = 128,
    out_indices: Sequence[int] | None = None,
    depth: int | None = None,
    pool: Pool = "cls",
    norm: bool = True,
    drop_path_rate: float = 0.0,
) -> ViTBackbone:
    """Spec-ViT of ``size``: the spectral adapter as stem of a patch-4 ViT on 128 channels."""
    _check_in_chans(in_chans)
    embed_dim, default_depth, heads = SPEC_VIT_SIZES[size]
    if depth is not None and depth <= 0:
        raise ValueError(f"depth must be positive, got {depth}.")
    vit_core = VisionTransformer(
        img_size=img_size,
        patch_size=4,
        in_chans=SpectralAdapter.out_channels,
        num_classes=0,
        embed_dim=embed_dim,
        depth=default_depth if depth is None else depth,
        num_heads=heads,
        mlp_ratio=4.0,
        qkv_bias=True,
        dynamic_img_size=True,
        drop_path_rate=drop_path_rate,
    )  # timm's default norm layer is LayerNorm(eps=1e-6), as in SpectralEarth
    return ViTBackbone(
        vit_core,
        stem=SpectralAdapter(),
        in_chans=in_chans,
        out_indices=out_indices,
        pool=pool,
        norm=norm,
        key_renames=_SPEC_VIT_RENAMES,
        source_prefixes=_SOURCE_PREFIXES,
    )


def _build_spec_resnet50(
    *,
    in_chans: int = 202,
    out_indices: Sequence[int] | None = None,
    replace_stride_with_dilation: tuple[bool, bool, bool, bool] = (False, False, False, False),
) -> SpecResNetBackbone:
    """Spec-RN50 (24.20 M parameters, 2048-d, output stride 16)."""
    return SpecResNetBackbone(
        in_chans=in_chans,
        out_indices=out_indices,
        replace_stride_with_dilation=replace_stride_with_dilation,
    )


for _size, (_dim, _depth, _heads) in SPEC_VIT_SIZES.items():
    register_backbone(
        f"spec_vit_{_size}_patch4",
        family="spectral_earth",
        default_in_chans=202,
        pretrained_bands=_PRETRAINED_BANDS,
        min_input_size=4,
        description=(
            f"SpectralEarth Spec-ViT-{_size[0].upper()}/4: spectral adapter (>= 75 bands) + "
            f"ViT {_dim}-d x {_depth}, {_heads} heads, 128 px."
        ),
    )(functools.partial(_build_spec_vit, _size))
register_backbone(
    "spec_resnet50",
    family="spectral_earth",
    default_in_chans=202,
    pretrained_bands=_PRETRAINED_BANDS,
    min_input_size=16,
    description="SpectralEarth Spec-RN50: spectral adapter (>= 75 bands) + stem-less ResNet-50.",
)(_build_spec_resnet50)


# --- converter ------------------------------------------------------------------------------
def _se_wrapper(state_dict: StateDict) -> str:
    """The wrapper prefix under which SpectralEarth's backbone keys sit ('' for plain dicts)."""
    for wrapper in _SE_WRAPPERS:
        for key in state_dict:
            if not key.startswith(wrapper):
                continue
            rest = _se_alias(key[len(wrapper) :])
            if rest.startswith(_SE_TARGETS):
                return wrapper
    return ""


def _se_alias(key: str) -> str:
    for old, new in _SE_ALIASES:
        if key.startswith(old):
            key = new + key[len(old) :]
    return key


@register_converter("spectral_earth")
def spectral_earth(state_dict: StateDict, report: LoadReport) -> StateDict:
    """SpectralEarth checkpoint (plain, Lightning or MAE wrapper) -> plain backbone keys.

    Picks the wrapper the backbone sits under (``student_backbone.`` for
    DINO, ``backbone.`` for MoCo, ``encoder.`` for lightly's MAE encoder, or
    none), maps the MAE aliases back (``vit.`` -> ``vit_core.``,
    ``vit_core.patch_embed.spectral_adapter.`` -> ``spectral_adapter.``,
    ``vit_core.patch_embed.original_patch_embed.`` -> ``vit_core.patch_embed.``)
    and keeps ``spectral_adapter.*``, ``vit_core.*`` and ``resnet.*``.
    Teachers, momentum encoders, projection heads, decoders and classifiers
    are listed in ``report.ignored``.

    Args:
        state_dict: SpectralEarth checkpoint tensors.
        report: Report that receives notes and ignored keys.

    Returns:
        Keys of SpectralEarth's ``SpecVisionTransformer`` / ``SpecResNet50``.

    Example:
        >>> import torch
        >>> sd = {
        ...     "student_backbone.vit_core.cls_token": torch.zeros(1, 1, 4),
        ...     "teacher_backbone.vit_core.cls_token": torch.zeros(1, 1, 4),
        ... }
        >>> from geofm.weights.load import LoadReport
        >>> list(spectral_earth(sd, LoadReport()))
        ['vit_core.cls_token']
    """
    wrapper = _se_wrapper(state_dict)
    out: StateDict = {}
    for key, value in state_dict.items():
        if not key.startswith(wrapper):
            report.ignored.append(f"{key} (not part of the backbone under {wrapper!r})")
            continue
        new = _se_alias(key[len(wrapper) :])
        if new.startswith(_SE_HEADS):
            report.ignored.append(f"{key} (classifier head; the backbone has none)")
        elif new.startswith(_SE_TARGETS):
            out[new] = value
        else:
            report.ignored.append(f"{key} (not part of the SpectralEarth backbone)")
    if wrapper:
        report.adapted.append(f"spectral_earth: took the backbone under {wrapper!r}")
    return out


# --- weights --------------------------------------------------------------------------------
_SE_CITATION = "Braham et al., SpectralEarth, arXiv 2408.08447."
_SE_URL = "https://syncandshare.desy.de/index.php/s/Po5bTPipz6EEHx3"
# --- SpectralEarth (DESY Sync&Share folder, manual download) ----------------------------------
_SE_NOTES = (
    "Published only as a DESY Sync&Share folder: file names, hashes, revision and licence "
    "are not documented (None / 'unknown'). The 'spectral_earth' converter accepts the plain "
    "backbone dict and the Lightning / MAE wrappers (backbone., student_backbone., "
    "encoder.vit., patch-embed aliases) and lists projection heads, teachers and decoders "
    "as ignored."
)
for _name, _default in (
    ("spec_resnet50.enmap_moco", True),
    ("spec_resnet50.enmap_dino", False),
    ("spec_vit_small_patch4.enmap_moco", True),
    ("spec_vit_small_patch4.enmap_dino", False),
    ("spec_vit_small_patch4.enmap_mae", False),
):
    register_weights(
        WeightsSpec(
            name=_name,
            filename=None,
            url=_SE_URL,
            converter="spectral_earth",
            sensor="enmap_spectral_earth",
            in_chans=202,
            license="unknown",
            citation=_SE_CITATION,
            default=_default,
            notes=_SE_NOTES,
        )
    )
