"""Masks as hosted APIs send them back: PNG bytes (class indices or a colour palette), base64 text, or a
nested JSON list of class indices; checked before they are decoded and fitted to the image.

* A PNG's width and height are read from its IHDR chunk (the first 24 bytes) and refused above a pixel
  budget before any pixel is decoded: a 200-byte PNG can declare 13000x13000 (500 MB once decoded).
* Colour masks map back to class indices by exact colour. A colour outside the palette is an error naming
  the colour and how many pixels carry it: JPEG-like smoothing or a different palette would otherwise be
  evaluated as some class.
* A mask of another size than the image is resized by nearest neighbour, centre-aligned (the same
  geometry as resize_labels_nearest everywhere else), so it is lossless whenever the server's size is an
  integer multiple of the image's.
"""

from __future__ import annotations

import base64
import binascii
import io
import struct
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from PIL import Image

from app.core.domain.errors import PredictError
from app.inference.postprocess import resize_labels_nearest

MaskEncoding = Literal["auto", "indices", "palette"]
DEFAULT_MAX_MASK_PIXELS = 40_000_000  # 8K x 4K and then some; Cityscapes frames are 2 MP
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes, where: str) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, without decoding it. Raises PredictError when `data`
    does not start like a PNG."""
    if len(data) < 24 or not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise PredictError(f"{where}: the mask is not a PNG (starts with {data[:8]!r})")
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def check_png_size(data: bytes, where: str, max_pixels: int = DEFAULT_MAX_MASK_PIXELS) -> tuple[int, int]:
    """The PNG's (width, height), refused (PredictError) when 0 or above `max_pixels`."""
    width, height = png_size(data, where)
    if width == 0 or height == 0 or width * height > max_pixels:
        raise PredictError(
            f"{where}: the mask PNG declares {width}x{height} pixels; refused before decoding "
            f"(limit {max_pixels:,} pixels, options.max_mask_pixels)"
        )
    return width, height


def decode_png(
    data: bytes, where: str, max_pixels: int = DEFAULT_MAX_MASK_PIXELS, encoding: MaskEncoding = "auto"
) -> np.ndarray:
    """A mask PNG as HxW uint8 (grey or palette indices) or HxWx3 uint8 (RGB; alpha dropped), its size
    checked from the header first. With encoding "palette" a palette PNG gives its colours."""
    check_png_size(data, where, max_pixels)
    try:
        with Image.open(io.BytesIO(data)) as mask:
            if mask.mode == "P" and encoding == "palette":
                return np.array(mask.convert("RGB"), dtype=np.uint8)
            if mask.mode in ("L", "P"):
                return np.array(mask, dtype=np.uint8)
            if mask.mode in ("RGB", "RGBA"):
                return np.array(mask.convert("RGB"), dtype=np.uint8)
            raise PredictError(f"{where}: the mask PNG is mode {mask.mode}; expected L, P, RGB or RGBA")
    except PredictError:
        raise
    except Exception as exc:  # PIL raises several types for truncated or foreign data
        raise PredictError(f"{where}: the mask is not a readable PNG ({type(exc).__name__}: {exc})") from None


def b64decode(text: Any, where: str) -> bytes:
    """Bytes of a base64 string (a `data:...;base64,` prefix is allowed). PredictError otherwise."""
    if not isinstance(text, str):
        raise PredictError(f"{where}: expected base64 text, got {type(text).__name__}")
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise PredictError(f"{where}: the mask is not valid base64") from None


def colours_to_labels(rgb: np.ndarray, palette: np.ndarray, where: str) -> np.ndarray:
    """HxWx3 colours -> HxW class indices by exact colour (palette: Kx3 uint8, class k = row k)."""
    keys = _colour_keys(rgb)
    table = _colour_keys(palette.reshape(-1, 1, 3)).ravel()
    order = np.argsort(table, kind="stable")
    sorted_table = table[order]
    position = np.searchsorted(sorted_table, keys)
    position = np.minimum(position, len(sorted_table) - 1)
    known = sorted_table[position] == keys
    if not known.all():
        values, counts = np.unique(keys[~known], return_counts=True)
        top = np.argsort(-counts)[:3]
        colours = ", ".join(
            f"({v >> 16}, {(v >> 8) & 255}, {v & 255}) on {c:,} pixels"
            for v, c in zip(values[top].tolist(), counts[top].tolist(), strict=True)
        )
        raise PredictError(
            f"{where}: the colour mask has {len(values)} colour(s) outside the model's palette: {colours}"
            f"{' …' if len(values) > 3 else ''} ({int((~known).sum()):,} pixels in all)"
        )
    return order[position].astype(np.uint8)


def index_list(value: Any, where: str) -> np.ndarray:
    """A nested JSON list of class indices ([[...], ...] or [[[...]]] with a leading 1) as HxW uint8."""
    try:
        array = np.asarray(value)
    except ValueError:
        raise PredictError(f"{where}: the mask list is ragged (rows of different lengths)") from None
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim != 2 or array.size == 0:
        raise PredictError(f"{where}: the mask list must be rows of class indices, got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise PredictError(f"{where}: the mask list holds {array.dtype} values, not class indices")
    if np.issubdtype(array.dtype, np.floating) and not np.array_equal(array, np.round(array)):
        raise PredictError(f"{where}: the mask list holds fractional values, not class indices")
    if int(array.min()) < 0 or int(array.max()) > 255:
        raise PredictError(f"{where}: mask values {int(array.min())}..{int(array.max())} outside 0..255")
    return array.astype(np.uint8)


def to_labels(
    mask: np.ndarray,
    encoding: MaskEncoding,
    palette: np.ndarray | None,
    class_count: int,
    size: tuple[int, int],
    where: str,
) -> np.ndarray:
    """A decoded mask (HxW indices or HxWx3 colours) as HxW class indices at the image's `size`."""
    if mask.ndim == 3:
        if encoding == "indices":
            raise PredictError(f"{where}: expected a single-channel mask of class indices, got colours")
        if palette is None:
            raise PredictError(f"{where}: a colour mask came back but the model has no palette")
        labels = colours_to_labels(mask, palette, where)
    else:
        labels = mask
        if labels.size and int(labels.max()) >= class_count:
            raise PredictError(
                f"{where}: mask has class value {int(labels.max())}; the model has {class_count} classes"
            )
    return resize_labels_nearest(labels, size)


def palette_array(colours: Sequence[Sequence[int]], where: str) -> np.ndarray:
    """K colours as a Kx3 uint8 array; distinct, each three 0..255 integers (else ValueError)."""
    array = np.asarray(colours)
    if array.ndim != 2 or array.shape[1] != 3 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{where}: colours must be [r, g, b] integer triples")
    if array.min() < 0 or array.max() > 255:
        raise ValueError(f"{where}: colour values must be 0..255")
    if len(np.unique(_colour_keys(array.reshape(-1, 1, 3)))) != len(array):
        raise ValueError(f"{where}: two classes share a colour; colour masks could not be read back")
    return array.astype(np.uint8)


def _colour_keys(rgb: np.ndarray) -> np.ndarray:
    pixels = rgb.astype(np.int32)
    return (pixels[..., 0] << 16) | (pixels[..., 1] << 8) | pixels[..., 2]


def encode_png(image: np.ndarray) -> bytes:
    """An RGB uint8 image as PNG: lossless, so the server sees our pixels exactly."""
    buffer = io.BytesIO()
    # compress_level 1: ~5x faster than the default for ~10% more bytes; on a LAN the CPU is the cost.
    Image.fromarray(np.ascontiguousarray(image), "RGB").save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
