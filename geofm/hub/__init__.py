"""Pretrained weights: safe, strict, reported loading.

Example:
    >>> from geofm.hub import LoadReport
    >>> LoadReport().ok
    True
"""

from __future__ import annotations

from geofm.hub.load import (
    LoadReport,
    file_sha256,
    load_state_dict,
    load_weights,
    read_state_dict,
    verify_sha256,
)

__all__ = [
    "LoadReport",
    "file_sha256",
    "load_state_dict",
    "load_weights",
    "read_state_dict",
    "verify_sha256",
]
