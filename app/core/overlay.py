"""Colorize label maps and blend them over images with integer math. STUB."""

from __future__ import annotations

import numpy as np


def colorize(labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """HxW uint8 labels + 256x3 uint8 palette -> HxWx3 uint8."""
    raise NotImplementedError


def blend(image: np.ndarray, colors: np.ndarray, opacity: float, mask: np.ndarray | None = None) -> np.ndarray:
    """image*(1-a) + colors*a, in fixed point; where `mask` is False the image is kept."""
    raise NotImplementedError
