"""Import-direction and import-cost checks (run in fresh interpreters)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def modules_after(statement: str) -> set[str]:
    code = f"import sys, json\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_geofm_loads_neither_rasterio_nor_huggingface_hub() -> None:
    loaded = modules_after("import geofm")
    assert "rasterio" not in loaded
    assert "huggingface_hub" not in loaded


@pytest.mark.parametrize(
    "statement", ["import geofm.backbones", "from geofm import create_backbone"]
)
def test_backbones_do_not_load_rasterio(statement: str) -> None:
    # timm itself imports huggingface_hub, so only rasterio can be checked here.
    loaded = modules_after(statement)
    assert "rasterio" not in loaded
    assert "geofm.geo" not in loaded


def test_plain_import_geofm_does_not_build_the_registry() -> None:
    loaded = modules_after("import geofm")
    assert "geofm.backbones" not in loaded
    assert "timm" not in loaded


def test_sensors_sit_below_hub_and_backbones() -> None:
    loaded = modules_after("import geofm.sensors")
    assert "geofm.hub" not in loaded
    assert "geofm.backbones" not in loaded


@pytest.mark.parametrize(
    "module",
    [
        "geofm.sensors",
        "geofm.spectral",
        "geofm.fusion",
        "geofm.losses",
        "geofm.metrics",
        "geofm.transforms",
        "geofm.lora",
        "geofm.geo",
    ],
)
def test_lower_floors_import_neither_hub_nor_backbones(module: str) -> None:
    loaded = modules_after(f"import {module}")
    assert "geofm.hub" not in loaded
    assert "geofm.backbones" not in loaded
    assert "rasterio" not in loaded
    assert "huggingface_hub" not in loaded


@pytest.mark.parametrize("module", ["geofm.fusion", "geofm.losses", "geofm.metrics", "geofm.lora"])
def test_torch_only_modules_do_not_import_timm(module: str) -> None:
    loaded = modules_after(f"import {module}")
    assert "timm" not in loaded
