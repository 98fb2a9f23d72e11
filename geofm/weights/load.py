"""Safe, strict, reported loading of state dicts (model-agnostic).

This is the part of :mod:`geofm.weights` that knows no model class: reading a
checkpoint file safely, verifying its hash, and loading it strictly into any
``nn.Module`` with a :class:`LoadReport` of what did not match.

Safety rules:

- ``.safetensors`` is read with :func:`safetensors.torch.load_file`;
- ``.pt`` / ``.pth`` / ``.bin`` / ``.ckpt`` only with
  ``torch.load(weights_only=True)``: plain unpickling never happens, so a
  checkpoint cannot run code;
- a known sha256 is verified before anything is read (mismatch is an error
  that names both hashes);
- dtypes are never coerced silently: a float tensor loads into a float
  parameter of another precision (reported in ``LoadReport.converted``), any
  other dtype difference (int8, bool or int64 into float, float into an integer
  buffer) is refused like a shape conflict (``LoadReport.dtype_mismatched``).

Models may customise how a foreign layout maps to theirs by defining
``adapt_state_dict(state_dict, report) -> state_dict`` (see
:class:`geofm.backbones.Backbone`); :func:`load_weights` calls it when present.

Example:
    >>> import tempfile, torch
    >>> from safetensors.torch import save_file
    >>> layer = torch.nn.Linear(2, 2)
    >>> path = tempfile.mkdtemp() + "/w.safetensors"
    >>> save_file({k: v.contiguous() for k, v in layer.state_dict().items()}, path)
    >>> report = load_weights(torch.nn.Linear(2, 2), path)
    >>> report.ok
    True
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from geofm.errors import WeightsError

__all__ = [
    "CHECKPOINT_SUFFIXES",
    "LoadReport",
    "StateDict",
    "file_sha256",
    "load_state_dict_into",
    "load_weights",
    "read_state_dict",
    "verify_sha256",
]

StateDict = dict[str, torch.Tensor]

_PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
CHECKPOINT_SUFFIXES = (".safetensors", *_PICKLE_SUFFIXES)
"""File suffixes geofm reads as checkpoints (safetensors, or pickles through ``weights_only``)."""
_CONTAINER_KEYS = ("state_dict", "model", "module", "teacher", "student")


@runtime_checkable
class _AdaptsStateDict(Protocol):
    def adapt_state_dict(self, state_dict: StateDict, report: LoadReport) -> StateDict: ...


@dataclass
class LoadReport:
    """What happened when a state dict was loaded into a model.

    Args:
        source: Where the weights came from (path or description).
        missing: Model keys absent from the checkpoint.
        unexpected: Checkpoint keys the model does not have.
        mismatched: ``(key, model_shape, checkpoint_shape)`` for shape conflicts.
        adapted: Human-readable notes on every transformation applied
            (prefix stripped, position embedding resampled, input channels adapted).
        ignored: Checkpoint keys dropped on purpose by a converter, with the reason.
        dtype_mismatched: ``(key, model_dtype, checkpoint_dtype)`` for tensors
            whose dtype cannot be converted (anything but float to float):
            refused, never loaded.
        converted: ``(key, model_dtype, checkpoint_dtype)`` for float tensors
            loaded into a float parameter of another precision (e.g. a float16
            checkpoint into a float32 model).

    Example:
        >>> r = LoadReport(source="x", missing=["a.weight"])
        >>> r.ok
        False
        >>> print(r.summary())
        x: 1 missing, 0 unexpected, 0 shape-mismatched, 0 dtype-mismatched
          missing: a.weight
    """

    source: str = ""
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    dtype_mismatched: list[tuple[str, str, str]] = field(default_factory=list)
    converted: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every key matched in name, shape and a loadable dtype."""
        return not (self.missing or self.unexpected or self.mismatched or self.dtype_mismatched)

    def summary(self, max_keys: int = 10) -> str:
        """Multi-line description listing up to ``max_keys`` keys per category.

        Args:
            max_keys: How many keys to list per category before eliding.

        Returns:
            The summary text.

        Example:
            >>> LoadReport(source="w.safetensors").summary()
            'w.safetensors: 0 missing, 0 unexpected, 0 shape-mismatched, 0 dtype-mismatched'
        """

        def clip(keys: list[str]) -> str:
            shown = ", ".join(keys[:max_keys])
            more = len(keys) - max_keys
            return shown + (f", ... (+{more} more)" if more > 0 else "")

        lines = [
            f"{self.source}: {len(self.missing)} missing, {len(self.unexpected)} unexpected, "
            f"{len(self.mismatched)} shape-mismatched, "
            f"{len(self.dtype_mismatched)} dtype-mismatched"
        ]
        if self.missing:
            lines.append(f"  missing: {clip(self.missing)}")
        if self.unexpected:
            lines.append(f"  unexpected: {clip(self.unexpected)}")
        if self.mismatched:
            items = [f"{k} (model {list(m)}, checkpoint {list(c)})" for k, m, c in self.mismatched]
            lines.append(f"  shape-mismatched: {clip(items)}")
        if self.dtype_mismatched:
            items = [f"{k} (model {m}, checkpoint {c})" for k, m, c in self.dtype_mismatched]
            lines.append(f"  dtype-mismatched: {clip(items)}")
        if self.converted:
            items = [f"{k} ({c} -> {m})" for k, m, c in self.converted]
            lines.append(f"  converted: {clip(items)}")
        if self.adapted:
            lines.append(f"  adapted: {'; '.join(self.adapted)}")
        if self.ignored:
            lines.append(f"  ignored: {clip(self.ignored)}")
        return "\n".join(lines)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks.

    Args:
        path: File to hash.

    Returns:
        Lower-case hex digest.

    Example:
        >>> import tempfile
        >>> p = tempfile.mkdtemp() + "/empty"
        >>> _ = open(p, "wb").close()
        >>> file_sha256(p)[:12]
        'e3b0c44298fc'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: str | os.PathLike[str], expected: str) -> None:
    """Check that ``path`` hashes to ``expected`` (a full digest or a prefix).

    A prefix (at least 8 hex digits) supports hosts that encode a hash prefix
    in the file name, as torchvision and torchgeo do.

    Args:
        path: File to check.
        expected: Full sha256 hex digest or a prefix of it.

    Raises:
        ValueError: If ``expected`` is not hex or shorter than 8 characters.
        WeightsError: If the hashes differ; the message names both.

    Example:
        >>> import tempfile
        >>> p = tempfile.mkdtemp() + "/empty"
        >>> _ = open(p, "wb").close()
        >>> verify_sha256(p, "e3b0c442")
    """
    want = expected.lower()
    if len(want) < 8 or any(c not in "0123456789abcdef" for c in want):
        raise ValueError(
            f"expected a sha256 hex digest or a prefix of >= 8 hex digits, got {expected!r}."
        )
    got = file_sha256(path)
    if not got.startswith(want):
        raise WeightsError(
            f"sha256 mismatch for {os.fspath(path)}: expected {want}, got {got}. "
            "The file is corrupt or not the published one; delete it and fetch it again."
        )


def _unwrap(obj: Any, path: Path, notes: list[str]) -> StateDict:
    if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return {str(k): v for k, v in obj.items()}
    if isinstance(obj, Mapping):
        for key in _CONTAINER_KEYS:
            inner = obj.get(key)
            if (
                isinstance(inner, Mapping)
                and inner
                and all(isinstance(v, torch.Tensor) for v in inner.values())
            ):
                notes.append(f"took the state dict stored under {key!r}")
                return {str(k): v for k, v in inner.items()}
    kind = type(obj).__name__
    keys = list(obj)[:8] if isinstance(obj, Mapping) else []
    raise WeightsError(
        f"{path} holds a {kind} that is not a state dict (top-level keys: {keys}). "
        f"Expected a mapping of names to tensors, or one under one of {list(_CONTAINER_KEYS)}."
    )


def read_state_dict(
    path: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    notes: list[str] | None = None,
) -> StateDict:
    """Read a state dict from a file, safely.

    Args:
        path: ``.safetensors`` (preferred) or ``.pt``/``.pth``/``.bin``/``.ckpt``.
        sha256: Expected sha256 (or >= 8-digit prefix), verified before reading.
        notes: Optional list that receives notes on container unwrapping.

    Returns:
        Mapping of parameter names to CPU tensors.

    Raises:
        WeightsError: If the file is missing, the hash differs, the file is
            truncated or corrupt, it needs unsafe unpickling, or it holds no
            state dict.
        ValueError: If the suffix is not a known checkpoint format.

    Example:
        >>> import tempfile, torch
        >>> p = tempfile.mkdtemp() + "/w.pt"
        >>> torch.save({"w": torch.ones(2)}, p)
        >>> read_state_dict(p)["w"]
        tensor([1., 1.])
    """
    file = Path(path)
    if not file.is_file():
        raise WeightsError(f"Weights file {file} does not exist. Check the path.")
    if sha256 is not None:
        verify_sha256(file, sha256)
    suffix = file.suffix.lower()
    sink = notes if notes is not None else []
    if suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(file), device="cpu")
        except (SafetensorError, OSError, ValueError) as err:
            raise WeightsError(
                f"Cannot read {file} as safetensors ({err}). The file is truncated or corrupt; "
                "fetch it again."
            ) from None
    if suffix in _PICKLE_SUFFIXES:
        try:
            obj = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
            raise WeightsError(
                f"Refused to load {file}: it cannot be read with torch.load(weights_only=True) "
                f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). "
                "geofm never unpickles arbitrary objects. Convert the file to safetensors in a "
                "trusted environment."
            ) from None
        return _unwrap(obj, file, sink)
    raise ValueError(
        f"Unknown checkpoint format {suffix!r} for {file}. Expected .safetensors, "
        f"{', '.join(_PICKLE_SUFFIXES)}."
    )


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _float_conversion(value: torch.Tensor, want: torch.dtype) -> torch.Tensor | None:
    """``value`` as ``want`` when both are float and no finite value overflows, else ``None``."""
    if not (value.dtype.is_floating_point and want.is_floating_point):
        return None
    converted = value.to(want)
    if torch.finfo(want).max >= torch.finfo(value.dtype).max:
        return converted  # same or wider range: every finite value stays finite
    if not torch.equal(torch.isfinite(converted), torch.isfinite(value)):
        return None
    return converted


def load_state_dict_into(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    *,
    strict: bool = True,
    source: str = "state dict",
    report: LoadReport | None = None,
) -> LoadReport:
    """Load ``state_dict`` into ``model`` and report every key that did not match.

    Unlike ``nn.Module.load_state_dict``, shape conflicts are reported like
    missing keys instead of raising a bare ``RuntimeError``, and with
    ``strict=False`` the matching keys still load.

    Dtypes: a tensor of the model's dtype loads as is; a floating-point tensor
    loads into a floating-point parameter of another precision and is listed
    in :attr:`LoadReport.converted`. Every other dtype difference (integer or
    bool into float, float into integer, integer widths) is refused: listed in
    :attr:`LoadReport.dtype_mismatched` and never loaded, like a shape
    conflict. A float conversion that would turn finite values into
    infinities (e.g. ``1e5`` into float16) is refused too.

    Args:
        model: Target module (modified in place).
        state_dict: Names to tensors, already in the model's layout.
        strict: Raise when anything is missing, unexpected, shape- or
            dtype-mismatched.
        source: Description used in the report and messages.
        report: Report to extend (e.g. one that already holds conversion notes).

    Returns:
        The :class:`LoadReport`.

    Raises:
        WeightsError: If ``strict`` and the keys, shapes or dtypes do not all
            match; the message holds the report summary, which names each key
            with the model's and the checkpoint's shape or dtype.

    Example:
        >>> import torch
        >>> weight = {"weight": torch.zeros(3, 2)}
        >>> r = load_state_dict_into(torch.nn.Linear(2, 3), weight, strict=False)
        >>> r.missing
        ['bias']
        >>> half = {"weight": torch.zeros(3, 2, dtype=torch.float16), "bias": torch.zeros(3)}
        >>> load_state_dict_into(torch.nn.Linear(2, 3), half).converted
        [('weight', 'float32', 'float16')]
    """
    rep = report if report is not None else LoadReport(source=source)
    rep.source = rep.source or source
    own = model.state_dict()
    rep.missing = [k for k in own if k not in state_dict]
    rep.unexpected = [k for k in state_dict if k not in own]
    rep.mismatched = [
        (k, tuple(own[k].shape), tuple(v.shape))
        for k, v in state_dict.items()
        if k in own and tuple(own[k].shape) != tuple(v.shape)
    ]
    bad = {k for k, _, _ in rep.mismatched}
    loadable: StateDict = {}
    rep.dtype_mismatched, rep.converted = [], []
    for key, value in state_dict.items():
        if key not in own or key in bad:
            continue
        want = own[key].dtype
        if value.dtype == want:
            loadable[key] = value
            continue
        names = (key, _dtype_name(want), _dtype_name(value.dtype))
        converted = _float_conversion(value, want)
        if converted is None:
            rep.dtype_mismatched.append(names)
        else:
            loadable[key] = converted
            rep.converted.append(names)
    if strict and not rep.ok:
        raise WeightsError(
            "Strict loading failed. " + rep.summary() + "\nPass strict=False (to "
            "load_weights / load_state_dict_into; create_backbone loads strictly: build it with "
            "pretrained=False, then call load_weights) to load the matching keys anyway, or "
            "convert the checkpoint to this model's layout and dtypes."
        )
    model.load_state_dict(loadable, strict=False)
    return rep


def load_weights(
    model: nn.Module,
    source: str | os.PathLike[str] | Mapping[str, torch.Tensor],
    *,
    strict: bool = True,
    converter: Callable[[StateDict, LoadReport], StateDict] | None = None,
    sha256: str | None = None,
) -> LoadReport:
    """Load weights from a file or a state dict into ``model``, strictly by default.

    Steps: read safely (:func:`read_state_dict`), apply ``converter`` (a
    function from an original checkpoint layout to the model's), then the
    model's own ``adapt_state_dict`` hook when it has one (geofm backbones
    use it for prefixes, position-embedding resampling and input-channel
    adaptation), then :func:`load_state_dict_into`.

    Args:
        model: Target module (modified in place).
        source: Path to a checkpoint file, or a state dict.
        strict: Raise on any missing, unexpected or shape-mismatched key.
        converter: Optional ``(state_dict, report) -> state_dict`` layout converter.
        sha256: Expected hash of the file, verified before reading.

    Returns:
        The :class:`LoadReport`.

    Raises:
        WeightsError: See :func:`read_state_dict` and :func:`load_state_dict_into`.

    Example:
        >>> import torch
        >>> sd = {"weight": torch.ones(1, 1), "bias": torch.zeros(1)}
        >>> load_weights(torch.nn.Linear(1, 1), sd).ok
        True
    """
    if isinstance(source, Mapping):
        label = "state dict"
        report = LoadReport(source=label)
        state = dict(source)
    else:
        label = os.fspath(source)
        report = LoadReport(source=label)
        state = read_state_dict(source, sha256=sha256, notes=report.adapted)
    if converter is not None:
        state = converter(state, report)
    if isinstance(model, _AdaptsStateDict):
        state = model.adapt_state_dict(state, report)
    return load_state_dict_into(model, state, strict=strict, source=label, report=report)
