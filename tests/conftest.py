"""Shared test configuration: Qt offscreen, no network, a guard against dangling worker threads, and
`require()` for tests of optional frameworks."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# tests/modelzoo.py and friends are imported as plain modules.
sys.path.insert(0, str(Path(__file__).parent))

from qt_fixtures import dangling_workers  # noqa: F401  (autouse guard for every test)


def require(module: str) -> ModuleType:
    """Import an optional framework (torch, tensorflow, ...) for a test.

    Skips when it is missing, except under SEGLENS_REQUIRE_EXTRAS=1 (CI), where a missing extra must fail
    loudly instead of silently skipping the backend's tests.
    """
    if os.environ.get("SEGLENS_REQUIRE_EXTRAS") == "1":
        return importlib.import_module(module)
    return pytest.importorskip(module)


@pytest.fixture(autouse=True)
def _private_user_folders(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own cache and config folders: no prediction cache or settings leak between
    tests, runs or the developer's own ~/.cache."""
    root = tmp_path_factory.mktemp("user")
    monkeypatch.setenv("SEGLENS_CACHE", str(root / "cache"))
    monkeypatch.setenv("SEGLENS_CONFIG", str(root / "config"))


@pytest.fixture(scope="session")
def ray_local() -> Iterator[ModuleType]:
    """One local Ray (2 CPUs, small object store) shared by every Ray test of the run: started once."""
    require("ray")
    from ray_cluster import start_local_ray

    ray = start_local_ray()
    yield ray
    ray.shutdown()
