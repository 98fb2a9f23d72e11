"""Catalog of published weights: typed :class:`WeightsSpec` records in a registry.

Names follow ``<backbone>.<data>_<method>`` (STYLE.md), e.g.
``dinov2_vit_small_patch14.lvd142m``. ``create_backbone(name, pretrained=True)``
takes the backbone's default entry; ``pretrained="lvd142m"`` picks a tag.
The entries themselves live with the model they load into, as timm's
``default_cfgs`` do: each backbone family file of :mod:`geofm.backbones`
registers its own (imported with :mod:`geofm.backbones`, which
:mod:`geofm.hub` imports). Every field was taken from the publisher's or a
re-host's own files, and unknown fields are ``None`` (see each entry's notes).

This module is model-agnostic: it resolves a spec to a local file, its
expected hash and its converter function; the backbone registry builds the
model (:func:`geofm.create_backbone`).

Example:
    >>> from geofm.weights.catalog import get_weights, list_weights
    >>> "dinov2_vit_small_patch14.lvd142m" in list_weights("dinov2_*")
    True
    >>> get_weights("dinov2_vit_small_patch14.lvd142m").repo_id
    'timm/vit_small_patch14_dinov2.lvd142m'
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from geofm._registry import Registry
from geofm.errors import UnknownNameError, WeightsError
from geofm.weights.convert import Converter, get_converter
from geofm.weights.download import fetch_weights
from geofm.weights.load import CHECKPOINT_SUFFIXES

__all__ = [
    "TORCHGEO_HASH_NOTE",
    "WEIGHTS",
    "ResolvedWeights",
    "WeightsSpec",
    "get_weights",
    "list_weights",
    "register_weights",
    "resolve_pretrained",
    "resolve_weights",
    "weights_for_backbone",
]


TORCHGEO_HASH_NOTE = (
    "sha256 is the hash prefix torchgeo encodes in the file name (torchgeo itself does not "
    "check it; geofm does)."
)
"""Provenance note shared by every entry whose ``sha256`` is a torchgeo file-name prefix."""


@dataclass(frozen=True)
class WeightsSpec:
    """One published checkpoint.

    Every field is a fact read from the publisher's (or a re-host's) files;
    what could not be confirmed is ``None`` and says so in ``notes``. A
    ``sha256`` may be a prefix: torchvision-style hosts (torchgeo) put the
    first hex digits of the file's sha256 into its name, and geofm checks
    that prefix (the hosts themselves do not).

    Args:
        name: ``<backbone>.<tag>``; the part before the first dot is the
            registered backbone the weights load into.
        repo_id: Hugging Face Hub repository id, or ``None`` if hosted elsewhere.
        filename: File inside the repository (or the published file name of a
            non-hub download), or ``None`` where the name is not known.
        revision: Pinned commit, or ``None`` where unknown (the hub's ``main``).
        sha256: Full sha256 or a hex prefix of it (>= 8 digits), or ``None``.
        url: Download page or direct link, for the error message and docs.
        converter: Name of the converter (:mod:`geofm.weights.convert`) from the
            original layout, or ``None`` when the backbone family reads the
            file as it is.
        sensor: Registered sensor name of the bands (and normalisation) the
            weights expect.
        in_chans: Input channels of the checkpoint's first layer; the default
            ``in_chans`` when the backbone is built for these weights.
        license: Licence identifier (``"unknown"`` when none is published).
        citation: Paper reference.
        default: Whether this is the backbone's default entry for ``pretrained=True``.
        notes: Provenance and caveats (unconfirmed fields, layout, quirks).
        unsupported_reason: Set when the checkpoint cannot be converted
            faithfully into a geofm module; loading then raises with it.

    Example:
        >>> spec = WeightsSpec(name="resnet18.toy", repo_id="org/repo", filename="m.safetensors")
        >>> spec.backbone, spec.tag, spec.hash_known
        ('resnet18', 'toy', False)
    """

    name: str
    repo_id: str | None = None
    filename: str | None = "model.safetensors"
    revision: str | None = None
    sha256: str | None = None
    url: str | None = None
    converter: str | None = None
    sensor: str | None = None
    in_chans: int | None = None
    license: str = ""
    citation: str = ""
    default: bool = False
    notes: str = ""
    unsupported_reason: str | None = None

    @property
    def backbone(self) -> str:
        """Registered backbone name these weights load into."""
        return self.name.split(".", 1)[0]

    @property
    def tag(self) -> str:
        """Part of the name after the backbone."""
        return self.name.split(".", 1)[1] if "." in self.name else ""

    @property
    def hash_known(self) -> bool:
        """Whether a sha256 (or prefix) is recorded, so the file is verified."""
        return self.sha256 is not None

    @property
    def source(self) -> str:
        """Where the file comes from, for messages: ``hf://repo@rev/file`` or the URL."""
        if self.repo_id is not None:
            rev = f"@{self.revision}" if self.revision else ""
            return f"hf://{self.repo_id}{rev}/{self.filename}"
        return self.url or "unknown"


@dataclass(frozen=True)
class ResolvedWeights:
    """A local weights file with everything needed to load it.

    Args:
        path: The local file.
        sha256: Expected hash (or prefix) to verify, if known.
        converter: Function from the file's layout to the model's source layout.
        spec: Catalog entry the file belongs to, or ``None`` for a user's file.

    Example:
        >>> ResolvedWeights(path=Path("w.safetensors")).spec is None
        True
    """

    path: Path
    sha256: str | None = None
    converter: Converter | None = None
    spec: WeightsSpec | None = None


WEIGHTS: Registry[WeightsSpec] = Registry("weights")


def _check_spec(spec: WeightsSpec) -> None:
    if "." not in spec.name or not spec.name.split(".", 1)[1]:
        raise ValueError(
            f"Weights name {spec.name!r} must read '<backbone>.<tag>', e.g. 'resnet50.my_data'."
        )
    if spec.sha256 is not None:
        want = spec.sha256.lower()
        if len(want) < 8 or any(c not in "0123456789abcdef" for c in want):
            raise ValueError(
                f"WeightsSpec {spec.name!r} has sha256={spec.sha256!r}; expected a hex digest "
                "or a prefix of at least 8 hex digits."
            )
    if spec.repo_id is None and spec.url is None:
        raise ValueError(
            f"WeightsSpec {spec.name!r} has neither repo_id nor url. Give users a place to "
            "fetch the file from."
        )
    if spec.converter is not None:
        get_converter(spec.converter)  # raises UnknownNameError with suggestions


def register_weights(spec: WeightsSpec) -> WeightsSpec:
    """Add ``spec`` to the catalog and return it.

    Args:
        spec: The record.

    Returns:
        The same record.

    Raises:
        ValueError: If the name is taken or malformed, the hash is not hex,
            or neither ``repo_id`` nor ``url`` is given.
        UnknownNameError: If ``spec.converter`` is not a registered converter.

    Example:
        >>> _ = register_weights(WeightsSpec(name="doc_backbone.toy", repo_id="org/r"))
        >>> "doc_backbone.toy" in list_weights("doc_*")
        True
    """
    _check_spec(spec)
    WEIGHTS.add(spec.name, spec)
    return spec


def get_weights(name: str) -> WeightsSpec:
    """Look up a catalog entry.

    Args:
        name: ``<backbone>.<tag>``.

    Returns:
        The :class:`WeightsSpec`.

    Raises:
        UnknownNameError: If the entry does not exist (with suggestions).

    Example:
        >>> get_weights("no_such.weights")
        Traceback (most recent call last):
        ...
        geofm.errors.UnknownNameError: Unknown weights 'no_such.weights'...
    """
    return WEIGHTS.get(name)


def list_weights(pattern: str = "*") -> list[str]:
    """Sorted catalog names matching an ``fnmatch`` glob.

    Args:
        pattern: Glob such as ``"dinov2_*"``.

    Returns:
        Sorted names.

    Example:
        >>> list_weights("no_such_*")
        []
    """
    return WEIGHTS.list(pattern)


def weights_for_backbone(backbone: str) -> list[WeightsSpec]:
    """Catalog entries that load into ``backbone``.

    Args:
        backbone: Registered backbone name.

    Returns:
        Matching specs, default first.

    Example:
        >>> [s.tag for s in weights_for_backbone("dinov2_vit_small_patch14")]
        ['lvd142m']
    """
    specs = [s for _, s in WEIGHTS.items() if s.backbone == backbone]
    return sorted(specs, key=lambda s: not s.default)


def _pick(backbone: str, tag: str | None) -> WeightsSpec:
    specs = weights_for_backbone(backbone)
    if tag is not None:
        specs = [s for s in specs if s.tag == tag]
    if not specs:
        known = ", ".join(s.name for s in weights_for_backbone(backbone)) or "none"
        raise UnknownNameError(
            f"No pretrained weights are registered for backbone {backbone!r}"
            + (f" with tag {tag!r}" if tag else "")
            + f". Registered for it: {known}. Pass a local file instead: "
            "pretrained='path/to/weights.safetensors'."
        )
    return specs[0]


def resolve_weights(
    spec: WeightsSpec | str,
    *,
    path: str | os.PathLike[str] | None = None,
    cache_dir: str | Path | None = None,
) -> ResolvedWeights:
    """Local file, expected hash and converter of a catalog entry.

    Resolution order: ``path`` if given (a file you downloaded yourself), then
    geofm's local weights folder, then the huggingface_hub cache, then a
    download unless ``HF_HUB_OFFLINE=1`` (see :func:`~geofm.weights.download.fetch_weights`).

    Args:
        spec: The entry or its name.
        path: A local copy of the entry's file; its hash is still verified.
        cache_dir: huggingface_hub cache directory (default: ``HF_HUB_CACHE``).

    Returns:
        The :class:`ResolvedWeights`.

    Raises:
        WeightsError: The entry cannot be converted faithfully
            (``unsupported_reason``), ``path`` is not a file, or the file is
            not available (one-line message on where to put it or how to fetch it).
        UnknownNameError: Unknown entry name.

    Example:
        An entry that is on no hub and not downloaded yet says where to put it:

        >>> spec = WeightsSpec(name="resnet18.doc_manual", url="https://example.org/w.pth",
        ...                    filename="doc_manual_w.pth")
        >>> resolve_weights(spec)
        Traceback (most recent call last):
        ...
        geofm.errors.WeightsError: ...
    """
    entry = get_weights(spec) if isinstance(spec, str) else spec
    if entry.unsupported_reason is not None:
        raise WeightsError(
            f"Weights {entry.name!r} cannot be loaded: {entry.unsupported_reason} "
            "The catalog lists them for reference only."
        )
    if path is not None:
        file = Path(os.fspath(path)).expanduser()
        if not file.is_file():
            raise WeightsError(f"path={os.fspath(path)!r} for {entry.name!r} is not a file.")
    else:
        file = fetch_weights(entry, cache_dir=cache_dir)
    converter = get_converter(entry.converter) if entry.converter is not None else None
    return ResolvedWeights(path=file, sha256=entry.sha256, converter=converter, spec=entry)


def _is_path(value: object) -> bool:
    if isinstance(value, os.PathLike):
        return True
    if not isinstance(value, str):
        return False
    return "/" in value or os.sep in value or Path(value).suffix.lower() in CHECKPOINT_SUFFIXES


def resolve_pretrained(backbone: str, pretrained: bool | str | os.PathLike[str]) -> ResolvedWeights:
    """Turn ``create_backbone``'s ``pretrained=`` into a :class:`ResolvedWeights`.

    Args:
        backbone: Registered backbone name.
        pretrained: ``True`` (the default entry), a catalog tag, or a path to a
            local file (loaded without converter or known hash).

    Returns:
        The resolved file with hash, converter and spec.

    Raises:
        WeightsError: A path that is not a file, or a catalog file that is
            not available.
        UnknownNameError: An unknown tag.
        TypeError: ``pretrained`` of another type.

    Example:
        >>> resolve_pretrained("resnet50", "no_such_tag")
        Traceback (most recent call last):
        ...
        geofm.errors.UnknownNameError: No pretrained weights are registered for backbone ...
    """
    if _is_path(pretrained):
        path = Path(os.fspath(pretrained)).expanduser()  # type: ignore[arg-type]
        if not path.is_file():
            raise WeightsError(f"pretrained={os.fspath(path)!r} is not a file. Check the path.")
        return ResolvedWeights(path=path)
    if pretrained is True or (isinstance(pretrained, str) and pretrained):
        tag = None if pretrained is True else str(pretrained)
        return resolve_weights(_pick(backbone, tag))
    raise TypeError(
        f"pretrained must be False, True, a catalog tag or a file path, got {pretrained!r}."
    )
