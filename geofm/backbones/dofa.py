"""DOFA: a ViT whose patch embedding is generated from the bands' wavelengths.

DOFA (Dynamic One-For-All) replaces the fixed patch convolution of a ViT by
one whose kernel and bias are *generated* for every call from the input
bands' centre wavelengths, so a single set of weights embeds any band set,
band order or band count. In geofm a DOFA encoder is a configuration of the
one ViT (:class:`~geofm.backbones.vit.ViTBackbone`): its patch projection is a
:class:`~geofm.spectral.WavelengthPatchEmbed` with ``generator="dofa"``, which
keeps DOFA's own parameter names, no final token norm, and DOFA's pool
(``pool="mean_norm"``). The published encoders' layout,
``patch_embed.fclayer.w{1,2}.*``, ``patch_embed.weight_generator.{weight_tokens,
bias_token, fc_weight.*, fc_bias.*, transformer_encoder.layers.0.*}``, then
the timm ViT keys ``cls_token``, ``pos_embed``, ``blocks.*``, loads strictly
through the ``dofa`` converter and the key mapping below. This file owns the
DOFA variants, their weights entries and that converter.

Units: geofm takes wavelengths in **nanometres** everywhere. DOFA's API takes
micrometres and multiplies them by 1000 before the sine-cosine encoding; the
encoding itself therefore already works in nm, and geofm feeds nm to it
directly (results agree with DOFA up to the float32 rounding of DOFA's
``um * 1000`` product). Convert DOFA-style values with
``[w * 1000 for w in wavelengths_um]`` before passing them here.

References:
    Xiong et al., "Neural Plasticity-Inspired Multimodal Foundation Model for
    Earth Observation", arXiv 2403.15356; code https://github.com/zhu-xlab/DOFA.
    Published weights as re-hosted by torchgeo (``torchgeo/models/dofa.py``,
    https://github.com/microsoft/torchgeo), whose layout these modules follow.

Example:
    >>> import torch, geofm
    >>> m = geofm.create_backbone("dofa_vit_base_patch16", depth=1, bands=[665.0, 842.0])
    >>> m.embed(torch.randn(1, 2, 32, 32)).shape
    torch.Size([1, 768])
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from geofm.backbones.base import register_backbone
from geofm.backbones.vit import ViTBackbone, build_vit, create_timm_vit
from geofm.errors import ShapeError
from geofm.sensors import get_sensor
from geofm.weights.catalog import TORCHGEO_HASH_NOTE, WeightsSpec, register_weights
from geofm.weights.convert import register_converter
from geofm.weights.load import LoadReport, StateDict

__all__ = ["dofa"]

# DOFA's layout names the generator ``patch_embed.*``; here it is timm's ``patch_embed.proj``.
_KEY_RENAMES = (
    ("model.patch_embed.fclayer.", "model.patch_embed.proj.fclayer."),
    ("model.patch_embed.weight_generator.", "model.patch_embed.proj.weight_generator."),
)
_DOFA_DROPPED = (
    ("head.", "classifier head; the backbone has none"),
    ("fc_norm.", "pooled-feature norm; geofm's DOFA embed uses a non-affine LayerNorm"),
    ("norm.", "final token norm; the published DOFA encoder has none"),
)


def _build(
    timm_name: str,
    *,
    wavelengths: Sequence[float] | None = None,
    in_chans: int | None = None,
    img_size: int = 224,
    out_indices: Sequence[int] | None = None,
    depth: int | None = None,
    drop_path_rate: float = 0.0,
) -> ViTBackbone:
    """A DOFA encoder on timm's ``timm_name``; ``wavelengths`` (nm) default to RGB."""
    waves = tuple(wavelengths) if wavelengths else get_sensor("rgb").wavelengths
    if in_chans is not None and in_chans != len(waves):
        raise ShapeError(
            f"in_chans={in_chans} but {len(waves)} wavelengths were given. DOFA needs one "
            "wavelength per band: pass bands= (a sensor name, band names or nm) for your bands."
        )
    vit = create_timm_vit(
        timm_name,
        in_chans=len(waves),
        img_size=img_size,
        depth=depth,
        drop_path_rate=drop_path_rate,
        final_norm=False,  # DOFA's encoder has no final token norm
    )
    return build_vit(
        vit,
        wavelengths=waves,
        generator="dofa",
        out_indices=out_indices,
        pool="mean_norm",
        norm=False,
        key_renames=_KEY_RENAMES,
    )


# name -> (timm architecture, description)
_VARIANTS = {
    "dofa_vit_base_patch16": (
        "vit_base_patch16_224",
        "DOFA ViT-B/16 with a wavelength-generated patch embedding, any bands, 224 px grid.",
    ),
    "dofa_vit_large_patch16": (
        "vit_large_patch16_224",
        "DOFA ViT-L/16 with a wavelength-generated patch embedding, any bands, 224 px grid.",
    ),
}
for _name, (_timm_name, _description) in _VARIANTS.items():
    register_backbone(
        _name, family="dofa", pretrained_bands=None, min_input_size=16, description=_description
    )(functools.partial(_build, _timm_name))


# --- converter ------------------------------------------------------------------------------
@register_converter("dofa")
def dofa(state_dict: StateDict, report: LoadReport) -> StateDict:
    """DOFA checkpoint (torchgeo's ``DOFA`` layout) -> DOFA's encoder keys.

    ``cls_token``, ``pos_embed``, ``patch_embed.*`` (``fclayer.*`` and
    ``weight_generator.*`` with DOFA's names) and ``blocks.*`` pass unchanged
    (the backbone maps them onto its own names on load);
    ``head.*``, ``fc_norm.*`` and a final ``norm.*`` go to ``report.ignored``
    with the reason. Any other key is kept, so strict loading reports it.

    Args:
        state_dict: DOFA checkpoint tensors.
        report: Report that receives the ignored keys.

    Returns:
        The encoder's tensors under DOFA's names.

    Example:
        >>> import torch
        >>> sd = {"blocks.0.norm1.weight": torch.ones(2), "head.weight": torch.ones(2, 2)}
        >>> from geofm.weights.load import LoadReport
        >>> list(dofa(sd, LoadReport()))
        ['blocks.0.norm1.weight']
    """
    out: StateDict = {}
    for key, value in state_dict.items():
        reason = next((why for prefix, why in _DOFA_DROPPED if key.startswith(prefix)), None)
        if reason is None:
            out[key] = value
        else:
            report.ignored.append(f"{key} ({reason})")
    return out


# --- weights --------------------------------------------------------------------------------
# --- DOFA (torchgeo re-host) -----------------------------------------------------------
_DOFA_NOTES = (
    "torchgeo's DOFABase16_Weights / DOFALarge16_Weights.DOFA_MAE (torchgeo/models/dofa.py). "
    "Loads into geofm's DOFA encoder (DOFA's patch_embed names) through the 'dofa' converter; "
    "head / fc_norm / norm keys, if present, are listed as ignored. Wavelength-conditioned: "
    "any band set, wavelengths in nm (DOFA's API takes micrometres), so no sensor is fixed. "
    "Normalisation is sensor-dependent (DOFA's normalize_dataset.py) and not recorded. "
    + TORCHGEO_HASH_NOTE
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
