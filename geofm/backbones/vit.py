"""Vision Transformer backbones: DINOv2 ViT-S/B/L/g (patch 14) and ViT-S/B/L/H (patch 16).

Built on timm's ``VisionTransformer`` (no re-implementation of the
transformer): position embeddings are interpolated at run time for any input
size that is a multiple of the patch size, and intermediate block outputs are
returned as NCHW grids for dense tasks.

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

from collections.abc import Sequence
from typing import Any, ClassVar, Literal, cast

import timm
import torch
from timm.layers.pos_embed import resample_abs_pos_embed
from timm.models.vision_transformer import VisionTransformer

from geofm.backbones.base import Backbone, FeatureInfo, normalize_out_indices, register_backbone
from geofm.errors import ShapeError
from geofm.hub.load import LoadReport, StateDict
from geofm.sensors import get_sensor
from geofm.spectral import WavelengthPatchEmbed

__all__ = ["ViTBackbone", "default_out_indices", "resample_pos_embed"]

Pool = Literal["cls", "mean"]


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


def _resolve_wavelengths(wavelengths: Sequence[float] | str) -> tuple[float, ...]:
    """Centre wavelengths in nm from a sequence or a registered sensor name."""
    if isinstance(wavelengths, str):
        return get_sensor(wavelengths).wavelengths
    waves = tuple(float(w) for w in wavelengths)
    if not waves or not all(w > 0 for w in waves):
        raise ValueError(
            f"wavelengths must be a non-empty sequence of positive values in nm, got {waves}."
        )
    return waves


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
        >>> from geofm.hub.load import LoadReport
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


class ViTBackbone(Backbone):
    """A timm Vision Transformer behind the geofm :class:`Backbone` contract.

    Args:
        model: A timm ``VisionTransformer`` built with ``num_classes=0`` and
            ``dynamic_img_size=True``.
        out_indices: Blocks whose outputs :meth:`forward` returns (negative
            indices count from the end). Default: four evenly spaced blocks.
        pool: ``"cls"`` (class token after the final norm) or ``"mean"``
            (mean of the patch tokens after the final norm) for :meth:`embed`.
        norm: Apply the final LayerNorm to the intermediate maps (DINOv2's and
            SpectralEarth's ``get_intermediate_layers(norm=True)`` convention).

    Shape:
        - Input: ``(N, C, H, W)``, ``H`` and ``W`` multiples of the patch size ``p``.
        - ``forward``: list of ``(N, D, H / p, W / p)``.
        - ``embed``: ``(N, D)``.

    Example:
        >>> import torch, geofm
        >>> m = geofm.create_backbone("vit_small_patch16", depth=2, out_indices=[-1])
        >>> m(torch.randn(2, 3, 48, 32))[0].shape
        torch.Size([2, 384, 3, 2])
    """

    stem_weight_key: ClassVar[str] = "model.patch_embed.proj.weight"
    key_prefix: ClassVar[str] = "model."

    def __init__(
        self,
        model: VisionTransformer,
        *,
        out_indices: Sequence[int] | None = None,
        pool: Pool = "cls",
        norm: bool = True,
    ) -> None:
        super().__init__()
        if pool not in ("cls", "mean"):
            raise ValueError(f"pool must be 'cls' or 'mean', got {pool!r}.")
        if pool == "cls" and not model.has_class_token:
            raise ValueError(
                "pool='cls' needs a class token; this model has none. Use pool='mean'."
            )
        self.model = model
        depth = len(model.blocks)
        self.out_indices = normalize_out_indices(
            out_indices, depth, default=default_out_indices(depth), what=f"ViT with {depth} blocks"
        )
        self.pool: Pool = pool
        self.norm = norm
        self.embed_dim = int(model.embed_dim)
        patch_embed: Any = model.patch_embed
        self.patch_size = int(patch_embed.patch_size[0])
        self.size_divisor = self.patch_size
        proj = patch_embed.proj
        if isinstance(proj, WavelengthPatchEmbed):
            if proj.wavelengths is None:
                raise ValueError("A WavelengthPatchEmbed stem needs default wavelengths.")
            self.in_chans = int(proj.wavelengths.numel())
        else:
            self.in_chans = int(proj.in_channels)
        self.feature_info = [
            FeatureInfo(self.embed_dim, self.patch_size, f"blocks.{i}") for i in self.out_indices
        ]

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Block outputs at :attr:`out_indices` as ``(N, D, H / p, W / p)`` grids."""
        maps = self.model.forward_intermediates(
            x,
            indices=list(self.out_indices),
            norm=self.norm,
            stop_early=True,
            output_fmt="NCHW",
            intermediates_only=True,
        )
        return cast(list[torch.Tensor], maps)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Class token (``pool="cls"``) or mean patch token after the final norm, ``(N, D)``.

        Args:
            x: Input ``(N, C, H, W)``.

        Returns:
            ``(N, D)`` embeddings.
        """
        self.check_input(x)
        tokens = self.model.forward_features(x)  # (N, L, D), final norm applied
        if self.pool == "cls":
            return tokens[:, 0]
        return tokens[:, self.model.num_prefix_tokens :].mean(dim=1)

    @property
    def wavelength_embed(self) -> WavelengthPatchEmbed | None:
        """The wavelength-conditioned stem, or ``None`` for a fixed-band ViT."""
        proj = cast(Any, self.model.patch_embed).proj
        return proj if isinstance(proj, WavelengthPatchEmbed) else None

    def set_wavelengths(self, wavelengths: Sequence[float] | str) -> None:
        """Switch a wavelength-conditioned ViT to another band set (in place).

        The kernels are regenerated from the new wavelengths on the next call;
        no weight changes, so one backbone serves any band set, order or count.

        Args:
            wavelengths: Centre wavelength of each input band in nm, or a
                registered sensor name.

        Raises:
            ValueError: If the backbone was built without ``wavelengths=``, or a
                wavelength is not positive.

        Example:
            >>> import torch, geofm
            >>> m = geofm.create_backbone("vit_small_patch16", depth=1, wavelengths="rgb")
            >>> m.set_wavelengths([842.0, 1610.0])
            >>> m.embed(torch.randn(1, 2, 32, 32)).shape
            torch.Size([1, 384])
        """
        embed = self.wavelength_embed
        if embed is None or embed.wavelengths is None:
            raise ValueError(
                "set_wavelengths needs a wavelength-conditioned ViT. Build it with "
                "create_backbone(name, wavelengths=[...]) or a sensor name."
            )
        waves = _resolve_wavelengths(wavelengths)
        embed.wavelengths = torch.tensor(
            waves, dtype=torch.float32, device=embed.wavelengths.device
        )  # (C,)
        self.in_chans = len(waves)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Checkpoint every transformer block in backward (timm's mechanism).

        Args:
            enable: Turn checkpointing on or off.
        """
        self.model.set_grad_checkpointing(enable)

    def adapt_state_dict(self, state_dict: StateDict, report: LoadReport) -> StateDict:
        """Accept timm-layout checkpoints: add ``model.``, drop the classifier, resample positions.

        Args:
            state_dict: Checkpoint tensors (timm ``VisionTransformer`` layout or this module's).
            report: Report to append notes to.

        Returns:
            The state dict in this module's layout.
        """
        state_dict = super().adapt_state_dict(state_dict, report)
        state_dict = self._drop_keys(
            state_dict, ("model.head.",), "classifier head; the backbone has none", report
        )
        return resample_pos_embed(state_dict, "model.pos_embed", self.model, report)


def _build(
    timm_name: str,
    *,
    in_chans: int | None,
    wavelengths: Sequence[float] | str | None,
    img_size: int,
    out_indices: Sequence[int] | None,
    depth: int | None,
    pool: Pool,
    norm: bool,
    drop_path_rate: float,
    **overrides: Any,
) -> ViTBackbone:
    kwargs: dict[str, Any] = dict(overrides)
    waves = None if wavelengths is None else _resolve_wavelengths(wavelengths)
    if waves is not None:
        if in_chans is not None and in_chans != len(waves):
            raise ShapeError(
                f"in_chans={in_chans} but {len(waves)} wavelengths were given. Pass one "
                "wavelength per band, or leave in_chans out."
            )
        in_chans = len(waves)
    if depth is not None:
        if depth <= 0:
            raise ValueError(f"depth must be positive, got {depth}.")
        kwargs["depth"] = depth
    model = timm.create_model(
        timm_name,
        pretrained=False,
        num_classes=0,
        in_chans=3 if in_chans is None else in_chans,
        img_size=img_size,
        dynamic_img_size=True,
        drop_path_rate=drop_path_rate,
        **kwargs,
    )
    vit = cast(VisionTransformer, model)
    if waves is not None:
        # Only the projection changes: timm's PatchEmbed keeps flattening,
        # dynamic sizing and norm, so the rest of the ViT is untouched.
        patch_embed: Any = vit.patch_embed
        patch_embed.proj = WavelengthPatchEmbed(
            embed_dim=int(vit.embed_dim),
            patch_size=int(patch_embed.patch_size[0]),
            wavelengths=waves,
        )
    return ViTBackbone(vit, out_indices=out_indices, pool=pool, norm=norm)


def _register_family(
    name: str,
    timm_name: str,
    *,
    family: str,
    patch: int,
    img_size: int,
    description: str,
    **overrides: Any,
) -> None:
    def builder(
        *,
        in_chans: int | None = None,
        wavelengths: Sequence[float] | str | None = None,
        img_size: int = img_size,
        out_indices: Sequence[int] | None = None,
        depth: int | None = None,
        pool: Pool = "cls",
        norm: bool = True,
        drop_path_rate: float = 0.0,
    ) -> ViTBackbone:
        return _build(
            timm_name,
            in_chans=in_chans,
            wavelengths=wavelengths,
            img_size=img_size,
            out_indices=out_indices,
            depth=depth,
            pool=pool,
            norm=norm,
            drop_path_rate=drop_path_rate,
            **overrides,
        )

    builder.__name__ = name
    builder.__doc__ = (
        f"Build ``{name}``: {description}\n\n"
        "Args: see :class:`ViTBackbone`; ``depth`` overrides the block count, "
        "``img_size`` sets the stored position grid, ``wavelengths`` (nm, or a sensor "
        "name) swaps the patch projection for a :class:`~geofm.spectral.WavelengthPatchEmbed`.\n"
    )
    register_backbone(
        name,
        family=family,
        pretrained_bands="rgb",
        min_input_size=patch,
        description=description,
    )(builder)


for _size in ("small", "base", "large", "giant"):
    _register_family(
        f"dinov2_vit_{_size}_patch14",
        f"vit_{_size}_patch14_dinov2",
        family="dinov2",
        patch=14,
        img_size=518,
        description=(
            f"DINOv2 ViT-{_size[0].upper()}/14 (timm vit_{_size}_patch14_dinov2), 518 px grid."
        ),
    )
for _size, _timm in (
    ("small", "vit_small_patch16_224"),
    ("base", "vit_base_patch16_224"),
    ("large", "vit_large_patch16_224"),
    ("huge", "vit_huge_patch14_224"),
):
    _register_family(
        f"vit_{_size}_patch16",
        _timm,
        family="vit",
        patch=16,
        img_size=224,
        description=f"ViT-{_size[0].upper()}/16 (timm), 224 px native grid.",
        **({"patch_size": 16} if _size == "huge" else {}),
    )
