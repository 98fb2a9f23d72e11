"""Import contract of the package (DESIGN.md, "floors"), read from the source, plus import costs.

The contract test parses every module of ``geofm/`` and reads every import,
module-level, function-local and under ``if TYPE_CHECKING:``, resolving
relative imports. It fails, listing each offence with its file and line, on:

- an import that goes **up** the floors below (a module may import its own
  floor and lower floors; ``geofm/__init__.py`` may reach anything it re-exports);
- any import **cycle** between modules (file to file, all import kinds; importing
  ``geofm.a.b`` from outside ``geofm.a`` also runs ``geofm/a/__init__.py``);
- importing another module's ``_private`` name (``from geofm.x import _helper``,
  or ``x._helper`` on an imported geofm module). Importing a private *module*
  (``geofm._dist``, ``geofm.geo._rio``) for its public names is fine;
- a top-level module or package that has no floor here (give every new package one);
- a third-party import that ``pyproject.toml`` does not declare (module level:
  required dependencies only; inside functions: optional extras too).

The subprocess checks below then confirm, in fresh interpreters, that the light
modules stay light (no rasterio, huggingface_hub, timm or higher floors loaded).
"""

from __future__ import annotations

import ast
import itertools
import json
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "geofm"

# DESIGN.md floors, bottom up: a module may import only from its floor or lower ones.
FLOORS: dict[str, int] = {
    "errors": 1,
    "_registry": 1,
    "_version": 1,
    "_dist": 1,
    "_atomic": 1,
    "sensors": 2,
    "input_spec": 2,
    "lora": 3,
    "losses": 3,
    "metrics": 3,
    "fusion": 3,
    "weights": 3,
    "spectral": 4,
    "transforms": 4,
    "geo": 4,
    "datasets": 4,
    "data": 4,
    "backbones": 5,
    "heads": 6,
    "ssl": 6,
    "hub": 7,
    "cli": 8,
    "demo": 8,
    "__main__": 8,
}

# Distribution name -> import name, where they differ.
_IMPORT_NAMES = {"huggingface-hub": "huggingface_hub", "scikit-learn": "sklearn"}


@dataclass(frozen=True)
class Import:
    """One import statement's reference to one module."""

    importer: str  # dotted module name of the importing file
    target: str  # dotted module name imported from (a file of the package, or third-party)
    line: int
    context: str  # "module level", "function-local" or "TYPE_CHECKING"
    private_names: tuple[str, ...] = ()  # `_names` taken from another module
    internal: bool = True  # target is a module of the package


@dataclass
class Package:
    """Modules of one package and their imports."""

    name: str
    root: Path  # folder holding the package folder
    files: dict[str, Path]  # dotted module name -> file
    imports: list[Import]

    def path(self, module: str) -> str:
        return self.files[module].relative_to(self.root).as_posix()

    def where(self, imp: Import) -> str:
        return f"{self.path(imp.importer)}:{imp.line} ({imp.context})"


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


class _ImportReader(ast.NodeVisitor):
    """Collect the imports of one module, with the context each one runs in."""

    def __init__(self, module: str, is_package: bool, known: set[str], package: str) -> None:
        self.module, self.known, self.package = module, known, package
        self.base = module if is_package else module.rpartition(".")[0]
        self.context = "module level"
        self.imports: list[Import] = []
        self.aliases: dict[str, str] = {}  # local name bound to an imported package module

    def _within(self, context: str, nodes: list[ast.AST]) -> None:
        """Visit ``nodes`` in ``context`` (the outermost non-module context wins)."""
        outer = self.context
        if outer == "module level":
            self.context = context
        for node in nodes:
            self.visit(node)
        self.context = outer

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._within("function-local", list(ast.iter_child_nodes(node)))

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._within("function-local", list(ast.iter_child_nodes(node)))

    def visit_If(self, node: ast.If) -> None:
        if not _is_type_checking(node.test):
            self.generic_visit(node)
            return
        self._within("TYPE_CHECKING", list(node.body))
        for child in node.orelse:
            self.visit(child)

    def _add(self, target: str, line: int, private: tuple[str, ...] = ()) -> None:
        internal = target == self.package or target.startswith(self.package + ".")
        self.imports.append(Import(self.module, target, line, self.context, private, internal))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node.lineno)
            if alias.asname and alias.name in self.known:
                self.aliases[alias.asname] = alias.name

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            parts = self.base.split(".")
            anchor = parts[: len(parts) - (node.level - 1)]
            base = ".".join([*anchor, node.module] if node.module else anchor)
        else:
            base = node.module or ""
        plain: list[str] = []
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            if submodule in self.known:
                self._add(submodule, node.lineno)
                self.aliases[alias.asname or alias.name] = submodule
            else:
                plain.append(alias.name)
        if plain or not node.names:
            private = tuple(n for n in plain if _is_private(n))
            self._add(base, node.lineno, private)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        value = node.value
        if isinstance(value, ast.Name) and value.id in self.aliases and _is_private(node.attr):
            self._add(self.aliases[value.id], node.lineno, (node.attr,))
        self.generic_visit(node)


def read_package(root: Path, name: str = PACKAGE) -> Package:
    """Parse every module of package ``root/name`` and read its imports."""
    files = {_module_name(p, root): p for p in sorted((root / name).rglob("*.py"))}
    known = set(files)
    imports: list[Import] = []
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        reader = _ImportReader(module, path.name == "__init__.py", known, name)
        reader.visit(tree)
        imports += reader.imports
    return Package(name, root, files, imports)


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def unknown_modules(pkg: Package, floors: Mapping[str, int]) -> list[str]:
    """Top-level modules / packages that have no floor."""
    tops = {_top(m) for m in pkg.files} - {""}
    return [
        f"{pkg.name}.{top} has no floor: add it to FLOORS (and to DESIGN.md's floors)"
        for top in sorted(tops - set(floors))
    ]


def missing_modules(pkg: Package) -> list[str]:
    """Imports of package modules that do not exist."""
    return [
        f"{pkg.where(imp)}: {imp.importer} imports {imp.target}, which is not a module of "
        f"{pkg.name}"
        for imp in pkg.imports
        if imp.internal and imp.target not in pkg.files
    ]


def upward_imports(pkg: Package, floors: Mapping[str, int]) -> list[str]:
    """Imports from a higher floor (the package's top level counts as the highest)."""
    top_floor = max(floors.values()) + 1
    found = []
    for imp in pkg.imports:
        if not imp.internal or imp.importer == pkg.name or imp.target == imp.importer:
            continue
        mine, theirs = _top(imp.importer), _top(imp.target)
        if mine not in floors or (theirs and theirs not in floors) or imp.target not in pkg.files:
            continue  # reported by unknown_modules / missing_modules
        low, high = floors[mine], floors[theirs] if theirs else top_floor
        if high > low:
            what = f"{theirs} (floor {high})" if theirs else f"the top-level {pkg.name} package"
            found.append(
                f"{pkg.where(imp)}: {imp.importer} ({mine}, floor {low}) imports "
                f"{imp.target} from {what}"
            )
    return found


def private_imports(pkg: Package) -> list[str]:
    """``_private`` names taken from another module."""
    return [
        f"{pkg.where(imp)}: {imp.importer} uses {', '.join(imp.private_names)} "
        f"of {imp.target}; make it public (maybe in a package-internal module)"
        for imp in pkg.imports
        if imp.internal and imp.private_names and imp.target != imp.importer
    ]


def import_graph(pkg: Package) -> dict[str, set[str]]:
    """Module -> modules its execution imports (incl. ``__init__`` of packages it enters)."""
    graph: dict[str, set[str]] = {m: set() for m in pkg.files}
    for imp in pkg.imports:
        if not imp.internal or imp.target not in pkg.files or imp.target == imp.importer:
            continue
        graph[imp.importer].add(imp.target)
        parts = imp.target.split(".")
        for end in range(2, len(parts)):  # parent packages below the top level
            parent = ".".join(parts[:end])
            if imp.importer != parent and not imp.importer.startswith(parent + "."):
                graph[imp.importer].add(parent)
    return graph


def _strong_components(graph: Mapping[str, set[str]]) -> Iterator[list[str]]:
    """Tarjan's strongly connected components (iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                yield sorted(component)


def _cycle_through(graph: Mapping[str, set[str]], members: set[str], start: str) -> list[str]:
    """Shortest path ``start -> ... -> start`` inside ``members`` (breadth first)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & members):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    return [start]


def import_cycles(pkg: Package) -> list[str]:
    """One cycle path per group of modules that import each other."""
    graph = import_graph(pkg)
    lines = {(i.importer, i.target): pkg.where(i) for i in pkg.imports if i.internal}
    found = []
    for component in _strong_components(graph):
        if len(component) < 2:
            continue
        path = _cycle_through(graph, set(component), component[0])
        steps = [
            f"{a} -> {b} [{lines.get((a, b), 'runs its package __init__')}]"
            for a, b in itertools.pairwise(path)
        ]
        found.append(f"cycle among {len(component)} modules: " + "; ".join(steps))
    return found


def declared_imports(pyproject: Path) -> tuple[set[str], set[str]]:
    """Import names of the required and of all (required + optional) dependencies."""
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]

    def names(requirements: list[str]) -> set[str]:
        out = set()
        for req in requirements:
            dist = re.split(r"[\s\[<>=!~;]", req, maxsplit=1)[0].lower()
            out.add(_IMPORT_NAMES.get(dist, dist.replace("-", "_")))
        return out

    required = names(project["dependencies"])
    extras = names([r for group in project["optional-dependencies"].values() for r in group])
    return required, required | extras


def undeclared_imports(pkg: Package, required: set[str], everything: set[str]) -> list[str]:
    """Third-party imports that pyproject.toml does not declare (for where they run)."""
    found = []
    for imp in pkg.imports:
        if imp.internal or not imp.target:
            continue
        top = imp.target.split(".")[0]
        if top in sys.stdlib_module_names or top == "__future__":
            continue
        allowed = required if imp.context == "module level" else everything
        if top not in allowed:
            found.append(
                f"{pkg.where(imp)}: {imp.importer} imports {top}, which pyproject.toml does "
                f"not declare{' as a required dependency' if top in everything else ''}"
            )
    return found


def contract_violations(
    pkg: Package,
    floors: Mapping[str, int] = FLOORS,
    pyproject: Path | None = None,
) -> list[str]:
    """Every offence against the import contract, one readable line each."""
    found = unknown_modules(pkg, floors) + missing_modules(pkg) + upward_imports(pkg, floors)
    found += import_cycles(pkg) + private_imports(pkg)
    if pyproject is not None:
        found += undeclared_imports(pkg, *declared_imports(pyproject))
    return found


# ---------------------------------------------------------------------------
# The contract, on geofm itself
# ---------------------------------------------------------------------------


def test_geofm_keeps_the_import_contract() -> None:
    violations = contract_violations(read_package(ROOT), FLOORS, ROOT / "pyproject.toml")
    assert not violations, "\n" + "\n".join(violations)


def test_the_reader_sees_every_import_kind() -> None:
    pkg = read_package(ROOT)
    contexts = {i.context for i in pkg.imports if i.internal}
    assert contexts == {"module level", "function-local", "TYPE_CHECKING"}
    assert len(pkg.files) > 50


# ---------------------------------------------------------------------------
# Self-test: the checker reports what it should on a synthetic package
# ---------------------------------------------------------------------------

_TOY_FLOORS = {"low": 1, "mid": 2, "high": 3}


def _write(root: Path, files: Mapping[str, str]) -> Package:
    for rel, text in files.items():
        path = root / "toy" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return read_package(root, "toy")


def test_checker_reports_an_upward_import(tmp_path: Path) -> None:
    pkg = _write(
        tmp_path,
        {
            "__init__.py": "",
            "low.py": "def f():\n    from toy.high import thing\n",
            "mid.py": "from toy.low import f  # downward: fine\n",
            "high.py": "thing = 1\n",
        },
    )
    found = contract_violations(pkg, _TOY_FLOORS)
    assert found == [
        "toy/low.py:2 (function-local): toy.low (low, floor 1) imports toy.high from high (floor 3)"
    ]


def test_checker_reports_a_type_checking_cycle_with_its_path(tmp_path: Path) -> None:
    pkg = _write(
        tmp_path,
        {
            "__init__.py": "",
            "mid/__init__.py": "from .a import A\n",
            "mid/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from toy.mid.b import B\nA = 1\n",
            "mid/b.py": "from .a import A\nB = A\n",
        },
    )
    found = contract_violations(pkg, _TOY_FLOORS)
    assert len(found) == 1
    assert found[0].startswith("cycle among 2 modules: toy.mid.a -> toy.mid.b")
    assert "toy/mid/a.py:3 (TYPE_CHECKING)" in found[0]
    assert "toy/mid/b.py:1 (module level)" in found[0]


def test_checker_reports_a_cycle_through_a_package_init(tmp_path: Path) -> None:
    pkg = _write(
        tmp_path,
        {
            "__init__.py": "",
            "low/__init__.py": "from toy.low.core import x\n",
            "low/core.py": "x = 1\n",
            "low/extra.py": "def g():\n    from toy.mid.user import y\n",
            "mid/__init__.py": "",
            "mid/user.py": "from toy.low.core import x\ny = x\n",
        },
    )
    found = contract_violations(pkg, {**_TOY_FLOORS, "low": 2})
    assert found == [], found  # entering toy.low from toy.mid runs low/__init__, no cycle
    (tmp_path / "toy" / "low" / "__init__.py").write_text("from toy.low.extra import g\n")
    (tmp_path / "toy" / "low" / "extra.py").write_text("from toy.mid.user import y\ng = y\n")
    found = contract_violations(read_package(tmp_path, "toy"), {**_TOY_FLOORS, "low": 2})
    assert len(found) == 1 and "runs its package __init__" in found[0], found


def test_checker_reports_private_names_but_not_private_modules(tmp_path: Path) -> None:
    pkg = _write(
        tmp_path,
        {
            "__init__.py": "",
            "low/__init__.py": "",
            "low/_impl.py": "def public():\n    pass\n\ndef _helper():\n    pass\n",
            "low/user.py": "from toy.low._impl import _helper, public\n"
            "from toy.low import _impl\n\ndef h():\n    return _impl._helper, _impl.public\n",
        },
    )
    found = contract_violations(pkg, _TOY_FLOORS)
    assert found == [
        "toy/low/user.py:1 (module level): toy.low.user uses _helper of toy.low._impl; "
        "make it public (maybe in a package-internal module)",
        "toy/low/user.py:5 (function-local): toy.low.user uses _helper of toy.low._impl; "
        "make it public (maybe in a package-internal module)",
    ]


def test_checker_resolves_relative_imports_and_flags_unknown_packages(tmp_path: Path) -> None:
    pkg = _write(
        tmp_path,
        {
            "__init__.py": "",
            "mid/__init__.py": "from ..high import z\nfrom . import sub\n",
            "mid/sub.py": "",
            "high.py": "z = 1\n",
            "stray.py": "",
        },
    )
    found = contract_violations(pkg, _TOY_FLOORS)
    assert found == [
        "toy.stray has no floor: add it to FLOORS (and to DESIGN.md's floors)",
        "toy/mid/__init__.py:1 (module level): toy.mid (mid, floor 2) imports toy.high "
        "from high (floor 3)",
    ]


def test_checker_reports_undeclared_third_party_imports(tmp_path: Path) -> None:
    pkg = _write(
        tmp_path,
        {
            "__init__.py": "",
            "low.py": "import json\nimport numpy\nimport affine\n\ndef f():\n    import tqdm\n",
            "mid.py": "import tqdm\n",
        },
    )
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\ndependencies = ["numpy>=1.24"]\n'
        '[project.optional-dependencies]\nextra = ["tqdm>=4"]\n'
    )
    found = contract_violations(pkg, _TOY_FLOORS, pyproject)
    assert found == [
        "toy/low.py:3 (module level): toy.low imports affine, which pyproject.toml does not "
        "declare",
        "toy/mid.py:1 (module level): toy.mid imports tqdm, which pyproject.toml does not "
        "declare as a required dependency",
    ]


# ---------------------------------------------------------------------------
# Import cost, in fresh interpreters
# ---------------------------------------------------------------------------


def modules_after(statement: str) -> set[str]:
    code = f"import sys, json\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_geofm_loads_no_registry_and_no_heavy_dependency() -> None:
    loaded = modules_after("import geofm")
    assert not {"rasterio", "huggingface_hub", "geofm.backbones", "timm"} & loaded


@pytest.mark.parametrize(
    "statement", ["import geofm.backbones", "from geofm import create_backbone"]
)
def test_backbones_do_not_load_rasterio_or_higher_floors(statement: str) -> None:
    # timm itself imports huggingface_hub, so only rasterio can be checked here.
    loaded = modules_after(statement)
    assert not {"rasterio", "geofm.geo", "geofm.hub", "geofm.heads"} & loaded


_TORCH_ONLY = {"geofm.fusion", "geofm.losses", "geofm.metrics", "geofm.lora"}


@pytest.mark.parametrize(
    "module",
    [
        "geofm.sensors",
        "geofm.spectral",
        "geofm.fusion",
        "geofm.losses",
        "geofm.metrics",
        "geofm.transforms",
        "geofm.lora",
        "geofm.geo",
        "geofm.datasets",
        "geofm.data",
    ],
)
def test_lower_floors_load_neither_higher_floors_nor_heavy_dependencies(module: str) -> None:
    loaded = modules_after(f"import {module}")
    assert not {"geofm.hub", "geofm.backbones", "rasterio", "huggingface_hub"} & loaded
    if module in _TORCH_ONLY:
        assert "timm" not in loaded
