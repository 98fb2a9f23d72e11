"""Find catalog weights on disk or fetch them through huggingface_hub.

Resolution order for a :class:`~geofm.weights.catalog.WeightsSpec`:

1. geofm's local weights folder, ``<weights_dir>/<spec name>/<file name>``
   (:func:`weights_dir`: ``$GEOFM_WEIGHTS_DIR`` or ``~/.cache/geofm/weights``),
   where files you downloaded by hand go (the only option for weights that
   are not on a hub);
2. the huggingface_hub cache (``HF_HUB_CACHE``), through huggingface_hub's
   own ``hf_hub_download``, which also pins ``spec.revision``;
3. a download by ``hf_hub_download``, unless ``HF_HUB_OFFLINE=1``.

A file that cannot be found gives a one-line :class:`~geofm.errors.WeightsError`
saying where to put it or how to fetch it. huggingface_hub is imported only
inside :func:`fetch_weights`.

Example:
    >>> from geofm.weights.catalog import WeightsSpec
    >>> spec = WeightsSpec(name="x.y", filename="w.pth", url="https://example.org/x")
    >>> local_weights_path(spec).parts[-2:]
    ('x.y', 'w.pth')
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from geofm.errors import WeightsError
from geofm.weights.load import CHECKPOINT_SUFFIXES

__all__ = ["HostedWeights", "fetch_weights", "local_weights_path", "weights_dir"]


class HostedWeights(Protocol):
    """What this module reads of a catalog entry (:class:`~geofm.weights.catalog.WeightsSpec`).

    A protocol, so the catalog can call the download code without the two
    modules importing each other.
    """

    @property
    def name(self) -> str: ...  # noqa: D102
    @property
    def repo_id(self) -> str | None: ...  # noqa: D102
    @property
    def filename(self) -> str | None: ...  # noqa: D102
    @property
    def revision(self) -> str | None: ...  # noqa: D102
    @property
    def url(self) -> str | None: ...  # noqa: D102
    @property
    def source(self) -> str: ...  # noqa: D102


_ENV = "GEOFM_WEIGHTS_DIR"


def weights_dir() -> Path:
    """Folder for weights downloaded by hand: ``$GEOFM_WEIGHTS_DIR`` or ``~/.cache/geofm/weights``.

    Returns:
        The folder (it may not exist yet).

    Example:
        >>> weights_dir().name
        'weights'
    """
    env = os.environ.get(_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "geofm" / "weights"


def local_weights_path(spec: HostedWeights, *, local_dir: str | Path | None = None) -> Path:
    """Where a hand-downloaded copy of ``spec``'s file goes.

    ``<local_dir>/<spec.name>/<file name>``; when the publisher gives no file
    name, any single checkpoint file in ``<local_dir>/<spec.name>/`` is used.

    Args:
        spec: Catalog entry.
        local_dir: Base folder (default :func:`weights_dir`).

    Returns:
        The expected path (the folder when the file name is unknown).

    Example:
        >>> from geofm.weights.catalog import get_weights
        >>> local_weights_path(get_weights("resnet50.imagenet_vicreg")).name
        'resnet50.pth'
    """
    folder = (Path(local_dir).expanduser() if local_dir else weights_dir()) / spec.name
    return folder / Path(spec.filename).name if spec.filename else folder


def _find_local(spec: HostedWeights, local_dir: str | Path | None) -> Path | None:
    path = local_weights_path(spec, local_dir=local_dir)
    if spec.filename:
        return path if path.is_file() else None
    if not path.is_dir():
        return None
    files = sorted(
        p for p in path.iterdir() if p.is_file() and p.suffix.lower() in CHECKPOINT_SUFFIXES
    )
    if len(files) > 1:
        names = ", ".join(p.name for p in files)
        raise WeightsError(
            f"{path} holds several checkpoint files ({names}) for {spec.name!r}; keep only the "
            "one that belongs to these weights."
        )
    return files[0] if files else None


def _manual_steps(spec: HostedWeights, local_dir: str | Path | None) -> str:
    target = local_weights_path(spec, local_dir=local_dir)
    what = repr(spec.filename) if spec.filename else "the checkpoint file"
    where = f"{target}" if spec.filename else f"the folder {target}/"
    return (
        f"Download {what} from {spec.url or spec.source} (open the link in a browser), "
        f"save it as {where}, or pass the file directly: pretrained='path/to/file'."
    )


def fetch_weights(
    spec: HostedWeights,
    *,
    cache_dir: str | Path | None = None,
    local_dir: str | Path | None = None,
) -> Path:
    """Local path of ``spec``'s file: from geofm's folder, the hub cache, or downloaded.

    Args:
        spec: Catalog entry.
        cache_dir: huggingface_hub cache directory (default: ``HF_HUB_CACHE``).
        local_dir: geofm's folder for hand-downloaded files (default :func:`weights_dir`).

    Returns:
        Path to the file.

    Raises:
        WeightsError: The file is not in geofm's folder and either not hosted
            on a hub (message: manual download steps) or neither cached nor
            downloadable (offline or unreachable; message: the ``hf download``
            command). One line each.

    Example:
        >>> from geofm.weights.catalog import WeightsSpec
        >>> spec = WeightsSpec(name="x.y", filename="w.pth", url="https://example.org/w.pth")
        >>> fetch_weights(spec, local_dir="/nonexistent")
        Traceback (most recent call last):
        ...
        geofm.errors.WeightsError: Weights 'x.y' are not hosted on a hub and ...
    """
    local = _find_local(spec, local_dir)
    if local is not None:
        return local
    if spec.repo_id is None or spec.filename is None:
        raise WeightsError(
            f"Weights {spec.name!r} are not hosted on a hub and are not in geofm's weights "
            f"folder. {_manual_steps(spec, local_dir)}"
        )
    from huggingface_hub import constants, hf_hub_download

    try:
        path = hf_hub_download(
            repo_id=spec.repo_id,
            filename=spec.filename,
            revision=spec.revision,
            cache_dir=str(cache_dir) if cache_dir is not None else None,
        )
    except Exception as err:  # offline, not found, network: all end in one message
        local = local_weights_path(spec, local_dir=local_dir)
        offline = " (HF_HUB_OFFLINE=1)" if constants.HF_HUB_OFFLINE else ""
        rev = f" --revision {spec.revision}" if spec.revision else ""
        raise WeightsError(
            f"Cannot get {spec.source} for {spec.name!r}: it is not in the huggingface_hub "
            f"cache and could not be downloaded{offline} ({type(err).__name__}). Fetch it with "
            f"`hf download {spec.repo_id} {spec.filename}{rev}` on a machine with network "
            f"access (and copy the cache), put it at {local}, "
            "or pass a local file: pretrained='path/to/file'."
        ) from None
    return Path(str(path))
