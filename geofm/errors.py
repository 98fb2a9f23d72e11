"""Error types raised by geofm.

Every geofm error subclasses :class:`GeofmError` *and* the builtin exception a
caller would naturally catch, so ``except ValueError`` keeps working (the same
idea as torchgeo's ``DatasetNotFoundError(FileNotFoundError)``).

Messages follow one formula: what was wrong, the value received, what was
expected, and how to fix it.

Example:
    >>> from geofm.errors import ShapeError
    >>> try:
    ...     raise ShapeError("expected 6 bands, got 4. Pass a (N, 6, H, W) tensor.")
    ... except ValueError as err:
    ...     print(type(err).__name__)
    ShapeError
"""

from __future__ import annotations

__all__ = [
    "DatasetNotFoundError",
    "GeofmError",
    "MissingDependencyError",
    "ShapeError",
    "UnknownNameError",
    "UnsupportedModuleError",
    "WeightsError",
]


class GeofmError(Exception):
    """Base class of every error geofm raises on purpose.

    Example:
        >>> issubclass(ShapeError, GeofmError)
        True
    """


class ShapeError(GeofmError, ValueError):
    """A tensor or array has the wrong shape, band count or size.

    Example:
        >>> isinstance(ShapeError("expected 3 bands, got 4"), ValueError)
        True
    """


class UnknownNameError(GeofmError, LookupError):
    """A name is not in a registry (backbone, sensor, weights, ...).

    Subclasses :class:`LookupError` rather than :class:`KeyError`, whose
    ``str()`` wraps the message in quotes.

    Example:
        >>> str(UnknownNameError("Unknown backbone 'x'."))
        "Unknown backbone 'x'."
    """


class UnsupportedModuleError(GeofmError, TypeError):
    """A module of a type (or configuration) an operation cannot handle was targeted.

    Raised, for example, when LoRA targets an ``nn.Embedding``; the message
    lists the supported types.

    Example:
        >>> isinstance(UnsupportedModuleError("nn.Embedding"), TypeError)
        True
    """


class WeightsError(GeofmError, RuntimeError):
    """Weights cannot be found, verified, read or loaded.

    Example:
        >>> isinstance(WeightsError("sha256 mismatch"), RuntimeError)
        True
    """


class MissingDependencyError(GeofmError, ImportError):
    """An optional dependency needed by the called function is not installed.

    Example:
        >>> isinstance(MissingDependencyError("pip install rasterio"), ImportError)
        True
    """


class DatasetNotFoundError(GeofmError, FileNotFoundError):
    """A dataset directory is missing or not laid out as the reader expects.

    geofm never downloads data: the message describes the expected layout
    (torchgeo's ``DatasetNotFoundError`` idea). Subclasses
    :class:`FileNotFoundError`, so ``except FileNotFoundError`` catches it.

    Example:
        >>> isinstance(DatasetNotFoundError("no such folder"), FileNotFoundError)
        True
    """
