"""MAE decoder built from timm ``Block`` modules, for the tokens of any timm-style ViT.

References:
    - He et al. "Masked Autoencoders Are Scalable Vision Learners." CVPR 2022.
      https://arxiv.org/abs/2111.06377; code: https://github.com/facebookresearch/mae
      (``models_mae.py``, decoder).
    - SpectralEarth MAE decoder (512-d, 1 block, 16 heads, 4 x 4 x 202 outputs):
      https://github.com/AABNassim/spectral_earth (``src/models/mae_module.py``).
    - lightly ``MAEDecoderTIMM`` (``lightly/models/modules/masked_autoencoder_timm.py``).
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import Tensor, nn

from geofm.errors import ShapeError
from geofm.ssl.masking import sincos_2d_position_embedding

__all__ = ["MAEDecoder"]


class MAEDecoder(nn.Module):
    """MAE decoder: embed kept tokens, insert mask tokens, transformer, predict pixels.

    Works with the tokens of any timm-style ViT (prefix tokens first): pass
    the encoder's output for the kept tokens and their positions from
    :func:`random_masking`. The decoder adds a fixed 2-D sin-cos position
    embedding (zeros for prefix tokens), runs ``depth`` timm ``Block`` s and a
    LayerNorm (eps 1e-6), and predicts the ``p * p * C`` values of every patch
    (ordered like :func:`patchify`). Defaults follow SpectralEarth (512-d,
    1 block, 16 heads); MAE uses depth 8. Linear layers use Xavier-uniform
    init, the mask token N(0, 0.02).

    Args:
        embed_dim: Encoder token dimension (``vit.embed_dim``).
        num_patches: Patch grid ``(H / p, W / p)`` (``vit.patch_embed.grid_size``),
            or the number of patches of a square grid.
        patch_size: Patch side ``p`` in pixels.
        in_chans: Channels ``C`` to reconstruct (SpectralEarth: 202 bands).
        decoder_dim: Decoder width (512), a multiple of 4 and of ``num_heads``.
        depth: Number of transformer blocks (1).
        num_heads: Attention heads (16).
        mlp_ratio: MLP width / decoder width (4).
        num_prefix_tokens: Leading CLS / register tokens in the input (1).

    Shape:
        - tokens: ``(N, P + K, embed_dim)``.
        - keep_index: ``(N, P + K)`` positions in the full ``P + L`` sequence.
        - Output: ``(N, L, p * p * in_chans)``, predictions for all ``L`` patches.

    Raises:
        ValueError: If ``num_patches`` is an int that is not a square number,
            or ``decoder_dim`` is not a multiple of 4.

    Example:
        >>> from geofm.ssl import random_masking
        >>> decoder = MAEDecoder(embed_dim=32, num_patches=(4, 4), patch_size=2, in_chans=3,
        ...                      decoder_dim=16, num_heads=2)
        >>> masked = random_masking(torch.randn(2, 1 + 16, 32), mask_ratio=0.75)
        >>> decoder(masked.tokens, masked.keep_index).shape
        torch.Size([2, 16, 12])
    """

    position_embedding: Tensor

    def __init__(
        self,
        *,
        embed_dim: int,
        num_patches: int | tuple[int, int],
        patch_size: int,
        in_chans: int,
        decoder_dim: int = 512,
        depth: int = 1,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        num_prefix_tokens: int = 1,
    ) -> None:
        super().__init__()
        if isinstance(num_patches, int):
            side = math.isqrt(num_patches)
            if side * side != num_patches:
                raise ValueError(
                    f"MAEDecoder got num_patches={num_patches}, which is not a square grid. "
                    "Pass the grid as a tuple, e.g. num_patches=vit.patch_embed.grid_size."
                )
            num_patches = (side, side)
        self.grid_size = num_patches
        self.num_prefix_tokens = num_prefix_tokens
        self.embed = nn.Linear(embed_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.register_buffer(
            "position_embedding",
            sincos_2d_position_embedding(
                decoder_dim, num_patches, num_prefix_tokens=num_prefix_tokens
            )[None],  # (1, P + L, decoder_dim)
            persistent=False,
        )
        # timm is imported here, not at module level: it pulls in huggingface_hub,
        # which `import geofm.ssl` must not load.
        from timm.layers.norm import LayerNorm
        from timm.models.vision_transformer import Block

        self.blocks = nn.Sequential(
            *[Block(decoder_dim, num_heads, mlp_ratio, qkv_bias=True) for _ in range(depth)]
        )
        self.norm = LayerNorm(decoder_dim)
        self.pred = nn.Linear(decoder_dim, patch_size * patch_size * in_chans)
        self.apply(self._init_weights)
        nn.init.normal_(self.mask_token, std=0.02)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def forward(self, tokens: Tensor, keep_index: Tensor) -> Tensor:
        """Predict the patch values of every patch from the kept tokens.

        Args:
            tokens: Encoder outputs of the kept tokens (prefix tokens first).
            keep_index: Their positions in the full sequence, from :func:`random_masking`.

        Returns:
            Predictions for all patches (prefix tokens dropped).

        Raises:
            ShapeError: If ``tokens`` and ``keep_index`` do not match.
        """
        if tokens.ndim != 3 or keep_index.shape != tokens.shape[:2]:
            raise ShapeError(
                f"MAEDecoder expects tokens (N, P + K, D) and keep_index (N, P + K), got "
                f"{tuple(tokens.shape)} and {tuple(keep_index.shape)}. Pass the outputs of "
                "random_masking after the encoder."
            )
        n = tokens.shape[0]
        length = self.position_embedding.shape[1]
        x = self.embed(tokens)  # (N, P + K, decoder_dim)
        canvas = self.mask_token.expand(n, length, -1).to(x.dtype)  # (N, P + L, decoder_dim)
        index = keep_index[:, :, None].expand(-1, -1, x.shape[-1])  # (N, P + K, decoder_dim)
        x = torch.scatter(canvas, 1, index, x)  # (N, P + L, decoder_dim)
        x = self.norm(self.blocks(x + self.position_embedding))
        return cast(Tensor, self.pred(x[:, self.num_prefix_tokens :]))  # (N, L, p * p * C)
