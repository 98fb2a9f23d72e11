"""DOFA: a ViT whose patch embedding is generated from the bands' wavelengths.

DOFA (Dynamic One-For-All) replaces the fixed patch convolution of a ViT by
one whose kernel and bias are *generated* for every call from the input
bands' centre wavelengths, so a single set of weights embeds any band set,
band order or band count. The generator (:class:`DOFAPatchEmbed`) is built
with DOFA's own parameter names, so the published encoders load strictly:

``patch_embed.fclayer.w{1,2}.*``, ``patch_embed.weight_generator.{weight_tokens,
bias_token, fc_weight.*, fc_bias.*, transformer_encoder.layers.0.*}``, then
the timm ViT keys ``cls_token``, ``pos_embed``, ``blocks.*``.

Units: geofm takes wavelengths in **nanometres** everywhere. DOFA's API takes
micrometres and multiplies them by 1000 before the sine-cosine encoding; the
encoding itself therefore already works in nm, and geofm feeds nm to it
directly (results agree with DOFA up to the float32 rounding of DOFA's
``um * 1000`` product). Convert DOFA-style values with
``[w * 1000 for w in wavelengths_um]`` before passing them here.

References:
    Xiong et al., "Neural Plasticity-Inspired Multimodal Foundation Model for
    Earth Observation", arXiv 2403.15356; code https://github.com/zhu-xlab/DOFA.
    Published weights as re-hosted by torchgeo (``torchgeo/models/dofa.py``,
    https://github.com/microsoft/torchgeo), whose layout these modules follow.

Example:
    >>> import torch, geofm
    >>> m = geofm.create_backbone("dofa_vit_base_patch16", depth=1, wavelengths=[665.0, 842.0])
    >>> m.embed(torch.randn(1, 2, 32, 32)).shape
    torch.Size([1, 768])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal, cast

import timm
import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn

from geofm.backbones.base import Backbone, FeatureInfo, normalize_out_indices, register_backbone
from geofm.backbones.vit import default_out_indices, resample_pos_embed
from geofm.errors import ShapeError
from geofm.hub.load import LoadReport, StateDict
from geofm.sensors import get_sensor
from geofm.spectral import sincos_wavelength_embedding

__all__ = [
    "DOFABackbone",
    "DOFAPatchEmbed",
    "DOFAResidualMLP",
    "DOFAWeightGenerator",
]

OutputFormat = Literal["NCHW", "NHWC"]

# DOFA's constants (torchgeo ``DOFAEmbedding`` / ``TransformerWeightGenerator``).
_WAVE_DIM = 128  # size of the wavelength embedding ("dynamic_embed_dim" / "wv_planes")
_NUM_WEIGHT_TOKENS = 128  # learned tokens prepended to the wavelength tokens ("wt_num")
_GENERATOR_HEADS = 4
_SCALER = 0.01  # generated kernel and bias are multiplied by this
_PADDING = 1  # DOFA's patch convolution pads by one pixel


def _resolve_wavelengths(wavelengths: Sequence[float] | str) -> tuple[float, ...]:
    """Centre wavelengths in nm from a sequence or a registered sensor name."""
    if isinstance(wavelengths, str):
        return get_sensor(wavelengths).wavelengths
    waves = tuple(float(w) for w in wavelengths)
    if not waves or not all(w > 0 for w in waves):
        raise ValueError(
            f"wavelengths must be a non-empty sequence of positive values in nm, got {waves}. "
            "DOFA's own API takes micrometres: multiply those by 1000."
        )
    return waves


def _init_linear(module: nn.Module) -> None:
    """DOFA's init of the generator's linear layers: Xavier-uniform weights, biases 0.01."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.constant_(module.bias, 0.01)


class DOFAResidualMLP(nn.Module):
    """DOFA's fully-connected residual layer on the wavelength embeddings.

    Computes ``x + relu(w2(relu(w1(x))))``. Parameter names ``w1``, ``w2``
    match DOFA's ``FCResLayer``.

    Args:
        dim: Feature size (DOFA: 128).

    Shape:
        - Input: ``(C, dim)``.
        - Output: ``(C, dim)``.

    Example:
        >>> DOFAResidualMLP(dim=8)(torch.zeros(3, 8)).shape
        torch.Size([3, 8])
    """

    def __init__(self, *, dim: int = _WAVE_DIM) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, dim)
        self.w2 = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        """Residual two-layer ReLU MLP, ``(C, dim)`` to ``(C, dim)``."""
        return x + F.relu(self.w2(F.relu(self.w1(x))))


class DOFAWeightGenerator(nn.Module):
    """DOFA's transformer weight generator: wavelength tokens to kernel rows and a bias.

    The sequence ``[weight_tokens (T), wavelength tokens (C), bias_token (1)]``
    runs through a one-layer post-norm ``nn.TransformerEncoder`` (GELU, no
    dropout, feed-forward width 2048, unbatched). Each band's output token plus
    its input token goes through ``fc_weight`` (one kernel slice per band);
    the bias token's output goes through ``fc_bias``. No positional encoding
    is used, so the generated kernel follows each band when bands are reordered.
    Parameter names match DOFA's ``TransformerWeightGenerator``.

    Args:
        wave_dim: Size of the wavelength tokens (DOFA: 128).
        kernel_numel: Outputs of ``fc_weight`` per band (``patch * patch * D``).
        embed_dim: ViT width ``D`` (outputs of ``fc_bias``).
        num_weight_tokens: Learned tokens prepended to the sequence (DOFA: 128).
        num_heads: Attention heads of the encoder layer (DOFA: 4).

    Shape:
        - Input: ``(C, wave_dim)``.
        - Output: ``((C, kernel_numel), (embed_dim,))``.

    Example:
        >>> gen = DOFAWeightGenerator(wave_dim=8, kernel_numel=12, embed_dim=3, num_heads=2)
        >>> [t.shape for t in gen(torch.randn(5, 8))]
        [torch.Size([5, 12]), torch.Size([3])]
    """

    def __init__(
        self,
        *,
        wave_dim: int = _WAVE_DIM,
        kernel_numel: int,
        embed_dim: int,
        num_weight_tokens: int = _NUM_WEIGHT_TOKENS,
        num_heads: int = _GENERATOR_HEADS,
    ) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            d_model=wave_dim,
            nhead=num_heads,
            activation="gelu",
            norm_first=False,
            batch_first=False,
            dropout=0.0,
        )
        self.transformer_encoder = nn.TransformerEncoder(
            layer, num_layers=1, enable_nested_tensor=False
        )
        self.fc_weight = nn.Linear(wave_dim, kernel_numel)
        self.fc_bias = nn.Linear(wave_dim, embed_dim)
        self.weight_tokens = nn.Parameter(torch.empty(num_weight_tokens, wave_dim))
        self.bias_token = nn.Parameter(torch.empty(1, wave_dim))
        self.apply(_init_linear)
        nn.init.normal_(self.weight_tokens, std=0.02)
        nn.init.normal_(self.bias_token, std=0.02)

    def forward(self, waves: Tensor) -> tuple[Tensor, Tensor]:
        """Per-band kernel rows ``(C, kernel_numel)`` and the bias ``(embed_dim,)``."""
        num_tokens = self.weight_tokens.shape[0]
        seq = torch.cat([self.weight_tokens, waves, self.bias_token], dim=0)  # (T + C + 1, E)
        out = self.transformer_encoder(seq)  # (T + C + 1, E)
        weight = self.fc_weight(out[num_tokens:-1] + waves)  # (C, kernel_numel)
        bias = self.fc_bias(out[-1])  # (embed_dim,)
        return weight, bias


class DOFAPatchEmbed(nn.Module):
    """DOFA's wavelength-conditioned patch embedding (``Dynamic_MLP_OFA`` / ``DOFAEmbedding``).

    For the bands' centre wavelengths (nm) it computes a 128-d sine-cosine
    embedding (:func:`~geofm.spectral.sincos_wavelength_embedding`, periods
    up to ``2*pi * 10^4`` nm, DOFA's encoding), refines it with
    :class:`DOFAResidualMLP` (``fclayer``), generates a ``(D, C, p, p)`` kernel
    and a ``(D,)`` bias with :class:`DOFAWeightGenerator`
    (``weight_generator``), scales both by 0.01 and applies them as a
    convolution with stride ``p`` and DOFA's padding of one pixel. Summing
    over bands makes the output independent of the band order when the
    wavelengths are permuted with the bands.

    Wavelengths are in nm (geofm's unit); DOFA's own API takes micrometres
    and multiplies by 1000 inline, so pass ``1000 * um`` here.

    Also exposes the attributes timm's ``VisionTransformer`` reads from its
    ``patch_embed`` (``patch_size``, ``grid_size``, ``num_patches``,
    ``dynamic_feat_size``), so it can replace timm's ``PatchEmbed``.

    Args:
        embed_dim: ViT width ``D``.
        patch_size: Patch size ``p`` (kernel size and stride).
        wavelengths: Default centre wavelength of each band in nm, used when
            :meth:`forward` gets none.
        img_size: Native input size, which sets :attr:`grid_size`.
        wave_dim: Size of the wavelength embedding (DOFA: 128).
        output_fmt: ``"NCHW"`` maps, or ``"NHWC"`` (what timm's ViT expects
            with ``dynamic_img_size=True``).

    Shape:
        - Input: ``(N, C, H, W)`` with ``C`` wavelengths.
        - Output: ``(N, D, H', W')`` (``"NCHW"``) or ``(N, H', W', D)`` with
          ``H' = (H + 2 - p) // p + 1`` (``H / p`` for multiples of ``p``).

    Raises:
        ValueError: If a size is not positive or a wavelength is not positive.
        ShapeError: If the input's band count differs from the wavelengths'.

    Example:
        >>> embed = DOFAPatchEmbed(embed_dim=16, patch_size=4, wavelengths=[665.0, 842.0])
        >>> embed(torch.randn(2, 2, 16, 16)).shape
        torch.Size([2, 16, 4, 4])
        >>> embed(torch.randn(2, 3, 16, 16), wavelengths=[490.0, 560.0, 665.0]).shape
        torch.Size([2, 16, 4, 4])
    """

    wavelengths: Tensor | None

    def __init__(
        self,
        *,
        embed_dim: int,
        patch_size: int = 16,
        wavelengths: Sequence[float] | None = None,
        img_size: int = 224,
        wave_dim: int = _WAVE_DIM,
        output_fmt: OutputFormat = "NCHW",
    ) -> None:
        super().__init__()
        for label, value in (
            ("embed_dim", embed_dim),
            ("patch_size", patch_size),
            ("img_size", img_size),
            ("wave_dim", wave_dim),
        ):
            if value <= 0:
                raise ValueError(f"DOFAPatchEmbed needs a positive {label}, got {value}.")
        if wave_dim % 2:
            raise ValueError(f"DOFAPatchEmbed needs an even wave_dim, got {wave_dim}.")
        if output_fmt not in ("NCHW", "NHWC"):
            raise ValueError(f"output_fmt must be 'NCHW' or 'NHWC', got {output_fmt!r}.")
        self.embed_dim = embed_dim
        self.wave_dim = wave_dim
        self.output_fmt: OutputFormat = output_fmt
        self.scaler = _SCALER
        self.patch_size = (patch_size, patch_size)
        self.img_size = (img_size, img_size)
        self.grid_size = self.dynamic_feat_size(self.img_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.fclayer = DOFAResidualMLP(dim=wave_dim)
        self.weight_generator = DOFAWeightGenerator(
            wave_dim=wave_dim, kernel_numel=patch_size * patch_size * embed_dim, embed_dim=embed_dim
        )
        waves = None if wavelengths is None else self._to_tensor(wavelengths, torch.device("cpu"))
        # Not persistent: the band set is a call-time choice, not a weight of the checkpoint.
        self.register_buffer("wavelengths", waves, persistent=False)

    @staticmethod
    def _to_tensor(wavelengths: Tensor | Sequence[float], device: torch.device) -> Tensor:
        if isinstance(wavelengths, Tensor):
            waves = wavelengths.detach().to(device=device, dtype=torch.float32)
        else:
            waves = torch.tensor(
                [float(w) for w in wavelengths], dtype=torch.float32, device=device
            )
        if waves.ndim != 1 or waves.numel() == 0:
            raise ShapeError(
                "DOFAPatchEmbed expects wavelengths as a non-empty 1-D sequence in nm (one per "
                f"band), got shape {tuple(waves.shape)}."
            )
        if waves.device.type == "cpu" and not bool(torch.all(torch.isfinite(waves) & (waves > 0))):
            raise ValueError(
                f"DOFAPatchEmbed expects positive wavelengths in nm, got {waves.tolist()}. "
                "DOFA's own API takes micrometres: multiply those by 1000."
            )
        return waves

    def dynamic_feat_size(self, img_size: tuple[int, int]) -> tuple[int, int]:
        """Token grid ``(H', W')`` for an input of ``img_size`` (DOFA's padded convolution).

        Args:
            img_size: Input ``(H, W)``.

        Returns:
            ``((H + 2 - p) // p + 1, (W + 2 - p) // p + 1)``.
        """
        p = self.patch_size[0]
        return (
            (img_size[0] + 2 * _PADDING - p) // p + 1,
            (img_size[1] + 2 * _PADDING - p) // p + 1,
        )

    def generate_kernel(self, wavelengths: Tensor | Sequence[float]) -> tuple[Tensor, Tensor]:
        """Kernel ``(D, C, p, p)`` and bias ``(D,)`` for bands at ``wavelengths`` (nm), scaled.

        Args:
            wavelengths: Centre wavelength of each band in nm.

        Returns:
            ``(kernel, bias)``, both already multiplied by 0.01.

        Example:
            >>> embed = DOFAPatchEmbed(embed_dim=8, patch_size=2)
            >>> [t.shape for t in embed.generate_kernel([842.0, 1610.0, 2190.0])]
            [torch.Size([8, 3, 2, 2]), torch.Size([8])]
        """
        device = self.weight_generator.weight_tokens.device
        waves = self._to_tensor(wavelengths, device)
        p = self.patch_size[0]
        tokens = sincos_wavelength_embedding(waves, self.wave_dim)  # (C, E)
        tokens = self.fclayer(tokens)  # (C, E)
        weight, bias = self.weight_generator(tokens)  # (C, p*p*D), (D,)
        kernel = weight.view(waves.numel(), p, p, self.embed_dim)  # (C, p, p, D)
        kernel = kernel.permute(3, 0, 1, 2)  # (D, C, p, p)
        return kernel * self.scaler, bias * self.scaler

    def forward(self, x: Tensor, wavelengths: Tensor | Sequence[float] | None = None) -> Tensor:
        """Embed ``x`` with a kernel generated for ``wavelengths`` (nm; default: the stored ones).

        Args:
            x: Input ``(N, C, H, W)``.
            wavelengths: Centre wavelength of each band in nm, or ``None`` for
                the defaults given at construction / by the backbone.

        Returns:
            Patch embeddings in :attr:`output_fmt`.

        Raises:
            ValueError: If no wavelengths are known.
            ShapeError: If the band count differs from the number of wavelengths.
        """
        if wavelengths is None:
            if self.wavelengths is None:
                raise ValueError(
                    "DOFAPatchEmbed has no wavelengths: pass wavelengths= (nm, one per band) "
                    "or build it with default wavelengths."
                )
            wavelengths = self.wavelengths
        kernel, bias = self.generate_kernel(wavelengths)
        if x.ndim != 4 or x.shape[1] != kernel.shape[1]:
            raise ShapeError(
                f"DOFAPatchEmbed got input shape {tuple(x.shape)} but {kernel.shape[1]} "
                "wavelengths. Pass a (N, C, H, W) tensor with one wavelength per band."
            )
        p = self.patch_size[0]
        out = F.conv2d(x, kernel, bias, stride=p, padding=_PADDING)  # (N, D, H', W')
        if self.output_fmt == "NHWC":
            return out.permute(0, 2, 3, 1)  # (N, H', W', D)
        return out


class DOFABackbone(Backbone):
    """DOFA encoder (timm ViT with :class:`DOFAPatchEmbed`) behind the :class:`Backbone` contract.

    The published DOFA encoders have no final token norm (torchgeo's
    ``DOFA`` pools the patch tokens and applies a freshly initialised
    ``fc_norm``), so :meth:`forward` returns the raw block outputs and
    :meth:`embed` returns the mean patch token through a LayerNorm without
    affine parameters (eps 1e-6), which equals torchgeo's ``DOFA`` with the
    published weights loaded.

    Args:
        model: A timm ``VisionTransformer`` (``num_classes=0``,
            ``dynamic_img_size=True``) whose ``patch_embed`` is a
            :class:`DOFAPatchEmbed` with ``output_fmt="NHWC"`` and default
            wavelengths.
        out_indices: Blocks whose outputs :meth:`forward` returns (negative
            indices count from the end). Default: four evenly spaced blocks.

    Raises:
        ValueError: If the patch embedding is not a :class:`DOFAPatchEmbed`
            with default wavelengths, or ``out_indices`` is out of range.

    Shape:
        - Input: ``(N, C, H, W)``, ``C`` the number of wavelengths, ``H`` and
          ``W`` multiples of 16.
        - ``forward``: list of ``(N, D, H / 16, W / 16)``.
        - ``embed``: ``(N, D)``.

    Example:
        >>> import torch, geofm
        >>> m = geofm.create_backbone("dofa_vit_base_patch16", depth=2, wavelengths="rgb")
        >>> [f.shape for f in m(torch.randn(1, 3, 32, 48))]
        [torch.Size([1, 768, 2, 3]), torch.Size([1, 768, 2, 3])]
    """

    key_prefix: ClassVar[str] = "model."

    def __init__(
        self, model: VisionTransformer, *, out_indices: Sequence[int] | None = None
    ) -> None:
        super().__init__()
        embed: Any = model.patch_embed
        if not isinstance(embed, DOFAPatchEmbed) or embed.wavelengths is None:
            raise ValueError(
                "DOFABackbone needs a timm ViT whose patch_embed is a DOFAPatchEmbed with "
                "default wavelengths. Build it with create_backbone('dofa_vit_base_patch16')."
            )
        self.model = model
        depth = len(model.blocks)
        self.out_indices = normalize_out_indices(
            out_indices, depth, default=default_out_indices(depth), what=f"ViT with {depth} blocks"
        )
        self.embed_dim = int(model.embed_dim)
        self.patch_size = embed.patch_size[0]
        self.size_divisor = self.patch_size
        self.in_chans = int(embed.wavelengths.numel())
        self.feature_info = [
            FeatureInfo(self.embed_dim, self.patch_size, f"blocks.{i}") for i in self.out_indices
        ]

    @property
    def patch_embed(self) -> DOFAPatchEmbed:
        """The wavelength-conditioned patch embedding."""
        return cast(DOFAPatchEmbed, self.model.patch_embed)

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """Block outputs at :attr:`out_indices` as ``(N, D, H / 16, W / 16)`` grids."""
        maps = self.model.forward_intermediates(
            x,
            indices=list(self.out_indices),
            norm=False,
            stop_early=True,
            output_fmt="NCHW",
            intermediates_only=True,
        )
        return cast(list[Tensor], maps)

    def embed(self, x: Tensor) -> Tensor:
        """Mean patch token through a non-affine LayerNorm (DOFA's global pool), ``(N, D)``.

        Args:
            x: Input ``(N, C, H, W)``.

        Returns:
            ``(N, D)`` embeddings.
        """
        self.check_input(x)
        tokens = self.model.forward_features(x)  # (N, 1 + L, D), no final norm
        pooled = tokens[:, self.model.num_prefix_tokens :].mean(dim=1)  # (N, D)
        return F.layer_norm(pooled, (self.embed_dim,), eps=1e-6)

    def set_wavelengths(self, wavelengths: Sequence[float] | str) -> None:
        """Switch to another band set (in place); the kernel is regenerated on the next call.

        Args:
            wavelengths: Centre wavelength of each input band in nm, or a
                registered sensor name.

        Raises:
            ValueError: If a wavelength is not positive.

        Example:
            >>> import torch, geofm
            >>> m = geofm.create_backbone("dofa_vit_base_patch16", depth=1)
            >>> m.set_wavelengths([842.0, 1610.0])
            >>> m.embed(torch.randn(1, 2, 32, 32)).shape
            torch.Size([1, 768])
        """
        waves = _resolve_wavelengths(wavelengths)
        embed = self.patch_embed
        device = embed.weight_generator.weight_tokens.device
        embed.wavelengths = torch.tensor(waves, dtype=torch.float32, device=device)  # (C,)
        self.in_chans = len(waves)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Checkpoint every transformer block in backward (timm's mechanism).

        Args:
            enable: Turn checkpointing on or off.
        """
        self.model.set_grad_checkpointing(enable)

    def adapt_state_dict(self, state_dict: StateDict, report: LoadReport) -> StateDict:
        """Accept DOFA-layout keys: add ``model.``, resample the position grid.

        Args:
            state_dict: Checkpoint tensors (DOFA / torchgeo layout after the
                ``dofa`` converter, or this module's).
            report: Report to append notes to.

        Returns:
            The state dict in this module's layout.
        """
        state_dict = super().adapt_state_dict(state_dict, report)
        return resample_pos_embed(state_dict, "model.pos_embed", self.model, report)


def _register(name: str, timm_name: str, description: str) -> None:
    def builder(
        *,
        wavelengths: Sequence[float] | str = "rgb",
        in_chans: int | None = None,
        img_size: int = 224,
        out_indices: Sequence[int] | None = None,
        depth: int | None = None,
        drop_path_rate: float = 0.0,
    ) -> DOFABackbone:
        waves = _resolve_wavelengths(wavelengths)
        if in_chans is not None and in_chans != len(waves):
            raise ShapeError(
                f"in_chans={in_chans} but {len(waves)} wavelengths were given. DOFA needs one "
                "wavelength per band: pass wavelengths= (nm or a sensor name) for your bands."
            )
        extra: dict[str, Any] = {}
        if depth is not None:
            if depth <= 0:
                raise ValueError(f"depth must be positive, got {depth}.")
            extra["depth"] = depth
        vit = cast(
            VisionTransformer,
            timm.create_model(
                timm_name,
                pretrained=False,
                num_classes=0,
                img_size=img_size,
                dynamic_img_size=True,
                final_norm=False,  # DOFA's encoder has no final token norm
                drop_path_rate=drop_path_rate,
                **extra,
            ),
        )
        # Replaces timm's PatchEmbed as a whole, so the keys are DOFA's ``patch_embed.*``.
        vit.patch_embed = DOFAPatchEmbed(
            embed_dim=int(vit.embed_dim),
            patch_size=16,
            wavelengths=waves,
            img_size=img_size,
            output_fmt="NHWC",
        )
        return DOFABackbone(vit, out_indices=out_indices)

    builder.__name__ = name
    builder.__doc__ = (
        f"Build ``{name}``: {description}\n\n"
        "Args: ``wavelengths`` (nm, or a sensor name; default ``'rgb'``) fix the default "
        "band set, ``in_chans`` must match it, ``depth`` overrides the block count, "
        "``img_size`` sets the stored position grid; see :class:`DOFABackbone`.\n"
    )
    register_backbone(
        name,
        family="dofa",
        pretrained_bands=None,
        min_input_size=16,
        description=description,
    )(builder)


_register(
    "dofa_vit_base_patch16",
    "vit_base_patch16_224",
    "DOFA ViT-B/16 with a wavelength-generated patch embedding, any bands, 224 px grid.",
)
_register(
    "dofa_vit_large_patch16",
    "vit_large_patch16_224",
    "DOFA ViT-L/16 with a wavelength-generated patch embedding, any bands, 224 px grid.",
)
