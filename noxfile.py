"""Developer sessions: ``nox -s tests``, ``lint``, ``typecheck``, ``docs``, ``examples``."""

from __future__ import annotations

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
    """Build the documentation site with warnings as errors."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict")


@nox.session
def examples(session: nox.Session) -> None:
    """Run the example scripts with their tiny defaults."""
    session.install("-e", ".[examples]")
    session.run("python", "examples/quickstart.py")
