from __future__ import annotations

import subprocess
import sys

import geofm.losses


def test_losses_import_only_torch() -> None:
    code = (
        "import sys, geofm.losses; "
        "bad = [m for m in ('timm', 'geofm.ssl', 'geofm.hub', 'rasterio', 'huggingface_hub', "
        "'lightly') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_names_are_exported() -> None:
    for name in geofm.losses.__all__:
        assert getattr(geofm.losses, name).__doc__
