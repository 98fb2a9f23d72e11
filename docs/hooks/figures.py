"""MkDocs hook: the site's pictures, made by the scripts in ``docs/scripts`` at build time.

Every ``docs/scripts/<name>.py`` without a leading underscore defines
``main(out_dir: Path) -> list[Path]``; this hook runs each one into a
temporary folder and hands the files to MkDocs as
``assets/figures/<file>`` (``File.generated``), so nothing is written into
``docs/`` and no picture can be stale. A script runs alone the same way:
``python docs/scripts/<name>.py OUT_DIR``.

The outputs are cached under ``$GEOFM_DOCS_FIGURES_CACHE`` (default
``~/.cache/geofm/docs-figures``), keyed by the sha256 of the script, the shared
``_style.py``, every ``geofm/**/*.py`` file and ``docs/benchmarks.md``. Any change
to the code that draws a figure, or to the library it draws, runs the script
again. ``GEOFM_DOCS_FIGURES_CACHE=off`` disables the cache.

Needs matplotlib (in the ``docs`` extra). Only the installed geofm and the
embedded sample scene are read; no network.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

_REPO = Path(__file__).resolve().parents[2]
SCRIPTS = _REPO / "docs" / "scripts"
_log = logging.getLogger("mkdocs.plugins.geofm.figures")


def _digest(script: Path) -> str:
    """sha256 over everything a figure depends on."""
    h = hashlib.sha256()
    inputs = [script, SCRIPTS / "_style.py", _REPO / "docs" / "benchmarks.md"]
    inputs += sorted((_REPO / "geofm").rglob("*.py"))
    for path in inputs:
        h.update(path.relative_to(_REPO).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:20]


def _cache_root() -> Path | None:
    value = os.environ.get("GEOFM_DOCS_FIGURES_CACHE", "")
    if value.lower() == "off":
        return None
    return Path(value) if value else Path.home() / ".cache" / "geofm" / "docs-figures"


def run_script(script: Path, out_dir: Path) -> list[Path]:
    """Import ``script`` as a module and call its ``main(out_dir)``."""
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))  # the scripts import _style
    spec = importlib.util.spec_from_file_location(f"geofm_docs_{script.stem}", script)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot import {script}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    paths: list[Path] = module.main(out_dir)
    return paths


def figures() -> dict[str, bytes]:
    """``{file name: content}`` of every figure, from the cache or freshly made."""
    out: dict[str, bytes] = {}
    cache = _cache_root()
    for script in sorted(SCRIPTS.glob("[!_]*.py")):
        cached = cache / script.stem / _digest(script) if cache is not None else None
        if cached is not None and (cached / ".complete").is_file():
            files = [p for p in cached.iterdir() if p.name != ".complete"]
        else:
            start = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                made = run_script(script, Path(tmp))
                if cached is not None:
                    if cached.parent.exists():
                        shutil.rmtree(cached.parent)  # older versions of this script's figures
                    cached.mkdir(parents=True)
                    for path in made:
                        shutil.copyfile(path, cached / path.name)
                    (cached / ".complete").write_text("")
                    files = [cached / p.name for p in made]
                else:
                    out.update({p.name: p.read_bytes() for p in made})
                    files = []
            _log.info(
                "%s: %d figure(s) in %.1f s", script.name, len(made), time.perf_counter() - start
            )
        out.update({p.name: p.read_bytes() for p in files})
    return out


def on_files(files: Files, config: MkDocsConfig, **kwargs: Any) -> Files:
    """Add ``assets/figures/*`` made by ``docs/scripts``."""
    for name, content in figures().items():
        files.append(File.generated(config, f"assets/figures/{name}", content=content))
    return files
