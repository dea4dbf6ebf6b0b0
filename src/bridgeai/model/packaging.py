"""Which of ``bridgeai``'s own modules a part of it needs, to ship that part alone.

The logged MLflow model carries, in its code folder, the modules that loading and predicting
import (:func:`bridgeai.model.pyfunc.log_model`); the model image carries the modules the model
server imports (:func:`bridgeai.deploy.wheelhouse.project_wheel`). Both lists are derived here
from the modules' own ``import`` statements, read with :mod:`ast` (nothing is imported), so they
follow the code instead of a list kept by hand:

* every ``import bridgeai...`` / ``from bridgeai... import ...`` counts, at module level or inside
  a function (a deferred import still runs), except under ``if TYPE_CHECKING:``;
* a module brings its parent packages' ``__init__.py`` along;
* imports of other packages are recorded (:attr:`Module.third_party`), split into module-level
  and deferred ones, so a test can check them against the image's requirements.

Only stdlib imports here: this runs wherever a model is logged or an image is built.
"""

from __future__ import annotations

import ast
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "bridgeai"


@dataclass(frozen=True)
class Module:
    """One module of the package: its file and what it imports."""

    name: str
    path: Path
    #: ``bridgeai`` modules it imports (resolved to module names).
    imports: frozenset[str]
    #: Top-level names of other, non-stdlib packages imported at module level.
    third_party: frozenset[str]
    #: ... and those imported only inside functions.
    deferred_third_party: frozenset[str]


def package_dir() -> Path:
    """The directory of the ``bridgeai`` package being run (a checkout or an installation)."""
    import bridgeai

    return Path(bridgeai.__file__).resolve().parent


def module_path(name: str, root: Path | None = None) -> Path:
    """The source file of the module ``name`` (``bridgeai.x.y``).

    Raises:
        LookupError: no such module in the package.
    """
    root = root or package_dir()
    parts = name.split(".")
    if parts[0] != PACKAGE:
        raise LookupError(f"{name} is not a module of {PACKAGE}")
    base = root.joinpath(*parts[1:])
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    raise LookupError(f"{name} is not a module of {PACKAGE} (no {base}.py or {base}/__init__.py)")


def submodules(package: str, root: Path | None = None) -> list[str]:
    """``package`` and the modules in its folder (``__main__`` included; not subpackages)."""
    init = module_path(package, root)
    if init.name != "__init__.py":
        return [package]
    names = [
        package if p.stem == "__init__" else f"{package}.{p.stem}" for p in init.parent.glob("*.py")
    ]
    return sorted(names)


def read_module(name: str, root: Path | None = None) -> Module:
    """Parse one module's imports."""
    root = root or package_dir()
    path = module_path(name, root)
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    own: set[str] = set()
    top: set[str] = set()
    deferred: set[str] = set()
    for node, in_function in _imports(tree):
        for target in _targets(node, name, is_package):
            if target.split(".")[0] == PACKAGE:
                own.add(_resolve(target, root))
            elif target.split(".")[0] not in sys.stdlib_module_names | {"__future__"}:
                (deferred if in_function else top).add(target.split(".")[0])
    return Module(name, path, frozenset(own - {name}), frozenset(top), frozenset(deferred - top))


def closure(*roots: str, root: Path | None = None) -> dict[str, Module]:
    """The modules ``roots`` import, transitively, with ``roots`` and every parent package."""
    root = root or package_dir()
    found: dict[str, Module] = {}
    queue = [*roots]
    while queue:
        name = queue.pop()
        if name in found:
            continue
        module = found[name] = read_module(name, root)
        parents = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]
        queue.extend([*module.imports, *parents])
    return dict(sorted(found.items()))


def copy_tree(modules: Iterable[str], dest: Path, root: Path | None = None) -> Path:
    """Copy ``modules``' files to ``dest/bridgeai/...`` (importable as ``bridgeai.*`` with
    ``dest`` on ``sys.path``); return ``dest/bridgeai``."""
    root = root or package_dir()
    for name in modules:
        source = module_path(name, root)
        target = dest / PACKAGE / source.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return dest / PACKAGE


def relative_files(modules: Iterable[str], root: Path | None = None) -> list[str]:
    """``bridgeai/...`` paths of ``modules``' files, sorted (as they go into a wheel)."""
    root = root or package_dir()
    return sorted(f"{PACKAGE}/{module_path(m, root).relative_to(root).as_posix()}" for m in modules)


def _imports(tree: ast.AST) -> list[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement, and whether it sits inside a function; not type-only ones."""
    found: list[tuple[ast.Import | ast.ImportFrom, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append((node, in_function))
            return
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for statement in node.orelse:  # the body runs only under a type checker
                visit(statement, in_function)
            return
        inside = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for child in ast.iter_child_nodes(node):
            visit(child, inside)

    visit(tree, False)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """Dotted names an import may load: ``from a import b`` may be module ``a.b`` or ``a``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        anchor = module.split(".")
        anchor = anchor if is_package else anchor[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join([*anchor, *([base] if base else [])])
    return [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"] or [base]


def _resolve(target: str, root: Path) -> str:
    """The module a dotted name is: itself, or (an attribute of) its nearest existing parent."""
    parts = target.split(".")
    while parts:
        name = ".".join(parts)
        try:
            module_path(name, root)
        except LookupError:
            parts.pop()
            continue
        return name
    raise LookupError(f"{target} is not in {PACKAGE}")  # pragma: no cover - PACKAGE exists
