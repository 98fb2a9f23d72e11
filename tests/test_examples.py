"""Examples run end to end with tiny settings, so they cannot go stale."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_quickstart_reads_the_embedded_geotiff_and_reports_shapes() -> None:
    quickstart = load("quickstart")
    result = quickstart.main(quickstart.Config(backbone="resnet18", size=64))
    assert result["crs"] == "EPSG:32618"
    assert result["input"] == [1, 3, 64, 64]
    assert result["features"] == [[1, 64, 16, 16], [1, 128, 8, 8], [1, 256, 4, 4], [1, 512, 2, 2]]
    assert result["embedding"] == [1, 512]
    assert "layer4" in quickstart.report(result)
