"""Vision Transformers: one timm-backed ViT class, configured by stem and pooling.

:class:`ViTBackbone` wraps timm's ``VisionTransformer`` (no re-implementation
of the transformer): position embeddings are interpolated at run time for any
input size that is a multiple of the patch size, and intermediate block
outputs are returned as NCHW grids for dense tasks. Its configurations:

- plain patch embedding: DINOv2 ViT-S/B/L/g (patch 14) and ViT-S/B/L/H (patch 16),
  registered in this file;
- wavelength-conditioned patch embedding (:class:`~geofm.spectral.WavelengthPatchEmbed`
  as the patch projection): any of those with ``generator="mlp"`` and
  ``bands=``, and DOFA (``generator="dofa"``, :mod:`geofm.backbones.dofa`);
- a stem before the ViT: SpectralEarth's spectral adapter (Spec-ViT,
  :mod:`geofm.backbones.spectral`).

This file also owns the DINOv2 and SSL4EO-S12 ViT weights entries.

References:
    Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021.
    Oquab et al., "DINOv2: Learning Robust Visual Features without Supervision", TMLR 2024.
    Code: https://github.com/huggingface/pytorch-image-models (timm ``vision_transformer.py``).

Example:
    >>> import torch, geofm
    >>> m = geofm.create_backbone("dinov2_vit_small_patch14", depth=2)
    >>> m.embed(torch.randn(1, 3, 28, 28)).shape
    torch.Size([1, 384])
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import timm
import torch
import torch.nn.functional as F
from timm.layers.pos_embed import resample_abs_pos_embed
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from geofm.backbones.base import FeatureInfo, TimmBackbone, normalize_out_indices, register_backbone
from geofm.errors import ShapeError
from geofm.spectral import WavelengthPatchEmbed
from geofm.spectral.wavelength import KernelGenerator
from geofm.weights.catalog import TORCHGEO_HASH_NOTE, WeightsSpec, register_weights
from geofm.weights.load import LoadReport, StateDict

__all__ = ["ViTBackbone", "build_vit", "default_out_indices", "resample_pos_embed"]

Pool = Literal["cls", "mean", "mean_norm"]
"""``embed`` pooling: class token, mean patch token, or mean patch token through a
non-affine LayerNorm (DOFA's global pool)."""


def default_out_indices(depth: int, count: int = 4) -> tuple[int, ...]:
    """``count`` evenly spaced block indices ending at the last block.

    Args:
        depth: Number of blocks.
        count: How many indices to return at most.

    Returns:
        Sorted unique indices.

    Example:
        >>> default_out_indices(12)
        (2, 5, 8, 11)
        >>> default_out_indices(2)
        (0, 1)
    """
    picks = {max(0, round((i + 1) * depth / count) - 1) for i in range(count)}
    return tuple(sorted(picks))


def resample_pos_embed(
    state_dict: StateDict, key: str, vit: VisionTransformer, report: LoadReport
) -> StateDict:
    """Resample a checkpoint's square position-embedding grid to ``vit``'s grid.

    Leaves the state dict unchanged when the shapes already match, the key is
    absent, or the stored grid is not square (strict loading then reports it).

    Args:
        state_dict: Checkpoint tensors in the module's layout.
        key: Key of the position embedding, e.g. ``"model.pos_embed"``.
        vit: The timm ViT whose grid is the target.
        report: Report that records the resampling.

    Returns:
        The (possibly updated) state dict.

    Example:
        >>> import timm, torch
        >>> from geofm.weights.load import LoadReport
        >>> vit = timm.create_model("vit_tiny_patch16_224", depth=1, img_size=32)
        >>> sd = {"pos_embed": torch.zeros(1, 1 + 14 * 14, 192)}
        >>> resample_pos_embed(sd, "pos_embed", vit, LoadReport())["pos_embed"].shape
        torch.Size([1, 5, 192])
    """
    own = vit.pos_embed
    if key not in state_dict or own is None or state_dict[key].shape == own.shape:
        return state_dict
    prefix = 0 if vit.no_embed_class else vit.num_prefix_tokens
    grid = cast(Any, vit.patch_embed).grid_size
    old_tokens = state_dict[key].shape[1] - prefix
    old_side = round(old_tokens**0.5)
    if old_side * old_side != old_tokens:
        return state_dict
    out = dict(state_dict)
    out[key] = resample_abs_pos_embed(
        state_dict[key],
        new_size=list(grid),
        old_size=[old_side, old_side],
        num_prefix_tokens=prefix,
    )
    report.adapted.append(
        f"{key}: resampled from a {old_side}x{old_side} to a {grid[0]}x{grid[1]} grid"
    )
    return out


class ViTBackbone(TimmBackbone):
    """A timm Vision Transformer behind the geofm :class:`~geofm.backbones.Backbone` contract.

    Args:
        model: A timm ``VisionTransformer`` built with ``num_classes=0`` and
            ``dynamic_img_size=True``; its ``patch_embed.proj`` may be a
            :class:`~geofm.spectral.WavelengthPatchEmbed` with default wavelengths.
        stem: Module applied to the input before the ViT (SpectralEarth's
            spectral adapter), or ``None``.
        in_chans: Input bands when a ``stem`` is given (the ViT then sees the
            stem's output); otherwise taken from the patch embedding.
        out_indices: Blocks whose outputs :meth:`forward` returns (negative
            indices count from the end). Default: four evenly spaced blocks.
        pool: ``"cls"`` (class token after the final norm), ``"mean"`` (mean
            patch token after the final norm) or ``"mean_norm"`` (mean patch
            token through a LayerNorm without affine parameters, eps 1e-6:
            DOFA's pool, for encoders without a final norm) for :meth:`embed`.
        norm: Apply the final LayerNorm to the intermediate maps (DINOv2's and
            SpectralEarth's ``get_intermediate_layers(norm=True)`` convention).
        key_renames: ``(old, new)`` key prefixes of the source layout of this
            configuration (e.g. SpectralEarth's ``vit_core.`` -> ``model.``).
        source_prefixes: Wrapper prefixes stripped from checkpoint keys on load.

    Shape:
        - Input: ``(N, C, H, W)``, ``H`` and ``W`` multiples of the patch size ``p``.
        - ``forward``: list of ``(N, D, H / p, W / p)``.
        - ``embed``: ``(N, D)``.

    Raises:
        ValueError: Unknown ``pool``, ``pool="cls"`` without a class token, a
            wavelength stem without default wavelengths, or a ``stem`` without ``in_chans``.

    Example:
        >>> import torch, geofm
        >>> m = geofm.create_backbone("vit_small_patch16", depth=2, out_indices=[-1])
        >>> m(torch.randn(2, 3, 48, 32))[0].shape
        torch.Size([2, 384, 3, 2])
    """

    def __init__(
        self,
        model: VisionTransformer,
        *,
        stem: nn.Module | None = None,
        in_chans: int | None = None,
        out_indices: Sequence[int] | None = None,
        pool: Pool = "cls",
        norm: bool = True,
        key_renames: Sequence[tuple[str, str]] = (),
        source_prefixes: Sequence[str] = ("module.",),
    ) -> None:
        super().__init__(model)
        if pool not in ("cls", "mean", "mean_norm"):
            raise ValueError(f"pool must be 'cls', 'mean' or 'mean_norm', got {pool!r}.")
        if pool == "cls" and not model.has_class_token:
            raise ValueError(
                "pool='cls' needs a class token; this model has none. Use pool='mean'."
            )
        self.stem = stem
        depth = len(model.blocks)
        self.out_indices = normalize_out_indices(
            out_indices, depth, default=default_out_indices(depth), what=f"ViT with {depth} blocks"
        )
        self.pool: Pool = pool
        self.norm = norm
        self.key_renames = tuple(key_renames)
        self.source_prefixes = tuple(source_prefixes)
        self.embed_dim = int(model.embed_dim)
        patch_embed: Any = model.patch_embed
        self.patch_size = int(patch_embed.patch_size[0])
        self.size_divisor = self.patch_size
        proj = patch_embed.proj
        if stem is not None:
            if in_chans is None:
                raise ValueError("A ViTBackbone with a stem needs in_chans (the stem's input).")
            self.in_chans = in_chans
        elif isinstance(proj, WavelengthPatchEmbed):
            if proj.wavelengths is None:
                raise ValueError("A WavelengthPatchEmbed stem needs default wavelengths.")
            self.in_chans = int(proj.wavelengths.numel())
        else:
            self.in_chans = int(proj.in_channels)
            self.stem_weight_key = "model.patch_embed.proj.weight"
        self.feature_info = [
            FeatureInfo(self.embed_dim, self.patch_size, f"blocks.{i}") for i in self.out_indices
        ]

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.stem is None else cast(torch.Tensor, self.stem(x))

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Block outputs at :attr:`out_indices` as ``(N, D, H / p, W / p)`` grids."""
        return self.intermediates(self._stem(x), norm=self.norm, output_fmt="NCHW")

    def forward_embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled token after the final norm (see ``pool``), ``(N, D)``."""
        tokens = self.model.forward_features(self._stem(x))  # (N, L, D), final norm applied
        if self.pool == "cls":
            return cast(torch.Tensor, tokens[:, 0])
        pooled = tokens[:, self.model.num_prefix_tokens :].mean(dim=1)  # (N, D)
        if self.pool == "mean_norm":
            return F.layer_norm(pooled, (self.embed_dim,), eps=1e-6)
        return cast(torch.Tensor, pooled)

    @property
    def wavelength_embed(self) -> WavelengthPatchEmbed | None:
        """The wavelength-conditioned patch projection, or ``None`` for a fixed-band ViT."""
        proj = cast(Any, self.model.patch_embed).proj
        return proj if isinstance(proj, WavelengthPatchEmbed) else None

    def adapt_state_dict(self, state_dict: StateDict, report: LoadReport) -> StateDict:
        """Accept source layouts: add ``model.``, rename, drop the classifier, resample positions.

        Args:
            state_dict: Checkpoint tensors (timm ``VisionTransformer`` layout,
                this configuration's source layout, or this module's).
            report: Report to append notes to.

        Returns:
            The state dict in this module's layout.
        """
        state_dict = super().adapt_state_dict(state_dict, report)
        return resample_pos_embed(state_dict, "model.pos_embed", self.model, report)


def build_vit(
    model: VisionTransformer,
    *,
    wavelengths: Sequence[float] | None = None,
    generator: KernelGenerator | None = None,
    **options: Any,
) -> ViTBackbone:
    """Wrap a timm ViT as a :class:`ViTBackbone`, optionally with a wavelength-conditioned stem.

    Only the patch projection changes: timm's ``PatchEmbed`` keeps flattening,
    dynamic sizing and norm, so the rest of the ViT is untouched.

    Args:
        model: timm ``VisionTransformer`` (``num_classes=0``, ``dynamic_img_size=True``).
        wavelengths: Centre wavelength of each band in nm (with ``generator``).
        generator: ``None`` keeps the plain patch convolution; ``"mlp"`` or
            ``"dofa"`` swaps it for a :class:`~geofm.spectral.WavelengthPatchEmbed`.
        **options: Passed to :class:`ViTBackbone`.

    Returns:
        The backbone.

    Raises:
        ValueError: ``generator`` without ``wavelengths``.

    Example:
        >>> vit = timm.create_model("vit_small_patch16_224", depth=1, num_classes=0,
        ...                         img_size=32, dynamic_img_size=True)
        >>> build_vit(vit, wavelengths=[842.0, 1610.0], generator="mlp").in_chans
        2
    """
    if generator is not None:
        if not wavelengths:
            raise ValueError(
                f"generator={generator!r} makes the patch embedding wavelength-conditioned: "
                "pass bands= (a sensor name, band names or wavelengths in nm)."
            )
        patch_embed: Any = model.patch_embed
        patch_embed.proj = WavelengthPatchEmbed(
            embed_dim=int(model.embed_dim),
            patch_size=int(patch_embed.patch_size[0]),
            wavelengths=wavelengths,
            generator=generator,
        )
    return ViTBackbone(model, **options)


def create_timm_vit(
    timm_name: str,
    *,
    in_chans: int,
    img_size: int,
    depth: int | None,
    drop_path_rate: float,
    **timm_kwargs: Any,
) -> VisionTransformer:
    """Build timm's ``timm_name`` ViT for a backbone: no classifier, dynamic size, checked depth.

    Args:
        timm_name: timm architecture name.
        in_chans: Input channels of the patch convolution.
        img_size: Size of the stored position grid.
        depth: Block count override, or ``None``.
        drop_path_rate: Stochastic depth rate.
        **timm_kwargs: Further timm arguments.

    Returns:
        The timm model.

    Raises:
        ValueError: A non-positive ``depth``.

    Example:
        >>> create_timm_vit("vit_small_patch16_224", in_chans=4, img_size=32, depth=1,
        ...                 drop_path_rate=0.0).patch_embed.proj.in_channels
        4
    """
    if depth is not None:
        if depth <= 0:
            raise ValueError(f"depth must be positive, got {depth}.")
        timm_kwargs["depth"] = depth
    model = timm.create_model(
        timm_name,
        pretrained=False,
        num_classes=0,
        in_chans=in_chans,
        img_size=img_size,
        dynamic_img_size=True,
        drop_path_rate=drop_path_rate,
        **timm_kwargs,
    )
    return cast(VisionTransformer, model)


# --- variants -------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Variant:
    """One registered ViT: its name, timm architecture, family, size letter, patch, grid."""

    name: str
    timm_name: str
    family: str
    size: str  # "S", "B", "L", "g", "H"
    patch: int
    img_size: int

    @property
    def timm_kwargs(self) -> dict[str, Any]:
        """Overrides of the timm architecture: its patch size where the name differs."""
        return {} if f"patch{self.patch}" in self.timm_name else {"patch_size": self.patch}

    @property
    def description(self) -> str:
        """One line for ``list_backbones`` and the docs."""
        prefix = "DINOv2 " if self.family == "dinov2" else ""
        patch = f" with patch {self.patch}" if self.timm_kwargs else ""
        return (
            f"{prefix}ViT-{self.size}/{self.patch} (timm {self.timm_name}{patch}), "
            f"{self.img_size} px grid."
        )


_VARIANTS = (
    _Variant("dinov2_vit_small_patch14", "vit_small_patch14_dinov2", "dinov2", "S", 14, 518),
    _Variant("dinov2_vit_base_patch14", "vit_base_patch14_dinov2", "dinov2", "B", 14, 518),
    _Variant("dinov2_vit_large_patch14", "vit_large_patch14_dinov2", "dinov2", "L", 14, 518),
    _Variant("dinov2_vit_giant_patch14", "vit_giant_patch14_dinov2", "dinov2", "g", 14, 518),
    _Variant("vit_small_patch16", "vit_small_patch16_224", "vit", "S", 16, 224),
    _Variant("vit_base_patch16", "vit_base_patch16_224", "vit", "B", 16, 224),
    _Variant("vit_large_patch16", "vit_large_patch16_224", "vit", "L", 16, 224),
    _Variant("vit_huge_patch16", "vit_huge_patch14_224", "vit", "H", 16, 224),
)


def _build(
    variant: _Variant,
    *,
    in_chans: int | None = None,
    wavelengths: Sequence[float] | None = None,
    generator: KernelGenerator | None = None,
    img_size: int | None = None,
    out_indices: Sequence[int] | None = None,
    depth: int | None = None,
    pool: Pool = "cls",
    norm: bool = True,
    drop_path_rate: float = 0.0,
) -> ViTBackbone:
    """Build a ``_VARIANTS`` row; ``generator`` with ``bands=`` conditions it on wavelengths."""
    if generator is not None and wavelengths and in_chans not in (None, len(wavelengths)):
        raise ShapeError(
            f"in_chans={in_chans} but {len(wavelengths)} wavelengths were given. Pass one "
            "wavelength per band, or leave in_chans out."
        )
    vit = create_timm_vit(
        variant.timm_name,
        in_chans=3 if in_chans is None else in_chans,
        img_size=variant.img_size if img_size is None else img_size,
        depth=depth,
        drop_path_rate=drop_path_rate,
        **variant.timm_kwargs,
    )
    return build_vit(
        vit,
        wavelengths=wavelengths if generator is not None else None,
        generator=generator,
        out_indices=out_indices,
        pool=pool,
        norm=norm,
    )


for _v in _VARIANTS:
    register_backbone(
        _v.name,
        family=_v.family,
        pretrained_bands="rgb",
        min_input_size=_v.patch,
        description=_v.description,
    )(functools.partial(_build, _v))


# --- weights --------------------------------------------------------------------------------
_DINOV2_CITATION = (
    "Oquab et al., DINOv2: Learning Robust Visual Features without Supervision, TMLR 2024 "
    "(arXiv 2304.07193)."
)
_SSL4EO_CITATION = "Wang et al., SSL4EO-S12, IEEE GRSM 2023 (arXiv 2211.07044)."

# --- DINOv2 (timm hub copies of Meta's LVD-142M weights) --------------------------------
_DINOV2_REVISIONS = {
    "small": "0686a689726076609b20e80d263cb5aa7be945f5",
    "base": "1926dc569694559b394898d7ba5d88a775301036",
    "large": "7eb792a1b3aabe5d55f3da6ff9e2e084744e25f9",
    "giant": "fb3d2614d5b047317379c86c47cc4cfd2d0e79f9",
}
for _size, _rev in _DINOV2_REVISIONS.items():
    register_weights(
        WeightsSpec(
            name=f"dinov2_vit_{_size}_patch14.lvd142m",
            repo_id=f"timm/vit_{_size}_patch14_dinov2.lvd142m",
            filename="model.safetensors",
            revision=_rev,
            sensor="rgb",
            in_chans=3,
            license="apache-2.0",
            citation=_DINOV2_CITATION,
            default=True,
            notes=(
                "timm VisionTransformer keys (the backbone adds 'model.'), 518 px position "
                "grid. Revision: a commit shown on the repo's hub page at which "
                "model.safetensors exists. sha256 not published: unknown."
            ),
        )
    )

# --- SSL4EO-S12 ViT-S/16 (torchgeo re-host), Sentinel-2 L1C, 13 bands -----------------------
_SSL4EO_VIT_FILE = "vit_small_patch16_224_sentinel2_all_moco-67c9032d.pth"
register_weights(
    WeightsSpec(
        name="vit_small_patch16.sentinel2_all_moco",
        repo_id="torchgeo/vit_small_patch16_224_sentinel2_all_moco",
        filename=_SSL4EO_VIT_FILE,
        revision="1cb683f6c14739634cdfaaceb076529adf898c74",
        sha256="67c9032d",
        sensor="ssl4eo_s12_sentinel2_l1c",
        in_chans=13,
        license="CC-BY-4.0",
        citation=_SSL4EO_CITATION,
        default=True,
        notes=(
            "SSL4EO-S12 MoCo weights as torchgeo hosts them: plain timm keys; inputs are the "
            "13 L1C bands B01-B12 (with B8A, B10) divided by 10000. " + TORCHGEO_HASH_NOTE
        ),
    )
)
