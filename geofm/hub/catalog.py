"""Catalog of published weights: typed :class:`WeightsSpec` records in a registry.

Names follow ``<backbone>.<data>_<method>`` (STYLE.md), e.g.
``dinov2_vit_small_patch14.lvd142m``. ``create_backbone(name, pretrained=True)``
takes the backbone's default entry; ``pretrained="lvd142m"`` picks a tag.

Example:
    >>> from geofm.hub.catalog import list_weights
    >>> isinstance(list_weights(), list)
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from geofm._registry import Registry
from geofm.errors import UnknownNameError

__all__ = [
    "WeightsSpec",
    "get_weights",
    "list_weights",
    "register_weights",
    "resolve_catalog_weights",
    "weights_for_backbone",
]


@dataclass(frozen=True)
class WeightsSpec:
    """One published checkpoint.

    Args:
        name: ``<backbone>.<tag>``; the part before the first dot is the
            registered backbone the weights load into.
        repo_id: Hugging Face Hub repository id (or ``None`` if hosted elsewhere).
        filename: File inside the repository.
        revision: Pinned commit, or ``None`` where unknown.
        sha256: Full sha256 or the hash prefix the host encodes, or ``None``.
        url: Download page when not on a hub (used in the error message).
        converter: Name of the layout converter from the original checkpoint.
        sensor: Sensor name of the bands the weights expect.
        license: Licence identifier.
        citation: Paper reference.
        default: Whether this is the backbone's default entry for ``pretrained=True``.

    Example:
        >>> WeightsSpec(name="resnet18.toy", repo_id="org/repo", filename="m.safetensors").backbone
        'resnet18'
    """

    name: str
    repo_id: str | None = None
    filename: str = "model.safetensors"
    revision: str | None = None
    sha256: str | None = None
    url: str | None = None
    converter: str | None = None
    sensor: str | None = None
    license: str = ""
    citation: str = ""
    default: bool = False

    @property
    def backbone(self) -> str:
        """Registered backbone name these weights load into."""
        return self.name.split(".", 1)[0]

    @property
    def tag(self) -> str:
        """Part of the name after the backbone."""
        return self.name.split(".", 1)[1] if "." in self.name else ""


WEIGHTS: Registry[WeightsSpec] = Registry("weights")


def register_weights(spec: WeightsSpec) -> WeightsSpec:
    """Add ``spec`` to the catalog and return it.

    Args:
        spec: The record.

    Returns:
        The same record.

    Raises:
        ValueError: If the name is taken.

    Example:
        >>> _ = register_weights(WeightsSpec(name="doc_backbone.toy", repo_id="org/r"))
        >>> "doc_backbone.toy" in list_weights("doc_*")
        True
    """
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
        >>> weights_for_backbone("no_such_backbone")
        []
    """
    specs = [s for _, s in WEIGHTS.items() if s.backbone == backbone]
    return sorted(specs, key=lambda s: not s.default)


def resolve_catalog_weights(backbone: str, tag: str | None) -> tuple[Path, str | None]:
    """Local file and expected hash for ``pretrained=True`` / ``pretrained="tag"``.

    Args:
        backbone: Registered backbone name.
        tag: Catalog tag, or ``None`` for the default entry.

    Returns:
        ``(path, sha256)`` of the resolved file.

    Raises:
        UnknownNameError: If the catalog has no such entry; the message says how
            to pass a local file instead.

    Example:
        >>> resolve_catalog_weights("no_such_backbone", None)
        Traceback (most recent call last):
        ...
        geofm.errors.UnknownNameError: No pretrained weights are registered for ...
    """
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
    from geofm.hub.download import fetch_weights

    spec = specs[0]
    return fetch_weights(spec), spec.sha256
