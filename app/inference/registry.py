"""Pick a backend for a model file or manifest. Adding a backend = one module + one line here. STUB."""

from __future__ import annotations

from pathlib import Path

from app.inference.base import Segmenter


def load_model(path: str | Path) -> Segmenter:
    """Open a model file (or a manifest .json/.yaml beside or instead of it). Raises ModelLoadError."""
    raise NotImplementedError
