from __future__ import annotations

import pytest
import torch
from lightly.models import utils as lightly_utils

from geofm.errors import ShapeError
from geofm.ssl import patchify, random_masking, sincos_2d_position_embedding, unpatchify


def test_patchify_matches_lightly_and_the_mae_order() -> None:
    images = torch.randn(2, 3, 8, 8)
    patches = patchify(images, patch_size=4)
    torch.testing.assert_close(patches, lightly_utils.patchify(images, 4))
    # Patch 1 is the top-right 4 x 4 block; its vector is ordered (row, column, channel).
    block = images[0, :, 0:4, 4:8]  # (C, p, q)
    torch.testing.assert_close(patches[0, 1], block.permute(1, 2, 0).flatten())


def test_unpatchify_inverts_patchify_for_non_square_images() -> None:
    images = torch.randn(2, 5, 8, 12)
    patches = patchify(images, patch_size=4)
    assert patches.shape == (2, 6, 80)
    torch.testing.assert_close(unpatchify(patches, patch_size=4, image_size=(8, 12)), images)


def test_patchify_and_unpatchify_reject_bad_shapes() -> None:
    with pytest.raises(ShapeError, match="multiples of patch_size=4"):
        patchify(torch.randn(1, 3, 10, 8), patch_size=4)
    with pytest.raises(ShapeError, match="image_size"):
        unpatchify(torch.randn(1, 5, 48), patch_size=4, image_size=(8, 8))


def test_random_masking_keeps_prefix_and_the_right_number_of_patches() -> None:
    tokens = torch.arange(2 * 17, dtype=torch.float32).reshape(2, 17, 1).expand(-1, -1, 3)
    out = random_masking(tokens, mask_ratio=0.75)
    assert out.tokens.shape == (2, 1 + 4, 3)
    assert out.keep_index[:, 0].tolist() == [0, 0]  # CLS always kept
    torch.testing.assert_close(
        out.tokens, torch.gather(tokens, 1, out.keep_index[..., None].expand(-1, -1, 3))
    )
    for sample in range(2):
        kept = set((out.keep_index[sample, 1:] - 1).tolist())
        masked = set(torch.nonzero(out.mask[sample]).flatten().tolist())
        assert len(kept) == 4 and kept.isdisjoint(masked) and kept | masked == set(range(16))


def test_random_masking_spectral_earth_counts() -> None:
    out = random_masking(torch.zeros(1, 1025, 2), mask_ratio=0.9)
    assert out.tokens.shape[1] == 1 + 102  # int(1024 * 0.1) patches + CLS, as lightly
    idx_keep, _ = lightly_utils.random_token_mask(size=(1, 1025), mask_ratio=0.9)
    assert idx_keep.shape[1] == out.tokens.shape[1]


def test_random_masking_supports_register_tokens_and_generators() -> None:
    tokens = torch.randn(3, 4 + 8, 2)
    first = random_masking(
        tokens, mask_ratio=0.5, num_prefix_tokens=4, generator=torch.Generator().manual_seed(1)
    )
    second = random_masking(
        tokens, mask_ratio=0.5, num_prefix_tokens=4, generator=torch.Generator().manual_seed(1)
    )
    assert first.keep_index[:, :4].tolist() == [[0, 1, 2, 3]] * 3
    torch.testing.assert_close(first.keep_index, second.keep_index)
    assert first.mask.shape == (3, 8) and int(first.mask.sum()) == 3 * 4


def test_random_masking_is_uniform_over_patches() -> None:
    out = random_masking(torch.zeros(4000, 1 + 8, 1), mask_ratio=0.5)
    frequency = out.mask.float().mean(dim=0)
    torch.testing.assert_close(frequency, torch.full((8,), 0.5), atol=0.04, rtol=0)


def test_random_masking_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"mask_ratio=1.0; expected a value in \[0, 1\)"):
        random_masking(torch.zeros(1, 5, 2), mask_ratio=1.0)
    with pytest.raises(ValueError, match="keeps no patch out of 4"):
        random_masking(torch.zeros(1, 5, 2), mask_ratio=0.9)
    with pytest.raises(ShapeError, match=r"\(N, P \+ L, D\)"):
        random_masking(torch.zeros(5, 2), mask_ratio=0.5)


def test_sincos_embedding_matches_lightly_mae() -> None:
    ours = sincos_2d_position_embedding(16, (4, 4), num_prefix_tokens=1)
    theirs = torch.from_numpy(
        lightly_utils.get_2d_sine_cosine_positional_embedding(16, 4, cls_token=True)
    ).float()
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


def test_sincos_embedding_non_square_grid_and_bad_dim() -> None:
    embedding = sincos_2d_position_embedding(8, (2, 3))
    # token (row 1, column 2) = index 5: column encodes the first half, row the second half
    torch.testing.assert_close(embedding[5, :4], sincos_2d_position_embedding(8, (1, 3))[2, :4])
    torch.testing.assert_close(embedding[5, 4:], sincos_2d_position_embedding(8, (2, 1))[1, 4:])
    with pytest.raises(ValueError, match="multiple of 4"):
        sincos_2d_position_embedding(6, (2, 2))
