"""The report's pictures as PNG bytes, drawn with Pillow only (no plotting library, no system fonts):
the per-class delta bar chart, row-normalized confusion heatmaps and image / GT / A / B thumbnails.

The same PNGs go inline into the HTML (data: URIs) and into the PDF, so both show identical pictures.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from app.core.display.overlay import overlay
from app.core.domain.labels import IGNORE, EvalScheme

THUMB_WIDTH = 360
_GREEN = (46, 125, 50)
_RED = (198, 40, 40)
_GREY = (120, 120, 120)
_INK = (33, 33, 33)
_Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@functools.lru_cache(maxsize=8)
def font(size: int) -> _Font:
    """Pillow's bundled scalable font (no system font needed)."""
    return ImageFont.load_default(size=size)


def to_png(image: Image.Image) -> bytes:
    """Encode a Pillow image as PNG (charts: flat colours and text stay sharp)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


def to_jpeg(image: Image.Image) -> bytes:
    """Encode a photo-like picture as JPEG: ~8x smaller than PNG for camera images and their overlays,
    which keeps a report with ten example rows at a few hundred KB instead of several MB."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=85, optimize=True)
    return buffer.getvalue()


def mime_type(data: bytes) -> str:
    """'image/png' or 'image/jpeg', from the bytes themselves."""
    return "image/jpeg" if data[:3] == b"\xff\xd8\xff" else "image/png"


def _text_width(draw: ImageDraw.ImageDraw, text: str, size: int) -> float:
    return draw.textlength(text, font=font(size))


def _fit(draw: ImageDraw.ImageDraw, text: str, size: int, width: float) -> str:
    # Long class names are shortened with an ellipsis rather than drawn over the bars.
    if _text_width(draw, text, size) <= width:
        return text
    while text and _text_width(draw, text + "…", size) > width:
        text = text[:-1]
    return text + "…"


def delta_chart(names: Sequence[str], deltas: Sequence[float | None], *, width: int = 900) -> bytes:
    """Horizontal bars of B - A IoU per class (points): green where B is better, red where worse."""
    row, size, label_w, value_w = 26, 16, 180, 80
    height = row * len(names) + 40
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    finite = [abs(d) for d in deltas if d is not None and math.isfinite(d)]
    span = max(max(finite, default=0.0), 1.0)  # at least +-1 point, so tiny deltas do not look huge
    plot_left, plot_right = label_w + value_w, width - value_w
    zero = (plot_left + plot_right) / 2
    scale = (plot_right - plot_left) / 2 / span
    for i, (name, delta) in enumerate(zip(names, deltas, strict=True)):
        y = 10 + i * row
        draw.text((label_w - 6, y + row / 2), _fit(draw, name, size, label_w - 10), fill=_INK,
                  font=font(size), anchor="rm")  # fmt: skip
        if delta is None or not math.isfinite(delta):
            draw.text((zero + 6, y + row / 2), "n/a", fill=_GREY, font=font(size - 2), anchor="lm")
            continue
        end = zero + delta * scale
        color = _GREEN if delta >= 0 else _RED
        draw.rectangle((min(zero, end), y + 4, max(zero, end), y + row - 4), fill=color)
        text_x, anchor = (end + 5, "lm") if delta >= 0 else (end - 5, "rm")
        draw.text((text_x, y + row / 2), f"{delta:+.2f}", fill=_INK, font=font(size - 1), anchor=anchor)
    bottom = 10 + len(names) * row
    draw.line((zero, 6, zero, bottom), fill=_INK, width=1)
    draw.text((zero, bottom + 14), "IoU change B - A (percentage points)", fill=_GREY, font=font(12),
              anchor="mm")  # fmt: skip
    return to_png(image)


def _blues(values: np.ndarray) -> np.ndarray:
    """0..1 -> white..dark blue, as uint8 RGB; square-root scaled so a 2-5% confusion is still visible."""
    v = np.sqrt(np.clip(values, 0.0, 1.0))[..., None]
    white, dark = np.array([247, 251, 255]), np.array([8, 48, 107])
    return np.round(white + (dark - white) * v).astype(np.uint8)


def heatmap(matrix: np.ndarray, rows: Sequence[str], columns: Sequence[str], title: str) -> bytes:
    """A row-normalized confusion matrix: rows = ground truth, columns = prediction, cells in percent."""
    k_rows, k_cols = matrix.shape
    cell = 38 if k_cols <= 21 else 24
    left, top, size = 170, 175, 14
    width, height = left + cell * k_cols + 20, top + cell * k_rows + 44
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((10, 8), _fit(draw, title, 22, width - 20), fill=_INK, font=font(22))
    colors = _blues(matrix)
    for r in range(k_rows):
        y = top + r * cell
        draw.text((left - 6, y + cell / 2), _fit(draw, rows[r], size, left - 10), fill=_INK, font=font(size),
                  anchor="rm")  # fmt: skip
        for c in range(k_cols):
            x = left + c * cell
            value = float(matrix[r, c])
            draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=tuple(int(v) for v in colors[r, c]))
            if value >= 0.005:
                ink = "white" if value > 0.3 else _INK
                draw.text((x + cell / 2, y + cell / 2), f"{value * 100:.0f}", fill=ink, font=font(13),
                          anchor="mm")  # fmt: skip
            if r == c:
                draw.rectangle((x, y, x + cell - 1, y + cell - 1), outline=_GREY)
    for c, name in enumerate(columns):
        _vertical_label(image, _fit(draw, name, size, top - 50), left + c * cell + cell / 2, top - 4, size)
    draw.text((10, top - 22), "rows: ground truth", fill=_GREY, font=font(13))
    draw.text((left, 40), "columns: predicted", fill=_GREY, font=font(13))
    draw.text((left, top + k_rows * cell + 10), "each row: % of that ground-truth class's pixels", fill=_GREY,
              font=font(13))  # fmt: skip
    return to_png(image)


def _vertical_label(image: Image.Image, text: str, x: float, bottom: float, size: int) -> None:
    # Pillow cannot draw rotated text directly: draw on a strip, rotate it, paste it with a mask.
    probe = ImageDraw.Draw(image)
    w = int(_text_width(probe, text, size)) + 4
    h = size + 6
    strip = Image.new("L", (w, h), 0)
    ImageDraw.Draw(strip).text((2, h / 2), text, fill=255, font=font(size), anchor="lm")
    rotated = strip.rotate(90, expand=True)
    image.paste(Image.new("RGB", rotated.size, _INK), (int(x - h / 2), int(bottom - w)), rotated)


def _class_map(ids: np.ndarray, scheme: EvalScheme, size: tuple[int, int]) -> np.ndarray:
    classes = scheme.id_to_class()[ids]
    return np.asarray(Image.fromarray(classes).resize(size, Image.Resampling.NEAREST))


def _palette(scheme: EvalScheme) -> np.ndarray:
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: scheme.num_classes] = np.asarray(scheme.colors, dtype=np.uint8)
    return lut


def thumbnails(
    image: np.ndarray,
    gt_ids: np.ndarray | None,
    predictions: Sequence[np.ndarray | None],
    scheme: EvalScheme,
    *,
    width: int = THUMB_WIDTH,
    opacity: float = 0.6,
) -> list[bytes | None]:
    """[image, GT overlay, overlay per model] as JPEGs at `width`; None where the mask is unknown.

    Masks are in the id space; pixels outside the evaluated classes (void, ignored) stay unpainted.
    """
    height = max(1, round(image.shape[0] * width / image.shape[1]))
    size = (width, height)
    small = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
    palette = _palette(scheme)
    out: list[bytes | None] = [to_jpeg(Image.fromarray(small))]
    for ids in (gt_ids, *predictions):
        if ids is None:
            out.append(None)
            continue
        classes = _class_map(ids, scheme, size)
        out.append(to_jpeg(Image.fromarray(overlay(small, classes, palette, opacity, hidden=[IGNORE]))))
    return out


def legend(scheme: EvalScheme, *, width: int = 900) -> bytes:
    """The class colours, wrapped over as many rows as needed."""
    size, swatch, gap = 12, 14, 18
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    items = [(name, color, swatch + 6 + int(_text_width(draw, name, size)) + gap)
             for name, color in zip(scheme.names, scheme.colors, strict=True)]  # fmt: skip
    rows: list[list[tuple[str, tuple[int, int, int], int]]] = [[]]
    used = 0
    for item in items:
        if used + item[2] > width and rows[-1]:
            rows.append([])
            used = 0
        rows[-1].append(item)
        used += item[2]
    image = Image.new("RGB", (width, 22 * len(rows) + 4), "white")
    draw = ImageDraw.Draw(image)
    for r, row_items in enumerate(rows):
        x, y = 4, 4 + r * 22
        for name, color, step in row_items:
            draw.rectangle((x, y, x + swatch, y + swatch), fill=color, outline=_GREY)
            draw.text((x + swatch + 6, y + swatch / 2), name, fill=_INK, font=font(size), anchor="lm")
            x += step
    return to_png(image)
