"""Uploaded bytes -> RGB image, and arrays -> PNG bytes, with errors a client can act on.

The conversion rules are those of app.core.io.imageio.read_image (alpha dropped, 16-bit and float grey
scaled, no EXIF rotation), so a served prediction equals the desktop's prediction of the same file.
The size is checked from the header *before* the pixels are decoded: a small PNG can declare a huge
canvas, and decoding it first would be the denial of service the limit is there to prevent.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from app.core.io.imageio import image_to_rgb
from app.server.errors import ApiError

# What PIL raises on unreadable data (see app.core.io.imageio): OSError covers truncated files and
# UnidentifiedImageError; SyntaxError, ValueError and EOFError come from individual format plugins.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError)


def parse_pixels(text: str) -> int:
    """'4096x4096' (or a plain pixel count) -> the largest number of pixels an image may have."""
    parts = text.lower().replace("*", "x").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"expected WIDTHxHEIGHT like 4096x4096 or a pixel count, got {text!r}") from None
    if len(values) not in (1, 2) or any(v < 1 for v in values):
        raise ValueError(f"expected WIDTHxHEIGHT like 4096x4096 or a pixel count, got {text!r}")
    return values[0] * (values[1] if len(values) == 2 else 1)


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Image file bytes -> HxWx3 RGB uint8. Raises ApiError: 400 unreadable, 413 too many pixels."""
    if not data:
        raise ApiError(400, "empty upload", "the uploaded file has zero bytes")
    try:
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ApiError(413, "image too large", str(exc)) from None
    except Image.UnidentifiedImageError:
        raise ApiError(400, "not an image", "unknown or corrupt image format") from None
    except _DECODE_ERRORS as exc:
        raise ApiError(400, "not an image", f"cannot open the image: {exc}") from None
    with img:
        width, height = img.size
        if width < 1 or height < 1:
            raise ApiError(400, "empty image", f"the image is {width}x{height} pixels")
        if width * height > max_pixels:
            raise ApiError(
                413,
                "image too large",
                f"{width}x{height} = {width * height} pixels; this server accepts at most {max_pixels}",
            )
        try:
            # Image.open only parsed the header; a truncated or corrupt body fails here.
            img.load()
            return image_to_rgb(img)
        except _DECODE_ERRORS as exc:
            raise ApiError(400, "corrupt image", f"cannot decode the image: {exc}") from None


def encode_png(array: np.ndarray) -> bytes:
    """HxW (grey) or HxWx3 (RGB) uint8 -> PNG bytes. Fast compression: these are answers, not archives."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
