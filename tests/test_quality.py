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
        "import sys, app.cli, app.core.metrics, app.inference.evaluate, app.analysis.compare;"
        "bad=[m for m in ('PySide6','torch','tensorflow','transformers','fastapi') if m in sys.modules];"
        "print(','.join(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", result.stdout
