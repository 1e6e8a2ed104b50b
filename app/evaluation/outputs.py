"""Where an evaluation writes per-image files: names safe on every file system."""

from __future__ import annotations

import re
from pathlib import Path

from app.core.io.datasets import SampleRef
from app.core.io.fileutil import safe_file_name


def safe_name(name: str) -> str:
    """A model name usable as a folder name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"


def prediction_path(root: Path, model_name: str, ref: SampleRef) -> Path:
    """Where a model's mask of `ref` is saved: named like the GT file (`<frame>_gtFine_labelIds.png`, under
    split/city) so the official evaluation finds it by city/sequence/frame."""
    parts = [safe_file_name(p) for p in (ref.split, ref.city) if p]
    return root.joinpath(safe_name(model_name), *parts, safe_file_name(ref.frame, "_gtFine_labelIds.png"))
