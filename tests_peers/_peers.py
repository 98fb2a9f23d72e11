"""Helpers shared by the peer-test ports (imported as a plain module, not a test file)."""

from __future__ import annotations

import pytest

# Upstream commits the ports follow (the snapshots read for reports/peer-tests.md).
UPSTREAM = {
    "lightly": "lightly-ai/lightly@e8d317fc5a87f4387a85a35e689869039ec249ee",
    "peft": "huggingface/peft@5d602fdbff04c33c1c4de55cda9d4ae1d7cb7e40",
    "timm": "huggingface/pytorch-image-models@aa4b5850c1543fa488abf260f18390eda46cf85d",
    "torchgeo": "microsoft/torchgeo@7ea0616ded0cc27a8feb8b2aafefd7c14155f6fb",
}


def xfail(
    reason: str, raises: type[BaseException] | tuple[type[BaseException], ...] = AssertionError
) -> pytest.MarkDecorator:
    """A strict expected failure with the exception it must fail with.

    The run stays green; a case that starts to pass (XPASS, strict) or fails in another way
    (another exception) shows up as a failure.
    """
    return pytest.mark.xfail(strict=True, reason=reason, raises=raises)
