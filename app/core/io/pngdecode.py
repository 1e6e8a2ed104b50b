"""A fast PNG decoder for the common kinds of file, in front of Pillow; never a different pixel.

Decoding is the floor of every evaluation. On a 2048x1024 RGB PNG imagecodecs' png_decode (libpng with
zlib-ng) takes about 0.6x of Pillow's time, and it releases the GIL for the whole decode, where Pillow
takes the GIL back between 64 KiB blocks and starves beside a busy Python thread (benchmarks/
bench_decode.py measures both). imagecodecs is a dependency (a 26 MB wheel); where it cannot be
imported, or with $SEGLENS_PNG_DECODER=pillow, every file goes through Pillow as before.

Only the kinds whose result is known to equal Pillow's bit for bit are taken here: 8-bit RGB and RGBA,
8-bit and 16-bit greyscale, non-interlaced or interlaced (tests/test_imageio.py checks each against
Pillow). Everything else (palette files, whose class ids are the palette *indices* that libpng would
expand to colours; 1/2/4-bit; 16-bit colour; grey+alpha; files over Pillow's pixel limit; non-PNG files)
and any file the fast decoder refuses or decodes to an unexpected shape return None, and the caller uses
Pillow, whose error messages name what is wrong.
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DECODER_ENV = "SEGLENS_PNG_DECODER"
_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_HEADER_BYTES = 33  # signature (8) + IHDR length, type, 13 data bytes and CRC
# (colour type, bit depth) -> (Pillow mode, channels, dtype) for the kinds decoded here.
_KINDS: dict[tuple[int, int], tuple[str, int, type[np.generic]]] = {
    (2, 8): ("RGB", 3, np.uint8),
    (6, 8): ("RGBA", 4, np.uint8),
    (0, 8): ("L", 1, np.uint8),
    (0, 16): ("I;16", 1, np.uint16),
}

Decoder = Callable[[bytes], np.ndarray]
_decoder: Decoder | None = None
_decoder_name: str | None = None
_choosing = threading.Lock()


@dataclass(frozen=True)
class PngHeader:
    """What a PNG's IHDR chunk says."""

    width: int
    height: int
    bit_depth: int
    color_type: int
    interlaced: bool


def parse_header(head: bytes) -> PngHeader | None:
    """The IHDR of a PNG from its first 33 bytes, or None when they are not a PNG's."""
    if len(head) < _HEADER_BYTES or not head.startswith(_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", head[16:29])
    return PngHeader(width, height, depth, color, interlace == 1)


def read_header(path: Path) -> PngHeader | None:
    """The IHDR of the PNG at `path` (one 33-byte read), or None when it is not a PNG. OSError passes."""
    with path.open("rb") as handle:
        return parse_header(handle.read(_HEADER_BYTES))


def decoder_name() -> str:
    """'imagecodecs' when the fast decoder is in use, else 'pillow'."""
    _load_decoder()
    return _decoder_name or "pillow"


def _load_decoder() -> Decoder | None:
    global _decoder, _decoder_name
    if _decoder_name is not None:
        return _decoder
    with _choosing:  # the first decodes come from several threads at once
        if _decoder_name is None:
            chosen: Decoder | None = None
            if os.environ.get(DECODER_ENV, "").strip().lower() != "pillow":
                chosen = _import_decoder()
            _decoder = chosen
            _decoder_name = "pillow" if chosen is None else "imagecodecs"
    return _decoder


def _import_decoder() -> Decoder | None:
    try:
        import imagecodecs
    except ImportError:
        return None
    decoder: Decoder = imagecodecs.png_decode
    return decoder


def reset() -> None:
    """Forget the chosen decoder, so that $SEGLENS_PNG_DECODER is read again (tests)."""
    global _decoder, _decoder_name
    with _choosing:
        _decoder, _decoder_name = None, None


def decode(path: Path, max_pixels: int | None) -> tuple[np.ndarray, str] | None:
    """(pixels, Pillow mode) of the PNG at `path` when the fast decoder takes it, else None.

    The array is what np.asarray(PIL.Image.open(path)) gives for that mode: HxW for "L" (uint8) and
    "I;16" (uint16), HxWx3 / HxWx4 uint8 for "RGB" / "RGBA". Files over `max_pixels` go to Pillow, whose
    decompression-bomb check then applies.
    """
    decoder = _load_decoder()
    if decoder is None:
        return None
    try:
        data = path.read_bytes()
    except OSError:
        return None  # Pillow reports it (missing file, folder, permissions) in its own words
    header = parse_header(data[:_HEADER_BYTES])
    if header is None:
        return None
    kind = _KINDS.get((header.color_type, header.bit_depth))
    if kind is None or (max_pixels is not None and header.width * header.height > max_pixels):
        return None
    mode, channels, dtype = kind
    try:
        pixels = decoder(data)
    except Exception:  # imagecodecs raises PngError and others for damaged files: Pillow explains them
        return None
    expected = (header.height, header.width) if channels == 1 else (header.height, header.width, channels)
    if not isinstance(pixels, np.ndarray) or pixels.shape != expected or pixels.dtype != dtype:
        return None  # e.g. a tRNS chunk expanded to an alpha channel: not what Pillow gives
    return pixels, mode
