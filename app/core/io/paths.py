"""Where SegLens finds its shipped files and keeps its own: one helper for source, installed, frozen."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs

import app

APP_NAME = "SegLens"
# The package folder itself, not this file's: the same wherever this module sits inside the package.
_PACKAGE_DIR = Path(app.__file__).resolve().parent  # .../app


def _bundle_roots() -> list[Path]:
    """Folders that may hold models/ and resources/: a PyInstaller bundle, then the source checkout."""
    roots: list[Path] = []
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root:
        roots.append(Path(frozen_root))
    roots.append(_PACKAGE_DIR.parent)  # repository root for source and editable installs
    roots.append(_PACKAGE_DIR)  # resources shipped inside the package
    return roots


def resource_path(*parts: str) -> Path | None:
    """The first existing `<root>/resources/<parts>`; None when it is not shipped."""
    for root in _bundle_roots():
        candidate = root.joinpath("resources", *parts)
        if candidate.exists():
            return candidate
    return None


def models_dir() -> Path | None:
    """Shipped models (models/ beside the package, in a bundle, or $SEGLENS_MODELS)."""
    override = os.environ.get("SEGLENS_MODELS")
    if override:
        return Path(override)
    for root in _bundle_roots():
        candidate = root / "models"
        if candidate.is_dir():
            return candidate
    return None


def cache_dir() -> Path:
    """Per-user cache (demo data, prediction cache); $SEGLENS_CACHE overrides it (tests, CI)."""
    override = os.environ.get("SEGLENS_CACHE")
    path = Path(override) if override else Path(platformdirs.user_cache_dir(APP_NAME))
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_dir() -> Path:
    """Per-user settings; $SEGLENS_CONFIG overrides it. Never next to the installed package."""
    override = os.environ.get("SEGLENS_CONFIG")
    path = Path(override) if override else Path(platformdirs.user_config_dir(APP_NAME))
    path.mkdir(parents=True, exist_ok=True)
    return path


def is_bundle() -> bool:
    """True inside the PyInstaller desktop bundle, which runs ONNX models only (no optional frameworks)."""
    return bool(getattr(sys, "frozen", False))


def missing_framework_hint(what: str, extra: str, module: str | None) -> str:
    """The message for a backend whose framework is not installed: in the bundle, what to do instead."""
    install = f"pip install 'seglens[{extra}]'"
    if is_bundle():
        return (
            f"the SegLens desktop bundle runs ONNX models only; open {what} in a Python install of SegLens "
            f"({install}), or convert there with `seglens export MODEL --out x.onnx` and open the .onnx here"
        )
    return f"the {extra} backend needs {module or 'its framework'}: {install}"


PROJECT_FILE_NAME = "seglens-project.sqlite"


def default_project_path(dataset_root: str | Path) -> Path:
    """Where a dataset's project lives unless the user chooses: `<dataset>/seglens-project.sqlite`."""
    return Path(dataset_root) / PROJECT_FILE_NAME
