"""The public API is documented: every name in every public module's ``__all__``.

For each public module this walks ``__all__`` and checks, per STYLE.md 2.3:

- the module itself has a docstring and every ``__all__`` name exists;
- every public function and class has its own docstring with an ``Example:``
  section holding ``>>>`` lines (``pytest --doctest-modules``, configured in
  pyproject.toml, runs them);
- a callable with parameters documents them in ``Args:`` (classes in the class
  docstring; named tuples and dataclasses may use ``Attributes:``), or says
  "arguments as in :func:`...`" pointing at a sibling that does; a function
  that returns something has ``Returns:`` (or ``Yields:``);
- public methods and properties defined by geofm classes have a docstring, and
  methods with parameters / return values have ``Args:`` / ``Returns:``.
  ``nn.Module.forward`` and ``extra_repr`` are exempt (the class docstring's
  ``Shape:`` section documents the call), as are members of ``Protocol`` classes.

Constants (``__version__``, type aliases such as ``Literal`` unions) are not
callables and are documented where they are defined.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

PUBLIC_MODULES = [
    "geofm",
    "geofm.backbones",
    "geofm.spectral",
    "geofm.sensors",
    "geofm.fusion",
    "geofm.lora",
    "geofm.losses",
    "geofm.ssl",
    "geofm.heads",
    "geofm.metrics",
    "geofm.transforms",
    "geofm.hub",
    "geofm.geo",
    "geofm.cli",
    "geofm.errors",
]
if importlib.util.find_spec("geofm.datasets") is not None:
    PUBLIC_MODULES.append("geofm.datasets")

# nn.Module hooks documented by the class (Shape section), not per method.
EXEMPT_METHODS = {"forward", "extra_repr"}
SECTION = re.compile(r"^(\w[\w ]*):\s*$", re.MULTILINE)
CROSS_REFERENCE = re.compile(r"arguments (are )?(as|like) in :(func|meth|class):", re.IGNORECASE)


def _sections(doc: str) -> set[str]:
    return set(SECTION.findall(doc))


def _own_doc(obj: Any) -> str | None:
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else getattr(obj, "__doc__", None)
    return inspect.cleandoc(doc) if doc else None


def _named_parameters(obj: Callable[..., Any]) -> tuple[list[str], Any]:
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):  # builtins without signatures
        return [], inspect.Signature.empty
    names = [
        p.name
        for p in signature.parameters.values()
        if p.name not in ("self", "cls")
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    return names, signature.return_annotation


def _returns_something(annotation: Any) -> bool:
    return annotation not in (None, "None", inspect.Signature.empty)


def _is_protocol(cls: type) -> bool:
    return bool(getattr(cls, "_is_protocol", False))


def _is_geofm(obj: Any) -> bool:
    return str(getattr(obj, "__module__", "")).startswith("geofm")


def _public_objects() -> Iterator[tuple[str, str, Any]]:
    seen: set[int] = set()
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)) or id(obj) in seen:
                continue
            seen.add(id(obj))
            yield module_name, name, obj


def _problems_of_callable(label: str, obj: Any, *, is_class: bool) -> list[str]:
    doc = _own_doc(obj)
    if doc is None:
        return [f"{label}: no docstring"]
    problems = []
    sections = _sections(doc)
    if not ({"Example", "Examples"} & sections) or ">>>" not in doc:
        problems.append(f"{label}: no 'Example:' section with >>> lines")
    if is_class and _is_protocol(obj):
        return problems
    names, returns = _named_parameters(obj)
    documented_elsewhere = CROSS_REFERENCE.search(doc) is not None
    arg_sections = {"Args", "Arguments"} | ({"Attributes"} if is_class else set())
    if names and not (arg_sections & sections) and not documented_elsewhere:
        problems.append(f"{label}: parameters {names} but no 'Args:' section")
    if not is_class and _returns_something(returns) and not ({"Returns", "Yields"} & sections):
        problems.append(f"{label}: returns {returns} but no 'Returns:' section")
    return problems


def _problems_of_members(label: str, cls: type) -> list[str]:
    if _is_protocol(cls):
        return []
    problems = []
    for name, member in vars(cls).items():
        if name.startswith("_") or name in EXEMPT_METHODS:
            continue
        if isinstance(member, property):
            if not (member.fget and member.fget.__doc__):
                problems.append(f"{label}.{name}: property without a docstring")
            continue
        function = getattr(member, "__func__", member)  # staticmethod / classmethod
        if not inspect.isfunction(function):
            continue  # dataclass fields, constants
        doc = function.__doc__
        if not doc:
            problems.append(f"{label}.{name}: method without a docstring")
            continue
        doc = inspect.cleandoc(doc)
        sections = _sections(doc)
        names, returns = _named_parameters(function)
        if names and "Args" not in sections and not CROSS_REFERENCE.search(doc):
            problems.append(f"{label}.{name}: parameters {names} but no 'Args:' section")
        if _returns_something(returns) and not ({"Returns", "Yields"} & sections):
            problems.append(f"{label}.{name}: returns {returns} but no 'Returns:' section")
    return problems


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_module_has_docstring_and_all_names_exist(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert module.__doc__ and module.__doc__.strip(), f"{module_name} has no module docstring"
    names = getattr(module, "__all__", None)
    assert names, f"{module_name} defines no __all__"
    assert len(names) == len(set(names)), f"{module_name}.__all__ repeats names"
    missing = [n for n in names if not hasattr(module, n)]
    assert not missing, f"{module_name}.__all__ names missing attributes: {missing}"


def test_public_symbols_are_documented() -> None:
    problems: list[str] = []
    count = 0
    for module_name, name, obj in _public_objects():
        label = f"{module_name}.{name}"
        is_class = inspect.isclass(obj)
        problems += _problems_of_callable(label, obj, is_class=is_class)
        if is_class and _is_geofm(obj):
            problems += _problems_of_members(label, obj)
        count += 1
    assert count > 100, f"expected the walk to find the public API, found {count} symbols"
    assert not problems, f"{len(problems)} documentation gaps:\n" + "\n".join(problems)


def test_checker_flags_an_undocumented_function() -> None:
    def no_docs(x: int) -> int:
        return x

    def documented(x: int) -> int:
        """Return ``x``.

        Args:
            x: A number.

        Returns:
            ``x``.

        Example:
            >>> documented(1)
            1
        """
        return x

    def missing_sections(x: int) -> int:
        """Return ``x``."""
        return x

    assert _problems_of_callable("no_docs", no_docs, is_class=False) == ["no_docs: no docstring"]
    assert _problems_of_callable("ok", documented, is_class=False) == []
    assert len(_problems_of_callable("m", missing_sections, is_class=False)) == 3
