"""Named converters from published checkpoint layouts to the layouts geofm modules load.

A converter is a plain function ``(state_dict, report) -> state_dict``. It
renames the keys of one *original* checkpoint layout and drops (and lists in
``report.ignored``, with the reason) the tensors that belong to parts of the
original model geofm does not build (projection heads, decoders, teachers).
It never invents or re-initialises a tensor. Converters are registered by
name so a :class:`~geofm.hub.catalog.WeightsSpec` can refer to one with a
string (``converter="satlas_backbone"``).

What each converter produces is the *source* layout the matching geofm
module's ``adapt_state_dict`` hook understands (e.g. torchvision's
``features.*`` for ``tv_swin_v2_b``, SpectralEarth's ``spectral_adapter.*`` /
``vit_core.*`` for the Spec backbones), so prefix handling that the backbone
families already do is not repeated here. This module knows no model class.

Layouts (facts in ``shared/SOURCES.md`` 2.8, 3.2, 5.4):

- ``satlas_backbone``: SatlasPretrain files, backbone keys under
  ``backbone.backbone.`` (single image) or three ``backbone.`` (multi image);
  FPN ``intermediates.0.fpn.*``, upsampling and task heads are ignored.
  https://github.com/allenai/satlaspretrain_models (``model.py``, ``utils.py``).
- ``satlas_fpn``: the FPN of the same files, ``intermediates.0.fpn.`` stripped,
  torchvision ``FeaturePyramidNetwork`` key layout (``inner_blocks.{i}.0.*``),
  which :class:`geofm.heads.FPN` (``out_channels=128``) loads strictly.
- ``spectral_earth``: SpectralEarth plain backbone dicts and the Lightning / MAE
  variants (``backbone.``, ``student_backbone.``, ``encoder.vit.``,
  ``vit_core.patch_embed.spectral_adapter.*`` /
  ``vit_core.patch_embed.original_patch_embed.*`` aliases) to the plain
  ``spectral_adapter.*`` + ``vit_core.*`` / ``resnet.*`` layout.
  https://github.com/AABNassim/spectral_earth (``src/backbones``, ``src/models``).
- ``skysense_o_visual``: the SkySense-O / SkySense-CLIP visual encoder keys
  (``backbone_gep.*`` in the ``model`` / ``teacher`` dicts of
  ``pretrain/skysense_clip.pth``, or ``visual.*`` of a ``SkySenseCLIP`` state
  dict) with the prefix stripped, for :mod:`geofm.backbones.skysense`; text
  tower, other branches and mmcls' saved position buffers ignored.
  https://github.com/zqcrafts/SkySense-O; loader in
  https://github.com/Eyobed-Abby/fusion-lora-skysense.
- ``dofa``: DOFA encoders as torchgeo hosts them (``torchgeo/models/dofa.py``):
  ``cls_token``, ``pos_embed``, ``patch_embed.*`` (DOFA's generator names) and
  ``blocks.*`` are kept as they are for :mod:`geofm.backbones.dofa`; the
  classifier ``head.*`` and the final ``norm.*`` / ``fc_norm.*`` (which the
  published encoder does not have and the geofm module does not build) are
  ignored. https://github.com/zhu-xlab/DOFA.

DINOv2 (timm hub files), torchgeo's SSL4EO-S12 files and VICReg's
``resnet50.pth`` already use timm / torchvision names; the backbone families
add their ``model.`` prefix on load, so they need no converter.

Example:
    >>> import torch
    >>> from geofm.hub.load import LoadReport
    >>> report = LoadReport()
    >>> sd = {"backbone.backbone.features.0.0.weight": torch.zeros(1), "heads.0.w": torch.zeros(1)}
    >>> sorted(get_converter("satlas_backbone")(sd, report))
    ['features.0.0.weight']
    >>> report.ignored
    ['heads.0.w (task head, not part of the backbone)']
"""

from __future__ import annotations

from collections.abc import Callable

from geofm._registry import Registry
from geofm.hub.load import LoadReport, StateDict

__all__ = [
    "CONVERTERS",
    "Converter",
    "dofa",
    "get_converter",
    "list_converters",
    "register_converter",
    "satlas_backbone",
    "satlas_fpn",
    "skysense_o_visual",
    "spectral_earth",
]

Converter = Callable[[StateDict, LoadReport], StateDict]
"""``(state_dict, report) -> state_dict`` from an original layout to a geofm source layout."""

CONVERTERS: Registry[Converter] = Registry("converter")

_SATLAS_FPN = "intermediates.0.fpn."
_SE_TARGETS = ("spectral_adapter.", "vit_core.", "resnet.")
# Wrappers around the backbone in SpectralEarth's Lightning modules, most specific first.
_SE_WRAPPERS = ("student_backbone.", "backbone.", "encoder.", "")
_SE_ALIASES = (
    ("vit.", "vit_core."),  # lightly's MaskedVisionTransformerTIMM stores the ViT as ``vit``
    ("vit_core.patch_embed.spectral_adapter.", "spectral_adapter."),
    ("vit_core.patch_embed.original_patch_embed.", "vit_core.patch_embed."),
)
_SE_HEADS = ("vit_core.head.", "resnet.fc.")
# Where the visual encoder sits: the published file's dicts, then a SkySenseCLIP state dict.
_SKYSENSE_VISUAL = ("backbone_gep.", "visual.")
_SKYSENSE_BUFFERS = ("relative_coords_table", "relative_position_index")
_DOFA_DROPPED = (
    ("head.", "classifier head; the backbone has none"),
    ("fc_norm.", "pooled-feature norm; geofm's DOFA embed uses a non-affine LayerNorm"),
    ("norm.", "final token norm; the published DOFA encoder has none"),
)


def _satlas_reason(key: str) -> str:
    if key.startswith(_SATLAS_FPN):
        return "Satlas FPN; load it into geofm.heads.FPN with the 'satlas_fpn' converter"
    if key.startswith("intermediates."):
        return "Satlas upsampling / intermediate module, not part of the backbone"
    return "task head, not part of the backbone"


def register_converter(name: str) -> Callable[[Converter], Converter]:
    """Register a converter function under ``name`` (decorator).

    Args:
        name: Unique name referenced by ``WeightsSpec.converter``.

    Returns:
        A decorator that registers the function and returns it unchanged.

    Raises:
        ValueError: If ``name`` is already registered.

    Example:
        >>> @register_converter("doc_identity")
        ... def doc_identity(state_dict, report):
        ...     return state_dict
        >>> "doc_identity" in list_converters("doc_*")
        True
    """
    return CONVERTERS.register(name)


def get_converter(name: str) -> Converter:
    """The converter registered under ``name``.

    Args:
        name: Registered converter name.

    Returns:
        The converter function.

    Raises:
        UnknownNameError: If no converter has that name (with suggestions).

    Example:
        >>> get_converter("satlas_fpn").__name__
        'satlas_fpn'
    """
    return CONVERTERS.get(name)


def list_converters(pattern: str = "*") -> list[str]:
    """Sorted names of registered converters matching an ``fnmatch`` glob.

    Args:
        pattern: Glob, e.g. ``"satlas_*"``.

    Returns:
        Sorted names.

    Example:
        >>> list_converters("satlas_*")
        ['satlas_backbone', 'satlas_fpn']
    """
    return CONVERTERS.list(pattern)


@register_converter("satlas_backbone")
def satlas_backbone(state_dict: StateDict, report: LoadReport) -> StateDict:
    """SatlasPretrain file -> torchvision ``swin_v2_b`` / ResNet keys of its backbone.

    Keys that start with ``backbone.`` lose every leading ``backbone.``
    (two for single-image Swin files, three for multi-image ones, one for
    ResNets). Everything else (FPN, upsampling, task heads) goes to
    ``report.ignored`` with the reason.

    Args:
        state_dict: Raw Satlas checkpoint.
        report: Report that receives notes and ignored keys.

    Returns:
        The backbone tensors under torchvision names.

    Example:
        >>> import torch
        >>> sd = {"backbone.backbone.norm.weight": torch.ones(2)}
        >>> list(satlas_backbone(sd, LoadReport()))
        ['norm.weight']
    """
    out: StateDict = {}
    for key, value in state_dict.items():
        if not key.startswith("backbone."):
            report.ignored.append(f"{key} ({_satlas_reason(key)})")
            continue
        new = key
        while new.startswith("backbone."):
            new = new[len("backbone.") :]
        out[new] = value
    if out:
        report.adapted.append("satlas_backbone: stripped the leading 'backbone.' prefixes")
    return out


@register_converter("satlas_fpn")
def satlas_fpn(state_dict: StateDict, report: LoadReport) -> StateDict:
    """SatlasPretrain file -> the FPN keys ``inner_blocks.*`` / ``layer_blocks.*``.

    Loads strictly into ``geofm.heads.FPN(in_channels=[128, 256, 512, 1024],
    out_channels=128)`` for the Swin-B files (torchvision's key layout).

    Args:
        state_dict: Raw Satlas checkpoint.
        report: Report that receives notes and ignored keys.

    Returns:
        The FPN tensors with ``intermediates.0.fpn.`` stripped.

    Example:
        >>> import torch
        >>> sd = {"intermediates.0.fpn.inner_blocks.0.0.bias": torch.zeros(2)}
        >>> list(satlas_fpn(sd, LoadReport()))
        ['inner_blocks.0.0.bias']
    """
    out: StateDict = {}
    for key, value in state_dict.items():
        if key.startswith(_SATLAS_FPN):
            out[key[len(_SATLAS_FPN) :]] = value
        else:
            report.ignored.append(f"{key} (not part of the Satlas FPN)")
    if out:
        report.adapted.append(f"satlas_fpn: stripped {_SATLAS_FPN!r}")
    return out


def _se_wrapper(state_dict: StateDict) -> str:
    """The wrapper prefix under which SpectralEarth's backbone keys sit ('' for plain dicts)."""
    for wrapper in _SE_WRAPPERS:
        for key in state_dict:
            if not key.startswith(wrapper):
                continue
            rest = _se_alias(key[len(wrapper) :])
            if rest.startswith(_SE_TARGETS):
                return wrapper
    return ""


def _se_alias(key: str) -> str:
    for old, new in _SE_ALIASES:
        if key.startswith(old):
            key = new + key[len(old) :]
    return key


@register_converter("spectral_earth")
def spectral_earth(state_dict: StateDict, report: LoadReport) -> StateDict:
    """SpectralEarth checkpoint (plain, Lightning or MAE wrapper) -> plain backbone keys.

    Picks the wrapper the backbone sits under (``student_backbone.`` for
    DINO, ``backbone.`` for MoCo, ``encoder.`` for lightly's MAE encoder, or
    none), maps the MAE aliases back (``vit.`` -> ``vit_core.``,
    ``vit_core.patch_embed.spectral_adapter.`` -> ``spectral_adapter.``,
    ``vit_core.patch_embed.original_patch_embed.`` -> ``vit_core.patch_embed.``)
    and keeps ``spectral_adapter.*``, ``vit_core.*`` and ``resnet.*``.
    Teachers, momentum encoders, projection heads, decoders and classifiers
    are listed in ``report.ignored``.

    Args:
        state_dict: SpectralEarth checkpoint tensors.
        report: Report that receives notes and ignored keys.

    Returns:
        Keys of SpectralEarth's ``SpecVisionTransformer`` / ``SpecResNet50``.

    Example:
        >>> import torch
        >>> sd = {
        ...     "student_backbone.vit_core.cls_token": torch.zeros(1, 1, 4),
        ...     "teacher_backbone.vit_core.cls_token": torch.zeros(1, 1, 4),
        ... }
        >>> list(spectral_earth(sd, LoadReport()))
        ['vit_core.cls_token']
    """
    wrapper = _se_wrapper(state_dict)
    out: StateDict = {}
    for key, value in state_dict.items():
        if not key.startswith(wrapper):
            report.ignored.append(f"{key} (not part of the backbone under {wrapper!r})")
            continue
        new = _se_alias(key[len(wrapper) :])
        if new.startswith(_SE_HEADS):
            report.ignored.append(f"{key} (classifier head; the backbone has none)")
        elif new.startswith(_SE_TARGETS):
            out[new] = value
        else:
            report.ignored.append(f"{key} (not part of the SpectralEarth backbone)")
    if wrapper:
        report.adapted.append(f"spectral_earth: took the backbone under {wrapper!r}")
    return out


@register_converter("skysense_o_visual")
def skysense_o_visual(state_dict: StateDict, report: LoadReport) -> StateDict:
    """SkySense-O checkpoint -> its visual encoder's mmcls ``SwinTransformerV2`` keys.

    The published ``skysense_clip.pth`` nests the visual encoder in its
    ``model`` (and ``teacher``) dicts under ``backbone_gep.``;
    :func:`~geofm.hub.load.read_state_dict` takes the ``model`` one. A full
    ``SkySenseCLIP`` state dict holds it under ``visual.``. The first of these
    prefixes present is stripped and every other key (text tower,
    projections, other SkySense branches) is listed in ``report.ignored``; a
    dict without either prefix is taken as already converted. mmcls saves
    the ``relative_coords_table`` / ``relative_position_index`` buffers, which
    it (and geofm) recomputes on load: they are listed as ignored too.

    Args:
        state_dict: Flat tensors of one of the nested dicts.
        report: Report that receives notes and ignored keys.

    Returns:
        The visual encoder's keys (``patch_embed.*``, ``stages.*``, ``norm{i}.*``).

    Example:
        >>> import torch
        >>> sd = {
        ...     "backbone_gep.patch_embed.projection.weight": torch.zeros(1),
        ...     "backbone_gep.stages.0.blocks.0.attn.w_msa.relative_position_index": torch.zeros(1),
        ...     "backbone_s2.cls_token": torch.zeros(1),
        ... }
        >>> list(skysense_o_visual(sd, LoadReport()))
        ['patch_embed.projection.weight']
    """
    prefix = next((p for p in _SKYSENSE_VISUAL if any(k.startswith(p) for k in state_dict)), "")
    out: StateDict = {}
    for key, value in state_dict.items():
        if not key.startswith(prefix):
            report.ignored.append(f"{key} (not part of the SkySense-O visual encoder)")
        elif key.endswith(_SKYSENSE_BUFFERS):
            report.ignored.append(f"{key} (buffer recomputed from the window size on load)")
        else:
            out[key[len(prefix) :]] = value
    if prefix:
        report.adapted.append(f"skysense_o_visual: stripped {prefix!r}")
    return out


@register_converter("dofa")
def dofa(state_dict: StateDict, report: LoadReport) -> StateDict:
    """DOFA checkpoint (torchgeo's ``DOFA`` layout) -> the keys of geofm's DOFA encoder.

    ``cls_token``, ``pos_embed``, ``patch_embed.*`` (``fclayer.*`` and
    ``weight_generator.*`` with DOFA's names) and ``blocks.*`` pass unchanged;
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
