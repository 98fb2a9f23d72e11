from __future__ import annotations

import warnings

import pytest
import torch
from lightly.models import utils as lightly_utils
from lightly.models.modules import MAEDecoderTIMM
from timm.models.vision_transformer import Block, VisionTransformer

from geofm.errors import ShapeError
from geofm.losses import MAELoss
from geofm.ssl import MAEDecoder, patchify, random_masking


def _lightly_decoder() -> MAEDecoderTIMM:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MAEDecoderTIMM is deprecated in lightly 1.6
        return MAEDecoderTIMM(
            num_patches=16,
            patch_size=2,
            in_chans=3,
            embed_dim=32,
            decoder_embed_dim=16,
            decoder_depth=2,
            decoder_num_heads=2,
        )


def test_matches_lightly_mae_decoder_on_the_same_weights() -> None:
    theirs = _lightly_decoder().eval()
    ours = MAEDecoder(
        embed_dim=32, num_patches=16, patch_size=2, in_chans=3, decoder_dim=16, depth=2, num_heads=2
    ).eval()
    state = {
        key.removeprefix("decoder_"): value
        for key, value in theirs.state_dict().items()
        if key != "decoder_pos_embed"
    }
    ours.load_state_dict(state, strict=True)
    torch.testing.assert_close(
        ours.position_embedding, theirs.decoder_pos_embed.data, atol=1e-6, rtol=0
    )
    masked = random_masking(torch.randn(3, 17, 32), mask_ratio=0.75)

    tokens = theirs.embed(masked.tokens)
    canvas = lightly_utils.repeat_token(theirs.mask_token, (3, 17))
    canvas = lightly_utils.set_at_index(canvas, masked.keep_index, tokens)
    expected = theirs.predict(theirs.decode(canvas))[:, 1:]
    torch.testing.assert_close(
        ours(masked.tokens, masked.keep_index), expected, atol=1e-5, rtol=1e-5
    )


def test_spectral_earth_configuration() -> None:
    decoder = MAEDecoder(embed_dim=384, num_patches=1024, patch_size=4, in_chans=202)
    assert decoder.embed.out_features == 512 and len(decoder.blocks) == 1
    block = decoder.blocks[0]
    assert isinstance(block, Block) and block.attn.num_heads == 16
    assert decoder.pred.out_features == 4 * 4 * 202
    assert decoder.position_embedding.shape == (1, 1025, 512)
    assert not any(p is decoder.position_embedding for p in decoder.parameters())


@pytest.mark.parametrize("img_size", [(16, 16), (16, 24)])
def test_mae_pipeline_with_a_timm_vit(img_size: tuple[int, int]) -> None:
    vit = VisionTransformer(
        img_size=img_size,
        patch_size=4,
        in_chans=5,
        embed_dim=32,
        depth=1,
        num_heads=2,
        num_classes=0,
    )
    decoder = MAEDecoder(
        embed_dim=vit.embed_dim,
        num_patches=vit.patch_embed.grid_size,
        patch_size=4,
        in_chans=5,
        decoder_dim=16,
        num_heads=2,
    )
    images = torch.randn(2, 5, *img_size)

    tokens = vit._pos_embed(vit.patch_embed(images))  # (N, 1 + L, D), CLS first
    masked = random_masking(tokens, mask_ratio=0.75, num_prefix_tokens=vit.num_prefix_tokens)
    encoded = vit.norm(vit.blocks(masked.tokens))
    prediction = decoder(encoded, masked.keep_index)
    target = patchify(images, patch_size=4)
    assert prediction.shape == target.shape
    loss = MAELoss(normalize_targets=True)(prediction, target, masked.mask)
    loss.backward()
    for module in (vit, decoder):
        for name, parameter in module.named_parameters():
            assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name


def test_without_masking_every_token_is_used() -> None:
    decoder = MAEDecoder(
        embed_dim=8, num_patches=(2, 2), patch_size=2, in_chans=1, decoder_dim=8, num_heads=2
    )
    keep_index = torch.arange(5).expand(2, -1)
    out = decoder(torch.randn(2, 5, 8), keep_index)
    assert out.shape == (2, 4, 4)


def test_rejects_bad_configuration_and_inputs() -> None:
    with pytest.raises(ValueError, match="not a square grid"):
        MAEDecoder(embed_dim=8, num_patches=12, patch_size=2, in_chans=1, decoder_dim=8)
    with pytest.raises(ValueError, match="multiple of 4"):
        MAEDecoder(embed_dim=8, num_patches=4, patch_size=2, in_chans=1, decoder_dim=6, num_heads=2)
    decoder = MAEDecoder(
        embed_dim=8, num_patches=4, patch_size=2, in_chans=1, decoder_dim=8, num_heads=2
    )
    with pytest.raises(ShapeError, match="keep_index"):
        decoder(torch.randn(2, 3, 8), torch.zeros(2, 4, dtype=torch.long))
