"""From a model's low-resolution class scores to labels at the image's resolution.

The convention (what HF's post_process_semantic_segmentation does): upsample logits or probabilities
BILINEARLY to the original image size, exactly as torch.nn.functional.interpolate(mode="bilinear",
align_corners=False), then take the argmax over classes.

Done naively at 1024x2048 with 19 classes that costs far more than the model (the demo SegFormer's
19x32x64 logits are upsampled x32). The exact shortcut works per low-resolution cell (the square between
four neighbouring score vectors, which covers a block of output pixels): every output score is a convex
combination of its cell's four corner scores, so (1) a cell whose four corners share their argmax by a
margin that float32 rounding cannot close is that class throughout, and (2) in the other cells only the
classes that can still win are interpolated, with the reference's own float32 operations. The result
equals upsample_argmax_naive bit for bit, ties included (see _Cells for the argument).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

_SENTINEL = 255  # never a class value: schemes have at most 255 classes (values 0..254)
_BLOCK_PIXELS = 1 << 18  # output scores computed per step: keeps the temporaries in cache
_SUB = 8  # side of the sub-blocks a large boundary cell is settled by (see _Cells._refined)
_MOSTLY_BOUNDARY = 0.5  # past this share of boundary cells (noise, not a model) the naive path is faster
# Bound on |float32 bilinear result - exact convex combination| relative to the largest |corner score|
# (a few units of float32 rounding, 2^-24 each, taken 256 times over).
_SLACK = np.float32(2.0**-16)


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
    """argmax(bilinear_upsample(scores, out_size)) computed exactly but only where it can change.

    scores: (K, h, w) float logits or probabilities (or (h, w, K) with channels_last). Returns HxW uint8
    equal to upsample_argmax_naive, ties included (the first class wins). When out_size is not larger
    than the input on both axes, or the scores are not all finite, the naive computation is used.
    """
    planes = _check_scores(scores, channels_last)
    _, in_h, in_w = planes.shape
    out_h, out_w = out_size
    if out_h <= in_h or out_w <= in_w or not np.isfinite(planes).all():
        return upsample_argmax_naive(planes, out_size)
    ty, tx = bilinear_table(in_h, out_h), bilinear_table(in_w, out_w)
    cells = _Cells(planes, ty, tx)
    agree = cells.agreeing()
    # Every output pixel lies in the cell of its top-left source pixel (i0, j0): a block of output rows
    # and columns. Cells whose result is certain are filled with one uint8 gather.
    grid = np.where(agree, cells.low, np.uint8(_SENTINEL))
    labels = np.repeat(np.repeat(grid, cells.row_count, axis=0), cells.col_count, axis=1)
    rows, cols = np.nonzero(~agree)
    if rows.size > _MOSTLY_BOUNDARY * agree.size:
        return upsample_argmax_naive(planes, out_size)
    if rows.size >= 2 * _CELLS_PER_THREAD:
        # Two halves on two threads: numpy releases the GIL inside each operation, the halves write
        # disjoint pixels, and right after a model call the cores are free.
        half = rows.size // 2
        other = _helper().submit(cells.fill_boundary, labels, rows[half:], cols[half:])
        cells.fill_boundary(labels, rows[:half], cols[:half])
        other.result()
    elif rows.size:
        cells.fill_boundary(labels, rows, cols)
    return labels


_CELLS_PER_THREAD = 64  # fewer boundary cells are not worth a thread hand-off
_helper_lock = threading.Lock()
_helper_executor: ThreadPoolExecutor | None = None


def _helper() -> ThreadPoolExecutor:
    global _helper_executor
    with _helper_lock:
        if _helper_executor is None:
            _helper_executor = ThreadPoolExecutor(1, thread_name_prefix="seglens-upsample")
        return _helper_executor


class _Cells:
    """The low-resolution cells of an upsampling: cell (i, j) has the corners (i, j), (i, j1), (i1, j),
    (i1, j1) with i1 = min(i + 1, h - 1), and covers the output pixels whose i0 is i and j0 is j.

    Exactness: every output score is computed with the reference's own float32 operations, so only the
    choice of which pixels and classes to compute needs a proof. The interpolated score of class c at
    any pixel of a cell is a convex combination of its four corner values (exactly; the float32 result
    is within _SLACK * M of it, M the largest |score| at the corners). So (1) where all four corners have
    the same argmax k, and k beats every lower class by more than 2 * _SLACK * M at each corner, k is the
    answer at every pixel of the cell; (2) a class whose largest corner value is more than 2 * _SLACK * M
    below the best smallest corner value of any class can never be the argmax, and is not computed.
    Ties between the classes that remain resolve to the lowest class, as np.argmax does.
    """

    def __init__(self, planes: np.ndarray, ty: AxisTable, tx: AxisTable) -> None:
        self.planes = planes
        self.ty, self.tx = ty, tx
        _, h, w = planes.shape
        self.i1 = np.minimum(np.arange(h) + 1, h - 1)
        self.j1 = np.minimum(np.arange(w) + 1, w - 1)
        self.low = argmax_classes(planes, 0)
        self.row_start, self.row_count = _runs(ty.i0, h)
        self.col_start, self.col_count = _runs(tx.i0, w)
        self.magnitude = self._corners(np.abs(planes).max(axis=0), np.maximum)

    def _corners(self, values: np.ndarray, combine: np.ufunc) -> np.ndarray:
        """(h, w): `combine` of a per-pixel (h, w) quantity over each cell's four corners."""
        right = values[:, self.j1]
        return combine(combine(values, right), combine(values[self.i1], right[self.i1]))

    def agreeing(self) -> np.ndarray:
        """(h, w) bool: cells whose four corners share their argmax by a safe margin (rule 1)."""
        low = self.low
        right = low[:, self.j1]
        same = (low == right) & (low == low[self.i1]) & (low == right[self.i1])
        # Margin of the winning class over the best lower class (the one that would win a tie).
        winner = self.planes.max(axis=0)
        below = np.full(low.shape, -np.inf, dtype=np.float32)
        prefix = np.full(low.shape, -np.inf, dtype=np.float32)
        for k in range(1, self.planes.shape[0]):
            np.maximum(prefix, self.planes[k - 1], out=prefix)
            np.copyto(below, prefix, where=low == k)
        gap = winner - below  # inf where class 0 wins: no lower class
        return same & (self._corners(gap, np.minimum) > 2 * _SLACK * self.magnitude)

    def fill_boundary(self, labels: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> None:
        """Compute the pixels of the given cells over their candidate classes (rule 2)."""
        p, i1, j1 = self.planes, self.i1[rows], self.j1[cols]
        corners = np.stack([p[:, rows, cols], p[:, rows, j1], p[:, i1, cols], p[:, i1, j1]])  # (4, K, n)
        best_floor = corners.min(axis=0).max(axis=0)
        keep = corners.max(axis=0) >= best_floor - 2 * _SLACK * self.magnitude[rows, cols]  # (K, n)
        counts = keep.sum(axis=0)
        shape_r, shape_c = self.row_count[rows], self.col_count[cols]
        key = (shape_r.astype(np.int64) * (1 << 20) + shape_c) * 256 + counts
        order = np.argsort(key, kind="stable")
        for group in np.split(order, np.flatnonzero(np.diff(key[order])) + 1):
            height, width, count = int(shape_r[group[0]]), int(shape_c[group[0]]), int(counts[group[0]])
            step = max(1, _BLOCK_PIXELS // max(1, height * width * count))
            for start in range(0, group.size, step):
                chosen = group[start : start + step]
                classes = np.nonzero(keep[:, chosen].T)[1].reshape(chosen.size, count)
                self._fill_block(labels, rows[chosen], cols[chosen], classes, (height, width))

    def _fill_block(
        self,
        labels: np.ndarray,
        rows: np.ndarray,
        cols: np.ndarray,
        classes: np.ndarray,
        shape: tuple[int, int],
    ) -> None:
        """m cells of one block shape with the same number of candidate classes (m, n), ascending."""
        ty, tx, p = self.ty, self.tx, self.planes
        ys = self.row_start[rows][:, None] + np.arange(shape[0])  # (m, R)
        xs = self.col_start[cols][:, None] + np.arange(shape[1])  # (m, C)
        # Flat output positions of the m blocks: one put() instead of a 2-D fancy assignment.
        where = (ys * labels.shape[1])[:, :, None] + xs[:, None, :]
        ids = classes.astype(np.uint8)[:, :, None, None]  # (m, n, 1, 1)
        if classes.shape[1] == 1:
            np.put(labels, where, np.broadcast_to(ids[:, 0], where.shape))
            return
        r0, r1, c0, c1 = rows[:, None], self.i1[rows][:, None], cols[:, None], self.j1[cols][:, None]
        w0, w1 = tx.w0[xs][:, None, :], tx.w1[xs][:, None, :]  # (m, 1, C)
        # Horizontal pass at the cell's two source rows, per candidate: w0 * a + w1 * b, as the reference.
        top = w0 * p[classes, r0, c0][:, :, None] + w1 * p[classes, r0, c1][:, :, None]  # (m, n, C)
        bottom = w0 * p[classes, r1, c0][:, :, None] + w1 * p[classes, r1, c1][:, :, None]
        h0, h1 = ty.w0[ys][:, :, None], ty.w1[ys][:, :, None]  # (m, R, 1)
        if shape[0] % _SUB == 0 and shape[1] % _SUB == 0 and min(shape) >= 2 * _SUB:
            result = self._refined(h0, h1, top, bottom, classes, self.magnitude[rows, cols])
        else:
            result = _argmax_scores(h0, h1, top, bottom, ids)
        np.put(labels, where, result)

    @staticmethod
    def _refined(
        h0: np.ndarray,
        h1: np.ndarray,
        top: np.ndarray,
        bottom: np.ndarray,
        classes: np.ndarray,
        size: np.ndarray,
    ) -> np.ndarray:
        """(m, R, C) labels of large blocks, computing only the _SUB x _SUB sub-blocks whose corners do not
        settle them. Within a cell the float32 weights are monotone in y and x, so an output score lies
        between its sub-block's corner scores (all four are output pixels, computed exactly as the
        reference does) up to a few float32 roundings of the largest |score| `size`: a sub-block whose
        four corners have the same best candidate, ahead of every other by more than 2 * _SLACK * size,
        is that class throughout."""
        m, n, width = top.shape
        height = h0.shape[1]
        ly, lx = np.r_[0:height:_SUB, height - 1], np.r_[0:width:_SUB, width - 1]
        corner = (
            h0[:, None, ly] * top[:, :, None, lx] + h1[:, None, ly] * bottom[:, :, None, lx]
        )  # (m, n, Ly, Lx)
        winner = corner.argmax(axis=1)
        ranked = np.sort(corner, axis=1)
        clear = (ranked[:, -1] - ranked[:, -2]) > (2 * _SLACK * size)[:, None, None]
        w, c = winner, clear
        decided = (w[:, :-1, :-1] == w[:, 1:, :-1]) & (w[:, :-1, :-1] == w[:, :-1, 1:])
        decided &= (
            (w[:, :-1, :-1] == w[:, 1:, 1:]) & c[:, :-1, :-1] & c[:, 1:, :-1] & c[:, :-1, 1:] & c[:, 1:, 1:]
        )
        sub = np.take_along_axis(classes, w[:, :-1, :-1].reshape(m, -1), axis=1).astype(np.uint8)
        result = np.repeat(np.repeat(sub.reshape(decided.shape), _SUB, axis=1), _SUB, axis=2)
        cell, a, b = np.nonzero(~decided)
        if cell.size:
            yy = a[:, None] * _SUB + np.arange(_SUB)  # (u, S) rows of the undecided sub-blocks
            xx = b[:, None] * _SUB + np.arange(_SUB)
            pick = (cell[:, None, None], np.arange(n)[None, :, None], xx[:, None, :])
            ids = classes[cell].astype(np.uint8)[:, :, None, None]
            scores = _argmax_scores(
                h0[cell[:, None], yy], h1[cell[:, None], yy], top[pick], bottom[pick], ids
            )
            result[cell[:, None, None], yy[:, :, None], xx[:, None, :]] = scores
        return result


def _argmax_scores(
    h0: np.ndarray, h1: np.ndarray, top: np.ndarray, bottom: np.ndarray, ids: np.ndarray
) -> np.ndarray:
    """(m, R, C) uint8: per pixel the id (ids: (m, n, 1, 1), ascending) of the candidate with the largest
    h0 * top + h1 * bottom (h0, h1: (m, R, 1); top, bottom: (m, n, C)), the first on a tie."""
    best = h0 * top[:, None, 0] + h1 * bottom[:, None, 0]  # (m, R, C)
    result = np.empty(best.shape, dtype=np.uint8)
    result[...] = ids[:, 0]
    mask = np.empty(best.shape, dtype=bool)
    for k in range(1, top.shape[1]):
        score = h0 * top[:, None, k]
        score += h1 * bottom[:, None, k]
        np.greater(score, best, out=mask)  # strictly greater: on a tie the lower class stays
        np.copyto(result, ids[:, k], where=mask)
        np.maximum(best, score, out=best)
    return result


def _runs(first: np.ndarray, in_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(start, count) of the output indices whose first source index is each source index (the table's
    i0 never decreases, so each is one run)."""
    counts = np.bincount(first, minlength=in_size)
    starts = np.zeros(in_size, dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    return starts, counts


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
