"""Griffe extension: Sphinx cross-reference roles in docstrings become site links.

geofm's docstrings use Sphinx roles (``:func:`predict_raster```,
``:class:`~geofm.InputSpec```, ``:meth:`forward```); mkdocstrings' Google
parser leaves them as literal text. After the package is loaded, this
extension rewrites every role in every docstring (outside code examples) into
an autorefs cross-reference, resolved the way Sphinx would: an absolute path
as given, otherwise the name looked up in the scope of the object that owns
the docstring (its members, its module's imports, its parents), so
``:meth:`forward``` in a class docstring links to that class's method. The
docstrings in the package are untouched; the rewrite happens in memory at
build time.

The links are *optional* autorefs (``<autoref optional>``, the form
mkdocstrings uses for signatures): a target the site does not render (a
private helper, ``torch.nn.Module``) shows as code instead of failing the
strict build. Loaded by mkdocstrings through ``mkdocs.yml``; the counts are
logged at build time.

Role forms handled: ``:role:`target```, ``:role:`~a.b.target``` (shows
``target``), ``:role:`title <a.b.target>```, and ``:py:role:``; roles ``func``,
``class``, ``meth``, ``attr``, ``mod``, ``data``, ``exc``, ``obj``, ``const``.
"""

from __future__ import annotations

import html
import logging
import re
from typing import Any

import griffe

_log = logging.getLogger("mkdocs.plugins.geofm.sphinx_roles")

ROLE = re.compile(
    r":(?:py:)?(?P<role>func|class|meth|attr|mod|data|exc|obj|const):`(?P<target>[^`]+)`"
)
_TITLED = re.compile(r"^(?P<title>.+?)\s*<(?P<path>[^<>]+)>$")
_DOCTEST = re.compile(r"^\s*(>>>|\.\.\.)")
_FENCE = re.compile(r"^\s*```")


def _lookup(collection: Any, path: str) -> bool:
    """Whether ``path`` names an object griffe loaded."""
    try:
        collection[path]
    except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return False
    return True


def resolve(owner: griffe.Object, target: str) -> str | None:
    """The full path ``target`` names from ``owner``'s docstring, or ``None``.

    Args:
        owner: The object whose docstring holds the role.
        target: The role's target without ``~`` or title.

    Returns:
        A dotted path loaded by griffe, or ``None`` when it names nothing loaded.
    """
    collection = owner.modules_collection
    target = target.strip().lstrip(".")
    if not target:
        return None
    if _lookup(collection, target):
        return target
    first, _, rest = target.partition(".")
    scope: griffe.Object | None = owner
    while scope is not None:
        try:
            base = scope.resolve(first)
        except griffe.NameResolutionError:
            scope = scope.parent
            continue
        full = f"{base}.{rest}" if rest else base
        return full if _lookup(collection, full) else None
    return None


def rewrite(owner: griffe.Object, text: str, counts: dict[str, int]) -> str:
    """``text`` with every role outside code examples replaced by an autoref.

    Args:
        owner: The object whose docstring ``text`` is.
        text: The docstring.
        counts: ``linked`` / ``unresolved`` tallies, updated in place.

    Returns:
        The rewritten docstring.
    """

    def replace(match: re.Match[str]) -> str:
        target = match["target"].strip()
        titled = _TITLED.match(target)
        if titled:
            title, path = titled["title"], titled["path"].strip()
        else:
            path = target.lstrip("~!")
            title = path.rsplit(".", 1)[-1] if target.startswith("~") else path
        full = resolve(owner, path)
        code = f"<code>{html.escape(title)}</code>"
        if full is None:
            counts["unresolved"] += 1
            return code
        counts["linked"] += 1
        return f'<autoref identifier="{html.escape(full)}" optional>{code}</autoref>'

    out: list[str] = []
    in_fence = False
    for line in text.splitlines(keepends=True):
        if _FENCE.match(line):
            in_fence = not in_fence
        if in_fence or _DOCTEST.match(line):
            out.append(line)
        else:
            out.append(ROLE.sub(replace, line))
    return "".join(out)


def _walk(obj: griffe.Object, seen: set[str]) -> list[griffe.Object]:
    found: list[griffe.Object] = []
    if obj.path in seen:
        return found
    seen.add(obj.path)
    found.append(obj)
    for member in obj.members.values():
        if member.is_alias:
            continue
        found.extend(_walk(member, seen))  # type: ignore[arg-type]
    return found


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles into autorefs once the whole package is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Rewrite the docstrings of ``pkg`` and everything in it."""
        counts = {"linked": 0, "unresolved": 0}
        for obj in _walk(pkg, set()):
            if obj.docstring is not None and ":" in obj.docstring.value:
                obj.docstring.value = rewrite(obj, obj.docstring.value, counts)
        _log.info(
            "%s: %d Sphinx roles turned into cross-references, %d shown as code "
            "(target not loaded)",
            pkg.path,
            counts["linked"],
            counts["unresolved"],
        )
