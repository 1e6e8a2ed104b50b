"""What the image table shows per image, computed without Qt: a short name and a small thumbnail."""

from __future__ import annotations

import numpy as np

from app.core.io.datasets import SampleRef


def short_name(ref: SampleRef) -> str:
    """The frame name as the user knows the file: with its city ("aachen_000000_000019"; frames of
    different cities share their numbers), the city prefixed when the file name lacks it."""
    if ref.city and not ref.frame.startswith(f"{ref.city}_"):
        return f"{ref.city}/{ref.frame}"
    return ref.frame


def thumbnail(path: object, size: tuple[int, int]) -> np.ndarray | None:
    """A small RGB copy of an image for the image table (PIL's draft/reduce keep this cheap); None for a
    file that cannot be read (the evaluation reports it properly; a thumbnail must not spam errors)."""
    from PIL import Image, UnidentifiedImageError

    try:
        source = Image.open(str(path))
    except (OSError, UnidentifiedImageError):
        return None
    with source:
        source.draft("RGB", size)  # JPEG decodes at a fraction of the size; a no-op for PNG
        try:
            small = source.convert("RGB")
        except OSError:
            return None
    small.thumbnail(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.ascontiguousarray(np.asarray(small))
