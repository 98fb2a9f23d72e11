"""Griffe extension: render geofm's ``Example:`` docstring sections as examples.

geofm writes ``Example:`` (STYLE.md); Griffe's Google parser knows only
``Examples:`` as an examples section and would render the singular form as
an admonition of plain markdown, where doctest output such as ``[1, 2]``
reads as a link. Renaming the header before parsing makes the ``>>>`` lines
code blocks. Loaded by mkdocstrings (``mkdocs.yml``); the package is untouched.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Rename ``Example:`` to ``Examples:`` in every loaded docstring."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite ``obj``'s docstring header in place (before it is parsed)."""
        if obj.docstring is not None:
            obj.docstring.value = _EXAMPLE.sub(r"\1Examples:", obj.docstring.value)
