"""Where an evaluation writes per-image files: names safe on every file system."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from app.core.io.datasets import SampleRef

_MAX_NAME_BYTES = 200  # below the 255-byte limit of common file systems, with room for suffixes


def safe_name(name: str) -> str:
    """A model name usable as a folder name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"


def _fits(stem: str, suffix: str) -> str:
    # A name the file system refuses (over 255 bytes, or undecodable bytes from a foreign file system)
    # would lose the whole run's output: shorten it, keeping a digest so names stay unique.
    encoded = stem.encode("utf-8", "surrogateescape")
    try:
        stem.encode("utf-8")
    except UnicodeEncodeError:
        stem = encoded.decode("utf-8", "replace").replace("\ufffd", "_")
    if len((stem + suffix).encode("utf-8")) <= _MAX_NAME_BYTES:
        return stem + suffix
    digest = hashlib.sha256(encoded).hexdigest()[:12]
    head = stem.encode("utf-8")[: _MAX_NAME_BYTES - len(suffix) - 13].decode("utf-8", "ignore")
    return f"{head}-{digest}{suffix}"


def prediction_path(root: Path, model_name: str, ref: SampleRef) -> Path:
    """Where a model's mask of `ref` is saved: named like the GT file (`<frame>_gtFine_labelIds.png`, under
    split/city) so the official evaluation finds it by city/sequence/frame."""
    parts = [_fits(p, "") for p in (ref.split, ref.city) if p]
    return root.joinpath(safe_name(model_name), *parts, _fits(ref.frame, "_gtFine_labelIds.png"))
