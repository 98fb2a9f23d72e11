"""examples/fusion_lora_bigearthnet.py: every adapter trains, best checkpoint, metrics, paths.

The real-data path runs on a tiny prepared BigEarthNet-S2 layout (the folder
Fusion-LoRA's preparation script writes: ``<split>_labels.csv`` +
``<split>_tensors/<patch>.pt``) whose six bands are real HLS reflectance (bands 3, 2, 1, 4, 5, 6 of
``terratorch_hls/segmentation_test_0_input.tif``, /10000, clipped to [0, 1]);
no real BigEarthNet patch is available here, so the labels are drawn at random.
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from example_loader import load

from geofm.errors import MissingDependencyError

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
HLS = REAL / "terratorch_hls" / "segmentation_test_0_input.tif"

fusion = load("fusion_lora_bigearthnet")
SMALL = {"train_samples": 32, "val_samples": 16, "test_samples": 16, "batch_size": 8}


def test_every_lora_b_moves_in_the_tiny_default(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    cfg = fusion.Config(steps=3, eval_every=3, plot=False, output_dir=str(tmp_path), **SMALL)
    result = fusion.main(cfg)
    assert result["feature_grid"] == [2, 2]  # 64 px pseudo-RGB: the last stage has 4 tokens
    b = {k: v for k, v in load_file(result["weights"]).items() if "lora_B" in k}
    # Stages 2 and 3, one block each: qkv, proj, 2 position-bias MLP linears, fc1, fc2,
    # plus each stage's patch-merging reduction.
    assert len(b) == 14
    for key, value in b.items():
        # Every output row of every B left zero (q, k and v thirds of qkv included).
        assert bool((value.abs().sum(dim=1) > 0).all()), key


def test_timm_zero_post_norms_are_what_kept_the_block_adapters_at_zero() -> None:
    import geofm

    backbone = geofm.create_backbone("swinv2_base_window8", depths=(1, 1, 1, 1), img_size=64)
    norms = [m for n, m in backbone.named_modules() if n.endswith(("norm1", "norm2"))]
    assert len(norms) == 8 and all(float(n.weight.detach().abs().max()) == 0.0 for n in norms)
    assert fusion.init_post_norms(backbone) == 8
    assert all(torch.equal(n.weight, torch.ones_like(n.weight)) for n in norms)


def test_the_best_validation_checkpoint_is_reported_with_bit_accuracy_and_per_class_f1(
    tmp_path: Path,
) -> None:
    cfg = fusion.Config(steps=6, eval_every=2, plot=False, output_dir=str(tmp_path), **SMALL)
    result = fusion.main(cfg)
    history = result["val_history"]
    assert [h["step"] for h in history] == [2, 4, 6]
    best = min(history, key=lambda h: h["val_loss"])
    assert result["best_step"] == best["step"]
    assert result["val_loss"] == pytest.approx(best["val_loss"], rel=1e-5)
    for split in ("val", "test"):
        per_class = result[f"{split}_per_class_f1"]
        assert len(per_class) == 19
        # Macro F1 is the mean of the per-class F1 scores.
        assert result[f"{split}_macro_f1"] == pytest.approx(sum(per_class.values()) / 19)
        assert 0.0 <= result[f"{split}_bit_accuracy"] <= 1.0
    # With ~2 of 19 labels positive, predicting all negative already gives ~0.9 bit accuracy.
    assert result["val_bit_accuracy"] > 0.8


def test_caf_projections_and_head_can_be_the_sources_random_base_lora_layers() -> None:
    from geofm.fusion import RandomBaseLoRALinear

    model = fusion.build_model(fusion.Config(caf_projections="random_lora", head="random_lora"))
    assert isinstance(model.caf.q_proj, RandomBaseLoRALinear)
    assert isinstance(model.head, RandomBaseLoRALinear)
    assert not model.caf.q_proj.weight.requires_grad
    default = fusion.build_model(fusion.Config())
    assert isinstance(default.caf.q_proj, torch.nn.Linear)


def test_skysense_backbone_uses_its_vision_projection_on_the_24x24_grid(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from geofm.backbones.skysense import SkySenseOVisualEncoder

    def tiny_skysense(name: str, **kwargs: object) -> SkySenseOVisualEncoder:
        assert name == "skysense_o_swinv2_huge"
        return SkySenseOVisualEncoder(
            embed_dim=8,
            depths=(1, 1, 1, 1),
            num_heads=(1, 2, 4, 8),
            window_sizes=(8, 8, 8, 16),
            pretrained_window_sizes=(0, 0, 0, 8),
            out_indices=[3],
        )

    monkeypatch.setattr(fusion.geofm, "create_backbone", tiny_skysense)
    projection = torch.randn(64, 1024)
    checkpoint = tmp_path / "skysense_clip.pth"
    torch.save({"clip": {"vision_projection": projection}, "model": {}}, checkpoint)
    cfg = fusion.Config(backbone="skysense_o_swinv2_huge", weights=str(checkpoint), img_size=384)
    model = fusion.build_model(cfg)
    assert model.vision_projection is not None
    assert torch.equal(model.vision_projection.weight, projection)
    assert not model.vision_projection.weight.requires_grad
    adapted = {n.split(".lora_A")[0] for n, _ in model.named_parameters() if "lora_A" in n}
    # Every Linear of stages 2 and 3 (7 each: merging, position-bias MLP, qkv, proj, FFN).
    linears = {
        f"backbone.{n}"
        for n, m in tiny_skysense("skysense_o_swinv2_huge").named_modules()
        if isinstance(m, torch.nn.Linear) and n.startswith(("stages.2", "stages.3"))
    }
    assert adapted == linears and len(linears) == 14
    assert not any(n.startswith(("backbone.stages.0", "backbone.stages.1")) for n in adapted)
    with torch.no_grad():
        visual = model.visual(torch.rand(1, 6, 32, 32))
    assert visual.shape == (1, 1024, 24, 24)  # the source's grid: 384 px at stride 16
    last = model.backbone(model.tokenizer(torch.zeros(1, 6, 32, 32)))[-1]
    torch.testing.assert_close(
        model.vision_projection(last), torch.einsum("nchw,cd->ndhw", last, projection)
    )
    torch.save({"model": {}}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="vision_projection"):
        fusion.load_vision_projection(tmp_path / "bad.pth")


@pytest.mark.skipif(not HLS.exists(), reason=f"real test data {REAL} not available")
def test_real_data_path_reads_a_prepared_bigearthnet_folder(tmp_path: Path) -> None:
    with rasterio.open(HLS) as src:
        bands = np.clip(src.read([3, 2, 1, 4, 5, 6]) / 10000.0, 0, 1).astype(np.float32)
    gen = np.random.default_rng(0)
    root = tmp_path / "ben"
    counts = {"train": 12, "validation": 6, "test": 6}
    for split, n in counts.items():
        (root / f"{split}_tensors").mkdir(parents=True)
        rows = []
        for i in range(n):
            r, c = divmod(i, 4)
            patch = torch.from_numpy(bands[:, r * 40 : r * 40 + 40, c * 40 : c * 40 + 40].copy())
            torch.save(patch, root / f"{split}_tensors" / f"{split}_{i}.pt")
            rows.append([f"{split}_{i}", *(gen.random(19) < 0.15).astype(int).tolist()])
        with (root / f"{split}_labels.csv").open("w", newline="") as handle:
            csv.writer(handle).writerows([["filename", *[f"c{j}" for j in range(19)]], *rows])
    cfg = fusion.Config(
        data_dir=str(root),
        steps=2,
        eval_every=1,
        batch_size=4,
        plot=False,
        output_dir=str(tmp_path),
    )
    result = fusion.main(cfg)
    assert len(result["test_per_class_f1"]) == 19
    assert "Urban fabric" in result["test_per_class_f1"]  # BigEarthNet's class names
    assert result["reload_max_abs_diff"] < 1e-5


def test_missing_matplotlib_is_reported_before_any_work(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name)
    )
    with pytest.raises(MissingDependencyError, match="pip install matplotlib.*--no-plot"):
        fusion.main(fusion.Config(output_dir=str(tmp_path / "out")))
    assert not (tmp_path / "out").exists()
