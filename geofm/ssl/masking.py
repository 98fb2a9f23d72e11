"""MAE-style patching, random token masking and the fixed 2-D sin-cos position embedding.

References:
    - He et al. "Masked Autoencoders Are Scalable Vision Learners." CVPR 2022.
      https://arxiv.org/abs/2111.06377; code: https://github.com/facebookresearch/mae
      (``models_mae.py``: ``patchify``, ``random_masking``; ``util/pos_embed.py``).
    - SpectralEarth MAE (mask ratio 0.9, CLS never masked):
      https://github.com/AABNassim/spectral_earth (``src/models/mae_module.py``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from einops import rearrange
from torch import Tensor

from geofm.errors import ShapeError

__all__ = [
    "RandomMasking",
    "patchify",
    "random_masking",
    "sincos_2d_position_embedding",
    "unpatchify",
]


def _check_images(images: Tensor, patch_size: int) -> None:
    if images.ndim != 4 or images.shape[-2] % patch_size or images.shape[-1] % patch_size:
        raise ShapeError(
            f"patchify expects images (N, C, H, W) with H and W multiples of patch_size="
            f"{patch_size}, got shape {tuple(images.shape)}. Crop or pad the images first."
        )


def _sincos_1d(dim: int, positions: Tensor) -> Tensor:
    """``[sin(p * w), cos(p * w)]`` with ``w_k = 10000 ** (-2k / dim)``; ``(L,) -> (L, dim)``."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))  # (dim/2,)
    angles = positions.to(torch.float64)[:, None] * omega[None, :]  # (L, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1)  # (L, dim)


def patchify(images: Tensor, *, patch_size: int) -> Tensor:
    """Cut images into flattened, non-overlapping square patches (row-major).

    Each patch vector is ordered ``(row in patch, column in patch, channel)``,
    as in the MAE code, lightly and SpectralEarth.

    Args:
        images: Images or band stacks.
        patch_size: Patch side ``p`` in pixels; must divide ``H`` and ``W``.

    Returns:
        Patches, ``L = (H / p) * (W / p)``.

    Shape:
        - Input: ``(N, C, H, W)``.
        - Output: ``(N, L, p * p * C)``.

    Raises:
        ShapeError: If the input is not 4-D or ``p`` does not divide ``H`` and ``W``.

    Example:
        >>> patchify(torch.zeros(2, 3, 8, 12), patch_size=4).shape
        torch.Size([2, 6, 48])
    """
    _check_images(images, patch_size)
    # (N, C, H, W) -> (N, L, p * p * C)
    return rearrange(images, "n c (h p) (w q) -> n (h w) (p q c)", p=patch_size, q=patch_size)


def unpatchify(patches: Tensor, *, patch_size: int, image_size: tuple[int, int]) -> Tensor:
    """Reassemble images from :func:`patchify` output (its exact inverse).

    Args:
        patches: Flattened patches.
        patch_size: Patch side ``p`` used by :func:`patchify`.
        image_size: ``(H, W)`` of the images, multiples of ``p``.

    Returns:
        Images; ``C`` is inferred as ``P / p**2``.

    Shape:
        - Input: ``(N, L, P)`` with ``L = (H / p) * (W / p)`` and ``P = p * p * C``.
        - Output: ``(N, C, H, W)``.

    Raises:
        ShapeError: If ``L`` or ``P`` does not match ``image_size`` and ``patch_size``.

    Example:
        >>> images = torch.randn(2, 3, 8, 12)
        >>> patches = patchify(images, patch_size=4)
        >>> torch.equal(unpatchify(patches, patch_size=4, image_size=(8, 12)), images)
        True
    """
    height, width = image_size
    grid_h, grid_w = height // patch_size, width // patch_size
    if (
        patches.ndim != 3
        or height % patch_size
        or width % patch_size
        or patches.shape[1] != grid_h * grid_w
        or patches.shape[2] % (patch_size * patch_size)
    ):
        raise ShapeError(
            f"unpatchify got patches of shape {tuple(patches.shape)} for image_size={image_size} "
            f"and patch_size={patch_size}; expected (N, {grid_h * grid_w}, p * p * C) with H, W "
            "multiples of patch_size. Pass the image_size the patches were cut from."
        )
    # (N, L, p * p * C) -> (N, C, H, W)
    return rearrange(
        patches, "n (h w) (p q c) -> n c (h p) (w q)", h=grid_h, p=patch_size, q=patch_size
    )


def random_masking(
    tokens: Tensor,
    *,
    mask_ratio: float,
    num_prefix_tokens: int = 1,
    generator: torch.Generator | None = None,
) -> RandomMasking:
    """Keep a random subset of the patch tokens of each sample (MAE masking).

    The ``num_prefix_tokens`` leading tokens (CLS, registers) are always kept.
    Of the ``L`` patch tokens, ``K = int(L * (1 - mask_ratio))`` are kept,
    chosen uniformly at random per sample (SpectralEarth: ``L=1024``, ratio
    0.9, ``K=102``).

    Args:
        tokens: Token sequence with prefix tokens first (e.g. a timm ViT's
            output of ``_pos_embed``).
        mask_ratio: Fraction of patch tokens to remove, in ``[0, 1)``.
        num_prefix_tokens: Number ``P`` of leading tokens that are never masked.
        generator: Optional RNG for reproducible masks.

    Returns:
        :class:`RandomMasking` with the kept tokens, their positions and the patch mask.

    Shape:
        - Input: ``(N, P + L, D)``.
        - Output: tokens ``(N, P + K, D)``, keep_index ``(N, P + K)``, mask ``(N, L)``.

    Raises:
        ValueError: If ``mask_ratio`` is not in ``[0, 1)`` or would keep no patch.
        ShapeError: If ``tokens`` is not 3-D or has no patch token.

    Example:
        >>> out = random_masking(torch.randn(2, 1 + 16, 8), mask_ratio=0.75)
        >>> out.tokens.shape, int(out.mask.sum()), out.keep_index[:, 0].tolist()
        (torch.Size([2, 5, 8]), 24, [0, 0])
    """
    if tokens.ndim != 3 or tokens.shape[1] <= num_prefix_tokens or num_prefix_tokens < 0:
        raise ShapeError(
            f"random_masking expects tokens (N, P + L, D) with P={num_prefix_tokens} prefix "
            f"tokens and L >= 1 patch tokens, got shape {tuple(tokens.shape)}."
        )
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"random_masking got mask_ratio={mask_ratio}; expected a value in [0, 1).")
    n, length, dim = tokens.shape
    num_patches = length - num_prefix_tokens
    num_keep = int(num_patches * (1.0 - mask_ratio))
    if num_keep == 0:
        raise ValueError(
            f"random_masking with mask_ratio={mask_ratio} keeps no patch out of {num_patches}. "
            "Lower mask_ratio or use more patches."
        )
    noise = torch.rand(n, num_patches, device=tokens.device, generator=generator)  # (N, L)
    keep_patches = noise.argsort(dim=1)[:, :num_keep] + num_prefix_tokens  # (N, K)
    prefix = torch.arange(num_prefix_tokens, device=tokens.device).expand(n, -1)  # (N, P)
    keep_index = torch.cat([prefix, keep_patches], dim=1)  # (N, P + K)
    kept = torch.gather(tokens, 1, keep_index[:, :, None].expand(-1, -1, dim))  # (N, P + K, D)
    mask = torch.ones(n, num_patches, dtype=torch.bool, device=tokens.device)  # (N, L)
    mask.scatter_(1, keep_patches - num_prefix_tokens, False)
    return RandomMasking(tokens=kept, keep_index=keep_index, mask=mask)


def sincos_2d_position_embedding(
    dim: int, grid_size: tuple[int, int], *, num_prefix_tokens: int = 0
) -> Tensor:
    """Return MAE's fixed 2-D sine-cosine position embedding.

    The first half of the channels encodes the column, the second half the
    row, each as ``[sin(x * w), cos(x * w)]`` with ``w_k = 10000 ** (-4k / dim)``;
    prefix tokens get zeros. Tokens are ordered row-major, like :func:`patchify`.

    Args:
        dim: Embedding dimension, a multiple of 4.
        grid_size: ``(H / p, W / p)`` patch grid.
        num_prefix_tokens: Zero rows prepended for CLS / register tokens.

    Returns:
        float32 embedding.

    Shape:
        - Output: ``(num_prefix_tokens + H/p * W/p, dim)``.

    Raises:
        ValueError: If ``dim`` is not a multiple of 4.

    Example:
        >>> sincos_2d_position_embedding(8, (2, 3), num_prefix_tokens=1).shape
        torch.Size([7, 8])
    """
    if dim % 4:
        raise ValueError(
            f"sincos_2d_position_embedding got dim={dim}; expected a multiple of 4 "
            "(sin and cos for rows and columns)."
        )
    rows, cols = torch.meshgrid(
        torch.arange(grid_size[0]), torch.arange(grid_size[1]), indexing="ij"
    )  # (H/p, W/p) each
    embedding = torch.cat(
        [_sincos_1d(dim // 2, cols.flatten()), _sincos_1d(dim // 2, rows.flatten())], dim=1
    )  # (L, dim)
    prefix = torch.zeros(num_prefix_tokens, dim, dtype=embedding.dtype)
    return torch.cat([prefix, embedding], dim=0).float()  # (P + L, dim)


class RandomMasking(NamedTuple):
    """Output of :func:`random_masking`.

    Attributes:
        tokens: ``(N, P + K, D)`` prefix tokens followed by the ``K`` kept patch tokens.
        keep_index: ``(N, P + K)`` positions of those tokens in the full sequence.
        mask: ``(N, L)`` boolean, ``True`` for masked (removed) patches.

    Example:
        >>> out = random_masking(torch.zeros(1, 5, 2), mask_ratio=0.5)
        >>> out.tokens.shape, out.keep_index.shape, out.mask.shape
        (torch.Size([1, 3, 2]), torch.Size([1, 3]), torch.Size([1, 4]))
    """

    tokens: Tensor
    keep_index: Tensor
    mask: Tensor
