"""The pixel budget: the largest image, label map or model input SegLens will decode or allocate.

Checked from file headers before any pixel is decoded (PIL's Image.open reads the header only) and from a
model's declared input before a session runs, so a 0.5 MB PNG declaring 13000x13000 or an ONNX input of
100000x100000 is refused with a message instead of costing gigabytes per thread. PIL's own
MAX_IMAGE_PIXELS check is not enough: it only warns below 179 MP, and a 169 MP RGB image is 0.5 GB per
copy, several copies per decode.

The budget is $SEGLENS_MAX_PIXELS (a number of pixels, e.g. 64000000, or megapixels with 'M': 64M), default
64 MP (8000x8000; a Cityscapes frame is 2 MP).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from app.core.domain.errors import InputError

ENV_VAR = "SEGLENS_MAX_PIXELS"
DEFAULT_MAX_PIXELS = 64_000_000
_log = logging.getLogger(__name__)


def max_pixels() -> int:
    """The budget in pixels: $SEGLENS_MAX_PIXELS, else DEFAULT_MAX_PIXELS (a bad value is logged and the
    default used)."""
    raw = os.environ.get(ENV_VAR, "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = float(raw[:-1]) * 1e6 if raw[-1] in "mM" else float(raw)
    except ValueError:
        value = 0.0
    if not value >= 1:
        _log.warning("$%s=%r is not a number of pixels: using %d", ENV_VAR, raw, DEFAULT_MAX_PIXELS)
        return DEFAULT_MAX_PIXELS
    return int(value)


def _mp(pixels: int) -> str:
    return f"{pixels / 1e6:.1f} MP" if pixels >= 100_000 else f"{pixels} pixels"


def check_pixels(path: str | Path | None, width: int, height: int, what: str) -> None:
    """Raise InputError naming `path` when width x height exceeds the budget."""
    budget = max_pixels()
    pixels = int(width) * int(height)
    if pixels > budget:
        raise InputError(
            path,
            f"{what} of {width}x{height} = {_mp(pixels)} exceeds the pixel budget of {_mp(budget)} "
            f"(set ${ENV_VAR} to allow more); not decoded",
        )


def budget_problem(width: int, height: int, what: str) -> str | None:
    """The message check_pixels would raise, without a path (for errors of other types), or None."""
    try:
        check_pixels(None, width, height, what)
    except InputError as exc:
        return exc.problem
    return None
