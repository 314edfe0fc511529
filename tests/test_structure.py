"""The code's structure stays as designed, read from the source with ``ast`` (nothing is imported).

* No module uses another module's private names: no ``from x import _name``, no ``module._name``, no
  ``obj._name`` of a name its own module does not define. A package's private modules (``_files``,
  ``render/_kernels``) serve the modules inside that package only.
* No import runs back up: a module never imports its own package's ``__init__`` (or an ancestor's), only
  the modules beside or below it, so the package's face can import them all.
* The import graph has no cycle; in particular the config does not reach the sampler.

The checks run on the library (``single_image_dataset/``) and the training programs (``training/``,
``train_example.py``). :class:`TestTheChecksCanFail` holds each check to a small tree that breaks it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# The code read: packages (folders) and single-file programs, by path relative to the repository.
CODE = ("single_image_dataset", "training", "train_example.py")
CONFIG, SAMPLER = "single_image_dataset.config", "single_image_dataset.sampling"


@dataclass(frozen=True)
class Module:
    """One module of the tree: its dotted name, whether it is a package's ``__init__``, its file and syntax tree."""

    name: str
    is_package: bool
    file: str
    tree: ast.Module

    @property
    def package(self) -> str:
        """The package its relative imports start from."""
        return self.name if self.is_package else self.name.rpartition(".")[0]


@dataclass(frozen=True)
class Import:
    """``importer`` imports the module ``target`` (resolved), taking ``name`` from it for a ``from`` import."""

    importer: Module
    target: str
    name: str | None
    line: int
    type_checking: bool


def read_modules(root: Path, code: tuple[str, ...] = CODE) -> dict[str, Module]:
    """The modules of ``code`` (folders and ``.py`` files under ``root``) and the C extensions that ``setup.py``
    builds, by dotted name."""
    modules = {name: Module(name, False, "setup.py", ast.Module([], [])) for name in _extensions(root / "setup.py")}
    for entry in code:
        paths = sorted((root / entry).rglob("*.py")) if (root / entry).is_dir() else [root / entry]
        for path in paths:
            parts = path.relative_to(root).with_suffix("").parts
            is_package = parts[-1] == "__init__"
            name = ".".join(parts[:-1] if is_package else parts)
            file = path.relative_to(root).as_posix()
            modules[name] = Module(name, is_package, file, ast.parse(path.read_text(), file))
    return modules


def imports(module: Module, modules: dict[str, Module]) -> Iterator[Import]:
    """Every import of ``module`` of a module in ``modules``, those inside functions included."""
    guarded = {id(n) for node in ast.walk(module.tree) if _is_type_checking_block(node) for n in ast.walk(node)}
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _in_tree(alias.name, modules):
                    yield Import(module, alias.name, None, node.lineno, id(node) in guarded)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, node)
            if not _in_tree(base, modules):
                continue
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if submodule in modules or _is_namespace(submodule, modules):
                    yield Import(module, submodule, None, node.lineno, id(node) in guarded)
                else:
                    yield Import(module, base, alias.name, node.lineno, id(node) in guarded)


def private_uses(modules: dict[str, Module]) -> list[str]:
    """Where a module takes another module's private name, as ``path:line: what``."""
    found = []
    for module in modules.values():
        for imp in imports(module, modules):
            for holder in _private_holders(imp.target):
                if not imp.importer.name.startswith(f"{holder}."):
                    found.append(f"{_where(imp)}: imports {imp.target}, private to {holder}")
            if imp.name is not None and _is_private(imp.name):
                found.append(f"{_where(imp)}: imports {imp.name} from {imp.target}")
        found += _private_attributes(module, modules)
    return found


def import_graph(modules: dict[str, Module]) -> dict[str, set[str]]:
    """Who imports whom when the code runs (imports under ``if TYPE_CHECKING:`` left out).

    Importing ``a.b.c`` runs the packages ``a`` and ``a.b`` first, so a module outside ``a.b`` that imports
    ``a.b.c`` imports ``a.b`` too: ``preview`` importing ``export.files`` ran the whole export package.
    """
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for module in modules.values():
        for imp in imports(module, modules):
            if imp.type_checking:
                continue
            parts = imp.target.split(".")
            for k in range(1, len(parts) + 1):
                target = ".".join(parts[:k])
                explicit_or_outside = k == len(parts) or not module.name.startswith(f"{target}.")
                if target in modules and target != module.name and explicit_or_outside:
                    graph[module.name].add(target)
    return graph


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """The modules ``start`` imports, directly or through the modules it imports."""
    seen, todo = set(), [start]
    while todo:
        for target in graph[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


def on_cycles(graph: dict[str, set[str]]) -> list[str]:
    """The modules that import themselves, through the modules they import."""
    return sorted(name for name in graph if name in reachable(graph, name))


def upward_imports(modules: dict[str, Module]) -> list[str]:
    """Where a module imports from its own package's ``__init__`` or an ancestor's, as ``path:line: what``."""
    found = []
    for module in modules.values():
        for imp in imports(module, modules):
            target = modules.get(imp.target)
            if target is not None and target.is_package and module.name.startswith(f"{target.name}."):
                found.append(f"{_where(imp)}: imports {imp.name or imp.target} from the package {target.name} above it")
    return found


def _extensions(setup: Path) -> list[str]:
    """The names of the ``Extension(name, ...)`` modules that ``setup`` builds."""
    if not setup.is_file():
        return []
    calls = [node for node in ast.walk(ast.parse(setup.read_text())) if isinstance(node, ast.Call)]
    return [
        call.args[0].value
        for call in calls
        if ast.unparse(call.func) == "Extension" and call.args and isinstance(call.args[0], ast.Constant)
    ]


def _is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _resolve(module: Module, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.package.split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _in_tree(name: str, modules: dict[str, Module]) -> bool:
    return any(name == m or name.startswith(f"{m}.") or m.startswith(f"{name}.") for m in modules)


def _is_namespace(name: str, modules: dict[str, Module]) -> bool:
    return any(m.startswith(f"{name}.") for m in modules)


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _private_holders(target: str) -> Iterator[str]:
    """The package above each private component of a dotted module name: the only modules it serves."""
    parts = target.split(".")
    yield from (".".join(parts[:k]) for k, part in enumerate(parts) if _is_private(part))


def _where(imp: Import) -> str:
    return f"{imp.importer.file}:{imp.line}"


def _private_attributes(module: Module, modules: dict[str, Module]) -> list[str]:
    """``x._name`` where ``x`` is another module of the tree, or an object whose ``_name`` this module does not
    define (``self``, ``cls`` and ``super()`` are the module's own classes; third-party objects are not ours)."""
    project_modules, outside = set(), set()
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound = alias.asname or alias.name.partition(".")[0]
                (project_modules if _in_tree(alias.name, modules) else outside).add(bound)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, node)
            for alias in node.names:
                bound = alias.asname or alias.name
                if f"{base}.{alias.name}" in modules or _is_namespace(f"{base}.{alias.name}", modules):
                    project_modules.add(bound)
                elif not _in_tree(base, modules):
                    outside.add(bound)
    own = _defined_privates(module.tree)
    found = []
    for node in ast.walk(module.tree):
        if not (isinstance(node, ast.Attribute) and _is_private(node.attr)):
            continue
        root = _root(node.value)
        where = f"{module.file}:{node.lineno}"
        if isinstance(node.value, ast.Name) and node.value.id in project_modules:
            found.append(f"{where}: uses {ast.unparse(node)}, private to {node.value.id}")
        elif _is_own_object(node.value) or root in outside or node.attr in own:
            continue
        else:
            found.append(f"{where}: uses {ast.unparse(node)}, which this module does not define")
    return found


def _root(node: ast.expr) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Call, ast.Subscript)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _is_own_object(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return node.id in ("self", "cls")
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super"


def _defined_privates(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name)
    return {name for name in names if _is_private(name)}


MODULES = read_modules(REPO)


def test_the_tree_is_read() -> None:
    expected = {CONFIG, SAMPLER, "single_image_dataset.render.base", "training.train", "train_example"}
    assert expected | {"single_image_dataset._uniforms", "single_image_dataset.render._kernels"} <= set(MODULES)
    assert len(import_graph(MODULES)[SAMPLER]) >= 2  # the sampler's imports are seen


def test_no_module_uses_another_modules_private_names() -> None:
    assert private_uses(MODULES) == [], "make the name public (documented, in __all__, tested) or move it to its user"


def test_no_import_runs_back_up() -> None:
    assert upward_imports(MODULES) == [], "import from the module that defines the name, not from a package above"


def test_the_config_does_not_reach_the_sampler() -> None:
    graph = import_graph(MODULES)
    assert SAMPLER not in reachable(graph, CONFIG), "the config's checks import only what lies below the sampler"


def test_the_import_graph_has_no_cycle() -> None:
    assert on_cycles(import_graph(MODULES)) == []


class TestTheChecksCanFail:
    """Each check, on a small tree that breaks it the ways the library once did."""

    TREE = {
        "pkg/__init__.py": "from .config import Config\nVERSION = '1'\n",
        "pkg/_files.py": "def write(): ...\n",
        "pkg/config.py": "from .sampling import check_fit\nclass Config: ...\n",
        "pkg/sampling.py": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .config import Config\n"
            "def check_fit(): ...\ndef _draw(): ...\n"
        ),
        "pkg/video/__init__.py": "",
        "pkg/video/sampling.py": "from ..sampling import _draw\nfrom .. import sampling\nsampling._draw()\n",
        "pkg/video/dataset.py": (
            "from .. import VERSION\nfrom .._files import write\n"
            "class Clips:\n    def get(self):\n        return self._stills._check_index(0)\n"
        ),
        "pkg/loader.py": "import numpy\nfrom . import _files, _native\nnumpy.empty(0)._typed_storage()\n",
        "setup.py": "setup(ext_modules=[Extension('pkg._native', sources=['pkg/_native.c'])])\n",
        "pkg/preview.py": "from .export.files import write_atomic\ndef grid(): ...\n",
        "pkg/export/__init__.py": "from ..preview import grid\n",
        "pkg/export/files.py": "def write_atomic(): ...\n",
        "program/run.py": "from pkg._files import write\nfrom pkg.config import Config\n",
    }

    @pytest.fixture()
    def modules(self, tmp_path: Path) -> dict[str, Module]:
        for name, text in self.TREE.items():
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_text(text)
        return read_modules(tmp_path, ("pkg", "program"))

    def test_private_names(self, modules: dict[str, Module]) -> None:
        assert sorted(private_uses(modules)) == [
            "pkg/video/dataset.py:5: uses self._stills._check_index, which this module does not define",
            "pkg/video/sampling.py:1: imports _draw from pkg.sampling",
            "pkg/video/sampling.py:3: uses sampling._draw, private to sampling",
            "program/run.py:1: imports pkg._files, private to pkg",
        ]

    def test_imports_that_run_back_up(self, modules: dict[str, Module]) -> None:
        assert upward_imports(modules) == ["pkg/video/dataset.py:1: imports VERSION from the package pkg above it"]

    def test_the_config_reaching_the_sampler_and_the_cycle(self, modules: dict[str, Module]) -> None:
        graph = import_graph(modules)
        assert "pkg.sampling" in reachable(graph, "pkg.config")
        assert "pkg.config" not in graph["pkg.sampling"]  # an import for type checking only
        assert on_cycles(graph) == ["pkg.export", "pkg.preview"]  # importing export.files ran export/__init__
        graph["pkg.sampling"].add("pkg.config")
        assert on_cycles(graph) == ["pkg.config", "pkg.export", "pkg.preview", "pkg.sampling"]
