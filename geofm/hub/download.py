"""Find catalog weights on disk or fetch them through huggingface_hub.

Resolution order: the huggingface_hub cache (``HF_HUB_CACHE``), then a download
unless ``HF_HUB_OFFLINE=1``. huggingface_hub is imported only here, lazily.

Example:
    >>> from geofm.hub.catalog import WeightsSpec
    >>> fetch_weights(WeightsSpec(name="x.y", url="https://example.org/x"))
    Traceback (most recent call last):
    ...
    geofm.errors.WeightsError: Weights 'x.y' are not hosted on a hub. ...
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from geofm.errors import MissingDependencyError, WeightsError

if TYPE_CHECKING:
    from geofm.hub.catalog import WeightsSpec

__all__ = ["fetch_weights"]


def fetch_weights(spec: WeightsSpec, *, cache_dir: str | Path | None = None) -> Path:
    """Local path of ``spec``'s file: from the cache, or downloaded.

    Args:
        spec: Catalog entry.
        cache_dir: huggingface_hub cache directory (default: ``HF_HUB_CACHE``).

    Returns:
        Path to the file.

    Raises:
        WeightsError: The file is not hosted on a hub, or it is not cached and
            cannot be downloaded (offline or unreachable). The one-line message
            says how to fetch it or where to put it.
        MissingDependencyError: huggingface_hub is not installed.
    """
    if spec.repo_id is None:
        where = f" from {spec.url}" if spec.url else ""
        raise WeightsError(
            f"Weights {spec.name!r} are not hosted on a hub. Download {spec.filename!r}{where} "
            "and pass its path: pretrained='path/to/file'."
        )
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:  # pragma: no cover - huggingface_hub is a runtime dependency
        raise MissingDependencyError(
            "huggingface_hub is required to fetch catalog weights. Install it with: "
            "pip install huggingface-hub."
        ) from None
    try:
        path = hf_hub_download(
            repo_id=spec.repo_id,
            filename=spec.filename,
            revision=spec.revision,
            cache_dir=str(cache_dir) if cache_dir is not None else None,
        )
    except Exception as err:  # offline, not found, network: all end in one message
        raise WeightsError(
            f"Cannot get {spec.repo_id}/{spec.filename} for {spec.name!r} "
            f"({type(err).__name__}). It is not in the huggingface_hub cache and could not be "
            f"downloaded. Fetch it with `hf download {spec.repo_id} {spec.filename}` on a "
            "machine with network access, or pass a local file: pretrained='path/to/file'."
        ) from None
    return Path(path)
