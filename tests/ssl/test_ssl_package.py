from __future__ import annotations

import subprocess
import sys

import geofm.losses
import geofm.ssl


def test_import_ssl_stays_light() -> None:
    code = (
        "import sys, geofm.ssl; "
        "print([m for m in ('timm', 'huggingface_hub', 'rasterio', 'geofm.hub', 'lightly') "
        "if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_names_are_exported_and_documented() -> None:
    for name in geofm.ssl.__all__:
        assert getattr(geofm.ssl, name).__doc__
    # one public home per name: MemoryBank is defined next to InfoNCELoss, exported by ssl only
    assert geofm.ssl.MemoryBank.__module__ == "geofm.losses.infonce"
    assert "MemoryBank" not in geofm.losses.__all__
    assert not hasattr(geofm.losses, "MemoryBank")
