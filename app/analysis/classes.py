"""Id-space label maps to EvalScheme class maps (one lookup, shared by the analyses)."""

from __future__ import annotations

import numpy as np

from app.core.domain.labels import EvalScheme


def class_map(ids: np.ndarray, scheme: EvalScheme, *, what: str = "label map") -> np.ndarray:
    """uint8 map of each pixel's evaluated class (IGNORE where none) from an id-space map.

    Id-space maps are uint8 (ClassMapping.apply, read_label); wider integer maps holding 0..255 are
    accepted, anything else is refused with `what` named."""
    if ids.dtype != np.uint8:
        if ids.dtype.kind not in "iu":
            raise ValueError(f"{what} must hold integers, got {ids.dtype}")
        if ids.size and (int(ids.min()) < 0 or int(ids.max()) > 255):
            raise ValueError(f"{what} holds values outside 0..255 ({int(ids.min())}..{int(ids.max())})")
        ids = ids.astype(np.uint8)
    return np.take(scheme.id_to_class(), ids)
