"""Examples run end to end with tiny settings and must show learning, so they cannot go stale."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import torch

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_quickstart_trains_saves_reloads_and_beats_the_majority_class(tmp_path: Path) -> None:
    quickstart = load("quickstart")
    result = quickstart.main(quickstart.Config(steps=25, output_dir=str(tmp_path)))
    assert result["reloaded_identical"] == 1.0
    # Margin: at least 0.1 mean IoU above always predicting the majority class.
    assert result["val_miou"] > result["majority_miou"] + 0.1
    assert json.loads((tmp_path / "metrics.json").read_text()) == result
    assert (tmp_path / "model" / "model.safetensors").is_file()


def test_ecovision_lora_beats_the_mean_predictor_and_the_adapter_reloads(tmp_path: Path) -> None:
    eco = load("ecovision_lora")
    cfg = eco.Config(steps=40, scene_size=336, output_dir=str(tmp_path))
    result = eco.main(cfg)
    assert result["val_r2"] > 0.0
    assert result["val_mae"] < result["mean_baseline_mae"]
    assert result["adapter_reload_max_abs_diff"] < 1e-3
    assert (tmp_path / "ecovision.png").stat().st_size > 0
    # The adapter file reloads into a freshly built model (also checked inside main).
    from geofm.lora import load_lora

    model = load_lora(eco.build_model(cfg), tmp_path / "adapter.safetensors")
    assert any("lora_A" in name for name, _ in model.named_parameters())
    assert torch.isfinite(model(torch.zeros(1, 3, cfg.tile, cfg.tile))).all()


def test_landcover_swin_fpn_beats_the_majority_class_and_writes_a_map(tmp_path: Path) -> None:
    import rasterio

    landcover = load("landcover_swin_fpn")
    result = landcover.main(landcover.Config(output_dir=str(tmp_path)))
    # Observed margin with the defaults: 0.27 vs 0.13.
    assert result["val_iou"] > result["majority_baseline_iou"] + 0.08
    with rasterio.open(result["map"]) as src:
        assert src.crs is not None
        assert src.crs.is_projected
        assert src.dtypes[0] == "uint8"
    assert (tmp_path / "metrics.json").is_file()


def test_fusion_lora_bigearthnet_beats_the_label_prior_and_reloads(tmp_path: Path) -> None:
    fusion = load("fusion_lora_bigearthnet")
    result = fusion.main(fusion.Config(output_dir=str(tmp_path)))
    # Observed with the defaults: micro-F1 0.45 vs 0.11 for the top-k label prior.
    assert result["val_micro_f1"] > result["prior_top_k_micro_f1"] + 0.15
    assert result["val_micro_f1"] > result["all_negative_micro_f1"]
    assert result["reload_max_abs_diff"] < 1e-5
    assert Path(result["weights"]).is_file()
