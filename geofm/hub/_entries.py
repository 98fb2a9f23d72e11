"""The weights catalog entries (registered on import of :mod:`geofm.hub.catalog`).

Every repo id, file name, revision and hash below was read from the
publisher's or the re-host's own files; nothing is guessed. Sources:

- DINOv2: the timm hub repos ``timm/vit_{s,b,l,g}*_patch14_dinov2.lvd142m``
  (model cards: Apache-2.0; revisions are commits listed on the repos' hub
  pages at which ``model.safetensors`` exists).
- SatlasPretrain originals: ``allenai/satlaspretrain_models``
  ``satlaspretrain_models/utils.py`` (``SatlasPretrain_weights`` URLs into
  ``allenai/satlas-pretrain``, branch ``main``); licence ODC-BY as listed by
  torchgeo ``docs/api/weights/*.csv``.
- torchgeo re-hosts (Satlas, SSL4EO-S12, DOFA): microsoft/torchgeo
  ``torchgeo/models/{swin,resnet,vit,dofa}.py`` URLs, which pin a commit and
  put a sha256 prefix in the file name; licences from ``docs/api/weights/*.csv``.
- VICReg: facebookresearch/vicreg ``README.md`` / ``hubconf.py`` (MIT).
- SpectralEarth: AABNassim/spectral_earth ``README.md`` (a DESY Sync&Share
  folder; no file names, hashes or licence published).

- SkySense-O: zqcrafts/SkySense-O ``README.md`` (SkySense-CLIP checkpoints in
  the hub repo ``zqcraft/SkySense-O``, no licence stated), the loader in
  ``skysense_o/modeling/heads/skysense_o_head.py`` and Fusion-LoRA's
  ``pretrain/skysense_clip.pth`` path (Eyobed-Abby/fusion-lora-skysense).
"""

from __future__ import annotations

from geofm.hub.catalog import WeightsSpec, register_weights

__all__: list[str] = []

_DINOV2_CITATION = (
    "Oquab et al., DINOv2: Learning Robust Visual Features without Supervision, TMLR 2024 "
    "(arXiv 2304.07193)."
)
_SATLAS_CITATION = "Bastani et al., SatlasPretrain, ICCV 2023 (arXiv 2211.15660)."
_SSL4EO_CITATION = "Wang et al., SSL4EO-S12, IEEE GRSM 2023 (arXiv 2211.07044)."
_SE_CITATION = "Braham et al., SpectralEarth, arXiv 2408.08447."
_SE_URL = "https://syncandshare.desy.de/index.php/s/Po5bTPipz6EEHx3"
_TORCHGEO_HASH = (
    "sha256 is the hash prefix torchgeo encodes in the file name (torchgeo itself does not "
    "check it; geofm does)."
)

# --- DINOv2 (timm hub copies of Meta's LVD-142M weights) --------------------------------
_DINOV2_REVISIONS = {
    "small": "0686a689726076609b20e80d263cb5aa7be945f5",
    "base": "1926dc569694559b394898d7ba5d88a775301036",
    "large": "7eb792a1b3aabe5d55f3da6ff9e2e084744e25f9",
    "giant": "fb3d2614d5b047317379c86c47cc4cfd2d0e79f9",
}
for _size, _rev in _DINOV2_REVISIONS.items():
    register_weights(
        WeightsSpec(
            name=f"dinov2_vit_{_size}_patch14.lvd142m",
            repo_id=f"timm/vit_{_size}_patch14_dinov2.lvd142m",
            filename="model.safetensors",
            revision=_rev,
            sensor="rgb",
            in_chans=3,
            license="apache-2.0",
            citation=_DINOV2_CITATION,
            default=True,
            notes=(
                "timm VisionTransformer keys (the backbone adds 'model.'), 518 px position "
                "grid. Revision: a commit shown on the repo's hub page at which "
                "model.safetensors exists. sha256 not published: unknown."
            ),
        )
    )

# --- SatlasPretrain Swin-B, single image (original files) -------------------------------
_SATLAS_NOTES = (
    "Original SatlasPretrain file: torchvision swin_v2_b keys under 'backbone.backbone.' "
    "plus FPN ('intermediates.0.fpn.*', loadable into geofm.heads.FPN with the 'satlas_fpn' "
    "converter) and head keys, which the 'satlas_backbone' converter lists as ignored. "
    "Branch main (no pinned revision) and no published hash; the pinned, hash-checked "
    "torchgeo re-host is the '_torchgeo' entry."
)
for _tag, _file, _sensor, _chans, _default in (
    ("sentinel2_si_rgb_satlas", "sentinel2_swinb_si_rgb.pth", "satlas_sentinel2_rgb", 3, True),
    ("sentinel2_si_ms_satlas", "sentinel2_swinb_si_ms.pth", "satlas_sentinel2_ms", 9, False),
    ("aerial_si_satlas", "aerial_swinb_si.pth", None, 3, False),
):
    register_weights(
        WeightsSpec(
            name=f"tv_swin_v2_b.{_tag}",
            repo_id="allenai/satlas-pretrain",
            filename=_file,
            url=f"https://huggingface.co/allenai/satlas-pretrain/resolve/main/{_file}",
            converter="satlas_backbone",
            sensor=_sensor,
            in_chans=_chans,
            license="ODC-BY",
            citation=_SATLAS_CITATION,
            default=_default,
            notes=_SATLAS_NOTES
            + (
                " Input: 8-bit aerial RGB (NAIP-like) /255; no registered 3-band sensor "
                "matches, so sensor is None."
                if _sensor is None
                else ""
            ),
        )
    )

# --- SatlasPretrain Swin-B re-hosted by torchgeo (plain torchvision keys) -------------------
_TG_SATLAS_REV = "081d6607431bf36bdb59c223777cbb267131b8f2"
for _tag, _file, _sensor, _chans in (
    ("sentinel2_si_rgb", "sentinel2_swinb_si_rgb-156a98d5.pth", "satlas_sentinel2_rgb", 3),
    ("sentinel2_si_ms", "sentinel2_swinb_si_ms-fe22a12c.pth", "satlas_sentinel2_ms", 9),
    ("aerial_si", "aerial_swinb_si-e4169eb1.pth", None, 3),
):
    register_weights(
        WeightsSpec(
            name=f"tv_swin_v2_b.{_tag}_satlas_torchgeo",
            repo_id="torchgeo/satlas",
            filename=_file,
            revision=_TG_SATLAS_REV,
            sha256=_file.rsplit("-", 1)[1].split(".")[0],
            sensor=_sensor,
            in_chans=_chans,
            license="ODC-BY",
            citation=_SATLAS_CITATION,
            notes=(
                "torchgeo's re-host of the SatlasPretrain backbone: plain torchvision "
                "swin_v2_b keys (incl. the unused classifier 'head.*', dropped on load). "
                + _TORCHGEO_HASH
            ),
        )
    )

# --- SSL4EO-S12 (torchgeo re-hosts), Sentinel-2 L1C, 13 bands -------------------------------
for _name, _repo, _rev, _file, _default in (
    ("resnet50.sentinel2_all_moco", "torchgeo/resnet50_sentinel2_all_moco",
     "da4f3c9dbe09272eb902f3b37f46635fa4726879", "resnet50_sentinel2_all_moco-df8b932e.pth", True),
    ("resnet50.sentinel2_all_dino", "torchgeo/resnet50_sentinel2_all_dino",
     "d7f14bf5530d70ac69d763e58e77e44dbecfec7c", "resnet50_sentinel2_all_dino-d6c330e9.pth", False),
    ("vit_small_patch16.sentinel2_all_moco", "torchgeo/vit_small_patch16_224_sentinel2_all_moco",
     "1cb683f6c14739634cdfaaceb076529adf898c74",
     "vit_small_patch16_224_sentinel2_all_moco-67c9032d.pth", True),
):  # fmt: skip
    register_weights(
        WeightsSpec(
            name=_name,
            repo_id=_repo,
            filename=_file,
            revision=_rev,
            sha256=_file.rsplit("-", 1)[1].split(".")[0],
            sensor="sentinel2_l1c",
            in_chans=13,
            license="CC-BY-4.0",
            citation=_SSL4EO_CITATION,
            default=_default,
            notes=(
                "SSL4EO-S12 weights as torchgeo hosts them: plain timm keys; inputs are the "
                "13 L1C bands B01-B12 (with B8A, B10) divided by 10000. " + _TORCHGEO_HASH
            ),
        )
    )

# --- VICReg ResNet-50 (ImageNet), backbone-only file -----------------------------------------
register_weights(
    WeightsSpec(
        name="resnet50.imagenet_vicreg",
        filename="resnet50.pth",
        url="https://dl.fbaipublicfiles.com/vicreg/resnet50.pth",
        sha256="c843e76524",
        sensor="rgb",
        in_chans=3,
        license="MIT",
        citation="Bardes et al., VICReg, ICLR 2022 (arXiv 2105.04906).",
        notes=(
            "Backbone-only torchvision ResNet-50 keys (no fc); VICReg's ConstantPad2d(1) + "
            "conv1 padding 2 equals padding 3, so the timm ResNet-50 computes the same. Not on "
            "a hub: download the file and put it where the error message says. The sha256 "
            "prefix is the one two independent third-party loaders check (the authors "
            "publish none)."
        ),
    )
)

# --- DOFA (torchgeo re-host) -----------------------------------------------------------
_DOFA_NOTES = (
    "torchgeo's DOFABase16_Weights / DOFALarge16_Weights.DOFA_MAE (torchgeo/models/dofa.py). "
    "Loads into geofm's DOFA encoder (DOFA's patch_embed names) through the 'dofa' converter; "
    "head / fc_norm / norm keys, if present, are listed as ignored. Wavelength-conditioned: "
    "any band set, wavelengths in nm (DOFA's API takes micrometres), so no sensor is fixed. "
    "Normalisation is sensor-dependent (DOFA's normalize_dataset.py) and not recorded. "
    + _TORCHGEO_HASH
)
for _size, _file in (
    ("base", "dofa_base_patch16_224-a0275954.pth"),
    ("large", "dofa_large_patch16_224-0ff904d3.pth"),
):
    register_weights(
        WeightsSpec(
            name=f"dofa_vit_{_size}_patch16.dofa_mae",
            repo_id="torchgeo/dofa",
            filename=_file,
            revision="b8db318b64a90b9e085ec04ba8851233c5893666",
            sha256=_file.rsplit("-", 1)[1].split(".")[0],
            converter="dofa",
            sensor=None,
            license="CC-BY-4.0",
            citation="Xiong et al., DOFA: Neural Plasticity-Inspired Foundation Model, "
            "arXiv 2403.15356.",
            default=True,
            notes=_DOFA_NOTES,
        )
    )

# --- SpectralEarth (DESY Sync&Share folder, manual download) ----------------------------------
_SE_NOTES = (
    "Published only as a DESY Sync&Share folder: file names, hashes, revision and licence "
    "are not documented (None / 'unknown'). The 'spectral_earth' converter accepts the plain "
    "backbone dict and the Lightning / MAE wrappers (backbone., student_backbone., "
    "encoder.vit., patch-embed aliases) and lists projection heads, teachers and decoders "
    "as ignored."
)
for _name, _default in (
    ("spec_resnet50.enmap_moco", True),
    ("spec_resnet50.enmap_dino", False),
    ("spec_vit_small_patch4.enmap_moco", True),
    ("spec_vit_small_patch4.enmap_dino", False),
    ("spec_vit_small_patch4.enmap_mae", False),
):
    register_weights(
        WeightsSpec(
            name=_name,
            filename=None,
            url=_SE_URL,
            converter="spectral_earth",
            sensor="enmap_spectral_earth",
            in_chans=202,
            license="unknown",
            citation=_SE_CITATION,
            default=_default,
            notes=_SE_NOTES,
        )
    )

# --- SkySense-O visual encoder (SkySense-CLIP's mmcls SwinV2-huge) ---------------------------
register_weights(
    WeightsSpec(
        name="skysense_o_swinv2_huge.skysense_clip",
        repo_id="zqcraft/SkySense-O",
        filename="pretrain/skysense_clip.pth",
        url="https://huggingface.co/zqcraft/SkySense-O/tree/main",
        converter="skysense_o_visual",
        sensor="rgb",
        in_chans=3,
        license="unknown",
        citation=(
            "Zhu et al., SkySense-O: Towards Open-World Remote Sensing Interpretation with "
            "Vision-Centric Visual-Language Modeling, CVPR 2025."
        ),
        default=True,
        notes=(
            "SkySense-CLIP checkpoint: a dict with 'clip' (text tower, vision_projection "
            "[2816 x 1024], logit_scale) and 'model' / 'teacher' dicts in which the visual "
            "encoder sits under 'backbone_gep.'; geofm reads 'model' (as SkySense-O's loader "
            "does) and the converter strips the prefix, ignoring the text tower, other "
            "branches and mmcls' saved position buffers. Input: 8-bit RGB normalised with "
            "ImageNet mean/std (SkySense-O's CLIP_PIXEL_MEAN/STD on the 0-255 scale), 384 px "
            "in SkySense-O and Fusion-LoRA (multiples of 16; >= 256 px for the exact mmcls "
            "window behaviour). Unconfirmed: the file's path inside the hub repo (taken from "
            "Fusion-LoRA's loader; SkySense-O's base.yaml names a local "
            "'pretrain/skysense_clip.ckpt'), revision, sha256 and licence (none published); "
            "that the file loads with torch.load(weights_only=True) and holds norm0-norm2 "
            "(SkySense-O itself loads it with strict=False)."
        ),
    )
)
