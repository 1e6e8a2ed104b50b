"""The code stays lint-clean, typed, and layered (core and inference never import Qt or the GUI)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[test]'")
    return found


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


def test_ruff_clean() -> None:
    result = _run(_tool("ruff"), "check", "app", "tests", "benchmarks")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_clean() -> None:
    result = _run(_tool("mypy"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_contracts() -> None:
    result = _run(_tool("lint-imports"))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("layer", ["core", "inference", "analysis"])
def test_qt_free_layers_do_not_import_qt(layer: str) -> None:
    """A second, dependency-free check of the contract: parse every module's imports."""
    forbidden = ("PySide6", "PyQt5", "PyQt6", "pyqtgraph", "app.views", "app.controllers")
    offenders = []
    for path in (ROOT / "app" / layer).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.startswith(forbidden)]
    assert not offenders, offenders


def test_headless_import_does_not_load_qt_or_frameworks() -> None:
    code = (
        "import sys, app.cli, app.core.domain.metrics, app.evaluation.service, app.analysis.compare;"
        "bad=[m for m in ('PySide6','torch','tensorflow','transformers','fastapi') if m in sys.modules];"
        "print(','.join(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", result.stdout


# ----------------------------------------------------------------------------- import circles, module size
# Circles (strongly connected components of the import graph) allowed for now: none. A circle counts as
# known when all its modules are in one entry, so a known circle may shrink but not grow, and a new circle
# anywhere fails.
KNOWN_CIRCLES: tuple[frozenset[str], ...] = ()
MAX_MODULE_LINES = 600


def _module_names(package_dir: Path) -> dict[str, Path]:
    """Dotted module name (relative to the package's parent) -> file, for every .py under `package_dir`."""
    modules = {}
    for path in package_dir.rglob("*.py"):
        name = ".".join(path.relative_to(package_dir.parent).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    return modules


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """Which modules of the package each module imports: every import statement counts, at module level,
    inside functions and under `if TYPE_CHECKING:` alike (an annotation-only import still ties the two
    modules together). `from pkg import mod` counts as importing pkg.mod; importing an enclosing package
    of the module itself does not count."""
    modules = _module_names(package_dir)
    edges: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    parts = parts[: len(parts) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                while (
                    target and target not in modules
                ):  # app.core.domain.labels.LABELIDS -> app.core.domain.labels
                    target = target.rpartition(".")[0]
                if target and target != name and not name.startswith(target + "."):
                    edges[name].add(target)
    return edges


def import_circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    circles.append(sorted(component))
    return sorted(circles)


def test_no_new_import_circles() -> None:
    circles = import_circles(import_graph(ROOT / "app"))
    new = [c for c in circles if not any(set(c) <= known for known in KNOWN_CIRCLES)]
    assert not new, "import circles (imports in functions and under TYPE_CHECKING count):\n" + "\n".join(
        " <-> ".join(c) for c in new
    )
    stale = [known for known in KNOWN_CIRCLES if not any(set(c) <= known for c in circles)]
    assert not stale, f"these circles are gone: remove them from KNOWN_CIRCLES: {stale}"


def test_import_circle_check_sees_type_checking_and_function_imports(tmp_path: Path) -> None:
    """The check itself: a circle closed only by a TYPE_CHECKING import, one closed by a relative import
    inside a function, and a package importing its own modules (not a circle) are told apart."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from pkg.a import A\n")
    (package / "a.py").write_text("from pkg.b import B\nA = 1\n")
    (package / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\nB = 2\n"
    )
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "c.py").write_text("def f():\n    from ..sub import d\n    return d\n")
    (package / "sub" / "d.py").write_text("from pkg.sub.c import f\n")
    (package / "e.py").write_text("import pkg.a, pkg.sub.c\n")
    assert import_circles(import_graph(package)) == [["pkg.a", "pkg.b"], ["pkg.sub.c", "pkg.sub.d"]]


def test_modules_stay_small() -> None:
    sizes = {
        path: len(path.read_text(encoding="utf-8").splitlines()) for path in (ROOT / "app").rglob("*.py")
    }
    big = sorted(f"{path.relative_to(ROOT)}: {n} lines" for path, n in sizes.items() if n > MAX_MODULE_LINES)
    assert not big, f"modules over {MAX_MODULE_LINES} lines: {big}"
