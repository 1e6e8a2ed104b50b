"""One resource-path helper for source, installed and frozen runs; bundle-aware messages."""

from __future__ import annotations

import sys

from app.core.io import paths


def test_models_and_resources_found_from_source_and_override(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("SEGLENS_MODELS", raising=False)
    found = paths.models_dir()
    assert found is None or found.name == "models"  # the checkout's models/ once demo models are shipped
    assert paths.resource_path("screenshot.png") is not None
    assert paths.resource_path("no-such-file") is None
    monkeypatch.setenv("SEGLENS_MODELS", str(tmp_path))
    assert paths.models_dir() == tmp_path


def test_frozen_bundle_root_comes_first(tmp_path, monkeypatch) -> None:
    (tmp_path / "resources").mkdir()
    (tmp_path / "resources" / "x.txt").write_text("bundled")
    (tmp_path / "models").mkdir()
    monkeypatch.delenv("SEGLENS_MODELS", raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert paths.resource_path("x.txt") == tmp_path / "resources" / "x.txt"
    assert paths.models_dir() == tmp_path / "models"
    assert paths.is_bundle()
    hint = paths.missing_framework_hint("Keras models", "keras", "tensorflow")
    assert "bundle runs ONNX models only" in hint and "seglens export" in hint


def test_hint_outside_the_bundle_names_the_extra() -> None:
    assert not paths.is_bundle()
    assert paths.missing_framework_hint("Keras models", "keras", "tensorflow") == (
        "the keras backend needs tensorflow: pip install 'seglens[keras]'"
    )
