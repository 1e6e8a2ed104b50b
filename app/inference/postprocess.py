"""From a model's low-resolution class scores to labels at the image's resolution.

The convention (what HF's post_process_semantic_segmentation does): upsample logits or probabilities
BILINEARLY to the original image size, exactly as torch.nn.functional.interpolate(mode="bilinear",
align_corners=False), then take the argmax over classes.

Done naively at 1024x2048 with 19 classes that costs about as much as the model. The exact shortcut: a
bilinear output pixel is a convex combination of its four low-resolution neighbours, and a convex
combination of score vectors that all have their maximum at class k has its maximum at k too. So wherever
the four neighbours share the same argmax the result is that argmax; the full interpolation is only needed
on the remaining (boundary) pixels. Floating point keeps this: rounding is monotone, so the combined score of
k is never below another class's. (The one theoretical exception is an exact float tie with a lower class
index, which needs score gaps within one ulp at all four neighbours.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_SENTINEL = 255  # never a class value: schemes have at most 255 classes (values 0..254)
_CHUNK = 32768  # boundary pixels interpolated per step: keeps the (chunk, K) temporaries in cache


@dataclass(frozen=True)
class AxisTable:
    """Bilinear source indices and weights along one axis (PyTorch, align_corners=False)."""

    i0: np.ndarray  # int64 (out,)
    i1: np.ndarray  # int64 (out,): i0 + 1, or i0 at the last source pixel
    w0: np.ndarray  # float32 (out,)
    w1: np.ndarray  # float32 (out,)


def bilinear_table(in_size: int, out_size: int) -> AxisTable:
    """Source indices/weights for resizing one axis from in_size to out_size like PyTorch does.

    PyTorch computes in the input's float type: src = scale * (dst + 0.5) - 0.5 with scale = in / out,
    clamped at 0; i0 = floor(src); lambda = src - i0.
    """
    if in_size < 1 or out_size < 1:
        raise ValueError(f"sizes must be positive, got {in_size} -> {out_size}")
    scale = np.float32(in_size / out_size)
    src = scale * (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5)
    np.maximum(src, np.float32(0.0), out=src)
    i0 = np.minimum(src.astype(np.int64), in_size - 1)
    w1 = (src - i0.astype(np.float32)).astype(np.float32)
    i1 = np.where(i0 < in_size - 1, i0 + 1, i0)
    w0 = (np.float32(1.0) - w1).astype(np.float32)
    return AxisTable(i0, i1, w0, w1)


def argmax_classes(scores: np.ndarray, axis: int) -> np.ndarray:
    """uint8 argmax over `axis` (first maximum wins, as np.argmax/torch.argmax)."""
    if axis != 0:
        return np.argmax(scores, axis=axis).astype(np.uint8)
    # A running maximum over the class planes is much faster than np.argmax across a strided axis 0.
    best = scores[0].copy()
    labels = np.zeros(best.shape, dtype=np.uint8)
    mask = np.empty(best.shape, dtype=bool)
    for k in range(1, scores.shape[0]):
        np.greater(scores[k], best, out=mask)
        np.copyto(labels, np.uint8(k), where=mask)
        np.maximum(best, scores[k], out=best)
    return labels


def _check_scores(scores: np.ndarray, channels_last: bool) -> np.ndarray:
    if scores.ndim != 3:
        raise ValueError(f"scores must be (K, h, w) or (h, w, K), got shape {scores.shape}")
    num_classes = scores.shape[2] if channels_last else scores.shape[0]
    if not 0 < num_classes <= 255:
        raise ValueError(f"1..255 classes supported, got {num_classes}")
    if scores.dtype != np.float32:
        scores = scores.astype(np.float32)
    # Always work class-first: one contiguous plane per class.
    return np.ascontiguousarray(scores.transpose(2, 0, 1) if channels_last else scores)


def upsample_argmax_naive(
    scores: np.ndarray, out_size: tuple[int, int], *, channels_last: bool = False
) -> np.ndarray:
    """Full bilinear interpolation of every class to out_size (H, W), then argmax. HxW uint8.

    Computed in row blocks so that the (K, H, W) float volume never exists at once.
    """
    planes = _check_scores(scores, channels_last)
    num_classes, in_h, in_w = planes.shape
    out_h, out_w = out_size
    if (in_h, in_w) == (out_h, out_w):
        return argmax_classes(planes, 0)
    ty, tx = bilinear_table(in_h, out_h), bilinear_table(in_w, out_w)
    # Horizontal pass first, per source row: the same per-pixel operation order as PyTorch,
    # h0 * (w0 * a + w1 * b) + h1 * (w0 * c + w1 * d).
    rows = planes[:, :, tx.i0] * tx.w0 + planes[:, :, tx.i1] * tx.w1  # (K, in_h, out_w)
    labels = np.empty((out_h, out_w), dtype=np.uint8)
    block = max(1, (1 << 21) // max(1, num_classes * out_w))
    for start in range(0, out_h, block):
        sl = slice(start, min(out_h, start + block))
        h0 = ty.w0[sl, None]
        h1 = ty.w1[sl, None]
        full = rows[:, ty.i0[sl], :] * h0 + rows[:, ty.i1[sl], :] * h1
        # Multiplication is commutative in IEEE arithmetic, so w*a == a*w bit for bit.
        labels[sl] = argmax_classes(full, 0)
    return labels


def upsample_argmax(
    scores: np.ndarray, out_size: tuple[int, int], *, channels_last: bool = False
) -> np.ndarray:
    """argmax(bilinear_upsample(scores, out_size)) computed exactly but only at class boundaries.

    scores: (K, h, w) float logits or probabilities (or (h, w, K) with channels_last). Returns HxW uint8
    equal to upsample_argmax_naive. When out_size is not larger than the input on both axes the
    shortcut saves nothing and the naive computation is used.
    """
    planes = _check_scores(scores, channels_last)
    num_classes, in_h, in_w = planes.shape
    out_h, out_w = out_size
    if out_h <= in_h or out_w <= in_w:
        return upsample_argmax_naive(planes, out_size)
    ty, tx = bilinear_table(in_h, out_h), bilinear_table(in_w, out_w)
    labels = _agreeing_labels(argmax_classes(planes, 0), ty, tx)
    ys, xs = np.nonzero(labels == _SENTINEL)
    if ys.size == 0:
        return labels
    # Score vectors as contiguous rows (pixel, K): gathering one pixel's K scores is then one short copy.
    if ys.size > 2 * in_h * out_w:
        # Many boundary pixels: do the horizontal pass once for every source row and output column
        # (cheap: in_h x out_w x K) and only the vertical pass per boundary pixel.
        rows = _horizontal_pass(planes, tx).reshape(in_h * out_w, num_classes)
        for start in range(0, ys.size, _CHUNK):
            y, x = ys[start : start + _CHUNK], xs[start : start + _CHUNK]
            top = np.take(rows, ty.i0[y] * out_w + x, axis=0)
            bottom = np.take(rows, ty.i1[y] * out_w + x, axis=0)
            labels[y, x] = _combine_argmax(top, bottom, ty.w0[y], ty.w1[y])
        return labels
    points = np.ascontiguousarray(planes.reshape(num_classes, -1).T)
    for start in range(0, ys.size, _CHUNK):
        y, x = ys[start : start + _CHUNK], xs[start : start + _CHUNK]
        r0, r1 = ty.i0[y] * in_w, ty.i1[y] * in_w
        c0, c1, w0, w1 = tx.i0[x], tx.i1[x], tx.w0[x, None], tx.w1[x, None]
        top = np.take(points, r0 + c0, axis=0) * w0 + np.take(points, r0 + c1, axis=0) * w1
        bottom = np.take(points, r1 + c0, axis=0) * w0 + np.take(points, r1 + c1, axis=0) * w1
        labels[y, x] = _combine_argmax(top, bottom, ty.w0[y], ty.w1[y])
    return labels


def _horizontal_pass(planes: np.ndarray, tx: AxisTable) -> np.ndarray:
    """(K, h, w) -> (h, W, K): every source row interpolated to the output width, channels last."""
    last = np.ascontiguousarray(planes.transpose(1, 2, 0))
    rows = last[:, tx.i0, :] * tx.w0[None, :, None]
    rows += last[:, tx.i1, :] * tx.w1[None, :, None]
    return rows


def _combine_argmax(top: np.ndarray, bottom: np.ndarray, h0: np.ndarray, h1: np.ndarray) -> np.ndarray:
    """argmax over classes of h0 * top + h1 * bottom for (n, K) rows; the naive path's operation order."""
    top *= h0[:, None]
    bottom *= h1[:, None]
    top += bottom
    return np.argmax(top, axis=1).astype(np.uint8)


def _agreeing_labels(low: np.ndarray, ty: AxisTable, tx: AxisTable) -> np.ndarray:
    """HxW uint8: the common low-res label of each output pixel's neighbours, or _SENTINEL where they
    differ. A neighbour with weight exactly 0 contributes exactly 0 and is left out of the vote."""
    # Rows: for each output row, the label where its two source rows agree (at low-res width).
    y1 = np.where(ty.w1 == 0, ty.i0, ty.i1)
    top, bottom = low[ty.i0], low[y1]
    rows = np.where(top == bottom, top, np.uint8(_SENTINEL))  # (out_h, in_w)
    # Columns: a table holding, per low-res column x, the pair (x, x+1) agreement and the single value;
    # each output column picks one entry, so the whole output is one uint8 gather.
    pair = np.full_like(rows, _SENTINEL)
    same = rows[:, :-1] == rows[:, 1:]
    pair[:, :-1] = np.where(same, rows[:, :-1], np.uint8(_SENTINEL))
    table = np.concatenate([pair, rows], axis=1)
    single = (tx.w1 == 0) | (tx.i1 == tx.i0)
    column = np.where(single, tx.i0 + rows.shape[1], tx.i0)
    return np.ascontiguousarray(table[:, column])


def nearest_table(in_size: int, out_size: int) -> np.ndarray:
    """Centre-aligned nearest source index per output index: floor((dst + 0.5) * in / out), exact in
    integers. Centre alignment matches the bilinear (align_corners=False) geometry of the score path."""
    dst = np.arange(out_size, dtype=np.int64)
    return np.minimum(((2 * dst + 1) * in_size) // (2 * out_size), in_size - 1)


def resize_labels_nearest(labels: np.ndarray, out_size: tuple[int, int]) -> np.ndarray:
    """Resize an h x w label map to out_size (H, W) by nearest neighbour; returns uint8."""
    if labels.ndim != 2:
        raise ValueError(f"labels must be (h, w), got shape {labels.shape}")
    out_h, out_w = out_size
    if labels.shape != (out_h, out_w):
        rows = nearest_table(labels.shape[0], out_h)
        cols = nearest_table(labels.shape[1], out_w)
        labels = labels[rows][:, cols]
    return labels.astype(np.uint8, copy=False)
