"""Reading and writing images and label maps, with validation that names the file.

Images become HxWx3 RGB uint8; label maps become HxW uint8 class ids, checked against a ClassScheme so
that a wrong file (a colour PNG, a trainIds map where labelIds belong, a label of another size) is
refused with a message that says what is wrong, instead of giving silently wrong metrics.

EXIF orientation is deliberately NOT applied: label maps carry no EXIF, so rotating a photo by its EXIF
tag would misalign it with its labels (Cityscapes images have no orientation tag at all).
"""

from __future__ import annotations

import io
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from app.core.domain.errors import InputError
from app.core.domain.labels import LABELIDS, ClassScheme
from app.core.io import pngdecode
from app.core.io.budget import check_pixels, max_pixels
from app.core.io.fileutil import atomic_write_bytes

# The pixel budget (app.core.io.budget, 64 MP by default) refuses such images with a message naming the file;
# PIL's warning about them (from 89 MP) would only add an anonymous line to the output.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
# What PIL raises on unreadable files: OSError (missing, truncated, "cannot identify" is a subclass),
# SyntaxError (some broken headers), ValueError/struct errors and EOFError from plugin parsers.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)
_MAX_LISTED_BAD_VALUES = 10
_FIRST_NON_VOID_LABELID = 3  # labelIds 0..2 are unlabeled / ego vehicle / rectification border
_NUM_TRAINIDS = 19

EQUAL_CHANNELS_WARNING = "3-channel label with equal channels read as single channel"


def _open(path: Path, what: str) -> Image.Image:
    """Open and fully decode `path`; every failure becomes an InputError naming the file."""
    _refuse_non_regular(path, what)
    try:
        img = Image.open(path)
    except FileNotFoundError:
        raise InputError(path, f"{what} file not found") from None
    except Image.UnidentifiedImageError:
        raise InputError(path, f"not a readable {what}: unknown or corrupt image format") from None
    except _DECODE_ERRORS as exc:
        raise InputError(path, f"cannot open {what}: {exc}") from exc
    try:
        # Image.open only reads the header: the pixel budget is checked before a byte is decompressed.
        check_pixels(path, img.size[0], img.size[1], what)
    except InputError:
        img.close()
        raise
    try:
        # A truncated or corrupt body fails here.
        img.load()
    except _DECODE_ERRORS as exc:
        img.close()
        raise InputError(path, f"cannot decode {what}: {exc}") from exc
    return img


def _fast(source: Path, what: str) -> tuple[np.ndarray, str] | None:
    """(pixels, mode) from the fast PNG decoder, or None: then Pillow decodes (see app.core.io.pngdecode).
    A FIFO or device is refused before it is opened; a file over the pixel budget goes to Pillow, which
    refuses it from its header with the message."""
    _refuse_non_regular(source, what)
    return pngdecode.decode(source, max_pixels())


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image file from its header, without decoding the pixels. InputError naming
    the file when it is missing or unreadable."""
    source = Path(path)
    try:
        header = pngdecode.read_header(source) if source.is_file() else None
    except OSError:
        header = None
    if header is not None:
        return header.height, header.width
    if source.is_dir():
        raise InputError(source, "is a folder, expected an image file")
    try:
        with Image.open(source) as img:  # reads the header only
            return img.height, img.width
    except FileNotFoundError:
        raise InputError(source, "image file not found") from None
    except Image.UnidentifiedImageError:
        raise InputError(source, "not a readable image: unknown or corrupt image format") from None
    except _DECODE_ERRORS as exc:
        raise InputError(source, f"cannot open image: {exc}") from exc


def _refuse_non_regular(path: Path, what: str) -> None:
    """A folder, FIFO, socket or device is refused before it is opened (opening a FIFO blocks for ever)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InputError(path, f"{what} file not found") from None
    except OSError as exc:
        raise InputError(path, f"cannot read {what}: {exc.strerror}") from exc
    if stat.S_ISDIR(mode):
        raise InputError(path, f"is a folder, expected an {what} file")
    if not stat.S_ISREG(mode):
        raise InputError(path, f"is not a regular file (a FIFO, socket or device); {what} not opened")


def read_image(path: str | Path) -> np.ndarray:
    """Any PIL-readable image -> HxWx3 RGB uint8 (grey, palette, RGBA and 16-bit converted).

    Alpha is dropped (not composited); 16-bit grey is scaled to 8 bits (65535 -> 255); CMYK and other
    colour spaces go through PIL's conversion. EXIF orientation is not applied (see the module docstring).
    Multi-frame files give their first frame. Raises InputError naming the file. Common PNG kinds are
    decoded by the fast decoder when installed, to the same pixels.
    """
    source = Path(path)
    fast = _fast(source, "image")
    if fast is not None:
        pixels, mode = fast
        if mode == "RGB":
            return pixels
        if mode == "RGBA":
            return np.ascontiguousarray(pixels[:, :, :3])
        grey = pixels if mode == "L" else _scale_to_uint8(pixels, mode)
        return np.repeat(grey[:, :, None], 3, axis=2)
    img = _open(source, "image")
    try:
        return image_to_rgb(img)
    except (ValueError, OSError) as exc:
        raise InputError(source, f"cannot convert image mode {img.mode} to RGB: {exc}") from exc
    finally:
        img.close()


def image_to_rgb(img: Image.Image) -> np.ndarray:
    """A decoded PIL image -> HxWx3 RGB uint8 by read_image's rules (alpha dropped, 16-bit, 32-bit and
    float grey scaled to 8 bits, other modes through PIL's conversion). The server's upload decoder uses
    it too, so a served prediction sees the same pixels as the desktop. PIL's ValueError/OSError pass."""
    if img.mode == "RGB":
        return np.asarray(img)
    if img.mode in _SIXTEEN_BIT_MODES or img.mode in ("I", "F"):
        grey = _scale_to_uint8(np.asarray(img), img.mode)
        return np.repeat(grey[:, :, None], 3, axis=2)
    return np.asarray(img.convert("RGB"))


def _scale_to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    if mode == "F":
        # Float images have no declared range: take 0..1 as normalised, anything larger as 0..255.
        data = np.nan_to_num(values.astype(np.float32))
        if data.size and data.max() <= 1.0:
            data = data * 255.0
        return np.clip(np.rint(data), 0, 255).astype(np.uint8)
    wide = np.clip(values.astype(np.int64), 0, 65535)
    # Exact rounding of v * 255 / 65535, i.e. a full-range 16-bit to 8-bit mapping.
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)


def read_label(
    path: str | Path,
    scheme: ClassScheme,
    expected_shape: tuple[int, int] | None = None,
    *,
    detect_trainids: bool = True,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """A label map -> (HxW uint8, warnings). Raises InputError naming the file.

    Accepts single-channel integer maps (L, P — palette *indices*, not colours —, I;16, I, 1) and
    3-channel maps whose channels are equal (with a warning). Refuses colour images, float maps, values
    above 255, a size other than `expected_shape` (H, W), values the scheme does not define, and — when
    the scheme is labelIds — maps that look like trainIds (`detect_trainids=False` turns that heuristic
    off, e.g. for a weak model's saved predictions that are mostly 'unlabeled'). The returned array may be
    read-only.
    """
    source = Path(path)
    fast = _fast(source, "label")  # never a palette image: those are read by Pillow, palette and all
    if fast is not None:
        labels, notes = _label_values(source, fast[1], fast[0])
    else:
        img = _open(source, "label")
        try:
            labels, notes = _label_array(source, img, scheme)
        finally:
            img.close()
    if expected_shape is not None and labels.shape != tuple(expected_shape):
        h, w = labels.shape
        eh, ew = expected_shape
        raise InputError(source, f"label size {w}x{h} does not match the image size {ew}x{eh} (WxH)")
    labelids = detect_trainids and (scheme is LABELIDS or scheme.key == LABELIDS.key)
    top = int(labels.max()) if labels.size else 0
    # Counting every value costs more than decoding a label PNG; it is skipped when the largest value
    # already clears the map: every value up to it is valid, and (labelIds) it is a class trainIds lack.
    if not scheme.valid_values()[: top + 1].all() or (labelids and (top < _NUM_TRAINIDS or top == 255)):
        counts = value_counts(labels)
        if labelids:
            _refuse_trainids(source, counts)
        _refuse_invalid_values(source, counts, scheme)
    return labels, notes


def _label_array(source: Path, img: Image.Image, scheme: ClassScheme) -> tuple[np.ndarray, tuple[str, ...]]:
    """A label decoded by Pillow as HxW uint8; palette images are read by index or by colour."""
    if img.mode == "P":
        return _palette_labels(source, np.asarray(img), img.getpalette(), scheme)
    return _label_values(source, img.mode, np.asarray(img))


def _label_values(source: Path, mode: str, values: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """The decoded label (`values`: the pixels of an image of `mode`, never a palette image) as HxW uint8,
    refusing what is not a single-channel integer map."""
    if mode == "L":
        return values, ()
    if mode == "1":
        return values.astype(np.uint8), ()
    if mode in _SIXTEEN_BIT_MODES or mode == "I":
        return _narrow_to_uint8(source, values), ()
    if mode == "F":
        raise InputError(source, "label is a floating-point map (mode F): expected integer class ids")
    if mode in ("LA", "PA"):
        return np.ascontiguousarray(values[:, :, 0]), ("alpha channel of the label ignored",)
    if mode in ("RGB", "RGBA"):
        rgb = values
        first = rgb[:, :, 0]
        if np.array_equal(first, rgb[:, :, 1]) and np.array_equal(first, rgb[:, :, 2]):
            return np.ascontiguousarray(first), (EQUAL_CHANNELS_WARNING,)
        raise InputError(
            source, "label has 3 different channels: looks like a colour image, expected an id map"
        )
    raise InputError(source, f"label has image mode {mode}: expected a single-channel id map")


def _palette_labels(
    source: Path, indices: np.ndarray, flat_palette: list[int] | None, scheme: ClassScheme
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Palette indices are the class ids when the palette is the identity: grey (i, i, i) or the scheme's
    own colour at each used index (an indexed Cityscapes colour PNG). A palette holding the scheme's
    colours at other indices is read by colour, with a note; any other palette is refused, since reading
    its indices would give silently wrong ids."""
    used = np.flatnonzero(np.bincount(indices.ravel(), minlength=256))
    entries = len(flat_palette or ()) // 3
    if flat_palette is None or used.size == 0 or int(used[-1]) >= entries:
        return indices, ()  # no palette for these indices (PIL's default stub): nothing but the indices
    palette = np.asarray(flat_palette[: entries * 3], dtype=np.int64).reshape(-1, 3)[used]
    own = np.zeros((256, 3), dtype=np.int64)
    own[: scheme.num_classes] = np.asarray(scheme.colors, dtype=np.int64)
    identity = np.all(palette == used[:, None], axis=1) | np.all(palette == own[used], axis=1)
    if scheme.ignore_value is not None:
        identity |= used == scheme.ignore_value
    if identity.all():
        return indices, ()
    by_colour: dict[tuple[int, int, int], int] = {}
    for class_id, colour in enumerate(scheme.colors):
        by_colour.setdefault((int(colour[0]), int(colour[1]), int(colour[2])), class_id)
    if scheme.ignore_value is not None:
        by_colour.setdefault((0, 0, 0), scheme.ignore_value)
    lut = np.zeros(256, dtype=np.uint8)
    unknown: list[str] = []
    for index, colour in zip(used.tolist(), palette.tolist(), strict=True):
        found = by_colour.get((colour[0], colour[1], colour[2]))
        if found is None:
            unknown.append(f"index {index} = RGB{tuple(colour)}")
        else:
            lut[index] = found
    if unknown:
        shown = ", ".join(unknown[:_MAX_LISTED_BAD_VALUES]) + (
            " …" if len(unknown) > _MAX_LISTED_BAD_VALUES else ""
        )
        raise InputError(
            source,
            f"palette label whose colours are neither its indices nor the {scheme.key} colours ({shown}); "
            "its class ids cannot be known: save it as a greyscale id map",
        )
    note = f"palette label read by colour: its palette holds the {scheme.key} colours at other indices"
    return lut[indices], (note,)


def value_counts(labels: np.ndarray) -> np.ndarray:
    """(256,) int64 pixel count of each value of a uint8 label map."""
    flat = labels.reshape(-1)
    if labels.dtype != np.uint8 or flat.size % 2 or not flat.flags.c_contiguous:
        return np.bincount(flat, minlength=256)
    # Counting pixel pairs (as uint16) halves the widening to intp that bincount does first: 2x faster.
    pairs = np.bincount(flat.view(np.uint16), minlength=1 << 16).reshape(256, 256)
    return pairs.sum(axis=0) + pairs.sum(axis=1)


def _narrow_to_uint8(source: Path, values: np.ndarray) -> np.ndarray:
    if values.size == 0:
        return values.astype(np.uint8)
    low, high = int(values.min()), int(values.max())
    if low < 0 or high > 255:
        bad = int(np.count_nonzero((values < 0) | (values > 255)))
        raise InputError(
            source,
            f"label values range {low}..{high}; class ids must be 0..255 ({bad} pixels outside). "
            "Is this an instanceIds map?",
        )
    return values.astype(np.uint8)


def _refuse_trainids(source: Path, counts: np.ndarray) -> None:
    """Refuse a trainIds map given where labelIds are expected: it would be silently misread."""
    present = np.flatnonzero(counts)
    if present.size == 0:
        return
    trainid_like = np.zeros(256, dtype=bool)
    trainid_like[:_NUM_TRAINIDS] = True
    trainid_like[255] = True
    only_trainids = bool(trainid_like[present].all()) and counts[255] > 0
    # labelIds 0..2 are void; real labelIds maps are dominated by road/building/sky (7, 11, 23). A map
    # with nothing >= 19 that is mostly 0..2 is much more likely road/sidewalk/building in trainIds.
    # A map holding one value only (e.g. all 'unlabeled') is a plausible empty annotation: let it pass.
    mostly_low = (
        present.size > 1
        and int(present[-1]) < _NUM_TRAINIDS
        and int(counts[:_FIRST_NON_VOID_LABELID].sum()) * 2 > int(counts.sum())
    )
    if only_trainids or mostly_low:
        shown = ", ".join(str(int(v)) for v in present[:20]) + (" …" if present.size > 20 else "")
        raise InputError(
            source,
            f"the map looks like trainIds (values {shown}) but labelIds (0..33) are expected; "
            "use the *_gtFine_labelIds.png file or choose the trainIds scheme",
        )


def _refuse_invalid_values(source: Path, counts: np.ndarray, scheme: ClassScheme) -> None:
    bad = np.flatnonzero((counts > 0) & ~scheme.valid_values())
    if bad.size == 0:
        return
    listed = ", ".join(f"{int(v)} ({int(counts[v])} px)" for v in bad[:_MAX_LISTED_BAD_VALUES])
    more = f" and {bad.size - _MAX_LISTED_BAD_VALUES} more" if bad.size > _MAX_LISTED_BAD_VALUES else ""
    valid = f"0..{scheme.num_classes - 1}"
    if scheme.ignore_value is not None:
        valid += f" and {scheme.ignore_value} (ignore)"
    raise InputError(source, f"label values not in the {scheme.key} scheme (valid: {valid}): {listed}{more}")


def read_instances(path: str | Path, expected_shape: tuple[int, int] | None = None) -> np.ndarray:
    """A Cityscapes instanceIds PNG (16- or 32-bit) -> HxW int32.

    Values are labelId (< 1000) or labelId * 1000 + instance number; 8-bit maps are accepted too.
    """
    source = Path(path)
    fast = _fast(source, "instance map")
    if fast is not None and fast[1] in ("I;16", "L"):
        values = fast[0].astype(np.int32)
    else:
        img = _open(source, "instance map")
        try:
            if img.mode not in _SIXTEEN_BIT_MODES and img.mode not in ("I", "L"):
                raise InputError(
                    source, f"instance map has image mode {img.mode}: expected a 16- or 32-bit integer map"
                )
            values = np.asarray(img).astype(np.int32)
        finally:
            img.close()
    if values.size and int(values.min()) < 0:
        raise InputError(source, "instance map holds negative values")
    if expected_shape is not None and values.shape != tuple(expected_shape):
        h, w = values.shape
        eh, ew = expected_shape
        raise InputError(source, f"instance map size {w}x{h} does not match the image size {ew}x{eh} (WxH)")
    return values


def encode_label_png(labels: np.ndarray) -> bytes:
    """HxW uint8 -> the bytes of an 8-bit greyscale PNG."""
    if not isinstance(labels, np.ndarray) or labels.ndim != 2 or labels.dtype != np.uint8:
        raise ValueError(
            f"labels must be an HxW uint8 array, got {getattr(labels, 'dtype', type(labels))} "
            f"{getattr(labels, 'shape', '')}"
        )
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(labels)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_label_png(path: str | Path, labels: np.ndarray) -> None:
    """HxW uint8 -> 8-bit greyscale PNG, written atomically."""
    atomic_write_bytes(path, encode_label_png(labels))
