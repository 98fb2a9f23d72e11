from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest
import torch

import geofm.losses
from geofm.losses import (
    BarlowTwinsLoss,
    DINOLoss,
    InfoNCELoss,
    MAELoss,
    NTXentLoss,
    VICRegLoss,
    relative_mse_loss,
)
from geofm.ssl import MemoryBank

UNDEFINED: dict[str, Callable[[], object]] = {
    "VICRegLoss": lambda: VICRegLoss()(torch.randn(1, 4), torch.randn(1, 4)),
    "BarlowTwinsLoss": lambda: BarlowTwinsLoss()(torch.randn(1, 4), torch.randn(1, 4)),
    "InfoNCELoss": lambda: InfoNCELoss()(torch.randn(1, 4), torch.randn(1, 4)),
    "InfoNCELoss with a bank": lambda: InfoNCELoss(memory_bank=MemoryBank(size=4, dim=4))(
        torch.randn(0, 4), torch.randn(0, 4)
    ),
    "NTXentLoss": lambda: NTXentLoss()(torch.randn(1, 4), torch.randn(1, 4)),
    "DINOLoss": lambda: DINOLoss(output_dim=4)([torch.randn(2, 4)], [torch.randn(2, 4)], epoch=0),
    "MAELoss": lambda: MAELoss()(torch.randn(2, 3, 4), torch.randn(2, 3, 4), torch.zeros(2, 3)),
    "relative_mse_loss": lambda: relative_mse_loss(torch.zeros(0, 2), torch.zeros(0, 2)),
}


def test_losses_import_only_torch() -> None:
    code = (
        "import sys, geofm.losses; "
        "bad = [m for m in ('timm', 'geofm.ssl', 'geofm.hub', 'rasterio', 'huggingface_hub', "
        "'lightly') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("case", list(UNDEFINED))
def test_every_undefined_loss_raises_one_value_error_wording(case: str) -> None:
    owner = case.split()[0]
    with pytest.raises(ValueError, match=f"^{owner} is undefined for this input: it needs "):
        UNDEFINED[case]()


def test_public_names_are_exported_and_documented() -> None:
    for name in geofm.losses.__all__:
        assert getattr(geofm.losses, name).__doc__
