"""The data the window tests open: six small synthetic scenes and the window model pair. A pytest plugin:
modules that use the fixtures name it in `pytest_plugins`."""

from __future__ import annotations

from pathlib import Path

import pytest
from modelzoo import window_model_pair

from app.core.scenes.generator import generate


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("gui-data"), 6, size=(96, 192), seed=11)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return window_model_pair(tmp_path_factory.mktemp("gui-models"))
