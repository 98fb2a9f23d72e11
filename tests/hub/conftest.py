"""An offline huggingface_hub cache and geofm weights folder in ``tmp_path``, filled by tests."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

FAKE_MAIN = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class OfflineHub:
    """Where tests put weights: the hub cache (``HF_HUB_CACHE``) and geofm's weights folder."""

    cache: Path
    weights_dir: Path

    def snapshot_path(self, repo_id: str, filename: str, revision: str | None) -> Path:
        """Path of ``filename`` in the cache's snapshot of ``revision`` (``main`` when ``None``).

        Lays out ``models--org--name/{blobs,refs,snapshots}`` as huggingface_hub does; the
        caller writes the file, then calls :meth:`commit`.
        """
        repo = self.cache / ("models--" + repo_id.replace("/", "--"))
        commit = revision or FAKE_MAIN
        if revision is None:
            (repo / "refs").mkdir(parents=True, exist_ok=True)
            (repo / "refs" / "main").write_text(FAKE_MAIN)
        path = repo / "snapshots" / commit / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def commit(self, path: Path) -> None:
        """Move a written snapshot file into ``blobs/<sha256>`` and link it back (hub layout)."""
        data = path.read_bytes()
        repo = path.parents[2]
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        path.replace(blob)
        os.symlink(os.path.relpath(blob, path.parent), path)

    def local_path(self, spec_name: str, filename: str) -> Path:
        """Path in geofm's weights folder for hand-downloaded files."""
        path = self.weights_dir / spec_name / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


@pytest.fixture
def offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> OfflineHub:
    """An empty hub cache and weights folder; huggingface_hub offline, so nothing is downloaded."""
    from huggingface_hub import constants

    cache = tmp_path / "hf_cache"
    weights = tmp_path / "geofm_weights"
    cache.mkdir()
    weights.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("GEOFM_WEIGHTS_DIR", str(weights))
    # huggingface_hub reads these at import; patch the live values too.
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return OfflineHub(cache=cache, weights_dir=weights)
