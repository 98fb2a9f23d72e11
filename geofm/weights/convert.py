"""Converter mechanism: named functions from published checkpoint layouts to geofm's.

A converter is a plain function ``(state_dict, report) -> state_dict``. It
renames the keys of one *original* checkpoint layout and drops (and lists in
``report.ignored``, with the reason) the tensors that belong to parts of the
original model geofm does not build (projection heads, decoders, teachers).
It never invents or re-initialises a tensor. Converters are registered by
name so a :class:`~geofm.weights.catalog.WeightsSpec` can refer to one with a
string (``converter="satlas_backbone"``).

This module holds only the mechanism and knows no model class. The
converters themselves live with the model family whose checkpoints they read
(timm's ``checkpoint_filter_fn`` idea): ``satlas_backbone`` and ``satlas_fpn``
in :mod:`geofm.backbones.swin`, ``spectral_earth`` in
:mod:`geofm.backbones.spectral`, ``skysense_o_visual`` in
:mod:`geofm.backbones.skysense` and ``dofa`` in :mod:`geofm.backbones.dofa`;
they are registered when :mod:`geofm.backbones` is imported.

Example:
    >>> import torch
    >>> from geofm.weights.load import LoadReport
    >>> @register_converter("doc_strip_module")
    ... def doc_strip_module(state_dict, report):
    ...     return {k.removeprefix("module."): v for k, v in state_dict.items()}
    >>> sorted(get_converter("doc_strip_module")({"module.w": torch.zeros(1)}, LoadReport()))
    ['w']
"""

from __future__ import annotations

from collections.abc import Callable

from geofm._registry import Registry
from geofm.weights.load import LoadReport, StateDict

__all__ = [
    "CONVERTERS",
    "Converter",
    "get_converter",
    "list_converters",
    "register_converter",
    "take_prefixed",
]

Converter = Callable[[StateDict, LoadReport], StateDict]
"""``(state_dict, report) -> state_dict`` from an original layout to a geofm source layout."""

CONVERTERS: Registry[Converter] = Registry("converter")


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
        >>> get_converter("doc_strip_module").__name__  # registered in the module example
        'doc_strip_module'
    """
    return CONVERTERS.get(name)


def list_converters(pattern: str = "*") -> list[str]:
    """Sorted names of registered converters matching an ``fnmatch`` glob.

    Args:
        pattern: Glob, e.g. ``"satlas_*"``.

    Returns:
        Sorted names.

    Example:
        >>> list_converters("doc_strip*")  # registered in the module example
        ['doc_strip_module']
    """
    return CONVERTERS.list(pattern)


def take_prefixed(
    state_dict: StateDict, report: LoadReport, prefix: str, *, converter: str, outside: str
) -> StateDict:
    """The tensors under ``prefix``, with it stripped; every other key ignored with a reason.

    The common step of converters that pull one part out of a larger
    checkpoint (a backbone out of a detector, an FPN out of a full model).

    Args:
        state_dict: Checkpoint tensors.
        report: Receives each key outside ``prefix`` in ``report.ignored``
            (``"<key> (<outside>)"``) and, when something was stripped, a note
            in ``report.adapted``.
        prefix: Key prefix to keep and strip (``""`` keeps everything).
        converter: Converter name used in the note.
        outside: Why keys outside ``prefix`` are dropped.

    Returns:
        The kept tensors under their stripped names.

    Example:
        >>> import torch
        >>> report = LoadReport()
        >>> sd = {"fpn.w": torch.zeros(1), "head.w": torch.zeros(1)}
        >>> list(take_prefixed(sd, report, "fpn.", converter="doc", outside="not the FPN"))
        ['w']
        >>> report.ignored, report.adapted
        (['head.w (not the FPN)'], ["doc: stripped 'fpn.'"])
    """
    out: StateDict = {}
    for key, value in state_dict.items():
        if key.startswith(prefix):
            out[key[len(prefix) :]] = value
        else:
            report.ignored.append(f"{key} ({outside})")
    if prefix and out:
        report.adapted.append(f"{converter}: stripped {prefix!r}")
    return out
