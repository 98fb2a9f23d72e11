"""Developer sessions: ``tests``, ``lint``, ``typecheck``, ``docs``, ``examples``, ``release``."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.default_venv_backend = "venv"

# pip resolves torch and torchvision together from the package index: timm
# needs torchvision, and pinning torch to a locally installed wheel would pick
# a torchvision built for another torch.


@nox.session
def tests(session: nox.Session) -> None:
    """Install geofm with its test extras and run the whole suite (doctests included)."""
    session.install("-e", ".[test,examples]")
    args = session.posargs or ["-n", "2", "--dist", "loadgroup"]
    session.run("pytest", *args)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check on the whole repository."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package."""
    session.install("-e", ".", "mypy>=1.11")
    session.run("mypy", "--strict", "geofm")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site with warnings as errors (offline: no external assets)."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", "--site-dir", "site")


@nox.session
def examples(session: nox.Session) -> None:
    """Run the example scripts with their tiny defaults."""
    session.install("-e", ".[examples]")
    session.run("python", "examples/quickstart.py")


# Files the wheel must ship besides the modules: the typing marker and the
# package data read at run time (sensor tables, statistics, the demo scene).
_WHEEL_MUST_CONTAIN = (
    "geofm/py.typed",
    "geofm/data/enmap_spectral_earth_bands.csv",
    "geofm/data/spectral_earth_stats.json",
    "geofm/data/samples/landsat7_rgb_224.tif",
)


@nox.session
def release(session: nox.Session) -> None:
    """Build wheel + sdist; install the wheel in a fresh venv; run the demo and import checks."""
    dist = Path(session.create_tmp()).resolve() / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    session.install("build>=1.0")
    session.run("python", "-m", "build", "--outdir", str(dist))
    wheels = sorted(dist.glob("geofm-*.whl"))
    sdists = sorted(dist.glob("geofm-*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        session.error(f"expected one wheel and one sdist in {dist}, got {wheels + sdists}")
    with zipfile.ZipFile(wheels[0]) as wheel:
        names = set(wheel.namelist())
    missing = [name for name in _WHEEL_MUST_CONTAIN if name not in names]
    if missing:
        session.error(f"{wheels[0].name} lacks {missing}")
    data_files = sorted(n for n in names if n.startswith("geofm/data/"))
    session.log(f"{wheels[0].name}: {len(names)} files; package data: {data_files}")
    # Install the wheel itself (not the source tree) and run from outside the
    # checkout, so nothing is imported from the working copy. First bare (the
    # runtime dependencies only: what `pip install geofm` gives), then with the
    # examples extra of the README's main command.
    session.install(str(wheels[0]))
    checks = Path(__file__).parent / "benchmarks" / "check_import.py"
    outside = Path(session.create_tmp()) / "outside"
    outside.mkdir(exist_ok=True)
    session.chdir(outside)
    session.run("python", "-c", "import geofm, pathlib; print(pathlib.Path(geofm.__file__).parent)")
    session.run("geofm", "--version")
    session.run("python", str(checks), "--runs", "5")
    session.run("geofm", "demo", "--no-plot", "--steps", "2", "--output-dir", "demo-bare")
    session.install(f"{wheels[0]}[examples]")
    session.run("geofm", "demo")
